//! Fuzzing entry points, shared by the `cargo fuzz` targets in `fuzz/`
//! and by a seeded smoke test that runs under plain `cargo test`.
//!
//! Not part of the public API: hidden from the docs, and free to change.
//! Each function takes arbitrary bytes, drives one sans-IO part of the
//! protocol with them, and panics only when an invariant is broken (the
//! code under test must never panic, whatever the input).
//!
//! Input layouts (so that seed files can be written by hand):
//!
//! - [`frame_decoder`]: `[limit, chunk_seed, stream...]`.
//! - [`command`]: a command frame body (`[name_len, name, data...]`).
//! - [`session`]: `[config, chunk_seed, time_seed, stream...]`; see
//!   [`session`] for what the bits of `config` select.
//! - [`mechanism_handshake`]: `[config, chunk_seed, edits...]`, edits as
//!   `[offset_hi, offset_lo, xor]` triples; see [`mechanism_handshake`].
//! - [`curve_message`]: `[chunk_seed, stream...]`, fed to a CURVE server
//!   after a real handshake.
//! - [`zap_reply`]: `[config, request_id, frame_count, (len, frame)...]`,
//!   an RFC 27 reply to a server waiting for ZAP; see [`zap_reply`].

use crate::error::ProtocolError;
use crate::message::Message;
use crate::socket_type::SocketType;
use crate::zmtp::command::{Command, Metadata, MAX_PING_CONTEXT, PROP_IDENTITY, PROP_SOCKET_TYPE};
use crate::zmtp::frame::{self, Frame, FrameDecoder};
use crate::zmtp::greeting::{Greeting, GREETING_LEN};
use crate::zmtp::mechanism::{
    CurveKeyPair, CurveSecretKey, MechanismConfig, SecretBytes, ZapContext, ZapReply, ZapRequest,
};
use crate::zmtp::mechanism::{ZapAnswer, PROP_USER_ID};
use crate::zmtp::session::MAX_READ_HINT;
use crate::zmtp::zap::parse_reply;
use crate::zmtp::{Session, SessionConfig, SessionEvent};
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

/// Tiny deterministic PRNG (xorshift64), seeded from the input so that
/// the same input always takes the same path.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// In `1..=max`.
    fn chunk(&mut self, max: usize) -> usize {
        1 + (self.next() % max.max(1) as u64) as usize
    }
}

/// Splits `n` header bytes off the front, padding with zeros.
fn header<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut h = [0u8; N];
    let n = data.len().min(N);
    h[..n].copy_from_slice(&data[..n]);
    (h, &data[n..])
}

/// Largest chunk for a seed byte: mostly small, sometimes everything.
fn max_chunk(seed: u8) -> usize {
    match seed & 0x07 {
        0 => 1,
        1 => 2,
        2 => 3,
        3 => 7,
        4 => 16,
        5 => 64,
        6 => 300,
        _ => usize::MAX,
    }
}

/// Decodes everything in `input` (front to back) with `decoder`.
/// `pending`: bytes consumed since the last whole frame (the start of a
/// large body being gathered), carried between calls.
fn decode_all(
    decoder: &mut FrameDecoder,
    input: &mut BytesMut,
    frames: &mut Vec<Frame>,
    pending: &mut usize,
) -> Result<(), ProtocolError> {
    loop {
        let before = input.len();
        match decoder.decode(input)? {
            Some(f) => {
                let consumed = *pending + (before - input.len());
                *pending = 0;
                assert!(consumed > 0, "a frame consumed nothing");
                assert!(
                    consumed == frame::header_len(f.body.len()) + f.body.len()
                        || consumed == 9 + f.body.len(),
                    "consumed bytes do not match the frame"
                );
                assert!(!(f.more && f.command), "command frame with MORE");
                frames.push(f);
            }
            None => {
                assert!(
                    input.len() == before || decoder.is_gathering(),
                    "an incomplete frame was consumed"
                );
                *pending += before - input.len();
                assert!(decoder.wanted() > 0, "incomplete frame wants no bytes");
                return Ok(());
            }
        }
    }
}

