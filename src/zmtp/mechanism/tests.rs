//! PLAIN and CURVE on the two-session harness: handshakes over random
//! chunking, ZAP verdicts, and the hostile cases (wrong keys, tampered
//! boxes, replayed and reordered nonces, truncated commands).

use super::*;
use crate::message::Message;
use crate::socket_type::SocketType;
use crate::zmtp::harness::{base, config, Pair};
use crate::zmtp::session::SessionConfig;
use bytes::BytesMut;
use std::sync::Mutex;

fn with(mechanism: MechanismConfig, ty: SocketType, id: &'static [u8]) -> SessionConfig {
    SessionConfig {
        mechanism,
        ..config(ty, id)
    }
}

fn zap(handler: impl ZapHandler, domain: &str) -> ZapContext {
    ZapContext {
        handler: Some(Arc::new(handler)),
        external: false,
        domain: domain.into(),
        address: "127.0.0.1:5555".into(),
        routing_id: Bytes::new(),
    }
}

fn plain_client(user: &str, pass: &str) -> MechanismConfig {
    MechanismConfig::PlainClient {
        username: Bytes::copy_from_slice(user.as_bytes()),
        password: SecretBytes::new(pass.as_bytes().to_vec()),
    }
}

fn curve_pair() -> (CurveKeyPair, CurveKeyPair) {
    (CurveKeyPair::generate(), CurveKeyPair::generate())
}

fn curve_configs(
    client: &CurveKeyPair,
    server: &CurveKeyPair,
    server_key: CurvePublicKey,
) -> (MechanismConfig, MechanismConfig) {
    (
        MechanismConfig::CurveClient {
            keys: client.clone(),
            server_key,
        },
        MechanismConfig::CurveServer {
            keys: server.clone(),
        },
    )
}

fn messages() -> Vec<Message> {
    vec![
        Message::from("hello"),
        Message::from(vec![
            Bytes::new(),
            Bytes::from(vec![7u8; 300]),
            Bytes::from("x"),
        ]),
        Message::from(vec![5u8; 70_000]),
        Message::new(),
    ]
}

/// Both sides ready, and messages both ways arrive whole.
fn assert_traffic(p: &mut Pair, ctx: &str) {
    assert_eq!(p.a.error, None, "{ctx}");
    assert_eq!(p.b.error, None, "{ctx}");
    assert!(p.a.ready.is_some() && p.b.ready.is_some(), "{ctx}");
    let msgs: Vec<Message> = messages().into_iter().filter(|m| !m.is_empty()).collect();
    for m in &msgs {
        p.a.session.send_message(m);
        p.b.session.send_message(m);
    }
    p.drive();
    assert_eq!(p.a.error, None, "{ctx}");
    assert_eq!(p.b.error, None, "{ctx}");
    assert_eq!(p.a.messages, msgs, "{ctx}");
    assert_eq!(p.b.messages, msgs, "{ctx}");
}

#[test]
fn plain_without_zap_handler_accepts_any_client() {
    for (seed, chunk) in [(1, 1), (2, 7), (3, 1 << 20)] {
        let mut p = Pair::new(
            with(plain_client("admin", "secret"), SocketType::Dealer, b"d"),
            with(MechanismConfig::PlainServer, SocketType::Router, b""),
            seed,
            chunk,
        );
        p.drive();
        assert_traffic(&mut p, &format!("seed {seed} chunk {chunk}"));
        assert_eq!(p.b.session.peer_properties().get(PROP_USER_ID), None);
    }
}

