//! ROUTER: addresses peers by routing id.
//!
//! Every peer gets a routing id when its handshake completes: the
//! `Identity` it announced, or a generated one. Received messages are
//! prefixed with the sender's id; sent messages start with the id of the
//! peer to send to, which is stripped before the message goes out.

use super::*;
use crate::id_map::IdMap;
use std::collections::HashMap;

/// ROUTER socket logic.
#[derive(Debug)]
pub struct Router {
    /// `router_mandatory`: report unroutable or full instead of dropping.
    mandatory: bool,
    /// Next generated routing id. Seeded so that ids differ between runs
    /// (and between sockets), as libzmq seeds it from a random number.
    next_id: u32,
    /// Routable peers: only pipes whose peer is ready. Keyed by what peers
    /// chose, so it keeps std's flood-resistant hasher.
    routes: HashMap<Bytes, PipeId>,
    /// The id to prefix on messages read from each pipe. Outlives the
    /// route on `peer_lost` so that messages already queued from the lost
    /// connection are still attributed; replaced on the next `peer_ready`
    /// and removed on `detach`.
    labels: IdMap<PipeId, Bytes>,
}

impl Router {
    /// A ROUTER whose generated ids start at a value derived from `seed`.
    pub fn new(seed: u64) -> Self {
        Router {
            mandatory: false,
            next_id: (seed ^ (seed >> 32)) as u32,
            routes: HashMap::new(),
            labels: IdMap::default(),
        }
    }

    /// A fresh 5-byte id: a zero byte (ids starting with 0 are reserved for
    /// generated ones by convention) then a big-endian counter. Skips ids in
    /// use, which can only happen if a peer announced such an id itself;
    /// the loop ends because at most `routes.len()` candidates are taken.
    fn generate_id(&mut self) -> Bytes {
        loop {
            let mut buf = [0u8; 5];
            buf[1..].copy_from_slice(&self.next_id.to_be_bytes());
            self.next_id = self.next_id.wrapping_add(1);
            let id = Bytes::copy_from_slice(&buf);
            if !self.routes.contains_key(&id) {
                return id;
            }
        }
    }

    /// The pipe routed to by `id`, if its peer is still connected. A route
    /// whose peer went away (an orphaned accepted pipe, or a connecter not
    /// yet told to us through `peer_lost`) is stale and ignored.
    fn route(&self, id: &Bytes, pipes: &Pipes) -> Option<PipeId> {
        self.routes
            .get(id)
            .copied()
            .filter(|&p| pipes.is_connected(p))
    }

    /// Makes `pipe` unroutable. Its label stays for queued inbound messages.
    fn unroute(&mut self, pipe: PipeId) {
        if let Some(id) = self.labels.get(&pipe) {
            if self.routes.get(id) == Some(&pipe) {
                self.routes.remove(id);
            }
        }
    }
}

impl Pattern for Router {
    fn attach(&mut self, _pipe: PipeId, _pipes: &mut Pipes) {
        // Not routable until `peer_ready` gives the pipe an id.
    }

    fn peer_ready(&mut self, pipe: PipeId, pipes: &mut Pipes) -> Result<(), ProtocolError> {
        // A reconnect re-identifies: the peer behind the pipe may have
        // changed its identity, or be another process altogether.
        self.unroute(pipe);
        self.labels.remove(&pipe);
        let announced = pipes
            .peer(pipe)
            .map(|p| p.routing_id.clone())
            .unwrap_or_default();
        let id = if announced.is_empty() {
            self.generate_id()
        } else {
            match self.routes.get(&announced).copied() {
                // libzmq's default without ROUTER_HANDOVER: the newcomer
                // loses to a live holder of the id.
                Some(holder) if pipes.is_connected(holder) => {
                    return Err(ProtocolError::DuplicateRoutingId);
                }
                // The holder is disconnected (typically the orphaned pipe
                // of the same peer, reconnecting): its route is stale.
                Some(holder) => self.unroute(holder),
                None => {}
            }
            announced
        };
        self.routes.insert(id.clone(), pipe);
        self.labels.insert(pipe, id);
        Ok(())
    }

