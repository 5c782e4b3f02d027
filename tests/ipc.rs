//! What only `ipc://` has: the socket file (stale, live, ours or not),
//! the abstract namespace, the wildcard, relative and too-long paths,
//! and the connecter's classes for a missing path.

mod util;

use ferrozmq::endpoint::EndpointErrorKind;
use ferrozmq::{ConnectFailure, Error, EventKind, SocketType};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;
use util::*;

fn ipc(path: &Path) -> String {
    format!("ipc://{}", path.display())
}

/// A REQ/REP round trip over `ep`, bound by a fresh REP.
fn serves(ctx: &ferrozmq::Context, ep: &str) -> ferrozmq::Socket {
    let rep = socket(ctx, SocketType::Rep);
    rep.bind(ep).unwrap_or_else(|e| panic!("bind {ep}: {e}"));
    let req = socket(ctx, SocketType::Req);
    req.connect(ep).expect("connect");
    send(&req, "hi", "req");
    assert_eq!(strs(&recv(&rep, "rep")), ["hi"]);
    send(&rep, "ho", "rep");
    assert_eq!(strs(&recv(&req, "req")), ["ho"]);
    rep
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let path = temp_path("stale");
    drop(UnixListener::bind(&path).expect("std bind"));
    assert!(path.exists(), "a closed std listener leaves its file");
    let ctx = ctx();
    let rep = serves(&ctx, &ipc(&path));
    drop(rep);
    ctx.term();
    assert!(!path.exists(), "the replaced file is ours, and removed");
}

#[test]
fn a_live_listener_keeps_its_address() {
    let path = temp_path("live");
    let live = UnixListener::bind(&path).expect("std bind");
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    match rep.bind(&ipc(&path)) {
        Err(Error::AddressInUse(ep)) => assert_eq!(ep, ipc(&path)),
        other => panic!("bind over a live listener: {other:?}"),
    }
    drop(rep);
    ctx.term();
    assert!(path.exists(), "someone else's socket file was removed");
    drop(live);
    std::fs::remove_file(&path).expect("clean up");
}

#[test]
fn the_file_goes_with_unbind_close_and_term() {
    let ctx = ctx();
    // unbind
    let path = temp_path("unbind");
    let rep = serves(&ctx, &ipc(&path));
    assert!(path.exists());
    rep.unbind(&ipc(&path)).expect("unbind");
    assert!(!path.exists(), "unbind left {path:?}");
    // close
    let path = temp_path("close");
    let rep = serves(&ctx, &ipc(&path));
    rep.close().wait_timeout(TIMEOUT).expect("close report");
    assert!(!path.exists(), "close left {path:?}");
    // term
    let path = temp_path("term");
    let _rep = serves(&ctx, &ipc(&path));
    ctx.term();
    assert!(!path.exists(), "term left {path:?}");
}

#[test]
fn a_file_we_did_not_create_is_left_alone() {
    let path = temp_path("theirs");
    let ctx = ctx();
    let rep = serves(&ctx, &ipc(&path));
    // Someone replaces our socket file with their own.
    std::fs::remove_file(&path).expect("remove ours");
    std::fs::write(&path, b"not a socket").expect("write theirs");
    rep.unbind(&ipc(&path)).expect("unbind");
    assert_eq!(std::fs::read(&path).expect("still there"), b"not a socket");
    // And a bind over a file that is no socket does not remove it.
    assert!(matches!(rep.bind(&ipc(&path)), Err(Error::AddressInUse(_))));
    assert!(path.exists());
    drop(rep);
    ctx.term();
    std::fs::remove_file(&path).expect("clean up");
}

#[test]
fn a_missing_path_is_refused_and_retried_on_backoff() {
    let path = temp_path("later");
    let ctx = ctx();
    let req = socket(&ctx, SocketType::Req);
    req.set_reconnect_ivl(Some(Duration::from_millis(20)))
        .unwrap();
    let events = req.monitor();
    req.connect(&ipc(&path)).expect("connect");
    wait_event(&events, TIMEOUT, |e| match &e.kind {
        EventKind::ConnectFailed { cause, error } => {
            assert_eq!(*cause, ConnectFailure::Refused);
            assert_eq!(
                error.as_ref().and_then(|e| e.raw_os_error()),
                Some(libc_enoent())
            );
            true
        }
        _ => false,
    });
    wait_event(&events, TIMEOUT, |e| {
        matches!(e.kind, EventKind::ConnectRetried { .. })
    });
    let status = req.endpoints().expect("status");
    assert_eq!(
        status[0].last_error.as_ref().map(|(c, _)| *c),
        Some(ConnectFailure::Refused)
    );
    // The server appears: the next attempt connects.
    let rep = socket(&ctx, SocketType::Rep);
    rep.bind(&ipc(&path)).expect("bind");
    send(&req, "late", "req");
    assert_eq!(strs(&recv(&rep, "rep")), ["late"]);
    drop((req, rep));
    ctx.term();
}

fn libc_enoent() -> i32 {
    std::io::Error::from(std::io::ErrorKind::NotFound)
        .raw_os_error()
        .unwrap_or(2)
}

#[cfg(target_os = "linux")]
#[test]
fn the_abstract_namespace_has_no_file() {
    let name = unique_name("ferrozmq-abstract");
    let ctx = ctx();
    let ep = format!("ipc://@{name}");
    let rep = serves(&ctx, &ep);
    assert_eq!(rep.last_endpoint(), Some(ep.clone()));
    assert!(!Path::new(&name).exists());
    // The name is taken while we listen.
    let other = socket(&ctx, SocketType::Rep);
    assert!(matches!(other.bind(&ep), Err(Error::AddressInUse(_))));
    drop((rep, other));
    ctx.term();
}