#[test]
fn plain_zap_sees_credentials_and_sets_user_id() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let handler = move |r: &ZapRequest| {
        log.lock().unwrap().push(r.clone());
        match &r.credentials {
            Credentials::Plain { username, password }
                if username == "admin" && password.expose() == b"secret" =>
            {
                ZapReply::allow("admin-user")
            }
            _ => ZapReply::deny("bad password"),
        }
    };
    let server = SessionConfig {
        zap: zap(handler, "global"),
        ..with(MechanismConfig::PlainServer, SocketType::Rep, b"")
    };
    let mut p = Pair::new(
        with(plain_client("admin", "secret"), SocketType::Req, b""),
        server.clone(),
        9,
        13,
    );
    p.drive();
    assert_traffic(&mut p, "allowed");
    assert_eq!(
        p.b.session
            .peer_properties()
            .get(PROP_USER_ID)
            .map(|v| &v[..]),
        Some(&b"admin-user"[..])
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].mechanism, "PLAIN");
        assert_eq!(seen[0].domain, "global");
        assert_eq!(seen[0].address, "127.0.0.1:5555");
    }

    // A wrong password: refused on both sides with the ZAP status.
    let mut p = Pair::new(
        with(plain_client("admin", "wrong"), SocketType::Req, b""),
        server,
        9,
        13,
    );
    p.drive();
    assert!(matches!(
        p.b.error,
        Some(ProtocolError::AuthFailed { status: 400, .. })
    ));
    assert!(matches!(
        p.a.error,
        Some(ProtocolError::AuthFailed { status: 400, .. })
    ));
    assert!(p.a.ready.is_none() && p.b.ready.is_none());
}

#[test]
fn curve_handshake_and_traffic_over_random_chunking() {
    let (client, server) = curve_pair();
    for (seed, chunk) in [(1, 1), (2, 5), (3, 64), (4, 1500), (5, 1 << 20)] {
        let (c, s) = curve_configs(&client, &server, server.public);
        let mut p = Pair::new(
            with(c, SocketType::Dealer, b"dealer-1"),
            with(s, SocketType::Router, b""),
            seed,
            chunk,
        );
        p.drive();
        let ctx = format!("seed {seed} chunk {chunk}");
        assert_eq!(
            p.b.ready.as_ref().map(|r| r.routing_id.clone()),
            Some(Bytes::from_static(b"dealer-1")),
            "{ctx}"
        );
        assert_traffic(&mut p, &ctx);
    }
}

/// Takes everything `from` has to send.
fn take_output(p: &mut Pair, a_side: bool) -> Vec<u8> {
    let s = if a_side {
        &mut p.a.session
    } else {
        &mut p.b.session
    };
    let out: Vec<u8> = s.output_chunks().flat_map(|c| c.to_vec()).collect();
    s.consume_output(out.len());
    out
}

fn curve_ready_pair(ty_a: SocketType, ty_b: SocketType) -> Pair {
    let (client, server) = curve_pair();
    let (c, s) = curve_configs(&client, &server, server.public);
    let mut p = Pair::new(with(c, ty_a, b""), with(s, ty_b, b""), 1, 1 << 20);
    p.drive();
    assert!(p.a.ready.is_some() && p.b.ready.is_some());
    p
}

#[test]
fn curve_messages_are_boxed_with_flags_inside_and_nonces_continuing() {
    let mut p = curve_ready_pair(SocketType::Dealer, SocketType::Router);
    p.a.session.send_message(&Message::from(vec![
        Bytes::from_static(b"top-secret-one"),
        Bytes::from_static(b"top-secret-two"),
    ]));
    let wire = take_output(&mut p, true);
    // Two MESSAGE frames, each a plain one-part frame (flags 0): MORE
    // travels inside the box.
    let first_len = 2 + 16 + 16 + 1 + 14;
    assert_eq!(wire.len(), 2 * first_len);
    for frame in wire.chunks(first_len) {
        assert_eq!(frame[0], 0x00, "no MORE or COMMAND outside the box");
        assert_eq!(&frame[2..10], b"\x07MESSAGE");
    }
    // The client's nonces went 1 (HELLO), 2 (INITIATE): messages go on
    // from 3.
    assert_eq!(&wire[10..18], &3u64.to_be_bytes());
    assert_eq!(&wire[first_len + 10..first_len + 18], &4u64.to_be_bytes());
    assert!(!wire.windows(10).any(|w| w == b"top-secret"));
    let mut input = BytesMut::from(&wire[..]);
    p.b.session.handle_input(&mut input, base()).unwrap();
    let ev = p.b.session.poll_event();
    assert!(
        matches!(&ev, Some(crate::zmtp::SessionEvent::Message(m)) if m.len() == 2),
        "{ev:?}"
    );
    // The server's READY took its nonce 1.
    p.b.session.send_message(&Message::from("x"));
    let wire = take_output(&mut p, false);
    assert_eq!(&wire[10..18], &2u64.to_be_bytes());
}

