//! Pipes: the per-peer message queues between a socket's pattern logic and
//! the I/O thread's engines.
//!
//! A [`Pipe`] holds two queues of whole messages: `inbound` (filled by the
//! engine, drained by the pattern on `recv`) and `outbound` (filled by the
//! pattern on `send`, drained by the engine). Each is bounded by a high-water
//! mark counted in messages, as in libzmq. Queues are `VecDeque`s that grow
//! as messages arrive, so an idle pipe costs a few words, not a preallocated
//! HWM-sized buffer.
//!
//! This module is sans-IO. Whoever mutates [`Pipes`] afterwards collects
//! what the other side must be told from [`Pipes::take_io_requests`] (for
//! the I/O thread) and [`Pipes::take_app_wakeup`] (for threads blocked in
//! `send`/`recv`). The pair of flags `output_signalled` and `read_paused`
//! keeps that to one notice per idle-to-busy transition, in the spirit of
//! libzmq's ypipe flush/check-read protocol.

use crate::error::Error;
use crate::id_map::IdMap;
use crate::message::Message;
use crate::pattern::{PeerInfo, Stats};
use std::collections::VecDeque;

/// How many bytes of received messages a pipe lets its engine read ahead
/// of the application: at this many queued bytes reading pauses, as at
/// `rcvhwm`, and resumes when the queue is back to half of both bounds.
/// Beyond it, bytes wait in the kernel's socket buffer (which costs no
/// memory of ours) and TCP pushes back on the peer. `rcvhwm` keeps its
/// libzmq meaning; this bound is ours, and only ever stops reading
/// earlier. 256 KiB keeps a 64 KiB stream at full rate (the I/O thread
/// still reads ahead while the application consumes) where 1000 queued
/// 64 KiB messages used to hold up to 64 MiB.
pub const READ_AHEAD: usize = 256 * 1024;

/// Identifies a pipe within a context. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipeId(pub u64);

/// Something the I/O thread must be told after the pipes changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoRequest {
    /// `outbound` went from empty to non-empty: the engine should drain it.
    Flush(PipeId),
    /// `inbound` fell below its low-water mark after the engine had paused
    /// reading at the HWM: the engine should read again.
    ResumeRead(PipeId),
    /// The pattern refuses the peer behind this pipe from now on (a
    /// subscriber over its subscription limit): close its connection,
    /// reporting why.
    Disconnect(PipeId, crate::error::ProtocolError),
}

/// What [`Pipes::offer`] did with a message.
#[derive(Debug)]
pub enum Offer {
    /// Queued for the peer.
    Queued,
    /// The pipe is at its send HWM: the message is handed back.
    Full(Message),
    /// No such pipe, or its peer is gone for good: handed back.
    Gone(Message),
}

/// One peer's pair of queues.
#[derive(Debug)]
pub struct Pipe {
    inbound: VecDeque<Message>,
    /// Body bytes of the messages in `inbound`, for [`READ_AHEAD`].
    inbound_bytes: usize,
    outbound: VecDeque<Message>,
    sndhwm: usize,
    rcvhwm: usize,
    peer: Option<PeerInfo>,
    /// The I/O thread knows `outbound` has messages and will drain it
    /// without another notice.
    output_signalled: bool,
    /// The engine stopped reading because `inbound` reached `rcvhwm`.
    read_paused: bool,
    /// This pipe is queued in the fair-queue ring.
    in_ring: bool,
    /// Where the peer is: the connect endpoint, or an accepted peer's
    /// address. For error messages and events.
    endpoint: String,
    /// The connection behind this pipe is gone for good (an accepted peer
    /// disconnected). It refuses writes and is removed once its inbound
    /// messages have been read, so that nothing the peer sent is lost.
    orphan: bool,
    /// A handshake has completed on this pipe at least once. Messages on
    /// a pipe that never connected may be moved to a peer that did
    /// ([`Pipes::move_outbound`]): nothing of them has been written.
    ever_connected: bool,
    /// Messages for this peer dropped at its send HWM: which peer is slow
    /// (`EndpointStatus::peers`, `EventKind::DroppedAtHwm`).
    dropped_hwm: u64,
}

impl Pipe {
    /// The peer behind this pipe, once its handshake has completed. `None`
    /// while a connecter is still (re)connecting.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// Where the peer is (connect endpoint or peer address); may be empty.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Messages for this peer dropped at its send HWM so far.
    pub fn dropped_hwm(&self) -> u64 {
        self.dropped_hwm
    }

    /// Messages waiting to be read by the application.
    pub fn inbound_len(&self) -> usize {
        self.inbound.len()
    }

    /// The receive HWM in messages; 0 is unlimited.
    pub fn rcvhwm(&self) -> usize {
        self.rcvhwm
    }

    /// Messages waiting to be written to the peer.
    pub fn outbound_len(&self) -> usize {
        self.outbound.len()
    }

