//! Publish-subscribe and PAIR between our own sockets over TCP.
//!
//! Subscriptions are observed where they can be (an XPUB receives them),
//! so that no test sleeps for a subscription to arrive.

mod util;

use ferrozmq::{EventKind, Message, ProtocolError, Socket, SocketType};
use std::time::Duration;
use util::*;

/// Waits until `xpub` has received `n` subscription messages; returns them.
fn subscriptions(xpub: &Socket, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let m = recv(xpub, &format!("subscription {i} of {n}"));
            assert_eq!(m.len(), 1);
            m.first().map(|f| f.to_vec()).unwrap_or_default()
        })
        .collect()
}

#[test]
fn prefixes_fan_out_to_matching_subscribers_only() {
    let ctx = ctx();
    let xpub = socket(&ctx, SocketType::XPub);
    xpub.set_xpub_verbose(true).unwrap();
    let ep = bind_local(&xpub);
    let a = socket(&ctx, SocketType::Sub);
    a.subscribe("weather.").expect("subscribe");
    a.connect(&ep).expect("connect");
    let b = socket(&ctx, SocketType::Sub);
    b.subscribe("").expect("everything");
    b.subscribe("weather.1").expect("overlapping");
    b.connect(&ep).expect("connect");
    let mut seen = subscriptions(&xpub, 3);
    seen.sort();
    assert_eq!(
        seen,
        [
            b"\x01".to_vec(),
            b"\x01weather.".to_vec(),
            b"\x01weather.1".to_vec()
        ]
    );

    for topic in ["weather.10001", "sports.1", "weather.2"] {
        send(&xpub, Message::from_frames([topic, "data"]), "publish");
    }
    send(&xpub, Message::from_frames(["weather.end"]), "marker");
    for t in ["weather.10001", "weather.2", "weather.end"] {
        assert_eq!(
            recv(&a, "a").first().map(|f| f.to_vec()),
            Some(t.as_bytes().to_vec())
        );
    }
    // b matches "weather.10001" twice over: it gets it once.
    for t in ["weather.10001", "sports.1", "weather.2", "weather.end"] {
        assert_eq!(
            recv(&b, "b").first().map(|f| f.to_vec()),
            Some(t.as_bytes().to_vec())
        );
    }
    assert!(a.try_recv().is_err() && b.try_recv().is_err());
}

#[test]
fn subscriptions_are_counted_and_unsubscribe_stops_delivery() {
    let ctx = ctx();
    let xpub = socket(&ctx, SocketType::XPub);
    xpub.set_xpub_verboser(true).unwrap();
    let ep = bind_local(&xpub);
    let sub = socket(&ctx, SocketType::Sub);
    sub.connect(&ep).expect("connect");
    sub.subscribe("a").expect("once");
    sub.subscribe("a").expect("twice");
    assert_eq!(
        subscriptions(&xpub, 1),
        [b"\x01a".to_vec()],
        "the prefix is new once"
    );
    sub.unsubscribe("a").expect("one count");
    sub.subscribe("z").expect("z");
    assert_eq!(
        subscriptions(&xpub, 1),
        [b"\x01z".to_vec()],
        "a is still subscribed"
    );
    sub.unsubscribe("a").expect("the last count");
    assert_eq!(subscriptions(&xpub, 1), [b"\x00a".to_vec()]);
    send(&xpub, "a-gone", "publish");
    send(&xpub, "z-marker", "publish");
    assert_eq!(strs(&recv(&sub, "sub")), ["z-marker"]);
    assert!(SocketType::Pub != SocketType::Sub);
    assert!(xpub.subscribe("x").is_err(), "only SUB sockets subscribe");
}

/// 5,000 subscriptions, a send HWM of 10, and a publisher that restarts:
/// every subscription reaches the new publisher (libzmq drops some past
/// 1,000, its issue #2258).
#[test]
fn thousands_of_subscriptions_survive_a_publisher_restart() {
    const N: usize = 5_000;
    let ctx = ctx();
    let xpub = socket(&ctx, SocketType::XPub);
    let ep = bind_local(&xpub);
    let sub = socket(&ctx, SocketType::Sub);
    sub.set_sndhwm(10).unwrap();
    sub.set_reconnect_ivl(Some(Duration::from_millis(20)))
        .unwrap();
    for i in 0..N {
        sub.subscribe(format!("topic-{i:05}")).expect("subscribe");
    }
    sub.connect(&ep).expect("connect");
    assert_eq!(subscriptions(&xpub, N).len(), N);
    // Once its close report is in, its listener is closed: the endpoint
    // is free to bind again.
    xpub.set_linger(Some(Duration::ZERO)).unwrap();
    xpub.close().wait_timeout(TIMEOUT).expect("closed");
    drop(xpub);
    let xpub = socket(&ctx, SocketType::XPub);
    xpub.bind(&ep).expect("rebind the same endpoint");
    let mut again = subscriptions(&xpub, N);
    again.sort();
    again.dedup();
    assert_eq!(again.len(), N, "every subscription once");
    assert!(xpub.try_recv().is_err(), "and no duplicates");
}

