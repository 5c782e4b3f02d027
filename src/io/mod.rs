//! The I/O thread: the only code that touches mio, sockets, threads or the
//! clock.
//!
//! One thread per context runs [`IoThread::run`]: a mio `Poll` loop over
//! listeners, in-progress connects and engines, plus a [`timers::Timers`]
//! queue and a [`mailbox`] of commands from application threads. Each
//! concern has its own file, all as `impl IoThread` blocks over the state
//! declared here:
//! - `transport/`: what differs between `tcp://` and `ipc://`: addresses,
//!   listen/accept, connect and its error classes, the stream;
//! - `listener.rs`: bind, accept, the EMFILE pause, for every transport;
//! - `connecter.rs`: non-blocking connect, backoff, retry, for every
//!   transport;
//! - `engine.rs`: each connection's lifecycle (handshake, registration,
//!   timers, closing) and the policy of handing its reads to application
//!   threads; the connection itself is `crate::conn`;
//! - `linger.rs`: closing sockets and terminating the context;
//! - `budget.rs`: which connection to drop when a socket's inbound
//!   budget is overdrawn;
//! - `zap.rs`: ZAP requests to a handler bound on
//!   `inproc://zeromq.zap.01`, and its replies back to the engines.

mod budget;
mod connecter;
mod engine;
mod inproc;
mod linger;
mod listener;
mod mailbox;
mod resolver;
mod timers;
mod transport;
mod zap;

pub(crate) use mailbox::{Command, Mailbox};

use crate::id_map::{IdMap, IdSet};
use crate::pattern::{IoRequest, PipeId};
use crate::shared::SocketShared;
use connecter::Connecter;
use engine::Engine;
use listener::Listener;
use mailbox::MailboxRx;
use mio::{Events, Poll, Token};
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use timers::{TimerKey, Timers};

const WAKER: Token = Token(0);

/// Starts an I/O thread; returns its mailbox and join handle.
pub(crate) fn spawn() -> io::Result<(Mailbox, JoinHandle<()>)> {
    let poll = Poll::new()?;
    let waker = mio::Waker::new(poll.registry(), WAKER)?;
    let (mailbox, rx) = mailbox::mailbox(waker);
    let thread = IoThread {
        poll,
        mailbox: mailbox.clone(),
        rx,
        timers: Timers::new(),
        next_token: 1,
        listeners: IdMap::default(),
        attempts: IdMap::default(),
        engines: IdMap::default(),
        pipe_engine: IdMap::default(),
        connecters: IdMap::default(),
        next_connecter: 1,
        sockets: IdMap::default(),
        deferred: Vec::new(),
        resolver: resolver::Resolver::default(),
        terminating: false,
        now: Instant::now(),
        handed_off: Vec::new(),
        handoff_timer: None,
        inproc: inproc::Registry::default(),
        zap: zap::ZapClient::default(),
    };
    let handle = std::thread::Builder::new()
        .name("ferrozmq-io".into())
        .spawn(move || thread.run())?;
    Ok((mailbox, handle))
}

/// What a timer is for.
#[derive(Debug, Clone, Copy)]
enum Timer {
    /// A connecter's next attempt.
    Retry(u64),
    /// A connect attempt ran out of `connect_timeout`.
    ConnectTimeout(u64),
    /// An engine's session timer (handshake, later heartbeats).
    Engine(Token),
    /// A closing socket's linger ran out.
    Linger(u64),
    /// A listener paused after EMFILE may accept again.
    ListenerResume(Token),
    /// Time to look at the engines whose reading was handed to
    /// application threads (see `IoThread::hand_off_reads`).
    Handoff,
}

/// The I/O thread's view of one socket.
#[derive(Debug)]
struct SocketEntry {
    shared: Arc<SocketShared>,
    listeners: Vec<Token>,
    connecters: Vec<u64>,
    /// Engines of accepted connections (connecters own theirs).
    accepted: IdSet<Token>,
    /// Set once the application closed the socket or the context ended.
    closing: Option<Closing>,
}

