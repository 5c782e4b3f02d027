//! ZAP served the libzmq way: when the context has no Rust handler and
//! an application socket is bound to `inproc://zeromq.zap.01`, each
//! connection's authentication request goes there, and the reply comes
//! back to the connection that waits for it.
//!
//! The I/O thread owns one internal DEALER, made at the first request,
//! connected to that name like any inproc connect (so a handler that
//! closes and binds again is linked again). It never blocks on it:
//! - a request is queued in the DEALER's pipe under its core lock and
//!   moved to the handler's socket by the inproc transfer
//!   (`shared::inproc`); a full pipe fails that handshake at once;
//! - replies reach the DEALER's pipe on the handler's thread, which
//!   notifies the DEALER's waiters. One of them is ours, registered for
//!   the DEALER's life as the readiness descriptor is
//!   (`wait::readiness`), and its `eventfd` is registered with this
//!   thread's poll: on each edge we reset the waiter, then take every
//!   reply under the core lock, so a reply delivered after the take
//!   raises the descriptor again (the waiter protocol of
//!   `crate::waiter`, modelled in `loom_models`).
//!
//! Requests are matched to engines by id. A reply for no waiting engine
//! (it closed, or the handler made the id up) is logged and dropped; the
//! internal socket is closed with the others when the context
//! terminates, with `linger` 0.

use super::IoThread;
use crate::conn::Close;
use crate::id_map::IdMap;
use crate::message::Message;
use crate::options::Options;
use crate::shared::{ContextState, SocketShared};
use crate::socket_type::SocketType;
use crate::waiter::{Waiter, WaiterRef};
use crate::zmtp::mechanism::{ZapAnswer, ZapRequest};
use crate::zmtp::zap::{encode_request, parse_reply, ZAP_INPROC_NAME};
use crate::ProtocolError;
use mio::{Interest, Token};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// The I/O thread's ZAP client.
#[derive(Debug, Default)]
pub(super) struct ZapClient {
    /// The internal DEALER and its waiter, once made.
    link: Option<ZapLink>,
    /// Requests out, by id: the engine waiting for each.
    pending: IdMap<u64, Token>,
    next_id: u64,
}

#[derive(Debug)]
struct ZapLink {
    dealer: Arc<SocketShared>,
    /// Registered in the DEALER's waiters; its `eventfd` in our poll.
    waiter: WaiterRef,
    token: Token,
}

impl ZapClient {
    /// Whether `token` is the internal DEALER's descriptor.
    pub(super) fn is_token(&self, token: Token) -> bool {
        self.link.as_ref().is_some_and(|l| l.token == token)
    }
}

impl IoThread {
    /// An engine's session asks ZAP: send the request to the handler
    /// bound on `inproc://zeromq.zap.01`, or, with none bound, answer as
    /// libzmq does without a handler.
    pub(super) fn zap_request(&mut self, token: Token, request: ZapRequest) {
        let Some(ctx) = self.engines.get(&token).map(|e| e.socket.ctx.clone()) else {
            return;
        };
        if !self.inproc_is_bound(ZAP_INPROC_NAME) {
            return self.zap_answer(token, ZapAnswer::NoHandler);
        }
        let dealer = match self.zap_link(&ctx) {
            Ok(d) => d,
            Err(e) => {
                log::error!("cannot reach the ZAP handler: {e}");
                let why = ProtocolError::ZapFailed("the ZAP handler cannot be reached");
                return self.zap_answer(token, ZapAnswer::Failed(why));
            }
        };
        let id = self.zap.next_id;
        self.zap.next_id += 1;
        let msg = encode_request(id, &request);
        let (sent, reqs, wake) = {
            let mut core = dealer.core.lock();
            let c = &mut *core;
            let sent = c.pattern.send(msg, &mut c.pipes).is_ok();
            let (reqs, wake) = c.settle();
            (sent, reqs, wake)
        };
        self.after_change(&dealer, reqs, wake);
        if !sent {
            log::warn!("ZAP handler's queue is full: refusing {}", request.address);
            let why = ProtocolError::ZapFailed("the ZAP handler's queue is full");
            return self.zap_answer(token, ZapAnswer::Failed(why));
        }
        self.zap.pending.insert(id, token);
        if let Some(e) = self.engines.get_mut(&token) {
            e.zap_request = Some(id);
        }
    }