/// A slow subscriber (one that never reads) loses messages at its HWM,
/// counted; a subscriber that keeps up gets everything. The publisher is
/// paced by the fast subscriber's progress, never by sleeps.
#[test]
fn a_slow_subscriber_only_costs_itself() {
    const N: u32 = 2_000;
    const BATCH: u32 = 50;
    let ctx = ctx();
    let xpub = socket(&ctx, SocketType::XPub);
    xpub.set_sndhwm(100).unwrap();
    xpub.set_xpub_verbose(true).unwrap();
    let monitor = xpub.monitor();
    let ep = bind_local(&xpub);
    let fast = socket(&ctx, SocketType::Sub);
    fast.subscribe("").expect("all");
    fast.connect(&ep).expect("connect");
    let slow = socket(&ctx, SocketType::Sub);
    slow.set_rcvhwm(5).unwrap();
    slow.subscribe("").expect("all");
    slow.connect(&ep).expect("connect");
    subscriptions(&xpub, 2);
    let (progress, seen) = crossbeam_channel::unbounded();
    let reader = std::thread::spawn(move || -> Result<(), String> {
        for i in 0..N {
            let m = fast
                .recv_timeout(TIMEOUT)
                .map_err(|e| format!("fast subscriber lost message {i}: {e:?}"))?;
            if m.first().map(|f| f.to_vec()) != Some(i.to_be_bytes().to_vec()) {
                return Err(format!("message {i} out of order"));
            }
            let _ = progress.send(i);
        }
        Ok(())
    });
    let body = bytes::Bytes::from(vec![0u8; 16 * 1024]);
    for i in 0..N {
        // PUB never blocks, whatever the slow subscriber does.
        let m = Message::from_frames([
            bytes::Bytes::copy_from_slice(&i.to_be_bytes()),
            body.clone(),
        ]);
        xpub.try_send(m).expect("never blocks");
        if i % BATCH == BATCH - 1 {
            // The fast subscriber has taken this batch before the next.
            loop {
                match seen.recv_timeout(TIMEOUT) {
                    Ok(got) if got == i => break,
                    Ok(_) => {}
                    Err(_) => panic!("the fast subscriber stalled at {i}: {:?}", reader.join()),
                }
            }
        }
    }
    reader
        .join()
        .expect("reader")
        .expect("the fast subscriber got everything");
    let dropped = xpub.stats().dropped_hwm;
    assert!(dropped > 0, "the slow subscriber's drops are counted");
    // And the monitor says which subscriber it was: one peer, at its 1st,
    // 2nd, 4th... drop.
    let reports: Vec<(String, u64)> = monitor
        .try_iter()
        .filter_map(|e| match e.kind {
            EventKind::DroppedAtHwm { dropped } => Some((e.endpoint, dropped)),
            _ => None,
        })
        .collect();
    assert!(!reports.is_empty(), "no DroppedAtHwm event");
    assert!(
        reports.iter().all(|(ep, _)| *ep == reports[0].0),
        "{reports:?}"
    );
    let counts: Vec<u64> = reports.iter().map(|(_, n)| *n).collect();
    let want: Vec<u64> = (0..counts.len() as u32).map(|k| 1 << k).collect();
    assert_eq!(counts, want);
    assert!(*counts.last().unwrap_or(&0) <= dropped);
    // The endpoint's status names the slow peer too, with all its drops
    // (the fast one has closed by now, and may be gone).
    let status = xpub.endpoints().expect("endpoints");
    let peers = &status.first().expect("the bound endpoint").peers;
    let dropping: Vec<(u64, &str)> = peers
        .iter()
        .filter(|p| p.dropped_hwm > 0)
        .map(|p| (p.dropped_hwm, p.address.as_str()))
        .collect();
    assert_eq!(dropping, [(dropped, reports[0].0.as_str())], "{peers:?}");
    let mut got = 0;
    while slow.try_recv().is_ok() {
        got += 1;
    }
    assert!(got > 0, "the slow one got some");
}