/// The incremental frame decoder, fed the stream in chunks.
///
/// Checks that chunked decoding finds exactly the frames (and the error)
/// that decoding the whole stream at once finds, that an incomplete frame
/// is never consumed, and that a size limit is honoured.
pub fn frame_decoder(data: &[u8]) {
    let ([limit_sel, seed], stream) = header::<2>(data);
    let limit = match limit_sel & 0x03 {
        0 => None,
        1 => Some(u64::from(limit_sel >> 2)),
        2 => Some(u64::from(limit_sel) * 16),
        _ => Some(u64::MAX),
    };

    let mut whole_frames = Vec::new();
    let mut whole_input = BytesMut::from(stream);
    let whole = decode_all(
        &mut FrameDecoder::new(limit),
        &mut whole_input,
        &mut whole_frames,
        &mut 0,
    );

    let mut rng = Rng::new(u64::from(seed));
    let max = max_chunk(seed);
    let mut decoder = FrameDecoder::new(limit);
    let mut input = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut chunked = Ok(());
    let mut pending = 0;
    while !rest.is_empty() {
        let n = rng.chunk(max).min(rest.len());
        input.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        chunked = decode_all(&mut decoder, &mut input, &mut frames, &mut pending);
        if chunked.is_err() {
            break;
        }
    }
    assert_eq!(chunked, whole, "chunked and whole decoding disagree");
    assert_eq!(frames, whole_frames, "chunked and whole decoding disagree");
    if whole.is_ok() {
        assert_eq!(input, whole_input, "different leftovers");
    }
    if let Some(limit) = limit {
        // Message frames accumulate; every complete message fits.
        let mut msg = 0u64;
        for f in frames.iter().filter(|f| !f.command) {
            msg += f.body.len() as u64;
            assert!(msg <= limit, "a message over maxmsgsize was accepted");
            if !f.more {
                msg = 0;
            }
        }
    }
}

/// Command and metadata parsing on an arbitrary command body.
///
/// Whatever parses must re-encode into a frame that decodes and parses
/// back to the same command (up to the truncations `encode` documents).
pub fn command(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    // READY's property list on its own, from every offset a name could end.
    let _ = Metadata::parse(body.clone());
    if let Some(&n) = data.first() {
        if let Some(rest) = body.get(1 + usize::from(n)..) {
            if let Ok(md) = Metadata::parse(Bytes::copy_from_slice(rest)) {
                let _ = md.get(PROP_SOCKET_TYPE);
                let _ = md.get(PROP_IDENTITY);
                let mut enc = BytesMut::new();
                md.encode(&mut enc);
                assert_eq!(enc.len(), md.encoded_len());
                assert_eq!(Metadata::parse(enc.freeze()).as_ref(), Ok(&md));
            }
        }
    }
    let Ok(cmd) = Command::parse(body) else {
        return;
    };
    let wire = cmd.to_frame_bytes();
    let mut input = BytesMut::from(&wire[..]);
    let frame = FrameDecoder::new(None)
        .decode(&mut input)
        .expect("our command frame does not decode")
        .expect("our command frame is incomplete");
    assert!(input.is_empty(), "bytes after our command frame");
    assert!(frame.command && !frame.more);
    let again = Command::parse(frame.body).expect("our command does not parse");
    let expected = match cmd {
        Command::Ping { ttl, context } => Command::Ping {
            ttl,
            context: context.slice(..context.len().min(MAX_PING_CONTEXT)),
        },
        Command::Error(reason) if reason.len() > 255 => {
            let Command::Error(r) = &again else {
                panic!("ERROR came back as {again:?}");
            };
            assert!(reason.starts_with(r.as_str()) && r.len() <= 255);
            return;
        }
        other => other,
    };
    assert_eq!(again, expected, "command does not round-trip");
}

/// Checks everything a session writes: a greeting, then well-formed frames
/// whose commands parse, and PINGs carrying the configured TTL.
struct OutputChecker {
    buf: BytesMut,
    greeting_seen: bool,
    decoder: FrameDecoder,
    expected_ttl: u16,
    pings: usize,
}

impl OutputChecker {
    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if !self.greeting_seen {
            match Greeting::parse(&self.buf) {
                Ok(Some(g)) => {
                    assert_eq!(g, Greeting::ours());
                    let _ = self.buf.split_to(GREETING_LEN);
                    self.greeting_seen = true;
                }
                Ok(None) => return,
                Err(e) => panic!("our greeting does not parse: {e}"),
            }
        }
        while let Some(f) = self
            .decoder
            .decode(&mut self.buf)
            .expect("our output does not decode")
        {
            if f.command {
                match Command::parse(f.body).expect("our command does not parse") {
                    Command::Ping { ttl, context } => {
                        assert_eq!(ttl, self.expected_ttl, "PING with the wrong TTL");
                        assert!(context.len() <= MAX_PING_CONTEXT);
                        self.pings += 1;
                    }
                    Command::Unknown { name, .. } => panic!("we sent command {name:?}"),
                    _ => {}
                }
            }
        }
    }
}

