//! The roles a child process can play, parsed from its command line:
//! `bench <server|client|solo> <impl> <role> <args…>`.

use std::time::Duration;

/// One end of one measurement.
#[derive(Clone, Debug)]
pub enum Role {
    /// REQ/REP latency, bound end: echoes `size`-byte requests forever;
    /// with `heartbeat`, sends ZMTP PINGs that often (see
    /// [`HEARTBEAT_TIMEOUT`]).
    RepServer {
        bind: String,
        size: usize,
        heartbeat: Option<Duration>,
    },
    /// REQ/REP latency, connecting end: round trips for `secs` after a
    /// warm-up; reports `rtt_ns` (mean) and `count`.
    ReqClient { ep: String, size: usize, secs: f64 },
    /// REQ/REP tail latency, connecting end: after a warm-up, `count`
    /// round trips, each timed on its own; reports `count`, `p50_ns`,
    /// `p99_ns`, `p999_ns` and `max_ns` (see
    /// [`crate::child::time_round_trips`]). With `heartbeat`, as
    /// `RepServer`.
    TailClient {
        ep: String,
        size: usize,
        count: usize,
        heartbeat: Option<Duration>,
    },
    /// PUSH→PULL, bound end: counts `size`-byte messages until an empty one;
    /// reports `count` and `last_ns` (wall clock at the end marker).
    PullServer { bind: String, size: usize },
    /// PUSH→PULL, connecting end: sends for `secs`, then an empty end
    /// marker; reports `start_ns` (wall clock before the first send) and
    /// `count`.
    PushClient { ep: String, size: usize, secs: f64 },
    /// ROUTER echo server for many REQ clients.
    RouterEcho { bind: String },
    /// REQ/REP over `inproc://`, both ends in this process (a thread
    /// each): as `ReqClient`, reports `count` and `rtt_ns`.
    InprocLat { size: usize, secs: f64 },
    /// PUSH→PULL over `inproc://`, a thread each: as `PushClient` and
    /// `PullServer`, timed in-process; reports `count` and `rate`.
    InprocThr { size: usize, secs: f64 },
    /// `clients` REQ sockets driven by one thread (a poller, or tasks on one
    /// runtime thread) in one process, round trips
    /// of `size` bytes for `secs`; reports `rate` (round trips/s, all
    /// clients together) and `count`.
    ReqMany {
        ep: String,
        clients: usize,
        size: usize,
        secs: f64,
    },
    /// ferrozmq's tokio adapter: `clients` REQ sockets, each an
    /// `AsyncSocket` in a task of one current-thread runtime, round trips
    /// of `size` bytes for `secs` after a warm-up; reports `count`, `rate`
    /// (round trips/s, all clients) and `rtt_ns` (one client's mean round
    /// trip). zmq.rs plays the same rows with its `req`/`req-many`, which
    /// are async on the same runtime already.
    AsyncReq {
        ep: String,
        clients: usize,
        size: usize,
        secs: f64,
    },
    /// As `ReqMany`, but each client on its own thread (libzmq's and
    /// ferrozmq's blocking style; zmq.rs does not play this role).
    ReqThreads {
        ep: String,
        clients: usize,
        size: usize,
        secs: f64,
    },
    /// ROUTER that waits for one message from each of `n` peers (as a
    /// CURVE server in the handshake row); reports
    /// `base_rss_kb` (before), `all_in_ns` (wall clock at the n-th) and
    /// `rss_kb` (after they settled).
    RouterCount { bind: String, n: usize },
    /// `n` DEALER sockets connecting at once and sending one message each
    /// (as CURVE clients in the handshake row, their keys set beforehand);
    /// reports `start_ns` (wall clock before the first connect).
    DealerMany { ep: String, n: usize },
    /// A context with a bound and a connected socket, idle for `secs`;
    /// reports `cpu_us` (user + system over that time).
    Idle { secs: f64 },
    /// PUB side of the PUB/SUB rows, an XPUB (so that it can see the
    /// subscriptions arrive: no slow joiner, no sleep): binds, reports
    /// `endpoint`, waits for `subscriptions` subscription messages (verbose,
    /// so duplicates count), then publishes for `secs` (see [`PubMode`]);
    /// reports `start_ns` (wall clock before the first send), `count`,
    /// `rate` (sends/s over the send loop) and `cpu_us` (user + system of
    /// the whole process over the send loop); ferrozmq also `dropped_hwm`.
    Publisher {
        bind: String,
        size: usize,
        subscriptions: usize,
        secs: f64,
        mode: PubMode,
    },
    /// `k` SUB sockets in one process, each on its own thread (a task on
    /// the one runtime thread for zmq.rs), connected to `ep`; see
    /// [`SubMode`]. Reports `count` (messages received, all counted
    /// subscribers together) and `last_ns` (wall clock at the last counted
    /// subscriber's last message).
    Subscribers {
        ep: String,
        k: usize,
        size: usize,
        mode: SubMode,
    },
}

