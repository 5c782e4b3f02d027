//! Request-reply reliability: a REQ never hangs on a dead connection
//! (`Error::PeerLost`), `req_resend`, `req_relaxed` + `req_correlate`, and
//! a client that survives its server being SIGKILLed ten times.
//!
//! The kill test runs the server in a child process (this test binary,
//! re-executed to run [`child_echo_server`] only), so that "killed" means
//! a real `SIGKILL`, not a socket politely closed.

mod util;

use ferrozmq::{Context, Error, Message, Socket, SocketType};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::*;

/// Tells [`child_echo_server`] to serve on this endpoint.
const SERVER_ENV: &str = "FERROZMQ_TEST_SERVER_ENDPOINT";
/// Bound of the whole kill-and-restart test.
const OVERALL: Duration = Duration::from_secs(60);
/// A lost connection must be reported well before this.
const PROMPT: Duration = Duration::from_secs(2);

/// A REQ with a quick reconnect, so that restarts are picked up fast.
fn client(ctx: &Context, ep: &str) -> Socket {
    let req = socket(ctx, SocketType::Req);
    req.set_linger(Some(Duration::ZERO)).unwrap();
    req.set_reconnect_ivl(Some(Duration::from_millis(10)))
        .unwrap();
    req.set_reconnect_ivl_max(Duration::ZERO).unwrap();
    req.connect(ep).expect("connect");
    req
}

fn rep_on(ctx: &Context, ep: &str) -> Socket {
    let rep = socket(ctx, SocketType::Rep);
    rep.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(rep.bind(ep).expect("bind"), ep);
    rep
}

/// A REP on an ephemeral loopback port, and that endpoint.
fn first_rep(ctx: &Context) -> (Socket, String) {
    let rep = socket(ctx, SocketType::Rep);
    rep.set_linger(Some(Duration::ZERO)).unwrap();
    let ep = bind_local(&rep);
    (rep, ep)
}

/// Starts a thread that receives one request on `rep`, reports its body,
/// and then drops the socket without replying (the server "crashes").
fn crash_after_one_request(rep: Socket) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let request = recv(&rep, "doomed server");
        drop(rep);
        strs(&request)
    })
}

#[test]
fn peer_lost_wakes_a_blocked_recv_and_the_socket_recovers() {
    let ctx = ctx();
    let (rep, ep) = first_rep(&ctx);
    let req = client(&ctx, &ep);
    let server = crash_after_one_request(rep);

    send(&req, "doomed", "request");
    let t0 = Instant::now();
    // Blocks: the server receives the request, then its socket goes away.
    let err = req
        .recv_timeout(Duration::from_secs(5))
        .expect_err("no reply can come");
    let waited = t0.elapsed();
    match &err {
        Error::PeerLost { endpoint } => assert_eq!(endpoint, &ep),
        other => panic!("expected PeerLost, got {other:?}"),
    }
    assert!(waited < PROMPT, "PeerLost took {waited:?}");
    let seen =
        bounded(TIMEOUT, "server thread", move || server.join()).expect("server thread panicked");
    assert_eq!(seen, ["doomed"]);

    // Reported once; the socket is idle again.
    assert!(matches!(req.try_recv(), Err(Error::InvalidState(_))));

    // A new server on the same port answers the same socket.
    let server = RepServer::serve(rep_on(&ctx, &ep), ep.clone(), "restarted");
    assert_eq!(
        strs(&round_trip(&req, "again")),
        ["restarted", "again"],
        "the REQ can send again after PeerLost"
    );
    assert_eq!(server.stop(), 1);
}

#[test]
fn resend_delivers_to_the_restarted_server_in_the_same_recv() {
    let ctx = ctx();
    let (rep, ep) = first_rep(&ctx);
    let req = client(&ctx, &ep);
    req.set_req_resend(true).unwrap();

    let (server_ctx, server_ep) = (ctx.clone(), ep.clone());
    let restarter = std::thread::spawn(move || {
        let seen = crash_after_one_request(rep).join().expect("doomed server");
        // Bound by the same I/O thread, after the old socket's close.
        let server = RepServer::serve(rep_on(&server_ctx, &server_ep), server_ep, "second");
        (seen, server)
    });

    send(&req, "doomed", "request");
    let reply = req
        .recv_timeout(TIMEOUT)
        .expect("the request is resent, not failed");
    assert_eq!(strs(&reply), ["second", "doomed"]);
    let (seen, server) =
        bounded(TIMEOUT, "restarter", move || restarter.join()).expect("restarter panicked");
    assert_eq!(seen, ["doomed"]);
    assert_eq!(strs(&round_trip(&req, "next")), ["second", "next"]);
    assert_eq!(server.stop(), 2);
}

