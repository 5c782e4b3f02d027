//! ZAP served the libzmq way: an application socket bound on
//! `inproc://zeromq.zap.01` (REP or ROUTER) authenticates PLAIN, CURVE and
//! NULL clients of our TCP servers through RFC 27's wire protocol. Every
//! wait is bounded; the handler threads end with their context.

mod util;

use ferrozmq::{
    Context, CurveKeyPair, EventKind, HandshakeFailure, Message, MonitorEvent, ProtocolError,
    Socket, SocketType, ZapReply, ZapRequest,
};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use util::*;

const ZAP: &str = "inproc://zeromq.zap.01";

type Frames = Vec<Vec<u8>>;

/// A handler's reply to a request, both as frames.
type Reply = fn(&[Vec<u8>]) -> Frames;

/// Binds a handler of type `ty` on the ZAP endpoint and serves it on a
/// thread until the context ends: `answer` gets each request's frames
/// (from the version on) and returns the reply's, or `None` to leave it
/// unanswered (ROUTER only: a REP must answer before the next request).
/// The thread returns every request it saw.
fn handler(
    ctx: &Context,
    ty: SocketType,
    answer: impl Fn(&[Vec<u8>]) -> Option<Frames> + Send + 'static,
) -> JoinHandle<Vec<Frames>> {
    let s = ctx.socket(ty).unwrap();
    s.set_sndtimeo(Some(TIMEOUT)).unwrap();
    s.bind(ZAP).unwrap();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        // Ends with ContextTerminated when the test terminates the context.
        while let Ok(m) = s.recv() {
            let mut frames: Frames = m.iter().map(|f| f.to_vec()).collect();
            let envelope: Frames = match ty {
                SocketType::Router => frames.drain(..2).collect(),
                _ => Vec::new(),
            };
            seen.push(frames.clone());
            if let Some(reply) = answer(&frames) {
                let mut out = envelope;
                out.extend(reply);
                if s.send(Message::from(out)).is_err() {
                    break;
                }
            }
        }
        seen
    })
}

/// Terminates the context, then collects what its handler saw.
fn finish(ctx: Context, handler: JoinHandle<Vec<Frames>>) -> Vec<Frames> {
    bounded(TIMEOUT, "context termination", move || ctx.term());
    bounded(TIMEOUT, "the handler thread", move || {
        handler.join().unwrap()
    })
}

