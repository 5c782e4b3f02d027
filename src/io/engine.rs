//! Engines, the I/O thread's side of a connection: creation, handshake,
//! registration, timers, closing, and the policy of handing its reads to
//! application threads. The connection itself (stream, session, buffers),
//! which application threads may borrow, is `crate::conn`.
//!
//! The I/O thread alone creates, registers and closes engines, runs
//! handshakes and owns their timers. Lock order: an engine's `io` before
//! the socket's core; the reverse order is only ever a `try_lock`.

use super::timers::TimerKey;
use super::{IoThread, Timer};
use crate::conn::owner::Edge;
use crate::conn::Stream;
use crate::conn::{Close, EngineShared, PipeAccess, ReadStop, WriteWatch};
use crate::monitor::{EventKind, PeerStatus};
use crate::options::Options;
use crate::pattern::{PipeId, Pipes};
use crate::shared::SocketShared;
use crate::zmtp::mechanism::ZapContext;
use crate::zmtp::{Session, SessionConfig, SessionEvent};
use mio::{Interest, Token};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads per wake-up before yielding to other connections.
const READS_PER_TURN: usize = 16;
/// How often the I/O thread reviews the connections whose reading it
/// handed to application threads (see [`IoThread::hand_off_reads`]); one
/// whose readers did not finish a wait for a whole interval is taken back,
/// so its bytes wait at most two intervals. Short against any heartbeat
/// interval.
const HANDOFF_REVIEW: Duration = Duration::from_millis(10);

/// The I/O thread locks the socket core only to deliver, never across a
/// read syscall or the decoding, so that a `recv` in the application is
/// not held up by the kernel copying the next 256 KiB. Pipe notices are
/// kept for the I/O thread.
///
/// Blocked threads are woken after each delivery on a stream, so that the
/// application consumes while this thread reads ahead. On a connection in
/// a request-reply rhythm the wake waits until the engine is unlocked
/// ([`LockPerDelivery::wake_deferred`]): woken at once, the reader of a
/// reply sent its next request while this thread still held the engine
/// for its last `read`, so that request could not be written on the
/// application's thread and took a hop through this one (two fifths of
/// this thread's time with 32 async REQ clients).
pub(crate) struct LockPerDelivery<'a> {
    pub(crate) socket: &'a SocketShared,
    pub(crate) io_requests: Vec<crate::pattern::IoRequest>,
    /// Hold wakes until [`LockPerDelivery::wake_deferred`].
    pub(crate) defer_wake: bool,
    /// A wake is being held.
    pub(crate) wake_held: bool,
}

impl LockPerDelivery<'_> {
    /// Wakes the socket's waiters if a delivery held its wake back. Call
    /// after unlocking the engine.
    pub(crate) fn wake_deferred(&mut self) {
        if std::mem::take(&mut self.wake_held) {
            self.socket.wake();
        }
    }
}

impl PipeAccess for LockPerDelivery<'_> {
    fn with_pipes(&mut self, f: impl FnOnce(&mut Pipes)) {
        let mut core = self.socket.core.lock();
        f(&mut core.pipes);
        let (reqs, wake) = core.settle();
        drop(core);
        self.io_requests.extend(reqs);
        if wake && self.defer_wake {
            self.wake_held = true;
        } else if wake {
            self.socket.wake();
        }
    }
}

/// Where a connection came from.
#[derive(Debug)]
pub(super) struct Origin {
    /// A connecter's pipe; `None` for accepted connections.
    pub(super) pipe: Option<PipeId>,
    /// The connecter, for connections it made.
    pub(super) connecter: Option<u64>,
    /// The listener, for connections it accepted.
    pub(super) listener: Option<Token>,
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
    /// The listener that accepted this connection, if any.
    pub(super) listener: Option<Token>,
    /// The peer's address, for events.
    pub(super) peer: String,
    pub(super) ready: bool,
    timer: Option<(Instant, TimerKey)>,
    /// Messages the session had written when its socket closed: what it
    /// writes beyond that was delivered while lingering.
    pub(super) written_at_close: u64,
    /// The id of the ZAP request this engine's handshake waits on, when
    /// it went to a handler bound on `inproc://zeromq.zap.01`.
    pub(super) zap_request: Option<u64>,
    /// Registered with the poller at all (a handed-off Unix stream with
    /// no blocked writer needs no event, and mio has no empty interest).
    registered: bool,
    /// A Unix stream: writability is watched only while a writer may be
    /// blocked (`conn::WriteWatch`).
    unix: bool,
}

