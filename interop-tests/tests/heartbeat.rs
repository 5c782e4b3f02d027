//! ZMTP 3.1 heartbeats (RFC 37) end to end.
//!
//! - A peer that stops answering without closing the connection (a
//!   SIGSTOPped child process) is detected by our PINGs timing out, and
//!   the connecter then reconnects.
//! - Against libzmq 4.3 (the `zmq` dev-dependency): we answer libzmq's
//!   PINGs so that its heartbeat timeout never drops us, and libzmq
//!   answers ours.
//!
//! Every blocking call is bounded; only loopback ephemeral ports are used.
//! Timing assertions are loose upper bounds, for a loaded 2-core machine.

mod util;

use crossbeam_channel::Receiver;
use ferrozmq::{Context, EventKind, Message, MonitorEvent, ProtocolError, Socket, SocketType};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use util::interop::{lz_bind, lz_socket, our_socket};
use util::TIMEOUT;

/// Set in the environment of the re-executed test binary that plays the
/// server in `stalled_peer_is_detected_and_reconnected`.
const CHILD_ENV: &str = "FERROZMQ_HEARTBEAT_CHILD";
/// How long the child serves at most, should the parent never kill it.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

/// Waits until an event matching `pred` arrives, or panics after `within`
/// listing what did arrive.
fn wait_event(
    rx: &Receiver<MonitorEvent>,
    within: Duration,
    what: &str,
    pred: impl Fn(&EventKind) -> bool,
) -> EventKind {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) if pred(&ev.kind) => return ev.kind,
            Ok(ev) => seen.push(format!("{:?}", ev.kind)),
            Err(_) => panic!("no {what} within {within:?}; saw {seen:?}"),
        }
    }
}

/// All events that arrive within `d`.
fn events_during(rx: &Receiver<MonitorEvent>, d: Duration) -> Vec<EventKind> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    while let Ok(ev) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        out.push(ev.kind);
    }
    out
}

fn assert_no_disconnect(events: &[EventKind]) {
    for e in events {
        assert!(
            !matches!(
                e,
                EventKind::Disconnected { .. }
                    | EventKind::HandshakeSucceeded
                    | EventKind::ConnectRetried { .. }
            ),
            "the connection was dropped or replaced: {events:?}"
        );
    }
}

// ----- a stalled peer (child process) -----

/// The server role, run only in the child process: a ROUTER that echoes
/// every message, on an ephemeral port that it prints on stdout.
#[test]
fn child_server_role() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let ctx = Context::new();
    let router = our_socket(&ctx, SocketType::Router);
    let endpoint = router.bind("tcp://127.0.0.1:*").expect("child bind");
    {
        // Straight to the real stdout, past the test harness's capture.
        let mut out = std::io::stdout().lock();
        writeln!(out, "\nENDPOINT {endpoint}").unwrap();
        out.flush().unwrap();
    }
    let deadline = Instant::now() + CHILD_LIFETIME;
    while Instant::now() < deadline {
        if let Ok(msg) = router.recv_timeout(Duration::from_millis(100)) {
            let _ = router.send_timeout(msg, Duration::from_millis(100));
        }
    }
}

/// The child process; stopped processes are continued and everything is
/// killed and reaped on drop, also when the test fails.
struct ChildServer {
    child: Child,
}