/// The session state machine (greeting, NULL handshake, traffic, timers)
/// fed arbitrary bytes in chunks, with simulated time passing between
/// them.
///
/// `config` bits: 0-2 socket type (mod 6); 3 prepend a valid greeting;
/// 4 prepend a READY from a compatible peer (after the greeting); 5 make
/// that greeting ZMTP 3.0; 6 enable heartbeats; 7 set a small
/// `maxmsgsize` and `handshake_ivl`. `chunk_seed` picks chunk sizes and
/// partial writes, `time_seed` how far the clock moves between chunks.
///
/// Invariants checked: no panic; once an input fails, every later input
/// fails the same way and no timer is armed; `Ready` comes at most once
/// and before any message; after `handle_timeout(now)` succeeds the next
/// deadline is in the future (else the engine would spin); the read hint
/// stays in range; everything we write is valid ZMTP; no PING goes to a
/// 3.0 peer.
pub fn session(data: &[u8]) {
    let ([cfg, chunk_seed, time_seed], stream) = header::<3>(data);
    let types = [
        SocketType::Dealer,
        SocketType::Router,
        SocketType::Req,
        SocketType::Rep,
        SocketType::Push,
        SocketType::Pull,
    ];
    let ours = types[usize::from(cfg & 0x07) % types.len()];
    let peer_type = match ours {
        SocketType::Dealer => SocketType::Router,
        SocketType::Router => SocketType::Dealer,
        SocketType::Req => SocketType::Rep,
        SocketType::Rep => SocketType::Req,
        SocketType::Push => SocketType::Pull,
        SocketType::Pull => SocketType::Push,
        SocketType::Pub => SocketType::Sub,
        SocketType::Sub => SocketType::Pub,
        SocketType::XPub => SocketType::XSub,
        SocketType::XSub => SocketType::XPub,
        SocketType::Pair => SocketType::Pair,
    };
    let heartbeats = cfg & 0x40 != 0;
    let limits = cfg & 0x80 != 0;
    let ttl = Duration::from_millis(u64::from(time_seed >> 4) * 700);
    let config = SessionConfig {
        routing_id: Bytes::from_static(b"fuzz"),
        handshake_ivl: limits.then(|| Duration::from_millis(u64::from(time_seed) * 10)),
        maxmsgsize: limits.then_some(u64::from(chunk_seed) * 4),
        heartbeat_ivl: heartbeats
            .then(|| Duration::from_millis(1 + u64::from(time_seed & 0x0f) * 37)),
        heartbeat_timeout: (heartbeats && time_seed & 0x08 != 0)
            .then(|| Duration::from_millis(u64::from(chunk_seed) * 3)),
        heartbeat_ttl: (heartbeats && !ttl.is_zero()).then_some(ttl),
        ..SessionConfig::new(ours)
    };
    let expected_ttl = config.heartbeat_ttl.map_or(0, |t| {
        u16::try_from(t.as_millis() / 100).unwrap_or(u16::MAX)
    });

    let mut prefix = BytesMut::new();
    let zmtp_3_0 = cfg & 0x20 != 0;
    if cfg & 0x08 != 0 {
        let mut g = Greeting::ours().to_bytes();
        if zmtp_3_0 {
            g[11] = 0;
        }
        prefix.extend_from_slice(&g);
        if cfg & 0x10 != 0 {
            let mut md = Metadata::new();
            md.push(PROP_SOCKET_TYPE, peer_type.as_str());
            md.push(PROP_IDENTITY, Bytes::from_static(b"peer"));
            Command::Ready(md).encode(&mut prefix);
        }
    }
    prefix.extend_from_slice(stream);
    let stream = prefix.freeze();

    let base = Instant::now();
    let mut now = base;
    let mut rng = Rng::new(u64::from(chunk_seed) << 8 | u64::from(time_seed));
    let max = max_chunk(chunk_seed);
    let mut s = Session::new(config, now);
    let mut checker = OutputChecker {
        buf: BytesMut::new(),
        greeting_seen: false,
        decoder: FrameDecoder::new(None),
        expected_ttl,
        pings: 0,
    };
    let mut inbox = BytesMut::new();
    let mut rest = &stream[..];
    let mut failed: Option<ProtocolError> = None;
    let mut ready = false;
    // The stream, then a quiet minute for the timers.
    let mut quiet_steps = 0;
    while quiet_steps < 64 {
        if rest.is_empty() {
            quiet_steps += 1;
        } else {
            let n = rng.chunk(max).min(rest.len());
            inbox.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            let r = s.handle_input(&mut inbox, now);
            check_result(&s, &mut failed, r);
        }
        // Events: Ready once, then messages, which we echo back.
        while let Some(ev) = s.poll_event() {
            match ev {
                SessionEvent::Ready(p) => {
                    assert!(!ready, "Ready twice");
                    assert!(ours.is_compatible(p.socket_type));
                    ready = true;
                }
                SessionEvent::Message(m) => {
                    assert!(ready, "message before Ready");
                    assert!(!m.is_empty(), "message without frames");
                    if rng.next() & 1 == 0 {
                        s.send_message(&m);
                    }
                }
            }
        }
        if ready && rng.next() & 7 == 0 {
            s.send_message(&Message::from("out"));
        }
        assert!((1..=MAX_READ_HINT).contains(&s.bytes_wanted()));
        // A partial write of the output.
        let n = match rng.next() % 4 {
            0 => 0,
            1 => rng.chunk(64),
            _ => usize::MAX,
        };
        let n = n.min(s.output().len());
        checker.feed(&s.output()[..n]);
        s.consume_output(n);
        // Time passes; fire timers that are due.
        let step = match time_seed & 0x03 {
            0 => rng.next() % 3,
            1 => rng.next() % 50,
            2 => rng.next() % 400,
            _ => rng.next() % 5000,
        };
        now += Duration::from_millis(if rest.is_empty() { 1000 } else { step });
        if let Some(at) = s.poll_timeout() {
            assert!(failed.is_none(), "a failed session has a timer armed");
            if at <= now {
                let r = s.handle_timeout(now);
                check_result(&s, &mut failed, r);
                if failed.is_none() {
                    assert!(
                        s.poll_timeout().is_none_or(|t| t > now),
                        "handle_timeout left a deadline in the past"
                    );
                }
            }
        }
        if failed.is_some() && rest.is_empty() {
            break;
        }
    }
    checker.feed(s.output());
    if zmtp_3_0 && cfg & 0x08 != 0 {
        assert_eq!(checker.pings, 0, "PING sent to a ZMTP 3.0 peer");
    }
}

