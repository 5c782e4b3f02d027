//! Connecters: the connect flow for one `connect()` endpoint, the same
//! for every transport (`transport::Addr` is what differs: the socket it
//! makes and how its errors are classified).
//!
//! Each attempt follows `connect(2)`'s real semantics:
//! - a fresh non-blocking socket per attempt and per resolved address,
//!   because a socket whose connect failed cannot be reused;
//! - `connect` returns at once: success (common on loopback), EINPROGRESS
//!   (wait for writability, then read `SO_ERROR`), or an immediate error
//!   such as ENETUNREACH when there is no route;
//! - `connect_timeout` aborts a SYN that gets no answer, instead of the
//!   kernel's minutes of retransmissions; an error already pending in
//!   `SO_ERROR` when it fires wins over "timed out";
//! - after every address failed, the next cycle starts after the backoff
//!   delay, re-resolving names (DNS can change);
//! - the backoff resets only after a successful ZMTP handshake.

use super::engine::{Engine, Origin};
use super::timers::TimerKey;
use super::transport::{self, Addr, Addrs};
use super::{IoThread, Timer};
use crate::backoff::Backoff;
use crate::conn::{Close, Stream};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::monitor::{ConnectFailure, EndpointState, EndpointStatus, EventKind};
use crate::options::Options;
use crate::pattern::PipeId;
use crate::shared::SocketShared;
use mio::{Interest, Token};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub(super) enum State {
    /// Waiting for the resolver.
    Resolving,
    /// A connect is in flight on `token`.
    Connecting {
        token: Token,
        stream: Stream,
        timeout: Option<TimerKey>,
        /// Where this attempt goes, to classify its failure.
        addr: Addr,
    },
    /// Connected; the engine on `token` owns the connection.
    Connected(Token),
    /// Waiting for the next attempt.
    Waiting(TimerKey),
    /// Not reconnecting (reconnect disabled, or lingering ended).
    Stopped,
}

#[derive(Debug)]
pub(super) struct Connecter {
    pub(super) socket: Arc<SocketShared>,
    endpoint: Endpoint,
    /// The endpoint as a normalised string, for events and `disconnect`.
    pub(super) name: String,
    pub(super) pipe: PipeId,
    options: Options,
    backoff: Backoff,
    pub(super) state: State,
    addrs: Vec<Addr>,
    next_addr: usize,
    /// Connect attempts made so far, one per address tried.
    pub(super) attempts: u64,
    /// The most recent failure, for status reports.
    pub(super) last_error: Option<(ConnectFailure, String)>,
    /// A `reconnect_stop` condition was met: no further attempts.
    give_up: bool,
}

impl IoThread {
    pub(super) fn connect(
        &mut self,
        socket: Arc<SocketShared>,
        endpoint: Endpoint,
        pipe: PipeId,
        options: Options,
    ) {
        let id = self.next_connecter;
        self.next_connecter += 1;
        let backoff = Backoff::new(
            options.reconnect_ivl.unwrap_or(Duration::from_millis(100)),
            options.reconnect_ivl_max,
            crate::seed::random_seed(),
        );
        self.entry(&socket).connecters.push(id);
        self.connecters.insert(
            id,
            Connecter {
                socket,
                name: endpoint.to_string(),
                endpoint,
                pipe,
                options,
                backoff,
                state: State::Stopped,
                addrs: Vec::new(),
                next_addr: 0,
                attempts: 0,
                last_error: None,
                give_up: false,
            },
        );
        self.start_cycle(id);
    }

    /// Starts a cycle over the endpoint's addresses.
    fn start_cycle(&mut self, id: u64) {
        let Some(c) = self.connecters.get_mut(&id) else {
            return;
        };
        match transport::addrs(&c.endpoint) {
            Ok(Addrs::Resolve(host, port)) => {
                c.state = State::Resolving;
                self.resolver.resolve(&self.mailbox, id, &host, port);
            }
            Ok(Addrs::Ready(addrs)) if !addrs.is_empty() => {
                c.addrs = addrs;
                c.next_addr = 0;
                self.try_next_addr(id);
            }
            Ok(Addrs::Ready(_)) => self.schedule_retry(id),
            Err(e) => {
                let e = io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
                self.attempt_failed(id, ConnectFailure::Other, Some(e));
                self.schedule_retry(id);
            }
        }
    }

