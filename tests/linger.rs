//! Linger: messages queued when a socket (or its context) is closed are
//! still delivered, up to `linger`.

mod util;

use ferrozmq::{Error, EventKind, Message, Socket, SocketType};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;
use util::*;

const COUNT: usize = 10_000;

fn queue_all(dealer: &Socket) {
    for i in 0..COUNT {
        if let Err(e) = dealer.try_send(Message::from_frames([
            b"seq".to_vec(),
            (i as u32).to_be_bytes().to_vec(),
        ])) {
            panic!("message {i} not queued: {:?}", e.error);
        }
    }
}

fn receive_all(router: &Socket, id: &str) {
    for i in 0..COUNT {
        let m = match router.recv_timeout(TIMEOUT) {
            Ok(m) => m,
            Err(e) => panic!("only {i} of {COUNT} messages arrived: {e:?}"),
        };
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(&m.frames()[0][..], id.as_bytes());
        assert_eq!(&m.frames()[1][..], b"seq");
        assert_eq!(&m.frames()[2][..], &(i as u32).to_be_bytes(), "order");
    }
    assert!(matches!(router.recv_timeout(SHORT), Err(Error::TimedOut)));
}

#[test]
fn dropped_dealer_delivers_all_queued_messages() {
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);

    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("lingerer").expect("routing id");
    dealer.set_sndhwm(0).unwrap(); // unlimited: queue everything at once
    dealer.set_linger(Some(TIMEOUT)).unwrap();
    dealer.connect(&ep).expect("connect");
    queue_all(&dealer);
    drop(dealer); // immediately: most messages are still queued

    receive_all(&router, "lingerer");
}

#[test]
fn dropped_dealer_and_context_deliver_all_queued_messages() {
    // Harder: the DEALER's whole context goes away right after the sends,
    // so termination itself has to linger.
    let server_ctx = ctx();
    let router = socket(&server_ctx, SocketType::Router);
    let ep = bind_local(&router);

    let client_ctx = ctx();
    let dealer = socket(&client_ctx, SocketType::Dealer);
    dealer.set_routing_id("lingerer").expect("routing id");
    dealer.set_sndhwm(0).unwrap();
    dealer.set_linger(Some(TIMEOUT)).unwrap();
    dealer.connect(&ep).expect("connect");
    queue_all(&dealer);

    // The router reads concurrently, because termination waits for the
    // messages to be written and the router's HWM pushes back.
    let reader = std::thread::spawn(move || {
        receive_all(&router, "lingerer");
        router
    });
    bounded(TIMEOUT * 2, "close with linger", move || {
        drop(dealer);
        drop(client_ctx);
    });
    bounded(TIMEOUT * 2, "reader", move || reader.join()).expect("all messages arrived");
}

#[test]
fn dropped_dealer_with_default_hwm_after_handshake() {
    // With the default HWM the sender blocks at the HWM while the router
    // drains; the last HWM's worth is still queued at drop time.
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("lingerer").expect("routing id");
    dealer.set_linger(Some(TIMEOUT)).unwrap();
    let mon = dealer.monitor();
    dealer.connect(&ep).expect("connect");
    wait_handshakes(&mon, 1);

    let reader = std::thread::spawn(move || {
        receive_all(&router, "lingerer");
    });
    for i in 0..COUNT {
        let m = Message::from_frames([b"seq".to_vec(), (i as u32).to_be_bytes().to_vec()]);
        if let Err(e) = dealer.send_timeout(m, TIMEOUT) {
            panic!("message {i} not sent: {:?}", e.error);
        }
    }
    drop(dealer);
    bounded(TIMEOUT * 2, "reader", move || reader.join()).expect("all messages arrived");
}

#[test]
fn linger_zero_discards_and_closes_at_once() {
    // The opposite: linger 0 towards a peer that never appears must not
    // hold up the context.
    let ctx = ctx();
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_linger(Some(Duration::ZERO)).unwrap();
    dealer.set_sndhwm(0).unwrap();
    dealer.connect(&free_endpoint()).expect("connect");
    queue_all(&dealer);
    drop(dealer);
    bounded(SHORT * 10, "context drop with linger 0", move || drop(ctx));
}

/// A TCP relay to `target` that accepts one connection but forwards
/// nothing until released: it holds a ZMTP handshake in the middle.
struct GatedRelay {
    endpoint: String,
    accepted: crossbeam_channel::Receiver<()>,
    go: crossbeam_channel::Sender<()>,
}