#[test]
fn pair_takes_one_peer_and_refuses_a_second() {
    let ctx = ctx();
    let a = socket(&ctx, SocketType::Pair);
    let monitor = a.monitor();
    let ep = bind_local(&a);
    let b = socket(&ctx, SocketType::Pair);
    b.connect(&ep).expect("connect");
    send(&b, "hello", "b");
    assert_eq!(strs(&recv(&a, "a")), ["hello"]);
    send(&a, "back", "a");
    assert_eq!(strs(&recv(&b, "b")), ["back"]);
    let c = socket(&ctx, SocketType::Pair);
    c.connect(&ep).expect("connect");
    wait_event(&monitor, TIMEOUT, |e| {
        matches!(
            e.kind,
            EventKind::Disconnected {
                reason: Some(ProtocolError::AlreadyPaired),
                ..
            } | EventKind::HandshakeFailed {
                reason: ProtocolError::AlreadyPaired
            }
        )
    });
    send(&b, "still here", "b");
    assert_eq!(strs(&recv(&a, "a")), ["still here"]);
}

/// `conflate`: a SUB keeps only the newest message; every message is
/// either received or counted as replaced, and the last one always
/// arrives.
#[test]
fn conflate_keeps_the_newest_and_counts_the_rest() {
    const N: u32 = 1_000;
    let ctx = ctx();
    let xpub = socket(&ctx, SocketType::XPub);
    let ep = bind_local(&xpub);
    let sub = socket(&ctx, SocketType::Sub);
    sub.set_conflate(true).unwrap();
    sub.subscribe("").expect("all");
    sub.connect(&ep).expect("connect");
    subscriptions(&xpub, 1);
    for i in 0..N {
        send(
            &xpub,
            Message::from_frames([i.to_be_bytes().to_vec(), b"value".to_vec()]),
            "publish",
        );
    }
    let mut received = 0u64;
    loop {
        let m = recv(&sub, "conflated");
        assert_eq!(m.len(), 2, "multipart messages stay whole");
        received += 1;
        if m.first().map(|f| f.to_vec()) == Some((N - 1).to_be_bytes().to_vec()) {
            break;
        }
    }
    assert_eq!(received + sub.stats().dropped_conflated, u64::from(N));
}

/// A subscriber whose subscriptions cost more than the publisher's
/// `subscription_limit` is disconnected and reported; the others are
/// served all along.
#[test]
fn a_subscriber_over_the_subscription_limit_is_dropped() {
    let ctx = ctx();
    let xpub = socket(&ctx, SocketType::XPub);
    xpub.set_subscription_limit(Some(2_000)).unwrap();
    let monitor = xpub.monitor();
    let ep = bind_local(&xpub);
    let good = socket(&ctx, SocketType::Sub);
    good.subscribe("news").expect("subscribe");
    good.connect(&ep).expect("connect");
    assert_eq!(subscriptions(&xpub, 1), [b"\x01news".to_vec()]);
    let greedy = socket(&ctx, SocketType::Sub);
    for i in 0..100 {
        greedy
            .subscribe(format!("prefix-{i:03}"))
            .expect("subscribe");
    }
    greedy.connect(&ep).expect("connect");
    // Drain what it managed to subscribe until it is refused.
    let reader = {
        let deadline = std::time::Instant::now() + TIMEOUT;
        let xpub = &xpub;
        std::iter::from_fn(move || {
            (std::time::Instant::now() < deadline)
                .then(|| xpub.recv_timeout(Duration::from_millis(50)).ok())
                .flatten()
        })
        .take(100)
        .count()
    };
    assert!(
        reader < 100,
        "the greedy subscriber was cut off, {reader} subscriptions seen"
    );
    wait_event(&monitor, TIMEOUT, |e| {
        matches!(
            e.kind,
            EventKind::Disconnected {
                reason: Some(ProtocolError::TooManySubscriptions { limit: 2_000, .. }),
                ..
            }
        )
    });
    send(&xpub, "news: still served", "publish");
    assert_eq!(strs(&recv(&good, "good")), ["news: still served"]);
}

// ----- the pub-sub types with the Poller, linger, heartbeats and hostile peers -----

/// What `s` is ready for among `events`, waiting at most `timeout`.
fn polled(s: &Socket, events: ferrozmq::Events, timeout: Option<Duration>) -> ferrozmq::Events {
    s.poll(events, timeout).expect("poll")
}