#[derive(Debug)]
struct Closing {
    timer: Option<TimerKey>,
    /// Linger ran out: what is still queued is dropped.
    expired: bool,
    /// What became of the queued messages so far, per pipe.
    tally: linger::Tally,
}

pub(crate) struct IoThread {
    poll: Poll,
    mailbox: Mailbox,
    rx: MailboxRx,
    timers: Timers<Timer>,
    next_token: usize,
    listeners: IdMap<Token, Listener>,
    /// In-progress connects: token -> connecter id.
    attempts: IdMap<Token, u64>,
    /// Boxed: with thousands of idle connections, a map of 136-byte
    /// values at half load costs more than the boxes.
    engines: IdMap<Token, Box<Engine>>,
    pipe_engine: IdMap<PipeId, Token>,
    connecters: IdMap<u64, Connecter>,
    next_connecter: u64,
    sockets: IdMap<u64, SocketEntry>,
    /// Sources that stopped early to be fair to others; served again before
    /// sleeping.
    deferred: Vec<Token>,
    resolver: resolver::Resolver,
    terminating: bool,
    /// The time at the top of this loop turn.
    now: Instant,
    /// Engines whose readability we stopped watching because application
    /// threads read them, and the timer that reviews them.
    handed_off: Vec<Token>,
    handoff_timer: Option<TimerKey>,
    /// This context's inproc names, connects and links.
    inproc: inproc::Registry,
    /// Requests to a ZAP handler bound on `inproc://zeromq.zap.01`.
    zap: zap::ZapClient,
}