#[test]
fn resend_goes_to_a_second_server() {
    let ctx = ctx();
    // Two servers; whichever gets the first request dies without replying.
    let doomed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut endpoints = Vec::new();
    let mut threads = Vec::new();
    for name in ["a", "b"] {
        let rep = socket(&ctx, SocketType::Rep);
        rep.set_linger(Some(Duration::ZERO)).unwrap();
        endpoints.push(bind_local(&rep));
        let (doomed, stop) = (doomed.clone(), stop.clone());
        threads.push(std::thread::spawn(move || -> Result<usize, String> {
            let mut served = 0;
            while !stop.load(Ordering::Acquire) {
                match rep.recv_timeout(Duration::from_millis(50)) {
                    Ok(request) => {
                        if !doomed.swap(true, Ordering::AcqRel) {
                            return Ok(served); // crash: drops `rep`
                        }
                        let mut reply = Message::from(name);
                        reply.extend(request);
                        rep.send_timeout(reply, TIMEOUT)
                            .map_err(|e| format!("{name}: reply: {:?}", e.error))?;
                        served += 1;
                    }
                    Err(Error::TimedOut) => {}
                    Err(e) => return Err(format!("{name}: recv: {e:?}")),
                }
            }
            Ok(served)
        }));
    }
    let req = socket(&ctx, SocketType::Req);
    req.set_linger(Some(Duration::ZERO)).unwrap();
    req.set_req_resend(true).unwrap();
    let mon = req.monitor();
    for ep in &endpoints {
        req.connect(ep).expect("connect");
    }
    wait_handshakes(&mon, 2);

    send(&req, "q", "request");
    let reply = req.recv_timeout(TIMEOUT).expect("resent to the survivor");
    let survivor = strs(&reply)[0].clone();
    assert_eq!(strs(&reply)[1..], ["q"]);
    // Every later request goes to the survivor; none fails.
    for i in 0..5 {
        let reply = round_trip(&req, format!("q{i}"));
        assert_eq!(strs(&reply), [survivor.clone(), format!("q{i}")]);
    }
    stop.store(true, Ordering::Release);
    let served: Vec<usize> = threads
        .into_iter()
        .map(|t| {
            bounded(TIMEOUT, "server thread", move || t.join())
                .expect("server thread panicked")
                .expect("server")
        })
        .collect();
    assert_eq!(served.iter().sum::<usize>(), 6);
}

#[test]
fn relaxed_correlated_req_discards_the_abandoned_reply() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_linger(Some(Duration::ZERO)).unwrap();
    let ep = bind_local(&rep);
    let req = client(&ctx, &ep);
    req.set_req_relaxed(true).unwrap();
    req.set_req_correlate(true).unwrap();

    // The server holds its first reply back until the client has moved on.
    let (moved_on, wait_moved_on) = crossbeam_channel::bounded::<()>(1);
    let server = std::thread::spawn(move || -> Vec<Vec<String>> {
        let mut seen = Vec::new();
        for i in 0..2 {
            let request = recv(&rep, "server");
            seen.push(strs(&request));
            if i == 0 {
                wait_moved_on
                    .recv_timeout(TIMEOUT)
                    .expect("client sent its second request");
            }
            let mut reply = Message::from(format!("reply {i}"));
            reply.extend(request);
            send(&rep, reply, "server reply");
        }
        seen
    });

    send(&req, "first", "first request");
    send(&req, "second", "relaxed: second request without waiting");
    moved_on.send(()).expect("server alive");
    let reply = recv(&req, "reply");
    assert_eq!(strs(&reply), ["reply 1", "second"]);
    let seen =
        bounded(TIMEOUT, "server thread", move || server.join()).expect("server thread panicked");
    assert_eq!(
        seen,
        [vec!["first".to_string()], vec!["second".to_string()]]
    );
    assert_eq!(req.stats().dropped_unexpected, 1, "the first reply");
    // Nothing else arrives.
    assert!(matches!(
        req.recv_timeout(SHORT),
        Err(Error::InvalidState(_))
    ));
}

