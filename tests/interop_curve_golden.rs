//! Golden bytes for CURVE: whole handshakes and messages exchanged with
//! libzmq 4.3 (pyzmq's, built with libsodium), recorded with our side's
//! randomness fixed through the hidden `Session::new_seeded`, then
//! replayed. libzmq's own ephemeral keys cannot be fixed, so the seam is
//! ours: fed the same libzmq bytes, a session with the same seed must
//! write the same bytes.
//!
//! Two directions: libzmq's DEALER as the CURVE client of our ROUTER, and
//! our DEALER as the client of libzmq's ROUTER. A raw TCP end driven by
//! our sans-IO `Session` talks to the libzmq peer
//! (`tests/peers/zmq_security_peer.py`) and records every byte each side
//! writes. The replay, whole and one byte at a time, must write exactly
//! what we wrote, reach READY with libzmq's metadata, and decode libzmq's
//! MESSAGEs to the frames it sent; a flipped byte in any of libzmq's boxes
//! must fail with a typed decryption error.
//!
//! One capture of each direction is checked in (`tests/fixtures/curve_*.hex`)
//! and replayed by the `fixture_*` tests, which need no libzmq: they run
//! the golden test everywhere. The `live_*` tests capture anew on every
//! run and need pyzmq, as `tests/interop_security.rs` does (`.ci/run`
//! installs it; without it they fail). `FERROZMQ_WRITE_FIXTURES=1 cargo
//! test --test interop_curve_golden live_` rewrites the fixtures from a
//! new capture.

mod util;

use bytes::BytesMut;
use ferrozmq::pattern::PeerInfo;
use ferrozmq::zmtp::greeting::{Greeting, GREETING_LEN};
use ferrozmq::zmtp::mechanism::MechanismConfig;
use ferrozmq::zmtp::{Session, SessionConfig, SessionEvent};
use ferrozmq::{Bytes, CurveKeyPair, CurveSecretKey, Message, ProtocolError, SocketType};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Instant;
use util::pyzmq::{curve_client_opts, curve_server_opts, js, spec, unhex, PyPeer};
use util::*;

/// Our side's randomness: short-term keys, cookie key, random nonces.
const SEED: [u8; 32] = *b"ferrozmq CURVE golden-bytes seed";
/// Our long-term secret key.
const OUR_SECRET: [u8; 32] = *b"ferrozmq's long-term golden key!";
/// The libzmq peer's long-term secret key.
const LIBZMQ_SECRET: [u8; 32] = *b"the libzmq peer's long-term key!";
/// Bytes per hex line in a fixture.
const LINE: usize = 48;

fn key_pair(secret: [u8; 32]) -> CurveKeyPair {
    CurveKeyPair::from_secret(CurveSecretKey::from_bytes_or_z85(&secret).expect("32 bytes"))
}

fn owned(frames: &[&[u8]]) -> Vec<Vec<u8>> {
    frames.iter().map(|f| f.to_vec()).collect()
}

/// One direction of the exchange.
struct Case {
    /// The fixture, under `tests/fixtures/`.
    fixture: &'static str,
    /// Our socket type and routing id, and whether we are the CURVE server.
    ours: SocketType,
    our_id: &'static [u8],
    our_server: bool,
    /// libzmq's socket type and routing id.
    libzmq: SocketType,
    libzmq_id: &'static [u8],
    /// The peer script's action, and the frames it sends, if any.
    action: &'static str,
    peer_frames: Vec<Vec<u8>>,
    /// What our session sends once ready, in order.
    we_send: Vec<Vec<Vec<u8>>>,
    /// What our session must decode from libzmq, in order.
    libzmq_sends: Vec<Vec<Vec<u8>>>,
    /// What the libzmq socket must hand its application, in order.
    libzmq_receives: Vec<Vec<Vec<u8>>>,
}

/// A multipart message with an empty frame and one too long (300 bytes)
/// for a short frame header.
fn golden_message() -> Vec<Vec<u8>> {
    vec![b"golden".to_vec(), Vec::new(), body(300, 7)]
}

