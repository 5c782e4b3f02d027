//! Limits: `maxmsgsize`, high-water marks and unroutable messages.
//!
//! - A peer that sends a message over `maxmsgsize` is disconnected (with
//!   `MessageTooLarge`), and only that peer: others keep working. For
//!   multipart messages the limit applies to the sum of the frames.
//! - At the HWM, DEALER, PUSH and REQ never drop silently: a send that
//!   cannot proceed returns the very message in its error, and a blocked
//!   send completes once there is room (or a peer).
//! - A ROUTER drops unroutable messages and counts them, or with
//!   `router_mandatory` fails with `HostUnreachable`.

mod util;

use bytes::Bytes;
use crossbeam_channel::Receiver;
use ferrozmq::{
    Context, Error, EventKind, Message, MonitorEvent, ProtocolError, Socket, SocketStats,
    SocketType,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};
use util::raw::{greeting, ready};

/// Bound of any wait that is expected to succeed; generous for a loaded
/// 2-core machine running debug builds.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for something that must not happen.
const SHORT: Duration = Duration::from_millis(300);
/// Large messages fill the kernel buffers quickly, bounding the fill loops.
const BIG: usize = 64 * 1024;
/// Upper bound of messages a fill loop may accept before back-pressure.
const MAX_FILL: u32 = 10_000;

// ----- helpers -----

/// A socket with linger 0 and bounded plain send/recv.
fn sock(ctx: &Context, ty: SocketType) -> Socket {
    let s = ctx.socket(ty).expect("create socket");
    s.set_linger(Some(Duration::ZERO)).unwrap();
    s.set_sndtimeo(Some(TIMEOUT)).unwrap();
    s.set_rcvtimeo(Some(TIMEOUT)).unwrap();
    s
}

fn bind_local(s: &Socket) -> String {
    s.bind("tcp://127.0.0.1:*").expect("bind tcp://127.0.0.1:*")
}

/// Waits for the first event matching `pred`, keeping the others in
/// `seen`. Panics after [`TIMEOUT`].
fn wait_event(
    mon: &Receiver<MonitorEvent>,
    seen: &mut Vec<MonitorEvent>,
    what: &str,
    pred: impl Fn(&EventKind) -> bool,
) -> MonitorEvent {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match mon.recv_timeout(left) {
            Ok(ev) if pred(&ev.kind) => return ev,
            Ok(ev) => seen.push(ev),
            Err(_) => panic!("no {what} event within {TIMEOUT:?}; saw {seen:?}"),
        }
    }
}

fn is_handshake_ok(k: &EventKind) -> bool {
    matches!(k, EventKind::HandshakeSucceeded)
}

fn is_terminal(k: &EventKind) -> bool {
    matches!(
        k,
        EventKind::HandshakeFailed { .. } | EventKind::Disconnected { .. }
    )
}

fn too_large(size: u64, limit: u64) -> impl Fn(&EventKind) -> bool {
    move |k| {
        matches!(
            k,
            EventKind::Disconnected {
                reason: Some(ProtocolError::MessageTooLarge { size: s, limit: l }),
                ..
            } if *s == size && *l == limit
        )
    }
}

/// No connection of this socket was dropped, as far as its monitor says.
fn assert_no_drops(mon: &Receiver<MonitorEvent>, seen: &[MonitorEvent], what: &str) {
    let later: Vec<MonitorEvent> = mon.try_iter().collect();
    let drops: Vec<&MonitorEvent> = seen
        .iter()
        .chain(&later)
        .filter(|e| is_terminal(&e.kind))
        .collect();
    assert!(drops.is_empty(), "{what}: unexpected drops {drops:?}");
}

