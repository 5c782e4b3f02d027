//! Test harness: two [`Session`]s wired back to back on simulated time,
//! in the style of quinn-proto's `tests/util::Pair`.
//!
//! Bytes move between the sides in random chunk sizes (a seeded xorshift
//! PRNG, so failures reproduce), which exercises every way a TCP stream
//! can split greetings, headers and bodies.

use super::session::{Session, SessionConfig, SessionEvent};
use crate::error::ProtocolError;
use crate::message::Message;
use crate::pattern::PeerInfo;
use crate::socket_type::SocketType;
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

/// Tiny deterministic PRNG (xorshift64).
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        // Zero is a fixed point of xorshift.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `1..=max`.
    pub fn chunk(&mut self, max: usize) -> usize {
        1 + (self.next() % max.max(1) as u64) as usize
    }
}

/// One end of the pair.
pub struct Side {
    pub session: Session,
    /// Bytes received but not yet consumed by the session.
    pub inbox: BytesMut,
    pub ready: Option<PeerInfo>,
    pub messages: Vec<Message>,
    pub error: Option<ProtocolError>,
    /// When false, this side's output is never delivered (a silent peer).
    pub transmits: bool,
}

impl Side {
    fn new(config: SessionConfig, now: Instant) -> Side {
        Side {
            session: Session::new(config, now),
            inbox: BytesMut::new(),
            ready: None,
            messages: Vec::new(),
            error: None,
            transmits: true,
        }
    }

    /// Hands ZAP's answer to this side's session, as the I/O thread does
    /// when a handler replies.
    pub fn zap_reply(&mut self, answer: crate::zmtp::mechanism::ZapAnswer, now: Instant) {
        let res = self.session.zap_reply(answer, now);
        self.drain_events();
        if let Err(e) = res {
            self.error = Some(e);
        }
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SessionEvent::Ready(p) => {
                    assert!(self.ready.is_none(), "Ready reported twice");
                    self.ready = Some(p);
                }
                SessionEvent::Message(m) => {
                    assert!(self.ready.is_some(), "message before Ready");
                    self.messages.push(m);
                }
            }
        }
    }
}

/// Two sessions and the simulated wire between them.
pub struct Pair {
    pub a: Side,
    pub b: Side,
    pub now: Instant,
    rng: XorShift,
    max_chunk: usize,
}

impl Pair {
    pub fn new(a: SessionConfig, b: SessionConfig, seed: u64, max_chunk: usize) -> Pair {
        let now = base();
        Pair {
            a: Side::new(a, now),
            b: Side::new(b, now),
            now,
            rng: XorShift::new(seed),
            max_chunk,
        }
    }

    /// Moves one random-sized chunk from `from`'s output to `to`, and lets
    /// `to` process it. A failed side still flushes its output (the engine
    /// writes a pending ERROR before closing) but takes no more input.
    /// Returns whether any bytes moved.
    fn transmit(
        from: &mut Side,
        to: &mut Side,
        rng: &mut XorShift,
        max: usize,
        now: Instant,
    ) -> bool {
        if !from.transmits || from.session.output().is_empty() {
            return false;
        }
        let n = rng.chunk(max).min(from.session.output().len());
        if to.error.is_none() {
            to.inbox.extend_from_slice(&from.session.output()[..n]);
        }
        from.session.consume_output(n);
        if to.error.is_none() {
            let res = to.session.handle_input(&mut to.inbox, now);
            to.drain_events();
            if let Err(e) = res {
                to.error = Some(e);
            }
        }
        true
    }

    /// One round: a chunk each way, in a random order.
    pub fn step(&mut self) -> bool {
        let (rng, max, now) = (&mut self.rng, self.max_chunk, self.now);
        if rng.next() & 1 == 0 {
            let x = Self::transmit(&mut self.a, &mut self.b, rng, max, now);
            x | Self::transmit(&mut self.b, &mut self.a, rng, max, now)
        } else {
            let x = Self::transmit(&mut self.b, &mut self.a, rng, max, now);
            x | Self::transmit(&mut self.a, &mut self.b, rng, max, now)
        }
    }