/// Fixed long-term keys, so that runs differ only in the ephemeral keys
/// and nonces CURVE draws from the OS (which change bytes, not paths).
fn fixed_keys(seed: u8) -> CurveKeyPair {
    let secret = CurveSecretKey::from_bytes_or_z85(&[seed; 32]).unwrap_or_else(|_| unreachable!());
    CurveKeyPair::from_secret(secret)
}

/// The client's and server's configurations for `config`'s bits (see
/// [`mechanism_handshake`]).
fn mechanism_pair(config: u8) -> (SessionConfig, SessionConfig) {
    let server_keys = fixed_keys(1);
    let (client, server) = if config & 0x01 != 0 {
        (
            MechanismConfig::CurveClient {
                keys: fixed_keys(2),
                server_key: server_keys.public,
            },
            MechanismConfig::CurveServer { keys: server_keys },
        )
    } else {
        (
            MechanismConfig::PlainClient {
                username: Bytes::from_static(b"admin"),
                password: SecretBytes::new(b"secret".to_vec()),
            },
            MechanismConfig::PlainServer,
        )
    };
    let zap = if config & 0x04 != 0 {
        let allowed = fixed_keys(2).public;
        let handler = move |r: &ZapRequest| match &r.credentials {
            crate::zmtp::mechanism::Credentials::Plain { username, .. } if username == "admin" => {
                ZapReply::allow("admin")
            }
            crate::zmtp::mechanism::Credentials::Curve { public_key } if *public_key == allowed => {
                ZapReply::allow("client")
            }
            _ => ZapReply::deny("no"),
        };
        ZapContext {
            handler: Some(std::sync::Arc::new(handler)),
            external: false,
            domain: "fuzz".into(),
            address: "fuzz".into(),
            routing_id: Bytes::new(),
        }
    } else {
        ZapContext::default()
    };
    (
        SessionConfig {
            mechanism: client,
            routing_id: Bytes::from_static(b"client"),
            ..SessionConfig::new(SocketType::Dealer)
        },
        SessionConfig {
            mechanism: server,
            zap,
            ..SessionConfig::new(SocketType::Router)
        },
    )
}

/// One side of [`mechanism_handshake`].
struct End {
    s: Session,
    inbox: BytesMut,
    ready: bool,
    got: Vec<Message>,
    failed: Option<ProtocolError>,
    /// Output bytes passed on so far (edit offsets count from here).
    sent: usize,
    /// An edit cut this direction: nothing more goes through.
    cut: bool,
}

