//! Round-robin load balancing over outgoing pipes (libzmq's `lb_t`).

use super::{check_not_empty, PipeId, Pipes};
use crate::error::{Error, SendError};
use crate::message::Message;

/// Round-robin over attached pipes, preferring pipes whose peer is connected.
///
/// A connecter's pipe exists from `connect()` on, before any peer is behind
/// it. Sending to it is allowed (the message waits for the connection, which
/// makes connect-before-bind work), but only as a fallback: while some
/// connected peer can take the message, it should not sit in a queue that
/// might never be drained. And when a peer does connect, whatever waits on
/// pipes that have never connected moves to it
/// ([`LoadBalancer::rescue_stranded`]): the endpoint that was tried first
/// may never answer. With `immediate` there is no fallback at all.
#[derive(Debug, Default)]
pub struct LoadBalancer {
    /// Attached pipes in attach order; the rotation order.
    pipes: Vec<PipeId>,
    /// Index into `pipes` where the next search starts.
    cursor: usize,
    /// Queue only to connected peers (`ZMQ_IMMEDIATE`).
    immediate: bool,
}

impl LoadBalancer {
    /// An empty balancer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pipe to the rotation. Attaching twice is a no-op.
    pub fn attach(&mut self, id: PipeId) {
        if !self.pipes.contains(&id) {
            self.pipes.push(id);
        }
    }

    /// Removes a pipe from the rotation, keeping the cursor on the pipe that
    /// was next so that removal does not skip anyone's turn.
    pub fn detach(&mut self, id: PipeId) {
        if let Some(idx) = self.pipes.iter().position(|&p| p == id) {
            self.pipes.remove(idx);
            if idx < self.cursor {
                self.cursor -= 1;
            }
            if self.cursor >= self.pipes.len() {
                self.cursor = 0;
            }
        }
    }

    /// Queue only to pipes whose peer is connected (`ZMQ_IMMEDIATE`).
    pub fn set_immediate(&mut self, on: bool) {
        self.immediate = on;
    }

    /// A peer became ready on `ready`: messages waiting on pipes that have
    /// never connected move to it, oldest pipe first and in order, while
    /// it has room. Returns the pipes that messages moved from. Messages
    /// on a pipe that has connected before stay: its peer exists, and
    /// some of them may already be on the wire.
    pub fn rescue_stranded(&self, ready: PipeId, pipes: &mut Pipes) -> Vec<PipeId> {
        let mut from = Vec::new();
        for &id in &self.pipes {
            let stranded = pipes
                .get(id)
                .is_some_and(|p| !p.ever_connected() && !p.is_orphan() && p.outbound_len() > 0);
            if id != ready && stranded && pipes.move_outbound(id, ready) > 0 {
                from.push(id);
            }
        }
        from
    }

    /// The connection behind `pipe` was lost. With `immediate`, what was
    /// queued for it is dropped and counted, as libzmq drops a pipe's
    /// queue when its connection goes: the option promises that messages
    /// wait only on live peers.
    pub fn peer_lost(&self, pipe: PipeId, pipes: &mut Pipes) {
        if self.immediate {
            let dropped = pipes.clear_outbound(pipe) as u64;
            pipes.stats.dropped_peer_gone += dropped;
        }
    }

    /// Number of attached pipes.
    pub fn len(&self) -> usize {
        self.pipes.len()
    }

    /// True when no pipe is attached.
    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    /// True when [`LoadBalancer::send`] would find a pipe for a message.
    pub fn can_send(&self, pipes: &Pipes) -> bool {
        self.pipes
            .iter()
            .any(|&id| pipes.can_write(id) && (!self.immediate || pipes.is_connected(id)))
    }

    /// The whole send of a socket type that only load-balances (DEALER,
    /// PUSH): a message with frames goes to the next writable pipe, or
    /// comes back with [`Error::WouldBlock`].
    pub fn send_message(&mut self, msg: Message, pipes: &mut Pipes) -> Result<(), SendError> {
        let msg = check_not_empty(msg)?;
        self.send(msg, pipes)
            .map(|_| ())
            .map_err(|msg| SendError::new(Error::WouldBlock, msg))
    }

    /// Writes `msg` to the next writable pipe in round-robin order, connected
    /// pipes first. Returns the pipe used, or hands the message back when no
    /// pipe can take it (the caller reports [`crate::Error::WouldBlock`]).
    pub fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<PipeId, Message> {
        let msg = match self.send_pass(msg, pipes, true) {
            Ok(id) => return Ok(id),
            Err(m) if self.immediate => return Err(m),
            Err(m) => m,
        };
        self.send_pass(msg, pipes, false)
    }

