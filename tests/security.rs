//! PLAIN and CURVE between our own sockets over TCP: options, ZAP on the
//! context, properties on messages, and peers that stall or send garbage
//! in the handshake. (Interop with libzmq: tests/interop_security.rs.)

mod util;

use ferrozmq::{
    CurveKeyPair, Error, EventKind, HandshakeFailure, ProtocolError, SocketType, ZapReply,
    ZapRequest,
};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use util::*;

#[test]
fn curve_pub_sub_with_zap_and_user_id() {
    let ctx = ctx();
    let (server, client) = (CurveKeyPair::generate(), CurveKeyPair::generate());
    let allowed = client.public;
    ctx.set_zap_handler(move |r: &ZapRequest| match r.credentials {
        ferrozmq::Credentials::Curve { public_key } if public_key == allowed => {
            ZapReply::allow("sensor-7")
        }
        _ => ZapReply::deny("unknown"),
    });
    let sub = socket(&ctx, SocketType::Sub);
    sub.set_curve_keypair(&server).unwrap();
    sub.set_curve_server(true).unwrap();
    let ep = bind_local(&sub);
    sub.subscribe("t").unwrap();
    let publisher = socket(&ctx, SocketType::Pub);
    publisher.set_curve_keypair(&client).unwrap();
    publisher
        .set_curve_serverkey(server.public.to_z85().as_bytes())
        .unwrap();
    publisher.connect(&ep).unwrap();
    sync_subscription(
        "curve pub/sub",
        |m| publisher.send(m.to_vec()).unwrap(),
        |t| {
            sub.recv_timeout(t)
                .ok()
                .map(|m| m.iter().map(|f| f.to_vec()).collect())
        },
        "t",
    );
    publisher.send("t-data").unwrap();
    publisher.send("other").unwrap();
    publisher.send("t-last").unwrap();
    let m = recv(&sub, "t-data");
    assert_eq!(strs(&m), ["t-data"]);
    assert_eq!(
        m.property("user-id").map(|v| &v[..]),
        Some(&b"sensor-7"[..])
    );
    assert_eq!(m.property("Socket-Type").map(|v| &v[..]), Some(&b"PUB"[..]));
    assert_eq!(strs(&recv(&sub, "t-last")), ["t-last"]);
}

/// NULL with a `zap_domain`: a peer the handler allows carries its user
/// id (and the handler's properties) on its messages, as on PLAIN and
/// CURVE, although NULL messages otherwise carry no properties; a peer
/// the handler refuses never gets in.
#[test]
fn null_with_zap_puts_the_user_id_on_messages() {
    let ctx = ctx();
    ctx.set_zap_handler(|r: &ZapRequest| {
        if r.domain == "internal" {
            ZapReply::allow("svc-1")
        } else {
            ZapReply::deny("wrong domain")
        }
    });
    let pull = socket(&ctx, SocketType::Pull);
    pull.set_zap_domain("internal").unwrap();
    let ep = bind_local(&pull);
    let push = socket(&ctx, SocketType::Push);
    push.connect(&ep).unwrap();
    push.send("hello").unwrap();
    let m = recv(&pull, "hello");
    assert_eq!(m.property("User-Id").map(|v| &v[..]), Some(&b"svc-1"[..]));
    assert_eq!(
        m.property("Socket-Type").map(|v| &v[..]),
        Some(&b"PUSH"[..])
    );

    // Without a domain, NULL asks no one and attaches nothing.
    let plain_pull = socket(&ctx, SocketType::Pull);
    let ep = bind_local(&plain_pull);
    let push = socket(&ctx, SocketType::Push);
    push.connect(&ep).unwrap();
    push.send("plain").unwrap();
    let m = recv(&plain_pull, "plain");
    assert_eq!(m.property("User-Id"), None);
}

#[test]
fn missing_or_bad_keys_fail_bind_and_connect() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Rep);
    s.set_curve_server(true).unwrap();
    assert!(matches!(
        s.bind("tcp://127.0.0.1:0"),
        Err(Error::InvalidOption(_))
    ));
    let c = socket(&ctx, SocketType::Req);
    c.set_curve_keypair(&CurveKeyPair::generate()).unwrap();
    c.set_curve_server(false).unwrap();
    // curve_server(false) alone is NULL again, as in libzmq.
    assert_eq!(c.mechanism(), ferrozmq::Mechanism::Null);
    c.set_curve_serverkey([1u8; 32]).unwrap();
    c.set_curve_publickey(CurveKeyPair::generate().public.as_bytes())
        .unwrap();
    assert!(matches!(
        c.connect("tcp://127.0.0.1:9"),
        Err(Error::InvalidOption(_))
    ));
    assert!(matches!(
        c.set_curve_serverkey([1u8; 33]),
        Err(Error::InvalidOption(_))
    ));
    assert!(matches!(
        c.set_curve_secretkey("not z85 at all, but forty characters!!!!"),
        Err(Error::InvalidOption(_))
    ));
    assert!(c.set_plain_password(vec![b'x'; 256]).is_err());
}

#[test]
fn debug_output_never_shows_secrets() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Req);
    let keys = CurveKeyPair::generate();
    s.set_curve_keypair(&keys).unwrap();
    s.set_plain_password("hunter2").unwrap();
    let shown = format!("{:?}", s.options());
    assert!(!shown.contains(&keys.secret.to_z85()));
    assert!(!shown.contains("hunter2"));
    assert!(!shown.contains(&format!("{:?}", keys.secret.as_bytes())));
}

#[test]
fn stalled_and_garbage_handshakes_are_dropped_without_delaying_others() {
    let ctx = ctx();
    let server = CurveKeyPair::generate();
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_curve_keypair(&server).unwrap();
    rep.set_curve_server(true).unwrap();
    rep.set_handshake_ivl(Duration::from_millis(300)).unwrap();
    let events = rep.monitor();
    let ep = bind_local(&rep);
    let addr = ep.trim_start_matches("tcp://").to_owned();

    // One peer sends a greeting and stalls; another sends a HELLO of the
    // wrong size.
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled.write_all(&raw::greeting_for(b"CURVE")).unwrap();
    let mut garbage = TcpStream::connect(&addr).unwrap();
    let mut bad = raw::greeting_for(b"CURVE").to_vec();
    bad.extend_from_slice(b"\x04\x10\x05HELLO0123456789");
    garbage.write_all(&bad).unwrap();

    // A real client is served meanwhile.
    let req = socket(&ctx, SocketType::Req);
    req.set_curve_keypair(&CurveKeyPair::generate()).unwrap();
    req.set_curve_serverkey(server.public.as_bytes()).unwrap();
    req.connect(&ep).unwrap();
    send(&req, "hi", "request");
    assert_eq!(strs(&recv(&rep, "request")), ["hi"]);
    send(&rep, "ok", "reply");
    assert_eq!(strs(&recv(&req, "reply")), ["ok"]);

    let start = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = wait_event(&events, TIMEOUT, |e| {
            matches!(e.kind, EventKind::HandshakeFailed { .. })
        });
        if let EventKind::HandshakeFailed { reason } = ev.kind {
            seen.push(reason);
        }
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(seen
        .iter()
        .any(|r| matches!(r, ProtocolError::MalformedCommand(_))));
    assert!(seen.contains(&ProtocolError::HandshakeTimeout));
    assert!(seen
        .iter()
        .any(|r| r.handshake_failure() == HandshakeFailure::NoDetail));
    drop((stalled, garbage));
}
