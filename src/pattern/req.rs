//! REQ: the client side of request-reply (RFC 28).
//!
//! One request out, then one reply in. Requests are load-balanced; a reply
//! is accepted only from the pipe the request went to, so that a stale reply
//! from another peer is never mistaken for the answer. On top of libzmq's
//! behaviour:
//!
//! * **A REQ never hangs on a dead connection.** When the connection that
//!   carried the outstanding request is lost before the reply came, the
//!   request is abandoned and the next `recv` fails once with
//!   [`Error::PeerLost`]; the socket can then send again. (libzmq keeps
//!   waiting for a reply that cannot come.) Messages the peer sent before
//!   the connection dropped are still read first, so a reply that arrived
//!   just before the loss is delivered, not reported as lost.
//! * **`req_resend`** (nng's behaviour): the outstanding request is instead
//!   sent again, to another connected peer or to the same one once it has
//!   reconnected. Each copy carries a fresh request id (see below), so a
//!   late reply to a lost copy is discarded as stale.
//! * **`req_relaxed`** (`ZMQ_REQ_RELAXED`): `send` while a reply is owed
//!   abandons the previous request. As in libzmq, this is only safe with
//!   `req_correlate`: without ids, the first reply from the new request's
//!   pipe is accepted, even if it answers the abandoned request.
//! * **`req_correlate`** (`ZMQ_REQ_CORRELATE`): requests go out as
//!   `[id, "", body...]`, where `id` is a 4-byte big-endian counter that
//!   starts at a random value; only a reply carrying the current id is
//!   accepted. Any REP echoes the envelope, so this works with every peer.
//!   (libzmq writes the id in host byte order; only the REQ ever reads it,
//!   so the two interoperate.)
//!
//! As libzmq does, sending a new request first discards every reply
//! already queued, so an old duplicate can never answer a new request.

use super::*;

/// The request currently owed a reply.
#[derive(Debug)]
struct Outstanding {
    /// The pipe the request went out on. `None` while a request that must
    /// be resent waits for a connected peer (`req_resend` only).
    pipe: Option<PipeId>,
    /// The id frame the reply must start with (correlation), if any.
    id: Option<u32>,
    /// The request body, kept only when it may have to be resent.
    body: Option<Message>,
    /// The connection behind `pipe` was lost, but the peer had sent
    /// messages that are still unread: the reply may be among them. Set
    /// until those messages have been read.
    lost: Option<Lost>,
}

/// A connection lost with messages still queued from it.
#[derive(Debug)]
struct Lost {
    /// The peer's endpoint, for [`Error::PeerLost`].
    endpoint: String,
    /// How many of the pipe's inbound messages came over the lost
    /// connection (later ones come from a reconnection).
    unread: usize,
}

#[derive(Debug, Default)]
enum State {
    /// Ready to send a request.
    #[default]
    Idle,
    /// A reply is owed (libzmq's `_receiving_reply`).
    Waiting(Outstanding),
    /// The outstanding request's connection was lost; the next `recv`
    /// reports it.
    Failed {
        /// The lost peer's endpoint.
        endpoint: String,
    },
}

/// REQ socket logic.
#[derive(Debug, Default)]
pub struct Req {
    lb: LoadBalancer,
    state: State,
    /// The last request id used; the next request uses the one after.
    last_id: u32,
    relaxed: bool,
    correlate: bool,
    resend: bool,
}

/// A random number without a dependency: std's hasher keys are random.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// Builds the wire form of a request: `[id?, "", body...]`.
fn envelope(id: Option<u32>, mut body: Message) -> Message {
    body.push_front(Bytes::new());
    if let Some(id) = id {
        body.push_front(Bytes::copy_from_slice(&id.to_be_bytes()));
    }
    body
}

impl Req {
    /// A REQ ready to send its first request, with a random first request
    /// id.
    pub fn new() -> Self {
        Self::with_seed(random_u64())
    }

    /// A REQ whose request ids start after `seed` (for deterministic tests).
    pub fn with_seed(seed: u64) -> Self {
        Req {
            last_id: seed as u32,
            ..Self::default()
        }
    }

    /// Whether requests carry an id frame: asked for, or implied by
    /// `req_resend` (so that replies to lost copies can be told apart).
    fn uses_ids(&self) -> bool {
        self.correlate || self.resend
    }

    fn next_id(&mut self) -> u32 {
        self.last_id = self.last_id.wrapping_add(1);
        self.last_id
    }

    /// The connection carrying the outstanding request is gone and nothing
    /// it delivered answered it: fail the request, or schedule a resend.
    /// With `send_now`, a resend is attempted at once.
    fn connection_gone(&mut self, endpoint: String, pipes: &mut Pipes, send_now: bool) {
        let State::Waiting(out) = &mut self.state else {
            return;
        };
        out.lost = None;
        if self.resend && out.body.is_some() {
            out.pipe = None;
            if send_now {
                self.try_resend(pipes);
            }
        } else {
            self.state = State::Failed { endpoint };
        }
    }

