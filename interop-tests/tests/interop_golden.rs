//! Golden bytes, captured from libzmq 4.3.4 at test time.
//!
//! A raw TCP peer (a std `TcpListener` or `TcpStream`, driven by our
//! sans-IO [`Session`] for what it sends) talks to a real libzmq socket and
//! records every byte libzmq writes. The tests then check, byte for byte,
//! that
//! - our codec *encodes* what libzmq encodes: the greeting, the READY
//!   command for the same socket type and identity, and message frames
//!   (short, empty, multipart, 255/256-byte short/long boundary, 70 000);
//! - our codec *decodes* what libzmq sends: the recorded stream, replayed
//!   into a fresh `Session` one byte at a time and all at once, yields the
//!   same peer info and messages;
//! - libzmq decodes what our codec sends (the libzmq socket receives the
//!   messages the raw peer encodes with our `Session`).
//!
//! Nothing here is hand-written "libzmq bytes": every expectation is
//! either captured from libzmq or produced by our encoder.

mod util;

use bytes::{Bytes, BytesMut};
use ferrozmq::pattern::PeerInfo;
use ferrozmq::zmtp::command::Command;
use ferrozmq::zmtp::greeting::{Greeting, GREETING_LEN, SIGNATURE_LEN};
use ferrozmq::zmtp::{Session, SessionConfig, SessionEvent};
use ferrozmq::{Context, EventKind, Message, SocketType};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};
use util::interop::*;
use util::*;

fn config(ty: SocketType, id: &[u8]) -> SessionConfig {
    SessionConfig {
        routing_id: Bytes::copy_from_slice(id),
        ..SessionConfig::new(ty)
    }
}

/// A socket type our side can pair with `ty` (to drive a mirror session).
fn peer_type(ty: SocketType) -> SocketType {
    match ty {
        SocketType::Req => SocketType::Rep,
        SocketType::Rep => SocketType::Req,
        SocketType::Dealer => SocketType::Router,
        SocketType::Router => SocketType::Dealer,
        SocketType::Push => SocketType::Pull,
        SocketType::Pull => SocketType::Push,
        SocketType::Sub => SocketType::Pub,
        SocketType::Pub => SocketType::Sub,
        other => panic!("no peer type for {other}"),
    }
}

/// The READY command our codec produces for a socket of type `ty` with
/// routing id `id`: what a `Session` writes after the peer's greeting.
fn our_ready(ty: SocketType, id: &[u8]) -> Vec<u8> {
    let mut s = Session::new(config(ty, id), Instant::now());
    let mut input = BytesMut::from(&Greeting::ours().to_bytes()[..]);
    s.handle_input(&mut input, Instant::now()).unwrap();
    assert!(s
        .output()
        .starts_with(&Greeting::ours().to_bytes_for(id.len())));
    s.output()[GREETING_LEN..].to_vec()
}

/// The bytes our codec produces for `msg`: a session of type `ty`, past
/// its handshake, encodes it.
fn our_message_bytes(ty: SocketType, msg: &[Vec<u8>]) -> Vec<u8> {
    let now = Instant::now();
    let mut s = Session::new(config(ty, b""), now);
    let mut input = BytesMut::from(&Greeting::ours().to_bytes()[..]);
    input.extend_from_slice(&our_ready(peer_type(ty), b""));
    s.handle_input(&mut input, now).unwrap();
    assert!(s.is_ready());
    let n = s.output().len();
    s.consume_output(n);
    s.send_message(&Message::from_frames(msg.iter().cloned()));
    s.output().to_vec()
}

/// Compares a libzmq greeting with ours for the same routing-id length:
/// byte-identical, including the signature padding where both write
/// (routing-id length + 1) for ZMTP 1.0 peers.
#[track_caller]
fn check_greeting(lz: &[u8], lz_id_len: usize) {
    assert_eq!(lz.len(), GREETING_LEN);
    let ours = Greeting::ours().to_bytes_for(lz_id_len);
    assert_eq!(lz, &ours[..], "libzmq greeting == ours");
    let g = Greeting::parse(lz).unwrap().unwrap();
    assert_eq!((g.major, g.minor), (3, 1), "libzmq 4.3 speaks ZMTP 3.1");
    assert!(g.is_null_mechanism());
    assert!(!g.as_server);
}