/// `poll` says IN exactly when `recv` would succeed, and OUT exactly when
/// `send` would, for each pub-sub type and PAIR.
#[test]
fn readiness_is_what_send_and_recv_would_do() {
    use ferrozmq::Events;
    let ctx = ctx();
    let xpub = socket(&ctx, SocketType::XPub);
    xpub.set_xpub_nodrop(true).unwrap();
    xpub.set_sndhwm(4).unwrap();
    let ep = bind_local(&xpub);
    assert_eq!(
        polled(&xpub, Events::IN, Some(Duration::ZERO)),
        Events::NONE
    );
    let sub = socket(&ctx, SocketType::Sub);
    sub.set_rcvhwm(2).unwrap();
    sub.subscribe("a").expect("subscribe");
    sub.connect(&ep).expect("connect");
    // A subscription makes the XPUB readable.
    assert_eq!(polled(&xpub, Events::IN, Some(TIMEOUT)), Events::IN);
    assert_eq!(subscriptions(&xpub, 1), [b"\x01a".to_vec()]);
    assert_eq!(
        polled(&xpub, Events::IN, Some(Duration::ZERO)),
        Events::NONE
    );

    assert_eq!(polled(&sub, Events::IN, Some(Duration::ZERO)), Events::NONE);
    send(&xpub, "a1", "a1");
    assert_eq!(polled(&sub, Events::IN, Some(TIMEOUT)), Events::IN);
    assert_eq!(strs(&recv(&sub, "a1")), ["a1"]);
    assert_eq!(polled(&sub, Events::IN, Some(Duration::ZERO)), Events::NONE);
    assert!(matches!(sub.try_recv(), Err(ferrozmq::Error::WouldBlock)));

    // With xpub_nodrop and a subscriber that stops reading, OUT goes away
    // exactly when a send would block.
    let mut sent = 0;
    loop {
        assert!(sent < 10_000, "the subscriber's queues never filled");
        let ready = xpub.poll(Events::OUT, Some(Duration::ZERO)).expect("poll");
        match xpub.try_send(Message::from("a-fill")) {
            Ok(()) => {
                assert_eq!(ready, Events::OUT, "sent while not writable");
                sent += 1;
            }
            Err(e) if matches!(e.error, ferrozmq::Error::WouldBlock) => {
                // Not writable, unless the I/O thread drained the pipe in
                // between; then the next round sends again.
                if ready.is_empty() {
                    break;
                }
            }
            Err(e) => panic!("send failed: {e:?}"),
        }
    }
    // Reading makes room, and OUT comes back.
    while sub.recv_timeout(SHORT).is_ok() {}
    assert_eq!(polled(&xpub, Events::OUT, Some(TIMEOUT)), Events::OUT);

    // A PUB is always writable and never readable.
    let publisher = socket(&ctx, SocketType::Pub);
    bind_local(&publisher);
    assert_eq!(
        polled(&publisher, Events::IN | Events::OUT, Some(Duration::ZERO)),
        Events::OUT
    );

    // PAIR: not writable until its peer is there.
    let a = socket(&ctx, SocketType::Pair);
    let pair_ep = bind_local(&a);
    assert_eq!(polled(&a, Events::OUT, Some(Duration::ZERO)), Events::NONE);
    assert!(matches!(
        a.try_send(Message::from("early")),
        Err(e) if matches!(e.error, ferrozmq::Error::WouldBlock)
    ));
    let b = socket(&ctx, SocketType::Pair);
    b.connect(&pair_ep).expect("connect");
    assert_eq!(polled(&a, Events::OUT, Some(TIMEOUT)), Events::OUT);
    send(&a, "hi", "hi");
    assert_eq!(polled(&b, Events::IN, Some(TIMEOUT)), Events::IN);
}

/// A publisher's queued messages are delivered while it lingers, and the
/// close report says so.
#[test]
fn a_closing_publisher_lingers_until_its_subscriber_has_everything() {
    const N: usize = 500;
    let ctx = ctx();
    let xpub = socket(&ctx, SocketType::XPub);
    xpub.set_linger(Some(TIMEOUT)).unwrap();
    let ep = bind_local(&xpub);
    let sub = socket(&ctx, SocketType::Sub);
    sub.subscribe("").expect("subscribe");
    sub.connect(&ep).expect("connect");
    subscriptions(&xpub, 1);
    for i in 0..N {
        send(&xpub, i.to_string(), "publish");
    }
    let report = xpub.close().wait_timeout(TIMEOUT).expect("lingered");
    assert_eq!(
        (report.dropped_linger, report.dropped_peer_gone),
        (0, 0),
        "{report:?}"
    );
    for i in 0..N {
        assert_eq!(strs(&recv(&sub, "published")), [i.to_string()]);
    }
}

