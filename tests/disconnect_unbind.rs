//! `unbind` stops accepting but keeps accepted connections; `disconnect`
//! removes a peer from the rotation.

mod util;

use ferrozmq::{Error, EventKind, Socket, SocketType};
use std::time::Duration;
use util::*;

/// One request/reply by hand between a REQ and the REP expected to serve it.
fn exchange(req: &Socket, rep: &Socket, body: &str) {
    send(req, body, "request");
    assert_eq!(strs(&recv(rep, "server")), [body]);
    send(rep, format!("re: {body}"), "reply");
    assert_eq!(strs(&recv(req, "client")), [format!("re: {body}")]);
}

#[test]
fn unbind_refuses_new_clients_but_keeps_existing_ones() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let mon = rep.monitor();
    let ep = bind_local(&rep);
    let old = socket(&ctx, SocketType::Req);
    old.connect(&ep).expect("connect");
    exchange(&old, &rep, "before unbind");

    rep.unbind(&ep).expect("unbind");
    let closed = wait_event(&mon, TIMEOUT, |e| matches!(e.kind, EventKind::Closed));
    assert_eq!(closed.endpoint, ep);

    // A newcomer cannot get through...
    let new = socket(&ctx, SocketType::Req);
    new.set_linger(Some(Duration::ZERO)).unwrap();
    new.connect(&ep).expect("connect is asynchronous");
    send(&new, "after unbind", "queued request");
    assert!(matches!(new.recv_timeout(SHORT), Err(Error::TimedOut)));
    assert!(matches!(rep.recv_timeout(SHORT), Err(Error::TimedOut)));

    // ...while the already-connected client keeps working.
    for i in 0..3 {
        exchange(&old, &rep, &format!("still here {i}"));
    }
}

#[test]
fn unbind_by_the_requested_wildcard_endpoint() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let bound = rep.bind("tcp://127.0.0.1:*").expect("bind");
    rep.unbind("tcp://127.0.0.1:*")
        .expect("unbind as requested");
    assert!(matches!(rep.unbind(&bound), Err(Error::UnknownEndpoint(_))));
    // The port is free again: it can be bound once more.
    let again = rep.bind(&bound).expect("rebind the released port");
    assert_eq!(again, bound);
}

#[test]
fn unbind_one_of_two_endpoints() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let (e1, e2) = (bind_local(&rep), bind_local(&rep));
    assert_ne!(e1, e2);
    rep.unbind(&e1).expect("unbind");
    let req = socket(&ctx, SocketType::Req);
    req.connect(&e2).expect("connect");
    exchange(&req, &rep, "via the remaining endpoint");
}

#[test]
fn disconnect_sends_only_to_remaining_peers() {
    let ctx = ctx();
    let rep1 = socket(&ctx, SocketType::Rep);
    let rep2 = socket(&ctx, SocketType::Rep);
    let rep3 = socket(&ctx, SocketType::Rep);
    let (e1, e2, e3) = (bind_local(&rep1), bind_local(&rep2), bind_local(&rep3));
    let req = socket(&ctx, SocketType::Req);
    let mon = req.monitor();
    for e in [&e1, &e2, &e3] {
        req.connect(e).expect("connect");
    }
    wait_handshakes(&mon, 3);
    // Rotation in connect order: 1, 2, 3.
    exchange(&req, &rep1, "to 1");
    exchange(&req, &rep2, "to 2");
    exchange(&req, &rep3, "to 3");

    req.disconnect(&e2).expect("disconnect");
    assert!(matches!(
        req.disconnect(&e2),
        Err(Error::UnknownEndpoint(_))
    ));
    // Only 1 and 3 remain, alternating.
    for i in 0..3 {
        exchange(&req, &rep1, &format!("round {i} to 1"));
        exchange(&req, &rep3, &format!("round {i} to 3"));
    }
    assert!(matches!(rep2.try_recv(), Err(Error::WouldBlock)));

    req.disconnect(&e1).expect("disconnect");
    for i in 0..3 {
        exchange(&req, &rep3, &format!("only 3, #{i}"));
    }
    assert!(matches!(rep1.try_recv(), Err(Error::WouldBlock)));
    assert!(matches!(rep2.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn disconnect_drops_queued_messages_and_stops_reconnecting() {
    let ctx = ctx();
    let ep = free_endpoint();
    let push = socket(&ctx, SocketType::Push);
    let mon = push.monitor();
    push.connect(&ep).expect("connect");
    for i in 0..5 {
        push.try_send(format!("m{i}")).expect("queued");
    }
    push.disconnect(&ep).expect("disconnect");
    wait_event(&mon, TIMEOUT, |e| {
        matches!(e.kind, EventKind::Closed) && e.endpoint == ep
    });
    assert_eq!(push.stats().dropped_peer_gone, 5);
    // With no pipe left, sending would block.
    let err = push.try_send("x").expect_err("no peers");
    assert!(err.error.is_would_block(), "{:?}", err.error);

    // A server appearing later on that endpoint never hears from us.
    let pull = socket(&ctx, SocketType::Pull);
    pull.bind(&ep).expect("bind");
    assert!(matches!(pull.recv_timeout(SHORT), Err(Error::TimedOut)));
}

#[test]
fn disconnect_dealer_from_router() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let router_mon = router.monitor();
    let ep = bind_local(&router);
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("d").expect("routing id");
    dealer.connect(&ep).expect("connect");
    send(&dealer, "hi", "dealer");
    assert_eq!(strs(&recv(&router, "router")), ["d", "hi"]);

    dealer.disconnect(&ep).expect("disconnect");
    // The router notices the peer is gone, and it becomes unroutable.
    wait_event(&router_mon, TIMEOUT, |e| {
        matches!(e.kind, EventKind::Disconnected { .. })
    });
    router.set_router_mandatory(true).unwrap();
    let err = router
        .try_send(ferrozmq::Message::from(["d", "gone?"]))
        .expect_err("peer left");
    assert!(
        matches!(err.error, Error::HostUnreachable),
        "{:?}",
        err.error
    );
}
