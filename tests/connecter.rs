//! The connecter against real TCP failure modes, observed through monitor
//! events and `Socket::endpoints()`. Everything runs on loopback. The
//! unreachable and dropped-SYN cases build their own network namespace with
//! iptables rules, so they need root (see `util::netns`): where that is
//! missing they fail, saying so, rather than pass without running.

mod util;

use crossbeam_channel::Receiver;
use ferrozmq::{
    ConnectFailure, Context, EndpointState, EventKind, MonitorEvent, ProtocolError, ReconnectStop,
    Socket, SocketType,
};
use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use util::netns::{in_netns, iptables, with_hosts};
use util::{free_port, TIMEOUT};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Waits for the first event matching `want`, returning it and when it came.
fn wait_for(
    events: &Receiver<MonitorEvent>,
    what: &str,
    want: impl Fn(&EventKind) -> bool,
) -> (MonitorEvent, Instant) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(ev) if want(&ev.kind) => return (ev, Instant::now()),
            Ok(_) => {}
            Err(_) => panic!("no {what} event within {TIMEOUT:?}"),
        }
    }
}

fn client(ctx: &Context, ivl: u64, max: u64) -> (Socket, Receiver<MonitorEvent>) {
    let s = ctx.socket(SocketType::Req).expect("socket");
    s.set_reconnect_ivl(Some(ms(ivl))).unwrap();
    s.set_reconnect_ivl_max(ms(max)).unwrap();
    s.set_linger(Some(Duration::ZERO)).unwrap();
    let events = s.monitor();
    (s, events)
}

#[test]
fn refused_attempts_back_off_exponentially_up_to_the_cap() {
    let ctx = Context::new();
    let (req, events) = client(&ctx, 50, 400);
    req.connect(&format!("tcp://127.0.0.1:{}", free_port()))
        .expect("connect");
    let mut afters = Vec::new();
    let mut failed_at = Vec::new();
    while afters.len() < 6 {
        let (ev, at) = wait_for(&events, "ConnectFailed/Retried", |k| {
            matches!(
                k,
                EventKind::ConnectFailed { .. } | EventKind::ConnectRetried { .. }
            )
        });
        match ev.kind {
            EventKind::ConnectFailed { cause, .. } => {
                assert_eq!(cause, ConnectFailure::Refused);
                failed_at.push(at);
            }
            EventKind::ConnectRetried { after } => afters.push(after),
            _ => unreachable!(),
        }
    }
    // The announced delays: 50, 100, 200, 400, 400, 400 ms plus < 25% jitter.
    for (after, base) in afters.iter().zip([50, 100, 200, 400, 400, 400]) {
        assert!(
            *after >= ms(base) && *after < ms(base) * 5 / 4,
            "delay {after:?} should be {base} ms plus jitter; all: {afters:?}"
        );
    }
    // The observed gaps between failures grow in the same order.
    let gaps: Vec<Duration> = failed_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 4, "{gaps:?}");
    assert!(
        gaps[1] > gaps[0] && gaps[2] > gaps[1],
        "gaps should grow: {gaps:?}"
    );
    let ratio = gaps[2].as_secs_f64() / gaps[1].as_secs_f64();
    assert!((1.3..3.0).contains(&ratio), "gap ratio {ratio} in {gaps:?}");
    // One attempt (one fresh socket) per failure.
    let status = req.endpoints().expect("status");
    assert_eq!(status.len(), 1);
    assert!(status[0].attempts >= failed_at.len() as u64);
    assert!(matches!(
        status[0].last_error,
        Some((ConnectFailure::Refused, _))
    ));
}

#[test]
fn reconnect_stop_on_refusal_makes_one_attempt() {
    let ctx = Context::new();
    let (req, events) = client(&ctx, 20, 0);
    req.set_reconnect_stop(ReconnectStop {
        conn_refused: true,
        ..Default::default()
    })
    .unwrap();
    req.connect(&format!("tcp://127.0.0.1:{}", free_port()))
        .expect("connect");
    wait_for(&events, "ConnectFailed", |k| {
        matches!(
            k,
            EventKind::ConnectFailed {
                cause: ConnectFailure::Refused,
                ..
            }
        )
    });
    let (ev, _) = wait_for(&events, "Closed or ConnectRetried", |k| {
        matches!(k, EventKind::Closed | EventKind::ConnectRetried { .. })
    });
    assert!(matches!(ev.kind, EventKind::Closed), "got {:?}", ev.kind);
    let status = req.endpoints().expect("status");
    assert_eq!(status[0].state, EndpointState::Stopped);
    assert_eq!(status[0].attempts, 1);
}

