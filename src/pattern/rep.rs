//! REP: the service side of request-reply (RFC 28).
//!
//! Requests are fair-queued from all peers. Each request carries an
//! envelope (any address frames added by ROUTERs on the way, then an empty
//! delimiter); REP keeps it and puts it back on the reply so the reply can
//! retrace the request's path.

use super::*;

/// Where the reply to the request being served must go.
#[derive(Debug)]
struct Pending {
    pipe: PipeId,
    /// All frames up to and including the empty delimiter.
    envelope: Message,
}

/// REP socket logic.
#[derive(Debug, Default)]
pub struct Rep {
    /// `Some` while the application owes a reply (libzmq's `_sending_reply`).
    pending: Option<Pending>,
}

impl Rep {
    /// A REP waiting for its first request.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Splits a request into its envelope (through the first empty frame) and
/// body. `None` when there is no delimiter or no body: libzmq drops those.
/// Whether `split_envelope` would accept `msg`: a delimiter with at least
/// one body frame after it.
fn is_request(msg: &Message) -> bool {
    msg.iter()
        .position(|f| f.is_empty())
        .is_some_and(|delim| delim + 1 < msg.len())
}

fn split_envelope(mut msg: Message) -> Option<(Message, Message)> {
    let delim = msg.iter().position(|f| f.is_empty())?;
    let body = msg.split_off(delim + 1);
    if body.is_empty() {
        return None;
    }
    Some((msg, body))
}

impl Pattern for Rep {
    fn attach(&mut self, _pipe: PipeId, _pipes: &mut Pipes) {}

    fn detach(&mut self, _pipe: PipeId, _pipes: &mut Pipes) {
        // The reply stays owed even if its pipe goes: the application will
        // still call `send`, which then counts the drop (libzmq behaviour).
    }

    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<(), SendError> {
        let Some(pending) = self.pending.take() else {
            return Err(SendError::new(
                Error::InvalidState("REP must receive a request before sending"),
                msg,
            ));
        };
        let msg = match check_not_empty(msg) {
            Ok(msg) => msg,
            Err(e) => {
                // A refused reply leaves the request still owed.
                self.pending = Some(pending);
                return Err(e);
            }
        };
        let Pending { pipe, mut envelope } = pending;
        envelope.extend(msg);
        // Gone means removed, or orphaned (an accepted peer disconnected
        // and the pipe lingers only until its inbound is drained).
        if pipes.get(pipe).is_none_or(|p| p.is_orphan()) {
            pipes.stats.dropped_peer_gone += 1;
        } else if pipes.write(pipe, envelope).is_err() {
            // libzmq's REP routes replies like a non-mandatory ROUTER: a
            // full pipe drops the reply rather than blocking the service.
            pipes.drop_at_hwm(pipe);
        }
        Ok(())
    }

    fn recv(&mut self, pipes: &mut Pipes) -> Result<Message, Error> {
        if self.pending.is_some() {
            return Err(Error::InvalidState(
                "REP must send the reply before receiving again",
            ));
        }
        while let Some((pipe, msg)) = pipes.read_next() {
            match split_envelope(msg) {
                Some((envelope, body)) => {
                    self.pending = Some(Pending { pipe, envelope });
                    return Ok(body);
                }
                None => pipes.stats.dropped_malformed += 1,
            }
        }
        Err(Error::WouldBlock)
    }

    fn has_in(&mut self, pipes: &mut Pipes) -> bool {
        if self.pending.is_some() {
            return false;
        }
        while let Some((_, msg)) = pipes.peek_next() {
            if is_request(msg) {
                return true;
            }
            pipes.read_next();
            pipes.stats.dropped_malformed += 1;
        }
        false
    }

