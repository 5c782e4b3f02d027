//! Option setters: each class of `ferrozmq::options` (applies at once, set
//! before the first bind or connect, validated), and that no setter
//! silently ignores its value.

mod util;

use ferrozmq::{Error, ReconnectStop, Socket, SocketType};
use std::time::Duration;
use util::*;

/// Sends until the socket refuses, returning how many it took.
fn fill(s: &Socket) -> usize {
    let mut n = 0;
    loop {
        match s.try_send(format!("m{n}")) {
            Ok(()) => n += 1,
            Err(e) if e.error.is_would_block() => return n,
            Err(e) => panic!("send {n}: {e}"),
        }
        assert!(n <= 10_000, "the HWM never applied");
    }
}

// ----- applies at once -----

#[test]
fn a_raised_sndhwm_applies_to_an_existing_pipe() {
    let ctx = ctx();
    let push = socket(&ctx, SocketType::Push);
    push.set_linger(Some(Duration::ZERO)).unwrap();
    push.set_sndhwm(3).unwrap();
    push.connect(&free_endpoint()).unwrap();
    assert_eq!(fill(&push), 3);

    push.set_sndhwm(5).unwrap();
    assert_eq!(push.sndhwm(), 5);
    assert_eq!(fill(&push), 2, "the pipe made at connect takes the new HWM");

    // Lowered, it drops nothing queued and refuses until below it.
    push.set_sndhwm(1).unwrap();
    assert_eq!(fill(&push), 0);
}

#[test]
fn a_raised_sndhwm_wakes_a_blocked_sender() {
    let ctx = ctx();
    let push = std::sync::Arc::new(socket(&ctx, SocketType::Push));
    push.set_linger(Some(Duration::ZERO)).unwrap();
    push.set_sndhwm(1).unwrap();
    push.connect(&free_endpoint()).unwrap();
    push.try_send("first").unwrap();

    let sender = {
        let push = push.clone();
        std::thread::spawn(move || push.send_timeout("second", TIMEOUT).map_err(|e| e.error))
    };
    await_blocked(&push, 1);
    push.set_sndhwm(2).unwrap();
    let sent = sender.join().expect("sender thread");
    assert!(sent.is_ok(), "the blocked send finished: {sent:?}");
}

#[test]
fn a_raised_rcvhwm_resumes_a_paused_inproc_pipe() {
    let ctx = ctx();
    let name = unique_name("opts-rcvhwm");
    let pull = socket(&ctx, SocketType::Pull);
    pull.set_rcvhwm(1).unwrap();
    pull.bind(&format!("inproc://{name}")).unwrap();
    let push = socket(&ctx, SocketType::Push);
    push.set_sndhwm(1).unwrap();
    push.connect(&format!("inproc://{name}")).unwrap();

    // An inproc pipe holds the sender's sndhwm plus the receiver's rcvhwm.
    assert_eq!(fill(&push), 2);
    pull.set_rcvhwm(5).unwrap();
    // The receiver took the sender's queued message at once (no recv),
    // and takes up to its new HWM.
    assert_eq!(fill(&push), 4);

    for i in 0..6 {
        let m = pull.recv_timeout(TIMEOUT).unwrap();
        assert_eq!(m.to_str().unwrap(), format!("m{}", [0, 1, 0, 1, 2, 3][i]));
    }
    assert!(pull.try_recv().unwrap_err().is_would_block());
}

#[test]
fn a_connection_made_after_an_hwm_change_takes_the_new_hwm() {
    let ctx = ctx();
    let name = unique_name("opts-accepted");
    let pull = socket(&ctx, SocketType::Pull);
    pull.bind(&format!("inproc://{name}")).unwrap();
    // After the bind: the connection it accepts next has the new HWM.
    pull.set_rcvhwm(2).unwrap();
    let push = socket(&ctx, SocketType::Push);
    push.set_sndhwm(1).unwrap();
    push.connect(&format!("inproc://{name}")).unwrap();
    assert_eq!(fill(&push), 3);
}

