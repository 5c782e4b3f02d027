//! `fzmq probe` and `fzmq monitor` against what an operator meets: a
//! closed port, servers that are not ZeroMQ, and a live ferrozmq REP.

mod util;

use ferrozmq::zmtp::greeting::Greeting;
use ferrozmq::{Context, SocketType};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use util::{run, spawn, LIMIT};

/// A loopback listener whose every connection is handed to `serve` on
/// its own thread; returns its endpoint.
fn server(serve: fn(TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(LIMIT));
            thread::spawn(move || serve(stream));
        }
    });
    format!("tcp://{addr}")
}

fn echo(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

fn line<'a>(out: &'a str, step: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(step))
        .unwrap_or_else(|| panic!("no {step} line in {out}"))
}

#[test]
fn a_closed_port_is_refused() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let p = run(&["probe", &format!("tcp://127.0.0.1:{port}")], "");
    assert_eq!(p.code, Some(11), "{p:?}");
    assert!(line(&p.stdout, "tcp").contains("refused"), "{}", p.stdout);
    assert!(
        line(&p.stdout, "result").contains("refused"),
        "{}",
        p.stdout
    );
}

#[test]
fn a_name_that_does_not_resolve_is_a_resolve_failure() {
    // `.invalid` never resolves (RFC 2606).
    let p = run(&["probe", "tcp://no-such-host.invalid:5555"], "");
    assert_eq!(p.code, Some(10), "{p:?}");
    assert!(line(&p.stdout, "resolve").contains("no-such-host.invalid"));
}

#[test]
fn an_echo_server_is_not_zmtp() {
    let ep = server(echo);
    let p = run(&["probe", &ep], "");
    assert_eq!(p.code, Some(20), "{p:?}");
    assert!(line(&p.stdout, "tcp").contains("connected"));
    assert!(line(&p.stdout, "greeting").contains("our own greeting back"));
}

#[test]
fn a_server_that_speaks_another_protocol_is_not_zmtp() {
    let ep = server(|mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        echo(s);
    });
    let p = run(&["probe", &ep], "");
    assert_eq!(p.code, Some(20), "{p:?}");
    let greeting = line(&p.stdout, "greeting");
    assert!(greeting.contains("bad signature"), "{greeting}");
    assert!(greeting.contains("SSH-2.0"), "{greeting}");
}