/// ZMTP metadata, as RFC 27's last reply frame carries it.
fn metadata(props: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in props {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

fn allow(req: &[Vec<u8>], user: &str, props: &[(&str, &str)]) -> Frames {
    vec![
        b"1.0".to_vec(),
        req[1].clone(),
        b"200".to_vec(),
        b"OK".to_vec(),
        user.as_bytes().to_vec(),
        metadata(props),
    ]
}

fn deny(req: &[Vec<u8>], code: &str) -> Frames {
    vec![
        b"1.0".to_vec(),
        req[1].clone(),
        code.as_bytes().to_vec(),
        b"denied".to_vec(),
        Vec::new(),
        Vec::new(),
    ]
}

/// Waits for the monitor's `HandshakeFailed`, and returns its reason.
fn handshake_failed(rx: &crossbeam_channel::Receiver<MonitorEvent>) -> ProtocolError {
    let ev = wait_event(rx, TIMEOUT, |e| {
        matches!(e.kind, EventKind::HandshakeFailed { .. })
    });
    match ev.kind {
        EventKind::HandshakeFailed { reason } => reason,
        _ => unreachable!(),
    }
}

fn plain_client(ctx: &Context, ep: &str, user: &str, pass: &str) -> Socket {
    let req = socket(ctx, SocketType::Req);
    req.set_plain_username(user.to_owned()).unwrap();
    req.set_plain_password(pass).unwrap();
    req.connect(ep).unwrap();
    req
}

#[test]
fn plain_allowed_and_denied_by_password() {
    let ctx = ctx();
    let zap = handler(&ctx, SocketType::Rep, |req| {
        Some(match (&req[5][..], req.get(7).map(|p| &p[..])) {
            (b"PLAIN", Some(b"secret")) => {
                let user = String::from_utf8_lossy(&req[6]).into_owned();
                allow(req, &user, &[("Hello", "World")])
            }
            _ => deny(req, "400"),
        })
    });
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_plain_server(true).unwrap();
    rep.set_zap_domain("global").unwrap();
    let events = rep.monitor();
    let ep = bind_local(&rep);

    let good = plain_client(&ctx, &ep, "admin", "secret");
    send(&good, "hi", "request");
    let m = recv(&rep, "request");
    assert_eq!(strs(&m), ["hi"]);
    assert_eq!(m.property("User-Id").map(|v| &v[..]), Some(&b"admin"[..]));
    assert_eq!(m.property("Hello").map(|v| &v[..]), Some(&b"World"[..]));
    send(&rep, "ok", "reply");
    assert_eq!(strs(&recv(&good, "reply")), ["ok"]);

    let bad = plain_client(&ctx, &ep, "admin", "guess");
    let bad_events = bad.monitor();
    let reason = handshake_failed(&events);
    assert_eq!(
        reason.handshake_failure(),
        HandshakeFailure::Auth { status: 400 },
        "{reason:?}"
    );
    assert_eq!(
        handshake_failed(&bad_events).handshake_failure(),
        HandshakeFailure::Auth { status: 400 }
    );

    let seen = finish(ctx, zap);
    let first = &seen[0];
    let want: [&[u8]; 6] = [b"1.0", b"0", b"global", b"127.0.0.1", b"", b"PLAIN"];
    assert_eq!(&first[..6], &want[..]);
    assert_eq!(&first[6..], &[b"admin".to_vec(), b"secret".to_vec()]);
    // The refused client may have tried again since.
    assert!(seen.len() >= 2);
    assert_ne!(seen[0][1], seen[1][1], "request ids differ");
}

#[test]
fn curve_allowed_and_denied_by_client_key() {
    let ctx = ctx();
    let (server, allowed, stranger) = (
        CurveKeyPair::generate(),
        CurveKeyPair::generate(),
        CurveKeyPair::generate(),
    );
    let key = allowed.public.as_bytes().to_vec();
    let zap = handler(&ctx, SocketType::Router, move |req| {
        Some(if req[5] == b"CURVE" && req[6] == key {
            allow(req, "sensor-7", &[])
        } else {
            deny(req, "400")
        })
    });
    let router = socket(&ctx, SocketType::Router);
    router.set_curve_keypair(&server).unwrap();
    router.set_curve_server(true).unwrap();
    let events = router.monitor();
    let ep = bind_local(&router);
    let client = |keys: &CurveKeyPair| {
        let d = socket(&ctx, SocketType::Dealer);
        d.set_curve_keypair(keys).unwrap();
        d.set_curve_serverkey(server.public.as_bytes()).unwrap();
        d.connect(&ep).unwrap();
        d
    };

    let good = client(&allowed);
    send(&good, "hello", "request");
    let m = recv(&router, "request");
    assert_eq!(strs(&m)[1], "hello");
    assert_eq!(
        m.property("User-Id").map(|v| &v[..]),
        Some(&b"sensor-7"[..])
    );

    let bad = client(&stranger);
    let bad_events = bad.monitor();
    assert_eq!(
        handshake_failed(&events).handshake_failure(),
        HandshakeFailure::Auth { status: 400 }
    );
    assert_eq!(
        handshake_failed(&bad_events).handshake_failure(),
        HandshakeFailure::Auth { status: 400 }
    );
    let seen = finish(ctx, zap);
    assert!(
        seen.len() >= 2,
        "the refused client may have tried again since"
    );
}

#[test]
fn an_unanswered_request_drops_that_client_alone_within_handshake_ivl() {
    let ctx = ctx();
    // Leaves "silent" unanswered; answers everyone else. Tells the test
    // whose request it saw.
    let (tx, asked) = crossbeam_channel::unbounded();
    let zap = handler(&ctx, SocketType::Router, move |req| {
        let _ = tx.send(req[6].clone());
        (req[6] != b"silent").then(|| allow(req, "", &[]))
    });
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_plain_server(true).unwrap();
    let ivl = Duration::from_millis(1500);
    rep.set_handshake_ivl(ivl).unwrap();
    let events = rep.monitor();
    let ep = bind_local(&rep);

    let start = Instant::now();
    let _silent = plain_client(&ctx, &ep, "silent", "x");
    // The silent client's request is out before the other one starts.
    assert_eq!(asked.recv_timeout(TIMEOUT).unwrap(), b"silent");
    let other = plain_client(&ctx, &ep, "other", "x");
    send(&other, "hi", "request");
    assert_eq!(strs(&recv(&rep, "request")), ["hi"]);
    send(&rep, "ok", "reply");
    assert_eq!(strs(&recv(&other, "reply")), ["ok"]);
    // Served while the silent one still waited.
    while let Ok(ev) = events.try_recv() {
        assert!(
            !matches!(ev.kind, EventKind::HandshakeFailed { .. }),
            "{ev:?} before the other client was served"
        );
    }
    assert_eq!(handshake_failed(&events), ProtocolError::HandshakeTimeout);
    assert!(start.elapsed() >= ivl);
    let seen = finish(ctx, zap);
    assert!(seen.iter().any(|r| r[6] == b"silent"));
}

fn wrong_version(req: &[Vec<u8>]) -> Frames {
    let mut r = allow(req, "", &[]);
    r[0] = b"2.0".to_vec();
    r
}

fn missing_frames(req: &[Vec<u8>]) -> Frames {
    allow(req, "", &[])[..4].to_vec()
}

fn unknown_status(req: &[Vec<u8>]) -> Frames {
    deny(req, "299")
}

fn bad_metadata(req: &[Vec<u8>]) -> Frames {
    let mut r = allow(req, "", &[]);
    r[5] = vec![9, b'x'];
    r
}

#[test]
fn a_malformed_reply_fails_that_handshake() {
    let cases: [(&str, Reply); 4] = [
        ("wrong version", wrong_version),
        ("missing frames", missing_frames),
        ("unknown status", unknown_status),
        ("bad metadata", bad_metadata),
    ];
    for (what, reply) in cases {
        let ctx = ctx();
        let zap = handler(&ctx, SocketType::Rep, move |req| Some(reply(req)));
        let rep = socket(&ctx, SocketType::Rep);
        rep.set_plain_server(true).unwrap();
        let events = rep.monitor();
        let ep = bind_local(&rep);
        let _client = plain_client(&ctx, &ep, "u", "p");
        let reason = handshake_failed(&events);
        assert!(
            matches!(reason, ProtocolError::ZapFailed(_)),
            "{what}: {reason:?}"
        );
        assert_eq!(reason.handshake_failure(), HandshakeFailure::Protocol);
        finish(ctx, zap);
    }
}

#[test]
fn rust_handler_first_then_the_endpoint_then_nobody() {
    let ctx = ctx();
    let zap = handler(&ctx, SocketType::Rep, |req| Some(allow(req, "inproc", &[])));
    ctx.set_zap_handler(|_: &ZapRequest| ZapReply::allow("rust"));
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_plain_server(true).unwrap();
    let ep = bind_local(&rep);
    let user_of = |ctx: &Context| {
        let req = plain_client(ctx, &ep, "u", "p");
        send(&req, "x", "request");
        let m = recv(&rep, "request");
        send(&rep, "y", "reply");
        recv(&req, "reply");
        m.property("User-Id").map(|v| v.to_vec())
    };
    assert_eq!(user_of(&ctx), Some(b"rust".to_vec()));
    ctx.clear_zap_handler();
    assert_eq!(user_of(&ctx), Some(b"inproc".to_vec()));

    // NULL with a zap_domain asks the endpoint too, with no credentials.
    let null = socket(&ctx, SocketType::Rep);
    null.set_zap_domain("d").unwrap();
    let ep = bind_local(&null);
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).unwrap();
    send(&req, "x", "request");
    recv(&null, "request");

    let seen = finish(ctx, zap);
    assert_eq!(seen.len(), 2);
    assert_eq!(&seen[1][2..6], &[&b"d"[..], b"127.0.0.1", b"", b"NULL"]);
    assert_eq!(seen[1].len(), 6, "NULL has no credentials");

    // Nothing bound and no handler: accepted, as libzmq without one.
    let ctx = util::ctx();
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_plain_server(true).unwrap();
    let ep = bind_local(&rep);
    let req = plain_client(&ctx, &ep, "anyone", "at all");
    send(&req, "x", "request");
    let m = recv(&rep, "request");
    assert_eq!(m.property("User-Id"), None);
}

#[test]
fn a_reply_for_an_unknown_request_is_dropped_and_the_client_times_out() {
    let ctx = ctx();
    let zap = handler(&ctx, SocketType::Rep, |req| {
        let mut r = allow(req, "", &[]);
        r[1] = b"4294967296".to_vec();
        Some(r)
    });
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_plain_server(true).unwrap();
    rep.set_handshake_ivl(Duration::from_millis(300)).unwrap();
    let events = rep.monitor();
    let ep = bind_local(&rep);
    let _client = plain_client(&ctx, &ep, "u", "p");
    // Matched to no connection: the one waiting is still bounded by
    // handshake_ivl, and the I/O thread carries on.
    assert_eq!(handshake_failed(&events), ProtocolError::HandshakeTimeout);
    let other = socket(&ctx, SocketType::Rep);
    bind_local(&other);
    assert!(!finish(ctx, zap).is_empty());
}