/// libzmq's DEALER, a CURVE client, sends our ROUTER two requests and
/// gets a two-frame reply to each.
fn libzmq_client() -> Case {
    let replies = vec![owned(&[b"re", b"0"]), owned(&[b"re", b"1"])];
    Case {
        fixture: "curve_libzmq_client.hex",
        ours: SocketType::Router,
        our_id: b"",
        our_server: true,
        libzmq: SocketType::Dealer,
        libzmq_id: b"lz-dealer",
        action: "request",
        peer_frames: golden_message(),
        we_send: replies.clone(),
        libzmq_sends: vec![golden_message(), golden_message()],
        libzmq_receives: replies,
    }
}

/// Our DEALER, a CURVE client, sends libzmq's ROUTER two messages, which
/// it echoes behind an "re" frame.
fn libzmq_server() -> Case {
    let sent = vec![owned(&[b"golden", b""]), vec![body(300, 7)]];
    let with = |head: &[u8], m: &Vec<Vec<u8>>| {
        let mut r = vec![head.to_vec()];
        r.extend(m.iter().cloned());
        r
    };
    Case {
        fixture: "curve_libzmq_server.hex",
        ours: SocketType::Dealer,
        our_id: b"raw-dealer",
        our_server: false,
        libzmq: SocketType::Router,
        libzmq_id: b"lz-router",
        action: "echo",
        peer_frames: Vec::new(),
        libzmq_sends: sent.iter().map(|m| with(b"re", m)).collect(),
        libzmq_receives: sent.iter().map(|m| with(b"raw-dealer", m)).collect(),
        we_send: sent,
    }
}

impl Case {
    fn config(&self) -> SessionConfig {
        let keys = key_pair(OUR_SECRET);
        let mechanism = if self.our_server {
            MechanismConfig::CurveServer { keys }
        } else {
            MechanismConfig::CurveClient {
                keys,
                server_key: key_pair(LIBZMQ_SECRET).public,
            }
        };
        SessionConfig {
            routing_id: Bytes::from_static(self.our_id),
            mechanism,
            ..SessionConfig::new(self.ours)
        }
    }

    /// The libzmq peer, bound or connecting (`place`).
    fn peer(&self, place: (&str, &str)) -> PyPeer {
        let theirs = key_pair(LIBZMQ_SECRET);
        let mut options = if self.our_server {
            curve_client_opts(&theirs, &key_pair(OUR_SECRET).public.to_z85())
        } else {
            curve_server_opts(&theirs)
        };
        let id = std::str::from_utf8(self.libzmq_id).expect("text id");
        options.push(("routing_id", js(id)));
        PyPeer::start(&spec(
            self.libzmq.as_str(),
            place,
            &options,
            None,
            self.action,
            self.libzmq_sends.len(),
            &self.peer_frames,
        ))
    }

    fn fixture_path(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(self.fixture)
    }
}

/// Every byte each side wrote, in order.
#[derive(Debug, Default, PartialEq)]
struct Capture {
    libzmq: Vec<u8>,
    ours: Vec<u8>,
}

// ----- replay -----

/// What a fresh seeded session made of libzmq's bytes.
#[derive(Debug, Default)]
struct Replay {
    /// Everything it wrote (our greeting, commands and messages).
    ours: Vec<u8>,
    ready: Option<PeerInfo>,
    /// libzmq's Socket-Type and Identity properties.
    properties: Option<(Bytes, Bytes)>,
    messages: Vec<Vec<Vec<u8>>>,
    error: Option<ProtocolError>,
    /// Bytes left undecoded.
    left: usize,
}

