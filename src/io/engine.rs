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

use super::timers::TimerKey;
use super::{IoThread, Timer};
use crate::error::ProtocolError;
use crate::monitor::EventKind;
use crate::options::Options;
use crate::pattern::PipeId;
use crate::socket::SocketShared;
use crate::zmtp::{Session, SessionConfig, SessionEvent};
use bytes::{BufMut, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;

/// Bytes reserved in the read buffer before each read.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per wake-up before yielding to other connections.
const READS_PER_TURN: usize = 16;
/// Output gathered from the pipe before each write.
const WRITE_BATCH: usize = 256 * 1024;

/// Why an engine stopped.
#[derive(Debug)]
pub(super) enum Close {
    /// The peer closed the connection.
    Eof,
    /// An OS error on the connection.
    Io(io::Error),
    /// The peer broke the protocol, or was refused.
    Protocol(ProtocolError),
    /// We closed it (disconnect, close, linger done).
    Local,
}

#[derive(Debug)]
pub(super) struct Engine {
    stream: TcpStream,
    session: Session,
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
    read_buf: BytesMut,
    read_paused: bool,
    write_blocked: bool,
    pub(super) ready: bool,
    timer: Option<(Instant, TimerKey)>,
}

impl Engine {
    pub(super) fn new(
        stream: TcpStream,
        socket: Arc<SocketShared>,
        options: &Options,
        pipe: Option<PipeId>,
        connecter: Option<u64>,
        peer: String,
        now: Instant,
    ) -> io::Result<Engine> {
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
        Ok(Engine {
            stream,
            session: Session::new(config, now),
            socket,
            pipe,
            connecter,
            peer,
            sndhwm: options.sndhwm,
            rcvhwm: options.rcvhwm,
            read_buf: BytesMut::new(),
            read_paused: false,
            write_blocked: false,
            ready: false,
            timer: None,
        })
    }

    /// One `recv` straight into the spare capacity of `read_buf`.
    fn fill(&mut self) -> io::Result<usize> {
        if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
            self.read_buf.reserve(READ_CHUNK);
        }
        let sock = socket2::SockRef::from(&self.stream);
        let spare = self.read_buf.chunk_mut();
        // SAFETY: `recv` only writes into the slice, never reads it, so
        // handing it uninitialised memory is sound.
        let n = sock.recv(unsafe { spare.as_uninit_slice_mut() })?;
        // SAFETY: the kernel initialised the first `n` bytes of the spare
        // capacity, and `n` is at most its length.
        unsafe { self.read_buf.advance_mut(n) };
        Ok(n)
    }

    /// Whether the socket is closing and this engine has nothing left to
    /// write, so lingering is over for it.
    fn drained(&self) -> bool {
        self.session.output().is_empty()
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
    /// Registers a new engine and sends its greeting.
    pub(super) fn add_engine(&mut self, mut engine: Engine) -> Option<Token> {
        let token = self.token();
        if let Err(e) = self.poll.registry().register(
            &mut engine.stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::debug!("cannot register connection to {}: {e}", engine.peer);
            return None;
        }
        self.engines.insert(token, engine);
        self.engine_write(token);
        self.engine_rearm(token);
        self.engines.contains_key(&token).then_some(token)
    }

    pub(super) fn engine_read(&mut self, token: Token) {
        for _ in 0..READS_PER_TURN {
            let Some(e) = self.engines.get_mut(&token) else {
                return;
            };
            if e.read_paused {
                return;
            }
            match e.fill() {
                Ok(0) => return self.close_engine(token, Close::Eof),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.engine_after_io(token);
                    return;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return self.close_engine(token, Close::Io(err)),
            }
            let now = self.now;
            let Some(e) = self.engines.get_mut(&token) else {
                return;
            };
            let Engine {
                session, read_buf, ..
            } = e;
            if let Err(p) = session.handle_input(read_buf, now) {
                // The session may have queued an ERROR for the peer.
                let _ = e.stream.write(e.session.output());
                return self.close_engine(token, Close::Protocol(p));
            }
            if !self.engine_events(token) {
                return;
            }
        }
        // Still readable: come back after serving everyone else.
        self.deferred.push(token);
        self.engine_after_io(token);
    }

    /// Flushes what the session wants to say and re-arms its timer.
    fn engine_after_io(&mut self, token: Token) {
        self.engine_write(token);
        self.engine_rearm(token);
    }

    /// Hands the session's events to the socket. Returns false if the
    /// engine was closed.
    fn engine_events(&mut self, token: Token) -> bool {
        loop {
            let Some(e) = self.engines.get_mut(&token) else {
                return false;
            };
            let socket = e.socket.clone();
            let mut core = None;
            let mut ready = None;
            while let Some(ev) = e.session.poll_event() {
                match ev {
                    SessionEvent::Message(msg) => {
                        let Some(pipe) = e.pipe else { continue };
                        let c = core.get_or_insert_with(|| socket.core.lock());
                        if !c.pipes.deliver(pipe, msg) {
                            e.read_paused = true;
                        }
                    }
                    SessionEvent::Ready(peer) => {
                        ready = Some(peer);
                        break;
                    }
                }
            }
            if let Some(mut c) = core {
                let (io, wake) = c.settle();
                drop(c);
                self.after_change(&socket, io, wake);
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
        if self.engines.get(&token).is_some_and(|e| !e.write_blocked) {
            self.engine_write(token);
        }
    }

    pub(super) fn engine_writable(&mut self, token: Token) {
        if let Some(e) = self.engines.get_mut(&token) {
            e.write_blocked = false;
            self.engine_write(token);
        }
    }

    /// Writes pending output, refilling it from the pipe, until the pipe is
    /// empty or the kernel buffer is full.
    fn engine_write(&mut self, token: Token) {
        loop {
            let Some(e) = self.engines.get_mut(&token) else {
                return;
            };
            while !e.session.output().is_empty() {
                match e.stream.write(e.session.output()) {
                    Ok(0) => return self.close_engine(token, Close::Eof),
                    Ok(n) => e.session.consume_output(n),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        e.write_blocked = true;
                        return;
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return self.close_engine(token, Close::Io(err)),
                }
            }
            let (Some(pipe), true) = (e.pipe, e.ready) else {
                return;
            };
            let socket = e.socket.clone();
            let mut core = socket.core.lock();
            let mut moved = 0usize;
            while e.session.output().len() < WRITE_BATCH {
                match core.pipes.pop_outbound(pipe) {
                    Some(msg) => {
                        e.session.send_message(&msg);
                        moved += 1;
                    }
                    None => break,
                }
            }
            let (io, wake) = core.settle();
            drop(core);
            self.after_change(&socket, io, wake);
            if moved == 0 {
                self.linger_check_engine(token);
                return;
            }
        }
    }

    pub(super) fn engine_resume_read(&mut self, token: Token) {
        if let Some(e) = self.engines.get_mut(&token) {
            if e.read_paused {
                e.read_paused = false;
                // Messages may already sit in the buffer from the last read.
                let Engine {
                    session, read_buf, ..
                } = e;
                if let Err(p) = session.handle_input(read_buf, self.now) {
                    return self.close_engine(token, Close::Protocol(p));
                }
                if self.engine_events(token) {
                    self.engine_read(token);
                }
            }
        }
    }

    pub(super) fn engine_timer(&mut self, token: Token) {
        let Some(e) = self.engines.get_mut(&token) else {
            return;
        };
        e.timer = None;
        if let Err(p) = e.session.handle_timeout(self.now) {
            let _ = e.stream.write(e.session.output());
            return self.close_engine(token, Close::Protocol(p));
        }
        self.engine_after_io(token);
    }

    /// Keeps the timer queue in step with the session's next deadline.
    fn engine_rearm(&mut self, token: Token) {
        let Some(e) = self.engines.get_mut(&token) else {
            return;
        };
        let want = e.session.poll_timeout();
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
        let _ = self.poll.registry().deregister(&mut e.stream);
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
            let mut core = socket.core.lock();
            let c = &mut *core;
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