    /// Sends a request that waits for a peer (`req_resend`) to a connected
    /// peer, with a fresh id. Only connected peers are candidates: a pipe
    /// that is still (re)connecting may never drain, and the request is
    /// better kept here until some peer is ready.
    fn try_resend(&mut self, pipes: &mut Pipes) {
        let State::Waiting(out) = &self.state else {
            return;
        };
        if out.pipe.is_some() || out.lost.is_some() {
            return;
        }
        let Some(body) = out.body.clone() else {
            return;
        };
        // Every attached pipe is in the balancer, which tries connected
        // pipes first: if one can take the request, it gets it.
        let connected = pipes
            .ids()
            .any(|id| pipes.is_connected(id) && pipes.can_write(id));
        if !connected {
            return;
        }
        let id = self.next_id();
        if let Ok(pipe) = self.lb.send(envelope(Some(id), body), pipes) {
            pipes.stats.requests_resent += 1;
            if let State::Waiting(out) = &mut self.state {
                out.pipe = Some(pipe);
                out.id = Some(id);
            }
        }
    }

    /// The connection behind `pipe` was lost: if it carried the
    /// outstanding request, the request is failed or resent once what
    /// the peer sent before has been read.
    fn request_lost(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        let State::Waiting(out) = &mut self.state else {
            return;
        };
        if out.pipe != Some(pipe) || out.lost.is_some() {
            return;
        }
        // If the request had not been written yet, it must not go out after
        // a reconnection: it is either abandoned or resent elsewhere.
        pipes.clear_outbound(pipe);
        let (endpoint, unread) = pipes.get(pipe).map_or((String::new(), 0), |p| {
            (p.endpoint().to_owned(), p.inbound_len())
        });
        if unread > 0 {
            // The reply may be among what the peer sent before it went:
            // `recv` reads those first, then decides.
            out.lost = Some(Lost { endpoint, unread });
        } else {
            self.connection_gone(endpoint, pipes, true);
        }
    }

    /// Whether `msg` answers the outstanding request with request id `id`.
    fn check(id: Option<u32>, msg: &Message) -> Result<(), Reject> {
        if let Some(id) = id {
            let well_formed = msg.len() >= 3
                && msg.first().is_some_and(|f| f.len() == 4)
                && msg.get(1).is_some_and(|f| f.is_empty());
            if !well_formed {
                return Err(Reject::Malformed);
            }
            if msg.first().is_some_and(|f| f[..] != id.to_be_bytes()) {
                // A reply to an earlier (abandoned or lost) request.
                return Err(Reject::Unexpected);
            }
        } else {
            // A reply is the delimiter followed by at least one body frame
            // (libzmq requires the delimiter to have MORE set).
            let well_formed = msg.len() >= 2 && msg.first().is_some_and(|f| f.is_empty());
            if !well_formed {
                return Err(Reject::Malformed);
            }
        }
        Ok(())
    }

    /// Drops what `recv` would drop, and acts on a lost connection, until
    /// `recv` has something to return; says what that is. Shared by `recv`
    /// and `has_in`, so that readiness means exactly "recv returns now".
    fn next(&mut self, pipes: &mut Pipes) -> Next {
        // First, what the lost connection delivered before it died.
        if let State::Waiting(out) = &mut self.state {
            if let (Some(pipe), Some(lost)) = (out.pipe, out.lost.as_mut()) {
                while lost.unread > 0 {
                    let Some(verdict) = pipes.front(pipe).map(|m| Self::check(out.id, m)) else {
                        break;
                    };
                    if verdict.is_ok() {
                        return Next::Reply { pipe, lost: true };
                    }
                    lost.unread -= 1;
                    pipes.read_from(pipe);
                    if let Err(r) = verdict {
                        r.count(pipes);
                    }
                }
                let endpoint = std::mem::take(&mut lost.endpoint);
                self.connection_gone(endpoint, pipes, true);
            }
        }
        self.try_resend(pipes);
        let out = match &self.state {
            State::Idle => return Next::Nothing,
            State::Failed { .. } => return Next::Failed,
            State::Waiting(out) => out,
        };
        while let Some((pipe, msg)) = pipes.peek_next() {
            let verdict = if Some(pipe) == out.pipe {
                Self::check(out.id, msg)
            } else {
                Err(Reject::Unexpected)
            };
            match verdict {
                Ok(()) => return Next::Reply { pipe, lost: false },
                Err(r) => {
                    pipes.read_next();
                    r.count(pipes);
                }
            }
        }
        Next::Nothing
    }
}

/// Why a message on a REQ socket is not the reply it waits for.
#[derive(Clone, Copy, Debug)]
enum Reject {
    Malformed,
    Unexpected,
}

