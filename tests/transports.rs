//! Every socket type over every transport: one suite, run once per
//! transport (`util::TRANSPORTS`), so that TCP, IPC and inproc are held
//! to the same behaviour.

mod util;

use ferrozmq::{Context, EventKind, Message, Socket, SocketType};
use util::*;

/// A bound socket and a connected one, for each transport in turn;
/// `f` runs with both, and the transport for messages.
fn each_transport(
    bind_ty: SocketType,
    connect_ty: SocketType,
    f: impl Fn(&Socket, &Socket, Transport),
) {
    for t in TRANSPORTS {
        let ctx = ctx();
        let (a, b) = pair(&ctx, t, bind_ty, connect_ty);
        f(&a, &b, t);
        drop((a, b));
        ctx.term();
    }
}

fn pair(
    ctx: &Context,
    t: Transport,
    bind_ty: SocketType,
    connect_ty: SocketType,
) -> (Socket, Socket) {
    let a = socket(ctx, bind_ty);
    let ep = a
        .bind(&t.any())
        .unwrap_or_else(|e| panic!("{t:?}: bind: {e}"));
    let b = socket(ctx, connect_ty);
    b.connect(&ep)
        .unwrap_or_else(|e| panic!("{t:?}: connect {ep}: {e}"));
    (a, b)
}

#[test]
fn req_rep() {
    each_transport(SocketType::Rep, SocketType::Req, |rep, req, t| {
        for i in 0..20 {
            send(req, format!("q{i}"), "request");
            let q = recv(rep, "request");
            assert_eq!(strs(&q), [format!("q{i}")], "{t:?}");
            send(rep, format!("a{i}"), "reply");
            assert_eq!(strs(&recv(req, "reply")), [format!("a{i}")], "{t:?}");
        }
    });
}

#[test]
fn dealer_router() {
    for t in TRANSPORTS {
        let ctx = ctx();
        let router = socket(&ctx, SocketType::Router);
        let ep = router
            .bind(&t.any())
            .unwrap_or_else(|e| panic!("{t:?}: bind: {e}"));
        let dealer = socket(&ctx, SocketType::Dealer);
        // Before connecting: the routing id shapes the connection.
        dealer.set_routing_id("d1").expect("routing id");
        dealer
            .connect(&ep)
            .unwrap_or_else(|e| panic!("{t:?}: connect {ep}: {e}"));
        send(&dealer, Message::from_frames(["x", "y"]), "dealer");
        let m = recv(&router, "router");
        assert_eq!(strs(&m), ["d1", "x", "y"], "{t:?}");
        send(&router, Message::from_frames(["d1", "back"]), "router");
        assert_eq!(strs(&recv(&dealer, "dealer")), ["back"], "{t:?}");
        drop((router, dealer));
        ctx.term();
    }
}

#[test]
fn push_pull_in_order_with_large_bodies() {
    each_transport(SocketType::Pull, SocketType::Push, |pull, push, t| {
        let big = vec![7u8; 200 * 1024];
        for i in 0..500u32 {
            if i % 100 == 0 {
                send(push, big.clone(), "big");
            } else {
                send(push, i.to_be_bytes().to_vec(), "push");
            }
        }
        for i in 0..500u32 {
            let m = recv(pull, "pull");
            let body = m.first().map(|f| f.to_vec()).unwrap_or_default();
            if i % 100 == 0 {
                assert_eq!(body, big, "{t:?}: message {i}");
            } else {
                assert_eq!(body, i.to_be_bytes(), "{t:?}: message {i}");
            }
        }
    });
}

#[test]
fn pub_sub() {
    each_transport(SocketType::Pub, SocketType::Sub, |publisher, sub, t| {
        sub.subscribe("a").expect("subscribe");
        sync_subscription(
            &format!("{t:?}"),
            |m| send(publisher, m.to_vec(), "publish"),
            |w| {
                sub.recv_timeout(w)
                    .ok()
                    .map(|m| m.iter().map(|f| f.to_vec()).collect())
            },
            "a",
        );
        send(publisher, "b-not-for-us", "publish");
        send(publisher, "a-for-us", "publish");
        assert_eq!(strs(&recv(sub, "sub")), ["a-for-us"], "{t:?}");
    });
}

