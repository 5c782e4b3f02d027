//! `fzmq probe`: connect once and say, step by step, how far a ZMTP
//! conversation gets and why it stops.
//!
//! The steps are those of the library's own connection:
//!
//! 1. resolve: a literal address needs none; a name goes through the same
//!    `getaddrinfo` (std's `ToSocketAddrs`) as the library's resolver;
//! 2. tcp: each address in turn, as the connecter tries them, with a
//!    non-blocking connect bounded by `--timeout-ms`; a failure is
//!    classified by the library's own [`ConnectFailure::classify`];
//! 3. greeting: ours goes out in two parts as libzmq sends it (signature
//!    and major version, then the rest once the peer's greeting is in),
//!    and the peer's is parsed with the library's `zmtp::Greeting`;
//! 4. ready: the NULL handshake, run by the library's sans-IO
//!    `zmtp::Session` with `--type` (DEALER without it), which yields the
//!    peer's socket type from its READY, or the type it named when the
//!    session refused it;
//! 5. compat: the library's compatibility table (`SocketType::is_compatible`).
//!
//! Each way of stopping has its own exit code ([`Verdict`]).

use crate::Outcome;
use bytes::BytesMut;
use clap::Args;
use ferrozmq::endpoint::{Endpoint, Host, TcpEndpoint};
use ferrozmq::zmtp::greeting::{Greeting, GREETING_LEN, SIGNATURE_LEN};
use ferrozmq::zmtp::session::{Session, SessionConfig, SessionEvent};
use ferrozmq::{ConnectFailure, ProtocolError, SocketType};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Arguments of `fzmq probe`.
#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The endpoint to probe: tcp://host:port.
    endpoint: String,
    /// The socket type you mean to connect with: the probe handshakes as
    /// it and says whether the peer's type is compatible (exit 25 if
    /// not). Without it the handshake uses DEALER and any peer type
    /// passes.
    #[arg(long = "type", value_name = "T", value_parser = crate::parse_type)]
    ty: Option<SocketType>,
    /// How long each step (connect, greeting, READY) may take.
    #[arg(long, value_name = "MS", default_value_t = 2000,
          value_parser = crate::millis())]
    timeout_ms: u64,
}

/// How a probe ended: its exit code. The values are documented in
/// `fzmq --help` and README.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    /// A ZMTP peer whose socket type suits `--type` (or any, without it).
    Ok = 0,
    /// The host name did not resolve.
    Resolve = 10,
    /// Connection refused: nothing listens there.
    Refused = 11,
    /// The TCP connect timed out.
    TimedOut = 12,
    /// Host or network unreachable.
    Unreachable = 13,
    /// Any other connect error.
    ConnectOther = 14,
    /// Not a ZMTP peer: wrong signature, an echo of our bytes, or closed.
    NotZmtp = 20,
    /// Connected, but no greeting came in time.
    Silent = 21,
    /// A ZMTP version below 3.0.
    Version = 22,
    /// A security mechanism other than NULL.
    Mechanism = 23,
    /// The handshake failed after the greeting.
    Handshake = 24,
    /// The peer's socket type cannot talk to `--type`.
    Incompatible = 25,
}

impl Verdict {
    fn from_failure(f: ConnectFailure) -> Verdict {
        match f {
            ConnectFailure::Refused => Verdict::Refused,
            ConnectFailure::TimedOut => Verdict::TimedOut,
            ConnectFailure::Unreachable => Verdict::Unreachable,
            ConnectFailure::Resolve => Verdict::Resolve,
            _ => Verdict::ConnectOther,
        }
    }
}

/// Every socket type, for "which types can talk to this peer?".
const ALL_TYPES: [SocketType; 11] = [
    SocketType::Req,
    SocketType::Rep,
    SocketType::Dealer,
    SocketType::Router,
    SocketType::Push,
    SocketType::Pull,
    SocketType::Pub,
    SocketType::Sub,
    SocketType::XPub,
    SocketType::XSub,
    SocketType::Pair,
];

/// The padding of our greeting's signature. RFC 23 calls these 8 bytes
/// "not significant" and libzmq only looks at the last bit of byte 9, but
/// real peers send zeros and a small length (libzmq's routing-id length
/// plus one). Bytes no peer sends let us tell a peer that greets like us from
/// an echo server that returns our own greeting, which would otherwise
/// parse as a perfectly good one.
const PROBE_PADDING: [u8; 8] = *b"fzmq-prb";

