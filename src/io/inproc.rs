//! `inproc://` on the I/O thread: the names bound in this context, the
//! connects waiting for them, and the making and breaking of links.
//!
//! Only the lifecycle is here, as for TCP: the I/O thread creates and
//! destroys links (`shared::Link`) and their pipes, and emits the
//! monitor events. Messages never pass through it (`shared::inproc`),
//! except at a close, when it hands a closing socket's queued messages
//! to its peers. The registry is the I/O thread's own, one per context,
//! which is why another context's names are not found.
//!
//! A connect made before the bind waits (`Waiting`) and links when the
//! name is bound, as libzmq 4 does. What a closing socket has queued for
//! a name nobody binds is dropped at once (counted as the peer gone):
//! there is no peer to linger for. A connecter whose binder goes away
//! keeps its pipe and queue and waits again for the name, as a TCP
//! connecter reconnects (libzmq drops such a pipe).

use super::IoThread;
use crate::error::{Error, ProtocolError, Result};
use crate::message::Message;
use crate::monitor::{ConnectFailure, EndpointState, EndpointStatus, EventKind, PeerStatus};
use crate::options::Options;
use crate::pattern::{PeerInfo, PipeId};
use crate::shared::{End, Link, Notices, SocketShared};
use crate::socket_type::SocketType;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The inproc names and connects of one context.
#[derive(Debug, Default)]
pub(super) struct Registry {
    /// Bound names (without the scheme), with the binder and its options
    /// at bind time.
    bound: HashMap<String, (Arc<SocketShared>, Options)>,
    /// Every inproc connect, by the order it was made.
    connects: BTreeMap<u64, Connect>,
    next: u64,
}

#[derive(Debug)]
struct Connect {
    socket: Arc<SocketShared>,
    pipe: PipeId,
    name: String,
    options: Options,
    state: State,
    attempts: u64,
    last_error: Option<(ConnectFailure, String)>,
}

#[derive(Debug)]
enum State {
    /// The name is not bound (yet, or any more).
    Waiting,
    /// Linked to the binder's pipe `pipe`.
    Linked {
        link: Arc<Link>,
        binder: Arc<SocketShared>,
        pipe: PipeId,
    },
    /// Refused (incompatible types, or the pattern refused the peer).
    Stopped,
}

/// Why a link ends.
#[derive(Debug, Clone)]
enum Why {
    /// The connecting socket closes; `deliver`: hand its queue over.
    ConnecterCloses { deliver: bool },
    /// The binding socket closes.
    BinderCloses { deliver: bool },
    /// `disconnect` on the connecting socket.
    Disconnect,
    /// A pattern refused the peer (`IoRequest::Disconnect`), reported
    /// to both.
    Refused(ProtocolError),
}

impl Why {
    /// The event the sides that stay hear.
    fn event(&self) -> EventKind {
        EventKind::Disconnected {
            reason: match self {
                Why::Refused(reason) => Some(reason.clone()),
                _ => None,
            },
            error: None,
        }
    }
}

fn endpoint(name: &str) -> String {
    format!("inproc://{name}")
}

/// What a socket learns of its inproc peer: as from a ZMTP READY.
fn peer_info(ty: SocketType, options: &Options) -> PeerInfo {
    PeerInfo {
        socket_type: ty,
        routing_id: if ty.sends_identity() {
            options.routing_id.clone()
        } else {
            bytes::Bytes::new()
        },
    }
}

fn incompatible(ours: SocketType, peer: SocketType) -> ProtocolError {
    ProtocolError::IncompatibleSocketType {
        ours: ours.as_str(),
        peer: peer.as_str().to_owned(),
    }
}

