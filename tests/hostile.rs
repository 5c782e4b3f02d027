//! Hostile peers: a server (our REP, or our ROUTER) keeps serving a good
//! REQ client while raw TCP clients throw garbage at it.
//!
//! The bad clients: random bytes (fixed-seed xorshift, up to > 64 KiB), a
//! valid greeting followed by garbage of several kinds, a peer that
//! completes the handshake and then announces a 2^62-byte frame, a
//! slowloris that drips its greeting, an idle peer, and peers that
//! half-close before or after their greeting.
//!
//! Checked for each attack: the good client's every reply matches and it
//! keeps making progress; every bad peer is accounted for by exactly one
//! `HandshakeFailed`/`Disconnected` monitor event with the expected reason;
//! every raw client sees EOF or a reset within a bounded time; and the
//! process's resident memory (this process hosts the server) grows by less
//! than [`RSS_LIMIT_KIB`], announced lengths notwithstanding.
//!
//! The two attacks run one after the other (see [`SERIAL`]) so that each
//! one's memory figures are its own.
//!
//! Then the streaming attack of issue 16: peers that complete the
//! handshake, send an empty delimiter, announce a 2^40-byte body and
//! stream it. The socket's `inbound_budget` must drop them (the one that
//! holds the most first) while the server's memory stays within the
//! budget plus a fixed overhead, and the good client is served all along.

mod util;

use ferrozmq::{Context, Error, EventKind, Message, MonitorEvent, ProtocolError, SocketType};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use util::raw::{greeting, ready};

/// Bound of one blocking step that is expected to succeed: the good
/// client's send/recv, a raw client's connect, read or write.
const STEP: Duration = Duration::from_secs(5);
/// Bound of a whole phase (a raw client's life, collecting events, the
/// good client's progress). Generous for a loaded 2-core machine.
const PHASE: Duration = Duration::from_secs(15);
/// The server's `handshake_ivl`, which drops the slowloris and idle peers.
const HANDSHAKE_IVL: Duration = Duration::from_millis(500);
/// The slowloris sends one greeting byte per this interval (64 bytes would
/// take ~10 s; the handshake timer must fire long before).
const SLOWLORIS_PACE: Duration = Duration::from_millis(150);
/// Round trips the good client must complete during the attack.
const GOOD_ROUND_TRIPS: usize = 50;
/// Random-bytes clients.
const RANDOM_CLIENTS: usize = 50;
/// Body bytes the 2^62-claiming client actually sends after its header.
const HUGE_FILLER: usize = 2 << 20;
/// The frame length the huge-claim client announces.
const HUGE_CLAIM: u64 = 1 << 62;
/// `maxmsgsize` of the ROUTER variant (the REP variant has none).
const ROUTER_MAXMSGSIZE: u64 = 1 << 20;
/// Allowed growth of VmRSS (and of VmHWM) through an attack.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// The attacks share this process's memory figures: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn rep_server_survives_hostile_peers() {
    attack(SocketType::Rep, None);
}

#[test]
fn router_server_survives_hostile_peers() {
    attack(SocketType::Router, Some(ROUTER_MAXMSGSIZE));
}

/// Minimal repro of an engine bug: a peer whose READY and an oversized
/// frame arrive in the same read. The session processes READY (queueing
/// its `Ready` event, state Traffic) and then fails on the frame header;
/// `engine_read` closes the engine on that error without first handing the
/// session's queued events to the socket, so the engine is still "not
/// ready" when closed: the monitor reports `HandshakeFailed` (and never
/// `HandshakeSucceeded`) for a peer that did complete its handshake.
#[test]
fn ready_and_oversized_frame_in_one_read_count_as_handshaken() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = Context::new();
    let server = ctx.socket(SocketType::Rep).expect("server socket");
    server.set_maxmsgsize(Some(1000)).unwrap();
    server.set_linger(Some(Duration::ZERO)).unwrap();
    let mon = server.monitor();
    let endpoint = server.bind("tcp://127.0.0.1:*").expect("bind");
    let addr: SocketAddr = endpoint
        .trim_start_matches("tcp://")
        .parse()
        .expect("bound address");
    let (mut s, peer) = dial(addr).expect("dial");
    // One write, one segment: greeting, READY, then a 2000-byte frame header.
    let mut bytes = concat(&[&greeting(), &ready(Some("REQ"))]);
    bytes.push(0x02);
    bytes.extend_from_slice(&2000u64.to_be_bytes());
    s.write_all(&bytes).expect("write");
    await_end(&mut s, Instant::now() + PHASE).expect("dropped");
    let mut events = Events::new();
    assert!(
        collect_events(
            &mon,
            &mut events,
            std::slice::from_ref(&peer),
            Instant::now() + PHASE
        ),
        "no terminal event for {peer}"
    );
    let kinds = &events[&peer];
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, EventKind::HandshakeSucceeded)),
        "the peer completed its handshake, but: {kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| matches!(
            k,
            EventKind::Disconnected {
                reason: Some(ProtocolError::MessageTooLarge {
                    size: 2000,
                    limit: 1000
                }),
                ..
            }
        )),
        "expected Disconnected(MessageTooLarge), got {kinds:?}"
    );
}