#[test]
fn live_options_change_after_connect() {
    let ctx = ctx();
    let req = socket(&ctx, SocketType::Req);
    req.connect(&free_endpoint()).unwrap();
    req.set_linger(None).unwrap();
    req.set_sndtimeo(Some(Duration::from_millis(5))).unwrap();
    req.set_rcvtimeo(None).unwrap();
    req.set_immediate(true).unwrap();
    req.set_req_relaxed(true).unwrap();
    req.set_req_correlate(true).unwrap();
    req.set_inbound_budget(Some(1 << 20)).unwrap();
    req.set_sndhwm(7).unwrap();
    req.set_rcvhwm(9).unwrap();
    let o = req.options();
    assert_eq!(o.linger, None);
    assert_eq!(o.sndtimeo, Some(Duration::from_millis(5)));
    assert!(o.immediate && o.req_relaxed && o.req_correlate);
    assert_eq!(
        (o.inbound_budget, o.sndhwm, o.rcvhwm),
        (Some(1 << 20), 7, 9)
    );
    req.set_linger(Some(Duration::ZERO)).unwrap();
}

// ----- set before the first bind or connect -----

/// Every option that shapes connections, set to a valid value that
/// differs from the default, with its name.
/// Sets one option on a socket.
type Setter = Box<dyn Fn(&Socket) -> ferrozmq::Result<()>>;

fn before_connect_setters() -> Vec<(&'static str, Setter)> {
    vec![
        ("routing_id", Box::new(|s| s.set_routing_id("late"))),
        (
            "reconnect_ivl",
            Box::new(|s| s.set_reconnect_ivl(Some(Duration::from_secs(3)))),
        ),
        (
            "reconnect_ivl_max",
            Box::new(|s| s.set_reconnect_ivl_max(Duration::from_secs(9))),
        ),
        (
            "reconnect_stop",
            Box::new(|s| {
                s.set_reconnect_stop(ReconnectStop {
                    conn_refused: true,
                    ..ReconnectStop::default()
                })
            }),
        ),
        (
            "connect_timeout",
            Box::new(|s| s.set_connect_timeout(Duration::from_secs(2))),
        ),
        (
            "handshake_ivl",
            Box::new(|s| s.set_handshake_ivl(Duration::from_secs(2))),
        ),
        (
            "heartbeat_ivl",
            Box::new(|s| s.set_heartbeat_ivl(Some(Duration::from_secs(1)))),
        ),
        (
            "heartbeat_timeout",
            Box::new(|s| s.set_heartbeat_timeout(Some(Duration::from_secs(1)))),
        ),
        (
            "heartbeat_ttl",
            Box::new(|s| s.set_heartbeat_ttl(Some(Duration::from_secs(1)))),
        ),
        ("maxmsgsize", Box::new(|s| s.set_maxmsgsize(Some(100)))),
        ("backlog", Box::new(|s| s.set_backlog(10))),
        (
            "tcp_keepalive",
            Box::new(|s| s.set_tcp_keepalive(Some(true))),
        ),
        (
            "tcp_keepalive_idle",
            Box::new(|s| s.set_tcp_keepalive_idle(Some(Duration::from_secs(60)))),
        ),
        (
            "tcp_keepalive_cnt",
            Box::new(|s| s.set_tcp_keepalive_cnt(Some(3))),
        ),
        (
            "tcp_keepalive_intvl",
            Box::new(|s| s.set_tcp_keepalive_intvl(Some(Duration::from_secs(5)))),
        ),
        ("plain_server", Box::new(|s| s.set_plain_server(true))),
        ("plain_username", Box::new(|s| s.set_plain_username("u"))),
        ("plain_password", Box::new(|s| s.set_plain_password("p"))),
        ("curve_server", Box::new(|s| s.set_curve_server(true))),
        (
            "curve_keypair",
            Box::new(|s| s.set_curve_keypair(&ferrozmq::CurveKeyPair::generate())),
        ),
        (
            "curve_publickey",
            Box::new(|s| s.set_curve_publickey([1u8; 32])),
        ),
        (
            "curve_secretkey",
            Box::new(|s| s.set_curve_secretkey([1u8; 32])),
        ),
        (
            "curve_serverkey",
            Box::new(|s| s.set_curve_serverkey([1u8; 32])),
        ),
        ("zap_domain", Box::new(|s| s.set_zap_domain("late"))),
    ]
}

