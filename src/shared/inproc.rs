//! The inproc data path: how a message moves between two sockets of one
//! context without a kernel socket, without ZMTP and without the I/O
//! thread.
//!
//! An inproc connection is a [`Link`] between a pipe of each socket.
//! Each socket keeps using its own `Pipes` as it does over TCP: a send
//! queues the message in the sender's pipe (bounded by its `sndhwm`) and
//! raises the pipe's flush notice. For an inproc pipe, the thread that
//! raised the notice acts on it itself ([`SocketShared::route_inproc`]):
//! it moves the queued messages, whole and without copying, into the
//! peer's pipe (bounded by the peer's `rcvhwm`), then notifies the peer's
//! waiters, which costs one load when nobody waits. When the receiver
//! is full, the rest waits in the sender's pipe; the receiver's pipe is
//! then paused, and the `recv` that drains it to half its HWM raises the
//! resume notice, on which the receiving thread pulls the rest the same
//! way. So a pipe holds `sndhwm + rcvhwm` messages, as in libzmq (the
//! receiver's side also stops at `READ_AHEAD` of queued bodies, as it
//! does over TCP).
//!
//! One transfer at a time per direction: each direction has a mutex
//! ([`Dir`]), held while moving. A transfer locks one socket core at a
//! time, never two, and nobody takes a direction's mutex while holding
//! a core: the order is direction, then core.
//!
//! The I/O thread creates and destroys links (`io::inproc`), as it does
//! connections; it marks a direction closed under its mutex before it
//! empties the pipes, so that a thread that found the link just before
//! moves nothing after.

use super::SocketShared;
use crate::id_map::IdMap;
use crate::message::Message;
use crate::pattern::{IoRequest, Pipe, PipeId};
use crate::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// Messages moved per holding of a socket's core lock, so that a
/// transfer of thousands does not keep the other side's threads out.
pub(crate) const INPROC_BATCH: usize = 256;

/// One direction of a link, as the transfer loop sees its two ends.
pub(crate) trait Ends {
    /// What moves.
    type Msg;
    /// The receiver's room now: how many messages it takes before its
    /// HWM; 0 when it is paused (it asks again as it drains), `None`
    /// when it is gone.
    fn room(&mut self) -> Option<usize>;
    /// Takes up to `max` of the sender's queued messages into `batch`.
    /// Once the sender's queue is empty, its next write must raise a new
    /// flush notice.
    fn take(&mut self, max: usize, batch: &mut Vec<Self::Msg>);
    /// Delivers every message of `batch` to the receiver and wakes its
    /// waiters; returns its room after, as [`Ends::room`].
    fn give(&mut self, batch: &mut Vec<Self::Msg>) -> Option<usize>;
}

/// The state of one direction of a link, under its mutex.
#[derive(Debug)]
pub(crate) struct Dir<M> {
    /// The link is gone: nothing moves any more.
    pub(crate) closed: bool,
    /// The receiver's room as of the last delivery. It only grows while
    /// we are not looking (only this direction delivers to that pipe,
    /// and its reader only takes), so it is safe to use without asking.
    room: usize,
    /// Reused between transfers, so that moving allocates nothing.
    batch: Vec<M>,
}

impl<M> Dir<M> {
    pub(crate) fn new() -> Dir<M> {
        Dir {
            closed: false,
            room: 0,
            batch: Vec::new(),
        }
    }
}

/// Moves what the sender has queued into the receiver, until the sender
/// is empty or the receiver full. Ends in one of two states, each with
/// someone responsible for what is left: the sender's queue is empty
/// (its next write raises a notice), or the receiver is paused (its
/// reader raises one when it has drained to half).
///
/// Returns how many messages it moved.
pub(crate) fn transfer<E: Ends>(dir: &Mutex<Dir<E::Msg>>, ends: &mut E) -> usize {
    let mut guard = dir.lock();
    let d = &mut *guard;
    let mut moved = 0;
    if d.closed {
        return moved;
    }
    loop {
        if d.room == 0 {
            match ends.room() {
                Some(r) if r > 0 => d.room = r,
                _ => return moved,
            }
        }
        let want = d.room.min(INPROC_BATCH);
        ends.take(want, &mut d.batch);
        let got = d.batch.len();
        if got == 0 {
            return moved;
        }
        moved += got;
        d.room = ends.give(&mut d.batch).unwrap_or(0);
        d.batch.clear();
        if got < want || d.room == 0 {
            return moved;
        }
    }
}