    /// Appends to `outbound`, telling the I/O thread (once) that there is
    /// something to write.
    fn queue(&mut self, id: PipeId, msg: Message, io_requests: &mut Vec<IoRequest>) {
        self.outbound.push_back(msg);
        if !self.output_signalled {
            self.output_signalled = true;
            io_requests.push(IoRequest::Flush(id));
        }
    }

    fn writable(&self) -> bool {
        !self.orphan && (self.sndhwm == 0 || self.outbound.len() < self.sndhwm)
    }

    /// True once the pipe's connection is gone for good.
    pub fn is_orphan(&self) -> bool {
        self.orphan
    }

    /// True once a handshake has completed on this pipe, even if its
    /// connection has been lost since.
    pub fn ever_connected(&self) -> bool {
        self.ever_connected
    }

    /// At `rcvhwm` messages or [`READ_AHEAD`] bytes, reading pauses.
    fn inbound_full(&self) -> bool {
        (self.rcvhwm != 0 && self.inbound.len() >= self.rcvhwm) || self.inbound_bytes >= READ_AHEAD
    }

    /// Reading resumes when the queue is back to half of both bounds (any
    /// length counts as half of no HWM).
    fn below_low_water(&self) -> bool {
        (self.rcvhwm == 0 || self.inbound.len() <= self.rcvhwm / 2)
            && self.inbound_bytes <= READ_AHEAD / 2
    }
}

/// All pipes of one socket, with the fair-queue ring over readable pipes.
#[derive(Debug, Default)]
pub struct Pipes {
    /// Boxed: most pipes of a busy server are idle, and a map of
    /// 150-byte values at half load costs more than the boxes.
    pipes: IdMap<PipeId, Box<Pipe>>,
    /// Pipes that have (or recently had) inbound messages, in the order
    /// they became readable. Entries may be stale; readers skip those.
    readable: VecDeque<PipeId>,
    io_requests: Vec<IoRequest>,
    /// Orphaned pipes that have been drained; the socket detaches them.
    dead: Vec<PipeId>,
    wake_app: bool,
    /// Body bytes of every message in every `inbound` queue.
    inbound_bytes: u64,
    /// Reading pauses when `inbound_bytes` reaches this (the socket's
    /// inbound budget): a byte HWM over all pipes, on top of each pipe's
    /// `rcvhwm` in messages, so that queued messages never make the
    /// budget drop a connection.
    byte_limit: Option<u64>,
    /// Pipes paused because of `byte_limit`, resumed when the queued
    /// bytes fall to half of it.
    byte_paused: Vec<PipeId>,
    /// Keep only the newest inbound message of each pipe (`conflate`).
    conflate: bool,
    /// Pipes whose messages were dropped at their HWM, with the count so
    /// far, for the monitor (`SocketCore::settle` passes them on).
    drop_notices: Vec<(PipeId, u64)>,
    /// Counters of messages dropped where ZeroMQ semantics drop them.
    pub stats: Stats,
}

impl Pipes {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pipe. A HWM of 0 means unlimited, as in libzmq.
    pub fn insert(&mut self, id: PipeId, sndhwm: usize, rcvhwm: usize) {
        self.pipes.insert(
            id,
            Box::new(Pipe {
                inbound: VecDeque::new(),
                inbound_bytes: 0,
                outbound: VecDeque::new(),
                sndhwm,
                rcvhwm,
                peer: None,
                output_signalled: false,
                read_paused: false,
                in_ring: false,
                orphan: false,
                ever_connected: false,
                endpoint: String::new(),
                dropped_hwm: 0,
            }),
        );
        self.wake_app = true;
    }

    /// Removes a pipe, returning it with whatever it still held.
    pub fn remove(&mut self, id: PipeId) -> Option<Pipe> {
        let pipe = self.pipes.remove(&id).map(|b| *b);
        if let Some(p) = &pipe {
            self.wake_app = true;
            let bytes: u64 = p.inbound.iter().map(|m| m.byte_len() as u64).sum();
            self.inbound_bytes = self.inbound_bytes.saturating_sub(bytes);
        }
        pipe
    }

    /// Counts a message for the peer behind `id` dropped at its send HWM:
    /// socket-wide in `stats`, and per peer so that a user can find out
    /// *which* peer is slow. The monitor hears of it at the peer's 1st,
    /// 2nd, 4th, 8th... drop: enough to find it, never a flood.
    pub fn drop_at_hwm(&mut self, id: PipeId) {
        self.stats.dropped_hwm += 1;
        if let Some(p) = self.pipes.get_mut(&id) {
            p.dropped_hwm += 1;
            if p.dropped_hwm.is_power_of_two() {
                self.drop_notices.push((id, p.dropped_hwm));
            }
        }
    }

    /// The drop notices since the last call.
    pub fn take_drop_notices(&mut self) -> Vec<(PipeId, u64)> {
        std::mem::take(&mut self.drop_notices)
    }

    /// Asks the I/O thread to close the connection behind `id`: the
    /// pattern will not deal with this peer any more.
    pub fn request_disconnect(&mut self, id: PipeId, reason: crate::error::ProtocolError) {
        self.io_requests.push(IoRequest::Disconnect(id, reason));
    }