impl ChildServer {
    fn spawn() -> (ChildServer, String) {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .args(["--exact", "child_server_role", "--nocapture"])
            .arg("--test-threads=1")
            .env(CHILD_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let server = ChildServer { child };
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // libtest may have printed "test child_server_role ... "
                // on the same line first.
                if let Some((_, ep)) = line.split_once("ENDPOINT ") {
                    let _ = tx.send(ep.trim().to_string());
                }
            }
        });
        let endpoint = rx
            .recv_timeout(TIMEOUT)
            .expect("the child did not print its endpoint");
        (server, endpoint)
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: as above; the child is not yet reaped, so the pid is ours.
        unsafe {
            libc::kill(pid, libc::SIGCONT);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn stalled_peer_is_detected_and_reconnected() {
    let (server, endpoint) = ChildServer::spawn();
    let ctx = Context::new();
    let dealer = our_socket(&ctx, SocketType::Dealer);
    dealer
        .set_heartbeat_ivl(Some(Duration::from_millis(100)))
        .unwrap();
    dealer
        .set_heartbeat_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let events = dealer.monitor();
    dealer.connect(&endpoint).unwrap();
    wait_event(&events, TIMEOUT, "HandshakeSucceeded", |k| {
        matches!(k, EventKind::HandshakeSucceeded)
    });
    // The child is alive and echoing; heartbeats flow both ways for a
    // while without trouble.
    dealer.send("hello").unwrap();
    assert_eq!(dealer.recv().unwrap(), Message::from("hello"));
    assert_no_disconnect(&events_during(&events, Duration::from_millis(700)));

    // Freeze the child: its kernel still holds the connection open and
    // ACKs our bytes, but nothing answers our PINGs.
    server.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let kind = wait_event(&events, Duration::from_secs(5), "Disconnected", |k| {
        matches!(k, EventKind::Disconnected { .. })
    });
    let detected = stopped.elapsed();
    match kind {
        EventKind::Disconnected { reason, .. } => {
            assert_eq!(reason, Some(ProtocolError::HeartbeatTimeout))
        }
        _ => unreachable!(),
    }
    eprintln!("stalled peer detected after {detected:?}");
    // The connecter schedules a reconnect.
    wait_event(&events, TIMEOUT, "ConnectRetried/ConnectDelayed", |k| {
        matches!(
            k,
            EventKind::ConnectRetried { .. } | EventKind::ConnectDelayed
        )
    });

    // Once the child runs again, the new connection completes its
    // handshake and messages flow again.
    server.signal(libc::SIGCONT);
    wait_event(&events, TIMEOUT, "HandshakeSucceeded again", |k| {
        matches!(k, EventKind::HandshakeSucceeded)
    });
    dealer.send("again").unwrap();
    assert_eq!(dealer.recv().unwrap(), Message::from("again"));
    drop(server);
}

// ----- interop with libzmq 4.3 -----

/// Makes `lz` ping every 100 ms and drop a peer silent for 300 ms after a
/// PING, binds it, and connects a DEALER of ours (without heartbeats of
/// its own) to it. Returns our socket and its monitor, after the
/// handshake.
fn dealer_to_pinging_libzmq(ctx: &Context, lz: &zmq::Socket) -> (Socket, Receiver<MonitorEvent>) {
    lz.set_heartbeat_ivl(100).unwrap();
    lz.set_heartbeat_timeout(300).unwrap();
    let endpoint = lz_bind(lz);
    let ours = our_socket(ctx, SocketType::Dealer);
    let events = ours.monitor();
    ours.connect(&endpoint).unwrap();
    wait_event(&events, TIMEOUT, "HandshakeSucceeded", |k| {
        matches!(k, EventKind::HandshakeSucceeded)
    });
    (ours, events)
}

#[test]
fn libzmq_pings_are_answered() {
    // libzmq pings every 100 ms and drops a peer that is silent for
    // 300 ms after a PING; its PINGs also carry a 1 s TTL for us. We have
    // no heartbeats of our own: only our PONGs keep libzmq happy.
    let lz_ctx = zmq::Context::new();
    let lz = lz_socket(&lz_ctx, zmq::DEALER);
    lz.set_heartbeat_ttl(1000).unwrap();
    let ctx = Context::new();
    let (ours, events) = dealer_to_pinging_libzmq(&ctx, &lz);
    ours.send("one").unwrap();
    assert_eq!(lz.recv_bytes(0).unwrap(), b"one");
    lz.send("two", 0).unwrap();
    assert_eq!(ours.recv().unwrap(), Message::from("two"));

    // Idle for a second: ten PINGs from libzmq, ten PONGs from us.
    assert_no_disconnect(&events_during(&events, Duration::from_secs(1)));

    // Same connection, still working both ways.
    lz.send("three", 0).unwrap();
    assert_eq!(ours.recv().unwrap(), Message::from("three"));
    ours.send("four").unwrap();
    assert_eq!(lz.recv_bytes(0).unwrap(), b"four");
    assert_no_disconnect(&events_during(&events, Duration::from_millis(100)));
}

#[test]
fn pings_are_answered_after_a_blocked_reader_moves_on() {
    // While a thread is blocked in `recv` on a connection, the I/O thread
    // stops watching its bytes and the thread reads them itself. When the
    // application stops reading, the I/O thread must take the connection
    // back, or libzmq's PINGs go unanswered and it drops us.
    let lz_ctx = zmq::Context::new();
    let lz = lz_socket(&lz_ctx, zmq::DEALER);
    let ctx = Context::new();
    let (ours, events) = dealer_to_pinging_libzmq(&ctx, &lz);
    ours.send("hello").unwrap();
    assert_eq!(lz.recv_bytes(0).unwrap(), b"hello");
    // Messages paced so that they arrive while our thread is blocked in
    // `recv`: the situation in which reading is handed over.
    let pacer = std::thread::spawn(move || {
        for i in 0..20u8 {
            std::thread::sleep(Duration::from_millis(5));
            lz.send(&[i][..], 0).unwrap();
        }
        lz
    });
    for i in 0..20u8 {
        assert_eq!(ours.recv().unwrap(), Message::from(vec![i]));
    }
    let lz = pacer.join().unwrap();

    // The application does something else for a second: ten PINGs from
    // libzmq, each answered although nobody calls `recv`.
    assert_no_disconnect(&events_during(&events, Duration::from_secs(1)));

    lz.send("after", 0).unwrap();
    assert_eq!(ours.recv().unwrap(), Message::from("after"));
    ours.send("still here").unwrap();
    assert_eq!(lz.recv_bytes(0).unwrap(), b"still here");
    assert_no_disconnect(&events_during(&events, Duration::from_millis(100)));
}

#[test]
fn our_pings_are_answered_by_libzmq() {
    // We ping every 100 ms and give up 300 ms after a PING with no
    // traffic; libzmq has no heartbeats of its own, so only its PONGs
    // keep the connection up while the application is idle.
    let lz_ctx = zmq::Context::new();
    let lz = lz_socket(&lz_ctx, zmq::ROUTER);
    let endpoint = lz_bind(&lz);

    let ctx = Context::new();
    let ours = our_socket(&ctx, SocketType::Dealer);
    ours.set_routing_id(&b"ours"[..]).unwrap();
    ours.set_heartbeat_ivl(Some(Duration::from_millis(100)))
        .unwrap();
    ours.set_heartbeat_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    ours.set_heartbeat_ttl(Some(Duration::from_secs(2)))
        .unwrap();
    let events = ours.monitor();
    ours.connect(&endpoint).unwrap();
    wait_event(&events, TIMEOUT, "HandshakeSucceeded", |k| {
        matches!(k, EventKind::HandshakeSucceeded)
    });
    ours.send("one").unwrap();
    assert_eq!(
        lz.recv_multipart(0).unwrap(),
        vec![b"ours".to_vec(), b"one".to_vec()]
    );

    assert_no_disconnect(&events_during(&events, Duration::from_secs(1)));

    lz.send_multipart([&b"ours"[..], b"two"], 0).unwrap();
    assert_eq!(ours.recv().unwrap(), Message::from("two"));
    ours.send("three").unwrap();
    assert_eq!(
        lz.recv_multipart(0).unwrap(),
        vec![b"ours".to_vec(), b"three".to_vec()]
    );
    assert_no_disconnect(&events_during(&events, Duration::from_millis(100)));
}

#[test]
fn both_sides_heartbeating_with_libzmq() {
    // Heartbeats on both ends, with TTLs: neither side drops the other
    // while idle.
    let lz_ctx = zmq::Context::new();
    let lz = lz_socket(&lz_ctx, zmq::ROUTER);
    lz.set_heartbeat_ivl(80).unwrap();
    lz.set_heartbeat_timeout(250).unwrap();
    lz.set_heartbeat_ttl(500).unwrap();
    let endpoint = lz_bind(&lz);

    let ctx = Context::new();
    let ours = our_socket(&ctx, SocketType::Req);
    ours.set_heartbeat_ivl(Some(Duration::from_millis(90)))
        .unwrap();
    ours.set_heartbeat_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    ours.set_heartbeat_ttl(Some(Duration::from_millis(500)))
        .unwrap();
    let events = ours.monitor();
    ours.connect(&endpoint).unwrap();
    wait_event(&events, TIMEOUT, "HandshakeSucceeded", |k| {
        matches!(k, EventKind::HandshakeSucceeded)
    });
    assert_no_disconnect(&events_during(&events, Duration::from_secs(1)));
    ours.send("ping?").unwrap();
    let mut req = lz.recv_multipart(0).unwrap();
    assert_eq!(req.last().unwrap(), b"ping?");
    *req.last_mut().unwrap() = b"pong!".to_vec();
    lz.send_multipart(req, 0).unwrap();
    assert_eq!(ours.recv().unwrap(), Message::from("pong!"));
    assert_no_disconnect(&events_during(&events, Duration::from_millis(100)));
}

/// A receiver paused at its HWM is not reading, so it cannot see its
/// peer's PONGs; that back-pressure must not be mistaken for a dead peer.
#[test]
fn back_pressure_is_not_a_heartbeat_timeout() {
    use ferrozmq::{Context, EventKind, SocketType};
    use std::time::Duration;
    let ctx = Context::new();
    let router = ctx.socket(SocketType::Router).expect("router");
    // Block at the HWM instead of dropping, so that what is sent arrives.
    router.set_router_mandatory(true).unwrap();
    let ep = router.bind("tcp://127.0.0.1:*").expect("bind");
    let dealer = ctx.socket(SocketType::Dealer).expect("dealer");
    dealer.set_routing_id("slow").expect("id");
    dealer.set_rcvhwm(10).unwrap();
    dealer
        .set_heartbeat_ivl(Some(Duration::from_millis(50)))
        .unwrap();
    dealer
        .set_heartbeat_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    let events = dealer.monitor();
    dealer.connect(&ep).expect("connect");
    dealer.send("hello").expect("send");
    router
        .recv_timeout(Duration::from_secs(10))
        .expect("hello arrives");
    // Far more than the HWM and the socket buffers take: the dealer's
    // engine stops reading and stays stopped while we sleep.
    let body = vec![7u8; 16 * 1024];
    let mut sent = 0;
    while sent < 2000 {
        match router.send_timeout(
            ferrozmq::Message::from_frames([b"slow".to_vec(), body.clone()]),
            Duration::from_millis(500),
        ) {
            Ok(()) => sent += 1,
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(1000));
    let mut got = 0;
    while dealer.recv_timeout(Duration::from_secs(2)).is_ok() {
        got += 1;
        if got == sent {
            break;
        }
    }
    assert_eq!(got, sent, "every message sent while paused arrives");
    for ev in events.try_iter() {
        assert!(
            !matches!(ev.kind, EventKind::Disconnected { .. }),
            "dropped a live peer during back-pressure: {ev:?}"
        );
    }
}
