//! PLAIN and CURVE against libzmq 4.3 with CURVE (through pyzmq, see
//! `tests/util/pyzmq.rs`), both ways: ours as the server with libzmq
//! clients, and libzmq as the server with ours. REQ/REP, DEALER/ROUTER
//! and PUB/SUB; ZAP on either side; wrong keys and passwords refused with
//! the monitor events libzmq's own sockets report.

mod util;

use ferrozmq::{
    Credentials, CurveKeyPair, EventKind, HandshakeFailure, Message, Socket, SocketType, ZapReply,
    ZapRequest,
};
use util::pyzmq::{curve_client_opts, curve_server_opts, js, spec, PyPeer};
use util::*;

fn keys() -> (CurveKeyPair, CurveKeyPair) {
    (CurveKeyPair::generate(), CurveKeyPair::generate())
}

fn curve_client(s: &Socket, client: &CurveKeyPair, server_key: &[u8]) {
    s.set_curve_keypair(client).unwrap();
    s.set_curve_serverkey(server_key).expect("server key");
}

fn curve_server(s: &Socket, server: &CurveKeyPair) {
    s.set_curve_keypair(server).unwrap();
    s.set_curve_server(true).unwrap();
}

fn requests() -> Vec<Vec<Vec<u8>>> {
    vec![
        vec![b"hello".to_vec()],
        vec![b"a".to_vec(), Vec::new(), b"ccc".to_vec()],
        vec![body(40_000, 3)],
    ]
}

fn with_re(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut r = vec![b"re".to_vec()];
    r.extend(frames.iter().cloned());
    r
}

fn vecs(m: Message) -> Vec<Vec<u8>> {
    m.iter().map(|f| f.to_vec()).collect()
}

/// The first `HandshakeFailed` on `rx`, as its class.
fn handshake_failure(rx: &crossbeam_channel::Receiver<ferrozmq::MonitorEvent>) -> HandshakeFailure {
    let ev = wait_event(rx, TIMEOUT, |e| {
        matches!(e.kind, EventKind::HandshakeFailed { .. })
    });
    match ev.kind {
        EventKind::HandshakeFailed { reason } => {
            eprintln!("HandshakeFailed: {reason}");
            reason.handshake_failure()
        }
        _ => unreachable!(),
    }
}

#[test]
fn curve_our_req_and_dealer_with_libzmq_servers() {
    let (server, client) = keys();
    for (ours, theirs) in [(SocketType::Req, "REP"), (SocketType::Dealer, "ROUTER")] {
        let zap = format!("{{\"curve\":[{}]}}", js(&client.public.to_z85()));
        let mut peer = PyPeer::start(&spec(
            theirs,
            ("bind", "tcp://127.0.0.1:0"),
            &curve_server_opts(&server),
            Some(&zap),
            "echo",
            requests().len(),
            &[],
        ));
        let ep = peer.bound();
        let ctx = ctx();
        let s = socket(&ctx, ours);
        curve_client(&s, &client, server.public.to_z85().as_bytes());
        let events = s.monitor();
        s.connect(&ep).unwrap();
        for req in requests() {
            // DEALER talks to ROUTER with REQ's envelope, so both see the
            // same frames.
            let mut sent = req.clone();
            if ours == SocketType::Dealer {
                sent.insert(0, Vec::new());
            }
            s.send(Message::from_frames(
                sent.iter().map(|f| bytes::Bytes::from(f.clone())),
            ))
            .unwrap();
            let mut got = peer.received();
            if theirs == "ROUTER" {
                got.remove(0); // the routing id ROUTER prepends
            }
            assert_eq!(got, sent, "{theirs} received");
            // REP and ROUTER answer "re" and what they received (the
            // DEALER's empty delimiter included).
            assert_eq!(vecs(recv(&s, "reply")), with_re(&sent));
        }
        wait_event(&events, TIMEOUT, |e| {
            matches!(e.kind, EventKind::HandshakeSucceeded)
        });
        assert!(
            peer.seen.iter().any(|l| l == "EVENT HANDSHAKE_SUCCEEDED 0"),
            "{:?}",
            peer.seen
        );
    }
}