/// One end of a link: a socket and its pipe.
#[derive(Debug)]
pub(crate) struct End {
    pub(crate) socket: Weak<SocketShared>,
    pub(crate) pipe: PipeId,
}

/// An inproc connection: two ends and a direction each way.
/// `dirs[i]` carries what `ends[i]` sends.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) ends: [End; 2],
    pub(crate) dirs: [Mutex<Dir<Message>>; 2],
}

/// Pipe notices a transfer caused, each with its socket.
pub(crate) type Notices = Vec<(Arc<SocketShared>, IoRequest)>;

impl Link {
    pub(crate) fn new(a: End, b: End) -> Link {
        Link {
            ends: [a, b],
            dirs: [Mutex::new(Dir::new()), Mutex::new(Dir::new())],
        }
    }

    /// Which end this pipe is.
    fn side(&self, pipe: PipeId) -> usize {
        usize::from(self.ends[1].pipe == pipe)
    }

    /// Moves what end `from` has queued to the other end. The pipe
    /// notices this causes are added to `out`.
    pub(crate) fn transfer(&self, from: usize, out: &mut Notices) -> usize {
        let to = 1 - from;
        let (Some(src), Some(dst)) = (
            self.ends[from].socket.upgrade(),
            self.ends[to].socket.upgrade(),
        ) else {
            return 0;
        };
        let mut way = Way {
            src: &src,
            src_pipe: self.ends[from].pipe,
            dst: &dst,
            dst_pipe: self.ends[to].pipe,
            out,
        };
        transfer(&self.dirs[from], &mut way)
    }
}

/// The real ends of one direction: two sockets' pipes.
struct Way<'a> {
    src: &'a Arc<SocketShared>,
    src_pipe: PipeId,
    dst: &'a Arc<SocketShared>,
    dst_pipe: PipeId,
    out: &'a mut Notices,
}

/// How many more messages a receiving pipe takes now. Its HWM is read
/// under the receiver's lock at each transfer, so that a changed `rcvhwm`
/// applies to the link at once.
fn room_of(p: &Pipe) -> usize {
    match p.rcvhwm() {
        0 => INPROC_BATCH,
        hwm => hwm.saturating_sub(p.inbound_len()),
    }
}

/// Collects a socket's notices after a change, and wakes its waiters.
fn settled(out: &mut Notices, s: &Arc<SocketShared>, reqs: Vec<IoRequest>, wake: bool) {
    out.extend(reqs.into_iter().map(|r| (s.clone(), r)));
    if wake {
        s.wake();
    }
}

impl Ends for Way<'_> {
    type Msg = Message;

    fn room(&mut self) -> Option<usize> {
        let core = self.dst.core.lock();
        let room = room_of(core.pipes.get(self.dst_pipe)?);
        // Paused at `READ_AHEAD` bytes, as a TCP pipe would be: the rest
        // waits in the sender's pipe until the reader resumes.
        if core.pipes.read_room(self.dst_pipe) == 0 {
            return Some(0);
        }
        Some(room)
    }

    fn take(&mut self, max: usize, batch: &mut Vec<Message>) {
        let mut core = self.src.core.lock();
        let pipes = &mut core.pipes;
        while batch.len() < max {
            match pipes.pop_outbound(self.src_pipe) {
                Some(m) => batch.push(m),
                None => break,
            }
        }
        if batch.len() == max && !pipes.output_pending(self.src_pipe) {
            // Empty now: finding it so re-arms the flush notice.
            let _ = pipes.pop_outbound(self.src_pipe);
        }
        let (reqs, wake) = core.settle();
        drop(core);
        settled(self.out, self.src, reqs, wake);
    }

    fn give(&mut self, batch: &mut Vec<Message>) -> Option<usize> {
        let mut core = self.dst.core.lock();
        let mut open = true;
        for m in batch.drain(..) {
            open &= core.pipes.deliver(self.dst_pipe, m);
        }
        let room = core
            .pipes
            .get(self.dst_pipe)
            .map(|p| if open { room_of(p) } else { 0 });
        let (reqs, wake) = core.settle();
        drop(core);
        settled(self.out, self.dst, reqs, wake);
        room
    }
}