/// The option values as `Debug` shows them, secrets redacted, so that a
/// change to any of them shows.
fn snapshot(s: &Socket) -> String {
    format!("{:?}", s.options())
}

#[test]
fn shaping_options_after_connect_fail_and_change_nothing() {
    let ctx = ctx();
    let dealer = socket(&ctx, SocketType::Dealer);
    dealer.set_linger(Some(Duration::ZERO)).unwrap();
    dealer.connect(&free_endpoint()).unwrap();
    let before = snapshot(&dealer);
    for (name, set) in before_connect_setters() {
        match set(&dealer) {
            Err(Error::OptionAfterConnect { option }) => assert_eq!(option, name),
            other => panic!("{name} after connect: {other:?}"),
        }
    }
    assert_eq!(snapshot(&dealer), before, "no value changed");
}

#[test]
fn shaping_options_after_bind_fail_too() {
    let ctx = ctx();
    let pub_ = socket(&ctx, SocketType::Pub);
    bind_local(&pub_);
    let before = pub_.subscription_limit();
    let err = pub_.set_subscription_limit(Some(10)).unwrap_err();
    assert!(matches!(
        err,
        Error::OptionAfterConnect {
            option: "subscription_limit"
        }
    ));
    assert_eq!(pub_.subscription_limit(), before);
    let text = err.to_string();
    assert!(
        text.contains("before the socket's first bind or connect") && text.contains("not changed"),
        "{text}"
    );
}

#[test]
fn shaping_options_before_connect_are_kept() {
    let ctx = ctx();
    let dealer = socket(&ctx, SocketType::Dealer);
    for (name, set) in before_connect_setters() {
        set(&dealer).unwrap_or_else(|e| panic!("{name} before connect: {e}"));
    }
    let o = dealer.options();
    assert_eq!(o.routing_id, "late");
    assert_eq!(o.heartbeat_ivl, Some(Duration::from_secs(1)));
    assert_eq!(o.zap_domain, "late");
    assert_eq!(o.backlog, 10);
}

#[test]
fn a_connect_refused_before_it_reads_the_options_does_not_fix_them() {
    let ctx = ctx();
    let req = socket(&ctx, SocketType::Req);
    assert!(matches!(
        req.connect("nonsense"),
        Err(Error::InvalidEndpoint(_))
    ));
    // A CURVE client without its secret key: refused, then completed.
    req.set_curve_serverkey(ferrozmq::CurveKeyPair::generate().public.to_z85())
        .unwrap();
    assert!(matches!(
        req.connect(&free_endpoint()),
        Err(Error::InvalidOption(_))
    ));
    req.set_curve_keypair(&ferrozmq::CurveKeyPair::generate())
        .unwrap();
    req.set_linger(Some(Duration::ZERO)).unwrap();
    req.connect(&free_endpoint()).unwrap();
    assert!(matches!(
        req.set_routing_id("late"),
        Err(Error::OptionAfterConnect { .. })
    ));
}

// ----- validation -----