    /// Keeps only the newest inbound message of each pipe from now on
    /// (`ZMQ_CONFLATE`); older unread ones are dropped and counted.
    pub fn set_conflate(&mut self, on: bool) {
        self.conflate = on;
    }

    /// Changes every pipe's HWMs at once (`sndhwm`/`rcvhwm` set on a
    /// socket with connections, as libzmq 4.2+ does). A raised send HWM
    /// may free room for blocked senders; a raised receive HWM may let a
    /// paused engine read again. A lowered one applies from the next
    /// message: nothing queued is dropped.
    pub fn set_hwms(&mut self, sndhwm: usize, rcvhwm: usize) {
        let bytes_held = self.bytes_above_low_water();
        for (&id, p) in self.pipes.iter_mut() {
            let was_full = !p.writable();
            p.sndhwm = sndhwm;
            p.rcvhwm = rcvhwm;
            if was_full && p.writable() {
                self.wake_app = true;
            }
            if p.read_paused && p.below_low_water() {
                if bytes_held {
                    // Its own queue allows reading, the socket's bytes
                    // not yet: it waits with those paused for the bytes.
                    if !self.byte_paused.contains(&id) {
                        self.byte_paused.push(id);
                    }
                } else {
                    p.read_paused = false;
                    self.io_requests.push(IoRequest::ResumeRead(id));
                }
            }
        }
    }

    /// Sets the socket's inbound budget, which bounds the bytes queued in
    /// all `inbound` queues together (see `byte_limit`); `None` is none.
    pub fn set_byte_limit(&mut self, limit: Option<u64>) {
        self.byte_limit = limit;
    }

    /// Body bytes of all messages waiting to be read.
    pub fn inbound_bytes(&self) -> u64 {
        self.inbound_bytes
    }

    /// Whether the queued bytes are above half the byte limit: paused
    /// pipes stay paused until they are not.
    fn bytes_above_low_water(&self) -> bool {
        self.byte_limit.is_some_and(|l| self.inbound_bytes > l / 2)
    }

    /// The pipe with this id.
    pub fn get(&self, id: PipeId) -> Option<&Pipe> {
        self.pipes.get(&id).map(|b| &**b)
    }

    /// True when the pipe exists.
    pub fn contains(&self, id: PipeId) -> bool {
        self.pipes.contains_key(&id)
    }

    /// Number of pipes.
    pub fn len(&self) -> usize {
        self.pipes.len()
    }

