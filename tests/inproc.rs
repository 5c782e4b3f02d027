//! What only `inproc://` has: links made in memory within one context.
//! Connect before bind, many to one, the HWM summed over both ends,
//! closing and termination with messages in flight (with and without
//! linger), zero copy, and names private to their context.

mod util;

use bytes::Bytes;
use ferrozmq::{
    EndpointState, Error, EventKind, Events, Poller, ProtocolError, Socket, SocketType,
};
use std::time::Duration;
use util::*;

fn name() -> String {
    unique_name("inproc://test")
}

#[test]
fn connect_before_bind_completes_at_bind() {
    let ctx = ctx();
    let ep = name();
    let req = socket(&ctx, SocketType::Req);
    let events = req.monitor();
    req.connect(&ep).expect("connect before bind");
    assert_eq!(
        req.endpoints().expect("status")[0].state,
        EndpointState::Connecting
    );
    send(&req, "early", "req");
    let rep = socket(&ctx, SocketType::Rep);
    rep.bind(&ep).expect("bind");
    wait_event(&events, TIMEOUT, |e| {
        matches!(e.kind, EventKind::HandshakeSucceeded)
    });
    assert_eq!(
        req.endpoints().expect("status")[0].state,
        EndpointState::Connected
    );
    assert_eq!(strs(&recv(&rep, "rep")), ["early"]);
    send(&rep, "late", "rep");
    assert_eq!(strs(&recv(&req, "req")), ["late"]);
}

#[test]
fn many_to_one_either_order() {
    let ctx = ctx();
    let ep = name();
    let pull = socket(&ctx, SocketType::Pull);
    let mut pushes = Vec::new();
    for i in 0..10 {
        if i == 5 {
            pull.bind(&ep).expect("bind");
        }
        let p = socket(&ctx, SocketType::Push);
        p.connect(&ep).expect("connect");
        pushes.push(p);
    }
    let senders: Vec<_> = pushes
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            std::thread::spawn(move || {
                for n in 0..200 {
                    send(&p, format!("{i}:{n}"), "push");
                }
                p
            })
        })
        .collect();
    let mut next = [0usize; 10];
    for _ in 0..2000 {
        let m = strs(&recv(&pull, "pull"));
        let (i, n) = m[0].split_once(':').expect("i:n");
        let (i, n): (usize, usize) = (i.parse().expect("i"), n.parse().expect("n"));
        assert_eq!(n, next[i], "in order per sender");
        next[i] += 1;
    }
    for s in senders {
        drop(s.join().expect("sender"));
    }
}