    /// A reply is never refused for lack of room (it is dropped and
    /// counted instead), so a REP can send whenever it owes one.
    fn has_out(&self, _pipes: &Pipes) -> bool {
        self.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(rep: &mut Rep, pipes: &mut Pipes, id: u64, hwm: usize) -> PipeId {
        let id = PipeId(id);
        pipes.insert(id, hwm, hwm);
        rep.attach(id, pipes);
        pipes.set_peer(
            id,
            Some(PeerInfo {
                socket_type: SocketType::Req,
                routing_id: Bytes::new(),
            }),
        );
        rep.peer_ready(id, pipes).expect("REP accepts any peer");
        id
    }

    #[test]
    fn alternation() {
        let mut rep = Rep::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut rep, &mut pipes, 1, 0);
        let err = rep
            .send("r".into(), &mut pipes)
            .expect_err("nothing to answer");
        assert!(matches!(err.error, Error::InvalidState(_)));
        assert_eq!(err.message, Message::from("r"));
        assert!(rep.recv(&mut pipes).expect_err("idle").is_would_block());

        pipes.deliver(a, Message::from(["", "q1"]));
        pipes.deliver(a, Message::from(["", "q2"]));
        assert_eq!(rep.recv(&mut pipes).expect("request"), Message::from("q1"));
        assert!(matches!(rep.recv(&mut pipes), Err(Error::InvalidState(_))));
        // An empty reply is refused without losing the pending request.
        let err = rep.send(Message::new(), &mut pipes).expect_err("empty");
        assert!(matches!(err.error, Error::InvalidMessage(_)));
        rep.send("r1".into(), &mut pipes).expect("reply");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from(["", "r1"])));
        assert_eq!(rep.recv(&mut pipes).expect("request"), Message::from("q2"));
    }

    #[test]
    fn envelope_with_address_frames_is_preserved() {
        let mut rep = Rep::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut rep, &mut pipes, 1, 0);
        let b = connect(&mut rep, &mut pipes, 2, 0);
        pipes.deliver(b, Message::from(["addr1", "addr2", "", "body", "more"]));
        assert_eq!(
            rep.recv(&mut pipes).expect("request"),
            Message::from(["body", "more"])
        );
        rep.send(Message::from(["r1", "r2"]), &mut pipes)
            .expect("reply");
        assert_eq!(
            pipes.pop_outbound(b),
            Some(Message::from(["addr1", "addr2", "", "r1", "r2"]))
        );
        assert_eq!(pipes.pop_outbound(a), None);
    }

    #[test]
    fn body_may_contain_empty_frames() {
        let mut rep = Rep::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut rep, &mut pipes, 1, 0);
        pipes.deliver(a, Message::from(["", "x", "", "y"]));
        assert_eq!(
            rep.recv(&mut pipes).expect("request"),
            Message::from(["x", "", "y"])
        );
    }

    #[test]
    fn readiness_skips_what_recv_would_drop() {
        let mut rep = Rep::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut rep, &mut pipes, 1, 0);
        assert!(!rep.has_in(&mut pipes));
        assert!(!rep.has_out(&pipes), "owes no reply");
        pipes.deliver(a, Message::from(["no", "delimiter"]));
        assert!(!rep.has_in(&mut pipes), "a malformed request is not input");
        assert_eq!(pipes.stats.dropped_malformed, 1);
        pipes.deliver(a, Message::from(["", "ok"]));
        assert!(rep.has_in(&mut pipes));
        assert!(rep.has_in(&mut pipes), "checking consumes nothing");
        assert_eq!(rep.recv(&mut pipes).expect("request"), Message::from("ok"));
        assert!(rep.has_out(&pipes), "owes a reply");
        assert!(!rep.has_in(&mut pipes), "must reply first");
    }

    #[test]
    fn malformed_requests_are_dropped() {
        let mut rep = Rep::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut rep, &mut pipes, 1, 0);
        pipes.deliver(a, Message::from(["no", "delimiter"]));
        pipes.deliver(a, Message::from(["addr", ""])); // no body
        assert!(rep.recv(&mut pipes).expect_err("all bad").is_would_block());
        assert_eq!(pipes.stats.dropped_malformed, 2);
        pipes.deliver(a, Message::from(["", "ok"]));
        assert_eq!(rep.recv(&mut pipes).expect("request"), Message::from("ok"));
    }

    #[test]
    fn fair_queues_requests() {
        let mut rep = Rep::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut rep, &mut pipes, 1, 0);
        let b = connect(&mut rep, &mut pipes, 2, 0);
        pipes.deliver(a, Message::from(["", "a1"]));
        pipes.deliver(a, Message::from(["", "a2"]));
        pipes.deliver(b, Message::from(["", "b1"]));
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(rep.recv(&mut pipes).expect("request"));
            rep.send("r".into(), &mut pipes).expect("reply");
        }
        assert_eq!(order, ["a1", "b1", "a2"].map(Message::from));
        assert_eq!(pipes.get(a).map(|p| p.outbound_len()), Some(2));
        assert_eq!(pipes.get(b).map(|p| p.outbound_len()), Some(1));
    }

    #[test]
    fn reply_to_detached_peer_is_counted() {
        let mut rep = Rep::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut rep, &mut pipes, 1, 0);
        pipes.deliver(a, Message::from(["", "q"]));
        rep.recv(&mut pipes).expect("request");
        rep.detach(a, &mut pipes);
        pipes.remove(a);
        rep.send("r".into(), &mut pipes).expect("dropped, but ok");
        assert_eq!(pipes.stats.dropped_peer_gone, 1);
        // Back to receiving.
        assert!(rep.recv(&mut pipes).expect_err("idle").is_would_block());
    }

    #[test]
    fn reply_to_orphaned_peer_is_counted_as_gone() {
        let mut rep = Rep::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut rep, &mut pipes, 1, 0);
        pipes.deliver(a, Message::from(["", "q"]));
        rep.recv(&mut pipes).expect("request");
        pipes.orphan(a);
        rep.send("r".into(), &mut pipes).expect("dropped, but ok");
        assert_eq!(pipes.stats.dropped_peer_gone, 1);
        assert_eq!(pipes.stats.dropped_hwm, 0);
    }

    #[test]
    fn reply_to_full_pipe_is_dropped() {
        let mut rep = Rep::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut rep, &mut pipes, 1, 1);
        pipes.write(a, "filler".into()).expect("fill the HWM");
        pipes.deliver(a, Message::from(["", "q"]));
        rep.recv(&mut pipes).expect("request");
        rep.send("r".into(), &mut pipes).expect("dropped, but ok");
        assert_eq!(pipes.stats.dropped_hwm, 1);
        assert_eq!(pipes.get(a).map(|p| p.outbound_len()), Some(1));
        assert!(rep.recv(&mut pipes).expect_err("idle").is_would_block());
    }
}
