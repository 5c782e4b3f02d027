//! `ferrozmq::tokio::AsyncSocket`: request-reply with blocking peers of the
//! same context, 1,000 async clients on one current-thread runtime,
//! cancellation of `recv` and `send`, and shutting down the runtime and
//! the context in either order. Every wait is bounded by a timeout.

use ferrozmq::tokio::AsyncSocket;
use ferrozmq::{Context, Error, Message, SocketType};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::time::timeout;

/// Bound of anything expected to happen.
const TIMEOUT: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn text(m: &Message) -> String {
    m.to_str().expect("one UTF-8 frame").to_owned()
}

/// An async REQ against a blocking REP thread, and an async ROUTER
/// serving a blocking DEALER, all in one context.
#[test]
fn async_and_blocking_sockets_of_one_context() {
    let ctx = Context::new();
    let rep = ctx.socket(SocketType::Rep).expect("rep");
    let rep_ep = rep.bind("tcp://127.0.0.1:*").expect("bind");
    let server = std::thread::spawn(move || {
        for _ in 0..100 {
            let m = rep.recv_timeout(TIMEOUT).expect("request");
            rep.send(m).expect("reply");
        }
    });
    let dealer = ctx.socket(SocketType::Dealer).expect("dealer");
    runtime().block_on(async {
        let req = AsyncSocket::new(ctx.socket(SocketType::Req).expect("req")).expect("async");
        req.get_ref().connect(&rep_ep).expect("connect");
        for i in 0..100 {
            req.send(format!("ping {i}")).await.expect("send");
            let reply = timeout(TIMEOUT, req.recv()).await.expect("in time");
            assert_eq!(text(&reply.expect("reply")), format!("ping {i}"));
        }

        let router =
            AsyncSocket::new(ctx.socket(SocketType::Router).expect("router")).expect("async");
        let ep = router.get_ref().bind("tcp://127.0.0.1:*").expect("bind");
        dealer.connect(&ep).expect("connect");
        let client = std::thread::spawn(move || {
            for i in 0..100 {
                dealer.send(format!("job {i}")).expect("send");
                let m = dealer.recv_timeout(TIMEOUT).expect("answer");
                assert_eq!(text(&m), format!("done {i}"));
            }
        });
        for i in 0..100 {
            let mut m = timeout(TIMEOUT, router.recv())
                .await
                .expect("in time")
                .expect("job");
            let id = m.pop_front().expect("routing id");
            assert_eq!(text(&m), format!("job {i}"));
            router
                .send_multipart([id, format!("done {i}").into()])
                .await
                .expect("answer");
        }
        client.join().expect("client");
    });
    server.join().expect("server");
}

/// 1,000 async REQ clients, each a task on one current-thread runtime,
/// against one ROUTER: every one gets its own reply.
#[test]
fn a_thousand_async_clients_on_one_thread() {
    const CLIENTS: usize = 1000;
    let ctx = Context::new();
    runtime().block_on(async {
        let router =
            AsyncSocket::new(ctx.socket(SocketType::Router).expect("router")).expect("async");
        let ep = router.get_ref().bind("tcp://127.0.0.1:*").expect("bind");
        // How far each side got, for the failure message.
        let served = std::cell::Cell::new(0usize);
        let answered = std::cell::Cell::new(0usize);
        let server = async {
            for _ in 0..CLIENTS {
                let m = router.recv().await.expect("request");
                // Echo the envelope and the body back.
                router.send(m).await.expect("reply");
                served.set(served.get() + 1);
            }
        };
        let clients = futures_util::future::join_all((0..CLIENTS).map(|i| {
            let ctx = ctx.clone();
            let ep = ep.clone();
            let answered = &answered;
            async move {
                let req =
                    AsyncSocket::new(ctx.socket(SocketType::Req).expect("req")).expect("async");
                req.get_ref().connect(&ep).expect("connect");
                req.send(format!("client {i}")).await.expect("send");
                let reply = req.recv().await.expect("reply");
                assert_eq!(text(&reply), format!("client {i}"));
                answered.set(answered.get() + 1);
            }
        }));
        let done = timeout(TIMEOUT * 6, async { tokio::join!(server, clients) }).await;
        assert!(
            done.is_ok(),
            "not all 1,000 round trips in time: the ROUTER answered {} requests, {} clients got their reply; router stats {:?}",
            served.get(),
            answered.get(),
            router.get_ref().stats(),
        );
    });
}