/// Feeds `libzmq` in pieces of `chunk` bytes to a session seeded as in the
/// recording; once ready, it sends the case's messages.
fn replay(case: &Case, libzmq: &[u8], chunk: usize) -> Replay {
    let now = Instant::now();
    let mut s = Session::new_seeded(case.config(), now, SEED);
    let mut r = Replay::default();
    let mut input = BytesMut::new();
    for piece in libzmq.chunks(chunk) {
        input.extend_from_slice(piece);
        let result = s.handle_input(&mut input, now);
        while let Some(ev) = s.poll_event() {
            match ev {
                SessionEvent::Ready(info) => {
                    let md = s.peer_properties();
                    let prop = |name| md.get(name).cloned().unwrap_or_default();
                    r.properties = Some((prop("Socket-Type"), prop("Identity")));
                    r.ready = Some(info);
                    for m in &case.we_send {
                        s.send_message(&Message::from_frames(m.iter().cloned()));
                    }
                }
                SessionEvent::Message(m) => r.messages.push(m.iter().map(|f| f.to_vec()).collect()),
            }
        }
        r.ours.extend_from_slice(s.output());
        s.consume_output(s.output().len());
        if let Err(e) = result {
            r.error = Some(e);
            break;
        }
    }
    r.left = input.len();
    r
}

/// One frame of libzmq's stream, split by RFC 23's rules alone.
struct RawFrame {
    flags: u8,
    /// The body's place in the stream.
    body: std::ops::Range<usize>,
}

fn raw_frames(stream: &[u8]) -> Vec<RawFrame> {
    let mut frames = Vec::new();
    let mut at = GREETING_LEN;
    while at < stream.len() {
        let flags = stream[at];
        let (len, header) = if flags & 0x02 != 0 {
            let len: [u8; 8] = stream[at + 1..at + 9].try_into().unwrap();
            (u64::from_be_bytes(len) as usize, 9)
        } else {
            (usize::from(stream[at + 1]), 2)
        };
        let body = at + header..at + header + len;
        assert!(body.end <= stream.len(), "a truncated frame at {at}");
        at = body.end;
        frames.push(RawFrame { flags, body });
    }
    frames
}

/// Checks a capture: libzmq's stream has the shape CurveZMQ gives it, and
/// a seeded session replaying it, whole and byte by byte, writes what we
/// wrote, reaches READY with libzmq's metadata and decodes its messages.
fn check(case: &Case, cap: &Capture) {
    let g = Greeting::parse(&cap.libzmq[..GREETING_LEN])
        .expect("libzmq's greeting")
        .expect("a whole greeting");
    assert_eq!(g.mechanism_name(), b"CURVE");
    // libzmq 4.3 writes 0 in the as-server field even as the CURVE server
    // (seen on the wire), so roles come from the commands, not from it.
    assert!(!g.as_server, "libzmq's as-server flag");

    // Two handshake commands, then one MESSAGE command per frame: on the
    // wire no MORE flag (it travels inside the box).
    let frames = raw_frames(&cap.libzmq);
    let names: Vec<&[u8]> = frames
        .iter()
        .map(|f| {
            let body = &cap.libzmq[f.body.clone()];
            &body[1..1 + usize::from(body[0])]
        })
        .collect();
    let handshake: [&[u8]; 2] = if case.our_server {
        [b"HELLO", b"INITIATE"]
    } else {
        [b"WELCOME", b"READY"]
    };
    let message_frames: usize = case.libzmq_sends.iter().map(Vec::len).sum();
    assert_eq!(names[..2], handshake);
    assert_eq!(names.len(), 2 + message_frames, "{names:?}");
    assert!(names[2..].iter().all(|n| *n == b"MESSAGE"), "{names:?}");
    assert!(
        frames.iter().all(|f| f.flags & 0x01 == 0),
        "MORE on the wire"
    );

    for chunk in [cap.libzmq.len(), 1] {
        let r = replay(case, &cap.libzmq, chunk);
        assert_eq!(r.error, None, "chunk {chunk}");
        assert_eq!(r.left, 0, "chunk {chunk}");
        let diverge = r.ours.iter().zip(&cap.ours).position(|(a, b)| a != b);
        assert!(
            r.ours == cap.ours,
            "chunk {chunk}: we wrote {} bytes, the recording has {}, first difference at {diverge:?}",
            r.ours.len(),
            cap.ours.len()
        );
        let info = r.ready.expect("READY");
        assert_eq!(info.socket_type, case.libzmq);
        assert_eq!(&info.routing_id[..], case.libzmq_id);
        let (socket_type, identity) = r.properties.expect("properties");
        assert_eq!(&socket_type[..], case.libzmq.as_str().as_bytes());
        assert_eq!(&identity[..], case.libzmq_id);
        assert_eq!(r.messages, case.libzmq_sends, "chunk {chunk}");
    }
}

