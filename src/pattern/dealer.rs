//! DEALER: asynchronous request-reply. Round-robin out, fair-queue in, no
//! envelope handling (the application sees and supplies every frame).

use super::*;

/// DEALER socket logic.
#[derive(Debug, Default)]
pub struct Dealer {
    lb: LoadBalancer,
}

impl Dealer {
    /// A DEALER with no pipes yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Pattern for Dealer {
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

    fn recv(&mut self, pipes: &mut Pipes) -> Result<Message, Error> {
        pipes.recv_fair()
    }

    fn has_in(&mut self, pipes: &mut Pipes) -> bool {
        pipes.peek_next().is_some()
    }

    fn has_out(&self, pipes: &Pipes) -> bool {
        self.lb.can_send(pipes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(d: &mut Dealer, pipes: &mut Pipes, id: u64, hwm: usize) -> PipeId {
        let id = PipeId(id);
        pipes.insert(id, hwm, hwm);
        d.attach(id, pipes);
        pipes.set_peer(
            id,
            Some(PeerInfo {
                socket_type: SocketType::Router,
                routing_id: Bytes::new(),
            }),
        );
        d.peer_ready(id, pipes).expect("DEALER accepts any peer");
        id
    }

    #[test]
    fn round_robin_out_without_envelope() {
        let mut d = Dealer::new();
        let mut pipes = Pipes::new();
        let ids: Vec<_> = (1..=3).map(|i| connect(&mut d, &mut pipes, i, 0)).collect();
        for i in 0..6u8 {
            d.send(Message::from_frames([vec![i], vec![]]), &mut pipes)
                .expect("send");
        }
        for (k, id) in ids.iter().enumerate() {
            let k = k as u8;
            assert_eq!(
                pipes.pop_outbound(*id),
                Some(Message::from_frames([vec![k], vec![]]))
            );
            assert_eq!(
                pipes.pop_outbound(*id),
                Some(Message::from_frames([vec![k + 3], vec![]]))
            );
            assert_eq!(pipes.pop_outbound(*id), None);
        }
    }

    #[test]
    fn fair_queue_in() {
        let mut d = Dealer::new();
        let mut pipes = Pipes::new();
        let a = connect(&mut d, &mut pipes, 1, 0);
        let b = connect(&mut d, &mut pipes, 2, 0);
        pipes.deliver(a, "a1".into());
        pipes.deliver(a, "a2".into());
        pipes.deliver(b, Message::from(["b1", "x"]));
        assert_eq!(d.recv(&mut pipes).expect("msg"), Message::from("a1"));
        assert_eq!(d.recv(&mut pipes).expect("msg"), Message::from(["b1", "x"]));
        assert_eq!(d.recv(&mut pipes).expect("msg"), Message::from("a2"));
        assert!(d.recv(&mut pipes).expect_err("empty").is_would_block());
    }

    #[test]
    fn would_block_when_nothing_writable() {
        let mut d = Dealer::new();
        let mut pipes = Pipes::new();
        let err = d.send("x".into(), &mut pipes).expect_err("no pipes");
        assert!(err.error.is_would_block());
        assert_eq!(err.message, Message::from("x"));
        let a = connect(&mut d, &mut pipes, 1, 1);
        d.send("1".into(), &mut pipes).expect("send");
        let err = d.send("2".into(), &mut pipes).expect_err("full");
        assert!(err.error.is_would_block());
        assert_eq!(err.message, Message::from("2"));
        pipes.pop_outbound(a);
        d.send("2".into(), &mut pipes).expect("space again");
        let err = d.send(Message::new(), &mut pipes).expect_err("empty");
        assert!(matches!(err.error, Error::InvalidMessage(_)));
    }
}
