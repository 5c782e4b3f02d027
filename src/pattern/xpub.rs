//! XPUB and PUB: fan-out to the subscribers whose subscriptions match.
//!
//! One type for both, as libzmq derives PUB from XPUB: a PUB is an XPUB
//! that keeps its subscribers' subscriptions to itself and cannot receive.
//!
//! Subscriptions arrive in the pipes' `inbound` queues in the message form
//! (`1` or `0`, then the prefix; the session turns ZMTP 3.1 commands into
//! it). They are taken in lazily, before each send and each readiness
//! check, as libzmq does when a pipe becomes readable: nothing else reads
//! a publisher's pipes. Each (prefix, pipe) is held at most once, as in
//! libzmq's mtrie (see [`MTrie::contains`] for why that matters).
//!
//! A send never blocks and never fails because one subscriber is slow: at
//! a pipe's send HWM the message is dropped for that pipe alone and
//! counted ([`Dist`]), unless `xpub_nodrop` asks to wait instead.

use super::dist::Dist;
use super::trie::MTrie;
use super::*;
use std::collections::VecDeque;

/// XPUB socket logic, and PUB's ([`XPub::publisher`]).
#[derive(Debug)]
pub struct XPub {
    /// PUB: subscriptions are applied but never passed up, and `recv` is
    /// refused; the XPUB-only options are ignored.
    publisher: bool,
    /// What each pipe is subscribed to: what sends are matched against.
    subs: MTrie,
    dist: Dist,
    /// `xpub_manual`: what each peer asked for, which the application may
    /// or may not have applied. Kept so that a peer's departure passes a
    /// cancel up for each of its requests (libzmq's manual mode does too),
    /// letting a proxy withdraw them upstream.
    requested: MTrie,
    /// Messages for the application's `recv`: subscription changes, and
    /// data sent upstream by an XSUB. Each with the pipe of the
    /// subscription it carries (for `xpub_manual`).
    pending: VecDeque<(Message, Option<PipeId>)>,
    /// `xpub_manual`: the pipe whose subscription the application
    /// received last, which its `set_subscription` applies to.
    last_pipe: Option<PipeId>,
    /// The matching pipes of the message being sent; kept to save an
    /// allocation per send.
    matched: Vec<PipeId>,
    verbose: bool,
    verboser: bool,
    manual: bool,
    nodrop: bool,
    welcome: Option<Bytes>,
    /// What one pipe's subscriptions may cost (`subscription_limit`).
    limit: Option<u64>,
    /// Pipes found over the limit: their further subscriptions are
    /// ignored while the I/O thread closes their connections.
    refused: Vec<PipeId>,
}

/// What a subscription costs a publisher beyond its prefix bytes: trie
/// nodes and the per-pipe set, roughly. Counted so that a subscriber
/// cannot exhaust memory with very many very short prefixes.
const SUBSCRIPTION_OVERHEAD: u64 = 64;

impl XPub {
    /// An XPUB with no pipes yet.
    pub fn new() -> Self {
        XPub {
            publisher: false,
            subs: MTrie::new(),
            dist: Dist::new(),
            requested: MTrie::new(),
            pending: VecDeque::new(),
            last_pipe: None,
            matched: Vec::new(),
            verbose: false,
            verboser: false,
            manual: false,
            nodrop: false,
            welcome: None,
            limit: None,
            refused: Vec::new(),
        }
    }

    /// A PUB with no pipes yet.
    pub fn publisher() -> Self {
        XPub {
            publisher: true,
            ..XPub::new()
        }
    }

    /// Takes in every subscription (and, for an XPUB, data) waiting in the
    /// pipes. Costs the messages waiting, not the number of pipes: only
    /// pipes with input are in the fair-queue ring.
    fn take_inbound(&mut self, pipes: &mut Pipes) {
        while let Some((pipe, msg)) = pipes.read_next() {
            match parse_subscription(&msg) {
                Some(_) if self.refused.contains(&pipe) => {}
                Some((subscribe, prefix)) => {
                    self.incoming(pipe, subscribe, &prefix, msg);
                    if subscribe {
                        self.check_limit(pipe, pipes);
                    }
                }
                // PUB never processes user messages (libzmq neither), and
                // a message without frames is nobody's.
                None if self.publisher || msg.is_empty() => pipes.stats.dropped_malformed += 1,
                None => self.pending.push_back((msg, None)),
            }
        }
    }

