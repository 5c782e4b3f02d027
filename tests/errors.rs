//! Typed errors: endpoints, socket state machines, timeouts, busy ports.

mod util;

use ferrozmq::{Error, EventKind, Message, SocketType};
use std::time::Duration;
use util::*;

#[test]
fn invalid_endpoints_are_rejected() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Dealer);
    let bad = [
        "",
        "127.0.0.1:5555",
        "udp://127.0.0.1:5555",
        "ipc://",
        "inproc://",
        "ipc://@",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:",
        "tcp://127.0.0.1:65536",
        "tcp://127.0.0.1:-1",
        "tcp://127.0.0.1:port",
        "tcp://:5555",
        "tcp://ho st:5555",
        "tcp://bad/host:5555",
        "tcp://[::1:5555",
        "tcp://[not-v6]:5555",
    ];
    for ep in bad {
        assert!(
            matches!(s.connect(ep), Err(Error::InvalidEndpoint(_))),
            "connect({ep:?}) should be InvalidEndpoint"
        );
        assert!(
            matches!(s.bind(ep), Err(Error::InvalidEndpoint(_))),
            "bind({ep:?}) should be InvalidEndpoint"
        );
    }
    // Wildcards are for bind only.
    for ep in ["tcp://*:5555", "tcp://127.0.0.1:*", "tcp://127.0.0.1:0"] {
        assert!(
            matches!(s.connect(ep), Err(Error::InvalidEndpoint(_))),
            "connect({ep:?}) should be InvalidEndpoint"
        );
    }
    // None of the failed calls left anything behind: the socket works.
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    s.connect(&ep).expect("connect");
    send(&s, "still fine", "dealer");
    assert_eq!(strs(&recv(&router, "router"))[1], "still fine");
}

#[test]
fn unbind_and_disconnect_of_unknown_endpoints() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Dealer);
    s.set_linger(Some(Duration::ZERO)).unwrap();
    let ep = free_endpoint();
    assert!(matches!(s.unbind(&ep), Err(Error::UnknownEndpoint(_))));
    assert!(matches!(s.disconnect(&ep), Err(Error::UnknownEndpoint(_))));

    // Bound and connected endpoints are not interchangeable.
    let bound = bind_local(&s);
    assert!(matches!(
        s.disconnect(&bound),
        Err(Error::UnknownEndpoint(_))
    ));
    s.connect(&ep).expect("connect");
    assert!(matches!(s.unbind(&ep), Err(Error::UnknownEndpoint(_))));

    // Each works once, then the endpoint is unknown again.
    s.unbind(&bound).expect("unbind");
    assert!(matches!(s.unbind(&bound), Err(Error::UnknownEndpoint(_))));
    s.disconnect(&ep).expect("disconnect");
    assert!(matches!(s.disconnect(&ep), Err(Error::UnknownEndpoint(_))));

    // Malformed endpoints are InvalidEndpoint, not UnknownEndpoint.
    assert!(matches!(
        s.unbind("bogus://x"),
        Err(Error::InvalidEndpoint(_))
    ));
    assert!(matches!(
        s.disconnect("tcp://nope"),
        Err(Error::InvalidEndpoint(_))
    ));
}

#[test]
fn req_send_twice_is_invalid_state_and_hands_message_back() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");

    send(&req, "first", "request");
    let second = Message::from(["second", "", "frames"]);
    for err in [
        req.send(second.clone()).expect_err("send"),
        req.try_send(second.clone()).expect_err("try_send"),
        req.send_timeout(second.clone(), SHORT)
            .expect_err("send_timeout"),
    ] {
        assert!(
            matches!(err.error, Error::InvalidState(_)),
            "{:?}",
            err.error
        );
        assert_eq!(err.message, second, "the message is handed back intact");
        assert_eq!(err.into_message(), second);
    }

    // The first request is unaffected and the cycle goes on.
    assert_eq!(strs(&recv(&rep, "server")), ["first"]);
    send(&rep, "answer", "reply");
    assert_eq!(strs(&recv(&req, "client")), ["answer"]);
    assert_eq!(strs(&round_trip_via(&req, &rep, "next")), ["next"]);
}

/// Request on `req`, echo by hand on `rep`, and return the reply.
fn round_trip_via(req: &ferrozmq::Socket, rep: &ferrozmq::Socket, body: &str) -> Message {
    send(req, body, "request");
    let m = recv(rep, "server");
    send(rep, m, "reply");
    recv(req, "client")
}