/// What a [`Role::Publisher`] publishes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PubMode {
    /// `size`-byte bodies with `xpub_nodrop` (a send waits for room rather
    /// than dropping), then one end marker: the 8-byte count sent.
    Fanout,
    /// 64-byte messages whose first [`TOPIC_DIGITS`] bytes are a random
    /// number below 10^6 (1 % of them below [`MATCH_SUBSCRIPTIONS`], the
    /// subscribed prefixes); drops at the HWM as PUB does; no end marker.
    Match,
    /// As `Fanout` but dropping at the HWM (PUB's default), and then the
    /// end marker again every millisecond, since any one copy may be
    /// dropped, until the parent lets go.
    Slow,
}

/// What a [`Role::Subscribers`] process does with its `k` SUB sockets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SubMode {
    /// Subscribe to everything; each receives until the end marker and
    /// must have received exactly the count it carries, or the run fails.
    Exact,
    /// Subscribe to everything; each receives until the first end marker
    /// (drops allowed). With `slow_rate` > 0, the last of the `k` reads at
    /// most that many messages per second (it sleeps to keep to it), is not
    /// counted and not waited for.
    Lossy { slow_rate: f64 },
    /// Subscriber `i` subscribes to the [`MATCH_PREFIXES`] prefixes
    /// `i × MATCH_PREFIXES + j`, in [`TOPIC_DIGITS`] digits, and receives
    /// without counting until the parent lets go.
    Match,
}

/// Prefixes each subscriber of the matching row subscribes to.
pub const MATCH_PREFIXES: usize = 100;
/// Subscribers of the matching row.
pub const MATCH_SUBSCRIBERS: usize = 100;
/// All subscriptions of the matching row: prefixes `000000` to `009999`.
pub const MATCH_SUBSCRIPTIONS: usize = MATCH_PREFIXES * MATCH_SUBSCRIBERS;
/// Topic digits in the matching row: topics are below 10^6, so 1 % of them
/// start with a subscribed prefix.
pub const TOPIC_DIGITS: usize = 6;

/// A topic or prefix of the matching row.
pub fn topic(n: usize) -> String {
    format!("{n:0width$}", width = TOPIC_DIGITS)
}

/// The end marker of the PUB/SUB rows: the 8-byte count of messages
/// published (bodies are 64 bytes or more, so it cannot be mistaken).
pub fn end_marker(count: u64) -> [u8; 8] {
    count.to_le_bytes()
}

/// The count an end marker carries, or `None` for a body.
pub fn parse_end_marker(m: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(m.try_into().ok()?))
}

/// A small fast pseudo-random generator (xorshift64*): the matching row's
/// topics, with no dependency and the same sequence for every
/// implementation.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % n
    }
}

/// The matching row's messages, made before timing so that the send loop
/// measures the library and not formatting: 64 bytes each, a random topic
/// then payload bytes; the publisher cycles through them.
pub fn match_messages() -> Vec<Vec<u8>> {
    let mut rng = Rng::new();
    (0..1 << 16)
        .map(|_| {
            let mut m = topic(rng.below(1_000_000) as usize).into_bytes();
            m.resize(64, b'.');
            m
        })
        .collect()
}

/// One subscriber's bookkeeping in the PUB/SUB rows, shared by the
/// implementations: counts bodies, checks sizes and the end marker, and
/// paces the slow subscriber.
pub struct SubCount {
    size: usize,
    exact: bool,
    slow_rate: Option<f64>,
    started: Option<std::time::Instant>,
    /// Bodies received.
    pub n: u64,
}

impl SubCount {
    /// `slow`: this is the slow subscriber of a [`SubMode::Lossy`] run.
    pub fn new(size: usize, mode: SubMode, slow: bool) -> SubCount {
        let slow_rate = match mode {
            SubMode::Lossy { slow_rate } if slow && slow_rate > 0.0 => Some(slow_rate),
            _ => None,
        };
        SubCount {
            size,
            exact: mode == SubMode::Exact,
            slow_rate,
            started: None,
            n: 0,
        }
    }