/// One REQ/REP round trip with this body, checked both ways.
fn round_trip(req: &Socket, rep: &Socket, body: Vec<u8>) {
    let request = Message::from(body);
    req.send_timeout(request.clone(), TIMEOUT)
        .unwrap_or_else(|e| panic!("request send: {}", e.error));
    let got = rep.recv_timeout(TIMEOUT).expect("request");
    assert_eq!(got, request, "request as sent");
    rep.send_timeout(got, TIMEOUT)
        .unwrap_or_else(|e| panic!("reply send: {}", e.error));
    let reply = req.recv_timeout(TIMEOUT).expect("reply");
    assert_eq!(reply, request, "reply as sent");
}

/// All drop counters are zero.
fn assert_nothing_dropped(stats: SocketStats, what: &str) {
    assert_eq!(
        (
            stats.dropped_unroutable,
            stats.dropped_hwm,
            stats.dropped_malformed,
            stats.dropped_unexpected,
            stats.dropped_peer_gone
        ),
        (0, 0, 0, 0, 0),
        "{what}: {stats:?}"
    );
}

/// A numbered big message: `[seq, payload]`.
fn numbered(seq: u32, payload: &Bytes) -> Message {
    Message::from_frames([Bytes::copy_from_slice(&seq.to_be_bytes()), payload.clone()])
}

/// The sequence number of a received numbered message, whatever envelope
/// (a ROUTER's routing id) precedes it.
fn seq_of(m: &Message) -> u32 {
    let frames = m.frames();
    assert!(frames.len() >= 2, "not a numbered message: {m:?}");
    let seq = &frames[frames.len() - 2];
    u32::from_be_bytes(seq[..].try_into().expect("4-byte sequence frame"))
}

/// Sends numbered messages until the whole chain to a peer that does not
/// read is full: a bounded send times out *and* a non-blocking one then
/// reports `WouldBlock`. Every refusal must hand back the very message.
/// Returns how many were accepted (numbered `0..n`).
fn fill_until_blocked(s: &Socket, payload: &Bytes) -> u32 {
    let deadline = Instant::now() + TIMEOUT * 2;
    let mut accepted = 0u32;
    loop {
        assert!(
            Instant::now() < deadline,
            "still accepting after {accepted} messages"
        );
        assert!(
            accepted < MAX_FILL,
            "accepted {accepted} x {} bytes without back-pressure",
            payload.len()
        );
        match s.send_timeout(numbered(accepted, payload), Duration::from_millis(250)) {
            Ok(()) => {
                accepted += 1;
                continue;
            }
            Err(e) => {
                assert!(matches!(e.error, Error::TimedOut), "{:?}", e.error);
                assert_eq!(e.message, numbered(accepted, payload), "handed back");
            }
        }
        // Full, unless the I/O thread was merely slow: then keep filling.
        match s.try_send(numbered(accepted, payload)) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert!(matches!(e.error, Error::WouldBlock), "{:?}", e.error);
                assert_eq!(e.message, numbered(accepted, payload), "handed back");
                return accepted;
            }
        }
    }
}

/// Receives `range` numbered messages in order, each exactly once.
fn expect_numbered(s: &Socket, range: std::ops::Range<u32>, payload_len: usize, what: &str) {
    for want in range.clone() {
        let m = s
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("{what}: message {want} of {range:?}: {e:?}"));
        assert_eq!(seq_of(&m), want, "{what}: out of order or lost");
        assert_eq!(m.last().map(Bytes::len), Some(payload_len), "{what}");
    }
    assert!(
        matches!(s.try_recv(), Err(Error::WouldBlock)),
        "{what}: more than was sent"
    );
}

// ----- maxmsgsize -----