/// The server's `inbound_budget` in the streaming attacks: small, so that
/// the attack is quick, and far above what the good client needs.
const STREAM_BUDGET: u64 = 32 << 20;
/// What one streaming attacker sends at most before the test gives up on
/// the server ever dropping it: without the budget, the server would hold
/// all of it.
const STREAM_CAP: usize = 512 << 20;

#[test]
fn one_streaming_attacker_is_dropped_at_the_budget() {
    stream_attack(1);
}

#[test]
fn many_streaming_attackers_cost_at_most_the_budget() {
    stream_attack(8);
}

/// A peer that completes its handshake and a round trip, then sends an
/// empty delimiter, announces a 2^40-byte body and streams zeros until
/// the server drops it. Returns its address, the bytes it sent and how
/// it learnt of the end.
fn streamer(server: SocketAddr) -> Result<(String, usize, Ended), String> {
    let (mut s, peer) = dial(server)?;
    let hello = concat(&[&greeting(), &ready(Some("REQ")), &REQUEST_PING]);
    if let Some(kind) = write_lenient(&mut s, &hello)? {
        return Err(format!("reset during the handshake: {kind:?}"));
    }
    await_reply(&mut s, b"ping")?;
    let mut head = vec![0x01, 0x00, 0x02]; // delimiter (MORE), LONG header
    head.extend_from_slice(&(1u64 << 40).to_be_bytes());
    let mut sent = 0;
    let chunk = vec![0u8; 64 * 1024];
    let mut next: &[u8] = &head;
    while sent < STREAM_CAP {
        if let Some(kind) = write_lenient(&mut s, next)? {
            return Ok((peer, sent, Ended::Reset(kind)));
        }
        sent += next.len();
        next = &chunk;
    }
    Err(format!("{peer}: not dropped after streaming {sent} bytes"))
}

fn stream_attack(attackers: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = Context::new();
    let server = ctx.socket(SocketType::Rep).expect("server socket");
    server.set_inbound_budget(Some(STREAM_BUDGET)).unwrap();
    server.set_linger(Some(Duration::ZERO)).unwrap();
    let mon = server.monitor();
    let endpoint = server.bind("tcp://127.0.0.1:*").expect("bind");
    let addr: SocketAddr = endpoint
        .trim_start_matches("tcp://")
        .parse()
        .expect("bound address");
    let server = Arc::new(server);
    let server_stop = Arc::new(AtomicBool::new(false));
    let server_thread = spawn_server(server.clone(), server_stop.clone());
    let good_stop = Arc::new(AtomicBool::new(false));
    let (progress_tx, progress) = mpsc::channel();
    let good = spawn_good_client(endpoint.clone(), good_stop.clone(), progress_tx);
    let mut round_trips = 0;
    wait_progress(&progress, &mut round_trips, 1, Instant::now() + PHASE);
    assert!(round_trips >= 1, "good client never got a first reply");

    // The peak from here on is this attack's (Linux resets VmHWM to the
    // current RSS on "5").
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = proc_kib("VmRSS:");
    let at_start = round_trips;
    let start = Instant::now();
    let streams: Vec<_> = (0..attackers)
        .map(|_| thread::spawn(move || streamer(addr)))
        .collect();
    let results: Vec<_> = streams
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| Err("streamer panicked".into())))
        .collect();
    let took = start.elapsed();
    let hwm_after = proc_kib("VmHWM:");
    wait_progress(
        &progress,
        &mut round_trips,
        at_start + GOOD_ROUND_TRIPS,
        Instant::now() + PHASE,
    );
    let mut outcomes = Vec::new();
    for r in results {
        outcomes.push(r.unwrap_or_else(|e| panic!("attacker: {e}")));
    }
    let peers: Vec<String> = outcomes.iter().map(|(p, _, _)| p.clone()).collect();
    let mut events = Events::new();
    let complete = collect_events(&mon, &mut events, &peers, Instant::now() + PHASE);
    // Only now: its own disconnection is not part of the attack.
    good_stop.store(true, Ordering::Relaxed);
    let good_result = good.join().expect("good client thread");
    server_stop.store(true, Ordering::Relaxed);
    let served = server_thread.join().expect("server thread");
    let sent: usize = outcomes.iter().map(|(_, n, _)| n).sum();
    eprintln!(
        "[{attackers} streaming attacker(s), budget {} MiB] dropped after {:.1} MiB sent \
         in all, in {took:?}; VmRSS before {:?} KiB, VmHWM during {:?} KiB; good client: \
         {} round trips during the attack",
        STREAM_BUDGET >> 20,
        sent as f64 / f64::from(1 << 20),
        rss_before,
        hwm_after,
        round_trips - at_start
    );

    assert!(complete, "not every attacker got a terminal monitor event");
    for peer in &peers {
        let kinds = &events[peer];
        assert!(
            kinds.iter().any(|k| matches!(
                k,
                EventKind::Disconnected {
                    reason: Some(ProtocolError::InboundBudget {
                        budget: STREAM_BUDGET,
                        ..
                    }),
                    ..
                }
            )),
            "{peer}: {kinds:?}"
        );
    }
    assert_eq!(
        server.stats().disconnected_over_budget,
        attackers as u64,
        "each attacker dropped once"
    );
    for (ep, kinds) in &events {
        assert!(
            peers.contains(ep) || !kinds.iter().any(is_terminal),
            "non-attacker {ep} was dropped: {kinds:?}"
        );
    }
    let good_total = good_result.unwrap_or_else(|e| panic!("good client failed: {e}"));
    assert!(
        good_total - at_start >= GOOD_ROUND_TRIPS,
        "good client made only {} round trips after the attack began",
        good_total - at_start
    );
    served.unwrap_or_else(|e| panic!("server failed: {e}"));
    if let (Some(before), Some(peak)) = (rss_before, hwm_after) {
        let growth = peak.saturating_sub(before);
        let limit = (STREAM_BUDGET >> 10) + RSS_LIMIT_KIB;
        assert!(
            growth < limit,
            "VmRSS grew by {growth} KiB under the attack (budget {} KiB + {RSS_LIMIT_KIB} KiB)",
            STREAM_BUDGET >> 10
        );
    }
}