impl Reject {
    fn count(self, pipes: &mut Pipes) {
        match self {
            Reject::Malformed => pipes.stats.dropped_malformed += 1,
            Reject::Unexpected => pipes.stats.dropped_unexpected += 1,
        }
    }
}

/// What a `recv` would return now.
enum Next {
    Nothing,
    /// The outstanding request failed (`Error::PeerLost`).
    Failed,
    /// The reply is the next message of `pipe`: among a lost connection's
    /// leftovers, or the next in fair-queue order.
    Reply {
        pipe: PipeId,
        lost: bool,
    },
}

impl Pattern for Req {
    fn attach(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        self.lb.attach(pipe);
        self.try_resend(pipes);
    }

    fn peer_ready(&mut self, pipe: PipeId, pipes: &mut Pipes) -> Result<(), ProtocolError> {
        // A request queued on a pipe that never connected moves to this
        // peer (nothing of it was written), and its reply with it: the
        // request keeps its id, and the reply is awaited from here.
        let moved = self.lb.rescue_stranded(pipe, pipes);
        if let State::Waiting(out) = &mut self.state {
            let gone = |p: PipeId| pipes.get(p).is_none_or(|p| p.outbound_len() == 0);
            if out
                .pipe
                .is_some_and(|stuck| moved.contains(&stuck) && gone(stuck))
            {
                out.pipe = Some(pipe);
            }
        }
        if self.resend {
            self.try_resend(pipes);
        }
        Ok(())
    }

    fn peer_lost(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        self.request_lost(pipe, pipes);
        self.lb.peer_lost(pipe, pipes);
    }

    fn detach(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        self.lb.detach(pipe);
        if let State::Waiting(out) = &self.state {
            if out.pipe == Some(pipe) {
                let endpoint = pipes
                    .get(pipe)
                    .map(|p| p.endpoint().to_owned())
                    .unwrap_or_default();
                // A resend waits for the next `recv`: some callers of
                // `detach` do not pass our I/O requests on.
                self.connection_gone(endpoint, pipes, false);
            }
        }
    }

    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<(), SendError> {
        if !matches!(self.state, State::Idle) && !self.relaxed {
            return Err(SendError::new(
                Error::InvalidState("REQ must receive the reply before sending again"),
                msg,
            ));
        }
        let msg = check_not_empty(msg)?;
        let id = self.uses_ids().then(|| self.last_id.wrapping_add(1));
        let body = self.resend.then(|| msg.clone());
        // RFC 28: the request travels behind an empty delimiter frame so that
        // ROUTERs and REPs along the way can find where the envelope ends.
        match self.lb.send(envelope(id, msg), pipes) {
            Ok(pipe) => {
                if id.is_some() {
                    self.next_id();
                }
                // Any previous request is abandoned (relaxed mode). As in
                // libzmq, replies already queued are stale: drop them so an
                // old duplicate can never pass for the new reply.
                while pipes.read_next().is_some() {
                    pipes.stats.dropped_unexpected += 1;
                }
                self.state = State::Waiting(Outstanding {
                    pipe: Some(pipe),
                    id,
                    body,
                    lost: None,
                });
                Ok(())
            }
            Err(mut msg) => {
                // Give back exactly what the caller passed in.
                msg.pop_front();
                if id.is_some() {
                    msg.pop_front();
                }
                Err(SendError::new(Error::WouldBlock, msg))
            }
        }
    }

    fn recv(&mut self, pipes: &mut Pipes) -> Result<Message, Error> {
        if let State::Idle = self.state {
            return Err(Error::InvalidState(
                "REQ must send a request before receiving",
            ));
        }
        match self.next(pipes) {
            Next::Nothing => Err(Error::WouldBlock),
            Next::Failed => {
                let endpoint = match std::mem::take(&mut self.state) {
                    State::Failed { endpoint } => endpoint,
                    _ => String::new(),
                };
                Err(Error::PeerLost { endpoint })
            }
            Next::Reply { pipe, lost } => {
                let id = match &self.state {
                    State::Waiting(out) => out.id,
                    _ => None,
                };
                let msg = if lost {
                    pipes.read_from(pipe)
                } else {
                    pipes.read_next().map(|(_, m)| m)
                };
                let Some(mut msg) = msg else {
                    return Err(Error::WouldBlock);
                };
                if id.is_some() {
                    msg.pop_front();
                }
                msg.pop_front();
                self.state = State::Idle;
                Ok(msg)
            }
        }
    }

    fn has_in(&mut self, pipes: &mut Pipes) -> bool {
        !matches!(self.state, State::Idle) && !matches!(self.next(pipes), Next::Nothing)
    }

    fn has_out(&self, pipes: &Pipes) -> bool {
        (matches!(self.state, State::Idle) || self.relaxed) && self.lb.can_send(pipes)
    }