#[test]
fn maxmsgsize_rep_drops_only_the_oversized_peer() {
    let ctx = Context::new();
    let rep = sock(&ctx, SocketType::Rep);
    rep.set_maxmsgsize(Some(1000)).unwrap();
    let mon = rep.monitor();
    let ep = bind_local(&rep);
    let mut seen = Vec::new();

    let good = sock(&ctx, SocketType::Req);
    good.connect(&ep).expect("connect good");
    wait_event(&mon, &mut seen, "HandshakeSucceeded", is_handshake_ok);
    round_trip(&good, &rep, vec![b'g'; 500]);

    let bad = sock(&ctx, SocketType::Req);
    bad.set_reconnect_ivl(None).unwrap();
    let bad_mon = bad.monitor();
    bad.connect(&ep).expect("connect bad");
    // Let the server finish the handshake first, so that READY and the
    // oversized frame never share a read (see the ignored repro below).
    wait_event(&mon, &mut seen, "HandshakeSucceeded", is_handshake_ok);
    bad.send_timeout(vec![b'b'; 2000], TIMEOUT)
        .expect("queued for sending");
    let ev = wait_event(
        &mon,
        &mut seen,
        "Disconnected(MessageTooLarge)",
        too_large(2000, 1000),
    );
    eprintln!("server: {} {:?}", ev.endpoint, ev.kind);
    // The bad client sees its connection go.
    wait_event(&bad_mon, &mut Vec::new(), "client Disconnected", |k| {
        matches!(k, EventKind::Disconnected { .. })
    });
    assert!(
        bad.recv_timeout(SHORT).is_err(),
        "the oversized request was answered"
    );

    // The good client is unaffected, up to exactly the limit (the empty
    // delimiter frame adds nothing).
    for len in [500, 1000, 1, 999, 1000] {
        round_trip(&good, &rep, vec![b'g'; len]);
    }
    // The oversized request never reached the application.
    assert!(matches!(rep.try_recv(), Err(Error::WouldBlock)));
    assert_no_drops(&mon, &seen, "REP");
    assert_nothing_dropped(rep.stats(), "REP");
}

#[test]
fn maxmsgsize_router_counts_the_whole_multipart_message() {
    let ctx = Context::new();
    let router = sock(&ctx, SocketType::Router);
    router.set_maxmsgsize(Some(1000)).unwrap();
    let mon = router.monitor();
    let ep = bind_local(&router);
    let mut seen = Vec::new();

    let good = sock(&ctx, SocketType::Dealer);
    good.set_routing_id("good").expect("routing id");
    good.connect(&ep).expect("connect good");
    wait_event(&mon, &mut seen, "HandshakeSucceeded", is_handshake_ok);
    // 600 + 400 = 1000: at the limit, accepted.
    let frames = [vec![b'a'; 600], vec![b'b'; 400]];
    good.send_multipart(frames.clone()).expect("send");
    let m = router
        .recv_timeout(TIMEOUT)
        .expect("multipart at the limit");
    assert_eq!(
        m,
        Message::from_frames([b"good".to_vec(), frames[0].clone(), frames[1].clone()])
    );
    router.send(m).expect("echo");
    assert_eq!(
        good.recv_timeout(TIMEOUT).expect("echo"),
        Message::from_frames(frames.clone())
    );

    // Each frame is under the limit, the sum is not: 600 + 600.
    let bad = sock(&ctx, SocketType::Dealer);
    bad.set_routing_id("bad").expect("routing id");
    bad.set_reconnect_ivl(None).unwrap();
    bad.connect(&ep).expect("connect bad");
    wait_event(&mon, &mut seen, "HandshakeSucceeded", is_handshake_ok);
    bad.send_multipart([vec![b'x'; 600], vec![b'y'; 600]])
        .expect("queued");
    wait_event(
        &mon,
        &mut seen,
        "Disconnected(MessageTooLarge 1200)",
        too_large(1200, 1000),
    );

    // Eleven frames of 100: the sum crosses the limit at the last one.
    let many = sock(&ctx, SocketType::Dealer);
    many.set_routing_id("many").expect("routing id");
    many.set_reconnect_ivl(None).unwrap();
    many.connect(&ep).expect("connect many");
    wait_event(&mon, &mut seen, "HandshakeSucceeded", is_handshake_ok);
    many.send_multipart(vec![vec![b'z'; 100]; 11])
        .expect("queued");
    wait_event(
        &mon,
        &mut seen,
        "Disconnected(MessageTooLarge 1100)",
        too_large(1100, 1000),
    );

    // The good peer still works, and nothing of the refused messages (not
    // even their first, acceptable frames) reached the application.
    good.send_multipart([vec![b'c'; 1000]]).expect("send");
    let m = router.recv_timeout(TIMEOUT).expect("good after the bad");
    assert_eq!(&m.frames()[0][..], b"good");
    assert_eq!(m.byte_len(), 4 + 1000);
    assert!(matches!(router.try_recv(), Err(Error::WouldBlock)));
    assert_no_drops(&mon, &seen, "ROUTER");
    assert_nothing_dropped(router.stats(), "ROUTER");
}

