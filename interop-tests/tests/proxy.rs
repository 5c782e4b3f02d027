//! `proxy` and `proxy_steerable`: XSUB/XPUB between libzmq peers, a
//! ROUTER/DEALER broker, a PULL/PUSH streamer, capture, pause/resume,
//! statistics, terminate, and a libzmq proxy between our PUB and SUB.
//!
//! No sleeps: the proxy runs on a thread whose result comes back on a
//! channel read with a timeout; subscriptions are waited for by probing
//! (as tests/interop_pubsub.rs does).

mod util;

use crossbeam_channel::Receiver;
use ferrozmq::{proxy, proxy_steerable, Context, Error, Message, ProxyControl, Socket, SocketType};
use std::sync::Arc;
use util::interop::*;
use util::*;

/// A proxy running on its own thread.
struct Running {
    control: ProxyControl,
    done: Receiver<Result<(), Error>>,
}

impl Running {
    /// Runs `proxy_steerable` over the sockets on a new thread.
    fn start(frontend: Arc<Socket>, backend: Arc<Socket>, capture: Option<Arc<Socket>>) -> Running {
        let control = ProxyControl::new();
        let steer = control.clone();
        let (tx, done) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let r = proxy_steerable(&frontend, &backend, capture.as_deref(), &steer);
            let _ = tx.send(r);
        });
        Running { control, done }
    }

    /// Terminates it and checks that it returns `Ok` in time.
    fn stop(self) {
        self.control.terminate();
        let r = self
            .done
            .recv_timeout(TIMEOUT)
            .expect("proxy_steerable returns after terminate");
        assert!(r.is_ok(), "proxy_steerable: {r:?}");
    }
}

/// A message as its frames.
type Frames = Vec<Vec<u8>>;

/// A published sequence and what a subscriber to "A" must see of it.
fn sequence() -> (Vec<Frames>, Vec<Frames>) {
    let all: Vec<Frames> = [
        vec!["A1"],
        vec!["C1"],
        vec!["AB", "two", "frames"],
        vec!["B"],
        vec!["A-end"],
    ]
    .iter()
    .map(|m| frames(m))
    .collect();
    let want = all
        .iter()
        .filter(|m| m[0].starts_with(b"A"))
        .cloned()
        .collect();
    (all, want)
}

#[test]
fn our_xsub_xpub_proxy_between_libzmq_pub_and_sub() {
    check_libzmq_version();
    let zctx = zmq::Context::new();
    let ctx = ctx();
    let lz_pub = lz_socket(&zctx, zmq::PUB);
    let pub_ep = lz_bind(&lz_pub);
    let xsub = Arc::new(our_socket(&ctx, SocketType::XSub));
    xsub.connect(&pub_ep)
        .expect("XSUB connects to the publisher");
    let xpub = Arc::new(our_socket(&ctx, SocketType::XPub));
    let back_ep = bind_local(&xpub);
    let running = Running::start(xsub.clone(), xpub.clone(), None);

    let lz_sub = lz_socket(&zctx, zmq::SUB);
    lz_sub.connect(&back_ep).expect("libzmq SUB connects");
    lz_sub.set_subscribe(b"A").expect("subscribe A");
    sync_subscription(
        "libzmq PUB -> proxy -> libzmq SUB",
        |p| lz_send(&lz_pub, &[p.to_vec()]),
        |t| lz_recv_within(&lz_sub, t).ok(),
        "A",
    );
    let (all, want) = sequence();
    for m in &all {
        lz_send(&lz_pub, m);
    }
    for w in &want {
        assert_frames_eq(&lz_recv(&lz_sub), w, "libzmq SUB through our proxy");
    }
    // The subscription went backend -> frontend as a message: [1, "A"].
    let stats = running.control.stats();
    assert!(
        stats.backend_to_frontend.messages >= 1 && stats.backend_to_frontend.bytes >= 2,
        "{stats:?}"
    );
    assert!(stats.frontend_to_backend.messages >= 5, "{stats:?}");
    running.stop();
}