    fn configure(&mut self, opts: &PatternOptions) {
        self.relaxed = opts.req_relaxed;
        self.correlate = opts.req_correlate;
        self.resend = opts.req_resend;
        self.lb.set_immediate(opts.immediate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Option<PeerInfo> {
        Some(PeerInfo {
            socket_type: SocketType::Rep,
            routing_id: Bytes::new(),
        })
    }

    fn connect(req: &mut Req, pipes: &mut Pipes, id: u64, hwm: usize) -> PipeId {
        let id = PipeId(id);
        pipes.insert(id, hwm, hwm);
        pipes.set_endpoint(id, format!("tcp://peer:{}", id.0));
        req.attach(id, pipes);
        pipes.set_peer(id, peer());
        req.peer_ready(id, pipes).expect("REQ accepts any peer");
        id
    }

    /// What the I/O thread does when a connecter's connection drops.
    fn lose(req: &mut Req, pipes: &mut Pipes, id: PipeId) {
        pipes.set_peer(id, None);
        req.peer_lost(id, pipes);
    }

    /// What the I/O thread does when a connecter reconnects.
    fn reconnect(req: &mut Req, pipes: &mut Pipes, id: PipeId) {
        pipes.set_peer(id, peer());
        req.peer_ready(id, pipes).expect("REQ accepts any peer");
    }

    fn with(relaxed: bool, correlate: bool, resend: bool) -> Req {
        let mut req = Req::with_seed(41);
        req.configure(&PatternOptions {
            req_relaxed: relaxed,
            req_correlate: correlate,
            req_resend: resend,
            ..PatternOptions::default()
        });
        req
    }

    fn reply(body: &str) -> Message {
        Message::from(["", body])
    }

    fn id_frame(id: u32) -> Bytes {
        Bytes::copy_from_slice(&id.to_be_bytes())
    }

    /// A correlated reply, as a REP echoing the envelope sends it.
    fn reply_to(id: u32, body: &str) -> Message {
        Message::from_frames([id_frame(id), Bytes::new(), Bytes::from(body.to_owned())])
    }

    /// Pops the request written to `pipe`, returning its id (if it has
    /// one) and body.
    fn take_request(pipes: &mut Pipes, pipe: PipeId) -> (Option<u32>, Message) {
        let mut m = pipes.pop_outbound(pipe).expect("a request on the pipe");
        let first = m.pop_front().expect("frames");
        if first.is_empty() {
            return (None, m);
        }
        assert_eq!(first.len(), 4, "id frame");
        let id = u32::from_be_bytes(first[..].try_into().expect("4 bytes"));
        assert_eq!(m.pop_front(), Some(Bytes::new()), "delimiter after id");
        (Some(id), m)
    }

    fn is_peer_lost(r: Result<Message, Error>, want: &str) -> bool {
        matches!(r, Err(Error::PeerLost { endpoint }) if endpoint == want)
    }

    // ----- strict alternation (libzmq) -----

    #[test]
    fn strict_alternation() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);

        assert!(matches!(req.recv(&mut pipes), Err(Error::InvalidState(_))));
        req.send("q1".into(), &mut pipes).expect("send");
        let err = req.send("q2".into(), &mut pipes).expect_err("reply owed");
        assert!(matches!(err.error, Error::InvalidState(_)));
        assert_eq!(err.message, Message::from("q2"));

        assert!(req
            .recv(&mut pipes)
            .expect_err("no reply yet")
            .is_would_block());
        pipes.deliver(a, reply("r1"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r1"));
        assert!(matches!(req.recv(&mut pipes), Err(Error::InvalidState(_))));
        req.send("q2".into(), &mut pipes).expect("send again");
    }

    #[test]
    fn delimiter_is_prepended() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send(Message::from(["x", "y"]), &mut pipes)
            .expect("send");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from(["", "x", "y"])));
    }

    #[test]
    fn empty_message_refused() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        connect(&mut req, &mut pipes, 1, 0);
        let err = req.send(Message::new(), &mut pipes).expect_err("empty");
        assert!(matches!(err.error, Error::InvalidMessage(_)));
        // Still allowed to send a real request afterwards.
        req.send("ok".into(), &mut pipes).expect("send");
    }

    #[test]
    fn requests_round_robin_over_three_peers() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let ids: Vec<_> = (1..=3)
            .map(|i| connect(&mut req, &mut pipes, i, 0))
            .collect();
        for round in 0..6 {
            req.send(Message::from(vec![round as u8]), &mut pipes)
                .expect("send");
            let target = ids[round % 3];
            assert_eq!(
                pipes.pop_outbound(target),
                Some(Message::from_frames([vec![], vec![round as u8]]))
            );
            pipes.deliver(target, reply("r"));
            req.recv(&mut pipes).expect("reply");
        }
    }

    #[test]
    fn prefers_connected_peer() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        // Pipe 1 is a connecter still waiting for its connection.
        pipes.insert(PipeId(1), 0, 0);
        req.attach(PipeId(1), &mut pipes);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q".into(), &mut pipes).expect("send");
        assert_eq!(pipes.get(PipeId(1)).map(|p| p.outbound_len()), Some(0));
        assert!(pipes.pop_outbound(b).is_some());
    }

    #[test]
    fn connect_before_bind_queues_on_unconnected_pipe() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        pipes.insert(PipeId(1), 0, 0);
        req.attach(PipeId(1), &mut pipes);
        req.send("q".into(), &mut pipes).expect("queued for later");
        assert_eq!(
            pipes.pop_outbound(PipeId(1)),
            Some(Message::from(["", "q"]))
        );
    }

    #[test]
    fn readiness_matches_what_recv_returns() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        assert!(!req.has_in(&mut pipes), "no request outstanding");
        assert!(req.has_out(&pipes));
        req.send("q".into(), &mut pipes).expect("send");
        assert!(!req.has_out(&pipes), "a reply is owed first");
        assert!(pipes.pop_outbound(a).is_some());
        pipes.deliver(b, reply("impostor"));
        assert!(!req.has_in(&mut pipes), "a reply from the wrong peer");
        assert_eq!(pipes.stats.dropped_unexpected, 1);
        pipes.deliver(a, reply("real"));
        assert!(req.has_in(&mut pipes));
        assert!(req.has_in(&mut pipes), "checking consumes nothing");
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("real"));
        assert!(!req.has_in(&mut pipes));
        // A request whose connection is lost is readable: `recv` fails it.
        req.send("q2".into(), &mut pipes).expect("send");
        let sent_to = if pipes.pop_outbound(a).is_some() {
            a
        } else {
            b
        };
        lose(&mut req, &mut pipes, sent_to);
        assert!(req.has_in(&mut pipes));
        let lost = format!("tcp://peer:{}", sent_to.0);
        assert!(is_peer_lost(req.recv(&mut pipes), &lost));
    }

    #[test]
    fn reply_from_wrong_peer_is_dropped() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q".into(), &mut pipes).expect("send");
        assert!(pipes.pop_outbound(a).is_some());
        pipes.deliver(b, reply("impostor"));
        assert!(req
            .recv(&mut pipes)
            .expect_err("wrong peer")
            .is_would_block());
        assert_eq!(pipes.stats.dropped_unexpected, 1);
        pipes.deliver(b, reply("impostor2"));
        pipes.deliver(a, reply("real"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("real"));
        assert_eq!(pipes.stats.dropped_unexpected, 2);
    }

    #[test]
    fn replies_queued_before_a_send_are_discarded() {
        // libzmq: "REQ sends request to A, A replies, B replies too. An
        // hour later REQ sends a request to B. B's old reply is used."
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q1".into(), &mut pipes).expect("send");
        pipes.deliver(a, reply("from a"));
        assert_eq!(
            req.recv(&mut pipes).expect("reply"),
            Message::from("from a")
        );
        pipes.deliver(b, reply("late duplicate from b"));
        req.send("q2".into(), &mut pipes).expect("send to b");
        assert_eq!(pipes.stats.dropped_unexpected, 1);
        assert!(pipes.pop_outbound(b).is_some());
        assert!(req.recv(&mut pipes).expect_err("none yet").is_would_block());
        pipes.deliver(b, reply("fresh"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("fresh"));
    }

    #[test]
    fn malformed_reply_is_dropped() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        pipes.deliver(a, Message::from(["no-delimiter", "x"]));
        pipes.deliver(a, Message::from([""])); // delimiter but no body
        pipes.deliver(a, reply("good"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("good"));
        assert_eq!(pipes.stats.dropped_malformed, 2);
        assert_eq!(pipes.stats.dropped_unexpected, 0);
    }

    #[test]
    fn multi_frame_reply_keeps_body_frames() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        pipes.deliver(a, Message::from(["", "a", "", "b"]));
        assert_eq!(
            req.recv(&mut pipes).expect("reply"),
            Message::from(["a", "", "b"])
        );
    }

    #[test]
    fn would_block_returns_original_message() {
        for correlate in [false, true] {
            let mut req = with(false, correlate, false);
            let mut pipes = Pipes::new();
            let err = req
                .send(Message::from(["a", "b"]), &mut pipes)
                .expect_err("no pipes");
            assert!(err.error.is_would_block());
            assert_eq!(err.message, Message::from(["a", "b"]));

            let a = connect(&mut req, &mut pipes, 1, 1);
            pipes.write(a, "filler".into()).expect("fill the HWM");
            let err = req
                .send(Message::from(["a", "b"]), &mut pipes)
                .expect_err("full");
            assert!(err.error.is_would_block());
            assert_eq!(err.message, Message::from(["a", "b"]));
            // Nothing outstanding: a failed send does not flip the state.
            assert!(matches!(req.recv(&mut pipes), Err(Error::InvalidState(_))));
        }
    }

    // ----- connection loss: Error::PeerLost (default) -----

    #[test]
    fn lost_connection_fails_recv_once_then_idle() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        assert!(pipes.pop_outbound(a).is_some(), "request written");
        pipes.take_app_wakeup();
        lose(&mut req, &mut pipes, a);
        assert!(
            pipes.take_app_wakeup(),
            "a recv blocked in another thread must wake"
        );
        assert!(is_peer_lost(req.recv(&mut pipes), "tcp://peer:1"));
        // Exactly once: the socket is idle now.
        assert!(matches!(req.recv(&mut pipes), Err(Error::InvalidState(_))));
        reconnect(&mut req, &mut pipes, a);
        req.send("q2".into(), &mut pipes).expect("send again");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from(["", "q2"])));
        pipes.deliver(a, reply("r2"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r2"));
    }

    #[test]
    fn unwritten_request_is_not_sent_after_reconnect() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        // The connection drops before the engine wrote the request.
        lose(&mut req, &mut pipes, a);
        assert_eq!(pipes.get(a).map(|p| p.outbound_len()), Some(0));
        assert!(is_peer_lost(req.recv(&mut pipes), "tcp://peer:1"));
        reconnect(&mut req, &mut pipes, a);
        assert_eq!(pipes.pop_outbound(a), None, "abandoned request stays dead");
    }

    #[test]
    fn reply_that_arrived_before_the_loss_is_delivered() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        pipes.pop_outbound(a);
        pipes.deliver(a, reply("just in time"));
        lose(&mut req, &mut pipes, a);
        assert_eq!(
            req.recv(&mut pipes).expect("reply"),
            Message::from("just in time")
        );
        assert!(matches!(req.recv(&mut pipes), Err(Error::InvalidState(_))));
    }

    #[test]
    fn junk_before_the_loss_is_read_then_peer_lost() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        pipes.deliver(a, Message::from(["not a reply"]));
        lose(&mut req, &mut pipes, a);
        // After a reconnect the new connection sends something too; it is
        // not read as part of the lost connection's leftovers.
        reconnect(&mut req, &mut pipes, a);
        pipes.deliver(a, reply("from the new connection"));
        assert!(is_peer_lost(req.recv(&mut pipes), "tcp://peer:1"));
        assert_eq!(pipes.stats.dropped_malformed, 1);
        assert_eq!(pipes.get(a).map(|p| p.inbound_len()), Some(1));
        // Sending discards it as stale.
        req.send("q2".into(), &mut pipes).expect("send");
        assert_eq!(pipes.stats.dropped_unexpected, 1);
    }

    #[test]
    fn accepted_peer_loss_reports_once() {
        // An accepted connection: peer_lost, then the pipe is orphaned and
        // detached (what close_engine does).
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        req.peer_lost(a, &mut pipes);
        pipes.clear_outbound(a);
        pipes.take_app_wakeup();
        assert!(pipes.orphan(a), "empty orphan is removed at once");
        assert!(pipes.take_app_wakeup());
        req.detach(a, &mut pipes);
        pipes.remove(a);
        assert!(is_peer_lost(req.recv(&mut pipes), "tcp://peer:1"));
        assert!(matches!(req.recv(&mut pipes), Err(Error::InvalidState(_))));
    }

    #[test]
    fn accepted_peer_reply_before_loss_is_delivered() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        pipes.deliver(a, reply("last words"));
        req.peer_lost(a, &mut pipes);
        assert!(!pipes.orphan(a), "kept until its inbound is read");
        assert_eq!(
            req.recv(&mut pipes).expect("reply"),
            Message::from("last words")
        );
        assert_eq!(pipes.take_dead(), vec![a]);
        req.detach(a, &mut pipes);
        pipes.remove(a);
        assert!(matches!(req.recv(&mut pipes), Err(Error::InvalidState(_))));
    }

    #[test]
    fn detach_of_reply_pipe_fails_request() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q".into(), &mut pipes).expect("send");
        req.detach(a, &mut pipes);
        pipes.remove(a);
        assert!(is_peer_lost(req.recv(&mut pipes), "tcp://peer:1"));
        req.send("q2".into(), &mut pipes).expect("send to b");
        assert!(pipes.pop_outbound(b).is_some());
    }

    #[test]
    fn loss_of_another_pipe_changes_nothing() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q".into(), &mut pipes).expect("send");
        lose(&mut req, &mut pipes, b);
        assert!(req.recv(&mut pipes).expect_err("waiting").is_would_block());
        assert_eq!(pipes.get(a).map(|p| p.outbound_len()), Some(1));
        pipes.deliver(a, reply("r"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r"));
    }

    #[test]
    fn strict_send_after_loss_needs_the_error_read_first() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        lose(&mut req, &mut pipes, a);
        let err = req.send("q2".into(), &mut pipes).expect_err("error unread");
        assert!(matches!(err.error, Error::InvalidState(_)));
        assert!(is_peer_lost(req.recv(&mut pipes), "tcp://peer:1"));
    }

    // ----- req_resend -----

    #[test]
    fn resend_goes_to_another_connected_peer() {
        let mut req = with(false, false, true);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q".into(), &mut pipes).expect("send");
        let (id1, body) = take_request(&mut pipes, a);
        assert_eq!(body, Message::from("q"));
        assert_eq!(id1, Some(42), "resend implies ids");
        lose(&mut req, &mut pipes, a);
        let (id2, body) = take_request(&mut pipes, b);
        assert_eq!(body, Message::from("q"));
        assert_eq!(id2, Some(43), "each copy has a fresh id");
        assert!(req.recv(&mut pipes).expect_err("waiting").is_would_block());
        // A reconnected `a` somehow answers the lost copy: stale.
        reconnect(&mut req, &mut pipes, a);
        pipes.deliver(a, reply_to(42, "stale"));
        pipes.deliver(b, reply_to(42, "also stale"));
        pipes.deliver(b, reply_to(43, "fresh"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("fresh"));
        assert_eq!(pipes.stats.dropped_unexpected, 2);
        assert_eq!(pipes.get(a).map(|p| p.outbound_len()), Some(0));
    }

    #[test]
    fn resend_waits_for_the_same_pipe_to_reconnect() {
        let mut req = with(false, false, true);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        // Lost before it was even written.
        lose(&mut req, &mut pipes, a);
        assert_eq!(pipes.get(a).map(|p| p.outbound_len()), Some(0));
        assert!(req.recv(&mut pipes).expect_err("pending").is_would_block());
        assert!(req.recv(&mut pipes).expect_err("pending").is_would_block());
        reconnect(&mut req, &mut pipes, a);
        let (id, body) = take_request(&mut pipes, a);
        assert_eq!((id, body), (Some(43), Message::from("q")));
        assert_eq!(pipes.pop_outbound(a), None, "sent exactly once");
        pipes.deliver(a, reply_to(43, "r"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r"));
    }

    #[test]
    fn resend_retries_on_recv_when_peers_are_full() {
        let mut req = with(false, false, true);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 1);
        let b = connect(&mut req, &mut pipes, 2, 1);
        pipes.write(b, "filler".into()).expect("fill b");
        req.send("q".into(), &mut pipes).expect("send");
        take_request(&mut pipes, a);
        lose(&mut req, &mut pipes, a);
        assert_eq!(pipes.get(b).map(|p| p.outbound_len()), Some(1));
        assert!(req.recv(&mut pipes).expect_err("b full").is_would_block());
        pipes.pop_outbound(b);
        assert!(req.recv(&mut pipes).expect_err("sent now").is_would_block());
        let (id, body) = take_request(&mut pipes, b);
        assert_eq!((id, body), (Some(43), Message::from("q")));
        pipes.deliver(b, reply_to(43, "r"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r"));
    }

    #[test]
    fn resend_after_detach_happens_on_recv() {
        let mut req = with(false, false, true);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q".into(), &mut pipes).expect("send");
        req.detach(a, &mut pipes);
        pipes.remove(a);
        assert_eq!(pipes.get(b).map(|p| p.outbound_len()), Some(0));
        assert!(req.recv(&mut pipes).expect_err("waiting").is_would_block());
        let (id, _) = take_request(&mut pipes, b);
        pipes.deliver(b, reply_to(id.expect("id"), "r"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r"));
    }

    #[test]
    fn resend_keeps_a_reply_that_arrived_before_the_loss() {
        let mut req = with(false, false, true);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q".into(), &mut pipes).expect("send");
        let (id, _) = take_request(&mut pipes, a);
        pipes.deliver(a, reply_to(id.expect("id"), "r"));
        lose(&mut req, &mut pipes, a);
        assert_eq!(pipes.get(b).map(|p| p.outbound_len()), Some(0));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r"));
        assert_eq!(pipes.get(b).map(|p| p.outbound_len()), Some(0), "no resend");
    }

    #[test]
    fn resend_after_unanswered_leftovers() {
        let mut req = with(false, false, true);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q".into(), &mut pipes).expect("send");
        take_request(&mut pipes, a);
        pipes.deliver(a, reply_to(7, "someone else's"));
        lose(&mut req, &mut pipes, a);
        assert!(req.recv(&mut pipes).expect_err("resent").is_would_block());
        assert_eq!(pipes.stats.dropped_unexpected, 1);
        let (id, _) = take_request(&mut pipes, b);
        pipes.deliver(b, reply_to(id.expect("id"), "r"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r"));
    }

    #[test]
    fn a_request_stuck_on_an_unconnected_pipe_moves_to_the_first_ready_peer() {
        for (correlate, resend) in [(false, false), (true, false), (false, true)] {
            let mut req = with(false, correlate, resend);
            let mut pipes = Pipes::new();
            // Pipe 1 connects to a server that never comes up.
            pipes.insert(PipeId(1), 0, 0);
            req.attach(PipeId(1), &mut pipes);
            req.send("q".into(), &mut pipes).expect("queued");
            let b = connect(&mut req, &mut pipes, 2, 0);
            assert_eq!(pipes.get(PipeId(1)).map(|p| p.outbound_len()), Some(0));
            // The same request, with the same id: nothing of it was sent.
            let (id, body) = take_request(&mut pipes, b);
            let want_id = (correlate || resend).then_some(42);
            assert_eq!((id, body), (want_id, Message::from("q")));
            let reply = match id {
                Some(id) => reply_to(id, "r"),
                None => Message::from_frames(["", "r"]),
            };
            pipes.deliver(b, reply);
            assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r"));
        }
    }

    #[test]
    fn resend_survives_repeated_losses() {
        let mut req = with(false, true, true);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        for _ in 0..5 {
            take_request(&mut pipes, a);
            lose(&mut req, &mut pipes, a);
            assert!(req.recv(&mut pipes).expect_err("pending").is_would_block());
            reconnect(&mut req, &mut pipes, a);
        }
        let (id, body) = take_request(&mut pipes, a);
        assert_eq!((id, body), (Some(47), Message::from("q")));
        for old in 42..47 {
            pipes.deliver(a, reply_to(old, "stale"));
        }
        pipes.deliver(a, reply_to(47, "r"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r"));
        assert_eq!(pipes.stats.dropped_unexpected, 5);
        assert_eq!(pipes.stats.requests_resent, 5);
    }

    // ----- req_correlate -----

    #[test]
    fn correlate_wire_format_and_matching() {
        let mut req = with(false, true, false);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send(Message::from(["x", "y"]), &mut pipes)
            .expect("send");
        assert_eq!(
            pipes.pop_outbound(a),
            Some(Message::from_frames([
                id_frame(42),
                Bytes::new(),
                Bytes::from_static(b"x"),
                Bytes::from_static(b"y"),
            ]))
        );
        pipes.deliver(a, reply_to(41, "old"));
        pipes.deliver(a, reply("no id"));
        pipes.deliver(a, Message::from_frames([id_frame(42), Bytes::new()]));
        pipes.deliver(a, reply_to(42, "right"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("right"));
        assert_eq!(pipes.stats.dropped_unexpected, 1);
        assert_eq!(pipes.stats.dropped_malformed, 2);
        // Ids keep counting.
        req.send("z".into(), &mut pipes).expect("send");
        assert_eq!(take_request(&mut pipes, a).0, Some(43));
    }

    #[test]
    fn correlate_ids_wrap_around() {
        let mut req = Req::with_seed(u64::from(u32::MAX));
        req.configure(&PatternOptions {
            req_correlate: true,
            ..PatternOptions::default()
        });
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q".into(), &mut pipes).expect("send");
        assert_eq!(take_request(&mut pipes, a).0, Some(0));
    }

    #[test]
    fn random_first_id() {
        let ids: std::collections::HashSet<u32> = (0..8).map(|_| Req::new().last_id).collect();
        assert!(ids.len() > 1, "ids start at random values");
    }

    // ----- req_relaxed -----

    #[test]
    fn relaxed_without_correlate_mirrors_libzmq() {
        let mut req = with(true, false, false);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q1".into(), &mut pipes).expect("send");
        req.send("q2".into(), &mut pipes)
            .expect("relaxed: send again");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from(["", "q1"])));
        assert_eq!(pipes.pop_outbound(a), Some(Message::from(["", "q2"])));
        // Without ids the first reply from the new request's pipe wins,
        // even though it answers q1: that is why libzmq wants correlate.
        pipes.deliver(a, reply("r1"));
        pipes.deliver(a, reply("r2"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r1"));
        // r2 is discarded by the next send.
        req.send("q3".into(), &mut pipes).expect("send");
        assert_eq!(pipes.stats.dropped_unexpected, 1);
    }

    #[test]
    fn relaxed_with_correlate_discards_the_abandoned_reply() {
        let mut req = with(true, true, false);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        req.send("q1".into(), &mut pipes).expect("send");
        req.send("q2".into(), &mut pipes)
            .expect("relaxed: send again");
        let (id1, _) = take_request(&mut pipes, a);
        let (id2, _) = take_request(&mut pipes, a);
        pipes.deliver(a, reply_to(id1.expect("id"), "r1"));
        pipes.deliver(a, reply_to(id2.expect("id"), "r2"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r2"));
        assert_eq!(pipes.stats.dropped_unexpected, 1);
    }

    #[test]
    fn relaxed_send_after_loss_drops_the_error() {
        let mut req = with(true, true, false);
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q1".into(), &mut pipes).expect("send");
        lose(&mut req, &mut pipes, a);
        req.send("q2".into(), &mut pipes).expect("relaxed");
        let (id, _) = take_request(&mut pipes, b);
        pipes.deliver(b, reply_to(id.expect("id"), "r2"));
        assert_eq!(req.recv(&mut pipes).expect("reply"), Message::from("r2"));
    }
}
