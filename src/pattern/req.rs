//! REQ: the client side of request-reply (RFC 28).
//!
//! Strict alternation: one request out, then exactly one reply in. Requests
//! are load-balanced; the reply is accepted only from the pipe the request
//! went to, so that a stale reply from another peer is never mistaken for
//! the answer.

use super::*;

/// REQ socket logic.
#[derive(Debug, Default)]
pub struct Req {
    lb: LoadBalancer,
    /// The pipe the outstanding request went out on; `Some` while a reply
    /// is owed to us (libzmq's `_receiving_reply`).
    reply_pipe: Option<PipeId>,
}

impl Req {
    /// A REQ ready to send its first request.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pipe carrying the outstanding request is gone. libzmq (without
    /// `ZMQ_REQ_RELAXED`) keeps waiting: the request stays outstanding and,
    /// because pipe ids are never reused, no reply can ever match, so `recv`
    /// keeps returning `WouldBlock`. A future relaxed/correlate option would
    /// reset `reply_pipe` to `None` here so the application can resend.
    fn reply_pipe_gone(&mut self) {}
}

impl Pattern for Req {
    fn attach(&mut self, pipe: PipeId, _pipes: &mut Pipes) {
        self.lb.attach(pipe);
    }

    fn detach(&mut self, pipe: PipeId, _pipes: &mut Pipes) {
        self.lb.detach(pipe);
        if self.reply_pipe == Some(pipe) {
            self.reply_pipe_gone();
        }
    }

    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<(), SendError> {
        if self.reply_pipe.is_some() {
            return Err(SendError::new(
                Error::InvalidState("REQ must receive the reply before sending again"),
                msg,
            ));
        }
        let mut msg = check_not_empty(msg)?;
        // RFC 28: the request travels behind an empty delimiter frame so that
        // ROUTERs and REPs along the way can find where the envelope ends.
        msg.push_front(Bytes::new());
        match self.lb.send(msg, pipes) {
            Ok(pipe) => {
                self.reply_pipe = Some(pipe);
                Ok(())
            }
            Err(mut msg) => {
                // Give back exactly what the caller passed in.
                msg.pop_front();
                Err(SendError::new(Error::WouldBlock, msg))
            }
        }
    }

    fn recv(&mut self, pipes: &mut Pipes) -> Result<Message, Error> {
        let Some(expected) = self.reply_pipe else {
            return Err(Error::InvalidState(
                "REQ must send a request before receiving",
            ));
        };
        while let Some((pipe, mut msg)) = pipes.read_next() {
            if pipe != expected {
                pipes.stats.dropped_unexpected += 1;
                continue;
            }
            // A reply is the delimiter followed by at least one body frame
            // (libzmq requires the delimiter to have MORE set).
            let well_formed = msg.len() >= 2 && msg.first().is_some_and(|f| f.is_empty());
            if !well_formed {
                pipes.stats.dropped_malformed += 1;
                continue;
            }
            msg.pop_front();
            self.reply_pipe = None;
            return Ok(msg);
        }
        Err(Error::WouldBlock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(req: &mut Req, pipes: &mut Pipes, id: u64, hwm: usize) -> PipeId {
        let id = PipeId(id);
        pipes.insert(id, hwm, hwm);
        req.attach(id, pipes);
        pipes.set_peer(
            id,
            Some(PeerInfo {
                socket_type: SocketType::Rep,
                routing_id: Bytes::new(),
            }),
        );
        req.peer_ready(id, pipes).expect("REQ accepts any peer");
        id
    }

    fn reply(body: &str) -> Message {
        Message::from(["", body])
    }

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
        let mut req = Req::new();
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

    #[test]
    fn detach_of_reply_pipe_keeps_request_outstanding() {
        let mut req = Req::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut req, &mut pipes, 1, 0);
        let b = connect(&mut req, &mut pipes, 2, 0);
        req.send("q".into(), &mut pipes).expect("send");
        req.detach(a, &mut pipes);
        pipes.remove(a);
        assert!(req
            .recv(&mut pipes)
            .expect_err("still waiting")
            .is_would_block());
        pipes.deliver(b, reply("other"));
        assert!(req.recv(&mut pipes).expect_err("not ours").is_would_block());
        assert!(matches!(
            req.send("q2".into(), &mut pipes).map_err(|e| e.error),
            Err(Error::InvalidState(_))
        ));
    }
}
