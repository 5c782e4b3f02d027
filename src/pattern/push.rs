//! PUSH: the sending end of a pipeline. Round-robin out; never receives.

use super::*;

/// PUSH socket logic.
#[derive(Debug, Default)]
pub struct Push {
    lb: LoadBalancer,
}

impl Push {
    /// A PUSH with no pipes yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Pattern for Push {
    fn attach(&mut self, pipe: PipeId, _pipes: &mut Pipes) {
        self.lb.attach(pipe);
    }

    fn peer_ready(&mut self, pipe: PipeId, pipes: &mut Pipes) -> Result<(), ProtocolError> {
        self.lb.rescue_stranded(pipe, pipes);
        Ok(())
    }

    fn peer_lost(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        self.lb.peer_lost(pipe, pipes);
    }

    fn detach(&mut self, pipe: PipeId, _pipes: &mut Pipes) {
        self.lb.detach(pipe);
    }

    fn configure(&mut self, opts: &PatternOptions) {
        self.lb.set_immediate(opts.immediate);
    }

    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<(), SendError> {
        self.lb.send_message(msg, pipes)
    }

    fn recv(&mut self, _pipes: &mut Pipes) -> Result<Message, Error> {
        // libzmq answers ENOTSUP; the closest variant here is InvalidState.
        Err(Error::InvalidState("PUSH sockets cannot receive"))
    }

    fn has_in(&mut self, _pipes: &mut Pipes) -> bool {
        false
    }

    fn has_out(&self, pipes: &Pipes) -> bool {
        self.lb.can_send(pipes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_and_no_recv() {
        let mut push = Push::new();
        let mut pipes = Pipes::new();
        for i in 1..=2 {
            let id = PipeId(i);
            pipes.insert(id, 0, 0);
            push.attach(id, &mut pipes);
            pipes.set_peer(
                id,
                Some(PeerInfo {
                    socket_type: SocketType::Pull,
                    routing_id: Bytes::new(),
                }),
            );
            push.peer_ready(id, &mut pipes).expect("ready");
        }
        for m in ["1", "2", "3"] {
            push.send(m.into(), &mut pipes).expect("send");
        }
        assert_eq!(pipes.pop_outbound(PipeId(1)), Some(Message::from("1")));
        assert_eq!(pipes.pop_outbound(PipeId(2)), Some(Message::from("2")));
        assert_eq!(pipes.pop_outbound(PipeId(1)), Some(Message::from("3")));
        pipes.deliver(PipeId(1), "stray".into());
        assert!(matches!(push.recv(&mut pipes), Err(Error::InvalidState(_))));
        push.detach(PipeId(1), &mut pipes);
        pipes.remove(PipeId(1));
        push.send("4".into(), &mut pipes).expect("send");
        assert_eq!(pipes.pop_outbound(PipeId(2)), Some(Message::from("4")));
    }

    #[test]
    fn would_block_without_pipes() {
        let mut push = Push::new();
        let mut pipes = Pipes::new();
        let err = push.send("x".into(), &mut pipes).expect_err("no pipes");
        assert!(err.error.is_would_block());
        assert_eq!(err.message, Message::from("x"));
    }
}