/// One raw frame as read off the wire, split by a parser independent of
/// our codec.
struct RawFrame {
    flags: u8,
    bytes: Vec<u8>,
}

/// One frame, split by RFC 23's rules alone (not by our decoder), from
/// `read_exact(n)`, which returns the next `n` bytes.
fn raw_frame(mut read_exact: impl FnMut(usize) -> Vec<u8>) -> RawFrame {
    let mut bytes = read_exact(2);
    let flags = bytes[0];
    let len = if flags & 0x02 != 0 {
        bytes.extend(read_exact(7));
        u64::from_be_bytes(bytes[1..9].try_into().unwrap()) as usize
    } else {
        usize::from(bytes[1])
    };
    bytes.extend(read_exact(len));
    RawFrame { flags, bytes }
}

/// The raw end of a connection with a libzmq socket.
struct RawPeer {
    stream: TcpStream,
    /// Our codec, for what the raw peer sends and to decode as we go.
    session: Session,
    /// Everything libzmq sent, in order.
    recorded: Vec<u8>,
    /// Sizes of the reads that brought libzmq's greeting.
    greeting_reads: Vec<usize>,
    lz_greeting: Vec<u8>,
    lz_ready: Vec<u8>,
    peer: PeerInfo,
    /// Offset in `recorded` where messages start (after READY).
    traffic_start: usize,
}

impl RawPeer {
    /// Runs the handshake as a socket of type `role` with routing id
    /// `id`, checking on the way that libzmq sends its 10-byte signature
    /// and then waits for ours.
    fn handshake(stream: TcpStream, role: SocketType, id: &[u8]) -> RawPeer {
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let now = Instant::now();
        let mut p = RawPeer {
            stream,
            session: Session::new(config(role, id), now),
            recorded: Vec::new(),
            greeting_reads: Vec::new(),
            lz_greeting: Vec::new(),
            lz_ready: Vec::new(),
            peer: PeerInfo {
                socket_type: role,
                routing_id: Bytes::new(),
            },
            traffic_start: 0,
        };

        // 1. libzmq's signature comes first, unprompted ...
        while p.recorded.len() < SIGNATURE_LEN {
            let n = p.read_some(SIGNATURE_LEN - p.recorded.len());
            p.greeting_reads.push(n);
        }
        // ... and nothing more until it has seen ours.
        p.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut probe = [0u8; 1];
        match p.stream.read(&mut probe) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("libzmq sent more than its signature unprompted: {other:?}"),
        }
        p.stream.set_read_timeout(Some(TIMEOUT)).unwrap();

        // 2. Our greeting, straight from our codec (its padding carries
        //    our routing-id length + 1, as libzmq's does).
        assert_eq!(
            p.session.output(),
            &Greeting::ours().to_bytes_for(id.len())[..]
        );
        p.flush();

        // 3. The rest of libzmq's greeting.
        while p.recorded.len() < GREETING_LEN {
            let n = p.read_some(GREETING_LEN - p.recorded.len());
            p.greeting_reads.push(n);
        }
        p.lz_greeting = p.recorded.clone();
        let mut input = BytesMut::from(&p.lz_greeting[..]);
        p.session.handle_input(&mut input, Instant::now()).unwrap();
        assert!(input.is_empty());