/// A socket's inproc links, by its pipe. The I/O thread inserts and
/// removes; threads acting on a pipe notice look up.
#[derive(Debug, Default)]
pub(crate) struct Links {
    map: parking_lot::Mutex<IdMap<PipeId, Arc<Link>>>,
    /// How many; read without the lock, so that a socket without inproc
    /// links pays one load per notice.
    count: AtomicUsize,
}

impl Links {
    pub(crate) fn insert(&self, pipe: PipeId, link: Arc<Link>) {
        let mut map = self.map.lock();
        map.insert(pipe, link);
        self.count.store(map.len(), Ordering::Release);
    }

    pub(crate) fn remove(&self, pipe: PipeId) -> Option<Arc<Link>> {
        let mut map = self.map.lock();
        let link = map.remove(&pipe);
        self.count.store(map.len(), Ordering::Release);
        link
    }

    pub(crate) fn get(&self, pipe: PipeId) -> Option<Arc<Link>> {
        if self.is_empty() {
            return None;
        }
        self.map.lock().get(&pipe).cloned()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }
}

impl SocketShared {
    /// Acts on the notices for this socket's inproc pipes on the calling
    /// thread (see the module docs) and returns the others, for the I/O
    /// thread. The caller must hold no socket's core lock.
    pub(crate) fn route_inproc(&self, reqs: Vec<IoRequest>) -> Vec<IoRequest> {
        if reqs.is_empty() || self.inproc.is_empty() {
            return reqs;
        }
        let mut rest = Vec::new();
        let mut more = Vec::new();
        for r in reqs {
            self.route_one(r, &mut rest, &mut more);
        }
        // Notices the transfers caused, on either socket.
        while let Some((socket, r)) = more.pop() {
            socket.route_one(r, &mut rest, &mut more);
        }
        rest
    }

    /// Before a receiver sleeps: moves what its inproc peers have queued
    /// for it, waiting for a transfer in progress to end rather than
    /// sleeping until its notification. The caller must hold no core
    /// lock, and must look again (under its lock) whatever this finds.
    /// Returns the notices for the I/O thread this caused.
    pub(crate) fn pull_inproc(&self) -> Vec<IoRequest> {
        let mut more = Notices::new();
        {
            // Lock order: this map, then a direction, then one core.
            let map = self.inproc.map.lock();
            for (pipe, link) in map.iter() {
                let me = link.side(*pipe);
                link.transfer(1 - me, &mut more);
            }
        }
        let mut rest = Vec::new();
        while let Some((socket, r)) = more.pop() {
            socket.route_one(r, &mut rest, &mut more);
        }
        rest
    }

    fn route_one(&self, r: IoRequest, rest: &mut Vec<IoRequest>, more: &mut Notices) {
        let (pipe, sending) = match &r {
            IoRequest::Flush(p) => (*p, true),
            IoRequest::ResumeRead(p) => (*p, false),
            IoRequest::Disconnect(..) => return rest.push(r),
        };
        let Some(link) = self.inproc.get(pipe) else {
            return rest.push(r);
        };
        let me = link.side(pipe);
        // A flush sends from this end; a resume pulls from the other.
        link.transfer(if sending { me } else { 1 - me }, more);
    }
}