#[test]
fn libzmq_proxy_between_our_pub_and_sub() {
    check_libzmq_version();
    let mut zctx = zmq::Context::new();
    let (eps_tx, eps_rx) = crossbeam_channel::bounded(1);
    let (end_tx, end_rx) = crossbeam_channel::bounded(1);
    let proxy_ctx = zctx.clone();
    std::thread::spawn(move || {
        let xsub = lz_socket(&proxy_ctx, zmq::XSUB);
        let xpub = lz_socket(&proxy_ctx, zmq::XPUB);
        let _ = eps_tx.send((lz_bind(&xsub), lz_bind(&xpub)));
        // Returns ETERM when the test destroys the context.
        let r = zmq::proxy(&xsub, &xpub);
        drop((xsub, xpub));
        let _ = end_tx.send(r);
    });
    let (front_ep, back_ep) = eps_rx.recv_timeout(TIMEOUT).expect("libzmq proxy bound");

    let ctx = ctx();
    let publisher = our_socket(&ctx, SocketType::Pub);
    publisher
        .connect(&front_ep)
        .expect("PUB connects to libzmq XSUB");
    let sub = our_socket(&ctx, SocketType::Sub);
    sub.connect(&back_ep).expect("SUB connects to libzmq XPUB");
    sub.subscribe("A").expect("subscribe A");
    sync_subscription(
        "our PUB -> libzmq proxy -> our SUB",
        |p| our_send(&publisher, &[p.to_vec()]),
        |t| sub.recv_timeout(t).ok().map(to_vecs),
        "A",
    );
    let (all, want) = sequence();
    for m in &all {
        our_send(&publisher, m);
    }
    for w in &want {
        assert_frames_eq(&our_recv(&sub), w, "our SUB through libzmq's proxy");
    }
    // zmq_ctx_term waits for the proxy thread to close its sockets.
    bounded(TIMEOUT, "libzmq context term", move || {
        zctx.destroy().expect("zmq_ctx_term")
    });
    let r = end_rx.recv_timeout(TIMEOUT).expect("zmq::proxy returned");
    assert_eq!(r, Err(zmq::Error::ETERM));
}

/// A REP worker on its own thread that answers `[name, request...]` until
/// its context is terminated.
fn worker(ctx: &Context, endpoint: &str, name: &'static str) {
    let rep = our_socket(ctx, SocketType::Rep);
    rep.connect(endpoint).expect("worker connects");
    std::thread::spawn(move || loop {
        let Ok(req) = rep.recv() else { return };
        let mut reply = req;
        reply.push_front(name);
        if rep.send(reply).is_err() {
            return;
        }
    });
}

#[test]
fn router_dealer_broker_routes_replies_to_their_clients() {
    let ctx = ctx();
    let router = Arc::new(our_socket(&ctx, SocketType::Router));
    let front_ep = bind_local(&router);
    let dealer = Arc::new(our_socket(&ctx, SocketType::Dealer));
    let back_ep = bind_local(&dealer);
    let running = Running::start(router, dealer, None);
    let workers = ["w0", "w1", "w2"];
    for name in workers {
        worker(&ctx, &back_ep, name);
    }
    let clients: Vec<Socket> = (0..4)
        .map(|_| {
            let c = our_socket(&ctx, SocketType::Req);
            c.connect(&front_ep).expect("client connects");
            c
        })
        .collect();
    const ROUNDS: usize = 5;
    let mut request_bytes = 0;
    for round in 0..ROUNDS {
        for (i, c) in clients.iter().enumerate() {
            let body = format!("client{i}-round{round}");
            request_bytes += body.len() as u64;
            send(c, body.as_str(), "request");
        }
        for (i, c) in clients.iter().enumerate() {
            let reply = recv(c, "reply");
            let s = strs(&reply);
            assert_eq!(s.len(), 2, "{s:?}");
            assert!(workers.contains(&s[0].as_str()), "{s:?}");
            assert_eq!(
                s[1],
                format!("client{i}-round{round}"),
                "reply to the wrong client"
            );
        }
    }
    let n = (ROUNDS * clients.len()) as u64;
    let stats = running.control.stats();
    assert_eq!(stats.frontend_to_backend.messages, n, "{stats:?}");
    assert_eq!(stats.backend_to_frontend.messages, n, "{stats:?}");
    // Each has its routing envelope around the body.
    assert!(stats.frontend_to_backend.bytes > request_bytes, "{stats:?}");
    assert!(stats.backend_to_frontend.bytes > request_bytes, "{stats:?}");
    assert_eq!(stats.capture_dropped, 0);
    running.stop();
    ctx.term();
}

/// A streamer: producer PUSH -> PULL frontend, PUSH backend -> consumer
/// PULL, with `capture` (a PUSH connected to the returned PULL) if asked.
struct Streamer {
    producer: Socket,
    consumer: Socket,
    captured: Option<Socket>,
    running: Running,
}

fn streamer(ctx: &Context, with_capture: bool) -> Streamer {
    let pull = Arc::new(our_socket(ctx, SocketType::Pull));
    let front_ep = bind_local(&pull);
    let consumer = our_socket(ctx, SocketType::Pull);
    let back_ep = bind_local(&consumer);
    let push = Arc::new(our_socket(ctx, SocketType::Push));
    // Connecting makes the pipe at once: nothing waits for a handshake.
    push.connect(&back_ep).expect("backend connects");
    let (capture, captured) = if with_capture {
        let captured = our_socket(ctx, SocketType::Pull);
        let ep = bind_local(&captured);
        let capture = our_socket(ctx, SocketType::Push);
        capture.connect(&ep).expect("capture connects");
        (Some(Arc::new(capture)), Some(captured))
    } else {
        (None, None)
    };
    let producer = our_socket(ctx, SocketType::Push);
    producer.connect(&front_ep).expect("producer connects");
    let running = Running::start(pull, push, capture);
    Streamer {
        producer,
        consumer,
        captured,
        running,
    }
}