        // 4. Our READY, from the session, then libzmq's.
        assert_eq!(p.session.output(), &our_ready(role, id)[..]);
        p.flush();
        let ready = p.read_frame();
        assert_eq!(ready.flags, 0x04, "READY is a short command frame");
        p.lz_ready = ready.bytes;
        p.traffic_start = p.recorded.len();
        let mut input = BytesMut::from(&p.lz_ready[..]);
        p.session.handle_input(&mut input, Instant::now()).unwrap();
        match p.session.poll_event() {
            Some(SessionEvent::Ready(info)) => p.peer = info,
            other => panic!("expected Ready, got {other:?}"),
        }
        p
    }

    /// Reads between 1 and `max` bytes (bounded by the read timeout).
    fn read_some(&mut self, max: usize) -> usize {
        let mut buf = vec![0u8; max];
        let n = self.stream.read(&mut buf).expect("read from libzmq");
        assert!(n > 0, "libzmq closed the connection");
        self.recorded.extend_from_slice(&buf[..n]);
        n
    }

    fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        self.stream.read_exact(&mut buf).expect("read from libzmq");
        self.recorded.extend_from_slice(&buf);
        buf
    }

    /// One frame, split by RFC 23's rules alone (not by our decoder).
    fn read_frame(&mut self) -> RawFrame {
        raw_frame(|n| self.read_exact(n))
    }

    /// The raw bytes of one whole message (frames up to one without MORE),
    /// checked against our decoder, which must yield `want`.
    fn read_message(&mut self, want: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        loop {
            let f = self.read_frame();
            assert_eq!(f.flags & !0x03, 0, "a message frame, no reserved bits");
            wire.extend_from_slice(&f.bytes);
            if f.flags & 0x01 == 0 {
                break;
            }
        }
        let mut input = BytesMut::from(&wire[..]);
        self.session
            .handle_input(&mut input, Instant::now())
            .unwrap();
        match self.session.poll_event() {
            Some(SessionEvent::Message(m)) => {
                assert_frames_eq(&to_vecs(m), want, "our decoder on libzmq's bytes")
            }
            other => panic!("expected a message, got {other:?}"),
        }
        wire
    }

    /// Sends a message encoded by our session.
    fn send(&mut self, msg: &[Vec<u8>]) {
        self.session
            .send_message(&Message::from_frames(msg.iter().cloned()));
        self.flush();
    }

    fn flush(&mut self) {
        let out = self.session.output().to_vec();
        self.stream.write_all(&out).expect("write to libzmq");
        self.session.consume_output(out.len());
    }

    /// Replays everything libzmq sent into a fresh session of our `role`
    /// (whole, then one byte at a time) and checks it yields the peer info
    /// and `messages`.
    fn replay(&self, role: SocketType, id: &[u8], messages: &[Vec<Vec<u8>>]) {
        for chunk in [self.recorded.len(), 1] {
            let now = Instant::now();
            let mut s = Session::new(config(role, id), now);
            let mut input = BytesMut::new();
            let mut events = Vec::new();
            for piece in self.recorded.chunks(chunk) {
                input.extend_from_slice(piece);
                s.handle_input(&mut input, now).unwrap();
                while let Some(ev) = s.poll_event() {
                    events.push(ev);
                }
            }
            assert!(input.is_empty(), "replay left {} bytes", input.len());
            let mut events = events.into_iter();
            match events.next() {
                Some(SessionEvent::Ready(info)) => assert_eq!(info, self.peer),
                other => panic!("replay: expected Ready, got {other:?}"),
            }
            let got: Vec<Vec<Vec<u8>>> = events
                .map(|e| match e {
                    SessionEvent::Message(m) => to_vecs(m),
                    other => panic!("replay: unexpected {other:?}"),
                })
                .collect();
            assert_eq!(got.len(), messages.len(), "replay in chunks of {chunk}");
            for (g, w) in got.iter().zip(messages) {
                assert_frames_eq(g, w, "replayed message");
            }
        }
    }
}

/// A raw listener and a libzmq socket of type `lz_ty` connected to it.
fn lz_client(zctx: &zmq::Context, lz_ty: zmq::SocketType, id: &[u8]) -> (zmq::Socket, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lz = lz_socket(zctx, lz_ty);
    if !id.is_empty() {
        lz.set_identity(id).unwrap();
    }
    lz.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let stream = accept(&listener);
    (lz, stream)
}

/// A libzmq socket of type `lz_ty` bound, and a raw stream connected to it.
fn lz_server(zctx: &zmq::Context, lz_ty: zmq::SocketType, id: &[u8]) -> (zmq::Socket, TcpStream) {
    let lz = lz_socket(zctx, lz_ty);
    if !id.is_empty() {
        lz.set_identity(id).unwrap();
    }
    let ep = lz_bind(&lz);
    let addr = ep.strip_prefix("tcp://").unwrap().parse().unwrap();
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    (lz, stream)
}

/// Checks the handshake part of a capture against our codec.
fn check_handshake(p: &RawPeer, lz_ty: SocketType, lz_id: &[u8]) {
    eprintln!(
        "libzmq {lz_ty}: greeting arrived in reads of {:?} bytes; READY = {:02x?}",
        p.greeting_reads, p.lz_ready
    );
    check_greeting(&p.lz_greeting, lz_id.len());
    assert_eq!(
        p.lz_ready,
        our_ready(lz_ty, lz_id),
        "libzmq {lz_ty} READY vs our encoder"
    );
    assert_eq!(p.peer.socket_type, lz_ty);
    assert_eq!(&p.peer.routing_id[..], lz_id);
}