    /// Steps until no bytes move.
    pub fn drive(&mut self) {
        while self.step() {}
    }

    /// Advances simulated time, firing due timers on both sides.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        for side in [&mut self.a, &mut self.b] {
            if side.error.is_some() {
                continue;
            }
            if side.session.poll_timeout().is_some_and(|t| t <= self.now) {
                if let Err(e) = side.session.handle_timeout(self.now) {
                    side.error = Some(e);
                }
            }
        }
    }
}

/// The one base instant all simulated times derive from.
pub fn base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

pub fn config(socket_type: SocketType, routing_id: &'static [u8]) -> SessionConfig {
    SessionConfig {
        socket_type,
        routing_id: Bytes::from_static(routing_id),
        handshake_ivl: Some(Duration::from_secs(30)),
        maxmsgsize: None,
        command_limit: Some(crate::zmtp::frame::MIN_COMMAND_LIMIT),
        heartbeat_ivl: None,
        heartbeat_timeout: None,
        heartbeat_ttl: None,
        ..SessionConfig::new(socket_type)
    }
}

const SEEDS: [u64; 8] = [1, 2, 3, 42, 1234, 0xDEAD_BEEF, 7777, 31337];
const CHUNKS: [usize; 5] = [1, 3, 64, 1500, 1 << 20];

fn body(len: usize, tag: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ tag)
        .collect::<Vec<u8>>()
        .into()
}

fn test_messages() -> Vec<Message> {
    vec![
        Message::from(vec![Bytes::new()]),
        Message::from(vec![body(1, 1)]),
        Message::from(vec![body(255, 2)]),
        Message::from(vec![body(256, 3)]),
        Message::from(vec![body(70000, 4)]),
        Message::from(vec![
            Bytes::new(),
            body(1, 5),
            Bytes::new(),
            body(255, 6),
            body(256, 7),
            Bytes::new(),
        ]),
        Message::from(vec![body(70000, 8), body(0, 9), body(300, 10)]),
        Message::from("last"),
    ]
}

#[test]
fn handshakes_and_traffic_over_random_chunking() {
    let pairs: [(SocketType, &[u8], SocketType, &[u8]); 4] = [
        (SocketType::Req, b"", SocketType::Rep, b"ignored"),
        (SocketType::Dealer, b"dealer-1", SocketType::Router, b"r"),
        (SocketType::Router, b"", SocketType::Router, b"peer-router"),
        (SocketType::Push, b"", SocketType::Pull, b""),
    ];
    for &(ta, ida, tb, idb) in &pairs {
        for seed in SEEDS {
            for max_chunk in CHUNKS {
                let ctx = format!("{ta}/{tb} seed {seed} chunk {max_chunk}");
                let mut p = Pair::new(config(ta, ida), config(tb, idb), seed, max_chunk);
                p.drive();
                assert_eq!(p.a.error, None, "{ctx}");
                assert_eq!(p.b.error, None, "{ctx}");
                // A peer's routing id is what it sent as Identity: only
                // REQ, DEALER and ROUTER send one.
                let expect = |t: SocketType, id: &'static [u8]| PeerInfo {
                    socket_type: t,
                    routing_id: if t.sends_identity() {
                        Bytes::from_static(id)
                    } else {
                        Bytes::new()
                    },
                };
                assert_eq!(p.a.ready, Some(expect(tb, idb)), "{ctx}");
                assert_eq!(p.b.ready, Some(expect(ta, ida)), "{ctx}");
                assert!(p.a.session.is_ready() && p.b.session.is_ready(), "{ctx}");
                assert_eq!(p.a.session.poll_timeout(), None, "{ctx}");

                // Traffic both ways (PUSH/PULL too: the session does not
                // enforce direction, the pattern does).
                let msgs = test_messages();
                for m in &msgs {
                    p.a.session.send_message(m);
                    p.b.session.send_message(m);
                }
                p.drive();
                assert_eq!(p.a.error, None, "{ctx}");
                assert_eq!(p.b.error, None, "{ctx}");
                assert_eq!(p.b.messages, msgs, "{ctx}");
                assert_eq!(p.a.messages, msgs, "{ctx}");
                assert!(p.a.inbox.is_empty() && p.b.inbox.is_empty(), "{ctx}");
            }
        }
    }
}