    /// Takes one message of `len` bytes whose first frame is `first`;
    /// `Ok(true)` at the end marker.
    pub fn take(&mut self, len: usize, first: &[u8]) -> Result<bool, String> {
        if let Some(count) = (len == 8).then(|| parse_end_marker(first)).flatten() {
            if self.exact && count != self.n {
                return Err(format!(
                    "a subscriber received {} of the {count} messages published",
                    self.n
                ));
            }
            return Ok(true);
        }
        if len != self.size {
            return Err(format!("message {} has {len} bytes", self.n));
        }
        self.n += 1;
        Ok(false)
    }

    /// For the slow subscriber: how long to sleep now to stay at its rate
    /// (sleeping until the n-th message is due, rather than a fixed sleep
    /// per message, keeps the rate right whatever the sleep granularity).
    pub fn pace(&mut self) -> Option<Duration> {
        let rate = self.slow_rate?;
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        Duration::from_secs_f64(self.n as f64 / rate).checked_sub(started.elapsed())
    }
}

impl Role {
    /// Parses `<role> <args…>`.
    pub fn parse(args: &[String]) -> Result<Role, String> {
        let arg = |i: usize| -> Result<&str, String> {
            args.get(i)
                .map(String::as_str)
                .ok_or_else(|| format!("missing argument {i} for {args:?}"))
        };
        let num = |i: usize| -> Result<usize, String> {
            arg(i)?
                .parse()
                .map_err(|_| format!("argument {i} of {args:?} is not a number"))
        };
        let secs = |i: usize| -> Result<f64, String> {
            arg(i)?
                .parse()
                .map_err(|_| format!("argument {i} of {args:?} is not a number of seconds"))
        };
        let s = |i: usize| arg(i).map(str::to_owned);
        // A heartbeat interval in ms; absent or 0 is none.
        let heartbeat = |i: usize| -> Result<Option<Duration>, String> {
            match args.get(i) {
                None => Ok(None),
                Some(_) => Ok(Some(num(i)? as u64)
                    .filter(|&ms| ms > 0)
                    .map(Duration::from_millis)),
            }
        };
        Ok(match arg(0)? {
            "rep" => Role::RepServer {
                bind: s(1)?,
                size: num(2)?,
                heartbeat: heartbeat(3)?,
            },
            "req-tail" => Role::TailClient {
                ep: s(1)?,
                size: num(2)?,
                count: Some(num(3)?)
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("no round trips to time in {args:?}"))?,
                heartbeat: heartbeat(4)?,
            },
            "req" => Role::ReqClient {
                ep: s(1)?,
                size: num(2)?,
                secs: secs(3)?,
            },
            "pull" => Role::PullServer {
                bind: s(1)?,
                size: num(2)?,
            },
            "push" => Role::PushClient {
                ep: s(1)?,
                size: num(2)?,
                secs: secs(3)?,
            },
            "router-echo" => Role::RouterEcho { bind: s(1)? },
            "inproc-lat" => Role::InprocLat {
                size: num(1)?,
                secs: secs(2)?,
            },
            "inproc-thr" => Role::InprocThr {
                size: num(1)?,
                secs: secs(2)?,
            },
            "req-many" => Role::ReqMany {
                ep: s(1)?,
                clients: num(2)?,
                size: num(3)?,
                secs: secs(4)?,
            },
            "async-req" => Role::AsyncReq {
                ep: s(1)?,
                clients: num(2)?,
                size: num(3)?,
                secs: secs(4)?,
            },
            "req-threads" => Role::ReqThreads {
                ep: s(1)?,
                clients: num(2)?,
                size: num(3)?,
                secs: secs(4)?,
            },
            "router-count" => Role::RouterCount {
                bind: s(1)?,
                n: num(2)?,
            },
            "dealer-many" => Role::DealerMany {
                ep: s(1)?,
                n: num(2)?,
            },
            "idle" => Role::Idle { secs: secs(1)? },
            "xpub" => Role::Publisher {
                bind: s(1)?,
                size: num(2)?,
                subscriptions: num(3)?,
                secs: secs(4)?,
                mode: match arg(5)? {
                    "fanout" => PubMode::Fanout,
                    "match" => PubMode::Match,
                    "slow" => PubMode::Slow,
                    m => return Err(format!("unknown publisher mode {m}")),
                },
            },
            "subs" => Role::Subscribers {
                ep: s(1)?,
                k: num(2)?,
                size: num(3)?,
                mode: match arg(4)? {
                    "exact" => SubMode::Exact,
                    "lossy" => SubMode::Lossy {
                        slow_rate: secs(5)?,
                    },
                    "match" => SubMode::Match,
                    m => return Err(format!("unknown subscriber mode {m}")),
                },
            },
            r => return Err(format!("unknown role {r}")),
        })
    }

    /// The longest this child may run before its watchdog ends it.
    pub fn time_limit(&self) -> Duration {
        let secs = match self {
            Role::ReqClient { secs, .. }
            | Role::PushClient { secs, .. }
            | Role::InprocLat { secs, .. }
            | Role::InprocThr { secs, .. }
            | Role::ReqMany { secs, .. }
            | Role::ReqThreads { secs, .. }
            | Role::AsyncReq { secs, .. }
            | Role::Idle { secs }
            | Role::Publisher { secs, .. } => *secs,
            // A generous 1 ms per round trip.
            Role::TailClient { count, .. } => tail_secs(*count),
            _ => 0.0,
        };
        // Servers live as long as their clients, and are told when to go.
        Duration::from_secs_f64(secs + 120.0)
    }
}

