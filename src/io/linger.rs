//! Closing sockets and terminating the context, honouring `linger`, and
//! accounting for every message still queued at close.
//!
//! When a socket closes, its listeners close at once. Connections and
//! connecters with messages still queued stay up until those are written
//! or `linger` runs out, whichever comes first; the rest close at once.
//! Context termination closes every socket this way, and the I/O thread
//! exits when no socket is left.
//!
//! Every message queued at close ends up counted once in the socket's
//! [`Tally`]: delivered (its last byte written to the kernel), dropped when
//! linger ran out, or dropped because its peer went. When nothing of the
//! socket is left, the tally becomes its [`CloseReport`].

use super::connecter::State;
use super::{Closing, IoThread, Timer};
use crate::close::{CloseReport, PeerReport};
use crate::conn::Close;
use crate::pattern::{PipeId, Stats};
use crate::shared::SocketShared;
use std::sync::Arc;
use std::time::Duration;

/// What became of a closing socket's messages, per pipe, in the order the
/// pipes were first counted.
#[derive(Debug, Default)]
pub(super) struct Tally {
    peers: Vec<(PipeId, PeerReport)>,
}

impl Tally {
    fn peer(&mut self, pipe: PipeId, endpoint: &str) -> &mut PeerReport {
        let idx = match self.peers.iter().position(|(p, _)| *p == pipe) {
            Some(i) => i,
            None => {
                self.peers.push((pipe, PeerReport::new(endpoint)));
                self.peers.len() - 1
            }
        };
        &mut self.peers[idx].1
    }
}

impl IoThread {
    pub(super) fn close_socket(&mut self, socket: &Arc<SocketShared>) {
        let id = socket.id;
        let Some(entry) = self.sockets.get_mut(&id) else {
            // Never bound or connected: nothing was ever queued.
            socket.publish_report(CloseReport::default());
            return;
        };
        if entry.closing.is_some() {
            return;
        }
        let linger = entry.shared.core.lock().options.linger;
        let timer = match linger {
            Some(d) if !d.is_zero() => Some(self.timers.insert(self.now + d, Timer::Linger(id))),
            _ => None,
        };
        entry.closing = Some(Closing {
            timer,
            expired: false,
            tally: Tally::default(),
        });
        // Inproc peers get what is queued for them now (unless linger is
        // zero: then `linger_expired` below counts it dropped).
        self.inproc_close_socket(id, linger != Some(Duration::ZERO));
        // What the engines wrote until now was delivered before the close.
        for token in self.socket_engines(id) {
            if let Some(e) = self.engines.get_mut(&token) {
                e.written_at_close = e.shared.io.lock().session.messages_written();
            }
        }
        let listeners = self
            .sockets
            .get(&id)
            .map(|e| e.listeners.clone())
            .unwrap_or_default();
        for token in listeners {
            self.close_listener(token);
        }
        if linger == Some(Duration::ZERO) {
            return self.linger_expired(id);
        }
        self.close_drained(id);
        self.maybe_finish_socket(id);
    }

    /// Closes whatever of a closing socket has nothing left to send.
    fn close_drained(&mut self, id: u64) {
        let Some(entry) = self.sockets.get(&id) else {
            return;
        };
        let accepted: Vec<_> = entry.accepted.iter().copied().collect();
        let connecters = entry.connecters.clone();
        for token in accepted {
            if self.engine_drained(token) {
                self.close_engine(token, Close::Local);
            }
        }
        for cid in connecters {
            let Some(c) = self.connecters.get(&cid) else {
                continue;
            };
            let done = match c.state {
                State::Connected(token) => self.engine_drained(token),
                _ => !c.socket.core.lock().pipes.output_pending(c.pipe),
            };
            if done {
                self.stop_connecter(cid);
            }
        }
    }