/// Minimal repro of an engine bug: a complete message followed, in the
/// same read, by a frame over `maxmsgsize`. The session decodes the
/// message (queueing a `Message` event) and then fails on the oversized
/// header; `engine_read` closes the engine on that error without first
/// handing the queued events to the socket, so the complete message is
/// silently lost. The session's contract (src/zmtp/session.rs, "If an
/// input returns Err ... the engine should still drain poll_event
/// (messages completed before the error are delivered)") and libzmq
/// (which flushes decoded messages before `error()`) both deliver it.
#[test]
fn message_before_an_oversized_frame_in_the_same_read_is_delivered() {
    let ctx = Context::new();
    let rep = sock(&ctx, SocketType::Rep);
    rep.set_maxmsgsize(Some(1000)).unwrap();
    let mon = rep.monitor();
    let ep = bind_local(&rep);
    let addr: SocketAddr = ep.trim_start_matches("tcp://").parse().expect("addr");

    // A raw REQ peer: greeting, READY, one request; wait for its reply so
    // the handshake is certainly over.
    let (greeting, ready) = (greeting(), ready(Some("REQ")));
    let request = |body: &[u8]| [&[0x01, 0x00, 0x00, body.len() as u8][..], body].concat();

    let mut raw = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    raw.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    raw.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    raw.write_all(&[&greeting[..], &ready, &request(b"ping")].concat())
        .expect("write");
    let ping = rep.recv_timeout(TIMEOUT).expect("first request");
    assert_eq!(ping, Message::from("ping"));
    rep.send(ping).expect("reply");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\x00\x04ping") {
        let n = raw.read(&mut buf).expect("read reply");
        assert!(n > 0, "EOF before the reply");
        got.extend_from_slice(&buf[..n]);
    }

    // One write, one segment: a complete request, then a 2000-byte header.
    let mut bytes = request(b"hello");
    bytes.push(0x02);
    bytes.extend_from_slice(&2000u64.to_be_bytes());
    raw.write_all(&bytes).expect("write");
    wait_event(
        &mon,
        &mut Vec::new(),
        "Disconnected(MessageTooLarge)",
        too_large(2000, 1000),
    );
    assert_eq!(
        rep.recv_timeout(Duration::from_secs(2))
            .expect("the complete request before the oversized frame"),
        Message::from("hello")
    );
}

/// The same engine bug as above, as users meet it: a REQ that connects
/// and at once sends an oversized request. The request goes out right
/// behind the client's READY, so the server usually reads both at once;
/// the session completes the handshake and then refuses the frame, but the
/// engine closes before handling the `Ready` event and reports
/// `HandshakeFailed { MessageTooLarge }` (never `HandshakeSucceeded`)
/// instead of `Disconnected { MessageTooLarge }`. On the client side the
/// connecter likewise counts it as a failed handshake, which matters for
/// `reconnect_stop.handshake_failed`.
#[test]
fn oversized_first_message_is_a_disconnect_after_the_handshake() {
    let ctx = Context::new();
    let rep = sock(&ctx, SocketType::Rep);
    rep.set_maxmsgsize(Some(1000)).unwrap();
    let mon = rep.monitor();
    let ep = bind_local(&rep);
    let req = sock(&ctx, SocketType::Req);
    req.set_reconnect_ivl(None).unwrap();
    req.connect(&ep).expect("connect");
    req.send(vec![b'b'; 2000]).expect("queued");
    let mut seen = Vec::new();
    let ev = wait_event(&mon, &mut seen, "a drop", is_terminal);
    assert!(
        too_large(2000, 1000)(&ev.kind),
        "expected Disconnected(MessageTooLarge) after the handshake, got {:?} (before it: {seen:?})",
        ev.kind
    );
}