#[test]
fn late_server_shows_retries_then_connected_then_handshake() {
    let ctx = Context::new();
    let (req, events) = client(&ctx, 20, 100);
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    req.connect(&endpoint).expect("connect");
    req.send("early").expect("queued before the server exists");
    wait_for(&events, "ConnectRetried", |k| {
        matches!(k, EventKind::ConnectRetried { .. })
    });
    wait_for(&events, "ConnectRetried", |k| {
        matches!(k, EventKind::ConnectRetried { .. })
    });

    let rep = ctx.socket(SocketType::Rep).expect("rep");
    rep.bind(&endpoint).expect("late bind");
    wait_for(&events, "Connected", |k| matches!(k, EventKind::Connected));
    wait_for(&events, "HandshakeSucceeded", |k| {
        matches!(k, EventKind::HandshakeSucceeded)
    });
    let got = rep.recv_timeout(TIMEOUT).expect("request arrives");
    assert_eq!(got, "early".into());
    rep.send("ok").expect("reply");
    assert_eq!(req.recv_timeout(TIMEOUT).expect("reply"), "ok".into());
    let status = req.endpoints().expect("status");
    assert_eq!(status[0].state, EndpointState::Connected);
    assert!(status[0].last_error.is_none(), "cleared by the handshake");
}

#[test]
fn restart_disconnects_reconnects_and_resets_the_backoff() {
    let ctx = Context::new();
    let (dealer, events) = {
        let s = ctx.socket(SocketType::Dealer).expect("dealer");
        s.set_reconnect_ivl(Some(ms(40))).unwrap();
        s.set_reconnect_ivl_max(ms(2000)).unwrap();
        s.set_linger(Some(Duration::ZERO)).unwrap();
        let e = s.monitor();
        (s, e)
    };
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let start_server = || {
        let r = ctx.socket(SocketType::Router).expect("router");
        r.set_linger(Some(Duration::ZERO)).unwrap();
        r.bind(&endpoint).expect("bind");
        r
    };
    let server = start_server();
    dealer.connect(&endpoint).expect("connect");
    wait_for(&events, "HandshakeSucceeded", |k| {
        matches!(k, EventKind::HandshakeSucceeded)
    });

    drop(server);
    wait_for(&events, "Disconnected", |k| {
        matches!(k, EventKind::Disconnected { .. })
    });
    // While the server is away the delays grow: 40, 80, 160 ...
    let mut afters = Vec::new();
    while afters.len() < 4 {
        if let (
            MonitorEvent {
                kind: EventKind::ConnectRetried { after },
                ..
            },
            _,
        ) = wait_for(&events, "ConnectRetried", |k| {
            matches!(k, EventKind::ConnectRetried { .. })
        }) {
            afters.push(after);
        }
    }
    assert!(
        afters[3] >= ms(320),
        "backoff should have grown: {afters:?}"
    );

    let server = start_server();
    wait_for(&events, "HandshakeSucceeded", |k| {
        matches!(k, EventKind::HandshakeSucceeded)
    });
    dealer.send("after restart").expect("send");
    let got = server.recv_timeout(TIMEOUT).expect("message after restart");
    assert_eq!(got.get(1).map(|f| &f[..]), Some(&b"after restart"[..]));

    // A second loss starts again from the base interval.
    drop(server);
    wait_for(&events, "Disconnected", |k| {
        matches!(k, EventKind::Disconnected { .. })
    });
    let (ev, _) = wait_for(&events, "ConnectRetried", |k| {
        matches!(k, EventKind::ConnectRetried { .. })
    });
    let EventKind::ConnectRetried { after } = ev.kind else {
        unreachable!()
    };
    assert!(
        after < ms(50),
        "backoff must reset after a handshake, got {after:?}"
    );
}