#[test]
fn curve_libzmq_req_and_dealer_with_our_servers() {
    let (server, client) = keys();
    for (ours, theirs) in [(SocketType::Rep, "REQ"), (SocketType::Router, "DEALER")] {
        let ctx = ctx();
        let allowed = client.public;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        ctx.set_zap_handler(move |r: &ZapRequest| {
            log.lock().unwrap().push((r.mechanism, r.domain.clone()));
            match r.credentials {
                Credentials::Curve { public_key } if public_key == allowed => {
                    ZapReply::allow("client-1")
                }
                _ => ZapReply::deny("unknown key"),
            }
        });
        let s = socket(&ctx, ours);
        curve_server(&s, &server);
        s.set_zap_domain("test").unwrap();
        let ep = bind_local(&s);
        let mut frames = vec![b"hi".to_vec(), body(40_000, 4)];
        if theirs == "DEALER" {
            frames.insert(0, Vec::new());
        }
        let mut peer = PyPeer::start(&spec(
            theirs,
            ("connect", &ep),
            &curve_client_opts(&client, &server.public.to_z85()),
            None,
            "request",
            2,
            &frames,
        ));
        for _ in 0..2 {
            let m = recv(&s, "request");
            assert_eq!(
                m.property("User-Id").map(|v| &v[..]),
                Some(&b"client-1"[..]),
                "{ours}"
            );
            let mut got = vecs(m.clone());
            if ours == SocketType::Router {
                let id = got.remove(0);
                assert_eq!(got, frames);
                let reply = [id, Vec::new(), b"ok".to_vec()];
                s.send(Message::from_frames(
                    reply.into_iter().map(bytes::Bytes::from),
                ))
                .unwrap();
                assert_eq!(peer.received(), vec![Vec::new(), b"ok".to_vec()]);
            } else {
                assert_eq!(got, frames);
                send(&s, "ok", "reply");
                assert_eq!(peer.received(), vec![b"ok".to_vec()]);
            }
        }
        assert_eq!(seen.lock().unwrap()[0], ("CURVE", "test".to_owned()));
    }
}

#[test]
fn curve_pub_sub_both_ways() {
    let (server, client) = keys();
    // libzmq PUB (CURVE server) -> our SUB.
    let payload = vec![b"weather".to_vec(), b"sunny".to_vec()];
    let mut peer = PyPeer::start(&spec(
        "PUB",
        ("bind", "tcp://127.0.0.1:0"),
        &curve_server_opts(&server),
        None,
        "sub",
        0,
        &payload,
    ));
    let ep = peer.bound();
    let ctx = ctx();
    let sub = socket(&ctx, SocketType::Sub);
    curve_client(&sub, &client, server.public.as_bytes());
    sub.subscribe("weather").unwrap();
    sub.connect(&ep).unwrap();
    assert_eq!(vecs(recv(&sub, "publication")), payload);
    drop(peer);

    // Our PUB (CURVE server) -> libzmq SUB: its SUBSCRIBE arrives boxed.
    let publisher = socket(&ctx, SocketType::Pub);
    curve_server(&publisher, &server);
    let ep = bind_local(&publisher);
    let mut opts = curve_client_opts(&client, &server.public.to_z85());
    opts.push(("subscribe", js("news")));
    let mut peer = PyPeer::start(&spec("SUB", ("connect", &ep), &opts, None, "recv", 1, &[]));
    let deadline = std::time::Instant::now() + TIMEOUT;
    let got = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing reached the SUB"
        );
        publisher.send("other-topic").unwrap();
        publisher.send("news-flash").unwrap();
        if let Ok(line) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            peer.expect_within("RECV ", std::time::Duration::from_millis(50))
        })) {
            break line;
        }
    };
    assert_eq!(got, hex_string(b"news-flash"));
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn plain_both_ways_with_zap() {
    // libzmq REP as PLAIN server, with a ZAP handler; our REQ.
    let mut peer = PyPeer::start(&spec(
        "REP",
        ("bind", "tcp://127.0.0.1:0"),
        &[("plain_server", "1".into())],
        Some("{\"plain\":{\"admin\":\"secret\"}}"),
        "echo",
        1,
        &[],
    ));
    let ep = peer.bound();
    let ctx = ctx();
    let req = socket(&ctx, SocketType::Req);
    req.set_plain_username("admin").unwrap();
    req.set_plain_password("secret").unwrap();
    req.connect(&ep).unwrap();
    send(&req, "ping", "request");
    assert_eq!(peer.received(), vec![b"ping".to_vec()]);
    assert_eq!(strs(&recv(&req, "reply")), ["re", "ping"]);

    // Our REP as PLAIN server with a ZAP handler; libzmq REQ.
    let ctx = util::ctx();
    ctx.set_zap_handler(|r: &ZapRequest| match &r.credentials {
        Credentials::Plain { username, password }
            if username == "admin" && password.expose() == b"secret" =>
        {
            ZapReply::allow("admin")
        }
        _ => ZapReply::deny("no"),
    });
    libzmq_plain_client_is_admin(&ctx);
}