#[test]
fn curve_commands_after_the_handshake_are_encrypted() {
    let mut p = curve_ready_pair(SocketType::Sub, SocketType::XPub);
    p.a.session
        .send_message(&Message::from(&b"\x01weather"[..]));
    let wire = take_output(&mut p, true);
    assert!(!wire.windows(9).any(|w| w == b"SUBSCRIBE"));
    assert!(!wire.windows(7).any(|w| w == b"weather"));
    let mut input = BytesMut::from(&wire[..]);
    p.b.session.handle_input(&mut input, base()).unwrap();
    match p.b.session.poll_event() {
        Some(crate::zmtp::SessionEvent::Message(m)) => {
            assert_eq!(m.first().map(|f| &f[..]), Some(&b"\x01weather"[..]))
        }
        e => panic!("{e:?}"),
    }

    // Heartbeats: PING and PONG are boxed, and keep the link alive.
    let mut p = {
        let (client, server) = curve_pair();
        let (c, s) = curve_configs(&client, &server, server.public);
        let hb = |m, t| SessionConfig {
            heartbeat_ivl: Some(Duration::from_millis(100)),
            ..with(m, t, b"")
        };
        let mut p = Pair::new(
            hb(c, SocketType::Dealer),
            hb(s, SocketType::Router),
            3,
            1 << 20,
        );
        p.drive();
        p
    };
    for _ in 0..10 {
        p.advance(Duration::from_millis(100));
        let a = take_output(&mut p, true);
        assert!(!a.is_empty() && !a.windows(4).any(|w| w == b"PING"));
        let mut input = BytesMut::from(&a[..]);
        p.b.session.handle_input(&mut input, p.now).unwrap();
        let b = take_output(&mut p, false);
        assert!(!b.windows(4).any(|w| w == b"PONG"));
        let mut input = BytesMut::from(&b[..]);
        p.a.session.handle_input(&mut input, p.now).unwrap();
    }
    assert_eq!(p.a.session.error(), None);
    assert_eq!(p.b.session.error(), None);
}

use std::time::Duration;

#[test]
fn curve_wrong_server_key_is_refused() {
    let (client, server) = curve_pair();
    let other = CurveKeyPair::generate();
    let (c, s) = curve_configs(&client, &server, other.public);
    let mut p = Pair::new(
        with(c, SocketType::Req, b""),
        with(s, SocketType::Rep, b""),
        1,
        100,
    );
    p.drive();
    assert!(matches!(p.b.error, Some(ProtocolError::Decryption(_))));
    assert!(p.a.ready.is_none() && p.b.ready.is_none());
}

#[test]
fn curve_zap_gets_the_client_key_and_can_refuse() {
    let (client, server) = curve_pair();
    let allowed = client.public;
    let handler = move |r: &ZapRequest| match r.credentials {
        Credentials::Curve { public_key } if public_key == allowed => ZapReply::allow("alice"),
        _ => ZapReply::Deny {
            status: 400,
            text: "unknown key".into(),
        },
    };
    let zap = zap(handler, "curve-domain");
    let (c, s) = curve_configs(&client, &server, server.public);
    let mut p = Pair::new(
        with(c, SocketType::Req, b""),
        SessionConfig {
            zap: zap.clone(),
            ..with(s.clone(), SocketType::Rep, b"")
        },
        2,
        33,
    );
    p.drive();
    assert_traffic(&mut p, "allowed");
    assert_eq!(
        p.b.session
            .peer_properties()
            .get(PROP_USER_ID)
            .map(|v| &v[..]),
        Some(&b"alice"[..])
    );

    let stranger = CurveKeyPair::generate();
    let (c, _) = curve_configs(&stranger, &server, server.public);
    let mut p = Pair::new(
        with(c, SocketType::Req, b""),
        SessionConfig {
            zap,
            ..with(s, SocketType::Rep, b"")
        },
        2,
        33,
    );
    p.drive();
    assert_eq!(
        p.b.error,
        Some(ProtocolError::AuthFailed {
            status: 400,
            text: "unknown key".into()
        })
    );
    assert!(matches!(
        p.a.error,
        Some(ProtocolError::AuthFailed { status: 400, .. })
    ));
}