/// Runs the probe, printing one line per step.
pub fn run(args: &ProbeArgs) -> Outcome {
    let ep = match Endpoint::parse(&args.endpoint).and_then(|ep| {
        ep.check_connectable()?;
        Ok(ep)
    }) {
        Ok(Endpoint::Tcp(ep)) => ep,
        Ok(other) => {
            return Outcome::Usage(format!(
                "{other}: the probe speaks tcp:// only (it opens its own TCP connection)"
            ))
        }
        Err(e) => return Outcome::Usage(e.to_string()),
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    step("probe", format!("{ep}"));
    let verdict = match connect(&ep, timeout) {
        Ok(stream) => converse(stream, args.ty, timeout),
        Err(verdict) => verdict,
    };
    Outcome::Probe(verdict as u8)
}

fn step(name: &str, text: impl AsRef<str>) {
    println!("{name:<9} {}", text.as_ref());
}

fn result(verdict: Verdict, text: impl AsRef<str>) -> Verdict {
    step(
        "result",
        format!("{} (exit {})", text.as_ref(), verdict as u8),
    );
    verdict
}

fn ms(since: Instant) -> String {
    format!("{:.1} ms", since.elapsed().as_secs_f64() * 1000.0)
}

/// Resolves and connects, trying each address in order as the connecter
/// does; the verdict of the last failure if none connects.
fn connect(ep: &TcpEndpoint, timeout: Duration) -> Result<TcpStream, Verdict> {
    let start = Instant::now();
    let addrs: Vec<SocketAddr> = match (&ep.host, ep.literal_addr()) {
        (_, Some(addr)) => {
            step(
                "resolve",
                format!("{addr}: a literal address, nothing to resolve"),
            );
            vec![addr]
        }
        (Host::Name(name), None) => match (name.as_str(), ep.port).to_socket_addrs() {
            Ok(it) => {
                let addrs: Vec<_> = it.collect();
                if addrs.is_empty() {
                    step("resolve", format!("{name}: no address ({})", ms(start)));
                    return Err(result(Verdict::Resolve, "resolve failure"));
                }
                let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                step(
                    "resolve",
                    format!("{name} -> {} ({})", list.join(", "), ms(start)),
                );
                addrs
            }
            Err(e) => {
                step("resolve", format!("{name}: {e} ({})", ms(start)));
                return Err(result(Verdict::Resolve, "resolve failure"));
            }
        },
        // `check_connectable` refused the wildcard host already.
        (Host::Any, None) | (Host::Ip(_), None) => {
            return Err(result(Verdict::ConnectOther, "no address to connect to"))
        }
    };
    let mut last = ConnectFailure::Other;
    for addr in addrs {
        let start = Instant::now();
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                step("tcp", format!("{addr}: connected ({})", ms(start)));
                return Ok(stream);
            }
            Err(e) => {
                last = ConnectFailure::classify(&e);
                let class = match last {
                    ConnectFailure::Refused => "refused",
                    ConnectFailure::TimedOut => "timed out",
                    ConnectFailure::Unreachable => "unreachable",
                    _ => "failed",
                };
                step("tcp", format!("{addr}: {class}: {e} ({})", ms(start)));
            }
        }
    }
    let text = match last {
        ConnectFailure::Refused => "connection refused: nothing listens there",
        ConnectFailure::TimedOut => "TCP connect timed out: a firewall, or no such host",
        ConnectFailure::Unreachable => "host or network unreachable",
        _ => "TCP connect failed",
    };
    Err(result(Verdict::from_failure(last), text))
}

/// How a read for more bytes ended.
enum ReadEnd {
    /// Bytes arrived.
    More,
    /// The peer closed, or the connection failed.
    Closed(Option<io::Error>),
    /// The step's deadline passed.
    Deadline,
}

/// Reads whatever arrives next into `buf`, waiting until `deadline`.
fn read_more(stream: &mut TcpStream, buf: &mut BytesMut, deadline: Instant) -> ReadEnd {
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return ReadEnd::Deadline;
        }
        if let Err(e) = stream.set_read_timeout(Some(left)) {
            return ReadEnd::Closed(Some(e));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return ReadEnd::Closed(None),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return ReadEnd::More;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return ReadEnd::Closed(Some(e)),
        }
    }
}

