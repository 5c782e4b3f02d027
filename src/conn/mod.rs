//! The connection a borrower may touch: one stream ([`Stream`]: TCP or
//! Unix) with its ZMTP
//! session and buffers ([`EngineIo`], behind [`EngineShared::io`]), and
//! who is responsible for its incoming bytes ([`owner::ReadOwner`]).
//!
//! The I/O thread owns every connection's lifecycle (`io::engine`):
//! it creates, registers and closes them, runs handshakes and owns their
//! timers. Application threads may borrow a ready connection with
//! `try_lock` to write or read it on the fast path (`crate::wait`). What
//! either may do with it is here, and nothing else: no registration, no
//! timers, no closing.
//!
//! Reading: bytes go straight into `read_buf` (no intermediate copy); the
//! session splits frames off it, so large bodies are zero-copy slices. At
//! the pipe's receive HWM, or at [`READ_AHEAD`] queued bytes, reading
//! pauses (TCP then pushes back on the peer) until the application drains
//! below the low-water mark.
//!
//! Writing: messages move from the pipe into the session's output in
//! batches of up to [`WRITE_BATCH`] bytes, one `write` per batch.

pub(crate) mod budget;
pub(crate) mod owner;
pub(crate) mod stream;

use crate::error::ProtocolError;
use crate::pattern::pipe::READ_AHEAD;
use crate::pattern::{PipeId, Pipes};
use crate::sync::{fence, AtomicBool, Ordering};
use crate::zmtp::{Session, SessionEvent};
use budget::{InboundBudget, Share};
use bytes::{BufMut, BytesMut};
use mio::Token;
use owner::ReadOwner;
use parking_lot::Mutex;
use std::io::{self, IoSlice, Write};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;
pub(crate) use stream::Stream;

/// The largest read. Reads start at [`MIN_READ`] and double while they
/// fill the buffer, so a bulk transfer reads 256 KiB at a time while an idle
/// or chatty connection never holds more than a few hundred bytes. Large
/// enough that a 64 KiB message rarely straddles two buffers (a straddling
/// message is copied once when the buffer grows).
const MAX_READ: usize = 256 * 1024;
/// The first read size: enough for a greeting, READY and a small message.
const MIN_READ: usize = 512;
/// Output gathered from the pipe before each write. Each connection's
/// output buffer grows to about this, so a publisher holds it once per
/// subscriber: at 256 KiB, 32 subscribers of 1 KiB messages took 24 MiB
/// (libzmq 10). 64 KiB of 64-byte messages is still a thousand messages
/// per `write`, and no row of the benchmark moved.
pub(crate) const WRITE_BATCH: usize = 64 * 1024;
/// Frame bodies this large are written from the message's own buffer
/// (a vectored write) instead of being copied into the output buffer.
const ZERO_COPY_MIN: usize = 8 * 1024;
/// Chunks per vectored write.
const MAX_IOVECS: usize = 64;
/// A connection whose adaptive read size grew past this carries a stream
/// (see [`EngineIo::is_streaming`]).
pub(crate) const STREAM_READ: usize = 8 * 1024;

/// Why an engine stopped.
#[derive(Debug)]
pub(crate) enum Close {
    /// The peer closed the connection.
    Eof,
    /// An OS error on the connection.
    Io(io::Error),
    /// The peer broke the protocol, or was refused.
    Protocol(ProtocolError),
    /// We closed it (disconnect, close, linger done).
    Local,
}

/// The borrowable part of an engine.
#[derive(Debug)]
pub(crate) struct EngineShared {
    pub(crate) io: Mutex<EngineIo>,
    /// The connection's descriptor, for application threads that wait in
    /// `poll(2)` for it to become readable.
    pub(crate) fd: RawFd,
    /// The I/O thread's token for this engine.
    pub(crate) token: Token,
    /// Who notices the bytes that arrive: the I/O thread or the
    /// application threads armed on it. See [`owner`].
    pub(crate) owner: ReadOwner,
    /// The last write hit `WouldBlock`; the I/O thread waits for the
    /// writable edge. Atomic so that the I/O thread can ignore the
    /// "writable" that epoll reports with every incoming-data edge without
    /// taking `io` (which would get in the way of a parking reader).
    pub(crate) write_blocked: AtomicBool,
    /// The I/O thread's registration includes writability. Always for
    /// TCP; for a Unix stream only while a writer may be blocked, since a
    /// Unix socket reports a writable edge each time its peer reads, which
    /// woke the I/O thread once per round trip. See [`WriteWatch`].
    pub(crate) watch_writes: AtomicBool,
}