#[test]
fn the_wildcard_makes_a_fresh_path_and_cleans_it_up() {
    let ctx = ctx();
    let a = socket(&ctx, SocketType::Pull);
    let b = socket(&ctx, SocketType::Pull);
    let ea = a.bind("ipc://*").expect("bind a");
    let eb = b.bind("ipc://*").expect("bind b");
    assert_ne!(ea, eb);
    assert_eq!(a.last_endpoint(), Some(ea.clone()));
    assert_eq!(a.endpoints().expect("status")[0].endpoint, ea);
    let pa = Path::new(ea.strip_prefix("ipc://").expect("ipc")).to_owned();
    assert!(pa.starts_with(std::env::temp_dir()), "{ea}");
    assert!(pa.exists());
    a.unbind(&ea).expect("unbind by the bound endpoint");
    assert!(!pa.exists());
    assert!(!pa.parent().expect("dir").exists(), "its directory stays");
    let pb = Path::new(eb.strip_prefix("ipc://").expect("ipc")).to_owned();
    drop((a, b));
    ctx.term();
    assert!(!pb.exists() && !pb.parent().expect("dir").exists());
}

#[test]
fn relative_paths_are_relative_to_the_working_directory() {
    let rel = format!("target/{}", unique_name("ferrozmq-rel"));
    let ctx = ctx();
    let rep = serves(&ctx, &format!("ipc://{rel}"));
    assert!(Path::new(&rel).exists());
    drop(rep);
    ctx.term();
    assert!(!Path::new(&rel).exists());
}

#[test]
fn too_long_paths_are_a_clear_error() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Push);
    let long = format!("ipc:///tmp/{}", "x".repeat(120));
    for result in [s.bind(&long).map(drop), s.connect(&long)] {
        match result {
            Err(Error::InvalidEndpoint(e)) => {
                assert!(
                    matches!(e.kind, EndpointErrorKind::PathTooLong { len: 125 }),
                    "{e}"
                );
                assert!(e.to_string().contains("sun_path"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
    drop(s);
    ctx.term();
}

/// Writes that fill the Unix socket's buffer, by the I/O thread (a
/// stream) and by the sending thread itself (a reply right after a
/// `recv`), finish: the blocked writer is always watched for
/// writability, though an idle Unix stream is not (its peer's every read
/// would wake the I/O thread).
#[test]
fn writes_that_fill_the_buffer_finish() {
    let ctx = ctx();
    let path = temp_path("full");
    let rep = socket(&ctx, SocketType::Rep);
    rep.bind(&ipc(&path)).expect("bind");
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ipc(&path)).expect("connect");
    let big = vec![5u8; 2 << 20];
    for i in 0..20 {
        send(&req, big.clone(), "request");
        let q = recv(&rep, "rep");
        assert_eq!(q.byte_len(), big.len(), "request {i}");
        send(&rep, big.clone(), "reply");
        assert_eq!(recv(&req, "req").byte_len(), big.len(), "reply {i}");
    }
    // A stream to a reader that stops now and then.
    let pull = socket(&ctx, SocketType::Pull);
    let ep = pull.bind("ipc://*").expect("bind");
    let push = socket(&ctx, SocketType::Push);
    push.connect(&ep).expect("connect");
    let body = vec![1u8; 64 * 1024];
    let sender = std::thread::spawn(move || {
        for _ in 0..2000 {
            send(&push, body.clone(), "push");
        }
        push
    });
    for i in 0..2000 {
        if i % 500 == 0 {
            // Let the writer run into a full buffer.
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(recv(&pull, "pull").byte_len(), 64 * 1024);
    }
    drop(sender.join());
}

/// Security mechanisms run over ipc:// as over TCP: the same session.
#[test]
fn curve_over_ipc() {
    let ctx = ctx();
    let (server, client) = (
        ferrozmq::CurveKeyPair::generate(),
        ferrozmq::CurveKeyPair::generate(),
    );
    let rep = socket(&ctx, SocketType::Rep);
    rep.set_curve_keypair(&server).unwrap();
    rep.set_curve_server(true).unwrap();
    let ep = rep.bind("ipc://*").expect("bind");
    let req = socket(&ctx, SocketType::Req);
    req.set_curve_keypair(&client).unwrap();
    req.set_curve_serverkey(server.public.to_z85().as_bytes())
        .expect("server key");
    req.connect(&ep).expect("connect");
    send(&req, "secret", "req");
    assert_eq!(strs(&recv(&rep, "rep")), ["secret"]);
    send(&rep, "sealed", "rep");
    assert_eq!(strs(&recv(&req, "req")), ["sealed"]);
    // A client with the wrong server key is refused, over ipc too: the
    // server cannot open its HELLO.
    let refused = rep.monitor();
    let intruder = socket(&ctx, SocketType::Req);
    intruder
        .set_curve_keypair(&ferrozmq::CurveKeyPair::generate())
        .unwrap();
    intruder
        .set_curve_serverkey(
            ferrozmq::CurveKeyPair::generate()
                .public
                .to_z85()
                .as_bytes(),
        )
        .expect("server key");
    intruder.connect(&ep).expect("connect");
    wait_event(&refused, TIMEOUT, |e| {
        matches!(e.kind, EventKind::HandshakeFailed { .. })
    });
}
