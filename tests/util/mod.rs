//! Helpers shared by the integration tests.
//!
//! Every helper that can block is bounded by [`TIMEOUT`] (or a caller's
//! deadline), so that a library bug fails a test instead of hanging CI.
//! Each test binary includes this module with `mod util;` and uses only
//! part of it, hence the `dead_code` allowance (it covers the submodules
//! too).
//!
//! - this file: our sockets on loopback, monitor events, bounded waits;
//! - `interop` (in `interop-tests/tests/util/`, which includes this file):
//!   libzmq sockets from the `zmq` crate next to ours;
//! - [`netns`]: private network and mount namespaces, for the tests that
//!   need root;
//! - [`raw`]: ZMTP bytes built by hand, for raw peers.
#![allow(dead_code)]

pub mod netns;
pub mod pyzmq;
pub mod raw;

use crossbeam_channel::Receiver;
use ferrozmq::{Context, Error, EventKind, Message, MonitorEvent, Socket, SocketType};
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound of any single wait that is expected to succeed. Generous so
/// that a loaded 2-core CI machine running debug builds never trips it.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for something that must *not* happen (a reply that
/// should never come). Short, since it is paid in full by a passing test.
pub const SHORT: Duration = Duration::from_millis(300);

/// A fresh context.
pub fn ctx() -> Context {
    Context::new()
}

/// A socket with `rcvtimeo`/`sndtimeo` set to [`TIMEOUT`], so that even a
/// plain `send`/`recv` can never block forever.
pub fn socket(ctx: &Context, ty: SocketType) -> Socket {
    let s = ctx.socket(ty).expect("create socket");
    s.set_rcvtimeo(Some(TIMEOUT)).unwrap();
    s.set_sndtimeo(Some(TIMEOUT)).unwrap();
    s
}

/// Binds to an ephemeral loopback port and returns the concrete endpoint.
pub fn bind_local(s: &Socket) -> String {
    let ep = s.bind("tcp://127.0.0.1:*").expect("bind tcp://127.0.0.1:*");
    assert!(
        ep.starts_with("tcp://127.0.0.1:") && !ep.ends_with(":*") && !ep.ends_with(":0"),
        "bind returned {ep}"
    );
    ep
}

/// Accepts one connection, bounded by [`TIMEOUT`].
pub fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return s;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("no connection: {e}"),
        }
    }
}
/// A loopback port that was free a moment ago and is now unbound.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind std listener");
    l.local_addr().expect("local addr").port()
}

/// An endpoint on a loopback port that nothing listens on.
pub fn free_endpoint() -> String {
    format!("tcp://127.0.0.1:{}", free_port())
}

/// The port of a concrete `tcp://host:port` endpoint.
pub fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint}"))
}

/// The frames of a message as UTF-8 strings (lossy), for readable asserts.
pub fn strs(m: &Message) -> Vec<String> {
    m.iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// Receives within [`TIMEOUT`] or panics with context.
pub fn recv(s: &Socket, what: &str) -> Message {
    match s.recv_timeout(TIMEOUT) {
        Ok(m) => m,
        Err(e) => panic!("{what}: recv failed: {e:?}"),
    }
}

/// Sends within [`TIMEOUT`] or panics with context.
pub fn send(s: &Socket, msg: impl Into<Message>, what: &str) {
    if let Err(e) = s.send_timeout(msg, TIMEOUT) {
        panic!("{what}: send failed: {:?}", e.error);
    }
}

/// One REQ round trip: sends `body`, returns the reply.
pub fn round_trip(req: &Socket, body: impl Into<Message>) -> Message {
    send(req, body, "request");
    recv(req, "reply")
}

/// Waits for a monitor event satisfying `pred`, for at most `timeout`.
/// Events that do not match are kept and shown if the wait fails.
pub fn wait_event(
    rx: &Receiver<MonitorEvent>,
    timeout: Duration,
    mut pred: impl FnMut(&MonitorEvent) -> bool,
) -> MonitorEvent {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) if pred(&ev) => return ev,
            Ok(ev) => seen.push(format!("{} {:?}", ev.endpoint, ev.kind)),
            Err(_) => panic!("no matching monitor event within {timeout:?}; saw: {seen:#?}"),
        }
    }
}

/// Waits until `n` `HandshakeSucceeded` events arrived on `rx`, and returns
/// their endpoints. Each handshake may take up to [`TIMEOUT`] after the
/// previous one; on failure, every event seen is listed.
pub fn wait_handshakes(rx: &Receiver<MonitorEvent>, n: usize) -> Vec<String> {
    let mut endpoints = Vec::with_capacity(n);
    let mut seen = Vec::new();
    let mut deadline = Instant::now() + TIMEOUT;
    while endpoints.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) => {
                if matches!(ev.kind, EventKind::HandshakeSucceeded) {
                    endpoints.push(ev.endpoint.clone());
                    deadline = Instant::now() + TIMEOUT;
                }
                seen.push(ev);
            }
            Err(_) => panic!(
                "{}/{n} handshakes, then none within {TIMEOUT:?}; events: {seen:#?}",
                endpoints.len()
            ),
        }
    }
    endpoints
}