    /// One sweep over all pipes starting at the cursor. With `connected`,
    /// only pipes with a peer are candidates; otherwise any writable pipe.
    fn send_pass(
        &mut self,
        mut msg: Message,
        pipes: &mut Pipes,
        connected: bool,
    ) -> Result<PipeId, Message> {
        let n = self.pipes.len();
        for step in 0..n {
            let idx = (self.cursor + step) % n;
            let id = self.pipes[idx];
            if connected && !pipes.is_connected(id) {
                continue;
            }
            if !pipes.can_write(id) {
                continue;
            }
            match pipes.write(id, msg) {
                Ok(()) => {
                    self.cursor = (idx + 1) % n;
                    return Ok(id);
                }
                // Cannot happen after `can_write`, but keep the message
                // either way and try the next pipe.
                Err(m) => msg = m,
            }
        }
        Err(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::PeerInfo;
    use crate::socket_type::SocketType;
    use bytes::Bytes;

    fn peer() -> Option<PeerInfo> {
        Some(PeerInfo {
            socket_type: SocketType::Pull,
            routing_id: Bytes::new(),
        })
    }

    fn setup(n: u64, hwm: usize, connected: bool) -> (LoadBalancer, Pipes) {
        let mut lb = LoadBalancer::new();
        let mut pipes = Pipes::new();
        for i in 1..=n {
            pipes.insert(PipeId(i), hwm, hwm);
            lb.attach(PipeId(i));
            if connected {
                pipes.set_peer(PipeId(i), peer());
            }
        }
        (lb, pipes)
    }

    #[test]
    fn round_robin_is_fair() {
        let (mut lb, mut pipes) = setup(3, 0, true);
        let used: Vec<_> = (0..6)
            .map(|i| lb.send(Message::from(vec![i as u8]), &mut pipes))
            .collect::<Result<_, _>>()
            .expect("all writable");
        assert_eq!(used, [1, 2, 3, 1, 2, 3].map(PipeId));
    }

    #[test]
    fn skips_full_pipes_and_hands_back_when_all_full() {
        let (mut lb, mut pipes) = setup(2, 1, true);
        assert_eq!(lb.send("a".into(), &mut pipes), Ok(PipeId(1)));
        assert_eq!(lb.send("b".into(), &mut pipes), Ok(PipeId(2)));
        assert_eq!(lb.send("c".into(), &mut pipes), Err(Message::from("c")));
        pipes.pop_outbound(PipeId(2));
        assert_eq!(lb.send("d".into(), &mut pipes), Ok(PipeId(2)));
    }

    #[test]
    fn prefers_connected_then_falls_back() {
        let (mut lb, mut pipes) = setup(3, 1, false);
        pipes.set_peer(PipeId(2), peer());
        // Only pipe 2 is connected: it gets the message even though the
        // cursor points at pipe 1.
        assert_eq!(lb.send("a".into(), &mut pipes), Ok(PipeId(2)));
        // Pipe 2 is full now: fall back to an unconnected pipe.
        assert_eq!(lb.send("b".into(), &mut pipes), Ok(PipeId(3)));
        assert_eq!(lb.send("c".into(), &mut pipes), Ok(PipeId(1)));
        assert!(lb.send("d".into(), &mut pipes).is_err());
    }

    #[test]
    fn stranded_messages_move_to_the_first_ready_peer() {
        let (mut lb, mut pipes) = setup(3, 2, false);
        // Nobody is connected: the messages spread over the pipes.
        for m in ["a", "b", "c", "d"] {
            assert!(lb.send(m.into(), &mut pipes).is_ok());
        }
        pipes.set_peer(PipeId(3), peer());
        // Pipe 3 holds "c" and has room for one more: "a" (pipe 1, the
        // oldest) moves; "d" and "b" stay where they are.
        assert_eq!(lb.rescue_stranded(PipeId(3), &mut pipes), vec![PipeId(1)]);
        let queued = |pipes: &mut Pipes, id| {
            std::iter::from_fn(|| pipes.pop_outbound(PipeId(id)))
                .map(|m| m.first().cloned().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(queued(&mut pipes, 3), ["c", "a"]);
        assert_eq!(queued(&mut pipes, 1), ["d"]);
        // A pipe that has connected before keeps its queue.
        assert!(pipes.write(PipeId(3), "e".into()).is_ok());
        pipes.set_peer(PipeId(3), None);
        pipes.set_peer(PipeId(1), peer());
        assert_eq!(lb.rescue_stranded(PipeId(1), &mut pipes), vec![PipeId(2)]);
        assert_eq!(queued(&mut pipes, 3), ["e"]);
        assert_eq!(queued(&mut pipes, 1), ["b"]);
    }

    #[test]
    fn immediate_queues_only_to_connected_peers() {
        let (mut lb, mut pipes) = setup(2, 2, false);
        lb.set_immediate(true);
        assert!(!lb.can_send(&pipes));
        assert_eq!(lb.send("a".into(), &mut pipes), Err(Message::from("a")));
        pipes.set_peer(PipeId(2), peer());
        assert!(lb.can_send(&pipes));
        assert_eq!(lb.send("a".into(), &mut pipes), Ok(PipeId(2)));
        assert_eq!(lb.send("b".into(), &mut pipes), Ok(PipeId(2)));
        assert!(!lb.can_send(&pipes), "the connected peer is full");
        // Its connection goes: the queue goes with it, counted.
        pipes.set_peer(PipeId(2), None);
        lb.peer_lost(PipeId(2), &mut pipes);
        assert_eq!(pipes.stats.dropped_peer_gone, 2);
        assert_eq!(pipes.get(PipeId(2)).map(|p| p.outbound_len()), Some(0));
    }

    #[test]
    fn no_pipes_hands_back() {
        let mut lb = LoadBalancer::new();
        let mut pipes = Pipes::new();
        assert_eq!(lb.send("x".into(), &mut pipes), Err(Message::from("x")));
    }

    #[test]
    fn detach_keeps_rotation() {
        let (mut lb, mut pipes) = setup(3, 0, true);
        assert_eq!(lb.send("a".into(), &mut pipes), Ok(PipeId(1)));
        assert_eq!(lb.send("b".into(), &mut pipes), Ok(PipeId(2)));
        // Cursor is on pipe 3; removing pipe 1 must not skip it.
        lb.detach(PipeId(1));
        pipes.remove(PipeId(1));
        assert_eq!(lb.send("c".into(), &mut pipes), Ok(PipeId(3)));
        assert_eq!(lb.send("d".into(), &mut pipes), Ok(PipeId(2)));
        lb.detach(PipeId(2));
        lb.detach(PipeId(3));
        assert!(lb.is_empty());
        assert!(lb.send("e".into(), &mut pipes).is_err());
    }
}