/// Messages that exercise every frame-header shape.
fn bodies() -> Vec<Vec<Vec<u8>>> {
    vec![
        frames(&["short"]),
        frames(&["multi", "", "part"]),
        vec![Vec::new()],
        vec![body(255, 1)],
        vec![body(256, 2)],
        vec![b"head".to_vec(), body(70_000, 3), b"tail".to_vec()],
    ]
}

// ----- libzmq as client: it connects to our raw listener -----

/// libzmq REQ -> raw REP: REQ's greeting and READY (Identity empty), and
/// its request frames with the empty delimiter; replies encoded by us
/// reach the libzmq REQ.
#[test]
fn golden_libzmq_req_client() {
    check_libzmq_version();
    let zctx = zmq::Context::new();
    let (req, stream) = lz_client(&zctx, zmq::REQ, b"");
    let mut p = RawPeer::handshake(stream, SocketType::Rep, b"");
    check_handshake(&p, SocketType::Req, b"");

    let mut wire_msgs = Vec::new();
    for (n, request) in bodies().into_iter().enumerate() {
        lz_send(&req, &request);
        let mut on_wire = vec![Vec::new()];
        on_wire.extend(request.iter().cloned());
        let wire = p.read_message(&on_wire);
        assert_eq!(
            wire,
            our_message_bytes(SocketType::Req, &on_wire),
            "request {n}: libzmq REQ frames vs our encoder"
        );
        wire_msgs.push(on_wire);
        // Reply with our encoder; long frames too.
        let reply = vec![
            Vec::new(),
            format!("reply {n}").into_bytes(),
            body(300, n as u8),
        ];
        p.send(&reply);
        assert_frames_eq(&lz_recv(&req), &reply[1..], "libzmq REQ decoded our reply");
    }
    p.replay(SocketType::Rep, b"", &wire_msgs);
}

/// libzmq DEALER with an explicit identity -> raw ROUTER.
#[test]
fn golden_libzmq_dealer_client_with_identity() {
    check_libzmq_version();
    let zctx = zmq::Context::new();
    let id = b"golden-dealer";
    let (dealer, stream) = lz_client(&zctx, zmq::DEALER, id);
    let mut p = RawPeer::handshake(stream, SocketType::Router, b"raw-router");
    check_handshake(&p, SocketType::Dealer, id);

    for body in bodies() {
        lz_send(&dealer, &body);
    }
    for (n, body) in bodies().iter().enumerate() {
        let wire = p.read_message(body);
        assert_eq!(
            wire,
            our_message_bytes(SocketType::Dealer, body),
            "message {n}: libzmq DEALER frames vs our encoder"
        );
    }
    for body in bodies() {
        p.send(&body);
        assert_frames_eq(&lz_recv(&dealer), &body, "libzmq DEALER decoded our frames");
    }
    p.replay(SocketType::Router, b"raw-router", &bodies());
}

/// libzmq PUSH -> raw PULL: READY without Identity.
#[test]
fn golden_libzmq_push_client() {
    check_libzmq_version();
    let zctx = zmq::Context::new();
    let (push, stream) = lz_client(&zctx, zmq::PUSH, b"");
    let mut p = RawPeer::handshake(stream, SocketType::Pull, b"");
    check_handshake(&p, SocketType::Push, b"");
    for body in bodies() {
        lz_send(&push, &body);
    }
    for body in bodies() {
        let wire = p.read_message(&body);
        assert_eq!(wire, our_message_bytes(SocketType::Push, &body));
    }
    p.replay(SocketType::Pull, b"", &bodies());
}

// ----- libzmq as server: our raw stream connects to it -----

