//! PAIR: an exclusive connection to one peer.
//!
//! One peer at a time: a second peer whose handshake completes while the
//! first is connected is refused, and the I/O layer closes its connection
//! (libzmq refuses it too). Once the first peer's connection is gone,
//! whether for good or until a reconnect, the next peer to complete its
//! handshake becomes the pair.
//!
//! Before any peer, the first attached pipe (a connecter's, which exists
//! from `connect()` on) takes the messages sent, so that sending before the
//! peer is up queues them as other socket types do.

use super::*;

/// PAIR socket logic.
#[derive(Debug, Default)]
pub struct Pair {
    /// Attached pipes, in attach order.
    attached: Vec<PipeId>,
    /// Where sends go: the paired peer's pipe, or a pipe waiting for its
    /// first peer.
    current: Option<PipeId>,
    /// Attached pipes whose peer has been the pair. What they delivered is
    /// received, even after the pair moved on, so that a departed peer's
    /// last messages are not lost. Anything else is a refused peer's,
    /// delivered before its connection was closed, and is dropped.
    accepted: Vec<PipeId>,
}

impl Pair {
    /// A PAIR with no pipes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops (and counts) messages at the front of the fair-queue ring
    /// that come from pipes never paired. True when a message to receive
    /// is left at the front.
    fn skip_strays(&self, pipes: &mut Pipes) -> bool {
        while let Some((id, _)) = pipes.peek_next() {
            if self.accepted.contains(&id) {
                return true;
            }
            pipes.read_next();
            pipes.stats.dropped_unexpected += 1;
        }
        false
    }
}

impl Pattern for Pair {
    fn attach(&mut self, pipe: PipeId, _pipes: &mut Pipes) {
        if !self.attached.contains(&pipe) {
            self.attached.push(pipe);
        }
        if self.current.is_none() {
            self.current = Some(pipe);
        }
    }

    fn peer_ready(&mut self, pipe: PipeId, pipes: &mut Pipes) -> Result<(), ProtocolError> {
        if let Some(current) = self.current {
            if current != pipe && pipes.is_connected(current) {
                // A pipe paired earlier and now refused is not the pair:
                // whatever its new connection delivers is a stray.
                self.accepted.retain(|&p| p != pipe);
                return Err(ProtocolError::AlreadyPaired);
            }
        }
        self.current = Some(pipe);
        if !self.accepted.contains(&pipe) {
            self.accepted.push(pipe);
        }
        Ok(())
    }

    fn detach(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        self.attached.retain(|&p| p != pipe);
        self.accepted.retain(|&p| p != pipe);
        if self.current == Some(pipe) {
            // An orphan will never have a peer again; a connecter's pipe
            // may, and meanwhile queues what is sent.
            self.current = self
                .attached
                .iter()
                .copied()
                .find(|&p| pipes.get(p).is_some_and(|p| !p.is_orphan()));
        }
    }

    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<(), SendError> {
        let msg = check_not_empty(msg)?;
        let Some(current) = self.current else {
            return Err(SendError::new(Error::WouldBlock, msg));
        };
        pipes
            .write(current, msg)
            .map_err(|msg| SendError::new(Error::WouldBlock, msg))
    }

    fn recv(&mut self, pipes: &mut Pipes) -> Result<Message, Error> {
        if !self.skip_strays(pipes) {
            return Err(Error::WouldBlock);
        }
        pipes.recv_fair()
    }

    fn has_in(&mut self, pipes: &mut Pipes) -> bool {
        self.skip_strays(pipes)
    }

