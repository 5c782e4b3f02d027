//! Context termination with open sockets never hangs, wakes blocked calls
//! with `ContextTerminated`, and makes every later call fail the same way.

mod util;

use ferrozmq::{Context, Error, Message, Socket, SocketType};
use std::time::Duration;
use util::*;

/// Sockets with messages that can never be delivered: a PUSH and a REQ
/// connected to a port nobody listens on, plus a DEALER with a full pipe.
fn stuck_sockets(ctx: &Context) -> Vec<Socket> {
    let ep = free_endpoint();
    let push = socket(ctx, SocketType::Push);
    push.connect(&ep).expect("connect");
    for i in 0..10 {
        push.try_send(format!("nowhere {i}")).expect("queued");
    }
    let req = socket(ctx, SocketType::Req);
    req.connect(&ep).expect("connect");
    req.try_send("unanswerable").expect("queued");
    let dealer = socket(ctx, SocketType::Dealer);
    dealer.set_sndhwm(2).unwrap();
    dealer.connect(&ep).expect("connect");
    dealer.try_send("a").expect("queued");
    dealer.try_send("b").expect("queued");
    assert!(dealer
        .try_send("c")
        .expect_err("full")
        .error
        .is_would_block());
    vec![push, req, dealer]
}

fn assert_terminated(s: &Socket) {
    assert!(
        matches!(s.try_recv(), Err(Error::ContextTerminated)),
        "{}",
        s.socket_type()
    );
    assert!(matches!(
        s.recv_timeout(TIMEOUT),
        Err(Error::ContextTerminated)
    ));
    let err = s.try_send("late").expect_err("terminated");
    assert!(
        matches!(err.error, Error::ContextTerminated),
        "{:?}",
        err.error
    );
    assert_eq!(err.message, Message::from("late"), "message handed back");
    let err = s.send_timeout("late", TIMEOUT).expect_err("terminated");
    assert!(
        matches!(err.error, Error::ContextTerminated),
        "{:?}",
        err.error
    );
    assert!(matches!(
        s.bind("tcp://127.0.0.1:*"),
        Err(Error::ContextTerminated)
    ));
    assert!(matches!(
        s.connect(&free_endpoint()),
        Err(Error::ContextTerminated)
    ));
}

#[test]
fn term_with_pending_messages_and_blocked_recv() {
    let ctx = ctx();
    let sockets = stuck_sockets(&ctx);

    // A REP bound and blocked in recv on another thread.
    let rep = socket(&ctx, SocketType::Rep);
    bind_local(&rep);
    let (started_tx, started_rx) = crossbeam_channel::bounded(1);
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let blocked = std::thread::spawn(move || {
        let _ = started_tx.send(());
        // Bounded, but far longer than the test waits for it.
        let r = rep.recv_timeout(Duration::from_secs(60));
        let _ = done_tx.send(r.map(|_| ()));
        rep
    });
    started_rx.recv_timeout(TIMEOUT).expect("thread started");

    let ctx2 = ctx.clone();
    bounded(TIMEOUT, "Context::term", move || ctx2.term());

    let r = done_rx
        .recv_timeout(TIMEOUT)
        .expect("blocked recv was not woken by term");
    assert!(matches!(r, Err(Error::ContextTerminated)), "{r:?}");
    let rep = bounded(TIMEOUT, "join", move || blocked.join()).expect("thread");

    for s in sockets.iter().chain(std::iter::once(&rep)) {
        assert_terminated(s);
    }
    // Term is idempotent, and new sockets are refused.
    ctx.term();
    assert!(matches!(
        ctx.socket(SocketType::Req),
        Err(Error::ContextTerminated)
    ));
    // Dropping the sockets afterwards is harmless.
    bounded(TIMEOUT, "drop after term", move || {
        drop(sockets);
        drop(rep);
    });
}

#[test]
fn dropping_context_with_open_sockets_does_not_hang() {
    let ctx = ctx();
    let sockets = stuck_sockets(&ctx);
    // Dropping the last Context handle terminates, even though the
    // sockets are still open.
    bounded(TIMEOUT, "drop(Context)", move || drop(ctx));
    for s in &sockets {
        assert_terminated(s);
    }
}

#[test]
fn term_wakes_blocked_send() {
    let ctx = ctx();
    let push = socket(&ctx, SocketType::Push);
    push.set_sndhwm(1).unwrap();
    push.connect(&free_endpoint()).expect("connect");
    push.try_send("fills the pipe").expect("queued");

    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let t = std::thread::spawn(move || {
        let r = push.send_timeout("blocked", Duration::from_secs(60));
        let _ = done_tx.send(r.map_err(|e| (e.error, e.message)));
        push
    });
    // Make sure the sender is really stuck before terminating (not a
    // synchronisation sleep: nothing can unblock it except term).
    assert!(done_rx.recv_timeout(SHORT).is_err(), "send did not block");
    let ctx2 = ctx.clone();
    bounded(TIMEOUT, "Context::term", move || ctx2.term());
    match done_rx
        .recv_timeout(TIMEOUT)
        .expect("blocked send was woken")
    {
        Err((Error::ContextTerminated, msg)) => assert_eq!(msg, Message::from("blocked")),
        other => panic!("expected ContextTerminated, got {other:?}"),
    }
    let push = bounded(TIMEOUT, "join", move || t.join()).expect("thread");
    assert_terminated(&push);
}

#[test]
fn closed_socket_with_infinite_linger_and_nothing_pending_does_not_block_term() {
    // A socket closed before term with nothing pending does not hold up
    // termination, whatever its linger.
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Dealer);
    s.set_linger(None).unwrap();
    bind_local(&s);
    s.connect(&free_endpoint()).expect("connect");
    drop(s);
    bounded(TIMEOUT, "drop(Context)", move || drop(ctx));
}

#[test]
fn term_with_connected_peers_in_another_context() {
    // Terminating one context while its sockets are talking to another
    // context's sockets: both sides stay sane.
    let server_ctx = ctx();
    let rep = socket(&server_ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let client_ctx = ctx();
    let req = socket(&client_ctx, SocketType::Req);
    req.connect(&ep).expect("connect");
    send(&req, "q", "request");
    recv(&rep, "server");
    bounded(TIMEOUT, "client term", move || client_ctx.term());
    assert_terminated(&req);
    // The server's reply goes nowhere, but the server is unaffected.
    send(&rep, "a", "reply");
    let req2 = socket(&server_ctx, SocketType::Req);
    req2.connect(&ep).expect("connect");
    send(&req2, "again", "request");
    assert_eq!(strs(&recv(&rep, "server")), ["again"]);
    send(&rep, "answer", "reply");
    assert_eq!(strs(&recv(&req2, "client")), ["answer"]);
    bounded(TIMEOUT, "server term", move || drop(server_ctx));
}