    /// True when there are no pipes.
    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    /// The ids of all pipes, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = PipeId> + '_ {
        self.pipes.keys().copied()
    }

    /// The peer behind `id`, if its handshake has completed.
    pub fn peer(&self, id: PipeId) -> Option<&PeerInfo> {
        self.pipes.get(&id).and_then(|p| p.peer.as_ref())
    }

    /// True when the pipe's peer is connected (handshake complete).
    pub fn is_connected(&self, id: PipeId) -> bool {
        self.peer(id).is_some()
    }

    // ----- I/O side -----

    /// Records the peer after a successful handshake, or `None` when the
    /// connection behind the pipe is lost.
    pub fn set_peer(&mut self, id: PipeId, peer: Option<PeerInfo>) {
        if let Some(p) = self.pipes.get_mut(&id) {
            p.ever_connected |= peer.is_some();
            p.peer = peer;
            self.wake_app = true;
        }
    }

    /// Records where the peer behind a pipe is.
    pub fn set_endpoint(&mut self, id: PipeId, endpoint: String) {
        if let Some(p) = self.pipes.get_mut(&id) {
            p.endpoint = endpoint;
        }
    }

    /// Queues a message received from the peer. Returns `false` when the
    /// pipe is now at its receive HWM or [`READ_AHEAD`] (or gone): the
    /// engine must stop reading until it gets [`IoRequest::ResumeRead`].
    pub fn deliver(&mut self, id: PipeId, msg: Message) -> bool {
        let Some(p) = self.pipes.get_mut(&id) else {
            return false;
        };
        if self.conflate {
            // The newest replaces what the application has not read yet.
            let superseded = p.inbound.len() as u64;
            self.stats.dropped_conflated += superseded;
            let bytes = std::mem::take(&mut p.inbound_bytes);
            self.inbound_bytes = self.inbound_bytes.saturating_sub(bytes as u64);
            p.inbound.clear();
        }
        p.inbound_bytes += msg.byte_len();
        self.inbound_bytes = self.inbound_bytes.saturating_add(msg.byte_len() as u64);
        p.inbound.push_back(msg);
        if !p.in_ring {
            p.in_ring = true;
            self.readable.push_back(id);
        }
        self.wake_app = true;
        let over_bytes = self.byte_limit.is_some_and(|l| self.inbound_bytes >= l);
        if over_bytes && !self.byte_paused.contains(&id) {
            self.byte_paused.push(id);
        }
        // Conflating, the queue never holds more than one message: only
        // its bytes can call for a pause.
        let full = if self.conflate {
            p.inbound_bytes >= READ_AHEAD
        } else {
            p.inbound_full()
        };
        if over_bytes || full {
            p.read_paused = true;
            false
        } else {
            true
        }
    }

    /// How many more bytes this pipe's queue takes before [`READ_AHEAD`]
    /// pauses reading, so that the read which reaches the bound does not
    /// also carry the queue a whole read past it.
    ///
    /// In bytes only: holding reads to the `rcvhwm` message count too
    /// (500 64-byte messages after each resume instead of 4,000) woke the
    /// I/O thread eight times as often and cost a quarter of the 64-byte
    /// stream's rate.
    pub fn read_room(&self, id: PipeId) -> usize {
        self.pipes
            .get(&id)
            .map_or(0, |p| READ_AHEAD.saturating_sub(p.inbound_bytes))
    }

    /// Takes the next message to write to the peer. `None` means the queue
    /// is empty; the next [`Pipes::write`] will send a new
    /// [`IoRequest::Flush`].
    pub fn pop_outbound(&mut self, id: PipeId) -> Option<Message> {
        let p = self.pipes.get_mut(&id)?;
        let was_full = !p.writable();
        match p.outbound.pop_front() {
            Some(m) => {
                if was_full {
                    self.wake_app = true;
                }
                Some(m)
            }
            None => {
                p.output_signalled = false;
                None
            }
        }
    }

    /// Puts back the flush notice for a pipe whose engine went away while
    /// it still had output, so that the next engine is told to drain it.
    pub fn output_pending(&self, id: PipeId) -> bool {
        self.pipes.get(&id).is_some_and(|p| !p.outbound.is_empty())
    }

    /// Drops everything queued outbound (an accepted connection died and
    /// nobody else can deliver it). Returns how many messages were dropped.
    pub fn clear_outbound(&mut self, id: PipeId) -> usize {
        let Some(p) = self.pipes.get_mut(&id) else {
            return 0;
        };
        let n = p.outbound.len();
        p.outbound.clear();
        p.output_signalled = false;
        if n > 0 {
            self.wake_app = true;
        }
        n
    }

    /// Drops the queued outbound messages for which `keep` is false, keeping
    /// the others in order (an XSUB's stale subscriptions after a lost
    /// connection, which are resent in full, while its data stays queued).
    /// Returns how many were dropped.
    pub fn retain_outbound(&mut self, id: PipeId, mut keep: impl FnMut(&Message) -> bool) -> usize {
        let Some(p) = self.pipes.get_mut(&id) else {
            return 0;
        };
        let was_full = !p.writable();
        let before = p.outbound.len();
        p.outbound.retain(|m| keep(m));
        let n = before - p.outbound.len();
        if p.outbound.is_empty() {
            // A pending flush notice finds nothing to do; the next write
            // must send a new one.
            p.output_signalled = false;
        }
        if n > 0 && was_full && p.writable() {
            self.wake_app = true;
        }
        n
    }

    /// Moves queued outbound messages from `from` to the back of `to`, in
    /// order, for as long as `to` has room. Returns how many moved. Only
    /// for messages no engine has taken yet: an engine drains its pipe
    /// after its handshake, so a pipe that never connected qualifies.
    pub fn move_outbound(&mut self, from: PipeId, to: PipeId) -> usize {
        if from == to || !self.pipes.contains_key(&to) {
            return 0;
        }
        let Some(src) = self.pipes.get_mut(&from) else {
            return 0;
        };
        let was_full = !src.writable();
        let mut queue = std::mem::take(&mut src.outbound);
        let mut moved = 0;
        while let Some(msg) = queue.pop_front() {
            if let Err(msg) = self.write(to, msg) {
                queue.push_front(msg);
                break;
            }
            moved += 1;
        }
        if let Some(src) = self.pipes.get_mut(&from) {
            if queue.is_empty() {
                // A pending flush notice for `from` finds nothing to do.
                src.output_signalled = false;
            }
            src.outbound = queue;
        }
        if moved > 0 && was_full {
            self.wake_app = true;
        }
        moved
    }

    /// Marks the pipe as orphaned (see [`Pipe::is_orphan`]). Returns `true`
    /// when it is already empty and can be removed at once.
    pub fn orphan(&mut self, id: PipeId) -> bool {
        let Some(p) = self.pipes.get_mut(&id) else {
            return false;
        };
        p.orphan = true;
        p.peer = None;
        self.wake_app = true;
        p.inbound.is_empty()
    }

    /// Orphaned pipes drained since the last call: detach and remove them.
    pub fn take_dead(&mut self) -> Vec<PipeId> {
        std::mem::take(&mut self.dead)
    }

    // ----- pattern side -----

    /// True when `write` to this pipe would succeed.
    pub fn can_write(&self, id: PipeId) -> bool {
        self.pipes.get(&id).is_some_and(|p| p.writable())
    }

    /// Queues a message for the peer. Hands the message back when the pipe
    /// is at its send HWM or does not exist.
    pub fn write(&mut self, id: PipeId, msg: Message) -> Result<(), Message> {
        match self.offer(id, msg) {
            Offer::Queued => Ok(()),
            Offer::Full(msg) | Offer::Gone(msg) => Err(msg),
        }
    }

    /// Queues a message for the peer if its pipe has room, saying why not
    /// otherwise: one lookup, for the publisher's per-subscriber loop.
    pub fn offer(&mut self, id: PipeId, msg: Message) -> Offer {
        let Some(p) = self.pipes.get_mut(&id) else {
            return Offer::Gone(msg);
        };
        if p.orphan {
            return Offer::Gone(msg);
        }
        if p.sndhwm != 0 && p.outbound.len() >= p.sndhwm {
            return Offer::Full(msg);
        }
        p.queue(id, msg, &mut self.io_requests);
        Offer::Queued
    }

    /// Queues a message for the peer whatever its send HWM. For what must
    /// never be dropped at the HWM and is small and bounded by the socket's
    /// own state, such as a SUB's subscriptions (libzmq drops those at the
    /// HWM, its issue #2258). Hands the message back only when the pipe
    /// does not exist or its peer is gone for good.
    pub fn write_forced(&mut self, id: PipeId, msg: Message) -> Result<(), Message> {
        let Some(p) = self.pipes.get_mut(&id) else {
            return Err(msg);
        };
        if p.orphan {
            return Err(msg);
        }
        p.queue(id, msg, &mut self.io_requests);
        Ok(())
    }

    /// The next message of this pipe, left in place.
    pub fn front(&self, id: PipeId) -> Option<&Message> {
        self.pipes.get(&id)?.inbound.front()
    }

    /// Takes the next message from this pipe.
    pub fn read_from(&mut self, id: PipeId) -> Option<Message> {
        let p = self.pipes.get_mut(&id)?;
        let msg = p.inbound.pop_front()?;
        p.inbound_bytes -= msg.byte_len();
        self.inbound_bytes = self.inbound_bytes.saturating_sub(msg.byte_len() as u64);
        if p.inbound.is_empty() {
            // An idle pipe holds no buffer: with thousands of mostly idle
            // peers this is most of a pipe's memory. Only small queues are
            // given back; a queue that grew under a burst is kept, so that
            // a stream that keeps catching up does not reallocate.
            if p.inbound.capacity() <= 8 {
                p.inbound = VecDeque::new();
            }
            if p.orphan {
                self.dead.push(id);
            }
        }
        let resumable = p.read_paused && p.below_low_water();
        if self.bytes_above_low_water() {
            // Its own queue allows reading, the socket's bytes not yet:
            // it goes on waiting with those paused for the bytes.
            if resumable && !self.byte_paused.contains(&id) {
                self.byte_paused.push(id);
            }
        } else {
            self.resume_byte_paused();
            if let Some(p) = self.pipes.get_mut(&id) {
                if p.read_paused && p.below_low_water() {
                    p.read_paused = false;
                    self.io_requests.push(IoRequest::ResumeRead(id));
                }
            }
        }
        Some(msg)
    }

    /// The queued bytes fell to half the byte limit: pipes paused for it
    /// read again, unless their own HWM still holds them.
    fn resume_byte_paused(&mut self) {
        if self.byte_paused.is_empty() {
            return;
        }
        for id in std::mem::take(&mut self.byte_paused) {
            if let Some(p) = self.pipes.get_mut(&id) {
                if p.read_paused && p.below_low_water() {
                    p.read_paused = false;
                    self.io_requests.push(IoRequest::ResumeRead(id));
                }
            }
        }
    }

    /// Fair-queued read: the next message from the pipes that have input,
    /// taking one message from each in turn.
    pub fn read_next(&mut self) -> Option<(PipeId, Message)> {
        let id = self.peek_next()?.0;
        self.readable.pop_front();
        let msg = self.read_from(id)?;
        let p = self.pipes.get_mut(&id)?;
        if p.inbound.is_empty() {
            p.in_ring = false;
        } else {
            self.readable.push_back(id);
        }
        Some((id, msg))
    }

    /// The message [`Pipes::read_next`] would return, left in place. Pipes
    /// found empty (or gone) at the front of the ring are taken out of it.
    pub fn peek_next(&mut self) -> Option<(PipeId, &Message)> {
        loop {
            let id = *self.readable.front()?;
            match self.pipes.get_mut(&id) {
                Some(p) if !p.inbound.is_empty() => break,
                Some(p) => p.in_ring = false,
                None => {}
            }
            self.readable.pop_front();
        }
        let id = *self.readable.front()?;
        let msg = self.pipes.get(&id)?.inbound.front()?;
        Some((id, msg))
    }

    /// The whole receive of a socket type that only fair-queues (DEALER,
    /// PULL): the next message, or [`Error::WouldBlock`].
    pub fn recv_fair(&mut self) -> Result<Message, Error> {
        self.read_next()
            .map(|(_, msg)| msg)
            .ok_or(Error::WouldBlock)
    }

    /// True when there are drained orphans to remove.
    pub fn has_dead(&self) -> bool {
        !self.dead.is_empty()
    }

    // ----- notices -----

    /// What the I/O thread must be told since the last call.
    pub fn take_io_requests(&mut self) -> Vec<IoRequest> {
        std::mem::take(&mut self.io_requests)
    }

    /// Whether application threads blocked in `send`/`recv` should re-check
    /// since the last call (a message arrived, space freed, a peer came or
    /// went).
    pub fn take_app_wakeup(&mut self) -> bool {
        std::mem::take(&mut self.wake_app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_notice_once_per_busy_period() {
        let mut pipes = Pipes::new();
        let id = PipeId(1);
        pipes.insert(id, 2, 2);
        assert!(pipes.write(id, "a".into()).is_ok());
        assert!(pipes.write(id, "b".into()).is_ok());
        assert_eq!(pipes.take_io_requests(), vec![IoRequest::Flush(id)]);
        // At the HWM the message comes back.
        assert_eq!(pipes.write(id, "c".into()), Err(Message::from("c")));
        assert!(pipes.pop_outbound(id).is_some());
        assert!(pipes.take_app_wakeup(), "space freed must wake senders");
        assert!(pipes.pop_outbound(id).is_some());
        assert!(pipes.pop_outbound(id).is_none());
        assert!(pipes.write(id, "d".into()).is_ok());
        assert_eq!(pipes.take_io_requests(), vec![IoRequest::Flush(id)]);
    }

    #[test]
    fn read_pauses_at_hwm_and_resumes_at_low_water() {
        let mut pipes = Pipes::new();
        let id = PipeId(7);
        pipes.insert(id, 4, 4);
        for i in 0..3 {
            assert!(pipes.deliver(id, Message::from(vec![i as u8])));
        }
        assert!(
            !pipes.deliver(id, "x".into()),
            "fourth message hits the HWM"
        );
        pipes.read_next();
        assert!(pipes.take_io_requests().is_empty());
        pipes.read_next();
        assert_eq!(pipes.take_io_requests(), vec![IoRequest::ResumeRead(id)]);
    }

    #[test]
    fn queued_bytes_pause_every_pipe_and_resume_at_half() {
        let mut pipes = Pipes::new();
        let (a, b) = (PipeId(1), PipeId(2));
        pipes.insert(a, 0, 1000);
        pipes.insert(b, 0, 0);
        pipes.set_byte_limit(Some(100));
        let msg = || Message::from(vec![0u8; 30]);
        assert!(pipes.deliver(a, msg()));
        assert!(pipes.deliver(b, msg()));
        assert!(pipes.deliver(a, msg()));
        assert!(!pipes.deliver(b, msg()), "120 bytes queued: b pauses");
        assert!(!pipes.deliver(a, msg()), "and so does a");
        assert_eq!(pipes.inbound_bytes(), 150);
        pipes.read_next();
        pipes.read_next();
        pipes.read_next();
        assert_eq!(pipes.take_io_requests(), vec![], "60 bytes: above half");
        pipes.read_next();
        let mut resumed = pipes.take_io_requests();
        resumed.sort_by_key(|r| match r {
            IoRequest::ResumeRead(p) | IoRequest::Flush(p) | IoRequest::Disconnect(p, _) => *p,
        });
        assert_eq!(
            resumed,
            vec![IoRequest::ResumeRead(a), IoRequest::ResumeRead(b)],
            "30 bytes: both read again"
        );
        pipes.remove(b);
        assert_eq!(pipes.inbound_bytes(), 30, "b's queue went with it");
    }

    /// Over random deliveries, reads, disconnections (the pipe removed)
    /// and reconnections (a new pipe), in any order: the queued bytes are
    /// exactly the bodies queued, the byte limit is passed by at most one
    /// message per pipe, and once the application has read everything no
    /// pipe is left paused.
    #[test]
    fn queued_bytes_follow_any_order_of_events() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..100 {
            let mut pipes = Pipes::new();
            pipes.set_byte_limit(Some(1000));
            let mut live: Vec<PipeId> = Vec::new();
            let mut paused: Vec<PipeId> = Vec::new();
            let mut next_id = 1;
            for _ in 0..500 {
                match next() % 6 {
                    0 => {
                        let id = PipeId(next_id);
                        next_id += 1;
                        pipes.insert(id, 0, (next() % 8) as usize);
                        live.push(id);
                    }
                    1 if !live.is_empty() => {
                        let id = live.swap_remove((next() as usize) % live.len());
                        pipes.remove(id);
                        paused.retain(|p| *p != id);
                    }
                    2 | 3 if !live.is_empty() => {
                        let id = live[(next() as usize) % live.len()];
                        if !paused.contains(&id) {
                            let len = (next() % 300) as usize;
                            if !pipes.deliver(id, Message::from(vec![0u8; len])) {
                                paused.push(id);
                            }
                        }
                    }
                    _ => {
                        pipes.read_next();
                    }
                }
                for r in pipes.take_io_requests() {
                    if let IoRequest::ResumeRead(id) = r {
                        paused.retain(|p| *p != id);
                    }
                }
                let queued: u64 = live
                    .iter()
                    .filter_map(|id| pipes.get(*id))
                    .flat_map(|p| p.inbound.iter())
                    .map(|m| m.byte_len() as u64)
                    .sum();
                assert_eq!(pipes.inbound_bytes(), queued, "round {round}");
                // Each pipe stops at its own next delivery past the limit.
                let bound = 1000 + 300 * live.len() as u64;
                assert!(queued < bound, "round {round}: {queued} bytes queued");
            }
            while pipes.read_next().is_some() {}
            for r in pipes.take_io_requests() {
                if let IoRequest::ResumeRead(id) = r {
                    paused.retain(|p| *p != id);
                }
            }
            assert_eq!(pipes.inbound_bytes(), 0);
            assert!(paused.is_empty(), "round {round}: {paused:?} left paused");
        }
    }

    #[test]
    fn raised_hwms_resume_reading_and_free_senders() {
        let mut pipes = Pipes::new();
        let id = PipeId(3);
        pipes.insert(id, 1, 2);
        assert!(pipes.deliver(id, "a".into()));
        assert!(!pipes.deliver(id, "b".into()), "paused at rcvhwm 2");
        pipes.write(id, "out".into()).unwrap();
        assert!(pipes.write(id, "full".into()).is_err(), "at sndhwm 1");
        pipes.take_io_requests();
        pipes.take_app_wakeup();

        // Two queued is not half of 3: still paused, still full.
        pipes.set_hwms(1, 3);
        assert!(pipes.take_io_requests().is_empty());
        assert!(!pipes.take_app_wakeup());

        pipes.set_hwms(2, 4);
        assert_eq!(pipes.take_io_requests(), vec![IoRequest::ResumeRead(id)]);
        assert!(pipes.take_app_wakeup(), "a blocked sender has room now");
        assert!(pipes.write(id, "room".into()).is_ok());

        // Lowered: nothing queued is dropped; the next delivery pauses.
        pipes.set_hwms(1, 1);
        assert_eq!(pipes.get(id).map(Pipe::inbound_len), Some(2));
        assert_eq!(pipes.get(id).map(Pipe::outbound_len), Some(2));
        assert!(!pipes.deliver(id, "c".into()));
        assert!(pipes.write(id, "no".into()).is_err());
    }

    #[test]
    fn a_raised_rcvhwm_waits_for_the_byte_limit() {
        let mut pipes = Pipes::new();
        pipes.set_byte_limit(Some(4));
        let id = PipeId(4);
        pipes.insert(id, 0, 1);
        assert!(!pipes.deliver(id, "abcd".into()), "paused by both bounds");
        pipes.take_io_requests();
        pipes.set_hwms(0, 10);
        assert!(
            pipes.take_io_requests().is_empty(),
            "the socket's bytes still hold it"
        );
        pipes.read_next();
        assert_eq!(pipes.take_io_requests(), vec![IoRequest::ResumeRead(id)]);
    }

    #[test]
    fn read_pauses_at_read_ahead_bytes_below_the_hwm() {
        let mut pipes = Pipes::new();
        let id = PipeId(9);
        pipes.insert(id, 1000, 1000);
        let body = vec![0u8; 64 * 1024];
        let fit = READ_AHEAD / body.len();
        for _ in 1..fit {
            assert!(pipes.deliver(id, Message::from(body.clone())));
        }
        assert_eq!(pipes.read_room(id), body.len());
        assert!(
            !pipes.deliver(id, Message::from(body.clone())),
            "{fit} messages of 64 KiB reach READ_AHEAD, far below the HWM"
        );
        assert_eq!(pipes.read_room(id), 0);
        // Resumes at half the bytes, as at half the HWM.
        while pipes.get(id).map_or(0, Pipe::inbound_len) > fit / 2 {
            assert!(pipes.take_io_requests().is_empty());
            pipes.read_next();
        }
        assert_eq!(pipes.take_io_requests(), vec![IoRequest::ResumeRead(id)]);
        assert_eq!(pipes.read_room(id), READ_AHEAD / 2);
    }

    #[test]
    fn read_ahead_applies_with_an_unlimited_hwm() {
        let mut pipes = Pipes::new();
        let id = PipeId(10);
        pipes.insert(id, 0, 0);
        assert!(!pipes.deliver(id, Message::from(vec![0u8; READ_AHEAD])));
        pipes.read_next();
        assert_eq!(pipes.take_io_requests(), vec![IoRequest::ResumeRead(id)]);
        assert_eq!(pipes.read_room(id), READ_AHEAD);
    }

    #[test]
    fn conflate_keeps_the_newest_message_of_each_pipe() {
        let mut pipes = Pipes::new();
        let (a, b) = (PipeId(1), PipeId(2));
        pipes.insert(a, 0, 1);
        pipes.insert(b, 0, 1);
        pipes.set_conflate(true);
        for m in ["a1", "a2", "a3"] {
            assert!(pipes.deliver(a, m.into()), "never pauses");
        }
        pipes.deliver(b, Message::from_frames(["b1", "part"]));
        let got: Vec<_> = std::iter::from_fn(|| pipes.read_next())
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            got,
            [Message::from("a3"), Message::from_frames(["b1", "part"])]
        );
        assert_eq!(pipes.stats.dropped_conflated, 2);
        assert_eq!(pipes.inbound_bytes(), 0);
    }

    #[test]
    fn orphan_keeps_inbound_until_read() {
        let mut pipes = Pipes::new();
        let id = PipeId(3);
        pipes.insert(id, 0, 0);
        pipes.deliver(id, "last words".into());
        assert!(!pipes.orphan(id), "still holds a message");
        assert!(!pipes.can_write(id));
        assert_eq!(pipes.read_next().map(|(p, _)| p), Some(id));
        assert_eq!(pipes.take_dead(), vec![id]);
    }

    #[test]
    fn move_outbound_keeps_order_and_stops_at_the_hwm() {
        let mut pipes = Pipes::new();
        let (dead, live) = (PipeId(1), PipeId(2));
        pipes.insert(dead, 4, 4);
        pipes.insert(live, 3, 3);
        for m in ["a", "b", "c", "d"] {
            assert!(pipes.write(dead, m.into()).is_ok());
        }
        assert!(pipes.write(live, "x".into()).is_ok());
        pipes.take_io_requests();
        pipes.take_app_wakeup();
        assert_eq!(pipes.move_outbound(dead, live), 2);
        assert_eq!(
            pipes.take_io_requests(),
            vec![],
            "live was already signalled"
        );
        assert!(pipes.take_app_wakeup(), "the full pipe has room now");
        let drain = |pipes: &mut Pipes, id| {
            std::iter::from_fn(|| pipes.pop_outbound(id))
                .map(|m| m.first().cloned().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(drain(&mut pipes, live), ["x", "a", "b"]);
        assert_eq!(drain(&mut pipes, dead), ["c", "d"]);
        assert_eq!(pipes.move_outbound(dead, dead), 0);
    }

    #[test]
    fn forced_writes_pass_the_hwm_but_not_an_orphan() {
        let mut pipes = Pipes::new();
        let id = PipeId(1);
        pipes.insert(id, 1, 1);
        assert!(pipes.write(id, "a".into()).is_ok());
        assert_eq!(pipes.write(id, "b".into()), Err(Message::from("b")));
        assert!(pipes.write_forced(id, "b".into()).is_ok());
        assert!(pipes.write_forced(id, "c".into()).is_ok());
        assert_eq!(pipes.take_io_requests(), vec![IoRequest::Flush(id)]);
        assert_eq!(pipes.get(id).map(Pipe::outbound_len), Some(3));
        assert_eq!(pipes.write_forced(PipeId(2), "x".into()).ok(), None);
        pipes.orphan(id);
        assert_eq!(pipes.write_forced(id, "d".into()), Err(Message::from("d")));
    }

    #[test]
    fn retain_outbound_keeps_order_and_resignals_when_emptied() {
        let mut pipes = Pipes::new();
        let id = PipeId(1);
        pipes.insert(id, 2, 2);
        for m in ["a", "x", "b", "x"] {
            assert!(pipes.write_forced(id, m.into()).is_ok());
        }
        pipes.take_io_requests();
        pipes.take_app_wakeup();
        assert_eq!(pipes.retain_outbound(id, |m| m != &Message::from("x")), 2);
        assert!(!pipes.take_app_wakeup(), "still at the HWM");
        assert_eq!(pipes.retain_outbound(id, |m| m != &Message::from("a")), 1);
        assert!(pipes.take_app_wakeup(), "room again");
        assert_eq!(pipes.pop_outbound(id), Some(Message::from("b")));
        assert_eq!(pipes.retain_outbound(id, |_| false), 0);
        assert!(pipes.write(id, "c".into()).is_ok());
        assert_eq!(pipes.take_io_requests(), vec![IoRequest::Flush(id)]);
    }

    #[test]
    fn read_next_is_fair() {
        let mut pipes = Pipes::new();
        let (a, b) = (PipeId(1), PipeId(2));
        pipes.insert(a, 0, 0);
        pipes.insert(b, 0, 0);
        for m in ["a1", "a2", "a3"] {
            pipes.deliver(a, m.into());
        }
        pipes.deliver(b, "b1".into());
        let order: Vec<_> = std::iter::from_fn(|| pipes.read_next())
            .map(|(_, m)| m.first().cloned().unwrap_or_default())
            .collect();
        assert_eq!(order, ["a1", "b1", "a2", "a3"]);
    }
}
