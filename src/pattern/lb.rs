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
/// might never be drained.
#[derive(Debug, Default)]
pub struct LoadBalancer {
    /// Attached pipes in attach order; the rotation order.
    pipes: Vec<PipeId>,
    /// Index into `pipes` where the next search starts.
    cursor: usize,
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
        self.pipes.iter().any(|&id| pipes.can_write(id))
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
