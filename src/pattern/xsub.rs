//! XSUB and SUB: fair-queue in from publishers; subscriptions out.
//!
//! One type for both, as libzmq derives SUB from XSUB: a SUB subscribes
//! through [`Pattern::set_subscription`] and drops what matches none of
//! its subscriptions; an XSUB subscribes by sending subscription messages
//! (`1` or `0`, then the prefix), sends anything else upstream as data,
//! and filters nothing.
//!
//! Subscriptions go to peers in the message form (the session turns them
//! into ZMTP 3.1 commands). They are written with
//! [`Pipes::write_forced`], never refused at the HWM, and only to pipes
//! whose peer is ready: each peer gets the whole set when its handshake
//! completes, after every reconnect too, and what was queued but not
//! written when a connection broke is taken back, so that no peer misses
//! a subscription or gets one twice.

use super::dist::Dist;
use super::trie::Trie;
use super::*;
use crate::id_map::IdSet;

/// XSUB socket logic, and SUB's ([`XSub::subscriber`]).
#[derive(Debug)]
pub struct XSub {
    /// SUB: drops messages that match no subscription, subscribes through
    /// `set_subscription`, and cannot send.
    filter: bool,
    /// The prefixes subscribed to, counted.
    subs: Trie,
    /// Every attached pipe: an XSUB's data goes to all of them, and is
    /// dropped (and counted per pipe) at their HWM, as libzmq's does.
    dist: Dist,
    /// Pipes whose peer is ready: those that have been sent the whole
    /// subscription set and are told of each change.
    ready: IdSet<PipeId>,
    /// The pipes an XSUB's data goes to; kept to save an allocation.
    targets: Vec<PipeId>,
}

impl XSub {
    /// An XSUB with no pipes yet.
    pub fn new() -> Self {
        XSub {
            filter: false,
            subs: Trie::new(),
            dist: Dist::new(),
            ready: IdSet::default(),
            targets: Vec::new(),
        }
    }

    /// A SUB with no pipes and no subscriptions yet.
    pub fn subscriber() -> Self {
        XSub {
            filter: true,
            ..XSub::new()
        }
    }

    /// Tells every ready peer of a subscription change.
    fn forward(&self, msg: &Message, pipes: &mut Pipes) {
        for &pipe in &self.ready {
            // Refused only by an orphan, which will never be read again.
            let _ = pipes.write_forced(pipe, msg.clone());
        }
    }

    /// SUB: drops (and counts) the messages at the front of the
    /// fair-queue ring that match no subscription. True when a message to
    /// receive is left at the front. A multipart message is matched by
    /// its first frame and dropped whole: pipes hold whole messages.
    fn skip_unsubscribed(&self, pipes: &mut Pipes) -> bool {
        loop {
            let wanted = match pipes.peek_next() {
                None => return false,
                Some((_, msg)) => !self.filter || self.subs.matches(topic_of(msg)),
            };
            if wanted {
                return true;
            }
            pipes.read_next();
            pipes.stats.dropped_unsubscribed += 1;
        }
    }
}

impl Default for XSub {
    fn default() -> Self {
        XSub::new()
    }
}

impl Pattern for XSub {
    fn attach(&mut self, pipe: PipeId, _pipes: &mut Pipes) {
        self.dist.attach(pipe);
    }

    fn peer_ready(&mut self, pipe: PipeId, pipes: &mut Pipes) -> Result<(), ProtocolError> {
        self.ready.insert(pipe);
        // All of them, whatever their number and the HWM: libzmq drops
        // those over the HWM (its issue #2258), and a SUB that silently
        // misses part of its subscriptions is the worst kind of bug. The
        // set is bounded by what the application subscribed.
        self.subs.for_each(|prefix| {
            let _ = pipes.write_forced(pipe, subscription_message(true, prefix));
        });
        Ok(())
    }

    fn peer_lost(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        self.ready.remove(&pipe);
        // Subscriptions queued but not written are sent again, in full,
        // at the next peer_ready: sending these too would count them
        // twice upstream. An XSUB's data stays queued for the next peer.
        if self.filter {
            // A SUB queues nothing else.
            pipes.clear_outbound(pipe);
        } else {
            pipes.retain_outbound(pipe, |m| parse_subscription(m).is_none());
        }
    }