/// Runs `f` on another thread and waits at most `timeout` for its result.
/// Panics (failing the test instead of hanging it) when `f` does not finish
/// in time; a panic inside `f` is propagated. The thread takes the caller's
/// name, so that its panic messages name the test.
pub fn bounded<T: Send + 'static>(
    timeout: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let mut builder = std::thread::Builder::new();
    if let Some(name) = std::thread::current().name() {
        builder = builder.name(name.to_owned());
    }
    let handle = builder
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a thread");
    match rx.recv_timeout(timeout) {
        Ok(v) => {
            // Finished: the join is immediate.
            let _ = handle.join();
            v
        }
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
            // The closure panicked; re-raise its panic here.
            match handle.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => unreachable!("thread ended without a result"),
            }
        }
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {timeout:?}")
        }
    }
}

/// A REP server on its own thread that answers every request with
/// `[name, request frames...]`, until stopped.
pub struct RepServer {
    pub endpoint: String,
    pub name: String,
    stop: Arc<AtomicBool>,
    done: Receiver<Result<usize, String>>,
}

impl RepServer {
    /// Binds a REP on an ephemeral loopback port and starts serving.
    pub fn start(ctx: &Context, name: &str) -> RepServer {
        let rep = socket(ctx, SocketType::Rep);
        rep.set_linger(Some(Duration::ZERO)).unwrap();
        let endpoint = bind_local(&rep);
        Self::serve(rep, endpoint, name)
    }

    /// Serves on an already bound REP socket.
    pub fn serve(rep: Socket, endpoint: String, name: &str) -> RepServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, done) = crossbeam_channel::bounded(1);
        let (stop2, name2) = (stop.clone(), name.to_owned());
        std::thread::spawn(move || {
            let mut served = 0usize;
            let result = loop {
                if stop2.load(Ordering::Acquire) {
                    break Ok(served);
                }
                // A short poll so that `stop` is noticed promptly.
                match rep.recv_timeout(Duration::from_millis(50)) {
                    Ok(req) => {
                        let mut reply = Message::new();
                        reply.push_back(name2.clone());
                        reply.extend(req);
                        if let Err(e) = rep.send_timeout(reply, TIMEOUT) {
                            break Err(format!("reply failed: {:?}", e.error));
                        }
                        served += 1;
                    }
                    Err(Error::TimedOut) => {}
                    Err(Error::ContextTerminated) => break Ok(served),
                    Err(e) => break Err(format!("recv failed: {e:?}")),
                }
            };
            // Close the socket before reporting, so that a caller that
            // rebinds the endpoint after `stop` finds the listener closing.
            drop(rep);
            let _ = tx.send(result);
        });
        RepServer {
            endpoint,
            name: name.to_owned(),
            stop,
            done,
        }
    }

    /// Stops the server and returns how many requests it answered.
    pub fn stop(self) -> usize {
        self.stop.store(true, Ordering::Release);
        match self.done.recv_timeout(TIMEOUT) {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("server {} failed: {e}", self.name),
            Err(_) => panic!("server {} did not stop within {TIMEOUT:?}", self.name),
        }
    }
}

/// Number of open file descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// Number of threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .count()
}

/// One receive attempt while [`sync_subscription`] probes.
pub const PROBE_WAIT: Duration = Duration::from_millis(20);

/// The slow joiner, without sleeps: publishes `{topic}-probe` with
/// `publish` until `received` sees one, then a `{topic}-synced` marker,
/// and drains up to it. Afterwards the subscription to `topic` is in
/// place and nothing is in flight.
pub fn sync_subscription(
    what: &str,
    mut publish: impl FnMut(&[u8]),
    mut received: impl FnMut(Duration) -> Option<Vec<Vec<u8>>>,
    topic: &str,
) {
    let probe = format!("{topic}-probe").into_bytes();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "{what}: the subscription never arrived"
        );
        publish(&probe);
        if let Some(m) = received(PROBE_WAIT) {
            assert_eq!(m[0], probe, "{what}: only probes so far");
            break;
        }
    }
    let marker = format!("{topic}-synced").into_bytes();
    publish(&marker);
    loop {
        let m = received(TIMEOUT).unwrap_or_else(|| panic!("{what}: marker lost"));
        if m[0] == marker {
            return;
        }
        assert_eq!(m[0], probe, "{what}: only probes before the marker");
    }
}

/// The transports every socket type is tested over (`tests/transports.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Ipc,
    Inproc,
}

pub const TRANSPORTS: [Transport; 3] = [Transport::Tcp, Transport::Ipc, Transport::Inproc];

impl Transport {
    /// An endpoint to bind: a wildcard where the transport has one,
    /// else a name unique to this process run.
    pub fn any(self) -> String {
        match self {
            Transport::Tcp => "tcp://127.0.0.1:*".into(),
            Transport::Ipc => "ipc://*".into(),
            Transport::Inproc => unique_name("inproc://t"),
        }
    }

    /// A concrete endpoint nothing is bound to yet.
    pub fn unbound(self) -> String {
        match self {
            Transport::Tcp => free_endpoint(),
            Transport::Ipc => format!("ipc://{}", temp_path("unbound").display()),
            Transport::Inproc => unique_name("inproc://unbound"),
        }
    }
}

/// `{prefix}-{pid}-{n}`: distinct across the tests of one process and
/// across concurrently running test binaries.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits until `n` threads are blocked on `s` (an event, not a sleep).
pub fn await_blocked(s: &Socket, n: usize) {
    let deadline = Instant::now() + TIMEOUT;
    while s.blocked_threads() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} threads blocked within {TIMEOUT:?}",
            s.blocked_threads()
        );
        std::thread::yield_now();
    }
}

/// A path under the temporary directory that does not exist yet.
pub fn temp_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(unique_name(&format!("ferrozmq-test-{what}")))
}

pub fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8 ^ (i >> 8) as u8)
        .collect()
}