// ----- helpers: randomness, ZMTP bytes, /proc -----

/// Marsaglia's xorshift64: deterministic garbage from a fixed seed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A field of /proc/self/status in KiB (`VmRSS`, `VmHWM`); `None` off Linux.
fn proc_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ----- raw clients -----

/// How a raw client learnt that the server dropped it.
#[derive(Debug)]
enum Ended {
    /// read returned 0.
    Eof,
    /// read or write failed (reset, broken pipe).
    Reset(io::ErrorKind),
}

impl Ended {
    fn label(&self) -> String {
        match self {
            Ended::Eof => "EOF".into(),
            Ended::Reset(kind) => format!("{kind:?}"),
        }
    }
}

/// What the server's monitor must say about a bad peer.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// `HandshakeFailed`, with one of these reasons (any if empty).
    Refused(&'static [&'static str]),
    /// `Disconnected` by EOF before any handshake: no reason, no error.
    Eof,
    /// `HandshakeSucceeded`, then `Disconnected`: for `MessageTooLarge`
    /// with `Some(limit)`, else by the EOF the client sends at the end.
    HugeClaim(Option<u64>),
}

/// What one raw client did and saw.
#[derive(Debug)]
struct Outcome {
    name: String,
    /// Its address as the server's monitor names it.
    peer: String,
    expect: Expect,
    ended: Ended,
    /// Bytes it managed to write.
    sent: usize,
    /// From its start until it saw the end.
    took: Duration,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn dial(server: SocketAddr) -> Result<(TcpStream, String), String> {
    let s = TcpStream::connect_timeout(&server, STEP).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(STEP))
        .and_then(|()| s.set_write_timeout(Some(STEP)))
        .and_then(|()| s.set_nodelay(true))
        .map_err(|e| format!("setsockopt: {e}"))?;
    let local = s.local_addr().map_err(|e| format!("local_addr: {e}"))?;
    Ok((s, format!("tcp://{local}")))
}

/// Writes all of `data`. `Ok(None)` when written, `Ok(Some(kind))` when the
/// server had already closed (reset, broken pipe); an error when the write
/// stalled, which means the server neither read nor dropped us.
fn write_lenient(s: &mut TcpStream, data: &[u8]) -> Result<Option<io::ErrorKind>, String> {
    match s.write_all(data) {
        Ok(()) => Ok(None),
        Err(e) if is_timeout(&e) => Err(format!("write stalled for {STEP:?}: {e}")),
        Err(e) => Ok(Some(e.kind())),
    }
}

/// Reads (and discards) until EOF or an error, or fails at `deadline`.
/// `Ok(None)` only when `pace_only` and the deadline passed quietly.
fn read_until(
    s: &mut TcpStream,
    deadline: Instant,
    pace_only: bool,
) -> Result<Option<Ended>, String> {
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return if pace_only {
                Ok(None)
            } else {
                Err("server never closed the connection".into())
            };
        }
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(Some(Ended::Eof)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Ok(Some(Ended::Reset(e.kind()))),
        }
    }
}

