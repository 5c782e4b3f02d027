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
    dealer.set_sndhwm(0); // unlimited: queue everything at once
    dealer.set_linger(Some(TIMEOUT));
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
    dealer.set_sndhwm(0);
    dealer.set_linger(Some(TIMEOUT));
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
    dealer.set_linger(Some(TIMEOUT));
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
    dealer.set_linger(Some(Duration::ZERO));
    dealer.set_sndhwm(0);
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
    dealer.set_linger(Some(TIMEOUT));
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