/// Dropping a `recv` future (a `select!` whose other branch won, a
/// timeout) loses no message.
#[test]
fn a_cancelled_recv_loses_nothing() {
    let ctx = Context::new();
    runtime().block_on(async {
        let pull = AsyncSocket::new(ctx.socket(SocketType::Pull).expect("pull")).expect("async");
        let ep = pull.get_ref().bind("tcp://127.0.0.1:*").expect("bind");
        let push = ctx.socket(SocketType::Push).expect("push");
        push.connect(&ep).expect("connect");
        let mut got = Vec::new();
        for i in 0..200 {
            push.send(format!("m{i}")).expect("send");
            // Cancel a recv now and then before it can complete.
            if i % 3 == 0 {
                tokio::select! {
                    biased;
                    _ = std::future::ready(()) => {}
                    m = pull.recv() => got.push(text(&m.expect("message"))),
                }
            }
            let _ = timeout(Duration::from_millis(1), pull.recv())
                .await
                .map(|m| got.push(text(&m.expect("message"))));
        }
        while got.len() < 200 {
            let m = timeout(TIMEOUT, pull.recv())
                .await
                .expect("the rest in time");
            got.push(text(&m.expect("message")));
        }
        let want: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
        assert_eq!(got, want, "every message once, in order");
    });
}

/// A `recv` dropped while it waits (and reads the connection on its task)
/// leaves the connection to the I/O thread again. An arm left behind would
/// leave the bytes to a reader that is gone: the I/O thread would hand the
/// connection off and never read it, so the socket would never become
/// readable for an event loop that watches only its readiness descriptor
/// (`wait_readable`, which reads no connection itself).
#[test]
fn a_dropped_recv_leaves_its_connection_to_the_io_thread() {
    let ctx = Context::new();
    let router = ctx.socket(SocketType::Router).expect("router");
    let ep = router.bind("tcp://127.0.0.1:*").expect("bind");
    runtime().block_on(async {
        let (dealer, hello) = greeted_dealer(&ctx, &router, &ep).await;
        let peer = hello[0].clone();
        for i in 0..20 {
            // Nothing is coming: the recv arms, waits, and is dropped.
            assert!(timeout(Duration::from_millis(2), dealer.recv())
                .await
                .is_err());
            router
                .send_multipart([&peer[..], format!("m{i}").as_bytes()])
                .expect("send");
            assert!(
                wait_readable(dealer.get_ref(), TIMEOUT),
                "message {i} never read: the connection was left to a dropped recv"
            );
            let m = dealer.get_ref().try_recv().expect("queued");
            assert_eq!(text(&m), format!("m{i}"));
        }
    });
}

/// A connection the task registered with the reactor (for its `recv`)
/// still ends for the peer when the I/O thread closes it, although the
/// adapter holds its descriptor until its next `recv`.
#[test]
fn a_connection_the_task_watched_ends_for_the_peer_when_closed() {
    let ctx = Context::new();
    let router = ctx.socket(SocketType::Router).expect("router");
    let events = router.monitor();
    let ep = router.bind("tcp://127.0.0.1:*").expect("bind");
    runtime().block_on(async {
        let (dealer, hello) = greeted_dealer(&ctx, &router, &ep).await;
        // The recv waits on (and registers) the connection, then times out.
        assert!(timeout(Duration::from_millis(5), dealer.recv())
            .await
            .is_err());
        assert_eq!(hello.len(), 2);
        dealer.get_ref().disconnect(&ep).expect("disconnect");
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let e = events
                .recv_timeout(left)
                .expect("the ROUTER sees the DEALER go");
            if matches!(e.kind, ferrozmq::EventKind::Disconnected { .. }) {
                break;
            }
        }
    });
}

/// An async DEALER connected to `router` at `ep`, and its first message
/// ("hello") as the ROUTER received it: once it is back, the connection is
/// up on both sides.
async fn greeted_dealer(
    ctx: &Context,
    router: &ferrozmq::Socket,
    ep: &str,
) -> (AsyncSocket, Message) {
    let dealer = AsyncSocket::new(ctx.socket(SocketType::Dealer).expect("dealer")).expect("async");
    dealer.get_ref().connect(ep).expect("connect");
    dealer.send("hello").await.expect("send");
    let hello = router.recv_timeout(TIMEOUT).expect("hello");
    (dealer, hello)
}