impl IoThread {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            self.now = Instant::now();
            let timeout = if !self.deferred.is_empty() {
                Some(std::time::Duration::ZERO)
            } else {
                self.timers
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(self.now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("ferrozmq I/O thread: poll failed: {e}");
                break;
            }
            self.now = Instant::now();
            for ev in events.iter() {
                let token = ev.token();
                if token == WAKER {
                    self.drain_mailbox();
                } else {
                    if ev.is_read_closed() {
                        self.engine_read_closed(token);
                    }
                    self.dispatch(
                        token,
                        ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                        ev.is_writable(),
                    );
                }
            }
            self.run_timers();
            for token in std::mem::take(&mut self.deferred) {
                self.dispatch(token, true, false);
            }
            if self.terminating && self.sockets.is_empty() {
                break;
            }
        }
        self.resolver.shutdown();
    }

    fn token(&mut self) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        t
    }

    fn dispatch(&mut self, token: Token, readable: bool, writable: bool) {
        if self.engines.contains_key(&token) {
            if readable {
                self.engine_read(token);
            }
            if writable {
                self.engine_writable(token);
            }
        } else if let Some(&cid) = self.attempts.get(&token) {
            self.connect_ready(cid, token);
        } else if self.listeners.contains_key(&token) {
            self.accept(token);
        } else if self.zap.is_token(token) {
            self.zap_replies();
        }
    }

    fn drain_mailbox(&mut self) {
        let commands: Vec<Command> = self.rx.drain().collect();
        for cmd in commands {
            self.handle_command(cmd);
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Bind {
                socket,
                endpoint,
                requested,
                options,
                reply,
            } => {
                let result = match &endpoint {
                    _ if self.terminating => Err(crate::Error::ContextTerminated),
                    crate::endpoint::Endpoint::Inproc(name) => {
                        self.inproc_bind(socket, name, options)
                    }
                    _ => self.bind(socket, &endpoint, requested, options),
                };
                let _ = reply.send(result);
            }
            Command::InprocConnect {
                socket,
                name,
                options,
                reply,
            } => {
                let result = if self.terminating {
                    Err(crate::Error::ContextTerminated)
                } else {
                    self.inproc_connect(socket, name, options)
                };
                let _ = reply.send(result);
            }
            Command::Connect {
                socket,
                endpoint,
                pipe,
                options,
            } => {
                if !self.terminating {
                    self.connect(socket, endpoint, pipe, options);
                }
            }
            Command::Disconnect {
                socket,
                endpoint,
                reply,
            } => {
                let result = match self.inproc_disconnect(socket, &endpoint) {
                    Some(()) => Ok(()),
                    None => self.disconnect(socket, &endpoint),
                };
                let _ = reply.send(result);
            }
            Command::Unbind {
                socket,
                endpoint,
                reply,
            } => {
                let result = match self.inproc_unbind(socket, &endpoint) {
                    Some(()) => Ok(()),
                    None => self.unbind(socket, &endpoint),
                };
                let _ = reply.send(result);
            }
            Command::Pipe(IoRequest::Flush(pipe)) => {
                if let Some(&token) = self.pipe_engine.get(&pipe) {
                    self.engine_flush(token);
                }
            }
            Command::Pipe(IoRequest::ResumeRead(pipe)) => {
                if let Some(&token) = self.pipe_engine.get(&pipe) {
                    self.engine_resume_read(token);
                }
            }
            Command::Pipe(IoRequest::Disconnect(pipe, reason)) => {
                if let Some(&token) = self.pipe_engine.get(&pipe) {
                    log::warn!("dropping a peer: {reason}");
                    self.close_engine(token, crate::conn::Close::Protocol(reason));
                } else {
                    self.inproc_refuse(pipe, &reason);
                }
            }
            Command::EngineCheck(token) => self.engine_check(token),
            Command::CloseSocket(socket) => self.close_socket(&socket),
            Command::Resolved { connecter, result } => self.resolved(connecter, result),
            Command::Status { socket, reply } => {
                let _ = reply.send(Ok(self.status(socket)));
            }
            Command::Terminate => self.terminate(),
        }
    }

    fn run_timers(&mut self) {
        while let Some(timer) = self.timers.pop_due(self.now) {
            match timer {
                Timer::Retry(cid) => self.retry_due(cid),
                Timer::ConnectTimeout(cid) => self.connect_timed_out(cid),
                Timer::Engine(token) => self.engine_timer(token),
                Timer::Linger(socket) => self.linger_expired(socket),
                Timer::ListenerResume(token) => self.listener_resume(token),
                Timer::Handoff => self.review_handoffs(),
            }
        }
    }

    /// Listeners first, then connecters, in the order they were made.
    fn status(&self, socket: u64) -> Vec<crate::monitor::EndpointStatus> {
        let Some(entry) = self.sockets.get(&socket) else {
            return Vec::new();
        };
        let listeners = entry
            .listeners
            .iter()
            .filter_map(|t| self.listener_status(*t));
        let connecters = entry
            .connecters
            .iter()
            .filter_map(|id| self.connecter_status(*id));
        listeners
            .chain(connecters)
            .chain(self.inproc_status(socket))
            .collect()
    }

    /// Every connection of a socket: those it accepted and those its
    /// connecters made.
    fn socket_engines(&self, socket: u64) -> Vec<Token> {
        let Some(entry) = self.sockets.get(&socket) else {
            return Vec::new();
        };
        entry
            .accepted
            .iter()
            .copied()
            .chain(
                entry
                    .connecters
                    .iter()
                    .filter_map(|c| self.connecter_engine(*c)),
            )
            .collect()
    }

    /// The entry for a socket, created on its first bind or connect.
    fn entry(&mut self, socket: &Arc<SocketShared>) -> &mut SocketEntry {
        self.sockets
            .entry(socket.id)
            .or_insert_with(|| SocketEntry {
                shared: socket.clone(),
                listeners: Vec::new(),
                connecters: Vec::new(),
                accepted: IdSet::default(),
                closing: None,
            })
    }

    /// Sends a monitor event for a socket.
    fn emit(socket: &SocketShared, endpoint: &str, kind: crate::monitor::EventKind) {
        let mut core = socket.core.lock();
        if core.monitor.is_some() {
            core.emit(crate::monitor::MonitorEvent {
                endpoint: endpoint.to_owned(),
                kind,
            });
        }
    }

    /// After the I/O thread changed a socket's pipes: wake blocked
    /// application threads and act on any pipe notices at once.
    fn after_change(&mut self, socket: &SocketShared, io: Vec<IoRequest>, wake: bool) {
        if wake {
            socket.wake();
        }
        for r in socket.route_inproc(io) {
            self.handle_command(Command::Pipe(r));
        }
    }
}
