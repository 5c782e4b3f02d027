//! Peers whose socket types cannot talk (RFC 28) are refused during the
//! handshake, reported on the monitor, and never exchange messages.

mod util;

use crossbeam_channel::Receiver;
use ferrozmq::{Context, Error, EventKind, MonitorEvent, ProtocolError, SocketType};
use std::time::{Duration, Instant};
use util::*;

/// What a monitor reported about the refusal.
#[derive(Debug, Default)]
struct Seen {
    /// `HandshakeFailed { IncompatibleSocketType }` naming the peer's type.
    incompatible: Vec<String>,
    /// Any other handshake failure or protocol-level disconnect, such as
    /// the ERROR command the refusing side sends.
    other_protocol: Vec<String>,
    handshake_succeeded: bool,
}

fn record(ev: MonitorEvent, seen: &mut Seen) {
    match ev.kind {
        EventKind::HandshakeFailed {
            reason: ProtocolError::IncompatibleSocketType { ours, peer },
        } => seen.incompatible.push(format!("{ours} vs {peer}")),
        EventKind::HandshakeFailed { reason } => {
            seen.other_protocol.push(format!("{reason:?}"));
        }
        EventKind::Disconnected {
            reason: Some(reason),
            ..
        } => seen.other_protocol.push(format!("{reason:?}")),
        EventKind::HandshakeSucceeded => seen.handshake_succeeded = true,
        _ => {}
    }
}

fn drain(rx: &Receiver<MonitorEvent>, seen: &mut Seen) {
    while let Ok(ev) = rx.try_recv() {
        record(ev, seen);
    }
}

/// Connects `client_ty` to a bound `server_ty`, has the client send, and
/// checks that the handshake is refused and nothing is delivered.
fn check_refused(client_ty: SocketType, server_ty: SocketType) {
    let ctx = ctx();
    let server = socket(&ctx, server_ty);
    server.set_linger(Some(Duration::ZERO)).unwrap();
    let server_mon = server.monitor();
    let ep = bind_local(&server);
    let client = socket(&ctx, client_ty);
    client.set_linger(Some(Duration::ZERO)).unwrap();
    let client_mon = client.monitor();
    client.connect(&ep).expect("connect");
    // Queued in the connecter's pipe; it must never be delivered. (REP
    // and PULL cannot send first.)
    if !matches!(client_ty, SocketType::Rep | SocketType::Pull) {
        client.try_send("hello?").expect("queued");
    }

    // Wait until a refusal naming the incompatible type shows up.
    let (mut s_seen, mut c_seen) = (Seen::default(), Seen::default());
    let deadline = Instant::now() + TIMEOUT;
    loop {
        drain(&server_mon, &mut s_seen);
        drain(&client_mon, &mut c_seen);
        if !s_seen.incompatible.is_empty() || !c_seen.incompatible.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{client_ty}->{server_ty}: no IncompatibleSocketType; server {s_seen:?} client {c_seen:?}"
        );
        // Block on the client monitor for a bit rather than spinning.
        if let Ok(ev) = client_mon.recv_timeout(Duration::from_millis(50)) {
            record(ev, &mut c_seen);
        }
    }

    // The refusing side names both types correctly.
    for s in s_seen.incompatible.iter() {
        assert_eq!(*s, format!("{server_ty} vs {client_ty}"));
    }
    for s in c_seen.incompatible.iter() {
        assert_eq!(*s, format!("{client_ty} vs {server_ty}"));
    }

    // Nothing gets through, in either direction, and nobody hangs.
    // (PUSH cannot receive, and a REQ server has sent nothing to await.)
    if !matches!(server_ty, SocketType::Push | SocketType::Req) {
        assert!(matches!(server.recv_timeout(SHORT), Err(Error::TimedOut)));
    }
    if client_ty != SocketType::Push {
        assert!(matches!(client.recv_timeout(SHORT), Err(Error::TimedOut)));
    }
    drain(&server_mon, &mut s_seen);
    drain(&client_mon, &mut c_seen);
    assert!(
        !s_seen.handshake_succeeded && !c_seen.handshake_succeeded,
        "an incompatible handshake succeeded: server {s_seen:?} client {c_seen:?}"
    );

    // Tearing down must not hang either (the client keeps retrying).
    bounded(TIMEOUT, "teardown", move || {
        drop(client);
        drop(server);
        drop(ctx);
    });
}

#[test]
fn req_to_req_is_refused() {
    check_refused(SocketType::Req, SocketType::Req);
}

#[test]
fn push_to_rep_is_refused() {
    check_refused(SocketType::Push, SocketType::Rep);
}

#[test]
fn rep_to_router_is_refused() {
    check_refused(SocketType::Rep, SocketType::Router);
}

#[test]
fn dealer_to_pull_is_refused() {
    check_refused(SocketType::Dealer, SocketType::Pull);
}

#[test]
fn compatible_peer_still_served_alongside_refused_one() {
    // A REP that refuses a PUSH keeps serving its REQ clients.
    let ctx: Context = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let mon = rep.monitor();
    let ep = bind_local(&rep);
    let push = socket(&ctx, SocketType::Push);
    push.set_linger(Some(Duration::ZERO)).unwrap();
    push.connect(&ep).expect("connect");
    push.try_send("junk").expect("queued");
    wait_event(&mon, TIMEOUT, |e| {
        matches!(
            e.kind,
            EventKind::HandshakeFailed {
                reason: ProtocolError::IncompatibleSocketType { .. }
            }
        )
    });
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");
    send(&req, "legit", "request");
    assert_eq!(strs(&recv(&rep, "server")), ["legit"]);
    send(&rep, "ok", "reply");
    assert_eq!(strs(&recv(&req, "client")), ["ok"]);
}