impl IoThread {
    pub(super) fn inproc_bind(
        &mut self,
        socket: Arc<SocketShared>,
        name: &str,
        options: Options,
    ) -> Result<String> {
        let ep = endpoint(name);
        if self.inproc.bound.contains_key(name) {
            Self::emit(
                &socket,
                &ep,
                EventKind::BindFailed {
                    error: std::io::ErrorKind::AddrInUse.into(),
                },
            );
            return Err(Error::AddressInUse(ep));
        }
        self.entry(&socket);
        self.inproc
            .bound
            .insert(name.to_owned(), (socket.clone(), options));
        Self::emit(&socket, &ep, EventKind::Listening);
        let waiting: Vec<u64> = self
            .inproc
            .connects
            .iter()
            .filter(|(_, c)| c.name == name && matches!(c.state, State::Waiting))
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.inproc_link(id);
        }
        Ok(ep)
    }

    /// Whether a socket is bound to this inproc name now.
    pub(super) fn inproc_is_bound(&self, name: &str) -> bool {
        self.inproc.bound.contains_key(name)
    }

    pub(super) fn inproc_connect(
        &mut self,
        socket: Arc<SocketShared>,
        name: String,
        options: Options,
    ) -> Result<()> {
        if let Some((binder, _)) = self.inproc.bound.get(&name) {
            if !socket.ty.is_compatible(binder.ty) {
                return Err(Error::Protocol(incompatible(socket.ty, binder.ty)));
            }
        }
        let ep = endpoint(&name);
        let pipe = PipeId(socket.ctx.next_id());
        let (io, wake) = {
            let mut core = socket.core.lock();
            let c = &mut *core;
            c.pipes.insert(pipe, c.options.sndhwm, c.options.rcvhwm);
            c.pipes.set_endpoint(pipe, ep.clone());
            c.pattern.attach(pipe, &mut c.pipes);
            c.last_endpoint = Some(ep);
            c.settle()
        };
        self.after_change(&socket, io, wake);
        self.entry(&socket);
        let id = self.inproc.next;
        self.inproc.next += 1;
        let bound = self.inproc.bound.contains_key(&name);
        self.inproc.connects.insert(
            id,
            Connect {
                socket,
                pipe,
                name,
                options,
                state: State::Waiting,
                attempts: 0,
                last_error: None,
            },
        );
        if bound {
            self.inproc_link(id);
        }
        Ok(())
    }

    /// Links a waiting connect to the socket bound to its name.
    fn inproc_link(&mut self, id: u64) {
        let Some(c) = self.inproc.connects.get_mut(&id) else {
            return;
        };
        let Some((binder, b_opts)) = self.inproc.bound.get(&c.name) else {
            return;
        };
        let (binder, b_opts) = (binder.clone(), b_opts.clone());
        c.attempts += 1;
        let (socket, pipe, c_opts, ep) = (
            c.socket.clone(),
            c.pipe,
            c.options.clone(),
            endpoint(&c.name),
        );
        if !socket.ty.is_compatible(binder.ty) {
            return self.inproc_refused(
                id,
                &binder,
                incompatible(socket.ty, binder.ty),
                incompatible(binder.ty, socket.ty),
            );
        }
        // The binder's side, as for an accepted connection.
        let b_pipe = PipeId(binder.ctx.next_id());
        let (verdict, io, wake) = {
            let mut core = binder.core.lock();
            let c = &mut *core;
            c.pipes.insert(b_pipe, c.options.sndhwm, c.options.rcvhwm);
            c.pipes.set_endpoint(b_pipe, ep.clone());
            c.pattern.attach(b_pipe, &mut c.pipes);
            c.pipes
                .set_peer(b_pipe, Some(peer_info(socket.ty, &c_opts)));
            let verdict = c.pattern.peer_ready(b_pipe, &mut c.pipes);
            if verdict.is_err() {
                c.pattern.detach(b_pipe, &mut c.pipes);
                c.pipes.remove(b_pipe);
            }
            let (io, wake) = c.settle();
            (verdict, io, wake)
        };
        self.after_change(&binder, io, wake);
        if let Err(reason) = verdict {
            let theirs = reason.clone();
            return self.inproc_refused(id, &binder, theirs, reason);
        }
        // The connecter's side.
        let (verdict, io, wake) = {
            let mut core = socket.core.lock();
            let c = &mut *core;
            c.pipes.set_peer(pipe, Some(peer_info(binder.ty, &b_opts)));
            let verdict = c.pattern.peer_ready(pipe, &mut c.pipes);
            if verdict.is_err() {
                c.pipes.set_peer(pipe, None);
            }
            let (io, wake) = c.settle();
            (verdict, io, wake)
        };
        self.after_change(&socket, io, wake);
        if let Err(reason) = verdict {
            let (io, wake) = {
                let mut core = binder.core.lock();
                let c = &mut *core;
                c.pattern.peer_lost(b_pipe, &mut c.pipes);
                c.pipes.clear_outbound(b_pipe);
                c.pattern.detach(b_pipe, &mut c.pipes);
                c.pipes.remove(b_pipe);
                c.settle()
            };
            self.after_change(&binder, io, wake);
            let theirs = reason.clone();
            return self.inproc_refused(id, &binder, reason, theirs);
        }
        let link = Arc::new(Link::new(
            End {
                socket: Arc::downgrade(&socket),
                pipe,
            },
            End {
                socket: Arc::downgrade(&binder),
                pipe: b_pipe,
            },
        ));
        socket.inproc.insert(pipe, link.clone());
        binder.inproc.insert(b_pipe, link.clone());
        if let Some(c) = self.inproc.connects.get_mut(&id) {
            c.state = State::Linked {
                link: link.clone(),
                binder: binder.clone(),
                pipe: b_pipe,
            };
            c.last_error = None;
        }
        log::debug!("{ep}: linked");
        Self::emit(&socket, &ep, EventKind::Connected);
        Self::emit(&socket, &ep, EventKind::HandshakeSucceeded);
        Self::emit(&binder, &ep, EventKind::Accepted);
        Self::emit(&binder, &ep, EventKind::HandshakeSucceeded);
        // What either side queued before.
        let mut out = Notices::new();
        link.transfer(0, &mut out);
        link.transfer(1, &mut out);
        self.inproc_notices(out);
    }

    /// A link could not be made: each side hears why, from its side.
    fn inproc_refused(
        &mut self,
        id: u64,
        binder: &Arc<SocketShared>,
        connecter_reason: ProtocolError,
        binder_reason: ProtocolError,
    ) {
        let Some(c) = self.inproc.connects.get_mut(&id) else {
            return;
        };
        let ep = endpoint(&c.name);
        log::warn!("{ep}: connection refused: {connecter_reason}");
        c.state = State::Stopped;
        c.last_error = Some((ConnectFailure::Other, connecter_reason.to_string()));
        let socket = c.socket.clone();
        Self::emit(
            &socket,
            &ep,
            EventKind::HandshakeFailed {
                reason: connecter_reason,
            },
        );
        Self::emit(
            binder,
            &ep,
            EventKind::HandshakeFailed {
                reason: binder_reason,
            },
        );
    }

    /// Acts on the pipe notices a transfer caused.
    fn inproc_notices(&mut self, out: Notices) {
        for (socket, r) in out {
            for r in socket.route_inproc(vec![r]) {
                self.handle_command(super::Command::Pipe(r));
            }
        }
    }

    /// Ends a link. See [`Why`] for what becomes of each side.
    fn inproc_unlink(&mut self, id: u64, why: Why) {
        let Some(c) = self.inproc.connects.get_mut(&id) else {
            return;
        };
        let State::Linked {
            link,
            binder,
            pipe: b_pipe,
        } = std::mem::replace(&mut c.state, State::Waiting)
        else {
            return;
        };
        if matches!(why, Why::Refused(_)) {
            c.state = State::Stopped;
        }
        let (socket, pipe, ep) = (c.socket.clone(), c.pipe, endpoint(&c.name));
        socket.inproc.remove(pipe);
        binder.inproc.remove(b_pipe);
        // Nothing moves once both directions are closed; a thread that
        // found the link before has finished its transfer when we get
        // the mutex, and one that comes after moves nothing.
        for dir in &link.dirs {
            dir.lock().closed = true;
        }
        match why {
            Why::ConnecterCloses { deliver: true } => {
                self.inproc_hand_over(&socket, pipe, &binder, b_pipe, &ep)
            }
            Why::BinderCloses { deliver: true } => {
                self.inproc_hand_over(&binder, b_pipe, &socket, pipe, &ep)
            }
            _ => {}
        }
        // The connecter's pipe, unless its socket is closing.
        if !matches!(why, Why::ConnecterCloses { .. }) {
            let (io, wake) = {
                let mut core = socket.core.lock();
                let c = &mut *core;
                c.pipes.set_peer(pipe, None);
                c.pattern.peer_lost(pipe, &mut c.pipes);
                if matches!(why, Why::Disconnect) {
                    let n = c.pipes.clear_outbound(pipe) as u64;
                    self.count_dropped(socket.id, &mut c.pipes.stats, pipe, &ep, n);
                    c.pattern.detach(pipe, &mut c.pipes);
                    c.pipes.remove(pipe);
                }
                c.settle()
            };
            self.after_change(&socket, io, wake);
            Self::emit(&socket, &ep, why.event());
        }
        // The binder's pipe goes as an accepted connection's does.
        if !matches!(why, Why::BinderCloses { .. }) {
            let (io, wake) = {
                let mut core = binder.core.lock();
                let c = &mut *core;
                c.pattern.peer_lost(b_pipe, &mut c.pipes);
                let n = c.pipes.clear_outbound(b_pipe) as u64;
                self.count_dropped(binder.id, &mut c.pipes.stats, b_pipe, &ep, n);
                if c.pipes.orphan(b_pipe) {
                    c.pattern.detach(b_pipe, &mut c.pipes);
                    c.pipes.remove(b_pipe);
                }
                c.settle()
            };
            self.after_change(&binder, io, wake);
            Self::emit(&binder, &ep, why.event());
        }
    }

    /// A closing socket's messages still queued for its inproc peer go
    /// to the peer now, whatever its HWM: they fit in the pipe's
    /// `sndhwm + rcvhwm`, and the peer reads them at its pace.
    fn inproc_hand_over(
        &mut self,
        from: &Arc<SocketShared>,
        from_pipe: PipeId,
        to: &Arc<SocketShared>,
        to_pipe: PipeId,
        ep: &str,
    ) {
        let (queued, io, wake) = {
            let mut core = from.core.lock();
            let mut queued: Vec<Message> = Vec::new();
            while let Some(m) = core.pipes.pop_outbound(from_pipe) {
                queued.push(m);
            }
            let (io, wake) = core.settle();
            (queued, io, wake)
        };
        self.after_change(from, io, wake);
        let n = queued.len() as u64;
        let (io, wake) = {
            let mut core = to.core.lock();
            for m in queued {
                core.pipes.deliver(to_pipe, m);
            }
            core.settle()
        };
        self.after_change(to, io, wake);
        self.count_delivered(from.id, from_pipe, ep, n);
    }

    /// A socket closes: its names are unbound and its links end, its
    /// queued messages handed over when `deliver` (linger not zero).
    pub(super) fn inproc_close_socket(&mut self, id: u64, deliver: bool) {
        let names: Vec<String> = self
            .inproc
            .bound
            .iter()
            .filter(|(_, (s, _))| s.id == id)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            if let Some((s, _)) = self.inproc.bound.remove(&name) {
                Self::emit(&s, &endpoint(&name), EventKind::Closed);
            }
        }
        let ids: Vec<u64> = self.inproc.connects.keys().copied().collect();
        for cid in ids {
            let Some(c) = self.inproc.connects.get(&cid) else {
                continue;
            };
            let binder_closes = matches!(&c.state, State::Linked { binder, .. } if binder.id == id);
            if c.socket.id == id {
                if deliver && !matches!(c.state, State::Linked { .. }) {
                    // Nobody binds the name: no peer to linger for.
                    let (s, pipe, ep) = (c.socket.clone(), c.pipe, endpoint(&c.name));
                    let mut core = s.core.lock();
                    let n = core.pipes.clear_outbound(pipe) as u64;
                    self.count_dropped(id, &mut core.pipes.stats, pipe, &ep, n);
                }
                self.inproc_unlink(cid, Why::ConnecterCloses { deliver });
                if let Some(c) = self.inproc.connects.remove(&cid) {
                    Self::emit(&c.socket, &endpoint(&c.name), EventKind::Closed);
                }
            } else if binder_closes {
                self.inproc_unlink(cid, Why::BinderCloses { deliver });
            }
        }
    }

    /// `disconnect` of an inproc endpoint; `None` if the socket has no
    /// such connect.
    pub(super) fn inproc_disconnect(&mut self, socket: u64, ep: &str) -> Option<()> {
        let id = self
            .inproc
            .connects
            .iter()
            .find(|(_, c)| c.socket.id == socket && endpoint(&c.name) == ep)
            .map(|(id, _)| *id)?;
        if matches!(self.inproc.connects.get(&id)?.state, State::Linked { .. }) {
            self.inproc_unlink(id, Why::Disconnect);
        } else {
            let c = self.inproc.connects.get(&id)?;
            let (s, pipe) = (c.socket.clone(), c.pipe);
            let (io, wake) = {
                let mut core = s.core.lock();
                let c = &mut *core;
                let n = c.pipes.clear_outbound(pipe) as u64;
                self.count_dropped(s.id, &mut c.pipes.stats, pipe, ep, n);
                c.pattern.detach(pipe, &mut c.pipes);
                c.pipes.remove(pipe);
                c.settle()
            };
            self.after_change(&s, io, wake);
        }
        let c = self.inproc.connects.remove(&id)?;
        Self::emit(&c.socket, ep, EventKind::Closed);
        Some(())
    }

    /// `unbind` of an inproc endpoint: the name is free again; links made
    /// through it stay, as accepted TCP connections do. `None` if the
    /// socket did not bind it.
    pub(super) fn inproc_unbind(&mut self, socket: u64, ep: &str) -> Option<()> {
        let name = ep.strip_prefix("inproc://")?;
        let (s, _) = self.inproc.bound.get(name)?;
        if s.id != socket {
            return None;
        }
        let (s, _) = self.inproc.bound.remove(name)?;
        Self::emit(&s, ep, EventKind::Closed);
        Some(())
    }

    /// A pattern refuses the peer behind an inproc pipe; false if the
    /// pipe is not one.
    pub(super) fn inproc_refuse(&mut self, pipe: PipeId, reason: &ProtocolError) -> bool {
        let found = self.inproc.connects.iter().find(|(_, c)| {
            c.pipe == pipe || matches!(&c.state, State::Linked { pipe: p, .. } if *p == pipe)
        });
        let Some((&id, _)) = found else {
            return false;
        };
        log::warn!("dropping an inproc peer: {reason}");
        self.inproc_unlink(id, Why::Refused(reason.clone()));
        true
    }

    /// The status of a socket's inproc endpoints, binds first.
    pub(super) fn inproc_status(&self, socket: u64) -> Vec<EndpointStatus> {
        // One peer per link, as for a connection.
        let peer = |s: &SocketShared, pipe: PipeId, ep: String| {
            let core = s.core.lock();
            let (queued, dropped_hwm) = core
                .pipes
                .get(pipe)
                .map_or((0, 0), |p| (p.outbound_len() as u64, p.dropped_hwm()));
            PeerStatus {
                address: ep,
                ready: true,
                queued,
                dropped_hwm,
            }
        };
        let mut names: Vec<&String> = self
            .inproc
            .bound
            .iter()
            .filter(|(_, (s, _))| s.id == socket)
            .map(|(n, _)| n)
            .collect();
        names.sort();
        let binds = names.into_iter().map(|name| {
            let peers: Vec<PeerStatus> = self
                .inproc
                .connects
                .values()
                .filter_map(|c| match &c.state {
                    State::Linked { binder, pipe, .. }
                        if binder.id == socket && &c.name == name =>
                    {
                        Some(peer(binder, *pipe, endpoint(name)))
                    }
                    _ => None,
                })
                .collect();
            EndpointStatus {
                endpoint: endpoint(name),
                state: EndpointState::Listening,
                attempts: 0,
                last_error: None,
                queued: peers.iter().map(|p| p.queued).sum(),
                peers,
            }
        });
        let connects = self
            .inproc
            .connects
            .values()
            .filter(|c| c.socket.id == socket)
            .map(|c| {
                let linked = matches!(c.state, State::Linked { .. });
                let mine = peer(&c.socket, c.pipe, endpoint(&c.name));
                EndpointStatus {
                    endpoint: endpoint(&c.name),
                    state: match c.state {
                        State::Waiting => EndpointState::Connecting,
                        State::Linked { .. } => EndpointState::Connected,
                        State::Stopped => EndpointState::Stopped,
                    },
                    attempts: c.attempts,
                    last_error: c.last_error.clone(),
                    queued: mine.queued,
                    peers: if linked { vec![mine] } else { Vec::new() },
                }
            });
        binds.chain(connects).collect()
    }
}