impl End {
    fn new(config: SessionConfig, now: Instant) -> End {
        End {
            s: Session::new(config, now),
            inbox: BytesMut::new(),
            ready: false,
            got: Vec::new(),
            failed: None,
            sent: 0,
            cut: false,
        }
    }

    fn drain(&mut self) {
        while let Some(ev) = self.s.poll_event() {
            match ev {
                SessionEvent::Ready(_) => {
                    assert!(!self.ready, "Ready twice");
                    self.ready = true;
                }
                SessionEvent::Message(m) => {
                    assert!(self.ready, "message before Ready");
                    self.got.push(m);
                }
            }
        }
    }
}

/// Moves one chunk from `from` to `to`, applying the edits that fall in
/// it when `edited`. Returns whether bytes moved.
fn pass_on(
    from: &mut End,
    to: &mut End,
    n: usize,
    edits: Option<&[(usize, u8)]>,
    now: Instant,
) -> bool {
    let out = from.s.output().len().min(n);
    if out == 0 || from.cut {
        return false;
    }
    let mut chunk = from.s.output()[..out].to_vec();
    from.s.consume_output(out);
    let start = from.sent;
    from.sent += out;
    for &(at, xor) in edits.unwrap_or(&[]) {
        if (start..start + chunk.len()).contains(&at) {
            if xor == 0 {
                chunk.truncate(at - start);
                from.cut = true;
            } else {
                chunk[at - start] ^= xor;
            }
        }
    }
    if to.failed.is_none() && !chunk.is_empty() {
        to.inbox.extend_from_slice(&chunk);
        let r = to.s.handle_input(&mut to.inbox, now);
        check_result(&to.s, &mut to.failed, r);
        to.drain();
    }
    true
}

/// PLAIN or CURVE between two real sessions (a DEALER client, a ROUTER
/// server), with bytes of one direction changed or cut on the way.
///
/// Layout `[config, chunk_seed, edits...]`: `config` bit 0 selects CURVE
/// (else PLAIN), bit 1 edits the server's bytes (else the client's), bit
/// 2 gives the server a ZAP handler that admits the client. Each edit is
/// three bytes: a 16-bit offset into that direction's stream and a byte
/// to XOR there (zero cuts the stream at that offset).
///
/// Checks, beyond never panicking: every message a side receives is one
/// the other sent, in order (a changed byte in a CURVE box never becomes
/// a different message); a failure sticks; and with no edit that lands,
/// both sides complete the handshake and get every message.
pub fn mechanism_handshake(data: &[u8]) {
    let ([config, chunk_seed], rest) = header::<2>(data);
    let edits: Vec<(usize, u8)> = rest
        .chunks_exact(3)
        .take(16)
        .map(|e| (usize::from(u16::from_be_bytes([e[0], e[1]])), e[2]))
        .collect();
    let (client_cfg, server_cfg) = mechanism_pair(config);
    let now = Instant::now();
    let mut c = End::new(client_cfg, now);
    let mut s = End::new(server_cfg, now);
    let sent_by_client = [
        Message::from("before the handshake"),
        Message::from(vec![
            Bytes::from_static(b"two"),
            Bytes::from(vec![7u8; 300]),
        ]),
    ];
    for m in &sent_by_client {
        c.s.send_message(m);
    }
    let mut rng = Rng::new(u64::from(chunk_seed));
    let max = max_chunk(chunk_seed);
    let edit_server = config & 0x02 != 0;
    let mut server_sent = false;
    for _ in 0..10_000 {
        let n = rng.chunk(max);
        let (ce, se) = if edit_server {
            (None, Some(&edits[..]))
        } else {
            (Some(&edits[..]), None)
        };
        let a = pass_on(&mut c, &mut s, n, ce, now);
        let b = pass_on(&mut s, &mut c, n, se, now);
        if s.ready && !server_sent {
            // ROUTER's messages start with the routing id, which the
            // server's session does not see: send plain frames.
            s.s.send_message(&Message::from("from the server"));
            server_sent = true;
            continue;
        }
        if !a && !b {
            break;
        }
    }
    let landed = edits
        .iter()
        .any(|&(at, _)| at < if edit_server { s.sent } else { c.sent });
    // PLAIN protects nothing: a changed byte may change a message.
    let protected = config & 0x01 != 0 || !landed;
    let expect_prefix = |got: &[Message], sent: &[Message]| {
        if protected {
            assert!(got.len() <= sent.len(), "more messages than were sent");
            assert_eq!(got, &sent[..got.len()], "a message changed on the way");
        }
    };
    expect_prefix(&s.got, &sent_by_client);
    expect_prefix(&c.got, &[Message::from("from the server")]);
    if !landed {
        assert!(c.failed.is_none() && s.failed.is_none(), "clean run failed");
        assert!(c.ready && s.ready, "clean run did not complete");
        assert_eq!(s.got.len(), sent_by_client.len());
        assert_eq!(c.got.len(), 1);
    }
}