    /// Linger is over: drop what is still queued, counted, and close
    /// everything the socket still has.
    pub(super) fn linger_expired(&mut self, id: u64) {
        let Some(entry) = self.sockets.get_mut(&id) else {
            return;
        };
        let Some(closing) = entry.closing.as_mut() else {
            return;
        };
        closing.timer = None;
        closing.expired = true;
        // Messages still in pipes, connected or not; what engines took
        // but did not write is counted as they close, below.
        let socket = entry.shared.clone();
        {
            let mut core = socket.core.lock();
            let pipes = &mut core.pipes;
            let ids: Vec<_> = pipes.ids().collect();
            for pipe in ids {
                let endpoint = pipes.get(pipe).map(|p| p.endpoint().to_owned());
                let n = pipes.clear_outbound(pipe) as u64;
                if let Some(endpoint) = endpoint {
                    self.count_dropped(id, &mut pipes.stats, pipe, &endpoint, n);
                }
            }
        }
        let Some(entry) = self.sockets.get(&id) else {
            return;
        };
        let accepted: Vec<_> = entry.accepted.iter().copied().collect();
        let connecters = entry.connecters.clone();
        for token in accepted {
            self.close_engine(token, Close::Local);
        }
        for cid in connecters {
            self.stop_connecter(cid);
        }
        self.maybe_finish_socket(id);
    }

    /// The closing state of a socket, if it is closing.
    fn closing_mut(&mut self, socket: u64) -> Option<&mut Closing> {
        self.sockets
            .get_mut(&socket)
            .and_then(|s| s.closing.as_mut())
    }

    /// `n` messages for `pipe` will never be written: counted in the
    /// socket's stats, and in its close report if it is closing, as
    /// dropped at linger's end or because the peer went.
    pub(super) fn count_dropped(
        &mut self,
        socket: u64,
        stats: &mut Stats,
        pipe: PipeId,
        endpoint: &str,
        n: u64,
    ) {
        if n == 0 {
            return;
        }
        match self.closing_mut(socket) {
            Some(c) if c.expired => {
                stats.dropped_linger += n;
                c.tally.peer(pipe, endpoint).dropped_linger += n;
            }
            Some(c) => {
                stats.dropped_peer_gone += n;
                c.tally.peer(pipe, endpoint).dropped_peer_gone += n;
            }
            None => stats.dropped_peer_gone += n,
        }
    }

    /// An engine of a closing socket wrote `n` messages since the close.
    pub(super) fn count_delivered(&mut self, socket: u64, pipe: PipeId, endpoint: &str, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(c) = self.closing_mut(socket) {
            c.tally.peer(pipe, endpoint).delivered += n;
        }
    }

    /// Forgets a closing socket once nothing of it is left, and leaves
    /// its close report.
    pub(super) fn maybe_finish_socket(&mut self, id: u64) {
        let Some(entry) = self.sockets.get(&id) else {
            return;
        };
        let done = entry.closing.is_some()
            && entry.listeners.is_empty()
            && entry.connecters.is_empty()
            && entry.accepted.is_empty();
        if !done {
            return;
        }
        let Some(entry) = self.sockets.remove(&id) else {
            return;
        };
        let Some(closing) = entry.closing else {
            return;
        };
        if let Some(key) = closing.timer {
            self.timers.cancel(key);
        }
        let socket = entry.shared;
        let (ty, linger, unread) = {
            let core = socket.core.lock();
            let unread = core
                .pipes
                .ids()
                .filter_map(|p| core.pipes.get(p))
                .map(|p| p.inbound_len() as u64)
                .sum();
            (socket.ty, core.options.linger, unread)
        };
        let mut report = CloseReport {
            unread,
            ..CloseReport::default()
        };
        for (_, peer) in closing.tally.peers {
            if peer.dropped_linger > 0 {
                // An explicit zero linger asked for the drop.
                let level = match linger {
                    Some(d) if d.is_zero() => log::Level::Debug,
                    _ => log::Level::Warn,
                };
                log::log!(
                    level,
                    "{ty} socket closed: linger ({linger:?}) ran out with {} messages \
                     unsent to {}; they were dropped",
                    peer.dropped_linger,
                    peer.endpoint
                );
            }
            report.push_peer(peer);
        }
        socket.publish_report(report);
    }

    pub(super) fn terminate(&mut self) {
        self.terminating = true;
        let sockets: Vec<_> = self.sockets.values().map(|e| e.shared.clone()).collect();
        for socket in sockets {
            self.close_socket(&socket);
        }
    }
}