#[test]
fn curve_tampered_replayed_and_reordered_messages_are_refused() {
    let send_two = |p: &mut Pair| {
        p.a.session.send_message(&Message::from("one"));
        let one = take_output(p, true);
        p.a.session.send_message(&Message::from("two"));
        let two = take_output(p, true);
        (one, two)
    };
    let feed = |p: &mut Pair, bytes: &[u8]| {
        let mut input = BytesMut::from(bytes);
        p.b.session.handle_input(&mut input, base())
    };

    // Tampered: one bit anywhere in the box.
    for at in [10, 18, 30, 34] {
        let mut p = curve_ready_pair(SocketType::Dealer, SocketType::Router);
        let (mut one, _) = send_two(&mut p);
        one[at] ^= 0x01;
        let r = feed(&mut p, &one);
        assert!(
            matches!(
                r,
                Err(ProtocolError::Decryption(_)) | Err(ProtocolError::ReplayedNonce { .. })
            ),
            "flip at {at}: {r:?}"
        );
    }

    // Replayed.
    let mut p = curve_ready_pair(SocketType::Dealer, SocketType::Router);
    let (one, _) = send_two(&mut p);
    feed(&mut p, &one).unwrap();
    assert_eq!(
        feed(&mut p, &one),
        Err(ProtocolError::ReplayedNonce { nonce: 3, last: 3 })
    );

    // Out of order: the later one first, then the earlier one.
    let mut p = curve_ready_pair(SocketType::Dealer, SocketType::Router);
    let (one, two) = send_two(&mut p);
    feed(&mut p, &two).unwrap();
    assert_eq!(
        feed(&mut p, &one),
        Err(ProtocolError::ReplayedNonce { nonce: 3, last: 4 })
    );
}

#[test]
fn curve_truncated_and_misplaced_commands_are_refused() {
    let (client, server) = curve_pair();
    let (c, s) = curve_configs(&client, &server, server.public);
    let mut client_session = crate::zmtp::Session::new(with(c, SocketType::Req, b""), base());
    let server_cfg = with(s, SocketType::Rep, b"");
    let greeting = client_session.output()[..64].to_vec();
    client_session.consume_output(64);
    let mut peer_greeting = BytesMut::new();
    {
        let srv = crate::zmtp::Session::new(server_cfg.clone(), base());
        peer_greeting.extend_from_slice(&srv.output()[..64]);
    }
    client_session
        .handle_input(&mut peer_greeting, base())
        .unwrap();
    let hello: Vec<u8> = client_session.output().to_vec();
    assert_eq!(hello.len(), 2 + 200, "HELLO is padded to 200 bytes");

    // HELLO cut short by one byte (its frame says so).
    let mut short = hello.clone();
    short[1] = 199;
    short.pop();
    let mut srv = crate::zmtp::Session::new(server_cfg.clone(), base());
    let mut input = BytesMut::from(&greeting[..]);
    input.extend_from_slice(&short);
    assert!(matches!(
        srv.handle_input(&mut input, base()),
        Err(ProtocolError::MalformedCommand(_))
    ));

    // A MESSAGE (or any message frame) before the handshake.
    let mut srv = crate::zmtp::Session::new(server_cfg.clone(), base());
    let mut input = BytesMut::from(&greeting[..]);
    input.extend_from_slice(b"\x00\x05hello");
    assert!(srv.handle_input(&mut input, base()).is_err());

    // A replayed HELLO after WELCOME.
    let mut srv = crate::zmtp::Session::new(server_cfg, base());
    let mut input = BytesMut::from(&greeting[..]);
    input.extend_from_slice(&hello);
    srv.handle_input(&mut input, base()).unwrap();
    let mut input = BytesMut::from(&hello[..]);
    assert!(matches!(
        srv.handle_input(&mut input, base()),
        Err(ProtocolError::UnexpectedCommand(_))
    ));

    // A MESSAGE shorter than its header and MAC, after the handshake.
    let mut p = curve_ready_pair(SocketType::Dealer, SocketType::Router);
    let mut input = BytesMut::from(&b"\x00\x12\x07MESSAGE\x00\x00\x00\x00\x00\x00\x00\x09xx"[..]);
    assert!(matches!(
        p.b.session.handle_input(&mut input, base()),
        Err(ProtocolError::MalformedCommand(_))
    ));
    // And a plain frame where a MESSAGE must be.
    let mut p = curve_ready_pair(SocketType::Dealer, SocketType::Router);
    let mut input = BytesMut::from(&b"\x00\x05hello"[..]);
    assert!(matches!(
        p.b.session.handle_input(&mut input, base()),
        Err(ProtocolError::UnexpectedCommand(_))
    ));
}