    /// Refuses a subscriber whose subscriptions now cost more than the
    /// limit: untrusted peers must not be able to make a publisher hold
    /// unbounded state (libzmq has no such bound).
    fn check_limit(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        let Some(limit) = self.limit else { return };
        let held = self.subs.pipe_bytes(pipe) as u64
            + SUBSCRIPTION_OVERHEAD * self.subs.pipe_prefix_count(pipe) as u64;
        if held > limit {
            self.refused.push(pipe);
            pipes.request_disconnect(pipe, ProtocolError::TooManySubscriptions { held, limit });
        }
    }

    /// One subscription change from `pipe`, `msg` being its message form.
    fn incoming(&mut self, pipe: PipeId, subscribe: bool, prefix: &[u8], msg: Message) {
        if self.manual && !self.publisher {
            // The application decides; remember what was asked.
            set_once(&mut self.requested, prefix, pipe, subscribe);
            self.pending.push_back((msg, Some(pipe)));
            return;
        }
        let held = self.subs.contains(prefix, pipe);
        let notify = if subscribe {
            // A duplicate (libzmq's SUB and any XSUB send one per
            // subscribe call) changes nothing but is passed on verbosely.
            let first = !held && self.subs.add(prefix, pipe);
            first || self.verbose || self.verboser
        } else {
            // A cancel for something the pipe does not hold is passed on
            // only verbosely: passing it to a proxy's XSUB would take back
            // another subscriber's subscription upstream.
            let last = held && self.subs.remove(prefix, pipe);
            last || self.verboser
        };
        if notify && !self.publisher {
            self.pending.push_back((msg, None));
        }
    }

    /// `pipe`'s subscriptions end (its peer left or its connection broke;
    /// a reconnecting subscriber sends them all again). What the
    /// application would have been told by cancels, it is told now.
    fn drop_subscriptions(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        // What the peer sent before it went is taken in first, so that
        // the application sees its changes in order.
        self.take_inbound(pipes);
        let XPub {
            publisher,
            manual,
            verboser,
            pending,
            ..
        } = self;
        if *manual && !*publisher {
            self.requested.remove_pipe_each(pipe, |prefix, _| {
                pending.push_back((subscription_message(false, prefix), None));
            });
            self.subs.remove_pipe(pipe, |_| {});
            if self.last_pipe == Some(pipe) {
                self.last_pipe = None;
            }
        } else {
            self.subs.remove_pipe_each(pipe, |prefix, last| {
                if !*publisher && (last || *verboser) {
                    pending.push_back((subscription_message(false, prefix), None));
                }
            });
        }
    }
}

impl Default for XPub {
    fn default() -> Self {
        XPub::new()
    }
}

/// Adds or removes the one subscription of `pipe` to `prefix`, keeping
/// each (prefix, pipe) at most once.
fn set_once(trie: &mut MTrie, prefix: &[u8], pipe: PipeId, subscribe: bool) {
    let held = trie.contains(prefix, pipe);
    if subscribe && !held {
        trie.add(prefix, pipe);
    } else if !subscribe && held {
        trie.remove(prefix, pipe);
    }
}

impl Pattern for XPub {
    fn attach(&mut self, pipe: PipeId, _pipes: &mut Pipes) {
        self.dist.attach(pipe);
    }

    fn peer_ready(&mut self, pipe: PipeId, pipes: &mut Pipes) -> Result<(), ProtocolError> {
        if let Some(welcome) = self.welcome.as_ref().filter(|w| !w.is_empty()) {
            // Forced: it must come first, whatever was queued before a
            // reconnect. An orphan refusing it has nobody to welcome.
            let _ = pipes.write_forced(pipe, Message::from(welcome.clone()));
        }
        Ok(())
    }

    fn peer_lost(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        self.drop_subscriptions(pipe, pipes);
        // A reconnection starts from nothing, and is judged afresh.
        self.refused.retain(|p| *p != pipe);
    }

    fn detach(&mut self, pipe: PipeId, pipes: &mut Pipes) {
        self.drop_subscriptions(pipe, pipes);
        self.dist.detach(pipe);
        self.refused.retain(|p| *p != pipe);
    }