/// Not a test of its own: run by the kill test in a child process, with
/// [`SERVER_ENV`] set, as an echo REP server that runs until killed. In a
/// normal run it returns at once.
#[test]
fn child_echo_server() {
    let Ok(ep) = std::env::var(SERVER_ENV) else {
        return;
    };
    // Exit when the parent goes away, however it dies: it holds our stdin.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    let deadline = Instant::now() + OVERALL * 2;
    let ctx = Context::new();
    let rep = ctx.socket(SocketType::Rep).expect("socket");
    rep.set_linger(Some(Duration::ZERO)).unwrap();
    // The killed predecessor's port is free once it is reaped; retry
    // briefly anyway in case the kernel lags.
    loop {
        match rep.bind(&ep) {
            Ok(_) => break,
            Err(Error::AddressInUse(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("child server: bind {ep}: {e}"),
        }
    }
    while Instant::now() < deadline {
        match rep.recv_timeout(Duration::from_millis(200)) {
            Ok(request) => rep
                .send_timeout(request, Duration::from_secs(5))
                .expect("child server: reply"),
            Err(Error::TimedOut) => {}
            Err(e) => panic!("child server: recv: {e}"),
        }
    }
}

/// The echo server child process; killed (SIGKILL) on drop.
struct ServerProcess {
    endpoint: String,
    child: Option<Child>,
    restarts: usize,
}

impl ServerProcess {
    fn start(endpoint: &str) -> ServerProcess {
        let mut s = ServerProcess {
            endpoint: endpoint.to_owned(),
            child: None,
            restarts: 0,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .args([
                "--exact",
                "child_echo_server",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SERVER_ENV, &self.endpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the server process");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.restarts += 1;
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills and restarts the server around request 50, 150, ..., 950, as
/// `progress` reports replies; keeps the last one up until the client is
/// done (drops its sender). Returns the number of restarts.
fn controller(
    mut server: ServerProcess,
    progress: crossbeam_channel::Receiver<usize>,
    deadline: Instant,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let next = |target: usize| loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match progress.recv_timeout(left) {
                Ok(n) if n >= target => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        };
        for k in 0..10 {
            if !next(50 + 100 * k) {
                break;
            }
            server.restart();
        }
        // Serve the rest, until the client hangs up or time is up.
        next(usize::MAX);
        server.restarts
    })
}

/// How the client copes with a dead server.
#[derive(Clone, Copy, Debug)]
enum Strategy {
    /// `req_resend` + `req_correlate`: the socket resends by itself.
    Resend,
    /// Default REQ: on `Error::PeerLost`, resend on the same socket.
    RetryOnPeerLost,
}

fn survive_ten_kills(strategy: Strategy) {
    const REQUESTS: usize = 1000;
    let deadline = Instant::now() + OVERALL;
    let ep = free_endpoint();
    let server = ServerProcess::start(&ep);
    let (tx, rx) = crossbeam_channel::unbounded();
    let controller = controller(server, rx, deadline);

    let ctx = ctx();
    let req = client(&ctx, &ep);
    if let Strategy::Resend = strategy {
        req.set_req_resend(true).unwrap();
        req.set_req_correlate(true).unwrap();
    }
    let mut accepted = Vec::with_capacity(REQUESTS);
    let mut lost = 0usize;
    for i in 0..REQUESTS {
        let body = i.to_string();
        loop {
            assert!(
                Instant::now() < deadline,
                "{strategy:?}: out of time at request {i}"
            );
            send(&req, body.as_str(), "request");
            match req.recv_timeout(TIMEOUT) {
                Ok(reply) => {
                    assert_eq!(
                        strs(&reply),
                        std::slice::from_ref(&body),
                        "reply to request {i}"
                    );
                    accepted.push(i);
                    break;
                }
                Err(Error::PeerLost { endpoint })
                    if matches!(strategy, Strategy::RetryOnPeerLost) =>
                {
                    assert_eq!(endpoint, ep);
                    lost += 1;
                }
                Err(e) => panic!("{strategy:?}: request {i}: {e:?}"),
            }
        }
        let _ = tx.send(i + 1);
    }
    drop(tx);
    let restarts =
        bounded(TIMEOUT, "controller", move || controller.join()).expect("controller panicked");

    assert_eq!(
        restarts, 10,
        "{strategy:?}: the server was restarted 10 times"
    );
    assert_eq!(
        accepted,
        (0..REQUESTS).collect::<Vec<_>>(),
        "{strategy:?}: exactly one reply per request, in order"
    );
    eprintln!(
        "{strategy:?}: {REQUESTS} requests, 10 kills, {lost} PeerLost retries, stats {:?}",
        req.stats()
    );
}

#[test]
fn resend_survives_ten_server_kills() {
    survive_ten_kills(Strategy::Resend);
}

#[test]
fn retry_on_peer_lost_survives_ten_server_kills() {
    survive_ten_kills(Strategy::RetryOnPeerLost);
}