/// Who watches a Unix stream's writability, between a writer that was
/// blocked (an application thread borrowing the engine, or the I/O
/// thread) and the I/O thread, which alone registers. Two flags, each
/// written by one side and read by the other after its own write and a
/// SeqCst fence, so that at least one side sees the other:
/// - a writer sets `write_blocked` (in `EngineIo::flush`), then reads
///   `watch_writes`: unwatched, it asks the I/O thread to watch
///   ([`WriteWatch::must_ask`]; the I/O thread then registers for
///   writability, and re-registering reports a socket already writable);
/// - the I/O thread, on a writable edge nobody waited for, clears
///   `watch_writes`, then reads `write_blocked`: set, it keeps watching
///   ([`WriteWatch::stop_watching`]).
///
/// So a blocked writer is always watched or about to be. Modelled in
/// `loom_models.rs`.
#[derive(Debug)]
pub(crate) struct WriteWatch;

impl WriteWatch {
    /// After `flush` reported a full buffer: whether the writer must ask
    /// the I/O thread to watch for writability (`Command::EngineCheck`).
    pub(crate) fn must_ask(watch_writes: &AtomicBool) -> bool {
        // Orders `flush`'s store of `write_blocked` before this load (a
        // store and a load of different atomics: SeqCst accesses alone
        // do not promise it to loom, the fence does to both).
        fence(Ordering::SeqCst);
        !watch_writes.load(Ordering::SeqCst)
    }

    /// The I/O thread, on a writable edge that found no blocked writer:
    /// stops watching unless a writer blocked meanwhile. Returns whether
    /// it stopped (and must re-register without writability).
    pub(crate) fn stop_watching(watch_writes: &AtomicBool, write_blocked: &AtomicBool) -> bool {
        watch_writes.store(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if write_blocked.load(Ordering::SeqCst) {
            watch_writes.store(true, Ordering::SeqCst);
            return false;
        }
        true
    }
}

impl EngineShared {
    /// A connection that has not started its handshake.
    pub(crate) fn new(
        stream: Stream,
        session: Session,
        token: Token,
        budget: Arc<InboundBudget>,
    ) -> EngineShared {
        use std::os::fd::AsRawFd;
        let tcp = matches!(stream, Stream::Tcp(_));
        EngineShared {
            fd: stream.as_raw_fd(),
            io: Mutex::new(EngineIo {
                stream,
                session,
                read_buf: BytesMut::new(),
                read_size: MIN_READ,
                read_room: READ_AHEAD,
                read_paused: false,
                peer_closed: false,
                broken: None,
                armed: None,
                budget,
                share: Share::default(),
                overdrawn: false,
            }),
            token,
            owner: ReadOwner::new(),
            write_blocked: AtomicBool::new(false),
            watch_writes: AtomicBool::new(tcp),
        }
    }
}

/// A connection's stream, protocol state and buffers.
#[derive(Debug)]
pub(crate) struct EngineIo {
    pub(crate) stream: Stream,
    pub(crate) session: Session,
    read_buf: BytesMut,
    /// How much the next read asks for; see [`MAX_READ`].
    read_size: usize,
    /// Bytes the pipe had room for at the last delivery
    /// ([`Pipes::read_room`]); reads ask for no more, so that one read
    /// cannot carry the queue far past `rcvhwm` or [`READ_AHEAD`].
    read_room: usize,
    /// Reading stopped at the pipe's receive HWM.
    pub(crate) read_paused: bool,
    /// The peer's FIN is in (epoll's EPOLLRDHUP, poll's POLLRDHUP). Reads
    /// then go on to EOF: a short read usually means the socket is drained,
    /// but a FIN queued behind the data is seen only by the next read, and
    /// its edge was the one just consumed.
    pub(crate) peer_closed: bool,
    /// A borrower met EOF or an error; the I/O thread must close this
    /// engine.
    pub(crate) broken: Option<Close>,
    /// The deadline the I/O thread's timer is set for. A borrower whose
    /// read moved the session's next deadline earlier (a PING with a TTL)
    /// hands the engine back so that the I/O thread re-arms.
    pub(crate) armed: Option<Instant>,
    /// The socket's inbound budget, and this connection's share of it.
    budget: Arc<InboundBudget>,
    share: Share,
    /// Reading stopped because the budget is overdrawn, until the I/O
    /// thread has dropped the connection that holds the most.
    pub(crate) overdrawn: bool,
}

/// How a read pass reaches the socket's pipes.
pub(crate) trait PipeAccess {
    /// Runs `f` on the pipes.
    fn with_pipes(&mut self, f: impl FnOnce(&mut Pipes));
}

/// A borrowing application thread already holds the socket core.
impl PipeAccess for &mut Pipes {
    fn with_pipes(&mut self, f: impl FnOnce(&mut Pipes)) {
        f(self)
    }
}

/// How a read pass ended.
#[derive(Debug)]
pub(crate) enum ReadStop {
    /// The socket has no more bytes for now.
    Drained,
    /// The pipe reached its receive HWM.
    Paused,
    /// The per-pass read budget ran out; bytes may remain.
    Budget,
    /// The connection failed; see `EngineIo::broken`.
    Broken,
    /// The socket's inbound budget is overdrawn (`EngineIo::overdrawn`):
    /// the I/O thread must drop the connection that holds the most.
    Overdrawn,
}

impl EngineIo {
    /// One `recv` straight into the spare capacity of `read_buf`. Returns
    /// the bytes read and whether the read was short, i.e. the kernel had
    /// no more for now. A short read ends a read pass without the `recv`
    /// that would only say `WouldBlock`: bytes arriving after it raise a
    /// new readable edge (and make `poll` report them).
    pub(crate) fn fill(&mut self) -> io::Result<(usize, bool)> {
        // The frame in progress may always be completed; beyond it, the
        // read stops where the pipe would be full. The room is as of the
        // last delivery: the application has only made more since.
        let want = self
            .read_room
            .max(self.session.bytes_wanted())
            .clamp(MIN_READ, self.read_size);
        self.make_room(want);
        let sock = socket2::SockRef::from(&self.stream);
        let spare = self.read_buf.chunk_mut();
        let offered = spare.len().min(want);
        // SAFETY: `recv` only writes into the slice, never reads it, so
        // handing it uninitialised memory is sound.
        let n = sock.recv(unsafe { spare[..offered].as_uninit_slice_mut() })?;
        // SAFETY: the kernel initialised the first `n` bytes of the spare
        // capacity, and `n` is at most its length.
        unsafe { self.read_buf.advance_mut(n) };
        if n == offered {
            self.read_size = (self.read_size * 2).min(MAX_READ);
        } else if n < self.read_size / 8 {
            self.read_size = (self.read_size / 2).max(MIN_READ);
        }
        Ok((n, n < offered))
    }