    fn configure(&mut self, opts: &PatternOptions) {
        // libzmq lets a PUB take `xpub_nodrop` and `xpub_welcome_msg` too;
        // the options about what the application receives mean nothing to
        // a socket that cannot receive.
        self.nodrop = opts.xpub_nodrop;
        self.welcome = opts.xpub_welcome_msg.clone();
        self.limit = opts.subscription_limit;
        if !self.publisher {
            self.verbose = opts.xpub_verbose;
            self.verboser = opts.xpub_verboser;
            self.manual = opts.xpub_manual;
        }
    }

    fn send(&mut self, msg: Message, pipes: &mut Pipes) -> Result<(), SendError> {
        let msg = check_not_empty(msg)?;
        self.take_inbound(pipes);
        let matched = &mut self.matched;
        matched.clear();
        self.subs.match_topic(topic_of(&msg), |p| matched.push(p));
        if self.nodrop && !self.dist.can_send_all(self.matched.iter().copied(), pipes) {
            return Err(SendError::new(Error::WouldBlock, msg));
        }
        self.dist
            .send_to_matching(msg, self.matched.drain(..), pipes);
        Ok(())
    }

    fn recv(&mut self, pipes: &mut Pipes) -> Result<Message, Error> {
        if self.publisher {
            // libzmq answers ENOTSUP; the closest variant here is InvalidState.
            return Err(Error::InvalidState("PUB sockets cannot receive"));
        }
        self.take_inbound(pipes);
        let (msg, pipe) = self.pending.pop_front().ok_or(Error::WouldBlock)?;
        if self.manual {
            // A pipe gone since cannot be subscribed any more.
            self.last_pipe = pipe.filter(|&p| self.dist.is_attached(p));
        }
        Ok(msg)
    }

    fn has_in(&mut self, pipes: &mut Pipes) -> bool {
        // A PUB takes its subscriptions in here too, so that a publisher
        // that only polls still empties (and releases) orphaned pipes.
        self.take_inbound(pipes);
        !self.publisher && !self.pending.is_empty()
    }

    fn has_out(&self, pipes: &Pipes) -> bool {
        // Without nodrop a send always succeeds. With it, `true` promises
        // that any message goes out now: every subscriber has room.
        !self.nodrop || self.dist.can_send_all(self.dist.pipes(), pipes)
    }

