//! Wildcard binds return concrete endpoints; IPv6 loopback works, on the
//! machine's loopback or else in a private network namespace.

mod util;

use ferrozmq::{Context, SocketType};
use util::*;

/// Binds a REP to `requested`, checks the returned endpoint, and runs one
/// request through `connect_host` on the bound port.
fn bind_and_use(ctx: &Context, requested: &str, prefix: &str, connect_host: &str) -> String {
    let rep = socket(ctx, SocketType::Rep);
    let bound = rep
        .bind(requested)
        .unwrap_or_else(|e| panic!("bind {requested}: {e:?}"));
    assert!(
        bound.starts_with(prefix),
        "bind({requested}) returned {bound}, expected {prefix}..."
    );
    let port = port_of(&bound);
    assert_ne!(port, 0, "{bound}");
    assert_eq!(rep.last_endpoint().as_deref(), Some(bound.as_str()));

    let req = socket(ctx, SocketType::Req);
    req.connect(&format!("tcp://{connect_host}:{port}"))
        .expect("connect");
    send(&req, requested, "request");
    assert_eq!(strs(&recv(&rep, "server")), [requested]);
    send(&rep, "ok", "reply");
    assert_eq!(strs(&recv(&req, "client")), ["ok"]);
    bound
}

#[test]
fn bind_star_star_returns_concrete_endpoint() {
    let ctx = ctx();
    bind_and_use(&ctx, "tcp://*:*", "tcp://0.0.0.0:", "127.0.0.1");
}

#[test]
fn bind_any_ipv4_returns_concrete_endpoint() {
    let ctx = ctx();
    bind_and_use(&ctx, "tcp://0.0.0.0:*", "tcp://0.0.0.0:", "127.0.0.1");
    bind_and_use(&ctx, "tcp://0.0.0.0:0", "tcp://0.0.0.0:", "127.0.0.1");
}

#[test]
fn bind_loopback_with_zero_port() {
    let ctx = ctx();
    bind_and_use(&ctx, "tcp://127.0.0.1:0", "tcp://127.0.0.1:", "127.0.0.1");
}

#[test]
fn bind_and_connect_by_localhost_name() {
    // `localhost` resolves from /etc/hosts; bind prefers its IPv4 address.
    let ctx = ctx();
    bind_and_use(&ctx, "tcp://localhost:*", "tcp://127.0.0.1:", "localhost");
}

/// Many containers run without IPv6 on their loopback; there the test
/// moves to a private network namespace, whose loopback has ::1 wherever
/// the kernel has IPv6 at all. That needs root (see `util::netns`).
#[test]
fn ipv6_loopback() {
    let check = || {
        let ctx = ctx();
        let bound = bind_and_use(&ctx, "tcp://[::1]:*", "tcp://[::1]:", "[::1]");
        assert!(bound.starts_with("tcp://[::1]:"), "{bound}");
    };
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        check();
    } else {
        netns::in_netns(check);
    }
}

#[test]
fn last_endpoint_tracks_connect_and_bind() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Dealer);
    s.set_linger(Some(std::time::Duration::ZERO)).unwrap();
    assert_eq!(s.last_endpoint(), None);
    let bound = bind_local(&s);
    assert_eq!(s.last_endpoint(), Some(bound));
    let target = free_endpoint();
    s.connect(&target).expect("connect");
    assert_eq!(s.last_endpoint(), Some(target));
}