// ----- high-water marks -----

#[test]
fn dealer_at_hwm_to_a_router_that_never_reads() {
    const HWM: usize = 10;
    let ctx = Context::new();
    let router = sock(&ctx, SocketType::Router);
    router.set_sndhwm(HWM).unwrap();
    router.set_rcvhwm(HWM).unwrap();
    let ep = bind_local(&router);
    let dealer = sock(&ctx, SocketType::Dealer);
    dealer.set_sndhwm(HWM).unwrap();
    dealer.set_rcvhwm(HWM).unwrap();
    let mon = dealer.monitor();
    dealer.connect(&ep).expect("connect");
    wait_event(&mon, &mut Vec::new(), "HandshakeSucceeded", is_handshake_ok);

    let payload = Bytes::from(vec![0x5A; BIG]);
    let mut accepted = fill_until_blocked(&dealer, &payload);
    eprintln!("DEALER accepted {accepted} x {BIG} bytes before back-pressure");
    assert!(accepted as usize >= HWM, "only {accepted} accepted");

    // Still full: non-blocking and bounded sends both refuse, handing back.
    let err = dealer
        .try_send(numbered(accepted, &payload))
        .expect_err("full");
    assert!(matches!(err.error, Error::WouldBlock), "{:?}", err.error);
    assert_eq!(err.message, numbered(accepted, &payload));
    // The kernel may still take a little more: once the ROUTER's receive
    // queue is full, TCP compacts it and a zero-window probe (hundreds of
    // ms apart) can reopen the window. The ROUTER reads up to 256 KiB
    // ahead (READ_AHEAD), so most of the backlog is in the kernel, where
    // that happens. A send that gets through then is simply one more.
    match dealer.send_timeout(numbered(accepted, &payload), Duration::from_millis(100)) {
        Ok(()) => accepted += 1,
        Err(err) => {
            assert!(matches!(err.error, Error::TimedOut), "{:?}", err.error);
            assert_eq!(err.message, numbered(accepted, &payload));
        }
    }

    // The ROUTER reads everything: all of it, in order, once.
    expect_numbered(&router, 0..accepted, BIG, "ROUTER");

    // Room again: sends succeed and arrive.
    for seq in accepted..accepted + 2 * HWM as u32 {
        dealer
            .send_timeout(numbered(seq, &payload), TIMEOUT)
            .unwrap_or_else(|e| panic!("send {seq} after draining: {:?}", e.error));
    }
    expect_numbered(
        &router,
        accepted..accepted + 2 * HWM as u32,
        BIG,
        "ROUTER again",
    );
    assert_nothing_dropped(dealer.stats(), "DEALER");
    assert_nothing_dropped(router.stats(), "ROUTER");
}