/// How long the REQ/REP client warms up before timing.
pub const WARMUP: Duration = Duration::from_millis(100);

/// The slow-subscriber publisher's pace, in messages per second: well
/// within what every fast subscriber takes, so that only the slow one
/// (paced at a tenth of a fast one's rate) falls behind and drops. An
/// unpaced publisher overloads them all, and the fast subscribers' rate
/// with and without the slow one then compares two overloads.
pub const SLOW_PUB_RATE: f64 = 200_000.0;

/// Sleeps until `n` messages are due at [`SLOW_PUB_RATE`] since `start`.
pub fn pace(n: u64, start: std::time::Instant) {
    let due = Duration::from_secs_f64(n as f64 / SLOW_PUB_RATE);
    if let Some(wait) = due.checked_sub(start.elapsed()) {
        std::thread::sleep(wait);
    }
}

/// How long `count` timed round trips may take at most, in seconds: a
/// generous 1 ms each (they take 20-100 µs). Bounds the tail client's
/// watchdog and the parent's wait for it.
pub fn tail_secs(count: usize) -> f64 {
    count as f64 * 1e-3
}

/// The heartbeat interval of the tail-latency rows with heartbeats, on both
/// ends (`ZMQ_HEARTBEAT_IVL`).
pub const HEARTBEAT_IVL: Duration = Duration::from_millis(20);

/// The heartbeat timeout set with [`HEARTBEAT_IVL`] (`ZMQ_HEARTBEAT_TIMEOUT`).
/// Long, so that a scheduling hiccup on a busy machine cannot drop the
/// connection and fail the run; PINGs still go out every interval, and the
/// timeout timer is still armed after each one.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a PUSH sender waits after `connect` before timing, so that the
/// connection is up for every implementation (zmq.rs's `connect` waits for
/// the handshake; ferrozmq's and libzmq's return at once).
pub const SETTLE: Duration = Duration::from_millis(100);

/// The CURVE rows' long-term keys, in Z85, made once with
/// `zmq_curve_keypair`: the server's pair, and one pair that every client
/// shares (no ZAP handler, so the server accepts any client that completes
/// the handshake; each connection still makes its own short-term keys).
/// Fixed, so that both processes of a row know them without a channel.
pub const CURVE_SERVER_PUBLIC: &str = "-ODeAc{YGPD7l>%kl%=^rTbZE7JQueE4f2O9t2.=";
/// See [`CURVE_SERVER_PUBLIC`].
pub const CURVE_SERVER_SECRET: &str = "C6bUgmv$.&jWvBD&mbiOvLXN@Pc4XwzStgwD@2O]";
/// See [`CURVE_SERVER_PUBLIC`].
pub const CURVE_CLIENT_PUBLIC: &str = "+UuTrW#W3r(+2iLP9TmiLLEWvzw@X9Dd4@wO{)!Q";
/// See [`CURVE_SERVER_PUBLIC`].
pub const CURVE_CLIENT_SECRET: &str = "LC(D0.3&1En6/uMBuO&q%hT8515]Xh49h{C[Z7&w";

/// Replaces a `*` port by `0`, for the implementations that spell
/// "any port" that way.
pub fn star_to_zero(ep: &str) -> String {
    match ep.strip_suffix(":*") {
        Some(head) => format!("{head}:0"),
        None => ep.to_owned(),
    }
}

/// Reports an inproc throughput run: `count` and `rate` (messages/s from
/// the first send to the receipt of the last), or an error if the
/// receiver did not get what was sent.
pub fn report_inproc_rate(sent: u64, received: u64, elapsed: Duration) -> Result<(), String> {
    if received != sent {
        return Err(format!("sent {sent} messages but {received} arrived"));
    }
    crate::child::report("count", sent);
    crate::child::report("rate", sent as f64 / elapsed.as_secs_f64().max(1e-9));
    Ok(())
}