impl GatedRelay {
    fn start(target: u16) -> GatedRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay bind");
        let endpoint = format!("tcp://{}", listener.local_addr().expect("addr"));
        let (accepted_tx, accepted) = crossbeam_channel::bounded(1);
        let (go, go_rx) = crossbeam_channel::bounded::<()>(1);
        std::thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let _ = accepted_tx.send(());
            if go_rx.recv_timeout(TIMEOUT).is_err() {
                return;
            }
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            // Reads are bounded so the pump threads always end.
            for s in [&client, &server] {
                let _ = s.set_read_timeout(Some(TIMEOUT * 3));
            }
            let pump = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Write);
                })
            };
            let (c2, s2) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            pump(client, server);
            pump(s2, c2);
        });
        GatedRelay {
            endpoint,
            accepted,
            go,
        }
    }
}

#[test]
fn closed_mid_handshake_still_delivers_queued_messages() {
    const N: usize = 100;
    let ctx = ctx();
    let router = socket(&ctx, SocketType::Router);
    let ep = bind_local(&router);
    let relay = GatedRelay::start(port_of(&ep));

    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("mid").expect("routing id");
    dealer.set_linger(Some(TIMEOUT)).unwrap();
    let mon = dealer.monitor();
    dealer.connect(&relay.endpoint).expect("connect");
    // TCP is up, but the handshake cannot finish while the relay is shut.
    wait_event(&mon, TIMEOUT, |e| matches!(e.kind, EventKind::Connected));
    relay
        .accepted
        .recv_timeout(TIMEOUT)
        .expect("relay accepted");
    for i in 0..N {
        dealer.try_send(format!("m{i}")).expect("queued");
    }
    drop(dealer);
    // Barrier: the I/O thread handles commands in order, so once a bind on
    // another socket of this context returns, the close has been handled.
    let barrier = socket(&ctx, SocketType::Pull);
    bind_local(&barrier);

    relay.go.send(()).expect("release the relay");
    for i in 0..N {
        let m = router
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("only {i} of {N} messages arrived: {e:?}"));
        assert_eq!(strs(&m), ["mid".to_string(), format!("m{i}")]);
    }
}

/// Warnings logged by the library, for the tests that check one.
mod logs {
    use std::sync::{Mutex, Once};

    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                let line = format!("{} {}", r.level(), r.args());
                LINES.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;