#[test]
fn a_silent_server_times_out_at_the_greeting() {
    let ep = server(|mut s| {
        // Read, say nothing, until the probe leaves.
        let mut buf = [0u8; 1024];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let p = run(&["probe", &ep, "--timeout-ms", "200"], "");
    assert_eq!(p.code, Some(21), "{p:?}");
    assert!(line(&p.stdout, "greeting").contains("nothing within 200 ms"));
}

#[test]
fn a_peer_with_another_mechanism_is_reported_as_such() {
    // As libzmq 4.3 greets: the signature at once, the rest once the
    // client's major version is in, and a close without flushing when the
    // client's whole greeting names another mechanism.
    let ep = server(|mut s| {
        let mut g = Greeting::ours();
        g.mechanism = [0; 20];
        g.mechanism[..5].copy_from_slice(b"CURVE");
        let ours = g.to_bytes();
        let mut theirs = [0u8; 11];
        if s.write_all(&ours[..10]).is_err() || s.read_exact(&mut theirs).is_err() {
            return;
        }
        // Bytes beyond the 11th, already here, are a whole greeting sent
        // at once (one write, one segment on loopback): libzmq reads it
        // all, refuses NULL and closes before its own rest has left.
        let _ = s.set_nonblocking(true);
        if matches!(s.read(&mut theirs), Ok(n) if n > 0) {
            return;
        }
        let _ = s.set_nonblocking(false);
        let _ = s.write_all(&ours[10..]);
        let _ = s.read(&mut theirs);
    });
    let p = run(&["probe", &ep], "");
    assert_eq!(p.code, Some(23), "{p:?}");
    assert!(line(&p.stdout, "greeting").contains("ZMTP 3.1, mechanism CURVE"));
}

#[test]
fn a_zmtp_2_peer_is_too_old() {
    let ep = server(|mut s| {
        // ZMTP 2.0 (libzmq 3.x): signature, revision 1, socket type 4 (REP).
        let mut g = Greeting::ours().to_bytes();
        g[10] = 1;
        g[11] = 4;
        let _ = s.write_all(&g[..12]);
        echo(s);
    });
    let p = run(&["probe", &ep], "");
    assert_eq!(p.code, Some(22), "{p:?}");
    assert!(
        line(&p.stdout, "greeting").contains("ZMTP 2.0 (revision byte 1"),
        "{}",
        p.stdout
    );
}

#[test]
fn a_peer_that_closes_after_its_greeting_fails_the_handshake() {
    let ep = server(|mut s| {
        let _ = s.write_all(&Greeting::ours().to_bytes());
        let mut theirs = [0u8; 64];
        let _ = s.read_exact(&mut theirs);
    });
    let p = run(&["probe", &ep], "");
    assert_eq!(p.code, Some(24), "{p:?}");
    assert!(line(&p.stdout, "greeting").contains("mechanism NULL"));
    let ready = line(&p.stdout, "ready");
    assert!(ready.contains("before READY"), "{ready}");
}

#[test]
fn a_live_rep_is_reported_with_its_type_and_compatibility() {
    let ctx = Context::new();
    let rep = ctx.socket(SocketType::Rep).expect("socket");
    let ep = rep.bind("tcp://127.0.0.1:*").expect("bind");

    let p = run(&["probe", &ep, "--type", "req"], "");
    assert_eq!(p.code, Some(0), "{p:?}");
    assert!(line(&p.stdout, "greeting").contains("ZMTP 3.1, mechanism NULL"));
    assert!(line(&p.stdout, "ready").contains("peer socket type REP"));
    assert!(line(&p.stdout, "compat").contains("REQ can talk to REP"));

    let p = run(&["probe", &ep, "--type", "pub"], "");
    assert_eq!(p.code, Some(25), "{p:?}");
    assert!(line(&p.stdout, "ready").contains("peer socket type REP"));
    assert!(line(&p.stdout, "compat").contains("REP talks to REQ, DEALER"));

    // Without --type any peer passes, and the table says who fits it.
    let p = run(&["probe", &ep], "");
    assert_eq!(p.code, Some(0), "{p:?}");
    assert!(line(&p.stdout, "compat").contains("REP talks to REQ, DEALER"));

    // The probes left the REP serving: a real request still gets through.
    let req = ctx.socket(SocketType::Req).expect("socket");
    req.connect(&ep).expect("connect");
    req.send("ping").expect("send");
    let got = rep.recv_timeout(LIMIT).expect("request");
    assert_eq!(got.first().map(|f| &f[..]), Some(&b"ping"[..]));
}

#[test]
fn monitor_prints_timestamped_connect_events_and_status() {
    let ctx = Context::new();
    let rep = ctx.socket(SocketType::Rep).expect("socket");
    let ep = rep.bind("tcp://127.0.0.1:*").expect("bind");
    let mut m = spawn(
        &[
            "monitor",
            &ep,
            "--type",
            "req",
            "--interval-ms",
            "50",
            "--timeout-ms",
            "20000",
        ],
        "",
    );
    let connected = m.expect_stdout("with CONNECTED", |l| l.contains(" CONNECTED"));
    m.expect_stdout("with HANDSHAKE_SUCCEEDED", |l| {
        l.contains("HANDSHAKE_SUCCEEDED")
    });
    let status = m.expect_stdout("with a connected status", |l| {
        l.contains(" status ") && l.contains(" connected ")
    });
    let ended = m.kill();
    for l in [&connected, &status] {
        assert!(l.contains(&ep), "{l}");
        // 2026-11-30T00:41:02.123Z
        let ts = l.split(' ').next().unwrap_or_default();
        assert_eq!(ts.len(), 24, "{l}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{l}");
    }
    assert!(status.contains("attempts=1"), "{status}");
    assert!(ended.stderr.is_empty(), "{ended:?}");
}

/// Runs `fzmq ARGS` inside a new network namespace (`unshare --net`)
/// after `setup` (shell commands: `ip`, `iptables`), where rules and
/// routes die with the namespace. Needs root, `unshare`, `ip` and
/// `iptables`, as the library's namespace tests do (`.ci/run` installs
/// them); without them the test fails and says so, rather than pass
/// unrun.
fn probe_in_netns(setup: &str, args: &str) -> util::Ended {
    let script = format!(
        "set -e; ip link set lo up; {setup}; exec '{}' probe {args}",
        env!("CARGO_BIN_EXE_fzmq")
    );
    let out = std::process::Command::new("unshare")
        .args(["--net", "--", "sh", "-c", &script])
        .output()
        .unwrap_or_else(|e| panic!("cannot start unshare(1) (util-linux): {e}"));
    let ended = util::Ended {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // fzmq exits 0, 2 or 10..=25; anything else is the setup failing.
    assert!(
        ended.stdout.starts_with("probe "),
        "the namespace could not be set up (this test needs root, `ip` and \
         `iptables`; `cargo test -- --skip netns` deselects it): {ended:?}"
    );
    ended
}

#[test]
fn netns_dropped_syns_time_out() {
    let p = probe_in_netns(
        "iptables -A OUTPUT -p tcp --dport 9 -j DROP",
        "tcp://127.0.0.1:9 --timeout-ms 200",
    );
    assert_eq!(p.code, Some(12), "{p:?}");
    assert!(line(&p.stdout, "tcp").contains("timed out"), "{}", p.stdout);
}

#[test]
fn netns_icmp_host_unreachable_is_unreachable() {
    let p = probe_in_netns(
        "iptables -A OUTPUT -p tcp --dport 9 -j REJECT --reject-with icmp-host-unreachable",
        "tcp://127.0.0.1:9",
    );
    assert_eq!(p.code, Some(13), "{p:?}");
    assert!(
        line(&p.stdout, "tcp").contains("unreachable"),
        "{}",
        p.stdout
    );
}

#[test]
fn netns_no_route_is_unreachable() {
    // The namespace has no route but loopback's.
    let p = probe_in_netns("true", "tcp://192.0.2.1:9");
    assert_eq!(p.code, Some(13), "{p:?}");
    assert!(
        line(&p.stdout, "tcp").contains("unreachable"),
        "{}",
        p.stdout
    );
}