    pub(super) fn resolved(&mut self, id: u64, result: io::Result<Vec<SocketAddr>>) {
        let Some(c) = self.connecters.get_mut(&id) else {
            return;
        };
        if !matches!(c.state, State::Resolving) {
            return;
        }
        match result {
            Ok(addrs) if !addrs.is_empty() => {
                c.addrs = addrs.into_iter().map(Addr::Tcp).collect();
                c.next_addr = 0;
                self.try_next_addr(id);
            }
            other => {
                let e = other
                    .err()
                    .unwrap_or_else(|| io::Error::other("name resolved to no address"));
                self.attempt_failed(id, ConnectFailure::Resolve, Some(e));
                self.schedule_retry(id);
            }
        }
    }

    /// Tries the remaining addresses of this cycle, in order, until one is
    /// in flight or connected; schedules the next cycle if none is.
    fn try_next_addr(&mut self, id: u64) {
        loop {
            let Some(c) = self.connecters.get_mut(&id) else {
                return;
            };
            let Some(addr) = c.addrs.get(c.next_addr).cloned() else {
                return self.schedule_retry(id);
            };
            c.next_addr += 1;
            c.attempts += 1;
            log::debug!("connecting to {} ({addr}), attempt {}", c.name, c.attempts);
            match addr.connect() {
                Ok((stream, true)) => return self.connected(id, stream),
                Ok((mut stream, false)) => {
                    let token = self.token();
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::WRITABLE)
                    {
                        self.attempt_failed(id, ConnectFailure::Other, Some(e));
                        continue;
                    }
                    let Some(c) = self.connecters.get_mut(&id) else {
                        return;
                    };
                    let timeout = (!c.options.connect_timeout.is_zero()).then(|| {
                        self.timers.insert(
                            self.now + c.options.connect_timeout,
                            Timer::ConnectTimeout(id),
                        )
                    });
                    c.state = State::Connecting {
                        token,
                        stream,
                        timeout,
                        addr,
                    };
                    self.attempts.insert(token, id);
                    let (socket, name) = (c.socket.clone(), c.name.clone());
                    Self::emit(&socket, &name, EventKind::ConnectDelayed);
                    return;
                }
                Err(e) => {
                    let cause = addr.classify(&e);
                    self.attempt_failed(id, cause, Some(e));
                }
            }
        }
    }

    /// The in-flight connect became writable: read `SO_ERROR`.
    pub(super) fn connect_ready(&mut self, id: u64, token: Token) {
        let Some(c) = self.connecters.get_mut(&id) else {
            return;
        };
        let State::Connecting { stream, .. } = &c.state else {
            return;
        };
        let outcome = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match stream.is_connected() {
                Ok(true) => Ok(()),
                // Spurious wake-up: still in progress.
                Ok(false) => return,
                Err(e) => Err(e),
            },
        };
        let Some((stream, addr)) = self.end_attempt(id, token) else {
            return;
        };
        match outcome {
            Ok(()) => self.connected(id, stream),
            Err(e) => {
                let cause = addr.classify(&e);
                self.attempt_failed(id, cause, Some(e));
                self.try_next_addr(id);
            }
        }
    }

    pub(super) fn connect_timed_out(&mut self, id: u64) {
        let Some(c) = self.connecters.get_mut(&id) else {
            return;
        };
        let State::Connecting {
            token,
            stream,
            timeout,
            ..
        } = &mut c.state
        else {
            return;
        };
        *timeout = None;
        let token = *token;
        // An ICMP error may have arrived just before our timer: report it.
        let pending = stream.take_error().ok().flatten();
        let Some((_, addr)) = self.end_attempt(id, token) else {
            return;
        };
        match pending {
            Some(e) => {
                let cause = addr.classify(&e);
                self.attempt_failed(id, cause, Some(e));
            }
            None => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "connect_timeout expired");
                self.attempt_failed(id, ConnectFailure::TimedOut, Some(e));
            }
        }
        self.try_next_addr(id);
    }

    /// Takes the in-flight stream out of the connecter and the poller.
    fn end_attempt(&mut self, id: u64, token: Token) -> Option<(Stream, Addr)> {
        let c = self.connecters.get_mut(&id)?;
        let State::Connecting {
            stream,
            timeout,
            addr,
            ..
        } = std::mem::replace(&mut c.state, State::Stopped)
        else {
            return None;
        };
        let mut stream = stream;
        if let Some(t) = timeout {
            self.timers.cancel(t);
        }
        self.attempts.remove(&token);
        let _ = self.poll.registry().deregister(&mut stream);
        Some((stream, addr))
    }

    fn attempt_failed(&mut self, id: u64, cause: ConnectFailure, error: Option<io::Error>) {
        let Some(c) = self.connecters.get_mut(&id) else {
            return;
        };
        let text = error
            .as_ref()
            .map_or_else(|| format!("{cause:?}"), |e| e.to_string());
        log::debug!("connect to {} failed: {cause:?}: {text}", c.name);
        c.last_error = Some((cause, text));
        if cause == ConnectFailure::Refused && c.options.reconnect_stop.conn_refused {
            c.give_up = true;
        }
        let (socket, name) = (c.socket.clone(), c.name.clone());
        Self::emit(&socket, &name, EventKind::ConnectFailed { cause, error });
    }

    fn connected(&mut self, id: u64, stream: Stream) {
        let Some(c) = self.connecters.get_mut(&id) else {
            return;
        };
        let (socket, name) = (c.socket.clone(), c.name.clone());
        Self::emit(&socket, &name, EventKind::Connected);
        let peer = transport::peer_name(&stream, &name);
        let token = self.token();
        let Some(c) = self.connecters.get_mut(&id) else {
            return;
        };
        let engine = Engine::new(
            stream,
            socket,
            &c.options,
            Origin {
                pipe: Some(c.pipe),
                connecter: Some(id),
                listener: None,
                peer,
            },
            self.now,
            token,
        );
        match engine {
            Ok(engine) => {
                if let Some(token) = self.add_engine(engine) {
                    if let Some(c) = self.connecters.get_mut(&id) {
                        // add_engine may already have closed it and rescheduled.
                        if matches!(c.state, State::Stopped) {
                            c.state = State::Connected(token);
                        }
                    }
                } else if self
                    .connecters
                    .get(&id)
                    .is_some_and(|c| matches!(c.state, State::Stopped))
                {
                    // Never registered (or closed without rescheduling).
                    self.schedule_retry(id);
                }
            }
            Err(e) => {
                self.attempt_failed(id, ConnectFailure::Other, Some(e));
                self.schedule_retry(id);
            }
        }
    }

    /// The handshake on this connecter's connection succeeded.
    pub(super) fn connecter_handshake_done(&mut self, id: u64) {
        if let Some(c) = self.connecters.get_mut(&id) {
            c.backoff.reset();
            c.last_error = None;
        }
    }

    /// The connecter's engine closed: reconnect after the backoff delay.
    pub(super) fn connecter_engine_closed(
        &mut self,
        id: u64,
        token: Token,
        was_ready: bool,
        handshake_failed: bool,
    ) {
        let Some(c) = self.connecters.get_mut(&id) else {
            return;
        };
        let stop = c.options.reconnect_stop;
        if (was_ready && stop.after_disconnect) || (handshake_failed && stop.handshake_failed) {
            c.give_up = true;
        }
        match c.state {
            State::Connected(t) if t == token => c.state = State::Stopped,
            // Closed from inside `add_engine`, before `connected` recorded it.
            State::Stopped => {}
            _ => return,
        }
        self.schedule_retry(id);
    }

    fn schedule_retry(&mut self, id: u64) {
        let Some(c) = self.connecters.get_mut(&id) else {
            return;
        };
        let closing = self
            .sockets
            .get(&c.socket.id)
            .is_some_and(|s| s.closing.is_some());
        if closing && !c.socket.core.lock().pipes.output_pending(c.pipe) {
            self.stop_connecter(id);
            return;
        }
        if c.options.reconnect_ivl.is_none() || c.give_up {
            c.state = State::Stopped;
            log::debug!(
                "not reconnecting to {} (reconnect disabled or stopped)",
                c.name
            );
            let (socket, name) = (c.socket.clone(), c.name.clone());
            Self::emit(&socket, &name, EventKind::Closed);
            return;
        }
        let after = c.backoff.next_delay();
        let key = self.timers.insert(self.now + after, Timer::Retry(id));
        c.state = State::Waiting(key);
        let (socket, name) = (c.socket.clone(), c.name.clone());
        log::debug!("reconnecting to {name} in {after:?}");
        Self::emit(&socket, &name, EventKind::ConnectRetried { after });
    }

    pub(super) fn retry_due(&mut self, id: u64) {
        if let Some(c) = self.connecters.get_mut(&id) {
            if matches!(c.state, State::Waiting(_)) {
                c.state = State::Stopped;
                self.start_cycle(id);
            }
        }
    }

    /// Stops a connecter for good and closes whatever it has open. The pipe
    /// is left to the caller.
    pub(super) fn stop_connecter(&mut self, id: u64) -> Option<Connecter> {
        let mut c = self.connecters.remove(&id)?;
        match std::mem::replace(&mut c.state, State::Stopped) {
            State::Connecting {
                token,
                mut stream,
                timeout,
                ..
            } => {
                if let Some(t) = timeout {
                    self.timers.cancel(t);
                }
                self.attempts.remove(&token);
                let _ = self.poll.registry().deregister(&mut stream);
            }
            State::Connected(token) => self.close_engine(token, Close::Local),
            State::Waiting(key) => self.timers.cancel(key),
            State::Resolving | State::Stopped => {}
        }
        if let Some(entry) = self.sockets.get_mut(&c.socket.id) {
            entry.connecters.retain(|x| *x != id);
        }
        Self::emit(&c.socket, &c.name, EventKind::Closed);
        let socket_id = c.socket.id;
        self.maybe_finish_socket(socket_id);
        Some(c)
    }

    /// The engine of a connecter's connection, if it has one.
    pub(super) fn connecter_engine(&self, id: u64) -> Option<Token> {
        match self.connecters.get(&id)?.state {
            State::Connected(token) => Some(token),
            _ => None,
        }
    }

    /// The status of one connecter, for `Socket::endpoints()`.
    pub(super) fn connecter_status(&self, id: u64) -> Option<EndpointStatus> {
        let c = self.connecters.get(&id)?;
        let state = match &c.state {
            State::Resolving => EndpointState::Resolving,
            State::Connecting { .. } => EndpointState::Connecting,
            State::Connected(token) => match self.engines.get(token) {
                Some(e) if e.ready => EndpointState::Connected,
                _ => EndpointState::Handshaking,
            },
            State::Waiting(key) => EndpointState::Waiting {
                until: key.deadline(),
            },
            State::Stopped => EndpointState::Stopped,
        };
        let peer = match &c.state {
            State::Connected(token) => self.peer_status(*token),
            _ => None,
        };
        let queued = match &peer {
            Some(p) => p.queued,
            None => c
                .socket
                .core
                .lock()
                .pipes
                .get(c.pipe)
                .map_or(0, |p| p.outbound_len() as u64),
        };
        Some(EndpointStatus {
            endpoint: c.name.clone(),
            state,
            attempts: c.attempts,
            last_error: c.last_error.clone(),
            queued,
            peers: peer.into_iter().collect(),
        })
    }

    pub(super) fn disconnect(&mut self, socket: u64, endpoint: &str) -> Result<()> {
        let found = self.sockets.get(&socket).and_then(|entry| {
            entry
                .connecters
                .iter()
                .copied()
                .find(|id| self.connecters.get(id).is_some_and(|c| c.name == endpoint))
        });
        let Some(id) = found else {
            return Err(Error::UnknownEndpoint(endpoint.to_owned()));
        };
        if let Some(c) = self.stop_connecter(id) {
            let mut guard = c.socket.core.lock();
            let core = &mut *guard;
            let dropped = core.pipes.clear_outbound(c.pipe) as u64;
            self.count_dropped(c.socket.id, &mut core.pipes.stats, c.pipe, &c.name, dropped);
            core.direct.remove(&c.pipe);
            core.pattern.detach(c.pipe, &mut core.pipes);
            core.pipes.remove(c.pipe);
            let (io, wake) = core.settle();
            drop(guard);
            // The pattern may have moved work to other pipes (REQ resend).
            self.after_change(&c.socket, io, wake);
        }
        Ok(())
    }
}