    fn has_out(&self, pipes: &Pipes) -> bool {
        self.current.is_some_and(|p| pipes.can_write(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any type will do: compatibility is checked before the pattern sees
    /// the peer.
    fn peer_info() -> Option<PeerInfo> {
        Some(PeerInfo {
            socket_type: SocketType::Dealer,
            routing_id: Bytes::new(),
        })
    }

    fn add(pair: &mut Pair, pipes: &mut Pipes, id: u64, hwm: usize) -> PipeId {
        let id = PipeId(id);
        pipes.insert(id, hwm, hwm);
        pair.attach(id, pipes);
        id
    }

    fn ready(pair: &mut Pair, pipes: &mut Pipes, id: PipeId) -> Result<(), ProtocolError> {
        pipes.set_peer(id, peer_info());
        pair.peer_ready(id, pipes)
    }

    #[test]
    fn one_peer_both_ways() {
        let mut pair = Pair::new();
        let mut pipes = Pipes::new();
        let a = add(&mut pair, &mut pipes, 1, 0);
        ready(&mut pair, &mut pipes, a).expect("the first peer is paired");
        assert!(pair.has_out(&pipes));
        pair.send("hi".into(), &mut pipes).expect("send");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from("hi")));
        assert!(!pair.has_in(&mut pipes));
        assert!(pair.recv(&mut pipes).is_err_and(|e| e.is_would_block()));
        pipes.deliver(a, "yo".into());
        assert!(pair.has_in(&mut pipes));
        assert_eq!(pair.recv(&mut pipes).ok(), Some(Message::from("yo")));
        let err = pair
            .send(Message::new(), &mut pipes)
            .expect_err("no frames");
        assert!(matches!(err.error, Error::InvalidMessage(_)));
    }

    #[test]
    fn second_peer_refused_while_first_connected() {
        let mut pair = Pair::new();
        let mut pipes = Pipes::new();
        let a = add(&mut pair, &mut pipes, 1, 0);
        ready(&mut pair, &mut pipes, a).expect("first");
        let b = add(&mut pair, &mut pipes, 2, 0);
        assert_eq!(
            ready(&mut pair, &mut pipes, b),
            Err(ProtocolError::AlreadyPaired)
        );
        // What the refused peer got in before its connection closed is
        // dropped, counted, and never reported as readiness.
        pipes.deliver(b, "intruder".into());
        assert!(!pair.has_in(&mut pipes));
        assert_eq!(pipes.stats.dropped_unexpected, 1);
        pipes.deliver(b, "again".into());
        pipes.deliver(a, "mine".into());
        assert_eq!(pair.recv(&mut pipes).ok(), Some(Message::from("mine")));
        assert_eq!(pipes.stats.dropped_unexpected, 2);
        pair.send("to a".into(), &mut pipes).expect("send");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from("to a")));
        assert_eq!(pipes.pop_outbound(b), None);
    }

    #[test]
    fn next_peer_pairs_once_the_first_is_gone() {
        let mut pair = Pair::new();
        let mut pipes = Pipes::new();
        let a = add(&mut pair, &mut pipes, 1, 0);
        ready(&mut pair, &mut pipes, a).expect("first");
        pipes.deliver(a, "last words".into());
        // An accepted peer disconnects: its pipe is orphaned but still
        // holds a message, so it stays attached for now.
        pair.peer_lost(a, &mut pipes);
        assert!(!pipes.orphan(a));
        assert!(!pair.has_out(&pipes), "nobody to send to");
        let b = add(&mut pair, &mut pipes, 2, 0);
        ready(&mut pair, &mut pipes, b).expect("the first is gone");
        pair.send("to b".into(), &mut pipes).expect("send");
        assert_eq!(pipes.pop_outbound(b), Some(Message::from("to b")));
        // The first peer's last message still arrives.
        assert_eq!(
            pair.recv(&mut pipes).ok(),
            Some(Message::from("last words"))
        );
        assert_eq!(pipes.take_dead(), vec![a]);
        pair.detach(a, &mut pipes);
        pipes.remove(a);
        pipes.deliver(b, "from b".into());
        assert_eq!(pair.recv(&mut pipes).ok(), Some(Message::from("from b")));
    }

    #[test]
    fn queues_before_the_peer_and_blocks_at_the_hwm() {
        let mut pair = Pair::new();
        let mut pipes = Pipes::new();
        let err = pair.send("x".into(), &mut pipes).expect_err("no pipe");
        assert!(err.error.is_would_block());
        assert_eq!(err.message, Message::from("x"));
        assert!(!pair.has_out(&pipes));

        // A connecter's pipe, before its peer: sends queue up to the HWM.
        let a = add(&mut pair, &mut pipes, 1, 1);
        assert!(pair.has_out(&pipes));
        pair.send("early".into(), &mut pipes).expect("queued");
        assert!(!pair.has_out(&pipes));
        let err = pair.send("late".into(), &mut pipes).expect_err("at HWM");
        assert!(err.error.is_would_block());
        ready(&mut pair, &mut pipes, a).expect("paired");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from("early")));
        assert!(pair.has_out(&pipes));
    }

    #[test]
    fn a_connecter_reconnecting_stays_the_pair() {
        let mut pair = Pair::new();
        let mut pipes = Pipes::new();
        let a = add(&mut pair, &mut pipes, 1, 0);
        ready(&mut pair, &mut pipes, a).expect("first");
        pipes.set_peer(a, None);
        pair.peer_lost(a, &mut pipes);
        pair.send("while down".into(), &mut pipes).expect("queues");
        ready(&mut pair, &mut pipes, a).expect("the same pipe again");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from("while down")));
    }

    #[test]
    fn detaching_the_pair_falls_back_to_a_waiting_pipe() {
        let mut pair = Pair::new();
        let mut pipes = Pipes::new();
        let a = add(&mut pair, &mut pipes, 1, 0);
        ready(&mut pair, &mut pipes, a).expect("first");
        let b = add(&mut pair, &mut pipes, 2, 0);
        pair.detach(a, &mut pipes);
        pipes.remove(a);
        // b's connecter has no peer yet but queues what is sent.
        pair.send("for b".into(), &mut pipes).expect("queued on b");
        ready(&mut pair, &mut pipes, b).expect("b pairs");
        assert_eq!(pipes.pop_outbound(b), Some(Message::from("for b")));
        pair.detach(b, &mut pipes);
        pipes.remove(b);
        assert!(!pair.has_out(&pipes));
        assert!(pair.send("x".into(), &mut pipes).is_err());
    }
}
