//! Stress for the borrow fast path (`io/direct.rs`): application threads
//! and the I/O thread both read and write the same connections. Any lost
//! hand-off shows up here as a receive that times out.

use ferrozmq::{Context, Message, SocketType};
use std::sync::{Arc, Barrier};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn many_req_clients_against_one_router_never_stall() {
    const CLIENTS: usize = 24;
    const ROUNDS: usize = 300;
    let ctx = Context::new();
    let router = ctx.socket(SocketType::Router).expect("router");
    let ep = router.bind("tcp://127.0.0.1:*").expect("bind");
    let server = std::thread::spawn(move || {
        for _ in 0..CLIENTS * ROUNDS {
            let m = router
                .recv_timeout(LIMIT)
                .expect("request within the limit");
            router.send(m).expect("reply");
        }
    });
    let client_ctx = Context::new();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (ctx, ep, barrier) = (client_ctx.clone(), ep.clone(), barrier.clone());
            std::thread::spawn(move || {
                let req = ctx.socket(SocketType::Req).expect("req");
                req.connect(&ep).expect("connect");
                barrier.wait();
                for i in 0..ROUNDS {
                    let body = format!("{c}:{i}");
                    req.send_timeout(body.as_str(), LIMIT).expect("send");
                    let reply = req.recv_timeout(LIMIT).expect("reply within the limit");
                    assert_eq!(reply, Message::from(body));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    server.join().expect("server thread");
}

#[test]
fn ping_pong_in_both_directions_keeps_order() {
    let ctx = Context::new();
    let a = ctx.socket(SocketType::Dealer).expect("dealer");
    let b = ctx.socket(SocketType::Dealer).expect("dealer");
    let ep = a.bind("tcp://127.0.0.1:*").expect("bind");
    b.connect(&ep).expect("connect");
    let echo = std::thread::spawn(move || {
        for _ in 0..5000 {
            let m = a.recv_timeout(LIMIT).expect("ping");
            a.send(m).expect("pong");
        }
    });
    // Bursts of several messages in flight, so that both the direct path
    // and the I/O thread's batched path carry traffic.
    for burst in 0..1000u32 {
        for k in 0..5u32 {
            b.send(format!("{burst}-{k}")).expect("send");
        }
        for k in 0..5u32 {
            let m = b.recv_timeout(LIMIT).expect("echo within the limit");
            assert_eq!(m, Message::from(format!("{burst}-{k}")));
        }
    }
    echo.join().expect("echo thread");
}

#[test]
fn stream_with_a_slow_then_fast_receiver_loses_nothing() {
    const N: u32 = 100_000;
    let ctx = Context::new();
    let pull = ctx.socket(SocketType::Pull).expect("pull");
    let ep = pull.bind("tcp://127.0.0.1:*").expect("bind");
    let push_ctx = Context::new();
    let push = push_ctx.socket(SocketType::Push).expect("push");
    push.connect(&ep).expect("connect");
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            push.send_timeout(i.to_be_bytes().to_vec(), LIMIT)
                .expect("send");
        }
        push
    });
    for i in 0..N {
        if i % 20_000 == 0 {
            // Let the HWM fill, so reading pauses and resumes.
            std::thread::sleep(Duration::from_millis(20));
        }
        let m = pull.recv_timeout(LIMIT).expect("message within the limit");
        assert_eq!(
            m.first().map(|f| f.to_vec()),
            Some(i.to_be_bytes().to_vec())
        );
    }
    drop(sender.join().expect("sender"));
}

#[test]
fn two_threads_receiving_on_one_socket_share_the_messages() {
    const N: usize = 4000;
    let ctx = Context::new();
    let pull = Arc::new(ctx.socket(SocketType::Pull).expect("pull"));
    let ep = pull.bind("tcp://127.0.0.1:*").expect("bind");
    let push = ctx.socket(SocketType::Push).expect("push");
    push.connect(&ep).expect("connect");
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let pull = pull.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(m) = pull.recv_timeout(Duration::from_millis(1500)) {
                    got.push(m);
                }
                got
            })
        })
        .collect();
    for i in 0..N {
        push.send(format!("{i}")).expect("send");
        if i % 100 == 0 {
            std::thread::yield_now();
        }
    }
    let total: usize = readers
        .into_iter()
        .map(|r| r.join().expect("reader").len())
        .sum();
    assert_eq!(total, N, "every message read exactly once");
}

#[test]
fn a_connection_left_by_its_reader_is_watched_again() {
    // While a thread is blocked in `recv`, the I/O thread stops watching
    // the connection's bytes. When the application stops reading, the I/O
    // thread must take it back: here, to notice that the peer went away,
    // and to queue what the peer sent before it left.
    let ctx = Context::new();
    let server = ctx.socket(SocketType::Dealer).expect("dealer");
    let ep = server.bind("tcp://127.0.0.1:*").expect("bind");
    let client = ctx.socket(SocketType::Dealer).expect("dealer");
    let events = client.monitor();
    client.connect(&ep).expect("connect");
    client.send("hello").expect("send");
    server.recv_timeout(LIMIT).expect("hello");
    // Paced so that they arrive while the client is blocked in `recv`:
    // the situation in which reading is handed over.
    let pacer = std::thread::spawn(move || {
        for i in 0..20u8 {
            std::thread::sleep(Duration::from_millis(5));
            server.send(vec![i]).expect("send");
        }
        server.send("last words").expect("send");
        server
    });
    for i in 0..20u8 {
        let m = client.recv_timeout(LIMIT).expect("paced message");
        assert_eq!(m, Message::from(vec![i]));
    }
    // The client now reads nothing; the server says its last words and
    // goes away.
    let server = pacer.join().expect("pacer");
    drop(server);
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ev = events
            .recv_timeout(left)
            .expect("the disconnect is noticed although nobody reads");
        if matches!(ev.kind, ferrozmq::EventKind::Disconnected { .. }) {
            break;
        }
    }
    assert_eq!(
        client.try_recv().expect("queued by the I/O thread"),
        Message::from("last words")
    );
}
