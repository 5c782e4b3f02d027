//! PULL: the receiving end of a pipeline. Fair-queue in; never sends.

use super::*;

/// PULL socket logic. Stateless: fair queueing lives in [`Pipes`].
#[derive(Debug, Default)]
pub struct Pull;

impl Pull {
    /// A PULL socket's logic.
    pub fn new() -> Self {
        Pull
    }
}

impl Pattern for Pull {
    fn attach(&mut self, _pipe: PipeId, _pipes: &mut Pipes) {}

    fn detach(&mut self, _pipe: PipeId, _pipes: &mut Pipes) {}

    fn send(&mut self, msg: Message, _pipes: &mut Pipes) -> Result<(), SendError> {
        // libzmq answers ENOTSUP; the closest variant here is InvalidState.
        Err(SendError::new(
            Error::InvalidState("PULL sockets cannot send"),
            msg,
        ))
    }

    fn recv(&mut self, pipes: &mut Pipes) -> Result<Message, Error> {
        pipes.recv_fair()
    }

    fn has_in(&mut self, pipes: &mut Pipes) -> bool {
        pipes.peek_next().is_some()
    }

    fn has_out(&self, _pipes: &Pipes) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_queue_and_no_send() {
        let mut pull = Pull::new();
        let mut pipes = Pipes::new();
        let (a, b) = (PipeId(1), PipeId(2));
        for id in [a, b] {
            pipes.insert(id, 0, 0);
            pull.attach(id, &mut pipes);
        }
        pipes.deliver(a, "a1".into());
        pipes.deliver(a, "a2".into());
        pipes.deliver(b, Message::from(["b1", "b1-part2"]));
        assert_eq!(pull.recv(&mut pipes).expect("msg"), Message::from("a1"));
        assert_eq!(
            pull.recv(&mut pipes).expect("msg"),
            Message::from(["b1", "b1-part2"])
        );
        assert_eq!(pull.recv(&mut pipes).expect("msg"), Message::from("a2"));
        assert!(pull.recv(&mut pipes).expect_err("empty").is_would_block());

        let err = pull.send("x".into(), &mut pipes).expect_err("cannot send");
        assert!(matches!(err.error, Error::InvalidState(_)));
        assert_eq!(err.message, Message::from("x"));
        assert_eq!(pipes.get(a).map(|p| p.outbound_len()), Some(0));
    }
}