/// Raw REQ -> libzmq REP: REP's READY (no Identity); libzmq decodes our
/// requests and its replies carry the delimiter back.
#[test]
fn golden_libzmq_rep_server() {
    check_libzmq_version();
    let zctx = zmq::Context::new();
    let (rep, stream) = lz_server(&zctx, zmq::REP, b"");
    let mut p = RawPeer::handshake(stream, SocketType::Req, b"");
    check_handshake(&p, SocketType::Rep, b"");

    let mut wire_msgs = Vec::new();
    for (n, body) in bodies().into_iter().enumerate() {
        let mut request = vec![Vec::new()];
        request.extend(frames(&["request", &n.to_string()]));
        p.send(&request);
        assert_frames_eq(
            &lz_recv(&rep),
            &request[1..],
            "libzmq REP decoded our request",
        );
        lz_send(&rep, &body);
        let mut on_wire = vec![Vec::new()];
        on_wire.extend(body.iter().cloned());
        let wire = p.read_message(&on_wire);
        assert_eq!(
            wire,
            our_message_bytes(SocketType::Rep, &on_wire),
            "reply {n}: libzmq REP frames vs our encoder"
        );
        wire_msgs.push(on_wire);
    }
    p.replay(SocketType::Req, b"", &wire_msgs);
}

/// Raw DEALER -> libzmq ROUTER, with and without our identity: libzmq
/// reads the Identity from our READY (or generates an id), and routes
/// its frames to us by it.
#[test]
fn golden_libzmq_router_server() {
    check_libzmq_version();
    for our_id in [&b"raw-dealer"[..], b""] {
        let zctx = zmq::Context::new();
        let (router, stream) = lz_server(&zctx, zmq::ROUTER, b"lz-router");
        let mut p = RawPeer::handshake(stream, SocketType::Dealer, our_id);
        check_handshake(&p, SocketType::Router, b"lz-router");

        p.send(&frames(&["hello"]));
        let got = lz_recv(&router);
        assert_eq!(&got[1..], &frames(&["hello"])[..]);
        let routing_id = got[0].clone();
        if our_id.is_empty() {
            assert!(
                routing_id.len() == 5 && routing_id[0] == 0,
                "{routing_id:?}"
            );
        } else {
            assert_eq!(routing_id, our_id, "libzmq read our READY's Identity");
        }
        for (n, body) in bodies().iter().enumerate() {
            let mut m = vec![routing_id.clone()];
            m.extend(body.iter().cloned());
            lz_send(&router, &m);
            let wire = p.read_message(body);
            assert_eq!(
                wire,
                our_message_bytes(SocketType::Router, body),
                "message {n}: libzmq ROUTER frames vs our encoder"
            );
        }
        p.replay(SocketType::Dealer, our_id, &bodies());
    }
}

/// Raw PUSH -> libzmq PULL: PULL's READY, and libzmq decodes every frame
/// shape from our encoder.
#[test]
fn golden_libzmq_pull_server() {
    check_libzmq_version();
    let zctx = zmq::Context::new();
    let (pull, stream) = lz_server(&zctx, zmq::PULL, b"");
    let mut p = RawPeer::handshake(stream, SocketType::Push, b"");
    check_handshake(&p, SocketType::Pull, b"");
    for body in bodies() {
        p.send(&body);
    }
    for body in bodies() {
        assert_frames_eq(&lz_recv(&pull), &body, "libzmq PULL decoded our frames");
    }
}

// ----- heartbeats -----

/// libzmq's `ZMQ_HEARTBEAT_IVL` in the heartbeat tests, in ms.
const HEARTBEAT_IVL: i32 = 100;
/// libzmq's `ZMQ_HEARTBEAT_TIMEOUT`: it drops the connection when nothing
/// arrives this long after a PING. Generous, so that a loaded CI machine
/// that delays our PONG does not fail the test.
const HEARTBEAT_TIMEOUT: i32 = 1000;
/// How long the tests keep the connection idle but for heartbeats: past
/// the timeout, so an unanswered PING would have dropped it.
const HEARTBEAT_RUN: Duration = Duration::from_millis(1500);

