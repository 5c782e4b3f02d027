//! CURVE (RFC 25 over CurveZMQ, RFC 26).
//!
//! ```text
//! client (C, c; C', c')                     server (S, s; S', s')
//! HELLO   C', nonce, Box[64 zeros](C'->S)   ->
//!                         <- WELCOME Box[S' + cookie](S->C')
//!                            cookie = nonce + SecretBox[C' + s'](t),
//!                            t a key of this handshake only
//! INITIATE cookie, nonce, Box[C + vouch + metadata](C'->S')  ->
//!          vouch = nonce + Box[C' + S](C->S')
//!                         <- READY nonce, Box[metadata](S'->C')
//! MESSAGE nonce, Box[flags + body](C'<->S')  <->
//! ```
//!
//! Short nonces are one counter per direction, big-endian, from 1: HELLO
//! and INITIATE take the client's first two, READY the server's first,
//! and messages go on from there. Every received short nonce must be above
//! the last one (replays and reordering are refused). After the handshake
//! every frame travels in a MESSAGE box, commands included (PING,
//! SUBSCRIBE...), with its MORE and COMMAND flags inside the box; on the
//! wire the frame is a plain one-part message frame, as libzmq sends it.
//! The server forgets the cookie key and its short-term secret once
//! INITIATE is checked.
//!
//! X25519 work, each side per handshake, is the protocol's minimum: one
//! base-point multiplication (the short-term public key) and three shared
//! keys, each precomputed once into a `SalsaBox` and used for every box
//! under that pair of keys: HELLO and WELCOME (C' and S), the vouch (C
//! and S'), and INITIATE, READY and MESSAGE (C' and S'). Long-term public
//! keys are derived when the option is set, not per connection.

use super::{
    merge, send_refusal, unexpected_command, zap_outcome, Credentials, CurveKeyPair,
    CurvePublicKey, Step, ZapAnswer, ZapContext,
};
use crate::error::ProtocolError;
use crate::zmtp::command::Metadata;
use crate::zmtp::frame::{self, Frame};
use bytes::{Bytes, BytesMut};
use crypto_box::aead::rand_core::RngCore;
use crypto_box::aead::{Aead, AeadInPlace, KeyInit, OsRng};
use crypto_box::{Nonce, PublicKey, SalsaBox, SecretKey};
use crypto_secretbox::XSalsa20Poly1305;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use salsa20::XSalsa20;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const HELLO: &[u8] = b"\x05HELLO";
const WELCOME: &[u8] = b"\x07WELCOME";
const INITIATE: &[u8] = b"\x08INITIATE";
const READY: &[u8] = b"\x05READY";
const MESSAGE: &[u8] = b"\x07MESSAGE";

/// HELLO's size: name, version, 72 bytes of anti-amplification padding,
/// C', short nonce, and the 80-byte box.
const HELLO_LEN: usize = 200;
const WELCOME_LEN: usize = 168;
/// INITIATE without metadata.
const INITIATE_MIN: usize = 257;
/// MAC bytes in front of every box.
const MAC: usize = 16;
/// MESSAGE's name and short nonce.
const MESSAGE_HEADER: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    ClientStart,
    ClientAwaitWelcome,
    ClientAwaitReady,
    ServerAwaitHello,
    ServerAwaitInitiate,
    /// INITIATE checked, its ZAP request out: READY waits for the answer.
    ServerAwaitZap,
    Done,
}