/// A flipped bit in the box of each of libzmq's handshake commands, and
/// of its first MESSAGE, fails the replay with a decryption error, after
/// which we have written nothing the recording does not have before it.
fn check_tampering(case: &Case, cap: &Capture) {
    let frames = raw_frames(&cap.libzmq);
    for (n, frame) in frames.iter().take(3).enumerate() {
        // Every CURVE box ends its frame.
        let mut bad = cap.libzmq.clone();
        bad[frame.body.end - 1] ^= 0x01;
        let r = replay(case, &bad, bad.len());
        assert!(
            matches!(r.error, Some(ProtocolError::Decryption(_))),
            "frame {n}: {:?}",
            r.error
        );
        assert!(cap.ours.starts_with(&r.ours), "frame {n}");
        assert_eq!(r.ready.is_some(), n == 2, "frame {n}");
        assert!(r.messages.is_empty(), "frame {n}");
    }
}

// ----- fixtures -----

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn load(case: &Case) -> Capture {
    let path = case.fixture_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; FERROZMQ_WRITE_FIXTURES=1 cargo test --test interop_curve_golden live_ writes it",
            path.display()
        )
    });
    let mut cap = Capture::default();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        match line.split_once(' ') {
            Some(("libzmq", h)) => cap.libzmq.extend(unhex(h)),
            Some(("ours", h)) => cap.ours.extend(unhex(h)),
            _ => panic!("{}: a line neither libzmq nor ours: {line}", path.display()),
        }
    }
    cap
}

fn write_fixture(case: &Case, cap: &Capture) {
    let version = std::process::Command::new("python3")
        .args([
            "-c",
            "import zmq; print('libzmq', zmq.zmq_version(), 'from pyzmq', zmq.pyzmq_version())",
        ])
        .output()
        .expect("python3");
    let (ours, theirs) = (key_pair(OUR_SECRET), key_pair(LIBZMQ_SECRET));
    let id = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut text = format!(
        "# A CURVE exchange between {}\n\
         # and a raw ferrozmq Session, recorded by tests/interop_curve_golden.rs with\n\
         # FERROZMQ_WRITE_FIXTURES=1 cargo test --test interop_curve_golden live_\n\
         # libzmq: {} {:?}, the CURVE {}; long-term secret {} (public {})\n\
         # ours: {} {:?}, the CURVE {}, Session::new_seeded with the seed {:?};\n\
         #   long-term secret {} (public {})\n\
         # 'libzmq' lines: every byte libzmq sent; 'ours': every byte we sent.\n",
        String::from_utf8_lossy(&version.stdout).trim(),
        case.libzmq,
        id(case.libzmq_id),
        if case.our_server { "client" } else { "server" },
        theirs.secret.to_z85(),
        theirs.public.to_z85(),
        case.ours,
        id(case.our_id),
        if case.our_server { "server" } else { "client" },
        String::from_utf8_lossy(&SEED),
        ours.secret.to_z85(),
        ours.public.to_z85(),
    );
    for (who, bytes) in [("libzmq", &cap.libzmq), ("ours", &cap.ours)] {
        for line in bytes.chunks(LINE) {
            let _ = writeln!(text, "{who} {}", hex(line));
        }
    }
    let path = case.fixture_path();
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("tests/fixtures");
    std::fs::write(&path, text).expect("write the fixture");
    eprintln!("wrote {}", path.display());
}

#[test]
fn fixture_libzmq_client_replays() {
    let case = libzmq_client();
    check(&case, &load(&case));
}

#[test]
fn fixture_libzmq_server_replays() {
    let case = libzmq_server();
    check(&case, &load(&case));
}

#[test]
fn fixture_libzmq_client_tampered_boxes_fail_typed() {
    let case = libzmq_client();
    check_tampering(&case, &load(&case));
}