/// libzmq's PING (ZMTP 3.1) parses with our codec, and our session's
/// PONG keeps libzmq's heartbeat timeout from dropping the connection.
#[test]
fn golden_libzmq_ping_gets_our_pong() {
    check_libzmq_version();
    let zctx = zmq::Context::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dealer = lz_socket(&zctx, zmq::DEALER);
    dealer.set_heartbeat_ivl(HEARTBEAT_IVL).unwrap();
    dealer.set_heartbeat_timeout(HEARTBEAT_TIMEOUT).unwrap();
    dealer.set_heartbeat_ttl(2000).unwrap();
    dealer.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let mut p = RawPeer::handshake(accept(&listener), SocketType::Router, b"");
    check_handshake(&p, SocketType::Dealer, b"");

    // Answer PINGs for longer than the heartbeat timeout.
    let until = Instant::now() + HEARTBEAT_RUN;
    let mut pings = 0;
    while Instant::now() < until {
        let f = p.read_frame();
        assert_eq!(f.flags, 0x04, "only commands while the DEALER is idle");
        let body = Bytes::copy_from_slice(&f.bytes[2..]);
        let cmd = Command::parse(body).unwrap();
        let Command::Ping { ttl, context } = cmd else {
            panic!("expected PING, got {cmd:?}");
        };
        assert_eq!(ttl, 20, "heartbeat_ttl 2000 ms in deciseconds");
        let mut input = BytesMut::from(&f.bytes[..]);
        p.session.handle_input(&mut input, Instant::now()).unwrap();
        assert!(p.session.poll_event().is_none(), "PING is not a message");
        let mut pong = BytesMut::new();
        Command::Pong { context }.encode(&mut pong);
        assert_eq!(p.session.output(), &pong[..], "the session answers PONG");
        p.flush();
        pings += 1;
    }
    assert!(pings >= 5, "libzmq pinged {pings} times");
    // Still the same connection: a message from the DEALER arrives on it.
    lz_send(&dealer, &frames(&["still here"]));
    let f = loop {
        // A PING may be in flight before the message.
        let f = p.read_frame();
        if f.flags != 0x04 {
            break f;
        }
    };
    assert_eq!(
        f.bytes,
        our_message_bytes(SocketType::Dealer, &frames(&["still here"]))
    );
}

/// End to end: a libzmq DEALER with heartbeats on stays connected to our
/// ROUTER (which answers its PINGs) across many heartbeat timeouts.
#[test]
fn libzmq_heartbeats_keep_connection_to_our_router() {
    check_libzmq_version();
    let ctx = Context::new();
    let zctx = zmq::Context::new();
    let router = our_socket(&ctx, SocketType::Router);
    let mon = router.monitor();
    let ep = bind_local(&router);
    let dealer = lz_socket(&zctx, zmq::DEALER);
    dealer.set_heartbeat_ivl(HEARTBEAT_IVL).unwrap();
    dealer.set_heartbeat_timeout(HEARTBEAT_TIMEOUT).unwrap();
    dealer.connect(&ep).unwrap();
    lz_send(&dealer, &frames(&["one"]));
    let first = our_recv(&router);
    // Let the heartbeat timeout pass with only PINGs and PONGs on the
    // wire (the point of the test, not a synchronisation).
    thread::sleep(HEARTBEAT_RUN);
    lz_send(&dealer, &frames(&["two"]));
    let second = our_recv(&router);
    assert_eq!(first[1], b"one");
    assert_eq!(second[1], b"two");
    // A reconnect would have given the DEALER a new generated id.
    assert_eq!(first[0], second[0], "same connection throughout");
    let events: Vec<_> = mon.try_iter().collect();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Disconnected { .. })),
        "{events:#?}"
    );
}