pub(crate) struct Curve {
    state: State,
    server: bool,
    /// Our metadata, sent in INITIATE or READY.
    ours: Metadata,
    /// Our long-term secret key (c or s).
    long_secret: SecretKey,
    /// Our long-term public key (C or S), derived when the option was
    /// set: the client sends it in INITIATE.
    long_public: PublicKey,
    /// The server's long-term public key (S): the client knows it from
    /// its options, the server from its key pair.
    server_key: PublicKey,
    /// Our short-term key pair (c' or s'); the secret is dropped once the
    /// precomputed `session` box exists.
    short_secret: Option<SecretKey>,
    short_public: PublicKey,
    /// The peer's short-term public key (C' or S').
    peer_short: Option<PublicKey>,
    /// Server: the cookie key `t`, from WELCOME until INITIATE.
    cookie_key: Option<Zeroizing<[u8; 32]>>,
    /// Client: the cookie from WELCOME, echoed in INITIATE.
    cookie: Option<[u8; 96]>,
    /// Client: the precomputed box of HELLO (c' and S), from HELLO
    /// until WELCOME, which it opens too.
    hello_box: Option<SalsaBox>,
    /// The precomputed box between the two short-term keys.
    session: Option<SalsaBox>,
    /// Our next short nonce.
    nonce: u64,
    /// The peer's last short nonce.
    peer_nonce: u64,
    zap: ZapContext,
    rng: Randomness,
    /// Server: the client's metadata from INITIATE, while ZAP decides.
    peer_md: Option<Metadata>,
}

/// Where the ephemeral secrets (c' or s', the cookie key) and the random
/// nonces (WELCOME, cookie, vouch) come from.
enum Randomness {
    /// The operating system's generator: every real connection.
    Os,
    /// Golden-bytes tests only: the XSalsa20 keystream of a fixed seed,
    /// so that a handshake recorded against libzmq replays byte for byte.
    /// Anyone who knows the seed can read the traffic.
    Seeded(Box<XSalsa20>),
}

impl Randomness {
    fn fill(&mut self, buf: &mut [u8]) {
        match self {
            Randomness::Os => OsRng.fill_bytes(buf),
            Randomness::Seeded(stream) => {
                buf.fill(0);
                stream.apply_keystream(buf);
            }
        }
    }

    fn bytes16(&mut self) -> [u8; 16] {
        let mut r = [0u8; 16];
        self.fill(&mut r);
        r
    }

    fn secret_key(&mut self) -> SecretKey {
        let mut b = Zeroizing::new([0u8; 32]);
        self.fill(&mut b[..]);
        SecretKey::from_bytes(*b)
    }
}

impl fmt::Debug for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Curve")
            .field("state", &self.state)
            .field("nonce", &self.nonce)
            .field("peer_nonce", &self.peer_nonce)
            .finish_non_exhaustive()
    }
}

fn nonce(prefix: &[u8], tail: &[u8]) -> Nonce {
    let mut n = [0u8; 24];
    n[..prefix.len()].copy_from_slice(prefix);
    n[prefix.len()..].copy_from_slice(tail);
    Nonce::from(n)
}

fn key32(b: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    k.copy_from_slice(&b[..32]);
    k
}

fn open_failed(what: &'static str) -> ProtocolError {
    ProtocolError::Decryption(what)
}

/// Appends a handshake command frame.
fn command(out: &mut BytesMut, parts: &[&[u8]]) {
    let len = parts.iter().map(|p| p.len()).sum();
    frame::encode_header(out, len, false, true);
    for p in parts {
        out.extend_from_slice(p);
    }
}

impl Curve {
    pub(crate) fn client(ours: Metadata, keys: &CurveKeyPair, server_key: CurvePublicKey) -> Curve {
        Curve::new(
            ours,
            keys,
            PublicKey::from(server_key.0),
            false,
            ZapContext::default(),
        )
    }

    pub(crate) fn server(ours: Metadata, keys: &CurveKeyPair, zap: ZapContext) -> Curve {
        Curve::new(ours, keys, PublicKey::from(keys.public.0), true, zap)
    }