#[test]
fn ping_pong_between_sessions() {
    use super::command::Command;
    for seed in SEEDS {
        let mut p = Pair::new(
            config(SocketType::Dealer, b""),
            config(SocketType::Dealer, b""),
            seed,
            5,
        );
        p.drive();
        assert!(p.a.session.is_ready());
        // Inject a PING as if `a` had sent it, then a message behind it.
        let ping = Command::Ping {
            ttl: 10,
            context: Bytes::from_static(b"hb"),
        };
        let mut wire = BytesMut::new();
        ping.encode(&mut wire);
        p.b.inbox.extend_from_slice(&wire);
        p.b.session.handle_input(&mut p.b.inbox, p.now).unwrap();
        assert_eq!(p.b.session.output(), b"\x04\x07\x04PONGhb");
        p.drive();
        assert_eq!(p.a.error, None);
        assert_eq!(p.b.error, None);
        assert!(p.a.messages.is_empty());
    }
}

#[test]
fn incompatible_types_fail_both_sides() {
    for seed in SEEDS {
        for max_chunk in CHUNKS {
            let ctx = format!("seed {seed} chunk {max_chunk}");
            let mut p = Pair::new(
                config(SocketType::Req, b""),
                config(SocketType::Push, b""),
                seed,
                max_chunk,
            );
            p.drive();
            // Both READYs are on the wire before either ERROR, and the
            // compatibility rule is symmetric, so each side normally
            // refuses the other's READY itself; a side that gets the ERROR
            // first reports PeerError instead.
            for (side, ours, peer) in [(&p.a, "REQ", "PUSH"), (&p.b, "PUSH", "REQ")] {
                match &side.error {
                    Some(ProtocolError::IncompatibleSocketType { ours: o, peer: q }) => {
                        assert_eq!((*o, q.as_str()), (ours, peer), "{ctx}");
                    }
                    Some(ProtocolError::PeerError(reason)) => {
                        assert_eq!(reason, "Invalid socket type", "{ctx}");
                    }
                    other => panic!("{ctx}: {other:?}"),
                }
                assert!(side.ready.is_none(), "{ctx}");
            }
        }
    }
}

#[test]
fn error_command_reaches_the_peer() {
    // A peer whose READY names an unknown type: we answer with ERROR, and
    // a session on the other end reports it as PeerError.
    use super::command::{Command, Metadata};
    use super::greeting::Greeting;
    let now = base();
    let mut ours = Session::new(config(SocketType::Rep, b""), now);
    let mut victim = Session::new(config(SocketType::Req, b""), now);
    let mut to_victim = BytesMut::new();
    let mut fake = BytesMut::from(&Greeting::ours().to_bytes()[..]);
    let mut md = Metadata::new();
    md.push("Socket-Type", "PUB");
    Command::Ready(md).encode(&mut fake);
    assert!(matches!(
        ours.handle_input(&mut fake, now),
        Err(ProtocolError::IncompatibleSocketType { .. })
    ));
    // Deliver ours' greeting, then skip its READY so that the victim sees
    // only the ERROR after its greeting.
    let out = ours.output();
    to_victim.extend_from_slice(&out[..64]);
    let ready_len = 2 + usize::from(out[65]);
    to_victim.extend_from_slice(&out[64 + ready_len..]);
    assert_eq!(
        victim.handle_input(&mut to_victim, now),
        Err(ProtocolError::PeerError("Invalid socket type".into()))
    );
}