#[test]
fn pull_push_streamer_with_capture() {
    let ctx = ctx();
    let s = streamer(&ctx, true);
    let sent: Vec<Message> = (0..50)
        .map(|i| Message::from_frames([format!("job{i}"), "x".repeat(i)]))
        .collect();
    for m in &sent {
        send(&s.producer, m.clone(), "job");
    }
    let captured = s.captured.as_ref().expect("capture socket");
    for m in &sent {
        assert_eq!(&recv(&s.consumer, "forwarded job"), m);
        assert_eq!(&recv(captured, "captured copy"), m);
    }
    let stats = s.running.control.stats();
    assert_eq!(stats.frontend_to_backend.messages, 50);
    let bytes: usize = sent.iter().map(Message::byte_len).sum();
    assert_eq!(stats.frontend_to_backend.bytes, bytes as u64);
    assert_eq!(stats.backend_to_frontend.messages, 0, "PUSH is never read");
    assert_eq!(stats.capture_dropped, 0);
    s.running.stop();
}

#[test]
fn pause_holds_messages_until_resume() {
    let ctx = ctx();
    let s = streamer(&ctx, false);
    send(&s.producer, "before", "before");
    assert_eq!(strs(&recv(&s.consumer, "before")), ["before"]);
    s.running.control.pause();
    send(&s.producer, "while paused", "while paused");
    match s.consumer.recv_timeout(SHORT) {
        Err(Error::TimedOut) => {}
        other => panic!("forwarded while paused: {other:?}"),
    }
    assert_eq!(s.running.control.stats().frontend_to_backend.messages, 1);
    s.running.control.resume();
    send(&s.producer, "marker", "marker");
    assert_eq!(strs(&recv(&s.consumer, "after resume")), ["while paused"]);
    assert_eq!(strs(&recv(&s.consumer, "marker")), ["marker"]);
    let stats = s.running.control.stats();
    assert_eq!(stats.frontend_to_backend.messages, 3);
    assert_eq!(
        stats.frontend_to_backend.bytes,
        ("before".len() + "while paused".len() + "marker".len()) as u64
    );
    s.running.stop();
}

#[test]
fn terminate_ends_an_idle_and_a_paused_proxy() {
    let ctx = ctx();
    let idle = streamer(&ctx, false);
    // Terminate from another thread while the proxy sleeps in its poll.
    let control = idle.running.control.clone();
    std::thread::spawn(move || control.terminate());
    let r = idle.running.done.recv_timeout(TIMEOUT).expect("returns");
    assert!(r.is_ok(), "{r:?}");

    let paused = streamer(&ctx, false);
    paused.running.control.pause();
    paused.running.stop();

    // Terminated before it starts: returns at once.
    let control = ProxyControl::new();
    control.terminate();
    control.resume();
    let a = our_socket(&ctx, SocketType::Pull);
    let b = our_socket(&ctx, SocketType::Push);
    assert!(proxy_steerable(&a, &b, None, &control).is_ok());
}

#[test]
fn plain_proxy_returns_the_terminal_error() {
    let ctx = ctx();
    let front = Arc::new(our_socket(&ctx, SocketType::Router));
    let back = Arc::new(our_socket(&ctx, SocketType::Dealer));
    let (f, b) = (front.clone(), back.clone());
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(proxy(&f, &b, None));
    });
    front.close();
    match rx.recv_timeout(TIMEOUT).expect("proxy returns on close") {
        Err(Error::SocketClosed) => {}
        other => panic!("{other:?}"),
    }

    // Context termination, while paused too.
    let ctx2 = util::ctx();
    let s = streamer(&ctx2, false);
    s.running.control.pause();
    ctx2.term();
    match s
        .running
        .done
        .recv_timeout(TIMEOUT)
        .expect("returns on term")
    {
        Err(Error::ContextTerminated) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_destination_that_cannot_take_it_yet_holds_the_message() {
    let ctx = ctx();
    let pull = Arc::new(our_socket(&ctx, SocketType::Pull));
    let front_ep = bind_local(&pull);
    // A bound PUSH with no peer yet: every try_send would block.
    let push = Arc::new(our_socket(&ctx, SocketType::Push));
    let back_ep = bind_local(&push);
    let running = Running::start(pull, push, None);
    let producer = our_socket(&ctx, SocketType::Push);
    producer.connect(&front_ep).expect("producer connects");
    for i in 0..5 {
        send(&producer, format!("m{i}").as_str(), "job");
    }
    // Connected only now: the proxy held the first message, waiting for
    // the backend to become writable, and dropped none.
    let consumer = our_socket(&ctx, SocketType::Pull);
    consumer.connect(&back_ep).expect("consumer connects");
    for i in 0..5 {
        assert_eq!(strs(&recv(&consumer, "held job")), [format!("m{i}")]);
    }
    assert_eq!(running.control.stats().frontend_to_backend.messages, 5);
    running.stop();
}
