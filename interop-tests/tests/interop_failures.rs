//! Failure handling against libzmq 4.3.4: incompatible socket types,
//! connecting before the peer binds, and a REP that restarts on the same
//! port (Lazy Pirate).

mod util;

use ferrozmq::{Context, Error, EventKind, MonitorEvent, ProtocolError, Socket, SocketType};
use std::thread;
use std::time::{Duration, Instant};
use util::interop::*;
use util::*;

// ----- incompatible socket types -----

/// Waits for a monitor event that ends a connection with a protocol
/// reason (a failed handshake, or a disconnect caused by a protocol
/// error) and returns that reason. Panics with the events seen if none
/// arrives within [`TIMEOUT`].
fn wait_protocol_failure(mon: &crossbeam_channel::Receiver<MonitorEvent>) -> ProtocolError {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(ev) = mon.recv_timeout(left) else {
            panic!("no protocol failure within {TIMEOUT:?}; events: {seen:#?}");
        };
        match ev.kind {
            EventKind::HandshakeFailed { reason }
            | EventKind::Disconnected {
                reason: Some(reason),
                ..
            } => {
                eprintln!("refused: {reason} (after {seen:?})");
                return reason;
            }
            EventKind::HandshakeSucceeded => {
                panic!("an incompatible peer passed the handshake: {seen:#?}")
            }
            _ => seen.push(ev),
        }
    }
}

/// The reason must say the socket types do not match: either we found
/// the peer's type incompatible, or the peer told us so in ERROR.
#[track_caller]
fn assert_socket_type_reason(reason: &ProtocolError, ours: &str, peer: &str) {
    match reason {
        ProtocolError::IncompatibleSocketType { ours: o, peer: p } => {
            assert_eq!((*o, p.as_str()), (ours, peer), "{reason}");
        }
        ProtocolError::PeerError(why) => {
            assert!(why.to_lowercase().contains("socket type"), "{reason}")
        }
        other => panic!("expected a socket-type mismatch, got {other:?} ({other})"),
    }
}

/// libzmq's side of a refused handshake: the connection ends without
/// ever passing the handshake. (libzmq 4.3.4 reports a socket-type
/// mismatch as a bare `DISCONNECTED`: its `parse_metadata` fails without
/// emitting `HANDSHAKE_FAILED_PROTOCOL`. A `HANDSHAKE_FAILED_*` event is
/// accepted too.)
fn lz_refused_us(lz_mon: &zmq::Socket) {
    let mut seen = Vec::new();
    loop {
        let (event, value) = lz_next_event(lz_mon)
            .unwrap_or_else(|| panic!("libzmq monitor: no disconnect; saw {seen:?}"));
        match event {
            zmq::SocketEvent::HANDSHAKE_SUCCEEDED => {
                panic!("libzmq accepted an incompatible peer; saw {seen:?}")
            }
            zmq::SocketEvent::DISCONNECTED
            | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL
            | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL => {
                eprintln!("libzmq: {event:?} ({value:#x}) after {seen:?}");
                return;
            }
            _ => seen.push((event, value)),
        }
    }
}

/// Sends a request from one of our REQs; if the send goes through at all
/// (a connecting socket queues it), no reply may come.
fn our_request_gets_no_reply(req: &Socket) {
    match req.send_timeout("anyone there?", SHORT) {
        Ok(()) => {
            let r = req.recv_timeout(SHORT);
            assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
        }
        Err(e) => assert!(matches!(e.error, Error::TimedOut), "{e}"),
    }
}

fn lz_request_gets_no_reply(req: &zmq::Socket) {
    req.set_sndtimeo(ms(SHORT)).unwrap();
    match req.send("anyone there?", 0) {
        Ok(()) => assert_eq!(lz_recv_within(req, SHORT), Err(zmq::Error::EAGAIN)),
        Err(e) => assert_eq!(e, zmq::Error::EAGAIN),
    }
}

/// Our bound REQ still works after refusing an incompatible peer: a
/// compatible libzmq REP that connects to `ep` gets through.
fn our_req_still_works(req: &Socket, ep: &str, zctx: &zmq::Context) {
    let rep = lz_socket(zctx, zmq::REP);
    rep.connect(ep).unwrap();
    our_send(req, &frames(&["after"]));
    let got = lz_recv(&rep);
    assert_frames_eq(&got, &frames(&["after"]), "compatible REP reached");
    lz_send(&rep, &frames(&["fine"]));
    assert_frames_eq(&our_recv(req), &frames(&["fine"]), "reply");
}