/// Waits for the server to drop us, at most until `deadline`.
fn await_end(s: &mut TcpStream, deadline: Instant) -> Result<Ended, String> {
    read_until(s, deadline, false).map(|e| e.expect("no pacing"))
}

/// Connects, writes `script` (in pieces, tolerating a reset), optionally
/// half-closes, then waits to be dropped.
fn scripted(
    server: SocketAddr,
    name: String,
    script: Vec<u8>,
    half_close: bool,
    expect: Expect,
) -> Result<Outcome, String> {
    let start = Instant::now();
    let (mut s, peer) = dial(server)?;
    let mut sent = 0;
    let mut reset = None;
    for piece in script.chunks(16 * 1024) {
        reset = write_lenient(&mut s, piece)?;
        if reset.is_some() {
            break;
        }
        sent += piece.len();
    }
    if half_close && reset.is_none() {
        let _ = s.shutdown(Shutdown::Write);
    }
    let ended = match reset {
        Some(kind) => Ended::Reset(kind),
        None => await_end(&mut s, start + PHASE)?,
    };
    Ok(Outcome {
        name,
        peer,
        expect,
        ended,
        sent,
        took: start.elapsed(),
    })
}

/// A valid greeting, one byte per [`SLOWLORIS_PACE`].
fn slowloris(server: SocketAddr) -> Result<Outcome, String> {
    let start = Instant::now();
    let (mut s, peer) = dial(server)?;
    let g = greeting();
    let mut sent = 0;
    let mut ended = None;
    for byte in g.chunks(1) {
        if let Some(kind) = write_lenient(&mut s, byte)? {
            ended = Some(Ended::Reset(kind));
            break;
        }
        sent += 1;
        // The pacing: wait for the server's verdict until the next byte.
        if let Some(e) = read_until(&mut s, Instant::now() + SLOWLORIS_PACE, true)? {
            ended = Some(e);
            break;
        }
    }
    let ended = match ended {
        Some(e) => e,
        None => await_end(&mut s, start + PHASE)?,
    };
    Ok(Outcome {
        name: "slowloris".into(),
        peer,
        expect: Expect::Refused(&["HandshakeTimeout"]),
        ended,
        sent,
        took: start.elapsed(),
    })
}

/// Handshakes as a REQ, announces a 2^62-byte frame, sends
/// [`HUGE_FILLER`] bytes of it, reports, and stays connected until told
/// to leave; then half-closes and waits for the server to close.
fn huge_claim(
    server: SocketAddr,
    limit: Option<u64>,
    sent_tx: mpsc::Sender<()>,
    leave_rx: mpsc::Receiver<()>,
) -> Result<Outcome, String> {
    let start = Instant::now();
    let (mut s, peer) = dial(server)?;
    // Handshake and one genuine round trip first, so that the server has
    // certainly processed READY before the claim arrives (see
    // `ready_and_oversized_frame_in_one_read_count_as_handshaken`).
    let hello = concat(&[&greeting(), &ready(Some("REQ")), &REQUEST_PING]);
    if let Some(kind) = write_lenient(&mut s, &hello)? {
        return Err(format!("reset during the handshake: {kind:?}"));
    }
    await_reply(&mut s, b"ping")?;
    let mut sent = hello.len();
    let mut head = vec![0x02]; // LONG, not MORE, not COMMAND
    head.extend_from_slice(&HUGE_CLAIM.to_be_bytes());
    let mut reset = write_lenient(&mut s, &head)?;
    if reset.is_none() {
        sent += head.len();
        let chunk = vec![0xAB; 64 * 1024];
        let end = sent + HUGE_FILLER;
        while sent < end {
            reset = write_lenient(&mut s, &chunk)?;
            if reset.is_some() {
                break;
            }
            sent += chunk.len();
        }
    }
    let _ = sent_tx.send(());
    // Stay connected for the rest of the attack (bounded).
    let _ = leave_rx.recv_timeout(PHASE * 2);
    let ended = match reset {
        Some(kind) => Ended::Reset(kind),
        None => {
            let _ = s.shutdown(Shutdown::Write);
            await_end(&mut s, Instant::now() + PHASE)?
        }
    };
    Ok(Outcome {
        name: "huge-claim".into(),
        peer,
        expect: Expect::HugeClaim(limit),
        ended,
        sent,
        took: start.elapsed(),
    })
}

/// A REQ request as raw frames: the empty delimiter (MORE), then "ping".
const REQUEST_PING: [u8; 8] = [0x01, 0x00, 0x00, 4, b'p', b'i', b'n', b'g'];