    fn set_subscription(
        &mut self,
        prefix: &[u8],
        subscribe: bool,
        _pipes: &mut Pipes,
    ) -> Result<(), Error> {
        if self.publisher || !self.manual {
            return Err(Error::InvalidState(
                "only SUB sockets, and XPUB sockets with xpub_manual, subscribe",
            ));
        }
        // As in libzmq, nothing to apply to before a subscription was
        // received (or after its pipe went) is not an error.
        if let Some(pipe) = self.last_pipe {
            set_once(&mut self.subs, prefix, pipe, subscribe);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub_info() -> Option<PeerInfo> {
        Some(PeerInfo {
            socket_type: SocketType::Dealer,
            routing_id: Bytes::new(),
        })
    }

    fn add(x: &mut XPub, pipes: &mut Pipes, id: u64, hwm: usize) -> PipeId {
        let id = PipeId(id);
        pipes.insert(id, hwm, 0);
        x.attach(id, pipes);
        pipes.set_peer(id, sub_info());
        x.peer_ready(id, pipes).expect("ready");
        id
    }

    fn subscribe(pipes: &mut Pipes, id: PipeId, prefix: &str) {
        pipes.deliver(id, subscription_message(true, prefix.as_bytes()));
    }

    fn cancel(pipes: &mut Pipes, id: PipeId, prefix: &str) {
        pipes.deliver(id, subscription_message(false, prefix.as_bytes()));
    }

    fn drain(pipes: &mut Pipes, id: PipeId) -> Vec<Message> {
        std::iter::from_fn(|| pipes.pop_outbound(id)).collect()
    }

    fn recv_all(x: &mut XPub, pipes: &mut Pipes) -> Vec<Message> {
        std::iter::from_fn(|| x.recv(pipes).ok()).collect()
    }

    fn xpub(opts: PatternOptions) -> XPub {
        let mut x = XPub::new();
        x.configure(&opts);
        x
    }

    #[test]
    fn fan_out_to_matching_pipes_each_once() {
        let mut p = XPub::publisher();
        let mut pipes = Pipes::new();
        let a = add(&mut p, &mut pipes, 1, 0);
        let b = add(&mut p, &mut pipes, 2, 0);
        let c = add(&mut p, &mut pipes, 3, 0);
        // a matches twice over; c never.
        subscribe(&mut pipes, a, "wea");
        subscribe(&mut pipes, a, "weather");
        subscribe(&mut pipes, b, "");
        subscribe(&mut pipes, c, "sport");
        assert!(p.has_out(&pipes));
        p.send(Message::from(["weather.10001", "21C"]), &mut pipes)
            .expect("send");
        p.send("news".into(), &mut pipes).expect("send");
        assert_eq!(
            drain(&mut pipes, a),
            [Message::from(["weather.10001", "21C"])]
        );
        assert_eq!(
            drain(&mut pipes, b),
            [
                Message::from(["weather.10001", "21C"]),
                Message::from("news")
            ]
        );
        assert!(drain(&mut pipes, c).is_empty());
        assert_eq!(pipes.stats, Stats::default(), "nothing dropped");
    }

    #[test]
    fn bodies_are_shared_not_copied() {
        let mut p = XPub::publisher();
        let mut pipes = Pipes::new();
        let ids: Vec<_> = (1..=3).map(|i| add(&mut p, &mut pipes, i, 0)).collect();
        for &id in &ids {
            subscribe(&mut pipes, id, "t");
        }
        let body = Bytes::from(vec![9u8; 100_000]);
        p.send(
            Message::from_frames([Bytes::from_static(b"t"), body.clone()]),
            &mut pipes,
        )
        .expect("send");
        for id in ids {
            let got = pipes.pop_outbound(id).expect("queued");
            assert_eq!(got.get(1).map(|f| f.as_ptr()), Some(body.as_ptr()));
        }
    }

    #[test]
    fn a_slow_subscriber_loses_messages_alone_and_counted() {
        let mut p = XPub::publisher();
        let mut pipes = Pipes::new();
        let slow = add(&mut p, &mut pipes, 1, 3);
        let fast = add(&mut p, &mut pipes, 2, 0);
        subscribe(&mut pipes, slow, "");
        subscribe(&mut pipes, fast, "");
        for i in 0..10 {
            assert!(p.has_out(&pipes), "PUB is always writable");
            p.send(Message::from(vec![i]), &mut pipes)
                .expect("never fails");
        }
        assert_eq!(drain(&mut pipes, fast).len(), 10);
        assert_eq!(drain(&mut pipes, slow).len(), 3);
        let dropped = |id| pipes.get(id).map(|p| p.dropped_hwm());
        assert_eq!(dropped(slow), Some(7));
        assert_eq!(dropped(fast), Some(0));
        assert_eq!(pipes.stats.dropped_hwm, 7);
    }

    #[test]
    fn pub_cannot_receive_and_drops_data_counted() {
        let mut p = XPub::publisher();
        let mut pipes = Pipes::new();
        let a = add(&mut p, &mut pipes, 1, 0);
        subscribe(&mut pipes, a, "x");
        pipes.deliver(a, "not a subscription".into());
        pipes.deliver(a, Message::from(vec![Vec::new()]));
        assert!(!p.has_in(&mut pipes));
        assert_eq!(pipes.stats.dropped_malformed, 2);
        assert_eq!(pipes.get(a).map(Pipe::inbound_len), Some(0));
        assert!(matches!(p.recv(&mut pipes), Err(Error::InvalidState(_))));
        p.send("xy".into(), &mut pipes).expect("send");
        assert_eq!(drain(&mut pipes, a), [Message::from("xy")]);
        let err = p.send(Message::new(), &mut pipes).expect_err("no frames");
        assert!(matches!(err.error, Error::InvalidMessage(_)));
        assert!(matches!(
            p.set_subscription(b"x", true, &mut pipes),
            Err(Error::InvalidState(_))
        ));
    }

    #[test]
    fn lost_or_detached_pipes_lose_their_subscriptions() {
        let mut p = XPub::publisher();
        let mut pipes = Pipes::new();
        let a = add(&mut p, &mut pipes, 1, 0);
        let b = add(&mut p, &mut pipes, 2, 0);
        subscribe(&mut pipes, a, "t");
        subscribe(&mut pipes, b, "t");
        p.send("t1".into(), &mut pipes).expect("send");
        pipes.set_peer(a, None);
        p.peer_lost(a, &mut pipes);
        p.send("t2".into(), &mut pipes).expect("send");
        // The subscriber reconnects and subscribes again.
        pipes.set_peer(a, sub_info());
        p.peer_ready(a, &mut pipes).expect("ready");
        subscribe(&mut pipes, a, "t");
        p.send("t3".into(), &mut pipes).expect("send");
        assert_eq!(
            drain(&mut pipes, a),
            [Message::from("t1"), Message::from("t3")]
        );
        p.detach(b, &mut pipes);
        pipes.remove(b);
        p.send("t4".into(), &mut pipes).expect("send");
        assert_eq!(drain(&mut pipes, a), [Message::from("t4")]);
    }

    #[test]
    fn duplicate_subscribes_are_held_once_as_in_libzmq() {
        // libzmq's SUB sends a subscribe per call but a cancel only for
        // the last unsubscribe: one cancel must end the subscription.
        let mut x = xpub(PatternOptions::default());
        let mut pipes = Pipes::new();
        let a = add(&mut x, &mut pipes, 1, 0);
        subscribe(&mut pipes, a, "t");
        subscribe(&mut pipes, a, "t");
        cancel(&mut pipes, a, "t");
        x.send("t".into(), &mut pipes).expect("send");
        assert!(drain(&mut pipes, a).is_empty());
        assert_eq!(
            recv_all(&mut x, &mut pipes),
            [
                subscription_message(true, b"t"),
                subscription_message(false, b"t")
            ]
        );
    }

    #[test]
    fn xpub_passes_up_new_and_last_subscriptions_only() {
        let mut x = xpub(PatternOptions::default());
        let mut pipes = Pipes::new();
        let a = add(&mut x, &mut pipes, 1, 0);
        let b = add(&mut x, &mut pipes, 2, 0);
        assert!(!x.has_in(&mut pipes));
        subscribe(&mut pipes, a, "t");
        subscribe(&mut pipes, b, "t");
        subscribe(&mut pipes, a, "t");
        cancel(&mut pipes, a, "t");
        cancel(&mut pipes, a, "never");
        assert!(x.has_in(&mut pipes));
        assert_eq!(
            recv_all(&mut x, &mut pipes),
            [subscription_message(true, b"t")]
        );
        assert!(!x.has_in(&mut pipes));
        cancel(&mut pipes, b, "t");
        assert_eq!(
            recv_all(&mut x, &mut pipes),
            [subscription_message(false, b"t")]
        );
        assert!(x.recv(&mut pipes).expect_err("none").is_would_block());
    }

    #[test]
    fn xpub_verbose_and_verboser() {
        let mut x = xpub(PatternOptions {
            xpub_verbose: true,
            ..Default::default()
        });
        let mut pipes = Pipes::new();
        let a = add(&mut x, &mut pipes, 1, 0);
        let b = add(&mut x, &mut pipes, 2, 0);
        subscribe(&mut pipes, a, "t");
        subscribe(&mut pipes, b, "t");
        cancel(&mut pipes, a, "t");
        cancel(&mut pipes, b, "t");
        assert_eq!(
            recv_all(&mut x, &mut pipes),
            [
                subscription_message(true, b"t"),
                subscription_message(true, b"t"),
                subscription_message(false, b"t"),
            ],
            "verbose: every subscribe, the last cancel"
        );

        let mut x = xpub(PatternOptions {
            xpub_verboser: true,
            ..Default::default()
        });
        let mut pipes = Pipes::new();
        let a = add(&mut x, &mut pipes, 1, 0);
        let b = add(&mut x, &mut pipes, 2, 0);
        subscribe(&mut pipes, a, "t");
        subscribe(&mut pipes, b, "t");
        subscribe(&mut pipes, b, "u");
        cancel(&mut pipes, a, "t");
        assert_eq!(recv_all(&mut x, &mut pipes).len(), 4, "every change");
        // A departing subscriber's every subscription is cancelled.
        x.detach(b, &mut pipes);
        pipes.remove(b);
        let mut gone = recv_all(&mut x, &mut pipes);
        gone.sort_by(|m, n| topic_of(m).cmp(topic_of(n)));
        assert_eq!(
            gone,
            [
                subscription_message(false, b"t"),
                subscription_message(false, b"u")
            ]
        );
    }

    #[test]
    fn xpub_departure_cancels_the_prefixes_nobody_else_holds() {
        let mut x = xpub(PatternOptions::default());
        let mut pipes = Pipes::new();
        let a = add(&mut x, &mut pipes, 1, 0);
        let b = add(&mut x, &mut pipes, 2, 0);
        subscribe(&mut pipes, a, "shared");
        subscribe(&mut pipes, b, "shared");
        subscribe(&mut pipes, a, "mine");
        recv_all(&mut x, &mut pipes);
        // Its last cancel, still queued when the connection broke, is
        // taken first: then there is nothing more to cancel.
        cancel(&mut pipes, a, "mine");
        pipes.set_peer(a, None);
        x.peer_lost(a, &mut pipes);
        assert_eq!(
            recv_all(&mut x, &mut pipes),
            [subscription_message(false, b"mine")]
        );
        subscribe(&mut pipes, a, "late");
        x.detach(a, &mut pipes);
        pipes.remove(a);
        assert_eq!(
            recv_all(&mut x, &mut pipes),
            [
                subscription_message(true, b"late"),
                subscription_message(false, b"late")
            ]
        );
    }

    #[test]
    fn xpub_passes_data_from_subscribers_up() {
        let mut x = xpub(PatternOptions::default());
        let mut pipes = Pipes::new();
        let a = add(&mut x, &mut pipes, 1, 0);
        pipes.deliver(a, Message::from(["\x01not", "a subscription"]));
        pipes.deliver(a, "hello upstream".into());
        pipes.deliver(a, Message::from(vec![Vec::new()]));
        assert_eq!(
            recv_all(&mut x, &mut pipes),
            [
                Message::from(["\x01not", "a subscription"]),
                Message::from("hello upstream"),
                Message::from(vec![Vec::new()]),
            ]
        );
        x.send("\x01not".into(), &mut pipes).expect("send");
        assert!(drain(&mut pipes, a).is_empty(), "nothing was subscribed");
    }

    #[test]
    fn xpub_manual_applies_to_the_last_received_pipe() {
        let mut x = xpub(PatternOptions {
            xpub_manual: true,
            ..Default::default()
        });
        let mut pipes = Pipes::new();
        let a = add(&mut x, &mut pipes, 1, 0);
        let b = add(&mut x, &mut pipes, 2, 0);
        // Before anything was received, there is no pipe to apply to.
        x.set_subscription(b"t", true, &mut pipes).expect("a no-op");
        subscribe(&mut pipes, a, "t");
        subscribe(&mut pipes, b, "t");
        subscribe(&mut pipes, b, "t");
        x.send("t".into(), &mut pipes).expect("send");
        assert!(drain(&mut pipes, a).is_empty(), "not applied by itself");
        // Every request is passed up, duplicates included.
        assert_eq!(
            x.recv(&mut pipes).ok(),
            Some(subscription_message(true, b"t"))
        );
        x.set_subscription(b"t", true, &mut pipes).expect("for a");
        assert_eq!(
            x.recv(&mut pipes).ok(),
            Some(subscription_message(true, b"t"))
        );
        // The application narrows b's subscription.
        x.set_subscription(b"t.b", true, &mut pipes).expect("for b");
        x.send("t.b".into(), &mut pipes).expect("send");
        x.send("t.x".into(), &mut pipes).expect("send");
        assert_eq!(
            drain(&mut pipes, a),
            [Message::from("t.b"), Message::from("t.x")]
        );
        assert_eq!(drain(&mut pipes, b), [Message::from("t.b")]);
        x.set_subscription(b"t.b", false, &mut pipes)
            .expect("for b");
        x.send("t.b".into(), &mut pipes).expect("send");
        assert!(drain(&mut pipes, b).is_empty());
        assert_eq!(drain(&mut pipes, a), [Message::from("t.b")]);
        // b leaves: each of its requests comes back as a cancel, once,
        // and the application can no longer subscribe it.
        assert_eq!(
            x.recv(&mut pipes).ok(),
            Some(subscription_message(true, b"t"))
        );
        x.detach(b, &mut pipes);
        pipes.remove(b);
        assert_eq!(
            recv_all(&mut x, &mut pipes),
            [subscription_message(false, b"t")]
        );
        x.set_subscription(b"u", true, &mut pipes)
            .expect("no pipe: no-op");
        x.send("u".into(), &mut pipes).expect("send");
        assert!(drain(&mut pipes, a).is_empty());
    }

    #[test]
    fn xpub_welcome_goes_first_to_each_new_peer() {
        let mut x = xpub(PatternOptions {
            xpub_welcome_msg: Some(Bytes::from_static(b"welcome")),
            ..Default::default()
        });
        let mut pipes = Pipes::new();
        let a = PipeId(1);
        pipes.insert(a, 1, 0);
        x.attach(a, &mut pipes);
        // A connecter's pipe before its peer: no welcome yet.
        assert_eq!(pipes.get(a).map(Pipe::outbound_len), Some(0));
        pipes.set_peer(a, sub_info());
        x.peer_ready(a, &mut pipes).expect("ready");
        subscribe(&mut pipes, a, "");
        // The welcome does not count against the HWM's promise: the
        // publisher's message is dropped at it, the welcome is not.
        x.send("news".into(), &mut pipes).expect("send");
        assert_eq!(drain(&mut pipes, a), [Message::from("welcome")]);
        assert_eq!(pipes.stats.dropped_hwm, 1);
        // After a reconnect the peer is welcomed again.
        pipes.set_peer(a, None);
        x.peer_lost(a, &mut pipes);
        pipes.set_peer(a, sub_info());
        x.peer_ready(a, &mut pipes).expect("ready");
        assert_eq!(drain(&mut pipes, a), [Message::from("welcome")]);
    }

    #[test]
    fn xpub_nodrop_would_block_instead_of_dropping() {
        let mut x = xpub(PatternOptions {
            xpub_nodrop: true,
            ..Default::default()
        });
        let mut pipes = Pipes::new();
        let slow = add(&mut x, &mut pipes, 1, 2);
        let other = add(&mut x, &mut pipes, 2, 2);
        subscribe(&mut pipes, slow, "a");
        subscribe(&mut pipes, other, "b");
        assert!(x.has_out(&pipes));
        x.send("a1".into(), &mut pipes).expect("send");
        x.send("a2".into(), &mut pipes).expect("send");
        assert!(!x.has_out(&pipes), "a send to slow would block");
        let err = x.send("a3".into(), &mut pipes).expect_err("slow is full");
        assert!(err.error.is_would_block());
        assert_eq!(err.message, Message::from("a3"));
        // A message slow does not want still goes out.
        x.send("b1".into(), &mut pipes).expect("send");
        pipes.pop_outbound(slow);
        assert!(x.has_out(&pipes));
        x.send("a3".into(), &mut pipes).expect("room again");
        assert_eq!(
            drain(&mut pipes, slow),
            [Message::from("a2"), Message::from("a3")]
        );
        assert_eq!(pipes.stats, Stats::default(), "nothing dropped");
    }

    #[test]
    fn pub_takes_nodrop_and_welcome_but_not_the_receive_options() {
        let mut p = XPub::publisher();
        p.configure(&PatternOptions {
            xpub_nodrop: true,
            xpub_verbose: true,
            xpub_manual: true,
            ..Default::default()
        });
        let mut pipes = Pipes::new();
        let a = add(&mut p, &mut pipes, 1, 1);
        subscribe(&mut pipes, a, "");
        p.send("1".into(), &mut pipes).expect("applied: not manual");
        assert!(p
            .send("2".into(), &mut pipes)
            .is_err_and(|e| e.error.is_would_block()));
        assert!(!p.has_in(&mut pipes));
    }

    #[test]
    fn a_subscriber_over_the_limit_is_refused() {
        let mut x = XPub::new();
        x.configure(&PatternOptions {
            subscription_limit: Some(1000),
            ..PatternOptions::default()
        });
        let mut pipes = Pipes::new();
        let (a, b) = (PipeId(1), PipeId(2));
        for id in [a, b] {
            pipes.insert(id, 0, 0);
            x.attach(id, &mut pipes);
        }
        // Each costs 64 + its 10 bytes: the 14th pushes `a` over 1000.
        for i in 0..20 {
            pipes.deliver(a, Message::from(format!("\x01prefix-{i:03}").into_bytes()));
        }
        pipes.deliver(b, Message::from(&b"\x01ok"[..]));
        x.has_out(&pipes);
        let mut recv = Vec::new();
        while let Ok(m) = x.recv(&mut pipes) {
            recv.push(m);
        }
        assert_eq!(
            recv.len(),
            15,
            "13 fit, the 14th tripped the limit, the rest ignored; b's one"
        );
        let refused: Vec<_> = pipes
            .take_io_requests()
            .into_iter()
            .filter_map(|r| match r {
                IoRequest::Disconnect(p, ProtocolError::TooManySubscriptions { limit, .. }) => {
                    Some((p, limit))
                }
                _ => None,
            })
            .collect();
        assert_eq!(refused, [(a, 1000)]);
    }
}