/// Our REP as PLAIN server in `ctx`, whose ZAP handler lets
/// admin/secret in as "admin"; a libzmq REQ as admin/secret.
fn libzmq_plain_client_is_admin(ctx: &ferrozmq::Context) {
    let rep = socket(ctx, SocketType::Rep);
    rep.set_plain_server(true).unwrap();
    let ep = bind_local(&rep);
    let mut peer = PyPeer::start(&spec(
        "REQ",
        ("connect", &ep),
        &[
            ("plain_username", js("admin")),
            ("plain_password", js("secret")),
        ],
        None,
        "request",
        1,
        &[b"hello".to_vec()],
    ));
    let m = recv(&rep, "request");
    assert_eq!(strs(&m), ["hello"]);
    assert_eq!(m.property("User-Id").map(|v| &v[..]), Some(&b"admin"[..]));
    assert_eq!(m.property("socket-type").map(|v| &v[..]), Some(&b"REQ"[..]));
    send(&rep, "world", "reply");
    assert_eq!(peer.received(), vec![b"world".to_vec()]);
}

#[test]
fn wrong_password_is_refused_both_ways() {
    // Our client, libzmq server: we see AUTH 400 from its ERROR.
    let mut peer = PyPeer::start(&spec(
        "REP",
        ("bind", "tcp://127.0.0.1:0"),
        &[("plain_server", "1".into())],
        Some("{\"plain\":{\"admin\":\"secret\"}}"),
        "idle",
        0,
        &[],
    ));
    let ep = peer.bound();
    let ctx = ctx();
    let req = socket(&ctx, SocketType::Req);
    req.set_plain_username("admin").unwrap();
    req.set_plain_password("guess").unwrap();
    let events = req.monitor();
    req.connect(&ep).unwrap();
    assert_eq!(
        handshake_failure(&events),
        HandshakeFailure::Auth { status: 400 }
    );
    assert_eq!(peer.expect("EVENT HANDSHAKE_FAILED_AUTH"), "400");

    // libzmq client, our server: it sees AUTH 400 from our ERROR.
    let ctx = util::ctx();
    ctx.set_zap_handler(|_: &ZapRequest| ZapReply::deny("nobody gets in"));
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_plain_server(true).unwrap();
    let events = rep.monitor();
    let ep = bind_local(&rep);
    let mut peer = PyPeer::start(&spec(
        "REQ",
        ("connect", &ep),
        &[
            ("plain_username", js("admin")),
            ("plain_password", js("guess")),
        ],
        None,
        "idle",
        0,
        &[],
    ));
    assert_eq!(peer.expect("EVENT HANDSHAKE_FAILED_AUTH"), "400");
    assert_eq!(
        handshake_failure(&events),
        HandshakeFailure::Auth { status: 400 }
    );
}

