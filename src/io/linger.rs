//! Closing sockets and terminating the context, honouring `linger`.
//!
//! When a socket closes, its listeners close at once. Connections and
//! connecters with messages still queued stay up until those are written
//! or `linger` runs out, whichever comes first; the rest close at once.
//! Context termination closes every socket this way, and the I/O thread
//! exits when no socket is left.

use super::connecter::State;
use super::{Closing, IoThread, Timer};
use crate::conn::Close;
use std::time::Duration;

impl IoThread {
    pub(super) fn close_socket(&mut self, id: u64) {
        let Some(entry) = self.sockets.get_mut(&id) else {
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
        entry.closing = Some(Closing { timer });
        let listeners = entry.listeners.clone();
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

    /// Linger is over: close everything the socket still has.
    pub(super) fn linger_expired(&mut self, id: u64) {
        let Some(entry) = self.sockets.get_mut(&id) else {
            return;
        };
        if let Some(c) = entry.closing.as_mut() {
            c.timer = None;
        }
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

    /// Forgets a closing socket once nothing of it is left.
    pub(super) fn maybe_finish_socket(&mut self, id: u64) {
        let Some(entry) = self.sockets.get(&id) else {
            return;
        };
        let done = entry.closing.is_some()
            && entry.listeners.is_empty()
            && entry.connecters.is_empty()
            && entry.accepted.is_empty();
        if done {
            if let Some(entry) = self.sockets.remove(&id) {
                if let Some(key) = entry.closing.and_then(|c| c.timer) {
                    self.timers.cancel(key);
                }
            }
        }
    }

    pub(super) fn terminate(&mut self) {
        self.terminating = true;
        let ids: Vec<u64> = self.sockets.keys().copied().collect();
        for id in ids {
            self.close_socket(id);
        }
    }
}