/// Waits, on this thread, for `socket`'s readiness descriptor to say it
/// has a message, as an event loop would: `poll(2)` on the descriptor and
/// `events()`, nothing else. False if `limit` passes first.
fn wait_readable(socket: &ferrozmq::Socket, limit: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let fd = socket.readiness().expect("readiness");
    let deadline = std::time::Instant::now() + limit;
    loop {
        if socket
            .events()
            .expect("events")
            .contains(ferrozmq::Events::IN)
        {
            return true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, whose descriptor `fd` keeps open.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
    }
}

/// A socket with more connections than a waiting task reads itself
/// (they are left to the I/O thread) still receives from every one.
#[test]
fn an_async_router_hears_seventy_peers() {
    let ctx = Context::new();
    runtime().block_on(async {
        let router =
            AsyncSocket::new(ctx.socket(SocketType::Router).expect("router")).expect("async");
        let ep = router.get_ref().bind("tcp://127.0.0.1:*").expect("bind");
        let dealers: Vec<_> = (0..70)
            .map(|_| {
                let d = ctx.socket(SocketType::Dealer).expect("dealer");
                d.connect(&ep).expect("connect");
                d.send("hi").expect("send");
                d
            })
            .collect();
        for _ in 0..dealers.len() {
            let m = timeout(TIMEOUT, router.recv())
                .await
                .expect("in time")
                .expect("message");
            assert_eq!(m.len(), 2);
            router.send(m).await.expect("echo");
        }
        for d in &dealers {
            let m = d.recv_timeout(TIMEOUT).expect("echo back");
            assert_eq!(text(&m), "hi");
        }
    });
}

/// A `send` cancelled while the socket cannot take the message leaves it
/// in the slot: handed back by `take_unsent`, or sent first by the next
/// operation.
#[test]
fn a_cancelled_send_hands_the_message_back_or_sends_it_first() {
    let ctx = Context::new();
    runtime().block_on(async {
        // No peer: a PUSH cannot send.
        let mut push =
            AsyncSocket::new(ctx.socket(SocketType::Push).expect("push")).expect("async");
        let sent = timeout(Duration::from_millis(50), push.send("kept")).await;
        assert!(sent.is_err(), "cancelled while waiting for a peer");
        assert_eq!(push.take_unsent().map(|m| text(&m)), Some("kept".into()));
        assert_eq!(push.take_unsent(), None);

        let sent = timeout(Duration::from_millis(50), push.send("first")).await;
        assert!(sent.is_err());
        let pull = ctx.socket(SocketType::Pull).expect("pull");
        let ep = pull.bind("tcp://127.0.0.1:*").expect("bind");
        push.get_ref().connect(&ep).expect("connect");
        // The Sink, too: the slot's message goes before this one.
        timeout(TIMEOUT, push.send(Message::from("second")))
            .await
            .expect("in time")
            .expect("sent");
        timeout(TIMEOUT, SinkExt::send(&mut push, Message::from("third")))
            .await
            .expect("in time")
            .expect("sent");
        for want in ["first", "second", "third"] {
            assert_eq!(text(&pull.recv_timeout(TIMEOUT).expect("received")), want);
        }
    });
}

/// The Stream yields received messages, and ends in an error item once
/// the socket is closed from elsewhere.
#[test]
fn the_stream_of_messages_ends_with_the_socket() {
    let ctx = Context::new();
    runtime().block_on(async {
        let mut sub = AsyncSocket::new(ctx.socket(SocketType::Pull).expect("pull")).expect("async");
        let ep = sub.get_ref().bind("tcp://127.0.0.1:*").expect("bind");
        let push = ctx.socket(SocketType::Push).expect("push");
        push.connect(&ep).expect("connect");
        for i in 0..10 {
            push.send(format!("s{i}")).expect("send");
        }
        for i in 0..10 {
            let m = timeout(TIMEOUT, sub.next()).await.expect("in time");
            assert_eq!(
                text(&m.expect("an item").expect("a message")),
                format!("s{i}")
            );
        }
        sub.get_ref().close();
        let end = timeout(TIMEOUT, sub.next()).await.expect("in time");
        assert!(matches!(end, Some(Err(Error::SocketClosed))), "{end:?}");
    });
}

/// The runtime shut down first, then the context; and the context first,
/// then the runtime: neither hangs, and a task waiting in `recv` when the
/// context terminates gets `ContextTerminated`.
#[test]
fn runtime_and_context_shut_down_in_either_order() {
    // Runtime first, with a task parked in recv.
    let ctx = Context::new();
    let rt = runtime();
    let pull = rt.block_on(async {
        AsyncSocket::new(ctx.socket(SocketType::Pull).expect("pull")).expect("async")
    });
    let pull = std::sync::Arc::new(pull);
    let waiting = pull.clone();
    let task = rt.spawn(async move { waiting.recv().await });
    rt.block_on(async { tokio::task::yield_now().await });
    drop(rt);
    drop(task);
    drop(pull);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        ctx.term();
        let _ = done.send(());
    });
    finished
        .recv_timeout(TIMEOUT)
        .expect("context terminated after the runtime");

    // Context first, with a task parked in recv.
    let ctx = Context::new();
    runtime().block_on(async {
        let pull = AsyncSocket::new(ctx.socket(SocketType::Pull).expect("pull")).expect("async");
        let term = {
            let ctx = ctx.clone();
            tokio::task::spawn_blocking(move || ctx.term())
        };
        let r = timeout(TIMEOUT, pull.recv()).await.expect("woken in time");
        assert!(matches!(r, Err(Error::ContextTerminated)), "{r:?}");
        drop(pull);
        timeout(TIMEOUT, term)
            .await
            .expect("term in time")
            .expect("term");
    });
}

/// Outside a runtime, `new` is an error, not a panic.
#[test]
fn new_outside_a_runtime_is_an_error() {
    let ctx = Context::new();
    let r = AsyncSocket::new(ctx.socket(SocketType::Pull).expect("pull"));
    assert!(matches!(r, Err(Error::InvalidState(_))));
}