    /// Starts capturing (once per test binary).
    pub fn capture() {
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            log::set_logger(&CAPTURE).expect("no other logger in this test binary");
            log::set_max_level(log::LevelFilter::Warn);
        });
    }

    /// The lines captured so far that contain `needle`.
    pub fn matching(needle: &str) -> Vec<String> {
        let lines = LINES.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

/// The reproduction: a PUSH queues 4,000 messages of 64 KiB for
/// a PULL that reads nothing while the PUSH lingers, then closes. The
/// messages linger cannot write are counted in `stats()`, reported by
/// `close().wait()` (per peer) and logged; and the PULL receives exactly
/// the others, in order.
#[test]
fn linger_drops_are_counted_reported_and_logged() {
    const N: u32 = 4_000;
    logs::capture();
    let ctx = ctx();
    let pull = socket(&ctx, SocketType::Pull);
    pull.set_rcvhwm(16).unwrap();
    let ep = bind_local(&pull);
    let pull_monitor = pull.monitor();

    let push = socket(&ctx, SocketType::Push);
    push.set_sndhwm(0).unwrap();
    push.set_linger(Some(Duration::from_millis(300))).unwrap();
    let monitor = push.monitor();
    push.connect(&ep).expect("connect");
    wait_handshakes(&monitor, 1);
    let body = bytes::Bytes::from(vec![7u8; 64 * 1024]);
    for i in 0..N {
        let m = Message::from_frames([
            bytes::Bytes::copy_from_slice(&i.to_be_bytes()),
            body.clone(),
        ]);
        if let Err(e) = push.try_send(m) {
            panic!("message {i} not queued: {:?}", e.error);
        }
    }
    let report = push
        .close()
        .wait_timeout(TIMEOUT)
        .expect("linger is over within its 300 ms");
    assert!(report.dropped_linger > 0, "{report:?}");
    assert_eq!(report.dropped_peer_gone, 0, "{report:?}");
    assert_eq!(push.stats().dropped_linger, report.dropped_linger);
    assert_eq!(report.peers.len(), 1, "{report:?}");
    assert_eq!(report.peers[0].endpoint, ep);
    assert_eq!(report.peers[0].dropped_linger, report.dropped_linger);
    // Closing again hands out the same report.
    assert_eq!(push.close().try_report(), Some(report.clone()));
    let warned = logs::matching(&ep);
    assert!(
        warned.iter().any(|l| l.starts_with("WARN")
            && l.contains("PUSH")
            && l.contains(&format!("{} messages", report.dropped_linger))),
        "{warned:?}"
    );

    // Everything else arrives, in order, and nothing more: the PULL hears
    // of the disconnection only once every message sent before it is in
    // its pipe.
    let want = N as u64 - report.dropped_linger;
    let mut got = 0u64;
    loop {
        match pull.recv_timeout(TIMEOUT) {
            Ok(m) => {
                assert_eq!(&m.frames()[0][..], &(got as u32).to_be_bytes(), "order");
                got += 1;
            }
            Err(e) => panic!("{got} of {want} messages arrived: {e:?}"),
        }
        if got == want {
            break;
        }
    }
    wait_event(&pull_monitor, TIMEOUT, |e| {
        matches!(e.kind, EventKind::Disconnected { .. })
    });
    eprintln!("linger report: {report:?}");
    assert!(
        matches!(pull.try_recv(), Err(Error::WouldBlock)),
        "more than {want} messages arrived"
    );
}

/// Messages queued for an endpoint that comes up only after the close are
/// delivered while lingering, and the report says so.
#[test]
fn close_report_counts_messages_delivered_while_lingering() {
    let ctx = ctx();
    let ep = free_endpoint();
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_routing_id("late").expect("routing id");
    dealer.set_linger(Some(TIMEOUT)).unwrap();
    dealer
        .set_reconnect_ivl(Some(Duration::from_millis(20)))
        .unwrap();
    dealer.connect(&ep).expect("connect");
    for i in 0..100u32 {
        send(
            &dealer,
            Message::from_frames([b"seq".to_vec(), i.to_be_bytes().to_vec()]),
            "queue",
        );
    }
    let closing = dealer.close();
    drop(dealer);
    assert_eq!(closing.try_report(), None, "still lingering");
    let router = socket(&ctx, SocketType::Router);
    router
        .bind(&ep)
        .expect("bind the endpoint the dealer waits for");
    let report = closing.wait_timeout(TIMEOUT * 2).expect("linger over");
    assert_eq!((report.delivered, report.dropped()), (100, 0), "{report:?}");
    assert_eq!(report.peers.len(), 1);
    assert_eq!(report.peers[0].endpoint, ep);
    for i in 0..100u32 {
        let m = recv(&router, "router");
        assert_eq!(&m.frames()[2][..], &i.to_be_bytes());
    }
}

/// `Context::term` returns the sum of its sockets' reports, including
/// sockets dropped earlier and sockets that never connected.
#[test]
fn context_term_sums_the_close_reports() {
    let ctx = ctx();
    let idle = socket(&ctx, SocketType::Dealer);
    let idle_report = idle.close();
    assert_eq!(
        idle_report.wait_timeout(TIMEOUT),
        Some(ferrozmq::CloseReport::default()),
        "a socket that never connected had nothing queued"
    );
    let mut endpoints = Vec::new();
    for n in [3, 5] {
        let push = socket(&ctx, SocketType::Push);
        push.set_linger(Some(Duration::from_millis(50))).unwrap();
        let ep = free_endpoint();
        push.connect(&ep).expect("connect");
        for i in 0..n {
            send(&push, format!("m{i}"), "queue");
        }
        endpoints.push(ep);
        drop(push);
    }
    // Still open at termination: closed by it, and its handle answers.
    let open = socket(&ctx, SocketType::Push);
    open.set_linger(Some(Duration::from_millis(50))).unwrap();
    open.connect(&free_endpoint()).expect("connect");
    send(&open, "last", "queue");
    let report = bounded(TIMEOUT, "term", move || ctx.term());
    assert_eq!(report.dropped_linger, 9, "{report:?}");
    assert_eq!(report.delivered, 0);
    assert_eq!(report.peers.len(), 3);
    for ep in &endpoints {
        assert!(
            report.peers.iter().any(|p| &p.endpoint == ep),
            "{ep}: {report:?}"
        );
    }
    let own = open.close().wait_timeout(TIMEOUT).expect("closed by term");
    assert_eq!(own.dropped_linger, 1);
    assert_eq!(open.stats().dropped_linger, 1);
}