/// DEALER and PUSH against a peer that does not read: once blocked, a send
/// either completes when the peer drains, or fails with the message; the
/// peer then gets every accepted message exactly once, in order.
#[test]
fn blocked_sends_at_hwm_complete_later_without_loss() {
    for (ty, peer_ty) in [
        (SocketType::Dealer, SocketType::Router),
        (SocketType::Push, SocketType::Pull),
    ] {
        let what = format!("{ty:?}->{peer_ty:?}");
        let ctx = Context::new();
        let peer = sock(&ctx, peer_ty);
        peer.set_rcvhwm(2).unwrap();
        let ep = bind_local(&peer);
        let s = sock(&ctx, ty);
        s.set_sndhwm(2).unwrap();
        let mon = s.monitor();
        s.connect(&ep).expect("connect");
        wait_event(&mon, &mut Vec::new(), "HandshakeSucceeded", is_handshake_ok);

        let payload = Bytes::from(vec![0xA5; BIG]);
        let accepted = fill_until_blocked(&s, &payload);
        eprintln!("{what}: accepted {accepted} x {BIG} bytes before back-pressure");

        // A send blocked at the HWM completes once the peer drains.
        let blocked = thread::scope(|scope| {
            let blocked = scope.spawn(|| s.send_timeout(numbered(accepted, &payload), TIMEOUT * 2));
            expect_numbered_inner(&peer, 0..accepted + 1, &what);
            blocked.join().expect("sender thread")
        });
        if let Err(e) = blocked {
            panic!("{what}: blocked send failed: {:?}", e.error);
        }
        assert!(
            matches!(peer.try_recv(), Err(Error::WouldBlock)),
            "{what}: duplicates"
        );
        assert_nothing_dropped(s.stats(), &what);
    }
}

/// Like [`expect_numbered`] without the final emptiness check (a blocked
/// sender may still be finishing).
fn expect_numbered_inner(s: &Socket, range: std::ops::Range<u32>, what: &str) {
    for want in range.clone() {
        let m = s
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("{what}: message {want} of {range:?}: {e:?}"));
        assert_eq!(seq_of(&m), want, "{what}: out of order or lost");
    }
}

/// REQ, DEALER and PUSH with no peer at all: a send cannot proceed, hands
/// the message back, and a blocked send completes once a peer is connected.
/// (REQ's strict alternation means its pipe never holds more than one
/// request, so "no peer" is where a REQ blocks.)
#[test]
fn blocked_sends_without_peers_complete_after_connect() {
    for (ty, peer_ty) in [
        (SocketType::Req, SocketType::Rep),
        (SocketType::Dealer, SocketType::Router),
        (SocketType::Push, SocketType::Pull),
    ] {
        let what = format!("{ty:?}->{peer_ty:?}");
        let ctx = Context::new();
        let s = sock(&ctx, ty);
        s.set_sndhwm(1).unwrap();
        let msg = Message::from_frames([&b"only"[..], &b"once"[..]]);

        let err = s.try_send(msg.clone()).expect_err("no peer");
        assert!(
            matches!(err.error, Error::WouldBlock),
            "{what}: {:?}",
            err.error
        );
        assert_eq!(err.message, msg, "{what}: handed back");
        let err = s
            .send_timeout(msg.clone(), Duration::from_millis(100))
            .expect_err("no peer");
        assert!(
            matches!(err.error, Error::TimedOut),
            "{what}: {:?}",
            err.error
        );
        assert_eq!(err.message, msg, "{what}: handed back");

        let peer = sock(&ctx, peer_ty);
        let ep = bind_local(&peer);
        let sent = thread::scope(|scope| {
            let blocked = scope.spawn(|| s.send_timeout(msg.clone(), TIMEOUT * 2));
            s.connect(&ep).expect("connect");
            blocked.join().expect("sender thread")
        });
        if let Err(e) = sent {
            panic!("{what}: blocked send failed: {:?}", e.error);
        }
        let got = peer.recv_timeout(TIMEOUT).expect("delivered");
        assert_eq!(
            &got.frames()[got.len() - 2..],
            msg.frames(),
            "{what}: as sent"
        );
        if ty == SocketType::Req {
            // A second request before the reply is refused, not dropped.
            let err = s.try_send("second").expect_err("reply owed");
            assert!(
                matches!(err.error, Error::InvalidState(_)),
                "{:?}",
                err.error
            );
            assert_eq!(err.message, Message::from("second"));
            peer.send(got).expect("reply");
            assert_eq!(s.recv_timeout(TIMEOUT).expect("reply"), msg);
        }
        assert!(
            matches!(peer.recv_timeout(SHORT), Err(Error::TimedOut)),
            "{what}: delivered more than once"
        );
        assert_nothing_dropped(s.stats(), &what);
    }
}