    /// Makes at least half of `want` spare in the read buffer. A buffer
    /// whose every message has been taken is reused; otherwise the
    /// partial frame moves to a new buffer of exactly its size plus
    /// `want`, rather than one that `reserve` would double.
    fn make_room(&mut self, want: usize) {
        let spare = self.read_buf.capacity() - self.read_buf.len();
        if spare >= want / 2 || self.read_buf.try_reclaim(want) {
            return;
        }
        let len = self.read_buf.len();
        if len <= MAX_READ {
            let mut fresh = BytesMut::with_capacity(len + want);
            fresh.extend_from_slice(&self.read_buf);
            self.read_buf = fresh;
        } else {
            // A frame longer than a read: amortised growth, as a `Vec`.
            self.read_buf.reserve(want);
        }
    }

    /// Runs the session's decoder over what has been read (the I/O
    /// thread's handshake path; `read_ready` does this past it).
    pub(crate) fn decode(&mut self, now: Instant) -> Result<(), ProtocolError> {
        let decoded = self.session.handle_input(&mut self.read_buf, now);
        self.account();
        decoded
    }

    /// Reports what this connection holds for a message still arriving:
    /// the unparsed input and the frames of the message so far. Sets
    /// `overdrawn` when that overdraws the socket's budget.
    fn account(&mut self) -> bool {
        let held =
            (self.read_buf.len() as u64).saturating_add(self.session.partial_message_bytes());
        if self.share.update(&self.budget, held) {
            self.overdrawn = true;
        }
        self.overdrawn
    }

    /// What this connection holds for a message still arriving, as its
    /// socket's budget counts it.
    pub(crate) fn held(&self) -> u64 {
        self.share.reported()
    }

    /// The connection is closed: its share of the budget goes back, and
    /// so does the memory behind it, now rather than when the last thread
    /// that saw the connection lets go of it (a reader busy with other
    /// connections may hold it for a while: under the streaming attack,
    /// closed connections still held twice the budget). Marked broken, so
    /// that such a reader leaves it alone.
    pub(crate) fn retire(&mut self) {
        self.share.release(&self.budget);
        self.session.discard_partial();
        self.read_buf = BytesMut::new();
        if self.broken.is_none() {
            self.broken = Some(Close::Local);
        }
    }

    /// Gives back an empty read buffer, so that an idle connection holds
    /// none.
    pub(crate) fn release_idle_buffer(&mut self) {
        // Not in the middle of a message: its next bytes are coming, and
        // freeing and reallocating the buffer for every read of a large
        // body fragments the heap (under the streaming attack, a fifth of
        // the footprint was free memory that could not be reused).
        let between_messages = self.session.partial_message_bytes() == 0;
        if between_messages && self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
            self.read_buf = BytesMut::new();
        }
    }