fn assert_invalid(result: ferrozmq::Result<()>, what: &str) {
    match result {
        Err(Error::InvalidOption(why)) => assert!(!why.is_empty(), "{what}"),
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn options_for_another_socket_type_are_refused() {
    let ctx = ctx();
    let dealer = socket(&ctx, SocketType::Dealer);
    let before = snapshot(&dealer);
    assert_invalid(dealer.set_req_relaxed(true), "req_relaxed on DEALER");
    assert_invalid(dealer.set_req_correlate(true), "req_correlate on DEALER");
    assert_invalid(dealer.set_req_resend(true), "req_resend on DEALER");
    assert_invalid(dealer.set_router_mandatory(true), "router_mandatory");
    assert_invalid(dealer.set_xpub_verbose(true), "xpub_verbose");
    assert_invalid(dealer.set_xpub_verboser(true), "xpub_verboser");
    assert_invalid(dealer.set_xpub_manual(true), "xpub_manual");
    assert_invalid(dealer.set_xpub_nodrop(true), "xpub_nodrop");
    assert_invalid(
        dealer.set_xpub_welcome_msg(Some("hi".into())),
        "xpub_welcome_msg",
    );
    assert_invalid(
        dealer.set_subscription_limit(Some(10)),
        "subscription_limit on DEALER",
    );
    assert_eq!(snapshot(&dealer), before);

    let push = socket(&ctx, SocketType::Push);
    assert_invalid(push.set_conflate(true), "conflate on PUSH");
    assert!(!push.conflate());
    for ty in [SocketType::Sub, SocketType::Pull, SocketType::Dealer] {
        socket(&ctx, ty).set_conflate(true).unwrap();
    }
    socket(&ctx, SocketType::Router)
        .set_router_mandatory(true)
        .unwrap();
    socket(&ctx, SocketType::XPub)
        .set_xpub_nodrop(true)
        .unwrap();
    socket(&ctx, SocketType::XPub)
        .set_subscription_limit(Some(10))
        .unwrap();
}

#[test]
fn out_of_range_values_are_refused() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Dealer);
    let before = snapshot(&s);
    let zero = Some(Duration::ZERO);
    assert_invalid(s.set_backlog(0), "backlog 0");
    assert_invalid(s.set_backlog(-1), "backlog -1");
    assert_invalid(s.set_heartbeat_ivl(zero), "heartbeat_ivl 0");
    assert_invalid(s.set_heartbeat_timeout(zero), "heartbeat_timeout 0");
    assert_invalid(s.set_heartbeat_ttl(zero), "heartbeat_ttl 0");
    assert_invalid(
        s.set_heartbeat_ttl(Some(Duration::from_millis(6_553_600))),
        "heartbeat_ttl past 6553.5 s",
    );
    assert_invalid(s.set_reconnect_ivl(zero), "reconnect_ivl 0");
    assert_invalid(s.set_inbound_budget(Some(0)), "inbound_budget 0");
    assert_invalid(s.set_tcp_keepalive_cnt(Some(0)), "tcp_keepalive_cnt 0");
    assert_invalid(s.set_tcp_keepalive_cnt(Some(128)), "tcp_keepalive_cnt 128");
    assert_invalid(
        s.set_tcp_keepalive_idle(Some(Duration::from_millis(500))),
        "tcp_keepalive_idle under a second",
    );
    assert_invalid(
        s.set_tcp_keepalive_intvl(Some(Duration::from_secs(40_000))),
        "tcp_keepalive_intvl past 32767 s",
    );
    assert_invalid(s.set_routing_id(""), "empty routing_id");
    assert_invalid(s.set_routing_id(vec![0u8, 1]), "routing_id starting with 0");
    assert_invalid(s.set_plain_username(vec![b'u'; 256]), "long username");
    assert_invalid(s.set_curve_serverkey([1u8; 31]), "short CURVE key");
    assert_invalid(s.set_zap_domain("d".repeat(256)), "long zap_domain");
    assert_eq!(snapshot(&s), before, "no value changed");

    // The edges that are valid.
    s.set_heartbeat_ttl(Some(Duration::from_millis(6_553_500)))
        .unwrap();
    s.set_heartbeat_ttl(Some(Duration::from_millis(100)))
        .unwrap();
    s.set_backlog(1).unwrap();
    s.set_tcp_keepalive_cnt(Some(127)).unwrap();
    s.set_linger(zero).unwrap();
    s.set_sndtimeo(zero).unwrap();
    s.set_sndhwm(0).unwrap();
}

#[test]
fn a_closed_socket_refuses_every_setter() {
    let ctx = ctx();
    let s = socket(&ctx, SocketType::Req);
    s.close();
    assert!(matches!(s.set_sndhwm(5), Err(Error::SocketClosed)));
    assert!(matches!(s.set_linger(None), Err(Error::SocketClosed)));
    assert!(matches!(s.set_req_relaxed(true), Err(Error::SocketClosed)));
    assert!(matches!(s.set_routing_id("x"), Err(Error::SocketClosed)));
    assert!(matches!(
        s.set_heartbeat_ivl(Some(Duration::from_secs(1))),
        Err(Error::SocketClosed)
    ));
    assert!(matches!(s.set_zap_domain("x"), Err(Error::SocketClosed)));
}