/// Whether `buf` (the server's greeting, then frames) holds a final
/// message frame with this body.
fn reply_seen(buf: &[u8], body: &[u8]) -> bool {
    let mut i = 64;
    while let Some(&flags) = buf.get(i) {
        let (len, header) = if flags & 0x02 != 0 {
            match buf.get(i + 1..i + 9) {
                Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 9),
                None => return false,
            }
        } else {
            match buf.get(i + 1) {
                Some(&b) => (u64::from(b), 2),
                None => return false,
            }
        };
        let Ok(len) = usize::try_from(len) else {
            return false;
        };
        let Some(frame) = buf.get(i + header..i + header + len) else {
            return false;
        };
        if flags & 0x05 == 0 && frame == body {
            return true;
        }
        i += header + len;
    }
    false
}

/// Reads the server's greeting and frames until the reply `body` arrives.
fn await_reply(s: &mut TcpStream, body: &[u8]) -> Result<(), String> {
    let deadline = Instant::now() + STEP;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply_seen(&buf, body) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no reply to the raw request".into());
        }
        s.set_read_timeout(Some(left))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        match s.read(&mut chunk) {
            Ok(0) => return Err("EOF before the reply".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted || is_timeout(&e) => {}
            Err(e) => return Err(format!("error before the reply: {e}")),
        }
    }
    Ok(())
}

type Client = JoinHandle<Result<Outcome, String>>;

fn spawn_scripted(
    server: SocketAddr,
    name: &str,
    script: Vec<u8>,
    half_close: bool,
    expect: Expect,
) -> Client {
    let name = name.to_owned();
    thread::spawn(move || scripted(server, name, script, half_close, expect))
}

/// Every short-lived bad client: random bytes, greeting + garbage,
/// slowloris, idle, half-closes.
fn launch_bad_clients(server: SocketAddr) -> Vec<Client> {
    let mut clients = Vec::new();
    let mut rng = XorShift::new(0x5EED_0FBA_DB17_E5A5);
    // Lengths around the greeting's checkpoints (1, 10, 12, 64 bytes), the
    // read chunk (64 KiB), then random ones up to 256 KiB.
    let fixed = [
        1usize, 9, 10, 11, 12, 63, 64, 65, 4096, 65_535, 65_536, 65_537,
    ];
    for i in 0..RANDOM_CLIENTS {
        let len = match fixed.get(i) {
            Some(&n) => n,
            None => 1 + (rng.next() % (256 * 1024)) as usize,
        };
        let bytes = rng.bytes(len);
        clients.push(spawn_scripted(
            server,
            &format!("random-{i} ({len} B)"),
            bytes,
            false,
            Expect::Refused(&[]),
        ));
    }

    let g = greeting();
    let mut curve = g;
    curve[12..17].copy_from_slice(b"CURVE");
    let mut huge_command = vec![0x06]; // LONG | COMMAND
    huge_command.extend_from_slice(&HUGE_CLAIM.to_be_bytes());
    huge_command.extend_from_slice(&[0xCD; 1000]);
    let garbage: Vec<(&str, Vec<u8>, &'static [&'static str])> = vec![
        ("greeting+random", concat(&[&g, &rng.bytes(1000)]), &[]),
        (
            "greeting+random-70KiB",
            concat(&[&g, &rng.bytes(70_000)]),
            &[],
        ),
        (
            "greeting+0xFF",
            concat(&[&g, &[0xFF; 300]]),
            &["MalformedFrame"],
        ),
        (
            "greeting+http",
            concat(&[&g, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
            &["MalformedFrame"],
        ),
        (
            "greeting+message-before-ready",
            concat(&[&g, &[0x00, 3, b'a', b'b', b'c']]),
            &["UnexpectedCommand"],
        ),
        (
            "greeting+command-name-overflow",
            concat(&[&g, &[0x04, 2, 9, b'R']]),
            &["MalformedCommand"],
        ),
        (
            "greeting+ready-bogus-type",
            concat(&[&g, &ready(Some("BOGUS"))]),
            &["IncompatibleSocketType"],
        ),
        (
            "greeting+ready-without-type",
            concat(&[&g, &ready(None)]),
            &["MissingSocketType"],
        ),
        (
            "greeting+truncated-long-header",
            concat(&[&g, &[0x06, 0, 0]]),
            &["HandshakeTimeout"],
        ),
        (
            // No limit: the handshake timer ends it; a limit refuses it at once.
            "greeting+2^62-command",
            concat(&[&g, &huge_command]),
            &["HandshakeTimeout", "MessageTooLarge"],
        ),
        (
            "curve-greeting+garbage",
            concat(&[&curve, &rng.bytes(500)]),
            &["MechanismMismatch"],
        ),
    ];
    for (name, script, reasons) in garbage {
        clients.push(spawn_scripted(
            server,
            name,
            script,
            false,
            Expect::Refused(reasons),
        ));
    }

    clients.push(thread::spawn(move || slowloris(server)));
    clients.push(spawn_scripted(
        server,
        "idle",
        Vec::new(),
        false,
        Expect::Refused(&["HandshakeTimeout"]),
    ));
    clients.push(spawn_scripted(
        server,
        "half-close-at-once",
        Vec::new(),
        true,
        Expect::Eof,
    ));
    clients.push(spawn_scripted(
        server,
        "half-close-after-greeting",
        g.to_vec(),
        true,
        Expect::Eof,
    ));
    clients
}

// ----- the good client and the server -----

/// A REQ in its own context and thread, making round trips with varied
/// payloads until `stop`; reports each completed one on `progress`.
fn spawn_good_client(
    endpoint: String,
    stop: Arc<AtomicBool>,
    progress: mpsc::Sender<usize>,
) -> JoinHandle<Result<usize, String>> {
    thread::spawn(move || {
        let ctx = Context::new();
        let req = ctx
            .socket(SocketType::Req)
            .map_err(|e| format!("socket: {e}"))?;
        req.set_linger(Some(Duration::ZERO)).unwrap();
        req.connect(&endpoint)
            .map_err(|e| format!("connect: {e}"))?;
        let mut rng = XorShift::new(0x600D);
        let mut done = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let mut body = format!("request {done} ").into_bytes();
            let extra = (rng.next() % 2048) as usize;
            body.extend_from_slice(&rng.bytes(extra));
            let request = Message::from(body);
            req.send_timeout(request.clone(), STEP)
                .map_err(|e| format!("send #{done}: {}", e.error))?;
            let reply = req
                .recv_timeout(STEP)
                .map_err(|e| format!("recv #{done}: {e}"))?;
            if reply != request {
                return Err(format!("reply #{done} does not match its request"));
            }
            done += 1;
            let _ = progress.send(done);
        }
        Ok(done)
    })
}

