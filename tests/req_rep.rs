//! REQ/REP: echo, many clients, round-robin over several services.

mod util;

use ferrozmq::{EventKind, Message, SocketType};
use std::collections::HashMap;
use util::*;

#[test]
fn echo_several_round_trips() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");

    for i in 0..10 {
        let body = format!("request #{i}");
        send(&req, body.as_str(), "request");
        let got = recv(&rep, "server");
        assert_eq!(strs(&got), [body.as_str()]);
        send(&rep, format!("reply to {body}"), "reply");
        let reply = recv(&req, "client");
        assert_eq!(strs(&reply), [format!("reply to {body}")]);
    }
}

#[test]
fn echo_with_server_thread() {
    let ctx = ctx();
    let server = RepServer::start(&ctx, "srv");
    let req = socket(&ctx, SocketType::Req);
    req.connect(&server.endpoint).expect("connect");
    for i in 0..20u32 {
        let reply = round_trip(&req, i.to_be_bytes().to_vec());
        assert_eq!(reply.len(), 2);
        assert_eq!(&reply.frames()[0][..], b"srv");
        assert_eq!(&reply.frames()[1][..], &i.to_be_bytes());
    }
    assert_eq!(server.stop(), 20);
}

#[test]
fn many_clients_each_get_their_own_replies() {
    const CLIENTS: usize = 20;
    const ROUNDS: usize = 5;
    let ctx = ctx();
    let server = RepServer::start(&ctx, "srv");

    let (tx, rx) = crossbeam_channel::unbounded();
    for c in 0..CLIENTS {
        let (ctx, ep, tx) = (ctx.clone(), server.endpoint.clone(), tx.clone());
        std::thread::spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let req = socket(&ctx, SocketType::Req);
                req.connect(&ep).expect("connect");
                for r in 0..ROUNDS {
                    let body = format!("client {c} round {r}");
                    let reply = round_trip(&req, body.as_str());
                    assert_eq!(strs(&reply), ["srv".to_string(), body]);
                }
            }));
            let _ = tx.send((c, result.is_ok()));
        });
    }
    drop(tx);
    let mut finished = Vec::new();
    for _ in 0..CLIENTS {
        let (c, ok) = rx
            .recv_timeout(TIMEOUT * 2)
            .unwrap_or_else(|_| panic!("clients finished so far: {finished:?}"));
        assert!(ok, "client {c} failed");
        finished.push(c);
    }
    assert_eq!(server.stop(), CLIENTS * ROUNDS);
}

#[test]
fn req_round_robins_over_three_reps() {
    let ctx = ctx();
    let servers: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| RepServer::start(&ctx, n))
        .collect();
    let req = socket(&ctx, SocketType::Req);
    let mon = req.monitor();
    for s in &servers {
        req.connect(&s.endpoint).expect("connect");
    }
    // Only once every peer is connected is the rotation fully determined.
    let mut connected = wait_handshakes(&mon, 3);
    connected.sort();
    let mut expected: Vec<_> = servers.iter().map(|s| s.endpoint.clone()).collect();
    expected.sort();
    assert_eq!(connected, expected);

    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut order = Vec::new();
    for i in 0..9 {
        let reply = round_trip(&req, format!("q{i}"));
        let s = strs(&reply);
        assert_eq!(s[1], format!("q{i}"));
        *counts.entry(s[0].clone()).or_default() += 1;
        order.push(s[0].clone());
    }
    for name in ["a", "b", "c"] {
        assert_eq!(counts.get(name), Some(&3), "distribution: {order:?}");
    }
    // Strict rotation: each window of three requests hits all three.
    for w in order.chunks(3) {
        let mut w = w.to_vec();
        w.sort();
        assert_eq!(w, ["a", "b", "c"], "order: {order:?}");
    }
    let served: usize = servers.into_iter().map(RepServer::stop).sum();
    assert_eq!(served, 9);
}

#[test]
fn multipart_and_empty_frames() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");

    let cases: Vec<Vec<&str>> = vec![
        vec!["a", "b", "c"],
        vec!["", "x"],
        vec![""],
        vec!["", ""],
        vec!["head", "", "tail", ""],
        vec!["", "", "", "", "five"],
    ];
    for frames in cases {
        req.send_multipart(frames.iter().map(|s| s.as_bytes().to_vec()))
            .expect("send multipart");
        let got = recv(&rep, "server");
        assert_eq!(strs(&got), frames, "request frames");
        // Echo back with an extra empty frame in front and at the end.
        let mut reply = Message::new();
        reply.push_back("");
        reply.extend(got);
        reply.push_back("");
        send(&rep, reply, "reply");
        let back = recv(&req, "client");
        let mut want = vec![""];
        want.extend(frames.iter().copied());
        want.push("");
        assert_eq!(strs(&back), want, "reply frames");
    }
}

#[test]
fn req_rep_16_mib_round_trip() {
    const SIZE: usize = 16 * 1024 * 1024;
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");

    let big: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    send(
        &req,
        Message::from_frames([big.clone(), b"tail".to_vec()]),
        "big",
    );
    let got = recv(&rep, "server");
    assert_eq!(got.len(), 2);
    assert_eq!(got.frames()[0].len(), SIZE);
    assert!(got.frames()[0] == big[..], "request payload corrupted");
    assert_eq!(&got.frames()[1][..], b"tail");

    // Reply with the payload reversed, so the check is not trivially the
    // same buffer.
    let reversed: Vec<u8> = big.iter().rev().copied().collect();
    send(&rep, reversed.clone(), "big reply");
    let back = recv(&req, "client");
    assert_eq!(back.len(), 1);
    assert!(back.frames()[0] == reversed[..], "reply payload corrupted");
}

#[test]
fn rep_monitor_sees_accept_and_handshake() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let mon = rep.monitor();
    let ep = bind_local(&rep);
    let listening = wait_event(&mon, TIMEOUT, |e| matches!(e.kind, EventKind::Listening));
    assert_eq!(listening.endpoint, ep);
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");
    wait_event(&mon, TIMEOUT, |e| matches!(e.kind, EventKind::Accepted));
    wait_event(&mon, TIMEOUT, |e| {
        matches!(e.kind, EventKind::HandshakeSucceeded)
    });
    send(&req, "ping", "request");
    assert_eq!(strs(&recv(&rep, "server")), ["ping"]);
}