    fn detach(&mut self, pipe: PipeId, _pipes: &mut Pipes) {
        self.ready.remove(&pipe);
        self.dist.detach(pipe);
    }

    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<(), SendError> {
        if self.filter {
            // libzmq answers ENOTSUP; the closest variant here is InvalidState.
            return Err(SendError::new(
                Error::InvalidState("SUB sockets cannot send"),
                msg,
            ));
        }
        let msg = check_not_empty(msg)?;
        match parse_subscription(&msg) {
            Some((true, prefix)) => {
                // Every subscribe goes up, duplicates too, as libzmq's
                // XSUB does: filtering them here would hide them from an
                // upstream XPUB with xpub_verbose behind a proxy.
                self.subs.add(&prefix);
                self.forward(&msg, pipes);
            }
            Some((false, prefix)) => {
                // A cancel only when the last subscription to the prefix
                // goes: upstream holds each (prefix, peer) once.
                if self.subs.remove(&prefix) {
                    self.forward(&msg, pipes);
                }
            }
            None => {
                // Data for the publishers (libzmq's XSUB sends it to all
                // of them); never blocks, dropped and counted at a HWM.
                self.targets.clear();
                self.targets.extend(self.dist.pipes());
                self.dist
                    .send_to_matching(msg, self.targets.drain(..), pipes);
            }
        }
        Ok(())
    }

    fn recv(&mut self, pipes: &mut Pipes) -> Result<Message, Error> {
        if !self.skip_unsubscribed(pipes) {
            return Err(Error::WouldBlock);
        }
        pipes.recv_fair()
    }

    fn has_in(&mut self, pipes: &mut Pipes) -> bool {
        self.skip_unsubscribed(pipes)
    }

    fn has_out(&self, _pipes: &Pipes) -> bool {
        // An XSUB's sends never block (subscriptions are forced, data is
        // dropped at the HWM); a SUB cannot send.
        !self.filter
    }