#[test]
fn handshake_times_out_when_peer_is_silent() {
    for seed in SEEDS {
        let mut silent = config(SocketType::Rep, b"");
        silent.handshake_ivl = None;
        let mut p = Pair::new(config(SocketType::Req, b""), silent, seed, 7);
        p.b.transmits = false;
        p.drive();
        assert!(p.a.ready.is_none() && p.b.ready.is_none());
        let deadline = p.now + Duration::from_secs(30);
        assert_eq!(p.a.session.poll_timeout(), Some(deadline));
        p.advance(Duration::from_millis(29_999));
        assert_eq!(p.a.error, None);
        p.advance(Duration::from_millis(1));
        assert_eq!(p.a.error, Some(ProtocolError::HandshakeTimeout));
        // a never saw b's greeting, so it never sent READY either.
        assert!(p.b.ready.is_none());
        assert_eq!(p.b.error, None);
        assert_eq!(p.b.session.peer_version(), Some((3, 1)));
        // A dead session stays dead and quiet.
        assert_eq!(p.a.session.poll_timeout(), None);
        assert_eq!(
            p.a.session
                .handle_input(&mut BytesMut::from(&b"xyz"[..]), p.now),
            Err(ProtocolError::HandshakeTimeout)
        );
    }
}

#[test]
fn maxmsgsize_between_sessions() {
    for seed in SEEDS {
        let mut b = config(SocketType::Pull, b"");
        b.maxmsgsize = Some(1000);
        let mut p = Pair::new(config(SocketType::Push, b""), b, seed, 100);
        p.drive();
        p.a.session
            .send_message(&Message::from(vec![body(600, 0), body(400, 1)]));
        p.a.session
            .send_message(&Message::from(vec![body(600, 0), body(401, 1)]));
        p.drive();
        assert_eq!(p.b.messages.len(), 1);
        assert_eq!(
            p.b.error,
            Some(ProtocolError::MessageTooLarge {
                size: 1001,
                limit: 1000
            })
        );
    }
}

// ----- heartbeats (RFC 37), on simulated time -----

fn heartbeat_config(
    socket_type: SocketType,
    ivl_ms: u64,
    timeout_ms: Option<u64>,
    ttl_ms: Option<u64>,
) -> SessionConfig {
    SessionConfig {
        heartbeat_ivl: Some(Duration::from_millis(ivl_ms)),
        heartbeat_timeout: timeout_ms.map(Duration::from_millis),
        heartbeat_ttl: ttl_ms.map(Duration::from_millis),
        ..config(socket_type, b"")
    }
}

impl Pair {
    /// Advances simulated time in `step`s up to `total`, moving bytes
    /// after each step. Stops early when either side fails; returns the
    /// time elapsed.
    fn run_for(&mut self, total: Duration, step: Duration) -> Duration {
        let start = self.now;
        while self.now - start < total {
            self.advance(step);
            self.drive();
            if self.a.error.is_some() || self.b.error.is_some() {
                break;
            }
        }
        self.now - start
    }
}

#[test]
fn pings_go_out_on_cadence() {
    for seed in SEEDS {
        let mut p = Pair::new(
            heartbeat_config(SocketType::Dealer, 1000, None, Some(2_550)),
            config(SocketType::Router, b""),
            seed,
            7,
        );
        p.drive();
        assert!(p.a.ready.is_some() && p.b.ready.is_some());
        // The PING timer starts with the handshake; the peer has none.
        assert_eq!(
            p.a.session.poll_timeout(),
            Some(p.now + Duration::from_secs(1))
        );
        assert_eq!(p.b.session.poll_timeout(), None);
        for _ in 0..5 {
            p.advance(Duration::from_millis(999));
            assert!(p.a.session.output().is_empty());
            p.advance(Duration::from_millis(1));
            // TTL 2.55 s = 25 deciseconds, empty context.
            assert_eq!(p.a.session.output(), b"\x04\x07\x04PING\x00\x19");
            // The timeout (= ivl) is armed, before the next PING.
            assert_eq!(
                p.a.session.poll_timeout(),
                Some(p.now + Duration::from_secs(1))
            );
            p.drive();
            // The PONG came back: only the next PING is due.
            assert_eq!(p.a.error, None);
            assert_eq!(p.b.error, None);
        }
        // The TTL in our PING made the peer arm its TTL timer.
        assert_eq!(
            p.b.session.poll_timeout(),
            Some(p.now + Duration::from_millis(2_500))
        );
        assert!(p.a.messages.is_empty() && p.b.messages.is_empty());
    }
}