#[test]
fn mechanism_mismatch_is_refused() {
    let (client, server) = curve_pair();
    let (c, _) = curve_configs(&client, &server, server.public);
    let mut p = Pair::new(
        with(c, SocketType::Req, b""),
        config(SocketType::Rep, b""),
        1,
        64,
    );
    p.drive();
    assert!(matches!(
        p.a.error,
        Some(ProtocolError::MechanismMismatch { .. })
    ));
    assert!(matches!(
        p.b.error,
        Some(ProtocolError::MechanismMismatch { .. })
    ));
}

#[test]
fn messages_sent_before_a_curve_handshake_wait_and_go_boxed() {
    let (client, server) = curve_pair();
    let (c, s) = curve_configs(&client, &server, server.public);
    let mut p = Pair::new(
        with(c, SocketType::Push, b""),
        with(s, SocketType::Pull, b""),
        4,
        17,
    );
    p.a.session.send_message(&Message::from("early"));
    assert_eq!(p.a.session.unsent_messages(), 1);
    p.drive();
    assert_eq!(p.b.messages, vec![Message::from("early")]);
    assert_eq!(p.a.session.unsent_messages(), 0);
}

/// Moves `from`'s output into `to`, logging it, and `to`'s messages into
/// `got`.
fn shuttle(
    from: &mut crate::zmtp::Session,
    to: &mut crate::zmtp::Session,
    log: &mut Vec<u8>,
    got: &mut Vec<Message>,
) {
    let out = from.output().to_vec();
    from.consume_output(out.len());
    log.extend_from_slice(&out);
    to.handle_input(&mut BytesMut::from(&out[..]), base())
        .unwrap();
    while let Some(ev) = to.poll_event() {
        if let crate::zmtp::SessionEvent::Message(m) = ev {
            got.push(m);
        }
    }
}

/// Everything each side of a seeded CURVE handshake writes, one message
/// each way included, and what each received.
fn seeded_exchange(
    client_seed: [u8; 32],
    server_seed: [u8; 32],
) -> (Vec<u8>, Vec<u8>, Vec<Message>) {
    use crate::zmtp::Session;
    let (client, server) = (
        CurveKeyPair::from_secret(CurveSecretKey::from_bytes_or_z85(&[1; 32]).unwrap()),
        CurveKeyPair::from_secret(CurveSecretKey::from_bytes_or_z85(&[2; 32]).unwrap()),
    );
    let (c, s) = curve_configs(&client, &server, server.public);
    let mut a = Session::new_seeded(with(c, SocketType::Dealer, b"d"), base(), client_seed);
    let mut b = Session::new_seeded(with(s, SocketType::Router, b""), base(), server_seed);
    let (mut from_a, mut from_b, mut got) = (Vec::new(), Vec::new(), Vec::new());
    let mut sent = false;
    for _ in 0..10 {
        shuttle(&mut a, &mut b, &mut from_a, &mut got);
        shuttle(&mut b, &mut a, &mut from_b, &mut got);
        if a.is_ready() && b.is_ready() && !sent {
            a.send_message(&Message::from("up"));
            b.send_message(&Message::from("down"));
            sent = true;
        }
    }
    (from_a, from_b, got)
}

