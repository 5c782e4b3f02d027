//! `Socket` and `Context` are `Send` (and `Sync`) and work across threads.

mod util;

use ferrozmq::{Context, Message, Socket, SocketType};
use std::sync::Arc;
use util::*;

const _: () = {
    const fn assert_send<T: Send>() {}
    const fn assert_sync<T: Sync>() {}
    assert_send::<Socket>();
    assert_sync::<Socket>();
    assert_send::<Context>();
    assert_sync::<Context>();
    assert_send::<Message>();
    assert_send::<ferrozmq::Error>();
    assert_send::<ferrozmq::SendError>();
};

#[test]
fn socket_moves_to_another_thread_and_back() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");

    // Serve from another thread, then hand the socket back.
    let server = std::thread::spawn(move || {
        let m = recv(&rep, "server thread");
        send(&rep, m, "server thread");
        rep
    });
    assert_eq!(strs(&round_trip(&req, "over there")), ["over there"]);
    let rep = bounded(TIMEOUT, "join", move || server.join()).expect("server thread");

    // The returned socket still works here, and the client moves too.
    let client = std::thread::spawn(move || round_trip(&req, "and back"));
    assert_eq!(strs(&recv(&rep, "server")), ["and back"]);
    send(&rep, "done", "server");
    let reply = bounded(TIMEOUT, "join", move || client.join()).expect("client thread");
    assert_eq!(strs(&reply), ["done"]);
}

#[test]
fn shared_socket_used_from_several_threads() {
    const THREADS: usize = 4;
    const EACH: usize = 250;
    let ctx = ctx();
    let pull = socket(&ctx, SocketType::Pull);
    let ep = bind_local(&pull);
    let push = Arc::new(socket(&ctx, SocketType::Push));
    push.connect(&ep).expect("connect");

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let push = push.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    send(&push, format!("{t}:{i}"), "pusher");
                }
            })
        })
        .collect();
    let mut next = [0usize; THREADS];
    for _ in 0..THREADS * EACH {
        let m = strs(&recv(&pull, "pull")).remove(0);
        let (t, i) = m.split_once(':').expect("t:i");
        let (t, i): (usize, usize) = (t.parse().expect("t"), i.parse().expect("i"));
        // Per-sender order is preserved.
        assert_eq!(i, next[t], "thread {t} out of order");
        next[t] += 1;
    }
    assert_eq!(next, [EACH; THREADS]);
    bounded(TIMEOUT, "join pushers", move || {
        for h in handles {
            h.join().expect("pusher");
        }
    });
}

#[test]
fn sockets_outlive_their_creating_thread() {
    let ctx = ctx();
    let c2 = ctx.clone();
    let (rep, ep) = bounded(TIMEOUT, "create", move || {
        let rep = socket(&c2, SocketType::Rep);
        let ep = bind_local(&rep);
        (rep, ep)
    });
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");
    send(&req, "x", "request");
    assert_eq!(strs(&recv(&rep, "server")), ["x"]);
    send(&rep, "y", "reply");
    assert_eq!(strs(&recv(&req, "client")), ["y"]);
}