#[test]
fn fixture_libzmq_server_tampered_boxes_fail_typed() {
    let case = libzmq_server();
    check_tampering(&case, &load(&case));
}

// ----- live capture -----

/// Our raw end of a connection with the libzmq peer.
struct Live {
    stream: TcpStream,
    session: Session,
    input: BytesMut,
    events: VecDeque<SessionEvent>,
    cap: Capture,
}

impl Live {
    fn new(stream: TcpStream, case: &Case) -> Live {
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        Live {
            stream,
            session: Session::new_seeded(case.config(), Instant::now(), SEED),
            input: BytesMut::new(),
            events: VecDeque::new(),
            cap: Capture::default(),
        }
    }

    fn flush(&mut self) {
        let out = self.session.output().to_vec();
        self.stream.write_all(&out).expect("write to libzmq");
        self.session.consume_output(out.len());
        self.cap.ours.extend_from_slice(&out);
    }

    /// The session's next event, writing what it has to say and reading
    /// libzmq (each read bounded by [`TIMEOUT`]) until there is one.
    fn next_event(&mut self) -> SessionEvent {
        loop {
            self.flush();
            if let Some(ev) = self.events.pop_front() {
                return ev;
            }
            let mut buf = [0u8; 4096];
            let n = match self.stream.read(&mut buf) {
                Ok(0) => panic!("libzmq closed the connection: {:?}", self.session.error()),
                Ok(n) => n,
                Err(e) => panic!("read from libzmq: {e}"),
            };
            self.cap.libzmq.extend_from_slice(&buf[..n]);
            self.input.extend_from_slice(&buf[..n]);
            self.session
                .handle_input(&mut self.input, Instant::now())
                .expect("libzmq's bytes");
            while let Some(ev) = self.session.poll_event() {
                self.events.push_back(ev);
            }
        }
    }

    fn send(&mut self, frames: &[Vec<u8>]) {
        self.session
            .send_message(&Message::from_frames(frames.iter().cloned()));
        self.flush();
    }
}

/// Runs the case against libzmq, checks what each side received, then
/// the capture as the fixtures are checked.
fn live(case: &Case) -> Capture {
    let (mut peer, stream) = if case.our_server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let ep = format!("tcp://{}", listener.local_addr().expect("address"));
        let peer = case.peer(("connect", &ep));
        (peer, accept(&listener))
    } else {
        let mut peer = case.peer(("bind", "tcp://127.0.0.1:0"));
        let ep = peer.bound();
        let addr = ep
            .strip_prefix("tcp://")
            .and_then(|a| a.parse().ok())
            .expect("a tcp endpoint");
        (
            peer,
            TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect"),
        )
    };
    let mut live = Live::new(stream, case);
    match live.next_event() {
        SessionEvent::Ready(info) => assert_eq!(info.socket_type, case.libzmq),
        other => panic!("expected READY, got {other:?}"),
    }
    // The client speaks first.
    for n in 0..case.we_send.len() {
        if !case.our_server {
            live.send(&case.we_send[n]);
        }
        match live.next_event() {
            SessionEvent::Message(m) => {
                let got: Vec<Vec<u8>> = m.iter().map(|f| f.to_vec()).collect();
                assert_eq!(got, case.libzmq_sends[n], "message {n} from libzmq");
            }
            other => panic!("expected a message, got {other:?}"),
        }
        if case.our_server {
            live.send(&case.we_send[n]);
        }
        assert_eq!(
            peer.received(),
            case.libzmq_receives[n],
            "libzmq decoded ours"
        );
    }
    check(case, &live.cap);
    live.cap
}

fn live_and_maybe_write(case: &Case) {
    let cap = live(case);
    if std::env::var_os("FERROZMQ_WRITE_FIXTURES").is_some() {
        write_fixture(case, &cap);
        assert_eq!(load(case), cap, "the fixture reads back");
    }
}

#[test]
fn live_libzmq_client_with_our_seeded_server() {
    live_and_maybe_write(&libzmq_client());
}

#[test]
fn live_libzmq_server_with_our_seeded_client() {
    live_and_maybe_write(&libzmq_server());
}