    /// The internal DEALER, made and connected on first use.
    fn zap_link(&mut self, ctx: &Arc<ContextState>) -> io::Result<Arc<SocketShared>> {
        if let Some(link) = &self.zap.link {
            return Ok(link.dealer.clone());
        }
        let dealer = Arc::new(SocketShared::new(
            ctx.next_id(),
            SocketType::Dealer,
            ctx.clone(),
        ));
        let options = Options {
            // Requests still queued when the context ends are for
            // connections that end with it.
            linger: Some(Duration::ZERO),
            ..Options::default()
        };
        dealer.core.lock().options = options.clone();
        let waiter = WaiterRef::new(Waiter::new());
        let Some(fd) = waiter.fd() else {
            return Err(io::Error::other("the system refused an eventfd"));
        };
        let token = self.token();
        self.poll
            .registry()
            .register(&mut mio::unix::SourceFd(&fd), token, Interest::READABLE)?;
        {
            // Under the core lock, as every registration (crate::waiter).
            let _core = dealer.core.lock();
            dealer.waiters.register(&waiter);
        }
        if let Err(e) = self.inproc_connect(dealer.clone(), ZAP_INPROC_NAME.into(), options) {
            dealer.waiters.unregister(&waiter);
            let _ = self
                .poll
                .registry()
                .deregister(&mut mio::unix::SourceFd(&fd));
            return Err(io::Error::other(e.to_string()));
        }
        self.zap.link = Some(ZapLink {
            dealer: dealer.clone(),
            waiter,
            token,
        });
        Ok(dealer)
    }

    /// The internal DEALER's descriptor was raised: take every reply.
    pub(super) fn zap_replies(&mut self) {
        let Some(link) = &self.zap.link else {
            return;
        };
        let (dealer, waiter) = (link.dealer.clone(), link.waiter.clone());
        // Before taking: a reply delivered after the take raises it again.
        waiter.reset();
        loop {
            let (msg, reqs, wake) = {
                let mut core = dealer.core.lock();
                let c = &mut *core;
                let msg = c.pattern.recv(&mut c.pipes).ok();
                let (reqs, wake) = c.settle();
                (msg, reqs, wake)
            };
            self.after_change(&dealer, reqs, wake);
            match msg {
                Some(m) => self.zap_reply(&m),
                None => return,
            }
        }
    }

    fn zap_reply(&mut self, msg: &Message) {
        let Ok((id, answer)) = parse_reply(msg) else {
            log::warn!("ZAP handler sent a reply without a readable request id; dropped");
            return;
        };
        let Some(token) = self.zap.pending.remove(&id) else {
            log::warn!("ZAP reply for request {id}, which no connection waits for; dropped");
            return;
        };
        if let ZapAnswer::Failed(why) = &answer {
            log::warn!("ZAP handler's reply to request {id}: {why}");
        }
        if let Some(e) = self.engines.get_mut(&token) {
            e.zap_request = None;
        }
        self.zap_answer(token, answer);
    }

    /// Hands ZAP's answer to the engine's session and carries on with
    /// the handshake: what it queued is written, `Ready` handled, and a
    /// refusal closes the connection (after its ERROR is written).
    fn zap_answer(&mut self, token: Token, answer: ZapAnswer) {
        let Some(e) = self.engines.get(&token) else {
            return;
        };
        let shared = e.shared.clone();
        let result = shared.io.lock().session.zap_reply(answer, self.now);
        if !self.engine_events(token) {
            return;
        }
        if let Err(p) = result {
            let _ = shared.io.lock().flush(&shared.write_blocked);
            return self.close_engine(token, Close::Protocol(p));
        }
        self.engine_after_io(token);
    }

    /// An engine closes: its request, if any, is answered by nobody.
    pub(super) fn zap_forget(&mut self, id: Option<u64>) {
        if let Some(id) = id {
            self.zap.pending.remove(&id);
        }
    }
}