/// Bytes from someone without the session keys, fed to a CURVE server
/// after a real handshake: they may fail the session, and must never
/// become a message. Layout `[chunk_seed, stream...]`.
pub fn curve_message(data: &[u8]) {
    let ([chunk_seed], stream) = header::<1>(data);
    let (client_cfg, server_cfg) = mechanism_pair(0x01);
    let now = Instant::now();
    let mut c = End::new(client_cfg, now);
    let mut s = End::new(server_cfg, now);
    for _ in 0..64 {
        let a = pass_on(&mut c, &mut s, usize::MAX, None, now);
        let b = pass_on(&mut s, &mut c, usize::MAX, None, now);
        if !a && !b {
            break;
        }
    }
    assert!(c.ready && s.ready, "the CURVE handshake did not complete");
    let mut rng = Rng::new(u64::from(chunk_seed));
    let max = max_chunk(chunk_seed);
    let mut rest = stream;
    while !rest.is_empty() && s.failed.is_none() {
        let n = rng.chunk(max).min(rest.len());
        s.inbox.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        let r = s.s.handle_input(&mut s.inbox, now);
        check_result(&s.s, &mut s.failed, r);
        s.drain();
        assert!(s.got.is_empty(), "forged bytes became a message");
    }
}

/// Reads [`zap_reply`]'s message: `count` frames (at most 16), each a
/// length byte and that many bytes; the input may end early.
fn zap_frames(count: u8, mut rest: &[u8]) -> Vec<Bytes> {
    let mut frames = Vec::new();
    for _ in 0..count.min(16) {
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        let n = usize::from(len).min(tail.len());
        frames.push(Bytes::copy_from_slice(&tail[..n]));
        rest = &tail[n..];
    }
    frames
}

/// What RFC 27 says a reply means, worked out here independently of
/// [`parse_reply`] (which the target checks against it).
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Allow { user_id: Bytes, metadata: Metadata },
    Deny { status: u16, text: String },
    Malformed,
}

fn zap_verdict(frames: &[Bytes]) -> Verdict {
    if frames.len() != 7 || !frames[0].is_empty() || &frames[1][..] != b"1.0" {
        return Verdict::Malformed;
    }
    let Ok(metadata) = Metadata::parse(frames[6].clone()) else {
        return Verdict::Malformed;
    };
    match &frames[3][..] {
        b"200" => Verdict::Allow {
            user_id: frames[5].clone(),
            metadata,
        },
        b"300" => deny(300, &frames[4]),
        b"400" => deny(400, &frames[4]),
        b"500" => deny(500, &frames[4]),
        _ => Verdict::Malformed,
    }
}

fn deny(status: u16, text: &[u8]) -> Verdict {
    Verdict::Deny {
        status,
        text: String::from_utf8_lossy(text).into_owned(),
    }
}

/// A client and a server of one mechanism whose server leaves ZAP to
/// its driver (as the I/O thread does for `inproc://zeromq.zap.01`).
fn external_zap_pair(config: u8) -> (SessionConfig, SessionConfig) {
    let zap = ZapContext {
        handler: None,
        external: true,
        domain: "fuzz".into(),
        address: "tcp://127.0.0.1:1".into(),
        routing_id: Bytes::from_static(b"server"),
    };
    let (client, server) = match config & 0x03 {
        0 => mechanism_pair(0),
        1 => mechanism_pair(1),
        _ => (
            SessionConfig {
                routing_id: Bytes::from_static(b"client"),
                ..SessionConfig::new(SocketType::Dealer)
            },
            SessionConfig::new(SocketType::Router),
        ),
    };
    (client, SessionConfig { zap, ..server })
}

/// Moves bytes both ways until neither side has any to give.
fn exchange(c: &mut End, s: &mut End, now: Instant) {
    for _ in 0..64 {
        let a = pass_on(c, s, usize::MAX, None, now);
        let b = pass_on(s, c, usize::MAX, None, now);
        if !a && !b {
            return;
        }
    }
    panic!("the sessions never went quiet");
}