#[test]
fn the_pipe_holds_the_senders_sndhwm_plus_the_receivers_rcvhwm() {
    let ctx = ctx();
    let ep = name();
    let pull = socket(&ctx, SocketType::Pull);
    pull.set_rcvhwm(7).unwrap();
    pull.bind(&ep).expect("bind");
    let push = socket(&ctx, SocketType::Push);
    push.set_sndhwm(5).unwrap();
    push.connect(&ep).expect("connect");
    for i in 0..12 {
        push.try_send(format!("{i}"))
            .unwrap_or_else(|e| panic!("send {i}: {:?}", e.error));
    }
    assert!(matches!(push.try_send("13th"), Err(e) if e.error.is_would_block()));
    // Draining the receiver to half its HWM pulls the rest across.
    for i in 0..4 {
        assert_eq!(strs(&recv(&pull, "pull")), [format!("{i}")]);
    }
    for i in 12..16 {
        push.try_send(format!("{i}"))
            .unwrap_or_else(|e| panic!("send {i}: {:?}", e.error));
    }
    assert!(push.try_send("full again").is_err());
    for i in 4..16 {
        assert_eq!(strs(&recv(&pull, "pull")), [format!("{i}")]);
    }
    assert!(matches!(pull.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn a_blocked_send_and_a_blocked_recv_are_woken_by_the_peer() {
    let ctx = ctx();
    let ep = name();
    let pull = socket(&ctx, SocketType::Pull);
    pull.set_rcvhwm(1).unwrap();
    pull.bind(&ep).expect("bind");
    let push = socket(&ctx, SocketType::Push);
    push.set_sndhwm(1).unwrap();
    push.connect(&ep).expect("connect");
    // Receiver blocked first, then woken by a send from another thread.
    let receiver = std::thread::spawn(move || {
        let got: Vec<String> = (0..50)
            .map(|_| strs(&recv(&pull, "pull"))[0].clone())
            .collect();
        (pull, got)
    });
    // The sender runs into the HWM of 2 again and again.
    for i in 0..50 {
        send(&push, format!("{i}"), "push");
    }
    let (_pull, got) = receiver.join().expect("receiver");
    assert_eq!(got, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[test]
fn messages_move_without_a_copy() {
    let ctx = ctx();
    let ep = name();
    let pair = socket(&ctx, SocketType::Pair);
    pair.bind(&ep).expect("bind");
    let other = socket(&ctx, SocketType::Pair);
    other.connect(&ep).expect("connect");
    let body = Bytes::from(vec![9u8; 4096]);
    let at = body.as_ptr();
    send(&other, body, "send");
    let m = recv(&pair, "recv");
    assert_eq!(m.first().map(|f| f.as_ptr()), Some(at), "the same buffer");
}

/// A PULL and a PUSH linked with `hwm` each way, the pipe filled:
/// `hwm` messages at the PULL, `hwm` still at the PUSH.
fn full_pipe(ctx: &ferrozmq::Context, hwm: usize, linger: Option<Duration>) -> (Socket, Socket) {
    let ep = name();
    let pull = socket(ctx, SocketType::Pull);
    pull.set_rcvhwm(hwm).unwrap();
    pull.bind(&ep).expect("bind");
    let push = socket(ctx, SocketType::Push);
    push.set_sndhwm(hwm).unwrap();
    push.set_linger(linger).unwrap();
    push.connect(&ep).expect("connect");
    for i in 0..2 * hwm {
        push.try_send(format!("{i}")).expect("room");
    }
    (pull, push)
}

/// A PUSH with 10 messages at the PULL and 10 still queued closes;
/// `linger` decides the 10.
fn close_in_flight(linger: Option<Duration>) -> (ferrozmq::CloseReport, usize) {
    let ctx = ctx();
    let (pull, push) = full_pipe(&ctx, 10, linger);
    let report = push.close().wait_timeout(TIMEOUT).expect("close report");
    let mut got = 0;
    while let Ok(m) = pull.recv_timeout(SHORT) {
        assert_eq!(strs(&m), [got.to_string()], "in order");
        got += 1;
    }
    (report, got)
}

#[test]
fn closing_with_linger_hands_queued_messages_over() {
    let (report, got) = close_in_flight(Some(Duration::from_secs(5)));
    assert_eq!(got, 20);
    assert_eq!(report.delivered, 10, "{report:?}");
    assert_eq!(
        report.dropped_linger + report.dropped_peer_gone,
        0,
        "{report:?}"
    );
}

#[test]
fn closing_without_linger_drops_what_the_peer_had_not_taken() {
    let (report, got) = close_in_flight(Some(Duration::ZERO));
    assert_eq!(got, 10, "what the receiver holds is still read");
    assert_eq!(report.dropped_linger, 10, "{report:?}");
    assert_eq!(report.delivered, 0, "{report:?}");
}

#[test]
fn termination_with_messages_in_flight() {
    for linger in [Some(Duration::ZERO), Some(Duration::from_secs(5))] {
        let ctx = ctx();
        let (pull, push) = full_pipe(&ctx, 3, linger);
        // A thread blocked in send on the full pipe is released too.
        let push = std::sync::Arc::new(push);
        let blocked = {
            let push = push.clone();
            std::thread::spawn(move || push.send("7th").map_err(|e| e.error))
        };
        let deadline = std::time::Instant::now() + TIMEOUT;
        while push.blocked_threads() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the sender never blocked"
            );
            std::thread::yield_now();
        }
        let ctx = ctx.clone();
        let report = bounded(TIMEOUT, "term", move || ctx.term());
        let sent = blocked.join().expect("sender");
        assert!(
            matches!(sent, Err(Error::ContextTerminated)),
            "{linger:?}: {sent:?}"
        );
        // Sockets close in no set order: the PUSH first hands its three
        // over; the PULL first leaves them with no peer.
        match linger {
            Some(d) if d.is_zero() => assert_eq!(report.dropped_linger, 3, "{report:?}"),
            _ => assert_eq!(report.delivered + report.dropped_peer_gone, 3, "{report:?}"),
        }
        assert_eq!(
            report.unread,
            3 + report.delivered,
            "{linger:?}: {report:?}"
        );
        assert!(matches!(pull.try_recv(), Err(Error::ContextTerminated)));
    }
}

#[test]
fn other_contexts_names_are_not_found() {
    let a = ctx();
    let b = ctx();
    let ep = name();
    let rep = socket(&a, SocketType::Rep);
    rep.bind(&ep).expect("bind in a");
    let req = socket(&b, SocketType::Req);
    req.connect(&ep)
        .expect("connect in b waits, as before a bind");
    send(&req, "lost?", "req");
    assert!(matches!(rep.recv_timeout(SHORT), Err(Error::TimedOut)));
    assert_eq!(
        req.endpoints().expect("status")[0].state,
        EndpointState::Connecting
    );
    // The same name in b is b's own.
    let rep_b = socket(&b, SocketType::Rep);
    rep_b.bind(&ep).expect("bind in b");
    assert_eq!(strs(&recv(&rep_b, "b's rep")), ["lost?"]);
}

#[test]
fn incompatible_types_are_refused_clearly() {
    let ctx = ctx();
    let ep = name();
    let publisher = socket(&ctx, SocketType::Pub);
    publisher.bind(&ep).expect("bind");
    let push = socket(&ctx, SocketType::Push);
    match push.connect(&ep) {
        Err(Error::Protocol(ProtocolError::IncompatibleSocketType { ours, peer })) => {
            assert_eq!((ours, peer.as_str()), ("PUSH", "PUB"));
        }
        other => panic!("{other:?}"),
    }
    // Connected before the bind, it is refused at the bind, on both sides.
    let ep = name();
    let pull = socket(&ctx, SocketType::Pull);
    let events = pull.monitor();
    pull.connect(&ep).expect("connect");
    let sub = socket(&ctx, SocketType::Sub);
    let sub_events = sub.monitor();
    sub.bind(&ep).expect("bind");
    for rx in [&events, &sub_events] {
        wait_event(rx, TIMEOUT, |e| {
            matches!(
                e.kind,
                EventKind::HandshakeFailed {
                    reason: ProtocolError::IncompatibleSocketType { .. }
                }
            )
        });
    }
    assert_eq!(
        pull.endpoints().expect("status")[0].state,
        EndpointState::Stopped
    );
}

#[test]
fn a_name_is_bound_once_and_free_after_unbind() {
    let ctx = ctx();
    let ep = name();
    let a = socket(&ctx, SocketType::Pull);
    a.bind(&ep).expect("bind");
    let b = socket(&ctx, SocketType::Pull);
    assert!(matches!(b.bind(&ep), Err(Error::AddressInUse(_))));
    a.unbind(&ep).expect("unbind");
    assert!(matches!(a.unbind(&ep), Err(Error::UnknownEndpoint(_))));
    b.bind(&ep).expect("free again");
}

#[test]
fn a_connecter_relinks_when_its_name_is_bound_again() {
    let ctx = ctx();
    let ep = name();
    let push = socket(&ctx, SocketType::Push);
    let events = push.monitor();
    push.connect(&ep).expect("connect");
    let first = socket(&ctx, SocketType::Pull);
    first.bind(&ep).expect("bind");
    send(&push, "one", "push");
    assert_eq!(strs(&recv(&first, "first")), ["one"]);
    first.close().wait_timeout(TIMEOUT).expect("closed");
    wait_event(&events, TIMEOUT, |e| {
        matches!(e.kind, EventKind::Disconnected { .. })
    });
    send(&push, "two", "queued meanwhile");
    let second = socket(&ctx, SocketType::Pull);
    second.bind(&ep).expect("bind again");
    assert_eq!(strs(&recv(&second, "second")), ["two"]);
    // disconnect ends it for good.
    push.disconnect(&ep).expect("disconnect");
    assert!(push.endpoints().expect("status").is_empty());
    assert!(matches!(
        push.disconnect(&ep),
        Err(Error::UnknownEndpoint(_))
    ));
}

#[test]
fn the_poller_and_stats_behave_as_over_tcp() {
    let ctx = ctx();
    let (ea, eb) = (name(), name());
    let a = socket(&ctx, SocketType::Pull);
    a.bind(&ea).expect("bind");
    let b = socket(&ctx, SocketType::Pull);
    b.bind(&eb).expect("bind");
    let pa = socket(&ctx, SocketType::Push);
    pa.connect(&ea).expect("connect");
    let pb = socket(&ctx, SocketType::Push);
    pb.connect(&eb).expect("connect");
    let mut poller = Poller::new();
    poller.add(&a, Events::IN);
    let ib = poller.add(&b, Events::IN);
    assert_eq!(poller.poll(Some(Duration::ZERO)).expect("poll"), 0);
    let sender = std::thread::spawn(move || {
        send(&pb, "to b", "pb");
        pb
    });
    assert_eq!(poller.poll(Some(TIMEOUT)).expect("poll"), 1);
    assert!(poller.events(ib).is_readable());
    assert_eq!(strs(&recv(&b, "b")), ["to b"]);
    drop(sender.join());
    // A ROUTER's unroutable messages are counted, whatever the transport.
    let router = socket(&ctx, SocketType::Router);
    router.bind(&name()).expect("bind");
    send(
        &router,
        ferrozmq::Message::from_frames(["nobody", "x"]),
        "router",
    );
    assert_eq!(router.stats().dropped_unroutable, 1);
    drop(pa);
}

#[test]
fn a_subscriber_a_publisher_refuses_is_unlinked_with_the_reason() {
    let ctx = ctx();
    let ep = name();
    let xpub = socket(&ctx, SocketType::XPub);
    xpub.set_subscription_limit(Some(2_000)).unwrap();
    let monitor = xpub.monitor();
    xpub.bind(&ep).expect("bind");
    let greedy = socket(&ctx, SocketType::Sub);
    let greedy_events = greedy.monitor();
    for i in 0..100 {
        greedy
            .subscribe(format!("prefix-{i:03}"))
            .expect("subscribe");
    }
    greedy.connect(&ep).expect("connect");
    // The XPUB takes subscriptions in as it is read.
    while xpub.recv_timeout(Duration::from_millis(50)).is_ok() {}
    let refused = |e: &ferrozmq::MonitorEvent| {
        matches!(
            e.kind,
            EventKind::Disconnected {
                reason: Some(ProtocolError::TooManySubscriptions { limit: 2_000, .. }),
                ..
            }
        )
    };
    wait_event(&monitor, TIMEOUT, refused);
    wait_event(&greedy_events, TIMEOUT, refused);
    assert_eq!(
        greedy.endpoints().expect("status")[0].state,
        EndpointState::Stopped
    );
}

/// Many quick round trips between two threads: a reply delivered while
/// the receiver was between its last look and its sleep must still wake
/// it (a lost wake-up shows as one round trip waiting out the timeout).
#[test]
fn quick_round_trips_never_wait_out_the_timeout() {
    let ctx = ctx();
    let ep = name();
    let rep = socket(&ctx, SocketType::Rep);
    rep.bind(&ep).expect("bind");
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");
    const N: usize = 20_000;
    let server = std::thread::spawn(move || {
        for _ in 0..N {
            let m = rep
                .recv_timeout(Duration::from_secs(2))
                .expect("a request within 2 s");
            send(&rep, m, "reply");
        }
    });
    for i in 0..N {
        send(&req, "ping", "request");
        req.recv_timeout(Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("round trip {i}: {e}"));
    }
    server.join().expect("server");
}