// ----- unroutable messages -----

#[test]
fn router_unroutable_is_counted_or_refused() {
    let ctx = Context::new();
    let router = sock(&ctx, SocketType::Router);
    let mon = router.monitor();
    let ep = bind_local(&router);
    let dealer = sock(&ctx, SocketType::Dealer);
    dealer.set_routing_id("known").expect("routing id");
    dealer.connect(&ep).expect("connect");
    dealer.send("hello").expect("send");
    let m = router.recv_timeout(TIMEOUT).expect("hello");
    assert_eq!(&m.frames()[0][..], b"known");

    // Not mandatory: dropped, counted, reported as success.
    router
        .send_multipart(["nobody", "lost"])
        .expect("non-mandatory ROUTER drops silently");
    assert_eq!(router.stats().dropped_unroutable, 1);
    router.send_multipart(["known", "one"]).expect("routable");
    assert_eq!(
        dealer.recv_timeout(TIMEOUT).expect("routed"),
        Message::from("one")
    );
    assert_eq!(router.stats().dropped_unroutable, 1);

    // Mandatory (takes effect at once): refused, handed back, not counted.
    router.set_router_mandatory(true).unwrap();
    let unroutable = Message::from(["nobody", "refused"]);
    let err = router.send(unroutable.clone()).expect_err("mandatory");
    assert!(
        matches!(err.error, Error::HostUnreachable),
        "{:?}",
        err.error
    );
    assert_eq!(err.message, unroutable);
    assert_eq!(router.stats().dropped_unroutable, 1);
    router.send_multipart(["known", "two"]).expect("routable");
    assert_eq!(
        dealer.recv_timeout(TIMEOUT).expect("routed"),
        Message::from("two")
    );

    // A peer that left is unroutable too.
    drop(dealer);
    wait_event(&mon, &mut Vec::new(), "Disconnected", |k| {
        matches!(k, EventKind::Disconnected { .. })
    });
    let gone = Message::from(["known", "after"]);
    let err = router.send(gone.clone()).expect_err("peer gone");
    assert!(
        matches!(err.error, Error::HostUnreachable),
        "{:?}",
        err.error
    );
    assert_eq!(err.message, gone);
    router.set_router_mandatory(false).unwrap();
    router.send(gone).expect("non-mandatory");
    assert_eq!(router.stats().dropped_unroutable, 2);
    assert_eq!(router.stats().dropped_hwm, 0);
}

/// A legitimate 256 MiB message arrives whole with default options: the
/// default inbound budget (320 MiB) leaves room for it.
#[test]
fn a_256_mib_message_arrives_whole_with_default_options() {
    let ctx = Context::new();
    let pull = sock(&ctx, SocketType::Pull);
    let ep = bind_local(&pull);
    let push = sock(&ctx, SocketType::Push);
    push.set_linger(Some(TIMEOUT)).unwrap();
    push.connect(&ep).expect("connect");
    let body = Bytes::from(vec![0x5a; 256 << 20]);
    if let Err(e) = push.send_timeout(Message::from(body.clone()), TIMEOUT) {
        panic!("send: {:?}", e.error);
    }
    let got = match pull.recv_timeout(TIMEOUT * 3) {
        Ok(m) => m,
        Err(e) => panic!("the 256 MiB message did not arrive: {e:?}"),
    };
    assert_eq!(got.len(), 1);
    assert!(got.first() == Some(&body), "the message arrived changed");
    assert_eq!(pull.stats().disconnected_over_budget, 0);
}