/// How the connection ended, for a step's line.
fn closed(error: Option<&io::Error>) -> String {
    match error {
        None => "the peer closed the connection".to_owned(),
        Some(e) => format!("the connection failed ({e})"),
    }
}

/// The first bytes of `buf`, in hex and as text, for a human to recognise
/// the protocol (`HTTP/1.1 400`, `SSH-2.0`...).
fn preview(buf: &[u8]) -> String {
    let head = &buf[..buf.len().min(16)];
    let text: String = head
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{} {text:?}", crate::format::to_hex(head))
}

/// The greeting, then the handshake, then the compatibility verdict.
fn converse(mut stream: TcpStream, ty: Option<SocketType>, timeout: Duration) -> Verdict {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(timeout));
    let mut ours = Greeting::ours().to_bytes();
    ours[1..9].copy_from_slice(&PROBE_PADDING);
    // Our signature and major version only, as libzmq starts: a libzmq
    // peer then sends its whole greeting, and we learn its mechanism even
    // when it is not NULL (libzmq closes at once on a mismatched whole
    // greeting, before its own has left). The rest of ours follows once
    // the peer's has come, or if the peer waits for it.
    let (first, rest) = ours.split_at(SIGNATURE_LEN + 1);
    // A failed write shows up as a closed connection on the next read.
    let _ = stream.write_all(first);
    let mut rest_sent = false;

    let start = Instant::now();
    let mut deadline = start + timeout;
    let mut buf = BytesMut::new();
    let greeting = loop {
        let seen = buf.len().min(SIGNATURE_LEN + 1);
        if seen >= SIGNATURE_LEN && buf[..seen] == ours[..seen] {
            step(
                "greeting",
                format!("the peer sent our own greeting back ({})", ms(start)),
            );
            return result(Verdict::NotZmtp, "not a ZMTP peer: it echoes what it gets");
        }
        match Greeting::parse(&buf) {
            Ok(Some(g)) => break g,
            Ok(None) => {}
            Err(ProtocolError::UnsupportedVersion { major, minor }) => {
                // Before 3.0 the byte after the signature was a revision
                // (0 for ZMTP 1.0, 1 for 2.0, RFC 15), then the socket type.
                let version = match major {
                    0 => "ZMTP 1.0".to_owned(),
                    1 => "ZMTP 2.0".to_owned(),
                    _ => format!("revision {major}"),
                };
                step(
                    "greeting",
                    format!(
                        "{version} (revision byte {major}, next byte {minor}) ({})",
                        ms(start)
                    ),
                );
                return result(
                    Verdict::Version,
                    format!("{version} is too old: fzmq speaks ZMTP 3.0 and 3.1"),
                );
            }
            Err(e) => {
                step(
                    "greeting",
                    format!("{e}: first bytes {} ({})", preview(&buf), ms(start)),
                );
                return result(Verdict::NotZmtp, "not a ZMTP peer");
            }
        }
        match read_more(&mut stream, &mut buf, deadline) {
            ReadEnd::More => {}
            ReadEnd::Closed(e) => {
                let why = closed(e.as_ref());
                let what = if buf.is_empty() {
                    format!("{why} before sending anything ({})", ms(start))
                } else {
                    format!(
                        "{why} after sending {} bytes: {} ({})",
                        buf.len(),
                        preview(&buf),
                        ms(start)
                    )
                };
                step("greeting", what);
                return result(Verdict::NotZmtp, "not a ZMTP peer: no greeting");
            }
            ReadEnd::Deadline if !rest_sent && buf.len() >= SIGNATURE_LEN => {
                // A peer that wants our whole greeting before finishing
                // its own: give it, and the same time again.
                let _ = stream.write_all(rest);
                rest_sent = true;
                deadline = Instant::now() + timeout;
            }
            ReadEnd::Deadline => {
                let what = if buf.is_empty() {
                    format!("nothing within {} ms", timeout.as_millis())
                } else {
                    format!(
                        "{} bytes of a greeting, then nothing within {} ms",
                        buf.len(),
                        timeout.as_millis()
                    )
                };
                step("greeting", what);
                return result(
                    Verdict::Silent,
                    "connected, but no ZMTP greeting: a server that waits for its client to speak?",
                );
            }
        }
    };
    let mechanism = String::from_utf8_lossy(greeting.mechanism_name()).into_owned();
    step(
        "greeting",
        format!(
            "ZMTP {}.{}, mechanism {mechanism}, as-server {} ({})",
            greeting.major,
            greeting.minor,
            u8::from(greeting.as_server),
            ms(start)
        ),
    );
    if greeting.is_null_mechanism() && !rest_sent {
        let _ = stream.write_all(rest);
    }
    if !greeting.is_null_mechanism() {
        step(
            "ready",
            "not attempted: fzmq probes with the NULL mechanism only",
        );
        return result(
            Verdict::Mechanism,
            format!("the peer wants the {mechanism} mechanism"),
        );
    }
    handshake(stream, buf, ty, timeout)
}