impl Engine {
    pub(super) fn new(
        stream: Stream,
        socket: Arc<SocketShared>,
        options: &Options,
        origin: Origin,
        now: Instant,
        token: Token,
    ) -> io::Result<Engine> {
        let Origin {
            pipe,
            connecter,
            listener,
            peer,
        } = origin;
        super::transport::configure(&stream, options)?;
        let config = SessionConfig {
            socket_type: socket.ty,
            routing_id: options.routing_id.clone(),
            handshake_ivl: (!options.handshake_ivl.is_zero()).then_some(options.handshake_ivl),
            maxmsgsize: options.maxmsgsize,
            command_limit: options.subscription_limit,
            heartbeat_ivl: options.heartbeat_ivl,
            heartbeat_timeout: options.heartbeat_timeout,
            heartbeat_ttl: options.heartbeat_ttl,
            // Checked by bind/connect, so an error here means options
            // changed under us: refuse the connection rather than fall
            // back to another mechanism.
            mechanism: options
                .mechanism_config()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
            zap: ZapContext {
                handler: socket.ctx.zap_handler(),
                // Without a Rust handler, the I/O thread answers
                // (`io::zap`): the inproc handler if one is bound then.
                external: true,
                domain: options.zap_domain.clone(),
                address: peer.clone(),
                routing_id: options.routing_id.clone(),
            },
        };
        let unix = matches!(stream, Stream::Unix(_));
        Ok(Engine {
            shared: Arc::new(EngineShared::new(
                stream,
                Session::new(config, now),
                token,
                socket.inbound.clone(),
            )),
            socket,
            pipe,
            connecter,
            listener,
            peer,
            ready: false,
            timer: None,
            written_at_close: 0,
            zap_request: None,
            registered: false,
            unix,
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

impl IoThread {
    /// Registers a new engine and sends its greeting. `engine` must have
    /// been made with `token`.
    pub(super) fn add_engine(&mut self, mut engine: Engine) -> Option<Token> {
        let token = engine.shared.token;
        let registered = {
            let shared = engine.shared.clone();
            let mut io = shared.io.lock();
            let write = shared.watch_writes.load(Ordering::SeqCst);
            set_interest(
                self.poll.registry(),
                &mut io.stream,
                token,
                &mut engine.registered,
                true,
                write,
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
            let (shared, socket) = (e.shared.clone(), e.socket.id);
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
            let decoded = io.decode(self.now);
            let overdrawn = io.overdrawn;
            let zap = io.session.poll_zap_request();
            drop(io);
            if let Some(request) = zap {
                self.zap_request(token, request);
                if !self.engines.contains_key(&token) {
                    return;
                }
            }
            if overdrawn {
                // Mid-handshake too: a command frame may announce a huge
                // body when `maxmsgsize` is unset.
                self.enforce_budget(socket);
                if !self.engines.contains_key(&token) {
                    return;
                }
            }
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
        if shared.owner.edge() == Edge::LeaveToReaders {
            // One of the armed readers takes `SKIPPED` and reads.
            self.hand_off_reads(token);
            return;
        }
        let mut io = shared.io.lock();
        let mut access = LockPerDelivery {
            socket: &socket,
            io_requests: Vec::new(),
            defer_wake: !io.is_streaming(),
            wake_held: false,
        };
        let stop = io.read_ready(self.now, &mut access, pipe, READS_PER_TURN);
        let broken = io.broken.take();
        drop(io);
        access.wake_deferred();
        let reqs = access.io_requests;
        self.after_change(&socket, reqs, false);
        match stop {
            ReadStop::Broken => {
                if let Some(why) = broken {
                    self.close_engine(token, why);
                }
            }
            ReadStop::Overdrawn => self.enforce_budget(socket.id),
            ReadStop::Budget => {
                self.deferred.push(token);
                self.engine_after_io(token);
            }
            ReadStop::Drained | ReadStop::Paused => self.engine_after_io(token),
        }
    }

    /// Application threads wait on this connection and read its bytes
    /// themselves: stop waking up for them (IoThread -> HandedOff, see
    /// `crate::conn::owner`).
    ///
    /// Every readable edge of an engine whose reader is parked used to
    /// wake this thread only to leave the bytes to that reader; with 32
    /// clients on one polling thread those wake-ups were a tenth of the
    /// client's CPU. Instead the engine is re-registered for writability
    /// alone until a review ([`IoThread::review_handoffs`], every
    /// [`HANDOFF_REVIEW`]) finds that its readers finished no wait during
    /// the interval before. Meanwhile every thread waiting for input on the
    /// socket polls the connection (they are woken now, so that those
    /// armed before the hand-off arm again with it), and bytes that come
    /// while none waits are read by the next one to arm, or taken back by
    /// the review: heartbeats, EOF and the receive-HWM prefetch are served
    /// late by at most two intervals after the application stops reading.
    fn hand_off_reads(&mut self, token: Token) {
        let Some(e) = self.engines.get(&token) else {
            return;
        };
        if e.shared.owner.is_handed_off() {
            return;
        }
        let shared = e.shared.clone();
        // A reader holds it right now; the next edge tries again.
        let Some(mut io) = shared.io.try_lock() else {
            return;
        };
        // Streams are read ahead by this thread while the application
        // consumes; handing one off cost a third of its rate.
        if io.is_streaming() || io.read_paused {
            return;
        }
        let Some(e) = self.engines.get_mut(&token) else {
            return;
        };
        let write = shared.watch_writes.load(Ordering::SeqCst);
        let rereg = set_interest(
            self.poll.registry(),
            &mut io.stream,
            token,
            &mut e.registered,
            false,
            write,
        );
        drop(io);
        if rereg.is_err() {
            return;
        }
        let Some(e) = self.engines.get(&token) else {
            return;
        };
        e.shared.owner.set_handed_off();
        e.shared.owner.take_active();
        e.socket.wake();
        self.handed_off.push(token);
        if self.handoff_timer.is_none() {
            let at = self.now + HANDOFF_REVIEW;
            self.handoff_timer = Some(self.timers.insert(at, Timer::Handoff));
        }
    }

    /// HandedOff -> IoThread: watch readability again. Re-registering
    /// reports a connection that is already readable, so bytes waiting
    /// in the kernel are read on the next turn. Returns false if the
    /// engine is still handed off.
    pub(super) fn take_back_reads(&mut self, token: Token) -> bool {
        let Some(e) = self.engines.get(&token) else {
            return true;
        };
        if !e.shared.owner.is_handed_off() {
            return true;
        }
        if self.engine_register(token, true).is_err() {
            return false;
        }
        let Some(e) = self.engines.get(&token) else {
            return true;
        };
        e.shared.owner.set_io_thread();
        // Off the review's list (a no-op during the review itself, which
        // has taken the list), so that a later hand-off is listed once.
        self.handed_off.retain(|t| *t != token);
        true
    }

    /// Takes reading back from application threads for every handed-off
    /// engine whose readers finished no wait since the last review, or
    /// that has become a stream. When nothing is handed off, the review
    /// stops, so an idle context has no timer ticking.
    pub(super) fn review_handoffs(&mut self) {
        self.handoff_timer = None;
        let mut still = Vec::new();
        for token in std::mem::take(&mut self.handed_off) {
            let Some(e) = self.engines.get(&token) else {
                continue;
            };
            // Only finished waits count: a reader parked through the whole
            // interval is idle, and keeping its engine would keep this
            // review ticking on a quiet connection. Taken back, the engine
            // is handed off again by the next edge if the reader is still
            // there.
            let keep = e.shared.owner.take_active() && !e.shared.io.lock().is_streaming();
            if keep || !self.take_back_reads(token) {
                still.push(token);
            }
        }
        if !still.is_empty() {
            let at = self.now + HANDOFF_REVIEW;
            self.handoff_timer = Some(self.timers.insert(at, Timer::Handoff));
        }
        self.handed_off = still;
    }

    /// Flushes what the session wants to say and re-arms its timer.
    pub(super) fn engine_after_io(&mut self, token: Token) {
        self.engine_write(token);
        self.engine_rearm(token);
    }

    /// Hands the session's events to the socket during and right after the
    /// handshake. Returns false if the engine was closed.
    pub(super) fn engine_events(&mut self, token: Token) -> bool {
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
                // The HWMs as they are now: they are live options.
                c.pipes.insert(p, c.options.sndhwm, c.options.rcvhwm);
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
        if blocked {
            // A borrower that found the buffer full leaves this notice
            // when nobody watches for writability yet.
            self.engine_watch_writes(token);
        } else {
            self.engine_write(token);
        }
    }

    pub(super) fn engine_writable(&mut self, token: Token) {
        let Some(e) = self.engines.get(&token) else {
            return;
        };
        // epoll reports writability with every readable edge too; only
        // a blocked writer cares.
        if e.shared.write_blocked.swap(false, Ordering::SeqCst) {
            return self.engine_write(token);
        }
        // A Unix stream reports one each time its peer reads: nobody
        // waits, so stop watching until a writer is blocked again.
        if e.unix && WriteWatch::stop_watching(&e.shared.watch_writes, &e.shared.write_blocked) {
            let read = !e.shared.owner.is_handed_off();
            let _ = self.engine_register(token, read);
        }
    }

    /// A writer found the kernel buffer full: make sure this thread
    /// watches for writability (a Unix stream is registered for it only
    /// while needed; see `conn::WriteWatch`).
    fn engine_watch_writes(&mut self, token: Token) {
        let Some(e) = self.engines.get(&token) else {
            return;
        };
        let shared = &e.shared;
        if !shared.write_blocked.load(Ordering::SeqCst)
            || shared.watch_writes.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let read = !shared.owner.is_handed_off();
        if let Err(err) = self.engine_register(token, read) {
            log::debug!("cannot watch a connection for writability: {err}");
        }
    }

    /// Registers the engine for what it needs now: readability unless
    /// `read` is false (reads handed off), writability while watched.
    fn engine_register(&mut self, token: Token, read: bool) -> io::Result<()> {
        let Some(e) = self.engines.get_mut(&token) else {
            return Ok(());
        };
        let shared = e.shared.clone();
        let write = shared.watch_writes.load(Ordering::SeqCst);
        let mut io = shared.io.lock();
        set_interest(
            self.poll.registry(),
            &mut io.stream,
            token,
            &mut e.registered,
            read,
            write,
        )
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
                Ok(false) => {
                    drop(io);
                    return self.engine_watch_writes(token);
                }
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
        // Waiting threads leave a paused engine out of their `poll`, so
        // one paused while handed off would have no reader: take it back.
        self.take_back_reads(token);
        let Some(e) = self.engines.get(&token) else {
            return;
        };
        let was_paused = {
            let mut io = e.shared.io.lock();
            let was = io.read_paused;
            if was {
                io.resume_reading(self.now);
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
        let (broken, overdrawn, socket) = match self.engines.get(&token) {
            Some(e) => {
                let mut io = e.shared.io.lock();
                (io.broken.take(), io.overdrawn, e.socket.id)
            }
            None => return,
        };
        match broken {
            Some(why) => self.close_engine(token, why),
            None if overdrawn => self.enforce_budget(socket),
            None => {
                // A borrower may have found the buffer full.
                self.engine_watch_writes(token);
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
        {
            let mut io = e.shared.io.lock();
            let _ = self.poll.registry().deregister(&mut io.stream);
            // The descriptor closes with the last holder of the engine,
            // which may be a thread in `poll(2)` or the tokio adapter's
            // reactor registration (until its next `recv`): the peer must
            // see the end now all the same.
            let _ = io.stream.shutdown();
        }
        if let Some((_, key)) = e.timer.take() {
            self.timers.cancel(key);
        }
        self.zap_forget(e.zap_request);
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
            // Messages the session took from the pipe: written, or lost
            // with the connection.
            let mut dropped = io.session.unsent_messages() as u64;
            let written = io.session.messages_written();
            drop(io);
            self.count_delivered(
                socket.id,
                pipe,
                &endpoint,
                written.saturating_sub(e.written_at_close),
            );
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
                dropped += c.pipes.clear_outbound(pipe) as u64;
                if c.pipes.orphan(pipe) {
                    c.pattern.detach(pipe, &mut c.pipes);
                    c.pipes.remove(pipe);
                }
            }
            self.count_dropped(socket.id, &mut c.pipes.stats, pipe, &endpoint, dropped);
            let (io, wake) = c.settle();
            drop(core);
            self.after_change(&socket, io, wake);
        }
        e.shared.io.lock().retire();
        // After the pipe has what the peer sent: whoever hears of the
        // disconnection can read all of it at once.
        Self::emit(&socket, &endpoint, kind);
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

    /// Messages for this engine's peer not yet written: those its session
    /// holds and those still in its pipe. For `Socket::endpoints()`.
    pub(super) fn peer_status(&self, token: Token) -> Option<PeerStatus> {
        let e = self.engines.get(&token)?;
        // Lock order: the engine's `io` first, released before the core.
        let unsent = e.shared.io.lock().session.unsent_messages();
        let (queued, dropped_hwm) = e
            .pipe
            .and_then(|p| {
                let core = e.socket.core.lock();
                core.pipes
                    .get(p)
                    .map(|p| (p.outbound_len(), p.dropped_hwm()))
            })
            .unwrap_or((0, 0));
        Some(PeerStatus {
            address: e.peer.clone(),
            ready: e.ready,
            queued: (unsent + queued) as u64,
            dropped_hwm,
        })
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

/// Sets a stream's registration to `read` and `write` interest,
/// registering, re-registering or deregistering as needed; `registered`
/// says which it is now. Re-registering reports readiness that is already
/// there, so no edge is lost.
fn set_interest(
    registry: &mio::Registry,
    stream: &mut Stream,
    token: Token,
    registered: &mut bool,
    read: bool,
    write: bool,
) -> io::Result<()> {
    let interest = match (read, write) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    };
    match (*registered, interest) {
        (false, Some(i)) => registry.register(stream, token, i)?,
        (true, Some(i)) => registry.reregister(stream, token, i)?,
        (true, None) => registry.deregister(stream)?,
        (false, None) => {}
    }
    *registered = interest.is_some();
    Ok(())
}