#[test]
fn xpub_xsub() {
    each_transport(SocketType::XPub, SocketType::XSub, |xpub, xsub, t| {
        send(xsub, b"\x01top".to_vec(), "subscribe");
        assert_eq!(
            recv(xpub, "subscription").first().map(|f| f.to_vec()),
            Some(b"\x01top".to_vec()),
            "{t:?}"
        );
        send(xpub, "topic", "publish");
        assert_eq!(strs(&recv(xsub, "xsub")), ["topic"], "{t:?}");
    });
}

#[test]
fn pair_both_ways() {
    each_transport(SocketType::Pair, SocketType::Pair, |a, b, t| {
        send(b, "ping", "b");
        assert_eq!(strs(&recv(a, "a")), ["ping"], "{t:?}");
        send(a, "pong", "a");
        assert_eq!(strs(&recv(b, "b")), ["pong"], "{t:?}");
    });
}

#[test]
fn monitor_and_endpoint_status() {
    for t in TRANSPORTS {
        let ctx = ctx();
        let rep = socket(&ctx, SocketType::Rep);
        let rep_events = rep.monitor();
        let ep = rep.bind(&t.any()).expect("bind");
        assert_eq!(rep.last_endpoint().as_deref(), Some(ep.as_str()), "{t:?}");
        wait_event(&rep_events, TIMEOUT, |e| {
            matches!(e.kind, EventKind::Listening)
        });
        let req = socket(&ctx, SocketType::Req);
        let req_events = req.monitor();
        req.connect(&ep).expect("connect");
        wait_event(&req_events, TIMEOUT, |e| {
            e.endpoint == ep && matches!(e.kind, EventKind::HandshakeSucceeded)
        });
        wait_event(&rep_events, TIMEOUT, |e| {
            matches!(e.kind, EventKind::HandshakeSucceeded)
        });
        let status = req.endpoints().expect("status");
        assert_eq!(status.len(), 1, "{t:?}");
        assert_eq!(status[0].endpoint, ep, "{t:?}");
        assert_eq!(status[0].state, ferrozmq::EndpointState::Connected, "{t:?}");
        let status = rep.endpoints().expect("status");
        assert_eq!(status[0].endpoint, ep, "{t:?}");
        assert_eq!(strs(&round_trip_with(&req, &rep)), ["pong"], "{t:?}");
        drop(rep);
        wait_event(&req_events, TIMEOUT, |e| {
            matches!(e.kind, EventKind::Disconnected { .. })
        });
        drop(req);
        ctx.term();
    }
}

fn round_trip_with(req: &Socket, rep: &Socket) -> Message {
    send(req, "ping", "req");
    let _ = recv(rep, "rep");
    send(rep, "pong", "rep");
    recv(req, "req")
}

#[test]
fn connect_before_bind() {
    for t in TRANSPORTS {
        let ctx = ctx();
        let ep = t.unbound();
        let push = socket(&ctx, SocketType::Push);
        push.set_reconnect_ivl(Some(std::time::Duration::from_millis(10)))
            .unwrap();
        push.connect(&ep).expect("connect");
        send(&push, "early", "push");
        let pull = socket(&ctx, SocketType::Pull);
        pull.bind(&ep).expect("bind");
        assert_eq!(strs(&recv(&pull, "pull")), ["early"], "{t:?}");
        drop((push, pull));
        ctx.term();
        if let Some(path) = ep.strip_prefix("ipc://") {
            assert!(!std::path::Path::new(path).exists(), "{ep} left behind");
        }
    }
}

#[test]
fn reconnects_after_the_binder_restarts() {
    for t in TRANSPORTS {
        let ctx = ctx();
        let ep = t.unbound();
        let push = socket(&ctx, SocketType::Push);
        push.set_reconnect_ivl(Some(std::time::Duration::from_millis(10)))
            .unwrap();
        push.connect(&ep).expect("connect");
        for round in 0..3 {
            let pull = socket(&ctx, SocketType::Pull);
            pull.bind(&ep)
                .unwrap_or_else(|e| panic!("{t:?}: bind {ep} in round {round}: {e}"));
            send(&push, format!("round {round}"), "push");
            assert_eq!(
                strs(&recv(&pull, "pull")),
                [format!("round {round}")],
                "{t:?}"
            );
            pull.close().wait_timeout(TIMEOUT).expect("closed");
        }
        drop(push);
        ctx.term();
    }
}