/// What the handshake learned of the peer's type.
enum PeerType {
    /// READY arrived and the session accepted it.
    Accepted(SocketType),
    /// READY named this type, which the session refused for ours.
    Refused(String),
}

fn handshake(
    mut stream: TcpStream,
    mut buf: BytesMut,
    ty: Option<SocketType>,
    timeout: Duration,
) -> Verdict {
    let ours = ty.unwrap_or(SocketType::Dealer);
    let start = Instant::now();
    let deadline = start + timeout;
    let mut session = Session::new(SessionConfig::new(ours), start);
    // The session queued its greeting; ours, with the probe's padding,
    // went out already and is otherwise the same.
    session.consume_output(GREETING_LEN);
    let peer = loop {
        let input = session.handle_input(&mut buf, Instant::now());
        // READY, or an ERROR for a peer of the wrong type: the peer
        // should hear why we leave, as it would from the library.
        while session.has_output() {
            match stream.write(session.output()) {
                Ok(n) if n > 0 => session.consume_output(n),
                _ => break,
            }
        }
        if let Some(SessionEvent::Ready(info)) = session.poll_event() {
            break PeerType::Accepted(info.socket_type);
        }
        match input {
            Ok(()) => {}
            Err(ProtocolError::IncompatibleSocketType { peer, .. }) => {
                break PeerType::Refused(peer);
            }
            Err(e) => {
                step("ready", format!("{e} ({})", ms(start)));
                return result(Verdict::Handshake, "the ZMTP handshake failed");
            }
        }
        match read_more(&mut stream, &mut buf, deadline) {
            ReadEnd::More => {}
            ReadEnd::Closed(e) => {
                step(
                    "ready",
                    format!("{} before READY ({})", closed(e.as_ref()), ms(start)),
                );
                return result(Verdict::Handshake, "the ZMTP handshake failed");
            }
            ReadEnd::Deadline => {
                step(
                    "ready",
                    format!("no READY within {} ms", timeout.as_millis()),
                );
                return result(Verdict::Handshake, "the ZMTP handshake did not finish");
            }
        }
    };
    let name = match &peer {
        PeerType::Accepted(t) => t.as_str().to_owned(),
        PeerType::Refused(name) => name.clone(),
    };
    step(
        "ready",
        format!("peer socket type {name} ({}, as {ours})", ms(start)),
    );
    let peer_type = match &peer {
        PeerType::Accepted(t) => Some(*t),
        PeerType::Refused(name) => SocketType::from_name(name.as_bytes()),
    };
    let partners = peer_type.map(|p| {
        let list: Vec<&str> = ALL_TYPES
            .iter()
            .filter(|t| t.is_compatible(p))
            .map(|t| t.as_str())
            .collect();
        list.join(", ")
    });
    let talks_to = match &partners {
        Some(list) => format!("{name} talks to {list}"),
        None => format!("{name} is not a socket type ferrozmq implements"),
    };
    match (ty, &peer) {
        (Some(t), PeerType::Accepted(_)) => {
            step("compat", format!("{t} can talk to {name}"));
            result(
                Verdict::Ok,
                format!("ok: a ZMTP {name} peer that accepts {t}"),
            )
        }
        (Some(t), PeerType::Refused(_)) => {
            step("compat", format!("{t} cannot talk to {name}: {talks_to}"));
            result(
                Verdict::Incompatible,
                format!("incompatible: {t} cannot talk to {name}"),
            )
        }
        (None, _) => {
            step("compat", format!("no --type given; {talks_to}"));
            result(Verdict::Ok, format!("ok: a ZMTP {name} peer"))
        }
    }
}