/// A subscriber whose publisher stops answering PINGs is disconnected by
/// the heartbeat timeout, and reconnects; so is a publisher's subscriber.
#[test]
fn heartbeats_drop_a_silent_peer_on_either_side() {
    use std::io::{Read, Write};
    use util::raw::{greeting, ready};
    for (ours, theirs) in [(SocketType::Sub, "PUB"), (SocketType::XPub, "SUB")] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let ctx = ctx();
        let s = socket(&ctx, ours);
        s.set_heartbeat_ivl(Some(Duration::from_millis(50)))
            .unwrap();
        s.set_heartbeat_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let monitor = s.monitor();
        let silent = if ours == SocketType::Sub {
            s.connect(&format!("tcp://{}", listener.local_addr().expect("addr")))
                .expect("connect");
            listener.accept().expect("accept").0
        } else {
            let ep = bind_local(&s);
            std::net::TcpStream::connect(ep.trim_start_matches("tcp://")).expect("dial")
        };
        let mut silent = silent;
        silent.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        silent
            .write_all(&[&greeting()[..], &ready(Some(theirs))].concat())
            .expect("handshake");
        // Read what it sends (greeting, READY, PINGs) and never answer.
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(silent.read(&mut buf), Ok(n) if n > 0) {}
        });
        wait_event(&monitor, TIMEOUT, |e| {
            matches!(e.kind, EventKind::HandshakeSucceeded)
        });
        wait_event(&monitor, TIMEOUT, |e| {
            matches!(
                e.kind,
                EventKind::Disconnected {
                    reason: Some(ProtocolError::HeartbeatTimeout),
                    ..
                }
            )
        });
        drop(s);
        reader.join().expect("reader");
    }
}

/// Raw peers that misbehave at a publisher are dropped with a typed
/// reason, while a good subscriber gets every message.
#[test]
fn hostile_subscribers_cost_the_good_one_nothing() {
    use std::io::Write;
    use util::raw::{greeting, ready};
    const N: u32 = 2_000;
    let ctx = ctx();
    let xpub = socket(&ctx, SocketType::XPub);
    // Wait for the good subscriber rather than drop for it: every message
    // must arrive. The attackers subscribe to nothing, so never hold it up.
    xpub.set_xpub_nodrop(true).unwrap();
    let monitor = xpub.monitor();
    let ep = bind_local(&xpub);
    let good = socket(&ctx, SocketType::Sub);
    good.subscribe("").expect("subscribe");
    good.connect(&ep).expect("connect");
    subscriptions(&xpub, 1);
    let good_peer = {
        let status = xpub.endpoints().expect("endpoints");
        status[0].peers[0].address.clone()
    };
    let hello = [&greeting()[..], &ready(Some("SUB"))].concat();
    // A SUBSCRIBE command that claims 2^62 bytes.
    let mut huge = hello.clone();
    huge.push(0x06);
    huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
    huge.extend_from_slice(b"\x09SUBSCRIBE");
    // A frame with reserved flag bits set.
    let mut reserved = hello.clone();
    reserved.extend_from_slice(&[0xF0, 1, b'x']);
    let attacks: Vec<Vec<u8>> = vec![
        huge,
        reserved,
        [&greeting()[..], &ready(Some("PUB"))].concat(), // incompatible
        vec![0xAB; 64],                                  // not ZMTP
    ];
    let addr = ep.trim_start_matches("tcp://").to_owned();
    let peers: Vec<std::net::TcpStream> = attacks
        .iter()
        .map(|bytes| {
            let mut s = std::net::TcpStream::connect(&addr).expect("dial");
            let _ = s.write_all(bytes);
            s
        })
        .collect();
    let publisher = std::thread::spawn(move || {
        for i in 0..N {
            send(&xpub, i.to_be_bytes().to_vec(), "publish");
        }
        xpub
    });
    for i in 0..N {
        let m = recv(&good, "the good subscriber's message");
        assert_eq!(
            m.first().map(|f| f.to_vec()),
            Some(i.to_be_bytes().to_vec())
        );
    }
    let _xpub = publisher.join().expect("publisher");
    // Each attacker ends with exactly one typed terminal event.
    let mut ended = std::collections::HashMap::new();
    while ended.len() < attacks.len() {
        let e = monitor
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("attackers ended so far: {ended:?}"));
        let reason = match e.kind {
            EventKind::HandshakeFailed { reason } => Some(reason),
            EventKind::Disconnected { reason, .. } => reason,
            _ => continue,
        };
        assert_ne!(e.endpoint, good_peer, "the good subscriber was dropped");
        let reason = reason.unwrap_or_else(|| panic!("{}: no typed reason", e.endpoint));
        assert!(ended.insert(e.endpoint, reason).is_none(), "one event each");
    }
    drop(peers);
}
