//! Listeners: bind, accept, the EMFILE pause, status and events, for
//! every transport (`transport::Listener` is what differs).

use super::engine::{Engine, Origin};
use super::transport;
use super::{IoThread, Timer};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::monitor::{EndpointState, EndpointStatus, EventKind, PeerStatus};
use crate::options::Options;
use crate::shared::SocketShared;
use mio::{Interest, Token};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// How many connections one wake-up accepts before serving others.
const ACCEPT_BATCH: usize = 256;

/// After EMFILE/ENFILE, wait this long before accepting again, instead of
/// spinning on a readiness we cannot act on (nng does the same).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(super) struct Listener {
    listener: transport::Listener,
    socket: Arc<SocketShared>,
    /// The endpoint as the user wrote it.
    requested: String,
    /// The endpoint actually bound, with the port resolved.
    bound: String,
    options: Options,
}

impl IoThread {
    pub(super) fn bind(
        &mut self,
        socket: Arc<SocketShared>,
        endpoint: &Endpoint,
        requested: String,
        options: Options,
    ) -> Result<String> {
        let (mut listener, bound) = match transport::Listener::bind(endpoint, options.backlog) {
            Ok(l) => l,
            Err(err) => {
                let copy = match &err {
                    Error::Io(e) => io::Error::new(e.kind(), e.to_string()),
                    other => io::Error::other(other.to_string()),
                };
                Self::emit(&socket, &requested, EventKind::BindFailed { error: copy });
                return Err(err);
            }
        };
        let token = self.token();
        self.poll
            .registry()
            .register(&mut listener, token, Interest::READABLE)?;
        log::debug!("listening on {bound}");
        Self::emit(&socket, &bound, EventKind::Listening);
        self.entry(&socket).listeners.push(token);
        self.listeners.insert(
            token,
            Listener {
                listener,
                socket,
                requested,
                bound: bound.clone(),
                options,
            },
        );
        Ok(bound)
    }

    pub(super) fn unbind(&mut self, socket: u64, endpoint: &str) -> Result<()> {
        let normalized = Endpoint::parse(endpoint).map(|e| e.to_string()).ok();
        let found = self.sockets.get(&socket).and_then(|entry| {
            entry.listeners.iter().copied().find(|t| {
                self.listeners.get(t).is_some_and(|l| {
                    l.requested == endpoint
                        || l.bound == endpoint
                        || normalized.as_deref() == Some(l.bound.as_str())
                })
            })
        });
        match found {
            Some(token) => {
                self.close_listener(token);
                Ok(())
            }
            None => Err(Error::UnknownEndpoint(endpoint.to_owned())),
        }
    }

    pub(super) fn listener_status(&self, token: Token) -> Option<EndpointStatus> {
        let l = self.listeners.get(&token)?;
        let peers: Vec<PeerStatus> = self.sockets.get(&l.socket.id).map_or(Vec::new(), |entry| {
            entry
                .accepted
                .iter()
                .filter(|t| {
                    self.engines
                        .get(t)
                        .is_some_and(|e| e.listener == Some(token))
                })
                .filter_map(|t| self.peer_status(*t))
                .collect()
        });
        Some(EndpointStatus {
            endpoint: l.bound.clone(),
            state: EndpointState::Listening,
            attempts: 0,
            last_error: None,
            queued: peers.iter().map(|p| p.queued).sum(),
            peers,
        })
    }

    pub(super) fn close_listener(&mut self, token: Token) {
        if let Some(mut l) = self.listeners.remove(&token) {
            let _ = self.poll.registry().deregister(&mut l.listener);
            if let Some(entry) = self.sockets.get_mut(&l.socket.id) {
                entry.listeners.retain(|t| *t != token);
            }
            Self::emit(&l.socket, &l.bound, EventKind::Closed);
        }
    }

    pub(super) fn accept(&mut self, token: Token) {
        for _ in 0..ACCEPT_BATCH {
            let Some(l) = self.listeners.get(&token) else {
                return;
            };
            match l.listener.accept(&l.bound) {
                Ok((stream, peer)) => {
                    let socket = l.socket.clone();
                    let options = l.options.clone();
                    Self::emit(&socket, &peer, EventKind::Accepted);
                    let listener = token;
                    let token = self.token();
                    let engine = Engine::new(
                        stream,
                        socket.clone(),
                        &options,
                        Origin {
                            pipe: None,
                            connecter: None,
                            listener: Some(listener),
                            peer,
                        },
                        self.now,
                        token,
                    );
                    match engine {
                        Ok(engine) => {
                            if let Some(t) = self.add_engine(engine) {
                                self.entry(&socket).accepted.insert(t);
                            }
                        }
                        Err(e) => log::debug!("dropping accepted connection: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let exhausted = matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    );
                    let (socket, bound) = (l.socket.clone(), l.bound.clone());
                    log::debug!("accept on {bound} failed: {e}");
                    Self::emit(&socket, &bound, EventKind::AcceptFailed { error: e });
                    if exhausted {
                        self.pause_listener(token);
                        return;
                    }
                }
            }
        }
        // More may be waiting: come back after serving everyone else.
        self.deferred.push(token);
    }

    fn pause_listener(&mut self, token: Token) {
        if let Some(l) = self.listeners.get_mut(&token) {
            let _ = self.poll.registry().deregister(&mut l.listener);
            self.timers
                .insert(self.now + ACCEPT_PAUSE, Timer::ListenerResume(token));
        }
    }

    pub(super) fn listener_resume(&mut self, token: Token) {
        if let Some(l) = self.listeners.get_mut(&token) {
            if self
                .poll
                .registry()
                .register(&mut l.listener, token, Interest::READABLE)
                .is_ok()
            {
                self.accept(token);
            }
        }
    }
}