/// A ZAP handler's reply (RFC 27's frames, as `inproc://zeromq.zap.01`
/// delivers them) to a server whose PLAIN, CURVE or NULL handshake waits
/// for it, against a real client.
///
/// Layout `[config, request_id, frame_count, (len, frame)...]`: `config`
/// mod 4 picks PLAIN, CURVE or NULL with a `zap_domain` (3 is NULL too),
/// bit 2 hands the server the same answer twice, bit 3 has the client
/// send its message before the handshake (else after the answer); the
/// server's request id is `request_id` (the driver's counter, which the
/// reply's third frame names in decimal); then up to 16 frames of up to
/// 255 bytes each.
///
/// Checks, beyond never panicking: [`parse_reply`] agrees with RFC 27
/// (as `zap_verdict` reads it); a reply that names another request
/// leaves the server waiting; the server becomes ready only for status
/// 200 with well-formed frames, and then its peer's `User-Id` is the
/// reply's user id and the reply's metadata is the peer's; a 300, 400 or
/// 500 fails both sides with `AuthFailed` and that status (the server's
/// with the text); anything malformed fails the server alone with
/// `ZapFailed`; and a failure sticks (through a second answer and more
/// input).
pub fn zap_reply(data: &[u8]) {
    let ([config, request_id, count], rest) = header::<3>(data);
    let frames = zap_frames(count, rest);
    let waiting = u64::from(request_id);
    let (client_cfg, server_cfg) = external_zap_pair(config);
    let now = Instant::now();
    let mut c = End::new(client_cfg, now);
    let mut s = End::new(server_cfg, now);
    let early = config & 0x08 != 0;
    let msg = Message::from(vec![Bytes::from_static(b"hi"), Bytes::from(vec![3u8; 40])]);
    if early {
        c.s.send_message(&msg);
    }
    exchange(&mut c, &mut s, now);
    assert!(s.s.is_awaiting_zap(), "the server does not wait for ZAP");
    assert!(s.s.poll_zap_request().is_some(), "no ZAP request");
    assert!(!c.ready && !s.ready && c.failed.is_none() && s.failed.is_none());

    let reply = Message::from(frames.clone());
    let verdict = zap_verdict(&frames);
    let parsed = parse_reply(&reply);
    // The id frame, exactly as the driver writes it.
    let names_waiting = frames
        .get(2)
        .is_some_and(|f| f[..] == *waiting.to_string().as_bytes());
    let answer = match parsed {
        Err(_) => {
            assert!(!names_waiting, "the waiting id was not read");
            None
        }
        Ok((id, answer)) => {
            match (&verdict, &answer) {
                (Verdict::Malformed, ZapAnswer::Failed(ProtocolError::ZapFailed(_))) => {}
                (
                    Verdict::Allow { user_id, metadata },
                    ZapAnswer::Reply {
                        reply: ZapReply::Allow { user_id: u },
                        metadata: m,
                    },
                ) => assert!(user_id == u && metadata == m, "allow misread"),
                (
                    Verdict::Deny { status, text },
                    ZapAnswer::Reply {
                        reply:
                            ZapReply::Deny {
                                status: st,
                                text: t,
                            },
                        ..
                    },
                ) => assert!(status == st && text == t, "deny misread"),
                (v, a) => panic!("RFC 27 says {v:?}, parse_reply {a:?}"),
            }
            (id == waiting).then_some(answer)
        }
    };
    let Some(answer) = answer else {
        // Another connection's reply: this one still waits.
        exchange(&mut c, &mut s, now);
        assert!(s.s.is_awaiting_zap() && !s.ready && !c.ready);
        assert!(c.failed.is_none() && s.failed.is_none());
        return;
    };
    let r = s.s.zap_reply(answer.clone(), now);
    check_result(&s.s, &mut s.failed, r);
    s.drain();
    if config & 0x04 != 0 {
        let r = s.s.zap_reply(answer, now);
        check_result(&s.s, &mut s.failed, r);
    }
    if !early {
        c.s.send_message(&msg);
    }
    exchange(&mut c, &mut s, now);
    assert!(!s.s.is_awaiting_zap(), "answered, and still waiting");
    match verdict {
        Verdict::Allow { user_id, metadata } => {
            assert!(
                c.failed.is_none() && s.failed.is_none(),
                "allowed, and failed"
            );
            assert!(c.ready && s.ready, "allowed, and not ready");
            assert_eq!(s.got, [msg], "the client's message did not arrive");
            let props = s.s.peer_properties();
            assert_eq!(
                props.get(PROP_USER_ID),
                Some(&user_id),
                "User-Id is not ZAP's"
            );
            // Socket-Type and Identity are the client's own (READY's);
            // which one a ZAP property of the same name would hide is a
            // question for the socket, not for this reply.
            let own = [PROP_USER_ID, PROP_SOCKET_TYPE, PROP_IDENTITY];
            for (name, value) in metadata.iter() {
                let Ok(name) = std::str::from_utf8(name) else {
                    continue;
                };
                let first = metadata.get(name);
                if !own.iter().any(|o| name.eq_ignore_ascii_case(o)) && first == Some(value) {
                    assert_eq!(props.get(name), first, "ZAP's {name:?} is not the peer's");
                }
            }
        }
        Verdict::Deny { status, text } => {
            assert_eq!(s.failed, Some(ProtocolError::AuthFailed { status, text }));
            assert!(s.got.is_empty() && !c.ready, "a refused client got through");
            assert!(
                matches!(c.failed, Some(ProtocolError::AuthFailed { status: st, .. }) if st == status),
                "the client was not told {status}: {:?}",
                c.failed
            );
        }
        Verdict::Malformed => {
            assert!(
                matches!(s.failed, Some(ProtocolError::ZapFailed(_))),
                "{:?}",
                s.failed
            );
            assert!(
                c.failed.is_none() && !c.ready,
                "the client heard of a botched reply"
            );
            assert!(s.got.is_empty(), "a message got through a botched reply");
        }
    }
    assert!(s.got.len() <= 1 && c.got.is_empty());
    if let Some(e) = s.failed.clone() {
        // It sticks: a later answer and later bytes get the same error.
        assert_eq!(s.s.zap_reply(ZapReply::allow("late"), now), Err(e.clone()));
        let mut more = BytesMut::from(&b"\x04\x04PING"[..]);
        assert_eq!(s.s.handle_input(&mut more, now), Err(e));
        assert!(!s.s.is_ready() && s.s.poll_event().is_none());
    }
}