/// Echoes every request (REP) or routed message (ROUTER) until `stop`.
fn spawn_server(
    socket: Arc<ferrozmq::Socket>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Result<u64, String>> {
    thread::spawn(move || {
        let mut served = 0;
        while !stop.load(Ordering::Relaxed) {
            match socket.recv_timeout(Duration::from_millis(50)) {
                Ok(m) => {
                    socket
                        .send_timeout(m, STEP)
                        .map_err(|e| format!("reply: {}", e.error))?;
                    served += 1;
                }
                Err(Error::TimedOut) => {}
                Err(e) => return Err(format!("server recv: {e}")),
            }
        }
        Ok(served)
    })
}

/// Waits until the good client has reported `target` round trips, it
/// failed (its channel closed), or `deadline`. Returns the last count.
fn wait_progress(rx: &mpsc::Receiver<usize>, last: &mut usize, target: usize, deadline: Instant) {
    while *last < target {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(n) => *last = n,
            Err(_) => return,
        }
    }
    // Take whatever else is already there.
    while let Ok(n) = rx.try_recv() {
        *last = n;
    }
}

// ----- monitor bookkeeping -----

fn reason_name(r: &ProtocolError) -> &'static str {
    match r {
        ProtocolError::BadSignature => "BadSignature",
        ProtocolError::UnsupportedVersion { .. } => "UnsupportedVersion",
        ProtocolError::MechanismMismatch { .. } => "MechanismMismatch",
        ProtocolError::IncompatibleSocketType { .. } => "IncompatibleSocketType",
        ProtocolError::MissingSocketType => "MissingSocketType",
        ProtocolError::MalformedCommand(_) => "MalformedCommand",
        ProtocolError::MalformedFrame(_) => "MalformedFrame",
        ProtocolError::UnexpectedCommand(_) => "UnexpectedCommand",
        ProtocolError::MessageTooLarge { .. } => "MessageTooLarge",
        ProtocolError::HandshakeTimeout => "HandshakeTimeout",
        ProtocolError::HeartbeatTimeout => "HeartbeatTimeout",
        ProtocolError::PeerError(_) => "PeerError",
        ProtocolError::DuplicateRoutingId => "DuplicateRoutingId",
        ProtocolError::InboundBudget { .. } => "InboundBudget",
        _ => "other",
    }
}

fn is_terminal(k: &EventKind) -> bool {
    matches!(
        k,
        EventKind::HandshakeFailed { .. } | EventKind::Disconnected { .. }
    )
}

/// Events per endpoint (accepted peers are named by their address).
type Events = HashMap<String, Vec<EventKind>>;