#[test]
fn silent_client_is_dropped_after_handshake_ivl() {
    let ctx = Context::new();
    let rep = ctx.socket(SocketType::Rep).expect("rep");
    rep.set_handshake_ivl(ms(200)).unwrap();
    let events = rep.monitor();
    let endpoint = rep.bind("tcp://127.0.0.1:*").expect("bind");
    let addr = endpoint.trim_start_matches("tcp://").to_owned();
    let mut raw = TcpStream::connect(&addr).expect("raw connect");
    raw.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let t0 = Instant::now();
    let (ev, _) = wait_for(&events, "HandshakeFailed", |k| {
        matches!(k, EventKind::HandshakeFailed { .. })
    });
    assert!(matches!(
        ev.kind,
        EventKind::HandshakeFailed {
            reason: ProtocolError::HandshakeTimeout
        }
    ));
    assert!(
        t0.elapsed() >= ms(150),
        "dropped too early: {:?}",
        t0.elapsed()
    );
    // We get the greeting, then EOF.
    let mut buf = Vec::new();
    raw.read_to_end(&mut buf).expect("read until EOF");
    assert_eq!(buf.len(), 64, "exactly our greeting, then close");
}

#[test]
fn connect_timeout_aborts_an_unanswered_syn() {
    // A listener that never accepts, with its accept queue full: Linux
    // drops further SYNs, so a connect gets no answer at all.
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .expect("addr")
            .into(),
    )
    .expect("bind");
    sock.listen(0).expect("listen");
    let addr = sock.local_addr().expect("addr").as_socket().expect("inet");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = TcpStream::connect_timeout(&addr, ms(200)) {
            fillers.push(s);
        }
    }
    // Everything below relies on Linux's default of dropping a SYN to a
    // full accept queue; a kernel that answers it would make the test
    // measure something else.
    match TcpStream::connect_timeout(&addr, ms(300)) {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
        other => panic!(
            "precondition: a connect to a listener with a full accept queue \
             should go unanswered, as on Linux by default \
             (net.ipv4.tcp_abort_on_overflow=0); got {other:?}"
        ),
    }
    let ctx = Context::new();
    let (req, events) = client(&ctx, 100, 0);
    req.set_connect_timeout(ms(200)).unwrap();
    req.connect(&format!("tcp://{addr}")).expect("connect");
    let (_, delayed) = wait_for(&events, "ConnectDelayed", |k| {
        matches!(k, EventKind::ConnectDelayed)
    });
    let (ev, failed) = wait_for(&events, "ConnectFailed", |k| {
        matches!(k, EventKind::ConnectFailed { .. })
    });
    let EventKind::ConnectFailed { cause, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(cause, ConnectFailure::TimedOut);
    let took = failed - delayed;
    assert!(
        took >= ms(150) && took < ms(3000),
        "took {took:?}, want about 200 ms"
    );
    wait_for(&events, "ConnectRetried", |k| {
        matches!(k, EventKind::ConnectRetried { .. })
    });
    eprintln!("connect_timeout=200ms: attempt failed after {took:?}");
    drop(fillers);
}

#[test]
fn disconnect_stops_the_connecter_at_once() {
    let ctx = Context::new();
    let (req, events) = client(&ctx, 10, 0);
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    req.connect(&endpoint).expect("connect");
    wait_for(&events, "ConnectRetried", |k| {
        matches!(k, EventKind::ConnectRetried { .. })
    });
    req.disconnect(&endpoint).expect("disconnect");
    wait_for(&events, "Closed", |k| matches!(k, EventKind::Closed));
    assert!(req.endpoints().expect("status").is_empty());
    // No attempt follows: with a 10 ms interval, 20 would fit in 200 ms.
    while let Ok(ev) = events.recv_timeout(ms(200)) {
        assert!(
            !matches!(
                ev.kind,
                EventKind::ConnectFailed { .. }
                    | EventKind::ConnectRetried { .. }
                    | EventKind::ConnectDelayed
            ),
            "attempt after disconnect: {ev:?}"
        );
    }
}

