//! Connect-before-bind and recovering from a server restart (Lazy Pirate).

mod util;

use ferrozmq::{Context, Error, EventKind, Socket, SocketType};
use std::time::Duration;
use util::*;

/// How long a Lazy Pirate client waits for a reply before giving up on
/// its socket. Short enough to keep the suite fast.
const LAZY: Duration = Duration::from_millis(1500);

/// The server's late bind of a port that was free when the client
/// connected. Another process may have taken the port meanwhile (it is in
/// the ephemeral range); then the attempt is repeated on a fresh port.
fn late_bind(s: &Socket, ep: &str) -> bool {
    // Simulates a server that starts later.
    std::thread::sleep(Duration::from_millis(300));
    match s.bind(ep) {
        Ok(bound) => {
            assert_eq!(bound, ep);
            true
        }
        Err(Error::AddressInUse(_)) => {
            eprintln!("{ep} was taken by someone else meanwhile; retrying");
            false
        }
        Err(e) => panic!("bind {ep}: {e:?}"),
    }
}

const ATTEMPTS: usize = 3;

#[test]
fn connect_before_bind() {
    for _ in 0..ATTEMPTS {
        let ctx = ctx();
        let ep = free_endpoint();
        let req = socket(&ctx, SocketType::Req);
        req.set_linger(Some(Duration::ZERO)).unwrap();
        req.connect(&ep)
            .expect("connect to a port nobody listens on yet");
        // The request waits in the connecter's pipe.
        req.try_send("early bird")
            .expect("queued before the server exists");
        let (tx, client) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let _ = tx.send(req.recv_timeout(TIMEOUT).map(|m| strs(&m)));
        });

        let rep = socket(&ctx, SocketType::Rep);
        if !late_bind(&rep, &ep) {
            continue; // dropping the context wakes the client thread
        }
        assert_eq!(strs(&recv(&rep, "server")), ["early bird"]);
        send(&rep, "late reply", "server");
        let reply = client
            .recv_timeout(TIMEOUT * 2)
            .expect("client thread finished")
            .expect("reply");
        assert_eq!(reply, ["late reply"]);
        return;
    }
    panic!("the port was stolen {ATTEMPTS} times in a row");
}

#[test]
fn connect_before_bind_dealer_router() {
    for _ in 0..ATTEMPTS {
        let ctx = ctx();
        let ep = free_endpoint();
        let dealer = socket(&ctx, SocketType::Dealer);
        dealer.set_linger(Some(Duration::ZERO)).unwrap();
        dealer.set_routing_id("early").expect("routing id");
        dealer.connect(&ep).expect("connect");
        for i in 0..5 {
            dealer.try_send(format!("m{i}")).expect("queued");
        }
        let router = socket(&ctx, SocketType::Router);
        if !late_bind(&router, &ep) {
            continue;
        }
        for i in 0..5 {
            assert_eq!(
                strs(&recv(&router, "router")),
                ["early".to_string(), format!("m{i}")]
            );
        }
        return;
    }
    panic!("the port was stolen {ATTEMPTS} times in a row");
}

fn new_client(ctx: &Context, ep: &str) -> Socket {
    let req = socket(ctx, SocketType::Req);
    req.set_linger(Some(Duration::ZERO)).unwrap();
    req.connect(ep).expect("connect");
    req
}

#[test]
fn server_restart_on_same_port_lazy_pirate() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_linger(Some(Duration::ZERO)).unwrap();
    let ep = bind_local(&rep);
    let server = RepServer::serve(rep, ep.clone(), "first");

    let mut req = new_client(&ctx, &ep);
    let mon = req.monitor();
    assert_eq!(strs(&round_trip(&req, "one")), ["first", "one"]);

    // The server goes away (its REP socket is dropped with linger 0)...
    assert_eq!(server.stop(), 1);
    wait_event(&mon, TIMEOUT, |e| {
        matches!(e.kind, EventKind::Disconnected { .. })
    });
    // ...and a new one comes up on the same endpoint.
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(rep.bind(&ep).expect("rebind the same port"), ep);
    let server = RepServer::serve(rep, ep.clone(), "second");

    // Lazy Pirate: try on the old socket; if no reply comes in time,
    // throw the socket away and retry on a fresh one.
    req.send_timeout("two", TIMEOUT).expect("send");
    let reply = match req.recv_timeout(LAZY) {
        Ok(reply) => reply,
        // Any failure: a timeout, or a REQ that reports the lost peer.
        Err(Error::TimedOut | Error::PeerLost { .. }) => {
            drop(req);
            req = new_client(&ctx, &ep);
            round_trip(&req, "two")
        }
        Err(e) => panic!("unexpected error: {e:?}"),
    };
    assert_eq!(strs(&reply), ["second", "two"]);
    // The client, whichever socket it ended up with, keeps working.
    assert_eq!(strs(&round_trip(&req, "three")), ["second", "three"]);
    assert!(server.stop() >= 2);
}

#[test]
fn server_dies_mid_request_client_recovers() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_linger(Some(Duration::ZERO)).unwrap();
    let ep = bind_local(&rep);

    let mut req = new_client(&ctx, &ep);
    send(&req, "doomed", "request");
    assert_eq!(strs(&recv(&rep, "server")), ["doomed"]);
    // The server crashes before answering.
    drop(rep);

    // No reply can come: the request's peer is gone for good. Depending
    // on the REQ's reliability semantics the wait either times out
    // (libzmq) or reports the lost peer; either way no reply arrives.
    match req.recv_timeout(LAZY) {
        Err(Error::TimedOut) => {}
        Err(Error::PeerLost { endpoint }) => assert!(!endpoint.is_empty()),
        other => panic!("expected TimedOut or PeerLost, got {other:?}"),
    }

    // A new server on the same endpoint; the client drops its socket,
    // opens a new one and resends.
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_linger(Some(Duration::ZERO)).unwrap();
    rep.bind(&ep).expect("rebind the same port");
    let server = RepServer::serve(rep, ep.clone(), "restarted");
    drop(req);
    req = new_client(&ctx, &ep);
    assert_eq!(strs(&round_trip(&req, "doomed")), ["restarted", "doomed"]);
    assert_eq!(server.stop(), 1);
}

#[test]
fn reconnect_disabled_stays_disconnected() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_linger(Some(Duration::ZERO)).unwrap();
    let ep = bind_local(&rep);
    let req = socket(&ctx, SocketType::Req);
    req.set_linger(Some(Duration::ZERO)).unwrap();
    req.set_reconnect_ivl(None).unwrap();
    let mon = req.monitor();
    req.connect(&ep).expect("connect");
    send(&req, "a", "request");
    recv(&rep, "server");
    send(&rep, "b", "reply");
    recv(&req, "client");
    drop(rep);
    wait_event(&mon, TIMEOUT, |e| {
        matches!(e.kind, EventKind::Disconnected { .. })
    });

    // A server comes back, but the client does not reconnect.
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_linger(Some(Duration::ZERO)).unwrap();
    rep.bind(&ep).expect("rebind");
    send(&req, "c", "request queued");
    assert!(matches!(rep.recv_timeout(SHORT), Err(Error::TimedOut)));
    while let Ok(ev) = mon.try_recv() {
        assert!(
            !matches!(
                ev.kind,
                EventKind::ConnectRetried { .. } | EventKind::HandshakeSucceeded
            ),
            "reconnected although reconnect_ivl is None: {ev:?}"
        );
    }
}