/// libzmq SUB -> raw PUB (ZMTP 3.1): the bytes of its subscriptions and
/// cancellations (SUBSCRIBE and CANCEL commands, short and long frames),
/// and ours for the same changes.
#[test]
fn golden_libzmq_sub_subscriptions() {
    check_libzmq_version();
    let zctx = zmq::Context::new();
    let (sub, stream) = lz_client(&zctx, zmq::SUB, b"");
    let mut p = RawPeer::handshake(stream, SocketType::Pub, b"");
    check_handshake(&p, SocketType::Sub, b"");
    let long = vec![b'x'; 300];
    for (subscribe, topic) in [
        (true, &b"weather"[..]),
        (true, b""),
        (false, b"weather"),
        (true, &long[..]),
    ] {
        if subscribe {
            sub.set_subscribe(topic).expect("subscribe");
        } else {
            sub.set_unsubscribe(topic).expect("unsubscribe");
        }
        let frame = p.read_frame();
        let mut form = vec![u8::from(subscribe)];
        form.extend_from_slice(topic);
        let ours = our_message_bytes(SocketType::Sub, &[form.clone()]);
        eprintln!(
            "libzmq SUB {} {:?}: {:02x?}",
            if subscribe { "subscribe" } else { "cancel" },
            String::from_utf8_lossy(&topic[..topic.len().min(16)]),
            &frame.bytes[..frame.bytes.len().min(24)]
        );
        // libzmq 4.3.4 sends a 3.1 peer SUBSCRIBE/CANCEL commands, as RFC
        // 37 says and as we do: byte for byte the same.
        assert_eq!(frame.flags & 0x04, 0x04, "a command frame");
        assert_eq!(frame.bytes, ours, "libzmq's command vs ours");
        // And our publisher's session takes it in as the change.
        let mut input = BytesMut::from(&frame.bytes[..]);
        let mut publisher = Session::new(config(SocketType::XPub, b""), Instant::now());
        let mut hello = BytesMut::from(&Greeting::ours().to_bytes()[..]);
        hello.extend_from_slice(&our_ready(SocketType::Sub, b""));
        publisher.handle_input(&mut hello, Instant::now()).unwrap();
        assert!(matches!(
            publisher.poll_event(),
            Some(SessionEvent::Ready(_))
        ));
        publisher.handle_input(&mut input, Instant::now()).unwrap();
        match publisher.poll_event() {
            Some(SessionEvent::Message(m)) => assert_frames_eq(&to_vecs(m), &[form], "decoded"),
            other => panic!("expected the subscription, got {other:?}"),
        }
    }
}

/// A raw publisher that speaks ZMTP 3.0: accepts one connection, greets
/// with version 3.0 and READY, and returns the stream past the
/// subscriber's greeting and READY.
fn raw_30_publisher(listener: &TcpListener) -> TcpStream {
    let mut stream = accept(listener);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let greeting = Greeting {
        minor: 0,
        ..Greeting::ours()
    };
    stream.write_all(&greeting.to_bytes()).unwrap();
    stream.write_all(&our_ready(SocketType::Pub, b"")).unwrap();
    let mut theirs = [0u8; GREETING_LEN];
    stream.read_exact(&mut theirs).unwrap();
    let ready = raw_frame(|n| read_n(&mut stream, n));
    assert_eq!(ready.flags, 0x04, "READY");
    stream
}

fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).expect("read the subscriber");
    buf
}

/// The subscription changes of the golden tests, short and long.
fn subscription_changes() -> Vec<(bool, Vec<u8>)> {
    vec![
        (true, b"weather".to_vec()),
        (true, Vec::new()),
        (false, b"weather".to_vec()),
        (true, vec![b'x'; 300]),
    ]
}

/// libzmq SUB and ours -> a raw ZMTP 3.0 PUB: a 3.0 peer knows no
/// SUBSCRIBE/CANCEL commands, so both send the message form (a first byte
/// of 1 or 0, then the prefix), byte for byte the same.
#[test]
fn golden_subscriptions_to_a_zmtp_30_peer() {
    check_libzmq_version();
    let changes = subscription_changes();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ep = format!("tcp://{}", listener.local_addr().unwrap());

    let zctx = zmq::Context::new();
    let lz = lz_socket(&zctx, zmq::SUB);
    lz.connect(&ep).unwrap();
    let mut stream = raw_30_publisher(&listener);
    let mut libzmq = Vec::new();
    for (subscribe, topic) in &changes {
        if *subscribe {
            lz.set_subscribe(topic).unwrap();
        } else {
            lz.set_unsubscribe(topic).unwrap();
        }
        libzmq.push(raw_frame(|n| read_n(&mut stream, n)));
    }

    let ctx = ctx();
    let ours = socket(&ctx, SocketType::Sub);
    ours.connect(&ep).unwrap();
    let mut stream = raw_30_publisher(&listener);
    for ((subscribe, topic), lz_frame) in changes.iter().zip(&libzmq) {
        if *subscribe {
            ours.subscribe(topic).unwrap();
        } else {
            ours.unsubscribe(topic).unwrap();
        }
        let frame = raw_frame(|n| read_n(&mut stream, n));
        let mut form = vec![u8::from(*subscribe)];
        form.extend_from_slice(topic);
        assert_eq!(lz_frame.flags & 0x04, 0, "libzmq: a message, not a command");
        assert!(lz_frame.bytes.ends_with(&form), "libzmq: the message form");
        assert_eq!(frame.bytes, lz_frame.bytes, "ours vs libzmq's");
    }
}
