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
    xpub.set_xpub_verbose(true);
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
    xpub.set_xpub_verboser(true);
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
    sub.set_sndhwm(10);
    sub.set_reconnect_ivl(Some(Duration::from_millis(20)));
    for i in 0..N {
        sub.subscribe(format!("topic-{i:05}")).expect("subscribe");
    }
    sub.connect(&ep).expect("connect");
    assert_eq!(subscriptions(&xpub, N).len(), N);
    // Once its close report is in, its listener is closed: the endpoint
    // is free to bind again.
    xpub.set_linger(Some(Duration::ZERO));
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
    xpub.set_sndhwm(100);
    xpub.set_xpub_verbose(true);
    let monitor = xpub.monitor();
    let ep = bind_local(&xpub);
    let fast = socket(&ctx, SocketType::Sub);
    fast.subscribe("").expect("all");
    fast.connect(&ep).expect("connect");
    let slow = socket(&ctx, SocketType::Sub);
    slow.set_rcvhwm(5);
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
    sub.set_conflate(true);
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
    xpub.set_subscription_limit(Some(2_000));
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