#[test]
fn seeded_randomness_makes_curve_bytes_a_function_of_the_input() {
    // The seam of the golden-bytes tests (Session::new_seeded): same seeds
    // and keys, same bytes on the wire, and the handshake still works.
    let (a, b, got) = seeded_exchange([3; 32], [4; 32]);
    assert_eq!(got, vec![Message::from("up"), Message::from("down")]);
    assert_eq!(
        seeded_exchange([3; 32], [4; 32]),
        (a.clone(), b.clone(), got)
    );
    // Each seed moves its own side's bytes: the client's HELLO (its C'),
    // the server's WELCOME.
    let (a2, b2, _) = seeded_exchange([5; 32], [4; 32]);
    assert_ne!(a2[64..266], a[64..266]);
    assert_ne!(b2[64..], b[64..]);
    let (a3, b3, _) = seeded_exchange([3; 32], [6; 32]);
    assert_eq!(a3[..266], a[..266]);
    assert_ne!(b3[64..234], b[64..234]);
}

#[test]
fn plain_refusal_uses_libzmqs_error_bytes_and_both_forms_are_read() {
    let server = SessionConfig {
        zap: zap(|_: &ZapRequest| ZapReply::deny("no"), ""),
        ..with(MechanismConfig::PlainServer, SocketType::Rep, b"")
    };
    let mut s = crate::zmtp::Session::new(server, base());
    s.consume_output(64);
    let mut input = BytesMut::from(
        &crate::zmtp::greeting::Greeting::with_mechanism(b"PLAIN", false).to_bytes()[..],
    );
    input.extend_from_slice(b"\x04\x10\x05HELLO\x04user\x04pass");
    assert!(matches!(
        s.handle_input(&mut input, base()),
        Err(ProtocolError::AuthFailed { status: 400, .. })
    ));
    assert_eq!(s.output(), b"\x04\x09^RROR\x03400");

    for error in [&b"\x04\x09^RROR\x03300"[..], b"\x04\x0a\x05ERROR\x03300"] {
        let mut c =
            crate::zmtp::Session::new(with(plain_client("u", "p"), SocketType::Req, b""), base());
        let mut input = BytesMut::from(
            &crate::zmtp::greeting::Greeting::with_mechanism(b"PLAIN", true).to_bytes()[..],
        );
        input.extend_from_slice(error);
        assert!(matches!(
            c.handle_input(&mut input, base()),
            Err(ProtocolError::AuthFailed { status: 300, .. })
        ));
    }
}

#[test]
fn null_asks_zap_only_with_a_domain() {
    let deny = || zap(|_: &ZapRequest| ZapReply::deny("no"), "");
    // No domain: ZAP is not asked, as in libzmq.
    let mut p = Pair::new(
        config(SocketType::Req, b""),
        SessionConfig {
            zap: deny(),
            ..config(SocketType::Rep, b"")
        },
        1,
        64,
    );
    p.drive();
    assert_traffic(&mut p, "no domain");
    // With one, a refusal is an ERROR with the status code.
    let mut p = Pair::new(
        config(SocketType::Req, b""),
        SessionConfig {
            zap: ZapContext {
                domain: "d".into(),
                ..deny()
            },
            ..config(SocketType::Rep, b"")
        },
        1,
        64,
    );
    p.drive();
    assert!(matches!(
        p.b.error,
        Some(ProtocolError::AuthFailed { status: 400, .. })
    ));
    assert!(matches!(
        p.a.error,
        Some(ProtocolError::AuthFailed { status: 400, .. })
    ));
}