    fn new(
        ours: Metadata,
        keys: &CurveKeyPair,
        server_key: PublicKey,
        server: bool,
        zap: ZapContext,
    ) -> Curve {
        let mut rng = Randomness::Os;
        let short = rng.secret_key();
        Curve {
            state: if server {
                State::ServerAwaitHello
            } else {
                State::ClientStart
            },
            server,
            ours,
            long_secret: keys.secret.to_box_key(),
            long_public: PublicKey::from(keys.public.0),
            server_key,
            short_public: short.public_key(),
            short_secret: Some(short),
            peer_short: None,
            cookie_key: None,
            cookie: None,
            hello_box: None,
            session: None,
            nonce: 1,
            peer_nonce: 0,
            zap,
            rng,
            peer_md: None,
        }
    }

    /// Golden-bytes test seam: from here on, every ephemeral key and
    /// random nonce comes from `seed`'s keystream, starting with a new
    /// short-term key pair. Does nothing once the handshake has begun.
    pub(crate) fn seed_randomness(&mut self, seed: [u8; 32]) {
        if !matches!(self.state, State::ClientStart | State::ServerAwaitHello) {
            return;
        }
        let stream = XSalsa20::new(&seed.into(), &[0u8; 24].into());
        self.rng = Randomness::Seeded(Box::new(stream));
        let short = self.rng.secret_key();
        self.short_public = short.public_key();
        self.short_secret = Some(short);
    }

    pub(crate) fn is_server(&self) -> bool {
        self.server
    }

    fn next_nonce(&mut self) -> [u8; 8] {
        let n = self.nonce;
        self.nonce = self.nonce.wrapping_add(1);
        n.to_be_bytes()
    }