#[test]
fn wrong_curve_keys_are_refused_both_ways() {
    let (server, client) = keys();
    let impostor = CurveKeyPair::generate();

    // Our client with the wrong server key: libzmq cannot open HELLO.
    let mut peer = PyPeer::start(&spec(
        "REP",
        ("bind", "tcp://127.0.0.1:0"),
        &curve_server_opts(&server),
        None,
        "idle",
        0,
        &[],
    ));
    let ep = peer.bound();
    let ctx = ctx();
    let req = socket(&ctx, SocketType::Req);
    curve_client(&req, &client, impostor.public.as_bytes());
    req.connect(&ep).unwrap();
    peer.expect("EVENT HANDSHAKE_FAILED_PROTOCOL");

    // A libzmq client with the wrong server key: our HELLO box check.
    let rep = socket(&ctx, SocketType::Rep);
    curve_server(&rep, &server);
    let events = rep.monitor();
    let ep = bind_local(&rep);
    let _peer = PyPeer::start(&spec(
        "REQ",
        ("connect", &ep),
        &curve_client_opts(&client, &impostor.public.to_z85()),
        None,
        "idle",
        0,
        &[],
    ));
    assert_eq!(handshake_failure(&events), HandshakeFailure::Encryption);

    // Our ZAP refuses a libzmq client's key: AUTH 400 on both sides.
    let ctx = util::ctx();
    ctx.set_zap_handler(|_: &ZapRequest| ZapReply::deny("unknown key"));
    let rep = socket(&ctx, SocketType::Rep);
    curve_server(&rep, &server);
    let events = rep.monitor();
    let ep = bind_local(&rep);
    let mut peer = PyPeer::start(&spec(
        "REQ",
        ("connect", &ep),
        &curve_client_opts(&client, &server.public.to_z85()),
        None,
        "idle",
        0,
        &[],
    ));
    assert_eq!(
        handshake_failure(&events),
        HandshakeFailure::Auth { status: 400 }
    );
    assert_eq!(peer.expect("EVENT HANDSHAKE_FAILED_AUTH"), "400");

    // libzmq's ZAP refuses our key.
    let mut peer = PyPeer::start(&spec(
        "REP",
        ("bind", "tcp://127.0.0.1:0"),
        &curve_server_opts(&server),
        Some("{\"curve\":[]}"),
        "idle",
        0,
        &[],
    ));
    let ep = peer.bound();
    let ctx = util::ctx();
    let req = socket(&ctx, SocketType::Req);
    curve_client(&req, &client, server.public.as_bytes());
    let events = req.monitor();
    req.connect(&ep).unwrap();
    assert_eq!(
        handshake_failure(&events),
        HandshakeFailure::Auth { status: 400 }
    );
    assert_eq!(peer.expect("EVENT HANDSHAKE_FAILED_AUTH"), "400");
}

#[test]
fn libzmq_client_authenticated_by_our_inproc_zap_handler() {
    // A handler written for libzmq's wire protocol (RFC 27), bound where
    // libzmq's would be, serves our PLAIN server; the client is libzmq.
    let ctx = ctx();
    let zap = ctx.socket(SocketType::Rep).unwrap();
    zap.bind("inproc://zeromq.zap.01").unwrap();
    let handler = std::thread::spawn(move || {
        let req = zap.recv_timeout(TIMEOUT).expect("a ZAP request");
        let f: Vec<Vec<u8>> = req.iter().map(|f| f.to_vec()).collect();
        let ok = f[5] == b"PLAIN" && f[6] == b"admin" && f[7] == b"secret";
        let (code, user): (&[u8], &[u8]) = if ok {
            (b"200", b"admin")
        } else {
            (b"400", b"")
        };
        let reply: Vec<&[u8]> = vec![b"1.0", &f[1], code, b"", user, b""];
        zap.send(Message::from(
            reply.into_iter().map(|f| f.to_vec()).collect::<Vec<_>>(),
        ))
        .unwrap();
        f
    });
    libzmq_plain_client_is_admin(&ctx);
    let seen = bounded(TIMEOUT, "the ZAP handler", move || handler.join().unwrap());
    assert_eq!(&seen[3][..], b"127.0.0.1");
}