    fn peer_lost(&mut self, pipe: PipeId, _pipes: &mut Pipes) {
        self.unroute(pipe);
    }

    fn detach(&mut self, pipe: PipeId, _pipes: &mut Pipes) {
        self.unroute(pipe);
        self.labels.remove(&pipe);
    }

    fn send(&mut self, mut msg: Message, pipes: &mut Pipes) -> Result<(), SendError> {
        if msg.is_empty() {
            return Err(SendError::new(
                Error::InvalidMessage("a ROUTER message needs a routing-id frame"),
                msg,
            ));
        }
        if msg.len() == 1 {
            // Only the routing id, no payload: libzmq's router ignores such
            // a message and reports success (even with ROUTER_MANDATORY,
            // since it never looks the id up). We do the same, but count it.
            pipes.stats.dropped_malformed += 1;
            return Ok(());
        }
        let pipe = msg.first().and_then(|id| self.route(id, pipes));
        let Some(pipe) = pipe else {
            if self.mandatory {
                return Err(SendError::new(Error::HostUnreachable, msg));
            }
            pipes.stats.dropped_unroutable += 1;
            return Ok(());
        };
        if !pipes.can_write(pipe) {
            if self.mandatory {
                return Err(SendError::new(Error::WouldBlock, msg));
            }
            pipes.drop_at_hwm(pipe);
            return Ok(());
        }
        msg.pop_front();
        if pipes.write(pipe, msg).is_err() {
            // Unreachable after `can_write`; count rather than panic.
            pipes.drop_at_hwm(pipe);
        }
        Ok(())
    }

    fn recv(&mut self, pipes: &mut Pipes) -> Result<Message, Error> {
        while let Some((pipe, mut msg)) = pipes.read_next() {
            match self.labels.get(&pipe) {
                Some(id) => {
                    msg.push_front(id.clone());
                    return Ok(msg);
                }
                // From a pipe whose peer we refused or never identified:
                // nobody could address a reply to it, so drop it.
                None => pipes.stats.dropped_unexpected += 1,
            }
        }
        Err(Error::WouldBlock)
    }

    fn has_in(&mut self, pipes: &mut Pipes) -> bool {
        while let Some((pipe, _)) = pipes.peek_next() {
            if self.labels.contains_key(&pipe) {
                return true;
            }
            pipes.read_next();
            pipes.stats.dropped_unexpected += 1;
        }
        false
    }

    /// As libzmq: without `router_mandatory` a send never blocks (a message
    /// nobody can take is dropped and counted); with it, some peer must
    /// have room.
    fn has_out(&self, pipes: &Pipes) -> bool {
        !self.mandatory || self.labels.keys().any(|&p| pipes.can_write(p))
    }