#[test]
fn our_req_binds_libzmq_req_connects_handshake_fails() {
    check_libzmq_version();
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let ours = our_socket(&ctx, SocketType::Req);
    let mon = ours.monitor();
    let ep = bind_local(&ours);
    let theirs = lz_socket(&zctx, zmq::REQ);
    let lz_mon = lz_monitor(&zctx, &theirs);
    theirs.connect(&ep).unwrap();

    let reason = wait_protocol_failure(&mon);
    assert_socket_type_reason(&reason, "REQ", "REQ");
    lz_refused_us(&lz_mon);
    lz_request_gets_no_reply(&theirs);
    our_request_gets_no_reply(&ours);
    // Nothing crashed: our socket still serves a compatible peer.
    our_req_still_works(&ours, &ep, &zctx);
}

#[test]
fn libzmq_req_binds_our_req_connects_handshake_fails() {
    check_libzmq_version();
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let theirs = lz_socket(&zctx, zmq::REQ);
    let lz_mon = lz_monitor(&zctx, &theirs);
    let ep = lz_bind(&theirs);
    let ours = our_socket(&ctx, SocketType::Req);
    let mon = ours.monitor();
    ours.connect(&ep).unwrap();

    let reason = wait_protocol_failure(&mon);
    assert_socket_type_reason(&reason, "REQ", "REQ");
    lz_refused_us(&lz_mon);
    lz_request_gets_no_reply(&theirs);
    // Our request is queued for the (never ready) peer and goes nowhere.
    our_request_gets_no_reply(&ours);
    // libzmq keeps refusing each reconnect; our monitor keeps saying why.
    let again = wait_protocol_failure(&mon);
    assert_socket_type_reason(&again, "REQ", "REQ");
}

/// More incompatible pairs (RFC 28's matrix), each way round: every
/// handshake is refused, with a socket-type reason, and nothing hangs.
#[test]
fn other_incompatible_pairs_are_refused() {
    let pairs = [
        (SocketType::Rep, zmq::ROUTER, "ROUTER"),
        (SocketType::Rep, zmq::REP, "REP"),
        (SocketType::Push, zmq::PUSH, "PUSH"),
        (SocketType::Pull, zmq::REQ, "REQ"),
        (SocketType::Dealer, zmq::PULL, "PULL"),
        (SocketType::Router, zmq::REP, "REP"),
    ];
    for (ours_ty, lz_ty, lz_name) in pairs {
        for binder in BOTH {
            let ctx = Context::new();
            let zctx = zmq::Context::new();
            let ours = our_socket(&ctx, ours_ty);
            let mon = ours.monitor();
            let lz = lz_socket(&zctx, lz_ty);
            match binder {
                Binder::Ours => lz.connect(&bind_local(&ours)).unwrap(),
                Binder::Libzmq => ours.connect(&lz_bind(&lz)).unwrap(),
            }
            let reason = wait_protocol_failure(&mon);
            assert_socket_type_reason(&reason, ours_ty.as_str(), lz_name);
        }
    }
}

// ----- connect before bind -----

/// Runs a connect-before-bind scenario on a port that was free a moment
/// ago. Under parallel load another socket may take that port (as its
/// ephemeral source port, say) before the late bind; the scenario then
/// reports `AddrInUse` and is rerun on a new port, at most five times.
fn on_a_free_port(mut scenario: impl FnMut(u16) -> Result<(), AddrInUse>) {
    for _ in 0..5 {
        let port = free_port();
        match scenario(port) {
            Ok(()) => return,
            Err(AddrInUse) => eprintln!("port {port} was taken meanwhile; another one"),
        }
    }
    panic!("no free port stayed free for 300 ms, five times in a row");
}

struct AddrInUse;

#[test]
fn our_req_connects_before_libzmq_rep_binds() {
    on_a_free_port(|port| {
        let ctx = Context::new();
        let zctx = zmq::Context::new();
        let ep = format!("tcp://127.0.0.1:{port}");
        let req = our_socket(&ctx, SocketType::Req);
        req.connect(&ep).unwrap();
        our_send(&req, &frames(&["early", "bird"]));

        thread::sleep(Duration::from_millis(300)); // the server is late
        let rep = lz_socket(&zctx, zmq::REP);
        match rep.bind(&ep) {
            Ok(()) => {}
            Err(zmq::Error::EADDRINUSE) => return Err(AddrInUse),
            Err(e) => panic!("libzmq bind {ep}: {e}"),
        }
        assert_frames_eq(&lz_recv(&rep), &frames(&["early", "bird"]), "request");
        lz_send(&rep, &frames(&["worm"]));
        assert_frames_eq(&our_recv(&req), &frames(&["worm"]), "reply");
        Ok(())
    });
}