/// Drains the monitor until every peer in `peers` has a terminal event,
/// or `deadline`. Returns false on timeout.
fn collect_events(
    mon: &crossbeam_channel::Receiver<MonitorEvent>,
    events: &mut Events,
    peers: &[String],
    deadline: Instant,
) -> bool {
    let done = |events: &Events| {
        peers
            .iter()
            .all(|p| events.get(p).is_some_and(|ks| ks.iter().any(is_terminal)))
    };
    while !done(events) {
        let left = deadline.saturating_duration_since(Instant::now());
        match mon.recv_timeout(left) {
            Ok(ev) => events.entry(ev.endpoint).or_default().push(ev.kind),
            Err(_) => return false,
        }
    }
    for ev in mon.try_iter() {
        events.entry(ev.endpoint).or_default().push(ev.kind);
    }
    true
}

/// Checks one bad peer's events against its expectation; returns the
/// name of the reason it was dropped for, for the summary.
fn check_peer(o: &Outcome, kinds: &[EventKind]) -> Result<String, String> {
    if !kinds.iter().any(|k| matches!(k, EventKind::Accepted)) {
        return Err(format!("no Accepted event: {kinds:?}"));
    }
    let terminal: Vec<&EventKind> = kinds.iter().filter(|k| is_terminal(k)).collect();
    let [end] = terminal[..] else {
        return Err(format!("expected one terminal event, got {terminal:?}"));
    };
    let handshaken = kinds
        .iter()
        .any(|k| matches!(k, EventKind::HandshakeSucceeded));
    match (o.expect, end) {
        (Expect::Refused(allowed), EventKind::HandshakeFailed { reason }) => {
            let name = reason_name(reason);
            if !allowed.is_empty() && !allowed.contains(&name) {
                return Err(format!(
                    "refused for {reason:?}, expected one of {allowed:?}"
                ));
            }
            if handshaken {
                return Err("refused after HandshakeSucceeded".into());
            }
            Ok(format!("HandshakeFailed({name})"))
        }
        (
            Expect::Eof,
            EventKind::Disconnected {
                reason: None,
                error: None,
            },
        ) if !handshaken => Ok("Disconnected(EOF)".into()),
        (Expect::HugeClaim(limit), EventKind::Disconnected { reason, error }) if handshaken => {
            match (limit, reason) {
                (
                    Some(limit),
                    Some(ProtocolError::MessageTooLarge {
                        size: HUGE_CLAIM,
                        limit: l,
                    }),
                ) if *l == limit => Ok("Disconnected(MessageTooLarge)".into()),
                (None, None) if error.is_none() => Ok("Disconnected(EOF)".into()),
                _ => Err(format!("unexpected end: {reason:?} / {error:?}")),
            }
        }
        _ => Err(format!("expected {:?}, got {end:?}", o.expect)),
    }
}

// ----- the attack -----