/// A name resolving to both ::1 and 127.0.0.1, with the server on only one
/// of them: the connecter tries every address until one works. Where the
/// machine's `localhost` maps to one family only (as on many containers),
/// the test runs in private namespaces: a network one, whose loopback has
/// both families, and a mount one with an `/etc/hosts` that maps
/// `localhost` to both. That needs root.
#[test]
fn localhost_finds_the_server_on_either_family() {
    if localhost_has_both_families() {
        localhost_reaches_both_families();
        return;
    }
    in_netns(|| {
        with_hosts("127.0.0.1 localhost\n::1 localhost\n", || {
            assert!(
                localhost_has_both_families(),
                "a private /etc/hosts mapping localhost to both families \
                 was not used for name resolution (check nsswitch.conf)"
            );
            localhost_reaches_both_families();
        })
    });
}

fn localhost_has_both_families() -> bool {
    use std::net::ToSocketAddrs;
    let addrs: Vec<std::net::SocketAddr> = ("localhost", 1)
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default();
    addrs.iter().any(|a| a.is_ipv4()) && addrs.iter().any(|a| a.is_ipv6())
}

/// A server on each loopback address in turn, reached through `localhost`.
fn localhost_reaches_both_families() {
    let ctx = Context::new();
    for bind in ["tcp://127.0.0.1:*", "tcp://[::1]:*"] {
        let rep = ctx.socket(SocketType::Rep).expect("rep");
        rep.set_linger(Some(Duration::ZERO)).unwrap();
        let endpoint = rep.bind(bind).expect("bind loopback");
        let port = endpoint.rsplit(':').next().expect("port");
        let (req, _events) = client(&ctx, 20, 0);
        req.connect(&format!("tcp://localhost:{port}"))
            .expect("connect");
        req.send("hi").expect("send");
        let got = rep.recv_timeout(TIMEOUT).expect("request over localhost");
        rep.send(got).expect("reply");
        assert_eq!(req.recv_timeout(TIMEOUT).expect("reply"), "hi".into());
    }
}

#[test]
fn icmp_host_unreachable_is_reported_as_unreachable_and_retried() {
    in_netns(|| {
        let port = free_port();
        let rule = [
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-j",
            "REJECT",
            "--reject-with",
            "icmp-host-unreachable",
        ];
        iptables(&rule);
        let ctx = Context::new();
        let (req, events) = client(&ctx, 30, 0);
        req.set_connect_timeout(ms(2000)).unwrap();
        req.connect(&format!("tcp://127.0.0.1:{port}"))
            .expect("connect");
        for _ in 0..3 {
            let (ev, _) = wait_for(&events, "ConnectFailed", |k| {
                matches!(k, EventKind::ConnectFailed { .. })
            });
            let EventKind::ConnectFailed { cause, error } = ev.kind else {
                unreachable!()
            };
            assert_eq!(cause, ConnectFailure::Unreachable, "error: {error:?}");
            wait_for(&events, "ConnectRetried", |k| {
                matches!(k, EventKind::ConnectRetried { .. })
            });
        }
        let status = req.endpoints().expect("status");
        assert!(matches!(
            status[0].last_error,
            Some((ConnectFailure::Unreachable, _))
        ));
    });
}

#[test]
fn dropped_syns_time_out_in_a_namespace() {
    in_netns(|| {
        let port = free_port();
        let rule = [
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--syn",
            "--dport",
            &port.to_string(),
            "-j",
            "DROP",
        ];
        iptables(&rule);
        let ctx = Context::new();
        let (req, events) = client(&ctx, 50, 0);
        req.set_connect_timeout(ms(200)).unwrap();
        req.connect(&format!("tcp://127.0.0.1:{port}"))
            .expect("connect");
        for _ in 0..2 {
            let (_, t0) = wait_for(&events, "ConnectDelayed", |k| {
                matches!(k, EventKind::ConnectDelayed)
            });
            let (ev, t1) = wait_for(&events, "ConnectFailed", |k| {
                matches!(k, EventKind::ConnectFailed { .. })
            });
            let EventKind::ConnectFailed { cause, .. } = ev.kind else {
                unreachable!()
            };
            assert_eq!(cause, ConnectFailure::TimedOut);
            let took = t1 - t0;
            assert!(took >= ms(150) && took < ms(3000), "took {took:?}");
            eprintln!("dropped SYN: attempt timed out after {took:?}");
        }
    });
}