    fn configure(&mut self, opts: &PatternOptions) {
        self.mandatory = opts.router_mandatory;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(r: &mut Router, pipes: &mut Pipes, id: u64, hwm: usize) -> PipeId {
        let id = PipeId(id);
        pipes.insert(id, hwm, hwm);
        r.attach(id, pipes);
        id
    }

    fn ready(
        r: &mut Router,
        pipes: &mut Pipes,
        id: PipeId,
        rid: &str,
    ) -> Result<(), ProtocolError> {
        pipes.set_peer(
            id,
            Some(PeerInfo {
                socket_type: SocketType::Dealer,
                routing_id: Bytes::copy_from_slice(rid.as_bytes()),
            }),
        );
        r.peer_ready(id, pipes)
    }

    /// The id the router prefixes on a message from `pipe`.
    fn id_of(r: &mut Router, pipes: &mut Pipes, pipe: PipeId) -> Bytes {
        pipes.deliver(pipe, "probe".into());
        let mut m = r.recv(pipes).expect("probe");
        assert_eq!(m.len(), 2);
        m.pop_front().expect("id frame")
    }

    fn mandatory() -> Router {
        let mut r = Router::new(0);
        r.configure(&PatternOptions {
            router_mandatory: true,
            ..Default::default()
        });
        r
    }

    #[test]
    fn generated_ids_are_five_bytes_leading_zero_and_distinct() {
        let mut r = Router::new(0x0000_0001_0000_0010);
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        let b = add(&mut r, &mut pipes, 2, 0);
        ready(&mut r, &mut pipes, a, "").expect("ready");
        ready(&mut r, &mut pipes, b, "").expect("ready");
        let ia = id_of(&mut r, &mut pipes, a);
        let ib = id_of(&mut r, &mut pipes, b);
        assert_eq!(ia.len(), 5);
        assert_eq!(ia[0], 0);
        assert_eq!(ib[0], 0);
        assert_ne!(ia, ib);
        // Counter seeded from the seed, incremented per peer.
        assert_eq!(&ia[..], &[0, 0, 0, 0, 0x11]);
        assert_eq!(&ib[..], &[0, 0, 0, 0, 0x12]);
    }

    #[test]
    fn different_seeds_give_different_ids() {
        let mut pipes = Pipes::new();
        let mut r1 = Router::new(1);
        let mut r2 = Router::new(2);
        let a = add(&mut r1, &mut pipes, 1, 0);
        ready(&mut r1, &mut pipes, a, "").expect("ready");
        let b = add(&mut r2, &mut pipes, 2, 0);
        ready(&mut r2, &mut pipes, b, "").expect("ready");
        assert_ne!(id_of(&mut r1, &mut pipes, a), id_of(&mut r2, &mut pipes, b));
    }

    #[test]
    fn explicit_ids_route_both_ways() {
        let mut r = Router::new(0);
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        let b = add(&mut r, &mut pipes, 2, 0);
        ready(&mut r, &mut pipes, a, "alice").expect("ready");
        ready(&mut r, &mut pipes, b, "bob").expect("ready");

        pipes.deliver(b, Message::from(["", "hi"]));
        assert_eq!(
            r.recv(&mut pipes).expect("msg"),
            Message::from(["bob", "", "hi"])
        );
        r.send(Message::from(["alice", "x", "y"]), &mut pipes)
            .expect("send");
        r.send(Message::from(["bob", "z"]), &mut pipes)
            .expect("send");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from(["x", "y"])));
        assert_eq!(pipes.pop_outbound(b), Some(Message::from("z")));
        assert_eq!(pipes.pop_outbound(a), None);
    }

    #[test]
    fn duplicate_id_is_refused() {
        let mut r = Router::new(0);
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        let b = add(&mut r, &mut pipes, 2, 0);
        ready(&mut r, &mut pipes, a, "same").expect("ready");
        assert_eq!(
            ready(&mut r, &mut pipes, b, "same"),
            Err(ProtocolError::DuplicateRoutingId)
        );
        // The first holder keeps the id.
        r.send(Message::from(["same", "m"]), &mut pipes)
            .expect("send");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from("m")));
        assert_eq!(pipes.pop_outbound(b), None);
        // Anything the refused pipe delivers is dropped, not misattributed.
        pipes.deliver(b, "stray".into());
        assert!(r.recv(&mut pipes).expect_err("dropped").is_would_block());
        assert_eq!(pipes.stats.dropped_unexpected, 1);
    }

    #[test]
    fn id_is_free_again_after_holder_is_lost() {
        let mut r = Router::new(0);
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        let b = add(&mut r, &mut pipes, 2, 0);
        ready(&mut r, &mut pipes, a, "svc").expect("ready");
        pipes.set_peer(a, None);
        r.peer_lost(a, &mut pipes);
        ready(&mut r, &mut pipes, b, "svc").expect("id was released");
        r.send(Message::from(["svc", "m"]), &mut pipes)
            .expect("send");
        assert_eq!(pipes.pop_outbound(b), Some(Message::from("m")));
        // When the old holder comes back it is now the duplicate.
        assert_eq!(
            ready(&mut r, &mut pipes, a, "svc"),
            Err(ProtocolError::DuplicateRoutingId)
        );
    }

    #[test]
    fn orphaned_holder_does_not_block_reconnect() {
        let mut r = mandatory();
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        ready(&mut r, &mut pipes, a, "svc").expect("ready");
        pipes.deliver(a, "last words".into());
        // The accepted connection dies; the pipe lingers with unread input.
        assert!(!pipes.orphan(a));
        let err = r
            .send(Message::from(["svc", "m"]), &mut pipes)
            .expect_err("orphan is not routable");
        assert!(matches!(err.error, Error::HostUnreachable));
        // The same peer reconnects on a new pipe with the same id.
        let b = add(&mut r, &mut pipes, 2, 0);
        ready(&mut r, &mut pipes, b, "svc").expect("stale route replaced");
        r.send(Message::from(["svc", "m"]), &mut pipes)
            .expect("send");
        assert_eq!(pipes.pop_outbound(b), Some(Message::from("m")));
        // The orphan's last message is still delivered under its id.
        assert_eq!(
            r.recv(&mut pipes).expect("drained"),
            Message::from(["svc", "last words"])
        );
        assert_eq!(pipes.take_dead(), vec![a]);
        // Detaching the orphan must not remove the new pipe's route.
        r.detach(a, &mut pipes);
        pipes.remove(a);
        r.send(Message::from(["svc", "n"]), &mut pipes)
            .expect("send");
        assert_eq!(pipes.pop_outbound(b), Some(Message::from("n")));
    }

    #[test]
    fn unready_pipe_is_not_routable() {
        let mut r = Router::new(0);
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        r.send(Message::from(["a", "m"]), &mut pipes)
            .expect("dropped");
        assert_eq!(pipes.stats.dropped_unroutable, 1);
        assert_eq!(pipes.pop_outbound(a), None);
    }

    #[test]
    fn unroutable_dropped_without_mandatory() {
        let mut r = Router::new(0);
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        ready(&mut r, &mut pipes, a, "a").expect("ready");
        r.send(Message::from(["nobody", "m"]), &mut pipes)
            .expect("silently dropped");
        assert_eq!(pipes.stats.dropped_unroutable, 1);
        assert_eq!(pipes.pop_outbound(a), None);
    }

    #[test]
    fn unroutable_is_an_error_with_mandatory() {
        let mut r = mandatory();
        let mut pipes = Pipes::new();
        let err = r
            .send(Message::from(["nobody", "m"]), &mut pipes)
            .expect_err("mandatory");
        assert!(matches!(err.error, Error::HostUnreachable));
        assert_eq!(err.message, Message::from(["nobody", "m"]));
        assert_eq!(pipes.stats.dropped_unroutable, 0);
    }

    #[test]
    fn hwm_drops_without_mandatory() {
        let mut r = Router::new(0);
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 1);
        ready(&mut r, &mut pipes, a, "a").expect("ready");
        r.send(Message::from(["a", "1"]), &mut pipes).expect("send");
        r.send(Message::from(["a", "2"]), &mut pipes)
            .expect("dropped");
        assert_eq!(pipes.stats.dropped_hwm, 1);
        assert_eq!(pipes.pop_outbound(a), Some(Message::from("1")));
        assert_eq!(pipes.pop_outbound(a), None);
    }

    #[test]
    fn hwm_would_block_with_mandatory() {
        let mut r = mandatory();
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 1);
        ready(&mut r, &mut pipes, a, "a").expect("ready");
        r.send(Message::from(["a", "1"]), &mut pipes).expect("send");
        let err = r
            .send(Message::from(["a", "2"]), &mut pipes)
            .expect_err("full");
        assert!(err.error.is_would_block());
        assert_eq!(err.message, Message::from(["a", "2"]));
        assert_eq!(pipes.stats.dropped_hwm, 0);
        pipes.pop_outbound(a);
        r.send(err.message, &mut pipes).expect("space again");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from("2")));
    }

    #[test]
    fn reconnect_reidentifies() {
        let mut r = Router::new(7);
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        ready(&mut r, &mut pipes, a, "old").expect("ready");
        pipes.deliver(a, "queued-before-loss".into());
        pipes.set_peer(a, None);
        r.peer_lost(a, &mut pipes);
        // Not routable while reconnecting.
        r.send(Message::from(["old", "m"]), &mut pipes)
            .expect("dropped");
        assert_eq!(pipes.stats.dropped_unroutable, 1);
        // Already-queued input is still attributed to the old id.
        assert_eq!(
            r.recv(&mut pipes).expect("queued"),
            Message::from(["old", "queued-before-loss"])
        );

        ready(&mut r, &mut pipes, a, "new").expect("reconnected");
        r.send(Message::from(["old", "m"]), &mut pipes)
            .expect("dropped");
        assert_eq!(pipes.stats.dropped_unroutable, 2);
        r.send(Message::from(["new", "m"]), &mut pipes)
            .expect("send");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from("m")));
        assert_eq!(id_of(&mut r, &mut pipes, a), Bytes::from("new"));

        // Reconnecting without an identity gets a generated one.
        r.peer_lost(a, &mut pipes);
        ready(&mut r, &mut pipes, a, "").expect("reconnected");
        let generated = id_of(&mut r, &mut pipes, a);
        assert_eq!(generated.len(), 5);
        assert_eq!(generated[0], 0);
        r.send(Message::from(["new", "m"]), &mut pipes)
            .expect("dropped");
        assert_eq!(pipes.stats.dropped_unroutable, 3);
    }

    #[test]
    fn peer_ready_twice_keeps_own_id() {
        // A reconnect reported without a peer_lost in between must not make
        // the pipe collide with itself.
        let mut r = Router::new(0);
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        ready(&mut r, &mut pipes, a, "me").expect("ready");
        ready(&mut r, &mut pipes, a, "me").expect("ready again");
        r.send(Message::from(["me", "m"]), &mut pipes)
            .expect("send");
        assert_eq!(pipes.pop_outbound(a), Some(Message::from("m")));
    }

    #[test]
    fn detach_cleans_up() {
        let mut r = mandatory();
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        ready(&mut r, &mut pipes, a, "a").expect("ready");
        r.detach(a, &mut pipes);
        pipes.remove(a);
        let err = r
            .send(Message::from(["a", "m"]), &mut pipes)
            .expect_err("gone");
        assert!(matches!(err.error, Error::HostUnreachable));
        let b = add(&mut r, &mut pipes, 2, 0);
        ready(&mut r, &mut pipes, b, "a").expect("id reusable");
    }

    #[test]
    fn empty_and_id_only_messages() {
        let mut r = mandatory();
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        ready(&mut r, &mut pipes, a, "a").expect("ready");
        let err = r.send(Message::new(), &mut pipes).expect_err("no frames");
        assert!(matches!(err.error, Error::InvalidMessage(_)));
        // libzmq ignores an id with no payload, even when mandatory.
        r.send(Message::from(["a"]), &mut pipes).expect("ignored");
        r.send(Message::from(["nobody"]), &mut pipes)
            .expect("ignored");
        assert_eq!(pipes.stats.dropped_malformed, 2);
        assert_eq!(pipes.pop_outbound(a), None);
    }

    #[test]
    fn generated_ids_skip_ids_in_use() {
        let mut r = Router::new(0);
        let mut pipes = Pipes::new();
        let a = add(&mut r, &mut pipes, 1, 0);
        let b = add(&mut r, &mut pipes, 2, 0);
        // A peer that announced exactly the next generated id.
        pipes.set_peer(
            a,
            Some(PeerInfo {
                socket_type: SocketType::Dealer,
                routing_id: Bytes::from_static(&[0, 0, 0, 0, 0]),
            }),
        );
        r.peer_ready(a, &mut pipes).expect("ready");
        ready(&mut r, &mut pipes, b, "").expect("ready");
        assert_eq!(&id_of(&mut r, &mut pipes, b)[..], &[0, 0, 0, 0, 1]);
    }
}