fn attack(ty: SocketType, maxmsgsize: Option<u64>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ctx = Context::new();
    let server = ctx.socket(ty).expect("server socket");
    server.set_handshake_ivl(HANDSHAKE_IVL).unwrap();
    server.set_maxmsgsize(maxmsgsize).unwrap();
    server.set_linger(Some(Duration::ZERO)).unwrap();
    let mon = server.monitor();
    let endpoint = server.bind("tcp://127.0.0.1:*").expect("bind");
    let addr: SocketAddr = endpoint
        .trim_start_matches("tcp://")
        .parse()
        .expect("bound address");

    let server_stop = Arc::new(AtomicBool::new(false));
    let server_thread = spawn_server(Arc::new(server), server_stop.clone());
    let good_stop = Arc::new(AtomicBool::new(false));
    let (progress_tx, progress) = mpsc::channel();
    let good = spawn_good_client(endpoint.clone(), good_stop.clone(), progress_tx);

    // The good client is up and served before the attack starts.
    let mut round_trips = 0;
    wait_progress(&progress, &mut round_trips, 1, Instant::now() + PHASE);
    if round_trips < 1 {
        good_stop.store(true, Ordering::Relaxed);
        panic!("good client never got a first reply: {:?}", good.join());
    }
    let rss_before = proc_kib("VmRSS:");
    let hwm_before = proc_kib("VmHWM:");
    let mut rss_peak = rss_before;
    let mut sample = || {
        if let Some(now) = proc_kib("VmRSS:") {
            rss_peak = rss_peak.max(Some(now));
        }
    };

    // ----- attack -----
    let start = Instant::now();
    let at_start = round_trips;
    let (sent_tx, sent_rx) = mpsc::channel();
    let (leave_tx, leave_rx) = mpsc::channel();
    let huge = thread::spawn(move || huge_claim(addr, maxmsgsize, sent_tx, leave_rx));
    let clients = launch_bad_clients(addr);
    let _ = sent_rx.recv_timeout(PHASE);
    sample();
    let mut results: Vec<Result<Outcome, String>> = clients
        .into_iter()
        .map(|c| c.join().unwrap_or_else(|_| Err("client panicked".into())))
        .collect();
    sample();
    wait_progress(&progress, &mut round_trips, 0, start);
    let while_short_lived = round_trips - at_start;
    let short_lived_took = start.elapsed();
    // The huge claim stays connected until the good client has shown it
    // is still being served.
    wait_progress(
        &progress,
        &mut round_trips,
        at_start + GOOD_ROUND_TRIPS,
        Instant::now() + PHASE,
    );
    sample();
    let _ = leave_tx.send(());
    results.push(
        huge.join()
            .unwrap_or_else(|_| Err("huge-claim client panicked".into())),
    );
    sample();

    // Every raw client saw its end.
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(o) => outcomes.push(o),
            Err(e) => failures.push(e),
        }
    }
    let peers: Vec<String> = outcomes.iter().map(|o| o.peer.clone()).collect();
    let mut events = Events::new();
    let complete = collect_events(&mon, &mut events, &peers, Instant::now() + PHASE);
    wait_progress(&progress, &mut round_trips, 0, start);
    let during_attack = round_trips - at_start;
    let attack_took = start.elapsed();
    sample();
    let rss_after = proc_kib("VmRSS:");
    let hwm_after = proc_kib("VmHWM:");

    // ----- wind down, then judge -----
    good_stop.store(true, Ordering::Relaxed);
    let good_result = good.join().expect("good client thread");
    server_stop.store(true, Ordering::Relaxed);
    let served = server_thread.join().expect("server thread");

    let mut reasons: HashMap<String, usize> = HashMap::new();
    for o in &outcomes {
        let kinds = events.get(&o.peer).map(Vec::as_slice).unwrap_or(&[]);
        match check_peer(o, kinds) {
            Ok(r) => *reasons.entry(r).or_default() += 1,
            Err(e) => failures.push(format!("{} ({}): {e}", o.name, o.peer)),
        }
        if o.took > PHASE * 3 {
            failures.push(format!("{}: took {:?} to be dropped", o.name, o.took));
        }
        if o.name == "slowloris" && o.sent >= 64 {
            failures.push("slowloris finished its greeting before being dropped".into());
        }
    }
    // The good client's connection (the only other accepted peer) was
    // never dropped during the attack.
    for (ep, kinds) in &events {
        if !peers.contains(ep) && kinds.iter().any(is_terminal) {
            failures.push(format!("non-attacker {ep} was dropped: {kinds:?}"));
        }
    }
    let expected_bad = RANDOM_CLIENTS + 11 + 5;

    let mib = |k: Option<u64>| {
        k.map_or("n/a".to_string(), |k| {
            format!("{:.1} MiB", k as f64 / 1024.0)
        })
    };
    eprintln!(
        "[{ty:?} server, maxmsgsize {maxmsgsize:?}] {} bad clients dropped in {attack_took:?} \
         (short-lived ones within {short_lived_took:?}); good client: {during_attack} round trips \
         during the attack ({while_short_lived} while the short-lived attackers were active), \
         {served:?} served in all",
        outcomes.len()
    );
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort();
    eprintln!("  drop reasons: {reasons:?}");
    let ends: HashMap<String, usize> = outcomes.iter().fold(HashMap::new(), |mut m, o| {
        *m.entry(o.ended.label()).or_default() += 1;
        m
    });
    eprintln!("  raw clients saw: {ends:?}");
    eprintln!(
        "  VmRSS before {}, peak sampled {}, after {}; VmHWM before {}, after {}",
        mib(rss_before),
        mib(rss_peak),
        mib(rss_after),
        mib(hwm_before),
        mib(hwm_after)
    );

    assert!(
        failures.is_empty(),
        "failures:\n  {}",
        failures.join("\n  ")
    );
    assert!(complete, "not every bad peer got a terminal monitor event");
    assert_eq!(outcomes.len(), expected_bad, "bad clients accounted for");
    let good_total = good_result.unwrap_or_else(|e| panic!("good client failed: {e}"));
    assert!(good_total >= round_trips);
    assert!(
        during_attack >= GOOD_ROUND_TRIPS,
        "good client made only {during_attack} round trips during the attack"
    );
    served.unwrap_or_else(|e| panic!("server failed: {e}"));
    if let (Some(before), Some(peak), Some(after)) = (rss_before, rss_peak, rss_after) {
        let growth = peak.max(after).saturating_sub(before);
        assert!(
            growth < RSS_LIMIT_KIB,
            "VmRSS grew by {growth} KiB (limit {RSS_LIMIT_KIB} KiB)"
        );
    }
    if let (Some(before), Some(after)) = (hwm_before, hwm_after) {
        let growth = after.saturating_sub(before);
        assert!(
            growth < RSS_LIMIT_KIB,
            "VmHWM grew by {growth} KiB (limit {RSS_LIMIT_KIB} KiB)"
        );
    }
}