#[test]
fn silent_peer_times_out_after_heartbeat_timeout() {
    // (ivl, timeout, when the failure is expected after the peer went
    // quiet): the first PING goes out one ivl later and arms the timeout;
    // later PINGs leave it alone.
    let cases = [
        (100, Some(300), 400),
        (100, None, 200),
        (250, Some(100), 350),
        (1000, Some(5000), 6000),
    ];
    for (ivl, timeout, expect) in cases {
        for seed in SEEDS {
            let mut p = Pair::new(
                heartbeat_config(SocketType::Req, ivl, timeout, None),
                config(SocketType::Rep, b""),
                seed,
                64,
            );
            p.drive();
            assert!(p.a.ready.is_some());
            p.b.transmits = false;
            let took = p.run_for(Duration::from_secs(60), Duration::from_millis(10));
            assert_eq!(p.a.error, Some(ProtocolError::HeartbeatTimeout));
            assert_eq!(took, Duration::from_millis(expect), "{ivl} {timeout:?}");
            assert_eq!(p.a.session.poll_timeout(), None);
            assert_eq!(p.b.error, None);
        }
    }
}

#[test]
fn zero_timeout_disables_the_check() {
    let mut p = Pair::new(
        heartbeat_config(SocketType::Dealer, 100, Some(0), None),
        config(SocketType::Dealer, b""),
        1,
        64,
    );
    p.drive();
    p.b.transmits = false;
    let took = p.run_for(Duration::from_secs(10), Duration::from_millis(50));
    assert_eq!(took, Duration::from_secs(10));
    assert_eq!(p.a.error, None);
}

#[test]
fn heartbeating_pairs_never_time_out() {
    for seed in SEEDS {
        let mut p = Pair::new(
            heartbeat_config(SocketType::Dealer, 100, Some(150), Some(500)),
            heartbeat_config(SocketType::Router, 70, Some(70), Some(300)),
            seed,
            5,
        );
        p.drive();
        let took = p.run_for(Duration::from_secs(30), Duration::from_millis(7));
        assert!(took >= Duration::from_secs(30));
        assert_eq!((&p.a.error, &p.b.error), (&None, &None));
        assert!(p.a.messages.is_empty() && p.b.messages.is_empty());
    }
}

#[test]
fn peer_ttl_from_ping_is_honoured() {
    for seed in SEEDS {
        // a asks b (which has no heartbeats of its own) to drop it after
        // 1 s of silence, and pings every 200 ms.
        let mut p = Pair::new(
            heartbeat_config(SocketType::Push, 200, Some(0), Some(1000)),
            config(SocketType::Pull, b""),
            seed,
            3,
        );
        p.drive();
        assert_eq!(p.b.session.poll_timeout(), None);
        // While a pings, b stays up.
        let took = p.run_for(Duration::from_secs(5), Duration::from_millis(10));
        assert_eq!(took, Duration::from_secs(5));
        assert_eq!(p.b.error, None);
        // a falls silent: b gives up one TTL after the last bytes came.
        let last = p.b.session.last_received();
        p.a.transmits = false;
        p.run_for(Duration::from_secs(5), Duration::from_millis(10));
        assert_eq!(p.b.error, Some(ProtocolError::HeartbeatTimeout));
        assert_eq!(p.now - last, Duration::from_secs(1));
        assert_eq!(p.a.error, None);
    }
}