#[test]
fn libzmq_req_connects_before_our_rep_binds() {
    on_a_free_port(|port| {
        let ctx = Context::new();
        let zctx = zmq::Context::new();
        let ep = format!("tcp://127.0.0.1:{port}");
        let req = lz_socket(&zctx, zmq::REQ);
        req.connect(&ep).unwrap();
        lz_send(&req, &frames(&["early", "bird"]));

        thread::sleep(Duration::from_millis(300)); // the server is late
        let rep = our_socket(&ctx, SocketType::Rep);
        match rep.bind(&ep) {
            Ok(bound) => assert_eq!(bound, ep),
            Err(Error::AddressInUse(_)) => return Err(AddrInUse),
            Err(e) => panic!("bind {ep}: {e}"),
        }
        assert_frames_eq(&our_recv(&rep), &frames(&["early", "bird"]), "request");
        our_send(&rep, &frames(&["worm"]));
        assert_frames_eq(&lz_recv(&req), &frames(&["worm"]), "reply");
        Ok(())
    });
}

// ----- Lazy Pirate: the server restarts on the same port -----

/// How long the client waits for a reply before giving up on a socket.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the server stays down: longer than a request timeout, so the
/// client's fresh socket has to connect to a port nobody listens on yet.
const DOWNTIME: Duration = Duration::from_millis(700);
const RETRIES: usize = 4;
const REQUESTS: usize = 5;
/// The request the server "crashes" on, without replying.
const CRASH_ON: usize = 1;

/// Binds, retrying while the previous incarnation's port is still held
/// (its close is asynchronous); bounded by [`TIMEOUT`].
fn bind_again<E: std::fmt::Debug>(mut bind: impl FnMut() -> Result<String, E>) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match bind() {
            Ok(ep) => return ep,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebind failed ({e:?}), retrying");
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("could not rebind within {TIMEOUT:?}: {e:?}"),
        }
    }
}

fn request(n: usize) -> String {
    format!("request {n}")
}

/// The server side of the script, as the sequence of requests it saw:
/// answers request 0, receives request CRASH_ON and dies without
/// answering, stays down for DOWNTIME, then a new incarnation on the same
/// endpoint answers everything up to the last request (retries included).
fn lz_rep_that_restarts(ep: String, first: zmq::Socket) -> Vec<String> {
    let mut seen = Vec::new();
    let recv = |rep: &zmq::Socket, seen: &mut Vec<String>| {
        let text = String::from_utf8(lz_recv(rep).remove(0)).unwrap();
        seen.push(text.clone());
        text
    };
    let reply =
        |rep: &zmq::Socket, text: &str| lz_send(rep, &frames(&[&format!("reply to {text}")]));
    for _ in 0..CRASH_ON {
        let text = recv(&first, &mut seen);
        reply(&first, &text);
    }
    recv(&first, &mut seen);
    drop(first); // crash: LINGER=0, the request is lost
    thread::sleep(DOWNTIME);
    let zctx = zmq::Context::new(); // a new process, as it were
    let rep = lz_socket(&zctx, zmq::REP);
    bind_again(|| rep.bind(&ep).map(|()| ep.clone()));
    loop {
        let text = recv(&rep, &mut seen);
        reply(&rep, &text);
        if text == request(REQUESTS - 1) {
            return seen;
        }
    }
}

/// The same script with our REP.
fn our_rep_that_restarts(ep: String, ctx: Context, first: Socket) -> Vec<String> {
    let mut seen = Vec::new();
    let recv = |rep: &Socket, seen: &mut Vec<String>| {
        let text = String::from_utf8(our_recv(rep).remove(0)).unwrap();
        seen.push(text.clone());
        text
    };
    let reply = |rep: &Socket, text: &str| our_send(rep, &frames(&[&format!("reply to {text}")]));
    for _ in 0..CRASH_ON {
        let text = recv(&first, &mut seen);
        reply(&first, &text);
    }
    recv(&first, &mut seen);
    drop(first); // crash: linger 0, the request is lost
    drop(ctx); // a new process, as it were
    thread::sleep(DOWNTIME);
    let ctx = Context::new();
    let rep = our_socket(&ctx, SocketType::Rep);
    bind_again(|| rep.bind(&ep));
    loop {
        let text = recv(&rep, &mut seen);
        reply(&rep, &text);
        if text == request(REQUESTS - 1) {
            return seen;
        }
    }
}

