//! No message waits on an endpoint that has never connected while another
//! peer can take it (issue 11), and `immediate` (`ZMQ_IMMEDIATE`).
//!
//! A load-balanced socket (REQ, DEALER, PUSH) that connects to a dead
//! endpoint first queues there whatever it sends before any peer is up.
//! When a live peer completes its handshake, those messages move to it.

mod util;

use ferrozmq::{EndpointState, Error, EventKind, Message, Socket, SocketType};
use util::*;

/// The reproduction: a REQ connects to a port where nothing
/// listens, then to a live REP, and sends at once. Every request is
/// answered, with a fresh socket each time.
#[test]
fn req_connected_to_a_dead_endpoint_first_gets_its_reply() {
    let ctx = ctx();
    let server = RepServer::start(&ctx, "rep");
    for i in 0..20 {
        let req = socket(&ctx, SocketType::Req);
        req.connect(&free_endpoint()).expect("connect dead");
        req.connect(&server.endpoint).expect("connect live");
        let body = format!("request {i}");
        let reply = round_trip(&req, body.as_str());
        assert_eq!(strs(&reply), ["rep".to_owned(), body], "iteration {i}");
    }
    assert_eq!(server.stop(), 20);
}

/// The request is on the dead endpoint's pipe for certain (it is the only
/// pipe when it is sent); `endpoints()` shows it queued there until the
/// live peer's handshake moves it, and the reply still correlates.
#[test]
fn a_request_queued_before_any_peer_moves_to_the_first_to_connect() {
    for correlate in [false, true] {
        let ctx = ctx();
        let server = RepServer::start(&ctx, "rep");
        let req = socket(&ctx, SocketType::Req);
        req.set_req_correlate(correlate).unwrap();
        let dead = free_endpoint();
        req.connect(&dead).expect("connect dead");
        send(&req, "hello", "request");
        let status = req.endpoints().expect("endpoints");
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].endpoint, dead);
        assert_eq!(status[0].queued, 1, "the request waits there: {status:?}");
        req.connect(&server.endpoint).expect("connect live");
        assert_eq!(strs(&recv(&req, "reply")), ["rep", "hello"]);
        // Nothing is left queued anywhere.
        let status = req.endpoints().expect("endpoints");
        assert!(status.iter().all(|s| s.queued == 0), "{status:?}");
        assert_eq!(server.stop(), 1);
    }
}

/// DEALER: messages stranded before any peer keep their order with the
/// ones sent after the peer connected, and multipart messages stay whole.
#[test]
fn dealer_stranded_messages_keep_order_and_stay_whole() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("d").expect("routing id");
    let monitor = dealer.monitor();
    dealer.connect(&free_endpoint()).expect("connect dead");
    for i in 0..3 {
        let m = Message::from_frames([format!("early {i}"), "part 2".into(), "part 3".into()]);
        send(&dealer, m, "early");
    }
    dealer.connect(&ep).expect("connect live");
    wait_event(&monitor, TIMEOUT, |e| {
        e.endpoint == ep && matches!(e.kind, EventKind::HandshakeSucceeded)
    });
    for i in 0..2 {
        send(&dealer, format!("late {i}"), "late");
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(strs(&recv(&router, "router")));
    }
    let want: Vec<Vec<String>> = (0..3)
        .map(|i| {
            vec![
                "d".into(),
                format!("early {i}"),
                "part 2".into(),
                "part 3".into(),
            ]
        })
        .chain((0..2).map(|i| vec!["d".into(), format!("late {i}")]))
        .collect();
    assert_eq!(got, want);
}

/// PUSH: the move takes only what fits the live peer's pipe (its HWM)
/// when its handshake completes; what does not fit stays on the dead
/// endpoint's pipe, in order, and `endpoints()` shows it there.
#[test]
fn push_moves_what_fits_and_shows_the_rest() {
    let ctx = ctx();
    let pull = socket(&ctx, SocketType::Pull);
    let ep = bind_local(&pull);
    let push = socket(&ctx, SocketType::Push);
    push.set_sndhwm(4).unwrap();
    let dead = free_endpoint();
    push.connect(&dead).expect("connect dead");
    for i in 0..4 {
        send(&push, format!("m{i}"), "queue");
    }
    push.set_sndhwm(2).unwrap(); // the live pipe is made with this HWM
    let monitor = push.monitor();
    push.connect(&ep).expect("connect live");
    wait_event(&monitor, TIMEOUT, |e| {
        e.endpoint == ep && matches!(e.kind, EventKind::HandshakeSucceeded)
    });
    // Two fit the live pipe when its handshake completed.
    for i in 0..2 {
        assert_eq!(strs(&recv(&pull, "moved")), [format!("m{i}")]);
    }
    let status = push.endpoints().expect("endpoints");
    let dead_status = status.iter().find(|s| s.endpoint == dead).expect("dead");
    assert_eq!(dead_status.queued, 2, "{status:?}");
    assert!(matches!(pull.recv_timeout(SHORT), Err(Error::TimedOut)));
}