/// A HELLO captured from libzmq 4.3.5 (pyzmq, libsodium) connecting to
/// the server key pair of libzmq's test suite: our server opens it and
/// answers WELCOME; one bit changed, it refuses.
#[test]
fn libzmq_hello_golden_bytes() {
    const HELLO: &str = "04c80548454c4c4f01000000000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        0000000000f5b7ba676694cb1c63ed7bda28cb001cd4227db65d8a89924faaa13a4d0bb05200000000\
        00000001b1d9bee72b260c74f067a159965f7aff515a923a6c38d91803775e8a1abe187c9abc9fdecd\
        a89cd1013723f5335745f181b21a917dc391164e885cba5557275c441a69fd8a856c2b9e40c5d63afb\
        b12d";
    let hello: Vec<u8> = (0..HELLO.len() / 2)
        .map(|i| u8::from_str_radix(&HELLO[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert_eq!(hello.len(), 202);
    let secret =
        CurveSecretKey::from_bytes_or_z85(b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6").unwrap();
    let server = with(
        MechanismConfig::CurveServer {
            keys: CurveKeyPair::from_secret(secret),
        },
        SocketType::Router,
        b"",
    );
    let greeting = crate::zmtp::greeting::Greeting::with_mechanism(b"CURVE", false).to_bytes();
    for flip in [None, Some(150)] {
        let mut s = crate::zmtp::Session::new(server.clone(), base());
        s.consume_output(64);
        let mut input = BytesMut::from(&greeting[..]);
        input.extend_from_slice(&hello);
        if let Some(at) = flip {
            input[64 + at] ^= 1;
        }
        let r = s.handle_input(&mut input, base());
        match flip {
            None => {
                r.unwrap();
                assert_eq!(&s.output()[..10], b"\x04\xa8\x07WELCOME");
                assert_eq!(s.output().len(), 2 + 168);
            }
            Some(_) => assert!(matches!(r, Err(ProtocolError::Decryption(_)))),
        }
    }
}

/// A ZAP context whose requests wait for the driver, as the I/O thread
/// serves `inproc://zeromq.zap.01`.
fn external(domain: &str) -> ZapContext {
    ZapContext {
        external: true,
        domain: domain.into(),
        address: "127.0.0.1:5555".into(),
        ..ZapContext::default()
    }
}

/// Server configurations (client, server) for each mechanism, the server
/// leaving ZAP to the driver.
fn async_pairs() -> Vec<(&'static str, SessionConfig, SessionConfig)> {
    let (c, s) = curve_pair();
    let (curve_client, curve_server) = curve_configs(&c, &s, s.public);
    vec![
        (
            "NULL",
            config(SocketType::Dealer, b"c"),
            SessionConfig {
                zap: external("d"),
                ..config(SocketType::Router, b"")
            },
        ),
        (
            "PLAIN",
            with(plain_client("admin", "pw"), SocketType::Dealer, b"c"),
            SessionConfig {
                zap: external(""),
                ..with(MechanismConfig::PlainServer, SocketType::Router, b"")
            },
        ),
        (
            "CURVE",
            with(curve_client, SocketType::Dealer, b"c"),
            SessionConfig {
                zap: external(""),
                ..with(curve_server, SocketType::Router, b"")
            },
        ),
    ]
}

#[test]
fn async_zap_waits_for_the_answer_then_attaches_its_properties() {
    for (name, client, server) in async_pairs() {
        for seed in 1..4 {
            let mut p = Pair::new(client.clone(), server.clone(), seed, 1 + seed as usize * 40);
            p.drive();
            // The handshake waits: nobody is ready, nothing failed.
            assert!(p.b.session.is_awaiting_zap(), "{name}");
            assert!(p.a.ready.is_none() && p.b.ready.is_none(), "{name}");
            assert_eq!((&p.a.error, &p.b.error), (&None, &None), "{name}");
            let request = p.b.session.poll_zap_request().expect("a request");
            assert!(p.b.session.poll_zap_request().is_none(), "taken once");
            assert_eq!(request.mechanism, name);
            match (&request.credentials, name) {
                (Credentials::Plain { username, .. }, "PLAIN") => assert_eq!(username, "admin"),
                (Credentials::Curve { .. }, "CURVE") | (Credentials::Null, "NULL") => {}
                (c, _) => panic!("{name}: {c:?}"),
            }
            let mut metadata = Metadata::new();
            metadata.push("Hello", "World");
            p.b.zap_reply(
                ZapAnswer::Reply {
                    reply: ZapReply::allow("alice"),
                    metadata,
                },
                p.now,
            );
            p.drive();
            assert!(!p.b.session.is_awaiting_zap());
            let props = p.b.session.peer_properties();
            assert_eq!(props.get(PROP_USER_ID).map(|v| &v[..]), Some(&b"alice"[..]));
            assert_eq!(props.get("Hello").map(|v| &v[..]), Some(&b"World"[..]));
            assert_traffic(&mut p, name);
            // A second answer changes nothing.
            p.b.session
                .zap_reply(ZapReply::deny("late"), p.now)
                .unwrap();
            assert!(p.b.session.is_ready());
        }
    }
}

#[test]
fn async_zap_refusal_and_failure_reach_both_sides() {
    for (name, client, server) in async_pairs() {
        let mut p = Pair::new(client.clone(), server.clone(), 7, 64);
        p.drive();
        assert!(p.b.session.poll_zap_request().is_some(), "{name}");
        p.b.zap_reply(
            ZapReply::Deny {
                status: 300,
                text: "busy".into(),
            }
            .into(),
            p.now,
        );
        p.drive();
        assert_eq!(
            p.b.error,
            Some(ProtocolError::AuthFailed {
                status: 300,
                text: "busy".into()
            }),
            "{name}"
        );
        assert!(
            matches!(
                p.a.error,
                Some(ProtocolError::AuthFailed { status: 300, .. })
            ),
            "{name}: {:?}",
            p.a.error
        );
        // A reply the handler botched fails the server's side alone.
        let mut p = Pair::new(client, server, 7, 64);
        p.drive();
        let why = ProtocolError::ZapFailed("ZAP reply version is not 1.0");
        p.b.zap_reply(ZapAnswer::Failed(why.clone()), p.now);
        assert_eq!(p.b.error, Some(why), "{name}");
        assert!(p.b.session.output().is_empty(), "{name}: no ERROR for it");
    }
}

#[test]
fn async_zap_wait_is_bounded_by_handshake_ivl_and_refuses_early_commands() {
    for (name, client, server) in async_pairs() {
        let server = SessionConfig {
            handshake_ivl: Some(std::time::Duration::from_secs(1)),
            ..server
        };
        let mut p = Pair::new(client.clone(), server.clone(), 3, 64);
        p.drive();
        assert!(p.b.session.poll_zap_request().is_some());
        p.advance(std::time::Duration::from_millis(999));
        assert_eq!(p.b.error, None, "{name}");
        p.advance(std::time::Duration::from_millis(1));
        assert_eq!(p.b.error, Some(ProtocolError::HandshakeTimeout), "{name}");
        assert!(!p.b.session.is_awaiting_zap());
        // The answer, once the session failed, is the failure.
        assert_eq!(
            p.b.session.zap_reply(ZapReply::allow(""), p.now),
            Err(ProtocolError::HandshakeTimeout)
        );

        // A command while the server waits: PLAIN and CURVE clients must
        // wait for WELCOME and READY; a NULL peer's READY is expected, a
        // second one is not.
        let mut p = Pair::new(client, server, 3, 64);
        p.drive();
        let mut ping = BytesMut::new();
        crate::zmtp::command::Command::Ready(Metadata::new()).encode(&mut ping);
        let mut input = ping.clone();
        let r = p.b.session.handle_input(&mut input, p.now);
        assert!(
            matches!(r, Err(ProtocolError::UnexpectedCommand(_))),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn null_peer_ready_before_the_answer_is_kept() {
    let (_, client, server) = async_pairs().remove(0);
    // The client's READY reaches the server before the answer.
    let mut p = Pair::new(client, server, 5, 3);
    p.drive();
    assert!(p.a.session.output().is_empty() && p.b.ready.is_none());
    p.b.zap_reply(ZapAnswer::NoHandler, p.now);
    // Ready at once: the peer's READY came already.
    assert!(p.b.ready.is_some());
    p.drive();
    assert_eq!(p.b.session.peer_properties().get(PROP_USER_ID), None);
    assert_traffic(&mut p, "NULL, READY first");
}

#[test]
fn the_user_id_is_zaps_never_the_clients() {
    use crate::zmtp::command::{Command, PROP_SOCKET_TYPE};
    use crate::zmtp::greeting::Greeting;
    use crate::zmtp::Session;
    // A NULL client that names itself "root" in its READY.
    let server = SessionConfig {
        zap: zap(|_: &ZapRequest| ZapReply::allow("alice"), "d"),
        ..config(SocketType::Router, b"")
    };
    let mut s = Session::new(server, base());
    let mut input = BytesMut::from(&Greeting::ours().to_bytes()[..]);
    let mut md = Metadata::new();
    md.push(PROP_SOCKET_TYPE, "DEALER");
    md.push("user-id", "root");
    Command::Ready(md).encode(&mut input);
    s.handle_input(&mut input, base()).unwrap();
    assert!(s.is_ready());
    let user = s.peer_properties().get(PROP_USER_ID);
    assert_eq!(user.map(|v| &v[..]), Some(&b"alice"[..]));
}