/// Every request but CRASH_ON is answered at the first attempt; CRASH_ON
/// needs a retry (two if the retry, too, fell in the downtime). The
/// server saw every request in order, CRASH_ON more than once.
fn check_recovery(attempts: &[usize], seen: &[String]) {
    for (n, &a) in attempts.iter().enumerate() {
        if n == CRASH_ON {
            assert!((2..=RETRIES).contains(&a), "request {n}: {a} attempts");
        } else {
            assert_eq!(a, 1, "request {n}: attempts {attempts:?}");
        }
    }
    let mut distinct = seen.to_vec();
    distinct.dedup();
    let want: Vec<String> = (0..REQUESTS).map(request).collect();
    assert_eq!(distinct, want, "requests seen by the server: {seen:?}");
    let crashed = seen.iter().filter(|s| **s == request(CRASH_ON)).count();
    assert!(crashed >= 2, "the lost request and its retry: {seen:?}");
}

/// The Lazy Pirate client (zguide chapter 4): when no reply comes, close
/// the REQ, open a new one, reconnect and resend. Returns the reply and
/// how many attempts it took.
fn lazy_pirate(ctx: &Context, req: &mut Socket, ep: &str, request: &str) -> (String, usize) {
    for attempt in 1..=RETRIES {
        our_send(req, &frames(&[request]));
        match req.recv_timeout(REQUEST_TIMEOUT) {
            Ok(m) => return (String::from_utf8(m.frames()[0].to_vec()).unwrap(), attempt),
            // A timeout, or (when the REP's connection drops while our
            // request is outstanding) a lost-peer error: either way, no
            // reply on this socket.
            Err(e) => {
                eprintln!("{request}: attempt {attempt}: {e}; new socket");
                let fresh = our_socket(ctx, SocketType::Req);
                fresh.connect(ep).unwrap();
                // Dropping the old socket discards its pending request.
                *req = fresh;
            }
        }
    }
    panic!("{request}: no reply after {RETRIES} attempts");
}

#[test]
fn our_req_recovers_when_libzmq_rep_restarts_lazy_pirate() {
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let rep = lz_socket(&zctx, zmq::REP);
    let ep = lz_bind(&rep);
    let server = {
        let ep = ep.clone();
        thread::spawn(move || lz_rep_that_restarts(ep, rep))
    };

    let mut req = our_socket(&ctx, SocketType::Req);
    req.connect(&ep).unwrap();
    let mut attempts = Vec::new();
    for n in 0..REQUESTS {
        let (reply, tries) = lazy_pirate(&ctx, &mut req, &ep, &request(n));
        assert_eq!(reply, format!("reply to {}", request(n)));
        attempts.push(tries);
    }
    let seen = server.join().expect("server thread");
    check_recovery(&attempts, &seen);
}

/// The reverse: our REP restarts on the same port, and a libzmq REQ
/// recovers the same way.
#[test]
fn libzmq_req_recovers_when_our_rep_restarts_lazy_pirate() {
    let zctx = zmq::Context::new();
    let ctx = Context::new();
    let rep = our_socket(&ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let server = {
        let ep = ep.clone();
        thread::spawn(move || our_rep_that_restarts(ep, ctx, rep))
    };

    let new_req = || {
        let s = lz_socket(&zctx, zmq::REQ);
        s.set_rcvtimeo(ms(REQUEST_TIMEOUT)).unwrap();
        s.connect(&ep).unwrap();
        s
    };
    let mut req = new_req();
    let mut attempts = Vec::new();
    for n in 0..REQUESTS {
        let mut tries = 0;
        let reply = loop {
            tries += 1;
            assert!(
                tries <= RETRIES,
                "{}: no reply after {RETRIES} attempts",
                request(n)
            );
            lz_send(&req, &frames(&[&request(n)]));
            match req.recv_multipart(0) {
                Ok(m) => break String::from_utf8(m[0].clone()).unwrap(),
                Err(zmq::Error::EAGAIN) => req = new_req(),
                Err(e) => panic!("{}: {e}", request(n)),
            }
        };
        assert_eq!(reply, format!("reply to {}", request(n)));
        attempts.push(tries);
    }
    let seen = server.join().expect("server thread");
    check_recovery(&attempts, &seen);
}
