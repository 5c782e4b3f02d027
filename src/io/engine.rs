//! Engines: one per TCP connection. An engine moves bytes between its
//! socket and a `zmtp::Session`, and whole messages between the session and
//! its pipe.
//!
//! Reading: bytes go straight into `read_buf` (no intermediate copy); the
//! session splits frames off it, so large bodies are zero-copy slices. All
//! messages decoded from one read are delivered under one lock. At the
//! pipe's receive HWM the engine stops reading (TCP then pushes back on the
//! peer) until the application drains below the low-water mark.
//!
//! Writing: the engine drains its pipe into the session's output buffer in
//! batches of up to [`WRITE_BATCH`] bytes, one `write` per batch, and
//! waits for writability when the kernel buffer is full.
//!
//! Borrowing: the stream, session and buffers sit in [`EngineIo`] behind
//! [`EngineShared::io`], so that an application thread may borrow a ready
//! engine with `try_lock` to write or read on the fast path (see
//! `io/direct.rs`). The I/O thread alone creates, registers and closes
//! engines, runs handshakes and owns their timers. Lock order: `io` before
//! the socket's core; the reverse order is only ever a `try_lock`.

use super::timers::TimerKey;
use super::{IoThread, Timer};
use crate::error::ProtocolError;
use crate::monitor::EventKind;
use crate::options::Options;
use crate::pattern::{PipeId, Pipes};
use crate::socket::SocketShared;
use crate::zmtp::{Session, SessionConfig, SessionEvent};
use bytes::{BufMut, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Token};
use parking_lot::Mutex;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest read. Reads start at [`MIN_READ`] and double while they
/// fill the buffer, so a bulk transfer reads 256 KiB at a time while an idle
/// or chatty connection never holds more than a few hundred bytes. Large
/// enough that a 64 KiB message rarely straddles two buffers (a straddling
/// message is copied once when the buffer grows).
const MAX_READ: usize = 256 * 1024;
/// The first read size: enough for a greeting, READY and a small message.
const MIN_READ: usize = 512;
/// Reads per wake-up before yielding to other connections.
const READS_PER_TURN: usize = 16;
/// Output gathered from the pipe before each write.
pub(crate) const WRITE_BATCH: usize = 256 * 1024;
/// Frame bodies this large are written from the message's own buffer
/// (a vectored write) instead of being copied into the output buffer.
const ZERO_COPY_MIN: usize = 8 * 1024;
/// Chunks per vectored write.
const MAX_IOVECS: usize = 64;
/// How often the I/O thread reviews the connections whose reading it
/// handed to application threads (see [`IoThread::hand_off_reads`]); one
/// that no thread armed for a whole interval is taken back, so its bytes
/// wait at most two intervals. Short against any heartbeat interval.
const HANDOFF_REVIEW: Duration = Duration::from_millis(10);
/// A connection whose adaptive read size grew past this carries a stream
/// (see [`EngineIo::is_streaming`]).
const STREAM_READ: usize = 8 * 1024;

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
    /// Application threads parked in `poll(2)` on this connection. While
    /// there are any, the I/O thread leaves reading to them: two threads
    /// waking and fighting over the same bytes cost a round trip more than
    /// the read itself.
    pub(crate) parked_readers: AtomicUsize,
    /// The I/O thread skipped a readable edge because a reader was parked.
    /// The reader reads before it leaves, so no bytes are stranded (see
    /// `io::direct::ParkSet` for the ordering argument).
    pub(crate) skipped: AtomicBool,
    /// How many times application threads have armed this connection for
    /// a wait; tells `IoThread::review_handoffs` whether they still come
    /// back.
    pub(crate) parks: AtomicU64,
    /// The last write hit `WouldBlock`; the I/O thread waits for the
    /// writable edge. Atomic so that the I/O thread can ignore the
    /// "writable" that epoll reports with every incoming-data edge without
    /// taking `io` (which would get in the way of a parking reader).
    pub(crate) write_blocked: AtomicBool,
}