/// `immediate`: with no connected peer a send blocks, times out or
/// would block; once a peer is up, messages go to it alone.
#[test]
fn immediate_queues_only_to_connected_peers() {
    for (ty, peer_ty) in [
        (SocketType::Req, SocketType::Rep),
        (SocketType::Dealer, SocketType::Router),
        (SocketType::Push, SocketType::Pull),
    ] {
        let ctx = ctx();
        let s = socket(&ctx, ty);
        s.set_immediate(true).unwrap();
        assert!(s.immediate());
        s.connect(&free_endpoint()).expect("connect dead");
        let e = s.try_send("x").expect_err("nobody is connected");
        assert!(matches!(e.error, Error::WouldBlock), "{ty}: {:?}", e.error);
        let e = s.send_timeout("x", SHORT).expect_err("nobody is connected");
        assert!(matches!(e.error, Error::TimedOut), "{ty}: {:?}", e.error);
        assert!(
            s.endpoints()
                .expect("endpoints")
                .iter()
                .all(|st| st.queued == 0),
            "{ty}: nothing may queue on the dead endpoint"
        );

        let peer = socket(&ctx, peer_ty);
        let ep = bind_local(&peer);
        let monitor = s.monitor();
        s.connect(&ep).expect("connect live");
        wait_event(&monitor, TIMEOUT, |e| {
            e.endpoint == ep && matches!(e.kind, EventKind::HandshakeSucceeded)
        });
        for i in 0..3 {
            send(&s, format!("m{i}"), "send");
            let got = recv(&peer, "peer");
            assert_eq!(got.last().map(|f| &f[..]), Some(format!("m{i}").as_bytes()));
            if ty == SocketType::Req {
                let mut reply = got;
                let body = reply.pop_back().expect("body");
                reply.push_back(body);
                send(&peer, reply, "reply");
                recv(&s, "reply");
            }
        }
    }
}

/// `immediate`: a blocked `send` goes through as soon as a peer connects.
#[test]
fn immediate_send_waits_for_the_first_peer() {
    let ctx = ctx();
    let push = std::sync::Arc::new(socket(&ctx, SocketType::Push));
    push.set_immediate(true).unwrap();
    let pull = socket(&ctx, SocketType::Pull);
    let ep = bind_local(&pull);
    let (tx, rx) = crossbeam_channel::bounded(1);
    let p = push.clone();
    std::thread::spawn(move || {
        let _ = tx.send(p.send_timeout("first", TIMEOUT).map_err(|e| e.error));
    });
    // Connect only once the sender is blocked.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while push.blocked_threads() == 0 {
        assert!(std::time::Instant::now() < deadline, "sender never blocked");
        std::thread::yield_now();
    }
    push.connect(&ep).expect("connect");
    match rx.recv_timeout(TIMEOUT) {
        Ok(Ok(())) => {}
        other => panic!("the send did not complete once the peer was up: {other:?}"),
    }
    assert_eq!(strs(&recv(&pull, "pull")), ["first"]);
}

/// The endpoint's state says where the waiting request is: not on the
/// connected peer.
#[test]
fn endpoints_show_where_messages_wait() {
    let ctx = ctx();
    let dealer: Socket = socket(&ctx, SocketType::Dealer);
    let dead = free_endpoint();
    dealer.connect(&dead).expect("connect dead");
    for i in 0..5 {
        send(&dealer, format!("m{i}"), "queue");
    }
    let status = dealer.endpoints().expect("endpoints");
    assert_eq!(status.len(), 1);
    assert!(
        !matches!(status[0].state, EndpointState::Connected),
        "{status:?}"
    );
    assert_eq!(status[0].queued, 5);
}