    /// Checks that a received short nonce is above the last one.
    fn check_nonce(&self, wire: &[u8]) -> Result<u64, ProtocolError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(&wire[..8]);
        let n = u64::from_be_bytes(b);
        if n <= self.peer_nonce {
            return Err(ProtocolError::ReplayedNonce {
                nonce: n,
                last: self.peer_nonce,
            });
        }
        Ok(n)
    }

    pub(crate) fn start(&mut self, out: &mut BytesMut) {
        if self.state != State::ClientStart {
            return;
        }
        let n = self.next_nonce();
        let Some(short) = &self.short_secret else {
            return;
        };
        let hello_box = SalsaBox::new(&self.server_key, short);
        let Ok(sealed) = hello_box.encrypt(&nonce(b"CurveZMQHELLO---", &n), &[0u8; 64][..]) else {
            return;
        };
        command(
            out,
            &[
                HELLO,
                &[1, 0],
                &[0u8; 72],
                self.short_public.as_bytes(),
                &n,
                &sealed,
            ],
        );
        self.hello_box = Some(hello_box);
        self.state = State::ClientAwaitWelcome;
    }

    pub(crate) fn on_command(
        &mut self,
        body: Bytes,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        match self.state {
            State::ClientAwaitWelcome if body.starts_with(WELCOME) => self.on_welcome(&body, out),
            State::ClientAwaitReady if body.starts_with(READY) => self.on_ready(&body),
            State::ServerAwaitHello if body.starts_with(HELLO) => self.on_hello(&body, out),
            State::ServerAwaitInitiate if body.starts_with(INITIATE) => self.on_initiate(&body),
            _ => Err(unexpected_command(&body)),
        }
    }

    fn on_hello(&mut self, body: &[u8], out: &mut BytesMut) -> Result<Step, ProtocolError> {
        if body.len() != HELLO_LEN {
            return Err(ProtocolError::MalformedCommand(
                "CURVE HELLO of the wrong size",
            ));
        }
        if body[6..8] != [1, 0] {
            return Err(ProtocolError::MalformedCommand(
                "CURVE HELLO version is not 1.0",
            ));
        }
        let client_short = PublicKey::from(key32(&body[80..112]));
        let n = self.check_nonce(&body[112..120])?;
        let hello_box = SalsaBox::new(&client_short, &self.long_secret);
        hello_box
            .decrypt(
                &nonce(b"CurveZMQHELLO---", &body[112..120]),
                &body[120..200],
            )
            .map_err(|_| open_failed("HELLO box (does the client have our public key?)"))?;
        self.peer_nonce = n;
        let Some(short) = &self.short_secret else {
            return Err(ProtocolError::MalformedCommand("CURVE handshake state"));
        };

        // The cookie: C' and s' under a key of this handshake only, so
        // that what the server must remember between WELCOME and
        // INITIATE could live with the client (RFC 26).
        let mut t = Zeroizing::new([0u8; 32]);
        self.rng.fill(&mut t[..]);
        let cookie_nonce = self.rng.bytes16();
        let mut plain = Zeroizing::new([0u8; 64]);
        plain[..32].copy_from_slice(client_short.as_bytes());
        plain[32..].copy_from_slice(&short.to_bytes());
        let cookie_box = XSalsa20Poly1305::new((&*t).into())
            .encrypt(&nonce(b"COOKIE--", &cookie_nonce), &plain[..])
            .map_err(|_| open_failed("cookie"))?;

        let mut welcome = Zeroizing::new(Vec::with_capacity(128));
        welcome.extend_from_slice(self.short_public.as_bytes());
        welcome.extend_from_slice(&cookie_nonce);
        welcome.extend_from_slice(&cookie_box);
        let welcome_nonce = self.rng.bytes16();
        let sealed = hello_box
            .encrypt(&nonce(b"WELCOME-", &welcome_nonce), &welcome[..])
            .map_err(|_| open_failed("WELCOME"))?;
        command(out, &[WELCOME, &welcome_nonce, &sealed]);
        self.peer_short = Some(client_short);
        self.cookie_key = Some(t);
        self.state = State::ServerAwaitInitiate;
        Ok(Step::Continue)
    }

    fn on_welcome(&mut self, body: &[u8], out: &mut BytesMut) -> Result<Step, ProtocolError> {
        if body.len() != WELCOME_LEN {
            return Err(ProtocolError::MalformedCommand(
                "CURVE WELCOME of the wrong size",
            ));
        }
        let (Some(short), Some(hello_box)) = (self.short_secret.take(), self.hello_box.take())
        else {
            return Err(ProtocolError::MalformedCommand("CURVE handshake state"));
        };
        let plain = Zeroizing::new(
            hello_box
                .decrypt(&nonce(b"WELCOME-", &body[8..24]), &body[24..])
                .map_err(|_| open_failed("WELCOME box (wrong server key?)"))?,
        );
        let server_short = PublicKey::from(key32(&plain[..32]));
        let mut cookie = [0u8; 96];
        cookie.copy_from_slice(&plain[32..128]);
        let session = SalsaBox::new(&server_short, &short);

        // The vouch proves we hold c, sealed to S' (the server's
        // short-term key), so that it binds this handshake.
        let mut vouch_plain = [0u8; 64];
        vouch_plain[..32].copy_from_slice(self.short_public.as_bytes());
        vouch_plain[32..].copy_from_slice(self.server_key.as_bytes());
        let vouch_nonce = self.rng.bytes16();
        let vouch = SalsaBox::new(&server_short, &self.long_secret)
            .encrypt(&nonce(b"VOUCH---", &vouch_nonce), &vouch_plain[..])
            .map_err(|_| open_failed("vouch"))?;
        let mut md = BytesMut::new();
        self.ours.encode(&mut md);
        let mut plain = Zeroizing::new(Vec::with_capacity(128 + md.len()));
        plain.extend_from_slice(self.long_public.as_bytes());
        plain.extend_from_slice(&vouch_nonce);
        plain.extend_from_slice(&vouch);
        plain.extend_from_slice(&md);
        let n = self.next_nonce();
        let sealed = session
            .encrypt(&nonce(b"CurveZMQINITIATE", &n), &plain[..])
            .map_err(|_| open_failed("INITIATE"))?;
        command(out, &[INITIATE, &cookie, &n, &sealed]);
        self.cookie = Some(cookie);
        self.peer_short = Some(server_short);
        self.session = Some(session);
        self.state = State::ClientAwaitReady;
        Ok(Step::Continue)
    }

    fn on_initiate(&mut self, body: &Bytes) -> Result<Step, ProtocolError> {
        if body.len() < INITIATE_MIN {
            return Err(ProtocolError::MalformedCommand("CURVE INITIATE too short"));
        }
        // The cookie key opens one cookie only: forget it whatever comes.
        let (Some(t), Some(short), Some(client_short)) = (
            self.cookie_key.take(),
            self.short_secret.take(),
            self.peer_short.clone(),
        ) else {
            return Err(ProtocolError::MalformedCommand("CURVE handshake state"));
        };
        let cookie = Zeroizing::new(
            XSalsa20Poly1305::new((&*t).into())
                .decrypt(&nonce(b"COOKIE--", &body[9..25]), &body[25..105])
                .map_err(|_| open_failed("INITIATE cookie"))?,
        );
        drop(t);
        let ok =
            cookie[..32].ct_eq(client_short.as_bytes()) & cookie[32..64].ct_eq(&short.to_bytes());
        if !bool::from(ok) {
            return Err(open_failed("INITIATE cookie is not this handshake's"));
        }
        let n = self.check_nonce(&body[105..113])?;
        let session = SalsaBox::new(&client_short, &short);
        let plain = Zeroizing::new(
            session
                .decrypt(&nonce(b"CurveZMQINITIATE", &body[105..113]), &body[113..])
                .map_err(|_| open_failed("INITIATE box"))?,
        );
        let client_key = PublicKey::from(key32(&plain[..32]));
        let vouch = SalsaBox::new(&client_key, &short)
            .decrypt(&nonce(b"VOUCH---", &plain[32..48]), &plain[48..128])
            .map_err(|_| open_failed("INITIATE vouch"))?;
        drop(short);
        let ok = vouch[..32].ct_eq(client_short.as_bytes())
            & vouch[32..64].ct_eq(self.server_key.as_bytes());
        if vouch.len() != 64 || !bool::from(ok) {
            return Err(open_failed("INITIATE vouch is not for this handshake"));
        }
        self.peer_nonce = n;
        let md = Metadata::parse(Bytes::copy_from_slice(&plain[128..]))?;
        let credentials = Credentials::Curve {
            public_key: CurvePublicKey(*client_key.as_bytes()),
        };
        self.session = Some(session);
        self.peer_md = Some(md);
        self.state = State::ServerAwaitZap;
        Ok(Step::Zap(self.zap.request("CURVE", credentials)))
    }

    pub(crate) fn on_zap_reply(
        &mut self,
        answer: ZapAnswer,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        let (State::ServerAwaitZap, Some(mut md)) = (self.state, self.peer_md.take()) else {
            return Err(ProtocolError::MalformedCommand(
                "ZAP answer without a request",
            ));
        };
        merge(
            &mut md,
            zap_outcome(answer).inspect_err(|e| send_refusal(out, e))?,
        );
        let mut ours = BytesMut::new();
        self.ours.encode(&mut ours);
        let n = self.next_nonce();
        let Some(session) = &self.session else {
            return Err(ProtocolError::MalformedCommand("CURVE handshake state"));
        };
        let sealed = session
            .encrypt(&nonce(b"CurveZMQREADY---", &n), &ours[..])
            .map_err(|_| open_failed("READY"))?;
        command(out, &[READY, &n, &sealed]);
        self.state = State::Done;
        Ok(Step::Done(md))
    }

    fn on_ready(&mut self, body: &Bytes) -> Result<Step, ProtocolError> {
        if body.len() < READY.len() + 8 + MAC {
            return Err(ProtocolError::MalformedCommand("CURVE READY too short"));
        }
        let Some(session) = &self.session else {
            return Err(ProtocolError::MalformedCommand("CURVE handshake state"));
        };
        let n = self.check_nonce(&body[6..14])?;
        let plain = session
            .decrypt(&nonce(b"CurveZMQREADY---", &body[6..14]), &body[14..])
            .map_err(|_| open_failed("READY box"))?;
        self.peer_nonce = n;
        self.cookie = None;
        let md = Metadata::parse(Bytes::from(plain))?;
        self.state = State::Done;
        Ok(Step::Done(md))
    }

    /// The nonce prefixes of MESSAGE: ours, and the peer's.
    fn prefixes(&self) -> (&'static [u8], &'static [u8]) {
        if self.server {
            (b"CurveZMQMESSAGES", b"CurveZMQMESSAGEC")
        } else {
            (b"CurveZMQMESSAGEC", b"CurveZMQMESSAGES")
        }
    }

    /// Appends `body` as one MESSAGE frame: name, short nonce, then the
    /// box of the flags byte and the body, encrypted in place.
    pub(crate) fn encode_frame(
        &mut self,
        out: &mut BytesMut,
        body: &[u8],
        more: bool,
        command: bool,
    ) {
        let (prefix, _) = self.prefixes();
        let n = self.next_nonce();
        let Some(session) = &self.session else {
            return;
        };
        let len = MESSAGE_HEADER + MAC + 1 + body.len();
        let start = out.len();
        out.reserve(frame::header_len(len) + len);
        frame::encode_header(out, len, false, false);
        out.extend_from_slice(MESSAGE);
        out.extend_from_slice(&n);
        let tag_at = out.len();
        out.extend_from_slice(&[0u8; MAC]);
        out.extend_from_slice(&[u8::from(more) | (u8::from(command) << 1)]);
        out.extend_from_slice(body);
        match session.encrypt_in_place_detached(&nonce(prefix, &n), b"", &mut out[tag_at + MAC..]) {
            Ok(tag) => out[tag_at..tag_at + MAC].copy_from_slice(&tag),
            Err(_) => {
                // Only a body beyond the cipher's 2^70-byte limit fails.
                log::error!("CURVE could not encrypt a frame of {} bytes", body.len());
                out.truncate(start);
            }
        }
    }

    /// Opens one MESSAGE frame into the frame it carries.
    pub(crate) fn decode_frame(&mut self, frame: Frame) -> Result<Frame, ProtocolError> {
        let body = frame.body;
        if !body.starts_with(MESSAGE) {
            return Err(ProtocolError::UnexpectedCommand(
                "a frame that is not a CURVE MESSAGE".into(),
            ));
        }
        if body.len() < MESSAGE_HEADER + MAC + 1 {
            return Err(ProtocolError::MalformedCommand("CURVE MESSAGE too short"));
        }
        let n = self.check_nonce(&body[8..16])?;
        let (_, prefix) = self.prefixes();
        let Some(session) = &self.session else {
            return Err(ProtocolError::MalformedCommand("CURVE handshake state"));
        };
        let mut buf = BytesMut::from(&body[MESSAGE_HEADER + MAC..]);
        let tag = crypto_box::Tag::clone_from_slice(&body[MESSAGE_HEADER..MESSAGE_HEADER + MAC]);
        session
            .decrypt_in_place_detached(&nonce(prefix, &body[8..16]), b"", &mut buf, &tag)
            .map_err(|_| open_failed("MESSAGE box"))?;
        // Only a box that opened moves the counter on, so a forged frame
        // cannot make later genuine ones look replayed.
        self.peer_nonce = n;
        // Other bits are reserved; libzmq ignores them, and so do we.
        let flags = buf[0];
        let more = flags & 0x01 != 0;
        let command = flags & 0x02 != 0;
        if more && command {
            return Err(ProtocolError::MalformedFrame(
                "command frame with MORE flag",
            ));
        }
        Ok(Frame {
            more,
            command,
            body: buf.freeze().slice(1..),
        })
    }
}