/// A connection's stream, protocol state and buffers.
#[derive(Debug)]
pub(crate) struct EngineIo {
    pub(crate) stream: TcpStream,
    pub(crate) session: Session,
    read_buf: BytesMut,
    /// How much the next read asks for; see [`MAX_READ`].
    read_size: usize,
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
    /// When a sending thread last wrote directly; see `io::direct`.
    pub(crate) last_direct_write: Option<Instant>,
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

/// The I/O thread locks the socket core only to deliver, never across a
/// read syscall or the decoding, so that a `recv` in the application is
/// not held up by the kernel copying the next 256 KiB. Blocked threads are
/// woken after each delivery; pipe notices are kept for the I/O thread.
pub(crate) struct LockPerDelivery<'a> {
    pub(crate) socket: &'a SocketShared,
    pub(crate) io_requests: Vec<crate::pattern::IoRequest>,
}

impl PipeAccess for LockPerDelivery<'_> {
    fn with_pipes(&mut self, f: impl FnOnce(&mut Pipes)) {
        let mut core = self.socket.core.lock();
        f(&mut core.pipes);
        let (reqs, wake) = core.settle();
        drop(core);
        self.io_requests.extend(reqs);
        if wake {
            self.socket.wake();
        }
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
}

impl EngineIo {
    /// One `recv` straight into the spare capacity of `read_buf`. Returns
    /// the bytes read and whether the read was short, i.e. the kernel had
    /// no more for now. A short read ends a read pass without the `recv`
    /// that would only say `WouldBlock`: bytes arriving after it raise a
    /// new readable edge (and make `poll` report them).
    fn fill(&mut self) -> io::Result<(usize, bool)> {
        if self.read_buf.capacity() - self.read_buf.len() < self.read_size / 2 {
            self.read_buf.reserve(self.read_size);
        }
        let sock = socket2::SockRef::from(&self.stream);
        let spare = self.read_buf.chunk_mut();
        let offered = spare.len();
        // SAFETY: `recv` only writes into the slice, never reads it, so
        // handing it uninitialised memory is sound.
        let n = sock.recv(unsafe { spare.as_uninit_slice_mut() })?;
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

    /// Gives back an empty read buffer, so that an idle connection holds
    /// none.
    fn release_idle_buffer(&mut self) {
        if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
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
        });
    }

    /// Stops reading at the pipe's HWM. The session stops expecting bytes
    /// too: a peer we are not reading cannot prove it is alive, and must
    /// not be dropped as a heartbeat timeout for our back-pressure.
    fn pause_reading(&mut self, now: Instant) {
        self.read_paused = true;
        self.session.set_input_paused(true, now);
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

/// Where a connection came from.
#[derive(Debug)]
pub(super) struct Origin {
    /// A connecter's pipe; `None` for accepted connections.
    pub(super) pipe: Option<PipeId>,
    /// The connecter, for connections it made.
    pub(super) connecter: Option<u64>,
    /// The peer's address.
    pub(super) peer: String,
}

/// The I/O thread's record of one connection.
#[derive(Debug)]
pub(super) struct Engine {
    pub(super) shared: Arc<EngineShared>,
    pub(super) socket: Arc<SocketShared>,
    /// The pipe: a connecter's from the start, an accepted connection's
    /// once its handshake has succeeded.
    pub(super) pipe: Option<PipeId>,
    /// The connecter that made this connection, if any.
    pub(super) connecter: Option<u64>,
    /// The peer's address, for events.
    pub(super) peer: String,
    sndhwm: usize,
    rcvhwm: usize,
    pub(super) ready: bool,
    timer: Option<(Instant, TimerKey)>,
    /// Registered without READABLE: application threads read it.
    reads_handed_off: bool,
    /// `EngineShared::parks` at the last review of the hand-off.
    parks_seen: u64,
}

impl Engine {
    pub(super) fn new(
        stream: TcpStream,
        socket: Arc<SocketShared>,
        options: &Options,
        origin: Origin,
        now: Instant,
        token: Token,
    ) -> io::Result<Engine> {
        let Origin {
            pipe,
            connecter,
            peer,
        } = origin;
        stream.set_nodelay(true)?;
        set_keepalive(&stream, options)?;
        let config = SessionConfig {
            socket_type: socket.ty,
            routing_id: options.routing_id.clone(),
            handshake_ivl: (!options.handshake_ivl.is_zero()).then_some(options.handshake_ivl),
            maxmsgsize: options.maxmsgsize,
            heartbeat_ivl: options.heartbeat_ivl,
            heartbeat_timeout: options.heartbeat_timeout,
            heartbeat_ttl: options.heartbeat_ttl,
        };
        let fd = stream.as_raw_fd();
        Ok(Engine {
            shared: Arc::new(EngineShared {
                io: Mutex::new(EngineIo {
                    stream,
                    session: Session::new(config, now),
                    read_buf: BytesMut::new(),
                    read_size: MIN_READ,
                    read_paused: false,
                    peer_closed: false,
                    broken: None,
                    armed: None,
                    last_direct_write: None,
                }),
                fd,
                token,
                parked_readers: AtomicUsize::new(0),
                skipped: AtomicBool::new(false),
                parks: AtomicU64::new(0),
                write_blocked: AtomicBool::new(false),
            }),
            socket,
            pipe,
            connecter,
            peer,
            sndhwm: options.sndhwm,
            rcvhwm: options.rcvhwm,
            ready: false,
            timer: None,
            reads_handed_off: false,
            parks_seen: 0,
        })
    }

    /// Whether this engine has nothing left to write, so lingering is over
    /// for it.
    fn drained(&self) -> bool {
        let io = self.shared.io.lock();
        !io.session.has_output()
            && self
                .pipe
                .is_none_or(|p| !self.socket.core.lock().pipes.output_pending(p))
    }
}

/// Applies the `tcp_keepalive*` options as libzmq does: only what was set.
fn set_keepalive(stream: &TcpStream, o: &Options) -> io::Result<()> {
    let sock = socket2::SockRef::from(stream);
    if let Some(on) = o.tcp_keepalive {
        sock.set_keepalive(on)?;
    }
    if o.tcp_keepalive == Some(true) {
        let mut ka = socket2::TcpKeepalive::new();
        if let Some(idle) = o.tcp_keepalive_idle {
            ka = ka.with_time(idle);
        }
        if let Some(intvl) = o.tcp_keepalive_intvl {
            ka = ka.with_interval(intvl);
        }
        if let Some(cnt) = o.tcp_keepalive_cnt {
            ka = ka.with_retries(cnt);
        }
        sock.set_tcp_keepalive(&ka)?;
    }
    Ok(())
}

impl IoThread {
    /// Registers a new engine and sends its greeting. `engine` must have
    /// been made with `token`.
    pub(super) fn add_engine(&mut self, engine: Engine) -> Option<Token> {
        let token = engine.shared.token;
        let registered = {
            let mut io = engine.shared.io.lock();
            self.poll.registry().register(
                &mut io.stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )
        };
        if let Err(e) = registered {
            log::debug!("cannot register connection to {}: {e}", engine.peer);
            return None;
        }
        self.engines.insert(token, Box::new(engine));
        self.engine_write(token);
        self.engine_rearm(token);
        self.engines.contains_key(&token).then_some(token)
    }

    pub(super) fn engine_read(&mut self, token: Token) {
        let Some(e) = self.engines.get(&token) else {
            return;
        };
        if e.ready {
            return self.engine_read_ready(token);
        }
        // Handshake: the session may emit `Ready`, which needs the I/O
        // thread, so read one chunk at a time.
        for _ in 0..READS_PER_TURN {
            let Some(e) = self.engines.get(&token) else {
                return;
            };
            if e.ready {
                return self.engine_read_ready(token);
            }
            let shared = e.shared.clone();
            let mut io = shared.io.lock();
            match io.fill() {
                Ok((0, _)) => {
                    drop(io);
                    return self.close_engine(token, Close::Eof);
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    io.release_idle_buffer();
                    drop(io);
                    self.engine_after_io(token);
                    return;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    drop(io);
                    return self.close_engine(token, Close::Io(err));
                }
            }
            let EngineIo {
                session, read_buf, ..
            } = &mut *io;
            let decoded = session.handle_input(read_buf, self.now);
            drop(io);
            // Events completed before an error (READY, messages) still
            // count: the peer did finish its handshake, and its messages
            // were whole.
            if !self.engine_events(token) {
                return;
            }
            if let Err(p) = decoded {
                if let Some(e) = self.engines.get(&token) {
                    // The session may have queued an ERROR for the peer.
                    let _ = e.shared.io.lock().flush(&e.shared.write_blocked);
                }
                return self.close_engine(token, Close::Protocol(p));
            }
        }
        self.deferred.push(token);
        self.engine_after_io(token);
    }

    /// Reads a connection past its handshake: straight into the pipe.
    fn engine_read_ready(&mut self, token: Token) {
        let Some(e) = self.engines.get(&token) else {
            return;
        };
        let Some(pipe) = e.pipe else {
            return;
        };
        let (shared, socket) = (e.shared.clone(), e.socket.clone());
        if shared.parked_readers.load(Ordering::SeqCst) > 0 {
            shared.skipped.store(true, Ordering::SeqCst);
            if shared.parked_readers.load(Ordering::SeqCst) > 0 {
                self.hand_off_reads(token);
                return;
            }
        }
        let mut io = shared.io.lock();
        let mut access = LockPerDelivery {
            socket: &socket,
            io_requests: Vec::new(),
        };
        let stop = io.read_ready(self.now, &mut access, pipe, READS_PER_TURN);
        let reqs = access.io_requests;
        let broken = io.broken.take();
        drop(io);
        self.after_change(&socket, reqs, false);
        match stop {
            ReadStop::Broken => {
                if let Some(why) = broken {
                    self.close_engine(token, why);
                }
            }
            ReadStop::Budget => {
                self.deferred.push(token);
                self.engine_after_io(token);
            }
            ReadStop::Drained | ReadStop::Paused => self.engine_after_io(token),
        }
    }

    /// An application thread waits on this connection and reads its bytes
    /// itself: stop waking up for them.
    ///
    /// Every readable edge of an engine whose reader is parked used to
    /// wake this thread only to record `skipped`; with 32 clients on one
    /// polling thread those wake-ups were a tenth of the client's CPU.
    /// Instead the engine is re-registered for writability alone until a
    /// review ([`IoThread::review_handoffs`], every [`HANDOFF_REVIEW`])
    /// finds that no thread armed it during the interval before: at most
    /// two intervals after the last arm. Meanwhile its bytes wait in the
    /// kernel for the application thread, which comes back to them on its
    /// next `recv` or `poll` (a reader that stops early hands the engine
    /// back with `EngineCheck`). So heartbeats, EOF and the receive-HWM
    /// prefetch are served late by at most those two intervals.
    fn hand_off_reads(&mut self, token: Token) {
        let Some(e) = self.engines.get_mut(&token) else {
            return;
        };
        if e.reads_handed_off {
            return;
        }
        // A reader holds it right now; the next edge tries again.
        let Some(mut io) = e.shared.io.try_lock() else {
            return;
        };
        if io.is_streaming() {
            return;
        }
        let rereg = self
            .poll
            .registry()
            .reregister(&mut io.stream, token, Interest::WRITABLE);
        drop(io);
        if rereg.is_err() {
            return;
        }
        e.reads_handed_off = true;
        e.parks_seen = e.shared.parks.load(Ordering::Relaxed);
        self.handed_off.push(token);
        if self.handoff_timer.is_none() {
            let at = self.now + HANDOFF_REVIEW;
            self.handoff_timer = Some(self.timers.insert(at, Timer::Handoff));
        }
    }

    /// Takes reading back from application threads for every handed-off
    /// engine that no thread has armed since the last review, or that has
    /// become a stream. When nothing is handed off, the review stops, so
    /// an idle context has no timer ticking. Re-registering
    /// reports a connection that is already readable, so waiting bytes are
    /// read on the next turn.
    pub(super) fn review_handoffs(&mut self) {
        self.handoff_timer = None;
        let mut still = Vec::new();
        for token in std::mem::take(&mut self.handed_off) {
            let Some(e) = self.engines.get_mut(&token) else {
                continue;
            };
            if !e.reads_handed_off {
                continue;
            }
            // Only arms count: a reader parked through the whole interval
            // is idle, and keeping its engine would keep this review
            // ticking on a quiet connection. Taken back, the engine is
            // handed off again by the next edge if the reader is still
            // there.
            let parks = e.shared.parks.load(Ordering::Relaxed);
            let active = std::mem::replace(&mut e.parks_seen, parks) != parks;
            let mut io = e.shared.io.lock();
            if active && !io.is_streaming() {
                drop(io);
                still.push(token);
                continue;
            }
            let rereg = self.poll.registry().reregister(
                &mut io.stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            );
            drop(io);
            match rereg {
                Ok(()) => e.reads_handed_off = false,
                Err(_) => still.push(token),
            }
        }
        if !still.is_empty() {
            let at = self.now + HANDOFF_REVIEW;
            self.handoff_timer = Some(self.timers.insert(at, Timer::Handoff));
        }
        self.handed_off = still;
    }

    /// Flushes what the session wants to say and re-arms its timer.
    fn engine_after_io(&mut self, token: Token) {
        self.engine_write(token);
        self.engine_rearm(token);
    }

    /// Hands the session's events to the socket during and right after the
    /// handshake. Returns false if the engine was closed.
    fn engine_events(&mut self, token: Token) -> bool {
        loop {
            let Some(e) = self.engines.get(&token) else {
                return false;
            };
            let (shared, socket, pipe) = (e.shared.clone(), e.socket.clone(), e.pipe);
            let mut io = shared.io.lock();
            let mut core = None;
            let mut ready = None;
            while let Some(ev) = io.session.poll_event() {
                match ev {
                    SessionEvent::Message(msg) => {
                        let Some(pipe) = pipe else { continue };
                        let c = core.get_or_insert_with(|| socket.core.lock());
                        if !c.pipes.deliver(pipe, msg) {
                            io.pause_reading(self.now);
                        }
                    }
                    SessionEvent::Ready(peer) => {
                        ready = Some(peer);
                        break;
                    }
                }
            }
            if let Some(mut c) = core {
                let (reqs, wake) = c.settle();
                drop(c);
                drop(io);
                self.after_change(&socket, reqs, wake);
            } else {
                drop(io);
            }
            match ready {
                Some(peer) => {
                    if !self.engine_ready(token, peer) {
                        return false;
                    }
                }
                None => return true,
            }
        }
    }

    /// The handshake succeeded: attach the pipe and tell the pattern.
    fn engine_ready(&mut self, token: Token, peer: crate::pattern::PeerInfo) -> bool {
        let Some(e) = self.engines.get_mut(&token) else {
            return false;
        };
        e.ready = true;
        let socket = e.socket.clone();
        let mut core = socket.core.lock();
        let c = &mut *core;
        let pipe = match e.pipe {
            Some(p) => p,
            None => {
                let p = PipeId(socket.ctx.next_id());
                c.pipes.insert(p, e.sndhwm, e.rcvhwm);
                c.pipes.set_endpoint(p, e.peer.clone());
                c.pattern.attach(p, &mut c.pipes);
                e.pipe = Some(p);
                p
            }
        };
        c.pipes.set_peer(pipe, Some(peer));
        let verdict = c.pattern.peer_ready(pipe, &mut c.pipes);
        if verdict.is_ok() {
            // From now on application threads may borrow this engine.
            c.direct.insert(pipe, e.shared.clone());
        }
        let (io, wake) = c.settle();
        drop(core);
        self.after_change(&socket, io, wake);
        match verdict {
            Ok(()) => {
                self.pipe_engine.insert(pipe, token);
                let (peer, connecter) = match self.engines.get(&token) {
                    Some(e) => (e.peer.clone(), e.connecter),
                    None => return false,
                };
                log::debug!("handshake with {peer} succeeded");
                let endpoint = match connecter.and_then(|c| self.connecters.get(&c)) {
                    Some(c) => c.name.clone(),
                    None => peer,
                };
                Self::emit(&socket, &endpoint, EventKind::HandshakeSucceeded);
                if let Some(cid) = connecter {
                    self.connecter_handshake_done(cid);
                }
                // Messages may have queued while we were connecting.
                self.engine_flush(token);
                true
            }
            Err(reason) => {
                self.close_engine(token, Close::Protocol(reason));
                false
            }
        }
    }

    /// A pipe has output, or the engine just became ready.
    pub(super) fn engine_flush(&mut self, token: Token) {
        let blocked = match self.engines.get(&token) {
            Some(e) => e.shared.write_blocked.load(Ordering::SeqCst),
            None => return,
        };
        if !blocked {
            self.engine_write(token);
        }
    }

    pub(super) fn engine_writable(&mut self, token: Token) {
        if let Some(e) = self.engines.get(&token) {
            // epoll reports writability with every readable edge too; only
            // a blocked writer cares.
            if e.shared.write_blocked.swap(false, Ordering::SeqCst) {
                self.engine_write(token);
            }
        }
    }

    /// Writes pending output, refilling it from the pipe, until the pipe is
    /// empty or the kernel buffer is full.
    fn engine_write(&mut self, token: Token) {
        loop {
            let Some(e) = self.engines.get(&token) else {
                return;
            };
            let (shared, socket, pipe, ready) =
                (e.shared.clone(), e.socket.clone(), e.pipe, e.ready);
            let mut io = shared.io.lock();
            if let Some(why) = io.broken.take() {
                drop(io);
                return self.close_engine(token, why);
            }
            match io.flush(&shared.write_blocked) {
                Ok(true) => {}
                Ok(false) => return,
                Err(err) => {
                    drop(io);
                    return self.close_engine(token, Close::Io(err));
                }
            }
            let (Some(pipe), true) = (pipe, ready) else {
                return;
            };
            let mut core = socket.core.lock();
            let moved = io.refill(&mut core.pipes, pipe);
            let (reqs, wake) = core.settle();
            drop(core);
            drop(io);
            self.after_change(&socket, reqs, wake);
            if moved == 0 {
                self.linger_check_engine(token);
                return;
            }
        }
    }

    pub(super) fn engine_resume_read(&mut self, token: Token) {
        let Some(e) = self.engines.get(&token) else {
            return;
        };
        let was_paused = {
            let mut io = e.shared.io.lock();
            let was = io.read_paused;
            if was {
                io.read_paused = false;
                io.session.set_input_paused(false, self.now);
            }
            was
        };
        if was_paused {
            // Every complete message in the buffer was delivered before the
            // pause; what remains is a partial frame, so just read on.
            self.engine_read(token);
        }
    }

    /// epoll reported the peer's FIN on this connection (see
    /// `EngineIo::peer_closed`).
    pub(super) fn engine_read_closed(&mut self, token: Token) {
        if let Some(e) = self.engines.get(&token) {
            e.shared.io.lock().peer_closed = true;
        }
    }

    /// A borrower met a failure or left bytes unread: let the I/O thread
    /// look at the engine.
    pub(super) fn engine_check(&mut self, token: Token) {
        let broken = match self.engines.get(&token) {
            Some(e) => e.shared.io.lock().broken.take(),
            None => return,
        };
        match broken {
            Some(why) => self.close_engine(token, why),
            None => {
                self.engine_read(token);
                self.engine_rearm(token);
            }
        }
    }

    pub(super) fn engine_timer(&mut self, token: Token) {
        let Some(e) = self.engines.get_mut(&token) else {
            return;
        };
        e.timer = None;
        let shared = e.shared.clone();
        let mut io = shared.io.lock();
        if let Err(p) = io.session.handle_timeout(self.now) {
            let _ = io.flush(&shared.write_blocked);
            drop(io);
            return self.close_engine(token, Close::Protocol(p));
        }
        drop(io);
        self.engine_after_io(token);
    }

    /// Keeps the timer queue in step with the session's next deadline.
    fn engine_rearm(&mut self, token: Token) {
        let Some(e) = self.engines.get_mut(&token) else {
            return;
        };
        let want = {
            let mut io = e.shared.io.lock();
            let want = io.session.poll_timeout();
            io.armed = want;
            want
        };
        if e.timer.map(|(at, _)| at) == want {
            return;
        }
        if let Some((_, key)) = e.timer.take() {
            self.timers.cancel(key);
        }
        if let Some(at) = want {
            e.timer = Some((at, self.timers.insert(at, Timer::Engine(token))));
        }
    }

    /// Closes an engine and tells the pipe, the pattern, the monitor and
    /// the connecter.
    pub(super) fn close_engine(&mut self, token: Token, why: Close) {
        let Some(mut e) = self.engines.remove(&token) else {
            return;
        };
        let _ = self
            .poll
            .registry()
            .deregister(&mut e.shared.io.lock().stream);
        if let Some((_, key)) = e.timer.take() {
            self.timers.cancel(key);
        }
        log::debug!("connection to {} closed: {why:?}", e.peer);
        let endpoint = match e.connecter.and_then(|c| self.connecters.get(&c)) {
            Some(c) => c.name.clone(),
            None => e.peer.clone(),
        };
        let handshake_failed = !e.ready && matches!(why, Close::Protocol(_));
        let kind = match why {
            Close::Protocol(reason) if !e.ready => EventKind::HandshakeFailed { reason },
            Close::Protocol(reason) => EventKind::Disconnected {
                reason: Some(reason),
                error: None,
            },
            Close::Io(error) => EventKind::Disconnected {
                reason: None,
                error: Some(error),
            },
            Close::Eof | Close::Local => EventKind::Disconnected {
                reason: None,
                error: None,
            },
        };
        Self::emit(&e.socket, &endpoint, kind);
        let socket = e.socket.clone();
        if let Some(pipe) = e.pipe {
            if self.pipe_engine.get(&pipe) == Some(&token) {
                self.pipe_engine.remove(&pipe);
            }
            let mut io = e.shared.io.lock();
            let mut core = socket.core.lock();
            let c = &mut *core;
            // Whatever the peer sent completely before the end is delivered,
            // whoever read it.
            if e.ready {
                io.deliver_pending(&mut &mut c.pipes, pipe, self.now);
            }
            drop(io);
            if c.direct
                .get(&pipe)
                .is_some_and(|d| Arc::ptr_eq(d, &e.shared))
            {
                c.direct.remove(&pipe);
            }
            if e.connecter.is_some() {
                // A connecter's pipe outlives its connections (libzmq's
                // default): queued messages wait for the next one.
                c.pipes.set_peer(pipe, None);
                if e.ready {
                    c.pattern.peer_lost(pipe, &mut c.pipes);
                }
            } else {
                if e.ready {
                    c.pattern.peer_lost(pipe, &mut c.pipes);
                }
                let dropped = c.pipes.clear_outbound(pipe) as u64;
                c.pipes.stats.dropped_peer_gone += dropped;
                if c.pipes.orphan(pipe) {
                    c.pattern.detach(pipe, &mut c.pipes);
                    c.pipes.remove(pipe);
                }
            }
            let (io, wake) = c.settle();
            drop(core);
            self.after_change(&socket, io, wake);
        }
        if let Some(entry) = self.sockets.get_mut(&socket.id) {
            entry.accepted.remove(&token);
        }
        if let Some(cid) = e.connecter {
            self.connecter_engine_closed(cid, token, e.ready, handshake_failed);
        }
        self.maybe_finish_socket(socket.id);
    }

    /// During linger, closes an engine once it has written everything.
    fn linger_check_engine(&mut self, token: Token) {
        let Some(e) = self.engines.get(&token) else {
            return;
        };
        let closing = self
            .sockets
            .get(&e.socket.id)
            .is_some_and(|s| s.closing.is_some());
        if closing && e.drained() {
            self.close_engine(token, Close::Local);
        }
    }

    /// Used by linger: true when this engine has nothing left to send.
    /// Mid-handshake, only the application's messages count (the greeting
    /// may be dropped), but a connecter's pipe may already hold them: such
    /// an engine must live on to finish the handshake and deliver them,
    /// which `linger_check_engine` closes once done.
    pub(super) fn engine_drained(&self, token: Token) -> bool {
        self.engines.get(&token).is_none_or(|e| {
            if e.ready {
                e.drained()
            } else {
                e.pipe
                    .is_none_or(|p| !e.socket.core.lock().pipes.output_pending(p))
            }
        })
    }
}
