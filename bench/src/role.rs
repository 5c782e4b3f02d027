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
    /// As `ReqMany`, but each client on its own thread (libzmq's and
    /// ferrozmq's blocking style; zmq.rs does not play this role).
    ReqThreads {
        ep: String,
        clients: usize,
        size: usize,
        secs: f64,
    },
    /// ROUTER that waits for one message from each of `n` peers; reports
    /// `base_rss_kb` (before), `all_in_ns` (wall clock at the n-th) and
    /// `rss_kb` (after they settled).
    RouterCount { bind: String, n: usize },
    /// `n` DEALER sockets connecting at once and sending one message each;
    /// reports `start_ns` (wall clock before the first connect).
    DealerMany { ep: String, n: usize },
    /// A context with a bound and a connected socket, idle for `secs`;
    /// reports `cpu_us` (user + system over that time).
    Idle { secs: f64 },
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
            "req-many" => Role::ReqMany {
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
            r => return Err(format!("unknown role {r}")),
        })
    }

    /// The longest this child may run before its watchdog ends it.
    pub fn time_limit(&self) -> Duration {
        let secs = match self {
            Role::ReqClient { secs, .. }
            | Role::PushClient { secs, .. }
            | Role::ReqMany { secs, .. }
            | Role::ReqThreads { secs, .. }
            | Role::Idle { secs } => *secs,
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

/// Replaces a `*` port by `0`, for the implementations that spell
/// "any port" that way.
pub fn star_to_zero(ep: &str) -> String {
    match ep.strip_suffix(":*") {
        Some(head) => format!("{head}:0"),
        None => ep.to_owned(),
    }
}