    /// Reads and decodes up to `reads` times, delivering whole messages to
    /// `pipe`. For engines past their handshake only: a `Ready` event
    /// cannot occur here.
    pub(crate) fn read_ready(
        &mut self,
        now: Instant,
        pipes: &mut impl PipeAccess,
        pipe: PipeId,
        reads: usize,
    ) -> ReadStop {
        // Events the I/O thread decoded but has not handed over yet (it
        // publishes an engine for borrowing in the middle of its handshake
        // read) come first, to keep the connection's order.
        self.deliver_pending(pipes, pipe, now);
        for _ in 0..reads {
            if self.read_paused {
                return ReadStop::Paused;
            }
            if self.overdrawn {
                return ReadStop::Overdrawn;
            }
            let short = match self.fill() {
                Ok((0, _)) => {
                    self.broken = Some(Close::Eof);
                    return ReadStop::Broken;
                }
                Ok((_, short)) => short,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.release_idle_buffer();
                    return ReadStop::Drained;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.broken = Some(Close::Io(e));
                    return ReadStop::Broken;
                }
            };
            let decoded = self.session.handle_input(&mut self.read_buf, now);
            // Deliver what was complete before any error, as libzmq does.
            self.deliver_pending(pipes, pipe, now);
            if let Err(p) = decoded {
                self.broken = Some(Close::Protocol(p));
                return ReadStop::Broken;
            }
            if self.account() {
                return ReadStop::Overdrawn;
            }
            if short && !self.peer_closed {
                self.release_idle_buffer();
                return ReadStop::Drained;
            }
        }
        ReadStop::Budget
    }

    /// Hands every message the session has decoded to the pipe. Past the
    /// handshake no other event can be queued.
    pub(crate) fn deliver_pending(
        &mut self,
        pipes: &mut impl PipeAccess,
        pipe: PipeId,
        now: Instant,
    ) {
        if !self.session.has_events() {
            return;
        }
        pipes.with_pipes(|pipes| {
            while let Some(ev) = self.session.poll_event() {
                if let SessionEvent::Message(msg) = ev {
                    if !pipes.deliver(pipe, msg) {
                        self.pause_reading(now);
                    }
                }
            }
            self.read_room = pipes.read_room(pipe);
        });
    }

    /// Stops reading at the pipe's HWM. The session stops expecting bytes
    /// too: a peer we are not reading cannot prove it is alive, and must
    /// not be dropped as a heartbeat timeout for our back-pressure.
    pub(crate) fn pause_reading(&mut self, now: Instant) {
        self.read_paused = true;
        self.session.set_input_paused(true, now);
    }

    /// Reading again after [`pause_reading`](Self::pause_reading): the
    /// pipe asks for it only once its queue is at most half of
    /// [`READ_AHEAD`], so at least that much is room.
    pub(crate) fn resume_reading(&mut self, now: Instant) {
        self.read_paused = false;
        self.read_room = self.read_room.max(READ_AHEAD / 2);
        self.session.set_input_paused(false, now);
    }

    /// Whether the session's next deadline is earlier than the I/O
    /// thread's timer.
    pub(crate) fn deadline_moved_earlier(&self) -> bool {
        match (self.session.poll_timeout(), self.armed) {
            (Some(want), Some(armed)) => want < armed,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Writes the session's output until it is empty (`Ok(true)`) or the
    /// kernel buffer is full (`Ok(false)`, and `blocked` set).
    pub(crate) fn flush(&mut self, blocked: &AtomicBool) -> io::Result<bool> {
        while self.session.has_output() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut k = 0;
            for (slot, chunk) in slices.iter_mut().zip(self.session.output_chunks()) {
                *slot = IoSlice::new(chunk);
                k += 1;
            }
            let written = if k == 1 {
                self.stream.write(self.session.output())
            } else {
                self.stream.write_vectored(&slices[..k])
            };
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.session.consume_output(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    blocked.store(true, Ordering::SeqCst);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Whether recent reads filled large buffers: a stream rather than a
    /// request-reply rhythm. A stream is read by the I/O thread while the
    /// application consumes, in parallel; application threads neither
    /// read it themselves nor take it over, since doing so serialises
    /// reading and consuming on one thread (a 64 KiB stream lost a third
    /// of its rate that way).
    pub(crate) fn is_streaming(&self) -> bool {
        self.read_size > STREAM_READ
    }

    /// Moves messages from the pipe into the session's output, up to one
    /// batch. Returns how many it moved.
    pub(crate) fn refill(&mut self, pipes: &mut Pipes, pipe: PipeId) -> usize {
        let mut moved = 0;
        while self.session.output_len() < WRITE_BATCH {
            match pipes.pop_outbound(pipe) {
                Some(msg) => {
                    self.session.send_message_zero_copy(&msg, ZERO_COPY_MIN);
                    moved += 1;
                }
                None => break,
            }
        }
        moved
    }
}
