//! DEALER/ROUTER addressing, both directions and both bind sides; REQ
//! against ROUTER; router_mandatory and unroutable drops.

mod util;

use bytes::Bytes;
use ferrozmq::{Error, Message, SocketType};
use util::*;

#[test]
fn router_sees_generated_id_and_routes_reply_back() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.connect(&ep).expect("connect");

    send(&dealer, ["hello", "world"], "dealer");
    let got = recv(&router, "router");
    assert_eq!(got.len(), 3, "{got:?}");
    let id = got.frames()[0].clone();
    // A generated id: five bytes, the first zero.
    assert_eq!(id.len(), 5, "{id:?}");
    assert_eq!(id[0], 0);
    assert_eq!(strs(&got)[1..], ["hello", "world"]);

    for i in 0..5 {
        send(
            &router,
            Message::from_frames([id.clone(), Bytes::from(format!("reply {i}"))]),
            "router",
        );
        assert_eq!(strs(&recv(&dealer, "dealer")), [format!("reply {i}")]);
    }
    // And more requests keep the same id.
    send(&dealer, "again", "dealer");
    let got = recv(&router, "router");
    assert_eq!(got.frames()[0], id);
}

#[test]
fn explicit_routing_id_appears_on_router() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    let d1 = socket(&ctx, SocketType::Dealer);
    d1.set_routing_id("alice").expect("routing id");
    assert_eq!(&d1.routing_id()[..], b"alice");
    let d2 = socket(&ctx, SocketType::Dealer);
    d2.set_routing_id("bob").expect("routing id");
    d1.connect(&ep).expect("connect");
    d2.connect(&ep).expect("connect");

    send(&d1, "from alice", "d1");
    send(&d2, "from bob", "d2");
    let mut seen = vec![
        strs(&recv(&router, "router")),
        strs(&recv(&router, "router")),
    ];
    seen.sort();
    assert_eq!(
        seen,
        [
            vec!["alice".to_string(), "from alice".into()],
            vec!["bob".to_string(), "from bob".into()],
        ]
    );

    // Replies go to the addressed peer only.
    send(&router, ["bob", "for bob", ""], "router");
    send(&router, ["alice", "for alice"], "router");
    assert_eq!(strs(&recv(&d1, "d1")), ["for alice"]);
    assert_eq!(strs(&recv(&d2, "d2")), ["for bob", ""]);
    assert!(matches!(d1.try_recv(), Err(Error::WouldBlock)));
    assert!(matches!(d2.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn invalid_routing_ids_are_refused() {
    let ctx = ctx();
    let d = socket(&ctx, SocketType::Dealer);
    assert!(matches!(d.set_routing_id(""), Err(Error::InvalidOption(_))));
    assert!(matches!(
        d.set_routing_id(vec![0u8, 1]),
        Err(Error::InvalidOption(_))
    ));
    assert!(matches!(
        d.set_routing_id(vec![b'x'; 256]),
        Err(Error::InvalidOption(_))
    ));
    d.set_routing_id(vec![b'x'; 255])
        .expect("255 bytes is fine");
}

#[test]
fn router_connects_to_bound_dealer() {
    // The other way round: the DEALER binds, the ROUTER connects and
    // addresses it by the id it announced.
    let ctx = ctx();
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("svc").expect("routing id");
    let ep = bind_local(&dealer);
    let router = socket(&ctx, SocketType::Router);
    router.set_router_mandatory(true).unwrap();
    let mon = router.monitor();
    router.connect(&ep).expect("connect");
    wait_handshakes(&mon, 1);

    send(&router, ["svc", "job", "1"], "router");
    assert_eq!(strs(&recv(&dealer, "dealer")), ["job", "1"]);
    send(&dealer, ["done", "1"], "dealer");
    assert_eq!(strs(&recv(&router, "router")), ["svc", "done", "1"]);
}

#[test]
fn router_mandatory_unknown_id_is_host_unreachable() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    router.set_router_mandatory(true).unwrap();
    let ep = bind_local(&router);
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("known").expect("routing id");
    dealer.connect(&ep).expect("connect");
    send(&dealer, "hi", "dealer");
    assert_eq!(strs(&recv(&router, "router")), ["known", "hi"]);

    let err = router
        .send(Message::from(["nobody", "payload"]))
        .expect_err("unknown id must fail");
    assert!(
        matches!(err.error, Error::HostUnreachable),
        "{:?}",
        err.error
    );
    assert_eq!(
        strs(&err.message),
        ["nobody", "payload"],
        "message handed back"
    );
    let err = router
        .try_send(Message::from(["nobody", "payload"]))
        .expect_err("unknown id must fail");
    assert!(
        matches!(err.error, Error::HostUnreachable),
        "{:?}",
        err.error
    );
    assert_eq!(router.stats().dropped_unroutable, 0);

    // The known peer is still reachable.
    send(&router, ["known", "ok"], "router");
    assert_eq!(strs(&recv(&dealer, "dealer")), ["ok"]);
}

#[test]
fn unroutable_without_mandatory_is_dropped_and_counted() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("known").expect("routing id");
    dealer.connect(&ep).expect("connect");
    send(&dealer, "hi", "dealer");
    recv(&router, "router");

    assert_eq!(router.stats().dropped_unroutable, 0);
    router
        .send(Message::from(["nobody", "lost"]))
        .expect("silently dropped");
    router
        .try_send(Message::from(["nobody-else", "lost"]))
        .expect("silently dropped");
    assert_eq!(router.stats().dropped_unroutable, 2);

    // Nothing reached the real peer except what was addressed to it.
    send(&router, ["known", "real"], "router");
    assert_eq!(strs(&recv(&dealer, "dealer")), ["real"]);
    assert!(matches!(dealer.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn req_against_router_keeps_envelope() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    let req = socket(&ctx, SocketType::Req);
    req.set_routing_id("client-1").expect("routing id");
    req.connect(&ep).expect("connect");

    for i in 0..3 {
        send(&req, ["question", &i.to_string()], "req");
        let got = recv(&router, "router");
        assert_eq!(
            strs(&got),
            ["client-1", "", "question", &i.to_string()],
            "ROUTER sees [id, delimiter, body]"
        );
        let mut reply = got.clone();
        let _ = reply.split_off(2); // keep [id, ""]
        reply.push_back(format!("answer {i}"));
        send(&router, reply, "router");
        assert_eq!(strs(&recv(&req, "req")), [format!("answer {i}")]);
    }
}

#[test]
fn req_against_router_with_generated_id() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");
    send(&req, "q", "req");
    let got = recv(&router, "router");
    assert_eq!(got.len(), 3);
    assert!(got.frames()[1].is_empty(), "delimiter: {got:?}");
    let id = got.frames()[0].clone();
    send(
        &router,
        Message::from_frames([id, Bytes::new(), Bytes::from("a")]),
        "router",
    );
    assert_eq!(strs(&recv(&req, "req")), ["a"]);
}

#[test]
fn dealer_router_16_mib_round_trip() {
    const SIZE: usize = 16 * 1024 * 1024;
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.connect(&ep).expect("connect");

    let big: Vec<u8> = (0..SIZE).map(|i| (i * 7 % 253) as u8).collect();
    send(
        &dealer,
        Message::from_frames([Vec::new(), big.clone()]),
        "dealer",
    );
    let got = recv(&router, "router");
    assert_eq!(got.len(), 3);
    assert!(got.frames()[1].is_empty());
    assert!(got.frames()[2] == big[..], "payload corrupted");

    // Send the very same frames back (zero-copy on our side).
    send(&router, got, "router");
    let back = recv(&dealer, "dealer");
    assert_eq!(back.len(), 2);
    assert!(back.frames()[0].is_empty());
    assert!(
        back.frames()[1] == big[..],
        "payload corrupted on the way back"
    );
}

#[test]
fn dealer_round_robins_and_router_fair_queues() {
    let ctx = ctx();
    let r1 = socket(&ctx, SocketType::Router);
    let r2 = socket(&ctx, SocketType::Router);
    let (e1, e2) = (bind_local(&r1), bind_local(&r2));
    let dealer = socket(&ctx, SocketType::Dealer);
    let mon = dealer.monitor();
    dealer.connect(&e1).expect("connect");
    dealer.connect(&e2).expect("connect");
    wait_handshakes(&mon, 2);
    for i in 0..6 {
        send(&dealer, i.to_string(), "dealer");
    }
    let take3 = |r: &ferrozmq::Socket| -> Vec<String> {
        (0..3)
            .map(|_| strs(&recv(r, "router"))[1].clone())
            .collect()
    };
    let (a, b) = (take3(&r1), take3(&r2));
    let mut all: Vec<_> = a.iter().chain(b.iter()).cloned().collect();
    all.sort();
    assert_eq!(all, ["0", "1", "2", "3", "4", "5"], "{a:?} {b:?}");
    assert!(matches!(r1.try_recv(), Err(Error::WouldBlock)));
    assert!(matches!(r2.try_recv(), Err(Error::WouldBlock)));
}