#[test]
fn req_recv_before_send_is_invalid_state() {
    let ctx = ctx();
    let req = socket(&ctx, SocketType::Req);
    assert!(matches!(req.try_recv(), Err(Error::InvalidState(_))));
    assert!(matches!(req.recv(), Err(Error::InvalidState(_))));
    assert!(matches!(
        req.recv_timeout(TIMEOUT),
        Err(Error::InvalidState(_))
    ));
}

#[test]
fn rep_send_before_recv_is_invalid_state() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let err = rep.send("unsolicited").expect_err("nothing to answer");
    assert!(
        matches!(err.error, Error::InvalidState(_)),
        "{:?}",
        err.error
    );
    assert_eq!(strs(&err.message), ["unsolicited"]);

    // Also after a full cycle, and a second recv while a reply is owed.
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");
    send(&req, "q", "request");
    recv(&rep, "server");
    assert!(matches!(rep.try_recv(), Err(Error::InvalidState(_))));
    send(&rep, "a", "reply");
    let err = rep.try_send("again").expect_err("reply already sent");
    assert!(
        matches!(err.error, Error::InvalidState(_)),
        "{:?}",
        err.error
    );
    assert_eq!(strs(&recv(&req, "client")), ["a"]);
}

#[test]
fn try_recv_on_empty_socket_would_block() {
    let ctx = ctx();
    for ty in [
        SocketType::Rep,
        SocketType::Dealer,
        SocketType::Router,
        SocketType::Pull,
    ] {
        let s = socket(&ctx, ty);
        bind_local(&s);
        let err = s.try_recv().expect_err("nothing to receive");
        assert!(err.is_would_block(), "{ty}: {err:?}");
    }
}

#[test]
fn recv_timeout_times_out() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Dealer);
    bind_local(&s);
    let err = s
        .recv_timeout(Duration::from_millis(100))
        .expect_err("nothing to receive");
    assert!(err.is_timeout(), "{err:?}");

    // rcvtimeo applies to plain recv.
    s.set_rcvtimeo(Some(Duration::from_millis(50))).unwrap();
    assert!(matches!(s.recv(), Err(Error::TimedOut)));
    // A zero rcvtimeo means "don't wait".
    s.set_rcvtimeo(Some(Duration::ZERO)).unwrap();
    assert!(matches!(s.recv(), Err(Error::WouldBlock)));
}

#[test]
fn sending_empty_message_is_invalid() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Dealer);
    s.connect(&free_endpoint()).expect("connect");
    s.set_linger(Some(Duration::ZERO)).unwrap();
    let err = s.try_send(Message::new()).expect_err("no frames");
    assert!(
        matches!(err.error, Error::InvalidMessage(_)),
        "{:?}",
        err.error
    );
    // A message with one empty frame is fine.
    s.try_send(Message::from_frames([Vec::<u8>::new()]))
        .expect("one empty frame");
}

#[test]
fn bind_to_busy_port_is_address_in_use() {
    let ctx = ctx();
    let first = socket(&ctx, SocketType::Rep);
    let ep = bind_local(&first);
    let second = socket(&ctx, SocketType::Rep);
    let mon = second.monitor();
    match second.bind(&ep) {
        Err(Error::AddressInUse(_)) => {}
        other => panic!("expected AddressInUse, got {other:?}"),
    }
    wait_event(&mon, TIMEOUT, |e| {
        matches!(e.kind, EventKind::BindFailed { .. })
    });
    // The same socket binding its own endpoint twice also fails.
    assert!(matches!(first.bind(&ep), Err(Error::AddressInUse(_))));

    // A port held by another (non-ZeroMQ) listener.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("std bind");
    let port = std_listener.local_addr().expect("addr").port();
    assert!(matches!(
        second.bind(&format!("tcp://127.0.0.1:{port}")),
        Err(Error::AddressInUse(_))
    ));
    // The failed binds did not break the socket.
    bind_local(&second);
}

#[test]
fn bind_to_foreign_address_is_not_available() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Rep);
    // TEST-NET-1 (RFC 5737): never assigned to a local interface.
    match s.bind("tcp://192.0.2.1:*") {
        Err(Error::AddressNotAvailable(_)) => {}
        other => panic!("expected AddressNotAvailable, got {other:?}"),
    }
}