    fn set_subscription(
        &mut self,
        prefix: &[u8],
        subscribe: bool,
        pipes: &mut Pipes,
    ) -> Result<(), Error> {
        if !self.filter {
            return Err(Error::InvalidState(
                "XSUB sockets subscribe by sending subscription messages",
            ));
        }
        // Only the first subscribe and the last unsubscribe of a prefix
        // change what the publishers must be told.
        let changed = if subscribe {
            self.subs.add(prefix)
        } else {
            self.subs.remove(prefix)
        };
        if changed {
            self.forward(&subscription_message(subscribe, prefix), pipes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn pub_info() -> Option<PeerInfo> {
        Some(PeerInfo {
            socket_type: SocketType::Dealer,
            routing_id: Bytes::new(),
        })
    }

    fn add(x: &mut XSub, pipes: &mut Pipes, id: u64, hwm: usize) -> PipeId {
        let id = PipeId(id);
        pipes.insert(id, hwm, 0);
        x.attach(id, pipes);
        ready(x, pipes, id);
        id
    }

    fn ready(x: &mut XSub, pipes: &mut Pipes, id: PipeId) {
        pipes.set_peer(id, pub_info());
        x.peer_ready(id, pipes).expect("ready");
    }

    fn drain(pipes: &mut Pipes, id: PipeId) -> Vec<Message> {
        std::iter::from_fn(|| pipes.pop_outbound(id)).collect()
    }

    /// The single frames of messages, as a set.
    fn frames(msgs: impl IntoIterator<Item = Message>) -> BTreeSet<Bytes> {
        msgs.into_iter()
            .filter_map(|m| m.first().cloned())
            .collect()
    }

    fn sub(prefix: &str) -> Message {
        subscription_message(true, prefix.as_bytes())
    }

    fn unsub(prefix: &str) -> Message {
        subscription_message(false, prefix.as_bytes())
    }

    #[test]
    fn sub_counts_and_tells_only_changes() {
        let mut s = XSub::subscriber();
        let mut pipes = Pipes::new();
        let a = add(&mut s, &mut pipes, 1, 0);
        let b = add(&mut s, &mut pipes, 2, 0);
        s.set_subscription(b"t", true, &mut pipes).expect("sub");
        s.set_subscription(b"t", true, &mut pipes)
            .expect("sub again");
        s.set_subscription(b"t", false, &mut pipes).expect("unsub");
        s.set_subscription(b"never", false, &mut pipes)
            .expect("a no-op");
        for id in [a, b] {
            assert_eq!(drain(&mut pipes, id), [sub("t")]);
        }
        pipes.deliver(a, "t1".into());
        assert_eq!(s.recv(&mut pipes).ok(), Some(Message::from("t1")));
        s.set_subscription(b"t", false, &mut pipes)
            .expect("the last");
        for id in [a, b] {
            assert_eq!(drain(&mut pipes, id), [unsub("t")]);
        }
        pipes.deliver(a, "t2".into());
        assert!(!s.has_in(&mut pipes));
        assert_eq!(pipes.stats.dropped_unsubscribed, 1);
    }

    #[test]
    fn sub_drops_unmatched_messages_whole_and_counts_them() {
        let mut s = XSub::subscriber();
        let mut pipes = Pipes::new();
        let a = add(&mut s, &mut pipes, 1, 0);
        let b = add(&mut s, &mut pipes, 2, 0);
        s.set_subscription(b"weather", true, &mut pipes)
            .expect("sub");
        pipes.deliver(a, Message::from(["sport", "weather in part two"]));
        pipes.deliver(a, Message::from(["weather.1", "21C"]));
        pipes.deliver(b, "news".into());
        pipes.deliver(b, "weather.2".into());
        assert!(s.has_in(&mut pipes));
        // Fair queueing takes a's first, then b's: both unwanted.
        assert_eq!(pipes.stats.dropped_unsubscribed, 2, "dropped by has_in");
        let got: Vec<_> = std::iter::from_fn(|| s.recv(&mut pipes).ok()).collect();
        assert_eq!(
            got,
            [
                Message::from(["weather.1", "21C"]),
                Message::from("weather.2")
            ]
        );
        assert_eq!(pipes.stats.dropped_unsubscribed, 2);
        assert!(!s.has_in(&mut pipes));
        assert!(s.recv(&mut pipes).expect_err("none").is_would_block());
        // The empty prefix matches everything.
        s.set_subscription(b"", true, &mut pipes).expect("all");
        pipes.deliver(a, "anything".into());
        assert!(s.has_in(&mut pipes));
        assert_eq!(s.recv(&mut pipes).ok(), Some(Message::from("anything")));
    }

    #[test]
    fn sub_cannot_send() {
        let mut s = XSub::subscriber();
        let mut pipes = Pipes::new();
        let a = add(&mut s, &mut pipes, 1, 0);
        assert!(!s.has_out(&pipes));
        let err = s.send(sub("t"), &mut pipes).expect_err("SUB");
        assert!(matches!(err.error, Error::InvalidState(_)));
        assert_eq!(err.message, sub("t"));
        assert!(drain(&mut pipes, a).is_empty());
    }

    #[test]
    fn subscriptions_wait_for_the_peer_and_follow_reconnects() {
        let mut s = XSub::subscriber();
        let mut pipes = Pipes::new();
        // A connecter's pipe before its first handshake.
        let a = PipeId(1);
        pipes.insert(a, 10, 0);
        s.attach(a, &mut pipes);
        s.set_subscription(b"early", true, &mut pipes).expect("sub");
        assert!(drain(&mut pipes, a).is_empty(), "nobody to tell yet");
        ready(&mut s, &mut pipes, a);
        assert_eq!(drain(&mut pipes, a), [sub("early")]);
        // Changes queued but unwritten when the connection breaks are
        // replaced by the whole set at the reconnect.
        s.set_subscription(b"x", true, &mut pipes).expect("sub");
        s.set_subscription(b"x", false, &mut pipes).expect("unsub");
        pipes.set_peer(a, None);
        s.peer_lost(a, &mut pipes);
        s.set_subscription(b"while down", true, &mut pipes)
            .expect("sub");
        assert!(drain(&mut pipes, a).is_empty());
        ready(&mut s, &mut pipes, a);
        assert_eq!(
            frames(drain(&mut pipes, a)),
            frames([sub("early"), sub("while down")])
        );
    }

    #[test]
    fn five_thousand_subscriptions_resent_past_the_hwm() {
        let mut s = XSub::subscriber();
        let mut pipes = Pipes::new();
        let a = add(&mut s, &mut pipes, 1, 10);
        let prefixes: Vec<String> = (0..5000).map(|i| format!("topic.{i}")).collect();
        for p in &prefixes {
            s.set_subscription(p.as_bytes(), true, &mut pipes)
                .expect("sub");
        }
        // Half were written before the connection broke.
        for _ in 0..2500 {
            pipes.pop_outbound(a);
        }
        pipes.set_peer(a, None);
        s.peer_lost(a, &mut pipes);
        ready(&mut s, &mut pipes, a);
        let got = drain(&mut pipes, a);
        assert_eq!(got.len(), 5000, "none lost, none twice");
        assert_eq!(frames(got), frames(prefixes.iter().map(|p| sub(p))));
        // A pipe that connects later gets them all too.
        let b = add(&mut s, &mut pipes, 2, 10);
        assert_eq!(drain(&mut pipes, b).len(), 5000);
    }

    #[test]
    fn xsub_forwards_every_subscribe_and_the_last_cancel() {
        let mut x = XSub::new();
        let mut pipes = Pipes::new();
        let a = add(&mut x, &mut pipes, 1, 1);
        assert!(x.has_out(&pipes));
        x.send(sub("t"), &mut pipes).expect("sub");
        x.send(sub("t"), &mut pipes).expect("sub again");
        x.send(unsub("t"), &mut pipes).expect("unsub");
        x.send(unsub("never"), &mut pipes).expect("swallowed");
        assert!(x.has_out(&pipes), "forced: the HWM does not hold it back");
        assert_eq!(drain(&mut pipes, a), [sub("t"), sub("t")]);
        x.send(unsub("t"), &mut pipes).expect("the last");
        assert_eq!(drain(&mut pipes, a), [unsub("t")]);
        assert!(matches!(
            x.set_subscription(b"t", true, &mut pipes),
            Err(Error::InvalidState(_))
        ));
        let err = x.send(Message::new(), &mut pipes).expect_err("no frames");
        assert!(matches!(err.error, Error::InvalidMessage(_)));
    }

    #[test]
    fn xsub_sends_data_to_every_publisher_and_filters_nothing() {
        let mut x = XSub::new();
        let mut pipes = Pipes::new();
        let a = add(&mut x, &mut pipes, 1, 1);
        let b = add(&mut x, &mut pipes, 2, 0);
        x.send("upstream".into(), &mut pipes).expect("data");
        x.send(Message::from(["\x01multi", "part"]), &mut pipes)
            .expect("data, not a subscription");
        assert_eq!(pipes.stats.dropped_hwm, 1, "a was full");
        assert_eq!(drain(&mut pipes, a), [Message::from("upstream")]);
        assert_eq!(
            drain(&mut pipes, b),
            [
                Message::from("upstream"),
                Message::from(["\x01multi", "part"])
            ]
        );
        // Nothing subscribed, yet everything is received.
        assert!(!x.has_in(&mut pipes));
        pipes.deliver(a, "a1".into());
        pipes.deliver(b, "b1".into());
        pipes.deliver(a, "a2".into());
        assert!(x.has_in(&mut pipes));
        let got: Vec<_> = std::iter::from_fn(|| x.recv(&mut pipes).ok()).collect();
        assert_eq!(
            got,
            [
                Message::from("a1"),
                Message::from("b1"),
                Message::from("a2")
            ]
        );
        assert_eq!(pipes.stats.dropped_unsubscribed, 0);
    }

    #[test]
    fn xsub_keeps_data_but_not_stale_subscriptions_across_a_reconnect() {
        let mut x = XSub::new();
        let mut pipes = Pipes::new();
        let a = add(&mut x, &mut pipes, 1, 0);
        x.send(sub("t"), &mut pipes).expect("sub");
        x.send("data".into(), &mut pipes).expect("data");
        x.send(sub("u"), &mut pipes).expect("sub");
        pipes.set_peer(a, None);
        x.peer_lost(a, &mut pipes);
        x.send(sub("v"), &mut pipes).expect("sub while down");
        ready(&mut x, &mut pipes, a);
        assert_eq!(
            drain(&mut pipes, a),
            [Message::from("data"), sub("t"), sub("u"), sub("v")]
        );
        x.detach(a, &mut pipes);
        pipes.remove(a);
        x.send(sub("w"), &mut pipes).expect("no pipes: still fine");
    }

    #[test]
    fn sub_through_the_constructor_and_pair_too() {
        let mut s = new_pattern(SocketType::Sub, &PatternOptions::default(), 0);
        let mut pipes = Pipes::new();
        let a = PipeId(1);
        pipes.insert(a, 0, 0);
        s.attach(a, &mut pipes);
        pipes.set_peer(a, pub_info());
        s.peer_ready(a, &mut pipes).expect("ready");
        s.set_subscription(b"", true, &mut pipes).expect("sub");
        assert_eq!(drain(&mut pipes, a), [sub("")]);
        for kind in [SocketType::Pub, SocketType::XPub, SocketType::XSub] {
            let mut p = new_pattern(kind, &PatternOptions::default(), 0);
            assert!(
                p.set_subscription(b"", true, &mut pipes).is_err(),
                "{kind:?}"
            );
        }
        let pair = new_pattern(SocketType::Pair, &PatternOptions::default(), 0);
        assert!(!pair.has_out(&Pipes::new()), "no peer yet");
    }
}