/// Keeps track of the first failure and checks that it sticks.
fn check_result(s: &Session, failed: &mut Option<ProtocolError>, r: Result<(), ProtocolError>) {
    match (failed.as_ref(), r) {
        (None, Ok(())) => assert!(s.error().is_none()),
        (None, Err(e)) => {
            assert_eq!(s.error(), Some(&e));
            assert!(!s.is_ready());
            assert_eq!(s.poll_timeout(), None);
            *failed = Some(e);
        }
        (Some(f), Err(e)) => assert_eq!(f, &e, "a failed session changed its error"),
        (Some(f), Ok(())) => panic!("a session failed with {f} then succeeded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz_corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {}", dir.display());
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Runs `f` over the seed corpus, then over pseudo-random inputs: some
    /// fully random, some seeds with random bytes flipped or appended.
    fn run(target: &str, f: fn(&[u8]), rounds: usize) {
        let seeds = corpus(target);
        for s in &seeds {
            f(s);
        }
        let mut rng = Rng::new(0xF022_u64);
        for round in 0..rounds {
            let mut input = if round % 2 == 0 {
                seeds[round / 2 % seeds.len()].clone()
            } else {
                Vec::new()
            };
            for _ in 0..rng.next() % 8 {
                if !input.is_empty() && rng.next() & 1 == 0 {
                    let i = (rng.next() % input.len() as u64) as usize;
                    input[i] = rng.next() as u8;
                } else if !input.is_empty() && rng.next() & 3 == 0 {
                    let i = (rng.next() % input.len() as u64) as usize;
                    input.truncate(i);
                }
            }
            for _ in 0..rng.next() % 48 {
                // Bias towards small lengths and valid flags.
                let b = rng.next() as u8;
                input.push(if b & 0x30 == 0 { b & 0x07 } else { b });
            }
            f(&input);
        }
    }

    #[test]
    fn fuzz_frame_decoder_corpus_and_random() {
        run("frame_decoder", frame_decoder, 4000);
    }

    #[test]
    fn fuzz_command_corpus_and_random() {
        run("command", command, 4000);
    }

    #[test]
    fn fuzz_mechanism_handshake_corpus_and_random() {
        run("mechanism_handshake", mechanism_handshake, 2000);
    }

    #[test]
    fn fuzz_curve_message_corpus_and_random() {
        run("curve_message", curve_message, 1500);
    }

    #[test]
    fn fuzz_zap_reply_corpus_and_random() {
        run("zap_reply", zap_reply, 1500);
    }

    #[test]
    fn fuzz_session_corpus_and_random() {
        run("session", session, 3000);
    }
}
