//! The inbound budget's one decision (`crate::conn::budget`): when a
//! socket's connections hold more of messages still arriving than its
//! `inbound_budget`, which of them to drop.
//!
//! The one holding the most: under the attack the budget is for (a peer
//! announcing a huge body and streaming it), that is the attacker, and
//! the socket's other peers read on. A reader that overdrew the budget
//! stopped (`EngineIo::overdrawn`) and asked for this decision; it reads
//! again once it has been made.

use super::IoThread;
use crate::conn::Close;
use crate::error::ProtocolError;
use mio::Token;

impl IoThread {
    /// Drops the connections of `socket` that hold the most until its
    /// budget is no longer overdrawn, then lets the others read again.
    pub(super) fn enforce_budget(&mut self, socket: u64) {
        let Some(shared) = self.sockets.get(&socket).map(|e| e.shared.clone()) else {
            return;
        };
        let mut tokens: Vec<Token> = self.socket_engines(socket);
        while shared.inbound.overdrawn() {
            let victim = tokens
                .iter()
                .filter_map(|t| {
                    let e = self.engines.get(t)?;
                    Some((*t, e.shared.io.lock().held()))
                })
                .max_by_key(|&(_, held)| held);
            let Some((token, held)) = victim.filter(|&(_, held)| held > 0) else {
                break;
            };
            let budget = shared.inbound.limit().unwrap_or(u64::MAX);
            log::warn!(
                "{} socket: inbound budget of {budget} bytes overdrawn; dropping the peer \
                 that held the most ({held} bytes of a message still arriving)",
                shared.ty
            );
            shared.core.lock().pipes.stats.disconnected_over_budget += 1;
            self.close_engine(
                token,
                Close::Protocol(ProtocolError::InboundBudget { held, budget }),
            );
            tokens.retain(|t| *t != token);
        }
        for token in tokens {
            let stopped = match self.engines.get(&token) {
                Some(e) => std::mem::take(&mut e.shared.io.lock().overdrawn),
                None => false,
            };
            if stopped {
                // Waiting threads leave a stopped connection out of their
                // `poll`, as a paused one: take its reads back first.
                self.take_back_reads(token);
                self.engine_read(token);
            }
        }
    }
}
