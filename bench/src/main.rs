//! Benchmarks ferrozmq against libzmq 4.3.4 (the `zmq` crate; for the CURVE
//! rows, pyzmq's libzmq with libsodium, loaded at run time), zmq.rs (the
//! `zeromq` crate, on tokio's current-thread runtime) and, for latency, a
//! raw TCP ping-pong, and prints one markdown table of medians (and, when
//! the tail-latency rows ran, their targets with a verdict each).
//!
//! ```text
//! cargo run --release -p bench -- --all              # 5 rounds of everything
//! cargo run --release -p bench -- --quick            # 1 round, shorter runs
//! cargo run --release -p bench -- --only thr --rounds 3
//! cargo run --release -p bench -- --only tail --tail-round-trips 20000
//! cargo run --release -p bench -- --all --impls ferrozmq,libzmq
//! ```
//!
//! Both ends of every measurement run in separate processes: this binary
//! re-executes itself as `bench <server|client|solo> <impl> <role> <args…>`
//! (see `role.rs`), and the parent reads `@key value` lines from the
//! children's stdout. All traffic is on 127.0.0.1 with ports chosen by the
//! OS. Every wait is bounded (children also have a watchdog), and children
//! are killed when a run fails. Rounds go over all measurements in turn, and
//! within a measurement the implementations take turns (in an order that
//! rotates each round), so that machine noise is spread over all of them.

mod attack;
mod child;
mod ferro;
mod libzmq;
mod libzmq_curve;
mod rawtcp;
mod role;
mod zmqrs;

use role::{Role, HEARTBEAT_IVL};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// An implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Impl {
    Ferro,
    Libzmq,
    /// The CURVE rows' libzmq: pyzmq's, loaded at run time (see
    /// `libzmq_curve.rs`), since the vendored one has no CURVE.
    LibzmqCurve,
    ZmqRs,
    Tcp,
}

impl Impl {
    const ALL: [Impl; 5] = [
        Impl::Ferro,
        Impl::Libzmq,
        Impl::LibzmqCurve,
        Impl::ZmqRs,
        Impl::Tcp,
    ];

    /// The name on child command lines and in `--impls`.
    fn arg(self) -> &'static str {
        match self {
            Impl::Ferro => "ferrozmq",
            Impl::Libzmq => "libzmq",
            Impl::LibzmqCurve => "libzmq-curve",
            Impl::ZmqRs => "zmqrs",
            Impl::Tcp => "tcp",
        }
    }

    /// The name in the table.
    fn label(self) -> &'static str {
        match self {
            Impl::Ferro => "ferrozmq",
            Impl::Libzmq => "libzmq 4.3.4",
            Impl::LibzmqCurve => "libzmq with CURVE (pyzmq's)",
            Impl::ZmqRs => "zmq.rs 0.7 (tokio current-thread)",
            Impl::Tcp => "raw TCP (floor)",
        }
    }

    fn parse(s: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.arg() == s)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server" | "client" | "solo" | "curve-server" | "curve-client") => {
            child::set_curve(match args[0].as_str() {
                "curve-server" => Some(child::Curve::Server),
                "curve-client" => Some(child::Curve::Client),
                _ => None,
            });
            child_main(&args[1..])
        }
        _ => parent_main(&args),
    }
}

/// A child process: plays one role, reports, and waits to be let go.
fn child_main(args: &[String]) -> ExitCode {
    let Some(imp) = args.first().and_then(|s| Impl::parse(s)) else {
        child::fail(&format!("unknown implementation in {args:?}"));
    };
    let role = Role::parse(&args[1..]).unwrap_or_else(|e| child::fail(&e));
    child::start_guards(role.time_limit());
    child::raise_fd_limit();
    let result = match imp {
        Impl::Ferro => ferro::run(&role),
        Impl::Libzmq => libzmq::run(&role),
        Impl::LibzmqCurve => libzmq_curve::run(&role),
        Impl::ZmqRs => zmqrs::run(&role),
        Impl::Tcp => rawtcp::run(&role),
    };
    match result {
        Ok(()) => child::park_forever(),
        Err(e) => child::fail(&e),
    }
}

// ----- the parent -----

const USAGE: &str = "usage: bench (--all | --quick | --only FILTER[,FILTER…]) \
[--quick] [--rounds N] [--tail-round-trips N] [--impls ferrozmq,libzmq,libzmq-curve,zmqrs,tcp] \
[--list]";

/// Timed round trips per tail-latency run, by default and with `--quick`.
const TAIL_ROUND_TRIPS: usize = 100_000;
const TAIL_ROUND_TRIPS_QUICK: usize = 20_000;

/// The tail-latency target on the maximum: no round trip stalled, on a
/// quiet machine.
const TAIL_MAX_TARGET_US: f64 = 5_000.0;

/// Where servers bind: loopback, any free port.
const BIND: &str = "tcp://127.0.0.1:*";

struct Opts {
    rounds: usize,
    quick: bool,
    only: Vec<String>,
    impls: Vec<Impl>,
    list: bool,
    /// Timed round trips per tail-latency run.
    tail_round_trips: usize,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        rounds: 5,
        quick: false,
        only: Vec::new(),
        impls: Impl::ALL.to_vec(),
        list: false,
        tail_round_trips: TAIL_ROUND_TRIPS,
    };
    let (mut all, mut rounds, mut tail) = (false, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--all" => all = true,
            "--quick" => o.quick = true,
            "--list" => o.list = true,
            "--only" => o.only.extend(
                it.next()
                    .ok_or("--only needs a filter")?
                    .split(',')
                    .map(str::to_lowercase),
            ),
            "--rounds" => {
                rounds = Some(
                    it.next()
                        .and_then(|s| s.parse().ok())
                        .filter(|&n: &usize| n > 0)
                        .ok_or("--rounds needs a positive number")?,
                )
            }
            "--tail-round-trips" => {
                tail = Some(
                    it.next()
                        .and_then(|s| s.replace(['_', ','], "").parse().ok())
                        .filter(|&n: &usize| n > 0)
                        .ok_or("--tail-round-trips needs a positive number")?,
                )
            }
            "--impls" => {
                o.impls = it
                    .next()
                    .ok_or("--impls needs a list")?
                    .split(',')
                    .map(|s| Impl::parse(s).ok_or(format!("unknown implementation {s}")))
                    .collect::<Result<_, _>>()?
            }
            "-h" | "--help" => return Err(String::new()),
            a => return Err(format!("unknown argument {a}")),
        }
    }
    if !all && !o.quick && o.only.is_empty() && !o.list {
        return Err("say what to run".into());
    }
    o.rounds = rounds.unwrap_or(if o.quick { 1 } else { 5 });
    o.tail_round_trips = tail.unwrap_or(if o.quick {
        TAIL_ROUND_TRIPS_QUICK
    } else {
        TAIL_ROUND_TRIPS
    });
    Ok(o)
}

/// How a two-process row's bytes travel: the stream transport, and
/// whether inside CURVE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tr {
    Tcp,
    /// A fresh Unix socket path per run (every implementation gets the
    /// same form; zmq.rs is built without its ipc transport).
    Ipc,
    /// TCP with CURVE on both ends: the bound end is the CURVE server.
    Curve,
}

impl Tr {
    /// Where a server binds for one run.
    fn bind(self) -> String {
        match self {
            Tr::Tcp | Tr::Curve => BIND.to_owned(),
            Tr::Ipc => {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                let path = std::env::temp_dir().join(format!(
                    "ferrozmq-bench-{}-{}.sock",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                format!("ipc://{}", path.display())
            }
        }
    }

    /// The first word of the bound and the connecting child's command
    /// lines: it tells them whether to run inside CURVE, and as which end.
    fn sides(self) -> (&'static str, &'static str) {
        match self {
            Tr::Curve => ("curve-server", "curve-client"),
            Tr::Tcp | Tr::Ipc => ("server", "client"),
        }
    }

    /// After a run: children exit without destructors, so a socket file
    /// may remain.
    fn clean(bind: &str) {
        if let Some(path) = bind.strip_prefix("ipc://") {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The shape of one measurement.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Lat {
        size: usize,
        tr: Tr,
    },
    /// REQ/REP over `inproc://`, both ends in one process.
    InprocLat {
        size: usize,
    },
    /// PUSH→PULL over `inproc://`, both ends in one process.
    InprocThr {
        size: usize,
    },
    /// REQ/REP round trips, each timed: percentiles. `heartbeat`: ZMTP
    /// heartbeats every [`HEARTBEAT_IVL`] on both ends.
    Tail {
        size: usize,
        heartbeat: bool,
    },
    Thr {
        size: usize,
        tr: Tr,
    },
    /// REQ clients through an async API on one tokio current-thread
    /// runtime: ferrozmq's `tokio::AsyncSocket`, zmq.rs's own sockets. One
    /// client: the round trip; more: round trips/s.
    AsyncReq {
        clients: usize,
        size: usize,
    },
    /// `threads`: one thread per client instead of one thread for all.
    ReqMany {
        clients: usize,
        size: usize,
        threads: bool,
    },
    Conn {
        n: usize,
    },
    /// `n` CURVE clients connect at once to one ROUTER, each sending one
    /// message; then the same with NULL, for comparison.
    Handshakes {
        n: usize,
    },
    Idle,
    /// `attackers` raw peers complete the handshake with a REP server (all
    /// options at their defaults), announce a 2^34-byte body and stream it,
    /// each until dropped or `cap_mib` sent.
    Attack {
        attackers: usize,
        cap_mib: usize,
    },
    /// XPUB → `subs` SUB, `size`-byte bodies, nothing dropped: delivered
    /// messages/s end to end.
    Fanout {
        size: usize,
        subs: usize,
    },
    /// XPUB with 10,000 subscriptions (100 SUB × 100 prefixes), 1 % of
    /// topics matching: the publisher's sends/s and CPU per message.
    Match,
    /// XPUB → `subs` SUB of which one is slow (a tenth of the others'
    /// rate), against the same run without it.
    SlowSub {
        subs: usize,
    },
}

/// One measurement: a few metrics, each measured for several
/// implementations.
struct Meas {
    id: &'static str,
    title: &'static str,
    kind: Kind,
    impls: &'static [Impl],
}

/// One number a measurement yields.
struct Metric {
    name: &'static str,
    unit: &'static str,
    lower_is_better: bool,
}

const PEERS: &[Impl] = &[Impl::Ferro, Impl::Libzmq, Impl::ZmqRs];
/// The rows zmq.rs does not play: inproc (it has none) and ipc (its ipc
/// transport would pull in async-io).
const NATIVE: &[Impl] = &[Impl::Ferro, Impl::Libzmq];
const IPC_LAT: &[Impl] = &[Impl::Ferro, Impl::Libzmq, Impl::Tcp];
/// The async rows: libzmq has no async API.
const ASYNC: &[Impl] = &[Impl::Ferro, Impl::ZmqRs];
/// The CURVE rows: libzmq is pyzmq's (the vendored one has no CURVE), and
/// zmq.rs is listed as n/a (it has no CURVE).
const CURVE: &[Impl] = &[Impl::Ferro, Impl::LibzmqCurve, Impl::ZmqRs];

fn measurements() -> Vec<Meas> {
    let lat = &[Impl::Ferro, Impl::Libzmq, Impl::ZmqRs, Impl::Tcp];
    vec![
        Meas {
            id: "lat-64",
            title: "REQ/REP round trip, 64 B",
            kind: Kind::Lat {
                size: 64,
                tr: Tr::Tcp,
            },
            impls: lat,
        },
        Meas {
            id: "lat-1k",
            title: "REQ/REP round trip, 1 KiB",
            kind: Kind::Lat {
                size: 1024,
                tr: Tr::Tcp,
            },
            impls: lat,
        },
        Meas {
            id: "tail-nohb",
            title: "REQ/REP round-trip tail, 64 B, no heartbeats",
            kind: Kind::Tail {
                size: 64,
                heartbeat: false,
            },
            impls: lat,
        },
        Meas {
            id: "tail-hb",
            title: "REQ/REP round-trip tail, 64 B, heartbeats every 20 ms",
            kind: Kind::Tail {
                size: 64,
                heartbeat: true,
            },
            impls: PEERS,
        },
        Meas {
            id: "thr-64",
            title: "PUSH→PULL, 64 B",
            kind: Kind::Thr {
                size: 64,
                tr: Tr::Tcp,
            },
            impls: PEERS,
        },
        Meas {
            id: "thr-1k",
            title: "PUSH→PULL, 1 KiB",
            kind: Kind::Thr {
                size: 1024,
                tr: Tr::Tcp,
            },
            impls: PEERS,
        },
        Meas {
            id: "thr-64k",
            title: "PUSH→PULL, 64 KiB",
            kind: Kind::Thr {
                size: 64 * 1024,
                tr: Tr::Tcp,
            },
            impls: PEERS,
        },
        Meas {
            id: "ipc-lat-64",
            title: "ipc: REQ/REP round trip, 64 B (raw column: a Unix socket ping-pong)",
            kind: Kind::Lat {
                size: 64,
                tr: Tr::Ipc,
            },
            impls: IPC_LAT,
        },
        Meas {
            id: "ipc-lat-1k",
            title: "ipc: REQ/REP round trip, 1 KiB (raw column: a Unix socket ping-pong)",
            kind: Kind::Lat {
                size: 1024,
                tr: Tr::Ipc,
            },
            impls: IPC_LAT,
        },
        Meas {
            id: "ipc-thr-64",
            title: "ipc: PUSH→PULL, 64 B",
            kind: Kind::Thr {
                size: 64,
                tr: Tr::Ipc,
            },
            impls: NATIVE,
        },
        Meas {
            id: "ipc-thr-1k",
            title: "ipc: PUSH→PULL, 1 KiB",
            kind: Kind::Thr {
                size: 1024,
                tr: Tr::Ipc,
            },
            impls: NATIVE,
        },
        Meas {
            id: "ipc-thr-64k",
            title: "ipc: PUSH→PULL, 64 KiB",
            kind: Kind::Thr {
                size: 64 * 1024,
                tr: Tr::Ipc,
            },
            impls: NATIVE,
        },
        Meas {
            id: "inproc-lat-64",
            title: "inproc: REQ/REP round trip between two threads, 64 B",
            kind: Kind::InprocLat { size: 64 },
            impls: NATIVE,
        },
        Meas {
            id: "inproc-lat-1k",
            title: "inproc: REQ/REP round trip between two threads, 1 KiB",
            kind: Kind::InprocLat { size: 1024 },
            impls: NATIVE,
        },
        Meas {
            id: "inproc-thr-64",
            title: "inproc: PUSH→PULL between two threads, 64 B",
            kind: Kind::InprocThr { size: 64 },
            impls: NATIVE,
        },
        Meas {
            id: "inproc-thr-1k",
            title: "inproc: PUSH→PULL between two threads, 1 KiB",
            kind: Kind::InprocThr { size: 1024 },
            impls: NATIVE,
        },
        Meas {
            id: "req32",
            title: "32 REQ clients on one thread → ROUTER echo, 64 B",
            kind: Kind::ReqMany {
                clients: 32,
                size: 64,
                threads: false,
            },
            impls: PEERS,
        },
        Meas {
            id: "async-lat-64",
            title: "async REQ/REP round trip, 64 B, tokio current-thread",
            kind: Kind::AsyncReq {
                clients: 1,
                size: 64,
            },
            impls: ASYNC,
        },
        Meas {
            id: "async-req32",
            title: "32 async REQ clients on one tokio current-thread runtime → ROUTER echo, 64 B",
            kind: Kind::AsyncReq {
                clients: 32,
                size: 64,
            },
            impls: ASYNC,
        },
        Meas {
            id: "req32-threads",
            title: "32 REQ clients, a thread each → ROUTER echo, 64 B",
            kind: Kind::ReqMany {
                clients: 32,
                size: 64,
                threads: true,
            },
            impls: &[Impl::Ferro, Impl::Libzmq],
        },
        Meas {
            id: "attack100",
            title: "100 peers streaming a 2^34-byte announced body to a REP with default options",
            kind: Kind::Attack {
                attackers: 100,
                cap_mib: 24,
            },
            impls: PEERS,
        },
        Meas {
            id: "conn1000",
            title: "1,000 connections to one ROUTER",
            kind: Kind::Conn { n: 1000 },
            impls: PEERS,
        },
        Meas {
            id: "curve-lat-64",
            title: "CURVE: REQ/REP round trip, 64 B",
            kind: Kind::Lat {
                size: 64,
                tr: Tr::Curve,
            },
            impls: CURVE,
        },
        Meas {
            id: "curve-thr-64",
            title: "CURVE: PUSH→PULL, 64 B",
            kind: Kind::Thr {
                size: 64,
                tr: Tr::Curve,
            },
            impls: CURVE,
        },
        Meas {
            id: "curve-thr-1k",
            title: "CURVE: PUSH→PULL, 1 KiB",
            kind: Kind::Thr {
                size: 1024,
                tr: Tr::Curve,
            },
            impls: CURVE,
        },
        Meas {
            id: "curve-thr-64k",
            title: "CURVE: PUSH→PULL, 64 KiB",
            kind: Kind::Thr {
                size: 64 * 1024,
                tr: Tr::Curve,
            },
            impls: CURVE,
        },
        Meas {
            id: "curve-handshakes-1000",
            title: "CURVE: 1,000 clients connecting at once to one ROUTER (and NULL, the same)",
            kind: Kind::Handshakes { n: 1000 },
            impls: CURVE,
        },
        Meas {
            id: "idle",
            title: "Idle context (bound + connected socket)",
            kind: Kind::Idle,
            impls: PEERS,
        },
        Meas {
            id: "fanout-64-1",
            title: "PUB→SUB fan-out to 1 subscriber, 64 B",
            kind: Kind::Fanout { size: 64, subs: 1 },
            impls: PEERS,
        },
        Meas {
            id: "fanout-64-8",
            title: "PUB→SUB fan-out to 8 subscribers, 64 B",
            kind: Kind::Fanout { size: 64, subs: 8 },
            impls: PEERS,
        },
        Meas {
            id: "fanout-64-32",
            title: "PUB→SUB fan-out to 32 subscribers, 64 B",
            kind: Kind::Fanout { size: 64, subs: 32 },
            impls: PEERS,
        },
        Meas {
            id: "fanout-1k-1",
            title: "PUB→SUB fan-out to 1 subscriber, 1 KiB",
            kind: Kind::Fanout {
                size: 1024,
                subs: 1,
            },
            impls: PEERS,
        },
        Meas {
            id: "fanout-1k-8",
            title: "PUB→SUB fan-out to 8 subscribers, 1 KiB",
            kind: Kind::Fanout {
                size: 1024,
                subs: 8,
            },
            impls: PEERS,
        },
        Meas {
            id: "fanout-1k-32",
            title: "PUB→SUB fan-out to 32 subscribers, 1 KiB",
            kind: Kind::Fanout {
                size: 1024,
                subs: 32,
            },
            impls: PEERS,
        },
        Meas {
            id: "match10k",
            title:
                "PUB matching 10,000 subscriptions (100 SUB × 100 prefixes), 1 % of topics match",
            kind: Kind::Match,
            impls: PEERS,
        },
        Meas {
            id: "slowsub",
            title: "PUB→8 SUB, one reading at a tenth of the rate, 64 B",
            kind: Kind::SlowSub { subs: 8 },
            impls: PEERS,
        },
    ]
}

fn metrics(kind: Kind) -> Vec<Metric> {
    let m = |name, unit, lower_is_better| Metric {
        name,
        unit,
        lower_is_better,
    };
    match kind {
        Kind::Lat { .. } | Kind::InprocLat { .. } | Kind::AsyncReq { clients: 1, .. } => {
            vec![m("latency", "µs / round trip", true)]
        }
        Kind::AsyncReq { .. } => vec![m("aggregate", "round trips/s", false)],
        Kind::InprocThr { .. } => vec![m("throughput, end to end", "msg/s", false)],
        Kind::Tail { .. } => vec![
            m("p50", "µs", true),
            m("p99", "µs", true),
            m("p99.9", "µs", true),
            m("max", "µs", true),
        ],
        Kind::Thr { .. } => vec![
            m("throughput, end to end", "msg/s", false),
            m("sender peak RSS", "MiB", true),
            m("receiver peak RSS", "MiB", true),
        ],
        Kind::ReqMany { .. } => vec![m("aggregate", "round trips/s", false)],
        Kind::Conn { .. } => vec![
            m("server RSS per idle connection", "KiB", true),
            m("time for 1,000 simultaneous connects to get in", "ms", true),
            m("TcpExtListenOverflows during the connects", "count", true),
        ],
        Kind::Handshakes { .. } => vec![
            m(
                "CURVE: first connect to a message from each of 1,000",
                "ms",
                true,
            ),
            m("CURVE handshakes", "handshakes/s", false),
            m(
                "NULL: first connect to a message from each of 1,000",
                "ms",
                true,
            ),
            m("NULL handshakes", "handshakes/s", false),
        ],
        Kind::Idle => vec![m("CPU used over 5 s", "ms", true)],
        Kind::Attack { .. } => vec![
            m("server peak RSS", "MiB", true),
            m("attackers dropped", "count", false),
        ],
        Kind::Fanout { .. } => vec![
            m("delivered, all subscribers, end to end", "msg/s", false),
            m("publisher peak RSS", "MiB", true),
        ],
        Kind::Match => vec![
            m("publisher sends", "msg/s", false),
            m("publisher CPU per message", "µs", true),
        ],
        Kind::SlowSub { .. } => vec![
            m("7 fast subscribers, without the slow one", "msg/s", false),
            m("7 fast subscribers, with the slow one", "msg/s", false),
            m("with ÷ without", "%", false),
            m("publisher peak RSS, with the slow one", "MiB", true),
            m(
                "publisher's dropped_hwm (all subscribers' drops)",
                "count",
                true,
            ),
        ],
    }
}

/// In the slow-subscriber row, the metric only ferrozmq can report.
const SLOWSUB_DROPPED: usize = 4;

/// Why `imp` does not play `kind`, if it does not: the table says "n/a"
/// with this reason instead of running it.
fn not_applicable(kind: Kind, imp: Impl) -> Option<&'static str> {
    match (kind, imp) {
        (
            Kind::Tail {
                heartbeat: true, ..
            },
            Impl::ZmqRs,
        ) => Some("zmq.rs 0.7 has no heartbeats"),
        (
            Kind::Tail {
                heartbeat: true, ..
            },
            Impl::Tcp,
        ) => Some("no heartbeats in raw TCP"),
        (Kind::SlowSub { .. }, Impl::ZmqRs) => Some(
            "zmq.rs 0.7's XPUB blocks on a slow subscriber instead of dropping (not comparable)",
        ),
        (Kind::Fanout { .. } | Kind::Match | Kind::SlowSub { .. }, Impl::Tcp) => {
            Some("no PUB/SUB in raw TCP")
        }
        (_, Impl::LibzmqCurve) => libzmq_curve::lib().err(),
        (Kind::Handshakes { .. }, Impl::ZmqRs) => Some("zmq.rs 0.7 has no CURVE"),
        (Kind::Lat { tr, .. } | Kind::Thr { tr, .. }, Impl::ZmqRs) if tr == Tr::Curve => {
            Some("zmq.rs 0.7 has no CURVE")
        }
        _ => None,
    }
}

/// Durations of the timed parts.
struct Timing {
    /// Seconds of timed traffic per latency, throughput and REQ×32 run.
    run_secs: f64,
    /// Seconds an idle context is watched.
    idle_secs: f64,
    /// Round trips timed per tail-latency run.
    tail_round_trips: usize,
}

fn parent_main(args: &[String]) -> ExitCode {
    let opts = match parse_opts(args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let selected: Vec<Meas> = measurements()
        .into_iter()
        .filter(|m| {
            opts.only.is_empty()
                || opts
                    .only
                    .iter()
                    .any(|f| m.id.contains(f.as_str()) || m.title.to_lowercase().contains(f))
        })
        .collect();
    if opts.list || selected.is_empty() {
        for m in measurements() {
            eprintln!("{:10} {}", m.id, m.title);
        }
        return if opts.list {
            ExitCode::SUCCESS
        } else {
            eprintln!("bench: no measurement matches {:?}", opts.only);
            ExitCode::from(2)
        };
    }
    let timing = if opts.quick {
        Timing {
            run_secs: 0.3,
            idle_secs: 2.0,
            tail_round_trips: opts.tail_round_trips,
        }
    } else {
        Timing {
            run_secs: 1.0,
            idle_secs: 5.0,
            tail_round_trips: opts.tail_round_trips,
        }
    };
    let has_nstat = nstat().is_some();
    let started = Instant::now();
    // (measurement, metric, implementation) -> one value per good round.
    let mut samples: BTreeMap<(usize, usize, Impl), Vec<f64>> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for round in 0..opts.rounds {
        for (mi, m) in selected.iter().enumerate() {
            let mut impls: Vec<Impl> = m
                .impls
                .iter()
                .copied()
                .filter(|&i| opts.impls.contains(&i) && not_applicable(m.kind, i).is_none())
                .collect();
            if !impls.is_empty() {
                let k = round % impls.len();
                impls.rotate_left(k);
            }
            for imp in impls {
                let t = Instant::now();
                let result = run_one(m.kind, imp, &timing);
                let took = t.elapsed().as_secs_f64();
                match result {
                    Ok(values) => {
                        let shown: Vec<String> = values
                            .iter()
                            .zip(metrics(m.kind))
                            .filter(|(v, _)| !v.is_nan())
                            .map(|(v, k)| match m.kind {
                                // Four numbers in the same unit: name them.
                                Kind::Tail { .. } => {
                                    format!("{} {} {}", k.name, fmt_num(*v), k.unit)
                                }
                                _ => format!("{} {}", fmt_num(*v), k.unit),
                            })
                            .collect();
                        eprintln!(
                            "[round {}/{}] {} / {}: {} ({took:.1} s)",
                            round + 1,
                            opts.rounds,
                            m.id,
                            imp.arg(),
                            shown.join(", ")
                        );
                        for (k, v) in values.into_iter().enumerate() {
                            if !v.is_nan() {
                                samples.entry((mi, k, imp)).or_default().push(v);
                            }
                        }
                    }
                    Err(e) => {
                        let line = format!("round {}: {} / {}: {e}", round + 1, m.id, imp.arg());
                        eprintln!("[FAILED] {line} ({took:.1} s)");
                        failures.push(line);
                    }
                }
            }
        }
    }
    let total = started.elapsed();
    print_table(&selected, &samples, &opts, has_nstat);
    print_tail_targets(&selected, &samples, &opts);
    println!();
    println!(
        "{} round(s), {} run(s) failed; whole run took {:.0} s.",
        opts.rounds,
        failures.len(),
        total.as_secs_f64()
    );
    for f in &failures {
        println!("- FAILED {f}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs both ends of one measurement for one implementation; returns one
/// value per metric (NaN where not measured).
fn run_one(kind: Kind, imp: Impl, timing: &Timing) -> Result<Vec<f64>, String> {
    let me = imp.arg();
    let secs = timing.run_secs;
    let run_limit = Duration::from_secs_f64(secs + 60.0);
    let short = Duration::from_secs(20);
    match kind {
        Kind::Lat { size, tr } => {
            let bind = tr.bind();
            let (srv, cli) = tr.sides();
            let result = (|| {
                let mut server = Proc::spawn(&[srv, me, "rep", &bind, &size.to_string()])?;
                let ep = server.get("endpoint", short)?;
                let mut client =
                    Proc::spawn(&[cli, me, "req", &ep, &size.to_string(), &secs.to_string()])?;
                let rtt_ns: f64 = client.get_num("rtt_ns", run_limit)?;
                client.finish()?;
                server.finish()?;
                Ok(vec![rtt_ns / 1e3])
            })();
            Tr::clean(&bind);
            result
        }
        Kind::InprocLat { size } => {
            let args = [
                "solo",
                me,
                "inproc-lat",
                &size.to_string(),
                &secs.to_string(),
            ];
            let mut p = Proc::spawn(&args)?;
            let rtt_ns: f64 = p.get_num("rtt_ns", run_limit)?;
            p.finish()?;
            Ok(vec![rtt_ns / 1e3])
        }
        Kind::InprocThr { size } => {
            let args = [
                "solo",
                me,
                "inproc-thr",
                &size.to_string(),
                &secs.to_string(),
            ];
            let mut p = Proc::spawn(&args)?;
            let rate: f64 = p.get_num("rate", run_limit)?;
            p.finish()?;
            Ok(vec![rate])
        }
        Kind::Tail { size, heartbeat } => {
            let count = timing.tail_round_trips;
            let hb_ms = if heartbeat {
                HEARTBEAT_IVL.as_millis()
            } else {
                0
            };
            let (size, hb_ms) = (size.to_string(), hb_ms.to_string());
            let mut server = Proc::spawn(&["server", me, "rep", BIND, &size, &hb_ms])?;
            let ep = server.get("endpoint", short)?;
            let mut client = Proc::spawn(&[
                "client",
                me,
                "req-tail",
                &ep,
                &size,
                &count.to_string(),
                &hb_ms,
            ])?;
            let limit = Duration::from_secs_f64(role::tail_secs(count) + 60.0);
            let n: usize = client.get_num("count", limit)?;
            if n != count {
                return Err(format!("timed {n} round trips, not {count}"));
            }
            let mut us = Vec::new();
            for key in ["p50_ns", "p99_ns", "p999_ns", "max_ns"] {
                us.push(client.get_num::<f64>(key, short)? / 1e3);
            }
            client.finish()?;
            server.finish()?;
            Ok(us)
        }
        Kind::Thr { size, tr } => {
            let bind = tr.bind();
            let result = thr_run(me, tr, &bind, size, secs, run_limit, short);
            Tr::clean(&bind);
            result
        }
        Kind::AsyncReq { clients, size } => {
            let (n, size_s) = (clients.to_string(), size.to_string());
            let mut server = if clients == 1 {
                Proc::spawn(&["server", me, "rep", BIND, &size_s])?
            } else {
                Proc::spawn(&["server", me, "router-echo", BIND])?
            };
            let ep = server.get("endpoint", short)?;
            let secs_s = secs.to_string();
            let args: Vec<&str> = match (imp, clients) {
                (Impl::Ferro, _) => vec!["client", me, "async-req", &ep, &n, &size_s, &secs_s],
                (_, 1) => vec!["client", me, "req", &ep, &size_s, &secs_s],
                _ => vec!["client", me, "req-many", &ep, &n, &size_s, &secs_s],
            };
            let mut client = Proc::spawn(&args)?;
            let value = if clients == 1 {
                client.get_num::<f64>("rtt_ns", run_limit)? / 1e3
            } else {
                client.get_num("rate", run_limit)?
            };
            client.finish()?;
            server.finish()?;
            Ok(vec![value])
        }
        Kind::ReqMany {
            clients,
            size,
            threads,
        } => {
            let mut server = Proc::spawn(&["server", me, "router-echo", BIND])?;
            let ep = server.get("endpoint", short)?;
            let mut client = Proc::spawn(&[
                "client",
                me,
                if threads { "req-threads" } else { "req-many" },
                &ep,
                &clients.to_string(),
                &size.to_string(),
                &secs.to_string(),
            ])?;
            let rate: f64 = client.get_num("rate", run_limit)?;
            client.finish()?;
            server.finish()?;
            Ok(vec![rate])
        }
        Kind::Conn { n } => {
            let before = nstat();
            let run = connect_many(me, Tr::Tcp, n)?;
            let after = nstat();
            let overflows = match (before, after) {
                (Some(b), Some(a)) => a.saturating_sub(b) as f64,
                _ => f64::NAN,
            };
            Ok(vec![run.rss_kb / n as f64, run.ms, overflows])
        }
        Kind::Handshakes { n } => {
            let curve = connect_many(me, Tr::Curve, n)?;
            let null = connect_many(me, Tr::Tcp, n)?;
            let per_s = |ms: f64| n as f64 / (ms / 1e3).max(1e-9);
            Ok(vec![curve.ms, per_s(curve.ms), null.ms, per_s(null.ms)])
        }
        Kind::Attack { attackers, cap_mib } => {
            let mut server = Proc::spawn(&["server", me, "rep", BIND, "64", "0"])?;
            let ep = server.get("endpoint", short)?;
            let addr = ep.trim_start_matches("tcp://").to_owned();
            let attack = attack::start(&addr, attackers, cap_mib << 20);
            attack.wait_streamed()?;
            // Give the server time to read what the kernel still holds.
            std::thread::sleep(Duration::from_millis(500));
            let hwm = server.finish()?;
            let dropped = attack.finish()?;
            Ok(vec![hwm as f64 / 1024.0, dropped as f64])
        }
        Kind::Fanout { size, subs } => {
            let k = subs as u64;
            let (size, subs) = (size.to_string(), subs.to_string());
            let secs = secs.to_string();
            let mut publ =
                Proc::spawn(&["server", me, "xpub", BIND, &size, &subs, &secs, "fanout"])?;
            let ep = publ.get("endpoint", short)?;
            let mut subp = Proc::spawn(&["client", me, "subs", &ep, &subs, &size, "exact"])?;
            let start_ns: u128 = publ.get_num("start_ns", run_limit)?;
            let sent: u64 = publ.get_num("count", run_limit)?;
            let last_ns: u128 = subp.get_num("last_ns", run_limit)?;
            let received: u64 = subp.get_num("count", short)?;
            // Each subscriber checked its own count against the end
            // marker; this checks that all of them reported.
            let expected = sent * k;
            if received != expected {
                return Err(format!("{expected} deliveries expected, {received} made"));
            }
            subp.finish()?;
            let pub_hwm = publ.finish()?;
            let elapsed = last_ns.saturating_sub(start_ns).max(1) as f64 / 1e9;
            Ok(vec![received as f64 / elapsed, pub_hwm as f64 / 1024.0])
        }
        Kind::Match => {
            let subs = role::MATCH_SUBSCRIBERS.to_string();
            let subscriptions = role::MATCH_SUBSCRIPTIONS.to_string();
            let secs = secs.to_string();
            let mut publ = Proc::spawn(&[
                "server",
                me,
                "xpub",
                BIND,
                "64",
                &subscriptions,
                &secs,
                "match",
            ])?;
            let ep = publ.get("endpoint", short)?;
            let subp = Proc::spawn(&["client", me, "subs", &ep, &subs, "64", "match"])?;
            let rate: f64 = publ.get_num("rate", run_limit)?;
            let sent: f64 = publ.get_num("count", short)?;
            let cpu_us: f64 = publ.get_num("cpu_us", short)?;
            subp.finish()?;
            publ.finish()?;
            Ok(vec![rate, cpu_us / sent.max(1.0)])
        }
        Kind::SlowSub { subs } => {
            // The same run twice: the fast subscribers alone, then with the
            // slow one paced at a tenth of a fast one's rate in the first.
            let fast = subs - 1;
            let (without, _, _) = slowsub_run(me, fast, 0.0, secs, run_limit)?;
            let slow_rate = without / fast as f64 / 10.0;
            let (with, pub_hwm, dropped) = slowsub_run(me, subs, slow_rate, secs, run_limit)?;
            Ok(vec![
                without,
                with,
                100.0 * with / without,
                pub_hwm as f64 / 1024.0,
                dropped,
            ])
        }
        Kind::Idle => {
            let idle = timing.idle_secs;
            let mut p = Proc::spawn(&["solo", me, "idle", &idle.to_string()])?;
            let cpu_us: f64 = p.get_num("cpu_us", Duration::from_secs_f64(idle + 30.0))?;
            p.finish()?;
            // Scaled to 5 s, so that --quick's shorter watch compares.
            Ok(vec![cpu_us / 1e3 * 5.0 / idle])
        }
    }
}

/// What [`connect_many`] measured.
struct ConnRun {
    /// From the first connect until the ROUTER had a message from each.
    ms: f64,
    /// The server's VmRSS growth over that, KiB.
    rss_kb: f64,
}

/// `n` DEALER sockets in one process connect at once (`tr`: over TCP, or
/// inside CURVE) to a ROUTER in another, and send one message each.
fn connect_many(me: &str, tr: Tr, n: usize) -> Result<ConnRun, String> {
    let short = Duration::from_secs(20);
    let (srv, cli) = tr.sides();
    let mut server = Proc::spawn(&[srv, me, "router-count", BIND, &n.to_string()])?;
    let ep = server.get("endpoint", short)?;
    let base_kb: f64 = server.get_num("base_rss_kb", short)?;
    let mut client = Proc::spawn(&[cli, me, "dealer-many", &ep, &n.to_string()])?;
    let start_ns: u128 = client.get_num("start_ns", short)?;
    let all_in_ns: u128 = server.get_num("all_in_ns", Duration::from_secs(100))?;
    let rss_kb: f64 = server.get_num("rss_kb", short)?;
    client.finish()?;
    server.finish()?;
    Ok(ConnRun {
        ms: all_in_ns.saturating_sub(start_ns) as f64 / 1e6,
        rss_kb: rss_kb - base_kb,
    })
}

/// One PUSH→PULL run between two processes over `bind`: messages/s end to
/// end, and each side's peak RSS in MiB.
fn thr_run(
    me: &str,
    tr: Tr,
    bind: &str,
    size: usize,
    secs: f64,
    run_limit: Duration,
    short: Duration,
) -> Result<Vec<f64>, String> {
    let (srv, cli) = tr.sides();
    let mut rx = Proc::spawn(&[srv, me, "pull", bind, &size.to_string()])?;
    let ep = rx.get("endpoint", short)?;
    let mut tx = Proc::spawn(&[cli, me, "push", &ep, &size.to_string(), &secs.to_string()])?;
    let start_ns: u128 = tx.get_num("start_ns", run_limit)?;
    let sent: u64 = tx.get_num("count", run_limit)?;
    let last_ns: u128 = rx.get_num("last_ns", run_limit)?;
    let received: u64 = rx.get_num("count", short)?;
    if received != sent {
        return Err(format!("sent {sent} messages but {received} arrived"));
    }
    let tx_hwm = tx.finish()?;
    let rx_hwm = rx.finish()?;
    let elapsed = last_ns.saturating_sub(start_ns).max(1) as f64 / 1e9;
    Ok(vec![
        sent as f64 / elapsed,
        tx_hwm as f64 / 1024.0,
        rx_hwm as f64 / 1024.0,
    ])
}

/// One run of the slow-subscriber row: an XPUB dropping at the HWM, `k`
/// subscribers in one process, the last paced at `slow_rate` msg/s if that
/// is positive (and then neither counted nor waited for). Returns the
/// counted subscribers' delivered msg/s, the publisher's peak RSS (KiB) and
/// its `dropped_hwm` (NaN if it has none).
fn slowsub_run(
    me: &str,
    k: usize,
    slow_rate: f64,
    secs: f64,
    run_limit: Duration,
) -> Result<(f64, u64, f64), String> {
    let short = Duration::from_secs(20);
    let (ks, secs) = (k.to_string(), secs.to_string());
    let mut publ = Proc::spawn(&["server", me, "xpub", BIND, "64", &ks, &secs, "slow"])?;
    let ep = publ.get("endpoint", short)?;
    let rate = slow_rate.to_string();
    let mut subp = Proc::spawn(&["client", me, "subs", &ep, &ks, "64", "lossy", &rate])?;
    let start_ns: u128 = publ.get_num("start_ns", run_limit)?;
    let last_ns: u128 = subp.get_num("last_ns", run_limit)?;
    let received: u64 = subp.get_num("count", short)?;
    // Only ferrozmq counts its drops.
    let dropped = if me == Impl::Ferro.arg() {
        publ.get_num("dropped_hwm", short)?
    } else {
        f64::NAN
    };
    subp.finish()?;
    let pub_hwm = publ.finish()?;
    let elapsed = last_ns.saturating_sub(start_ns).max(1) as f64 / 1e9;
    Ok((received as f64 / elapsed, pub_hwm, dropped))
}

/// `TcpExtListenOverflows` now, if `nstat` (iproute2) is there.
fn nstat() -> Option<u64> {
    let out = Command::new("nstat")
        .args(["-asz", "TcpExtListenOverflows"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next()? == "TcpExtListenOverflows")
            .then(|| f.next()?.parse().ok())
            .flatten()
    })
}

// ----- child processes, from the parent's side -----

/// A child process of this binary, and the `@key value` lines it printed.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: HashMap<String, String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Result<Proc, String> {
        let name = args[..3.min(args.len())].join(" ");
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = Command::new(exe);
        // The CURVE rows' libzmq, found once here rather than by each
        // child asking python3 again.
        if args.get(1) == Some(&Impl::LibzmqCurve.arg()) {
            if let Ok(lib) = libzmq_curve::lib() {
                cmd.env(libzmq_curve::LIB_ENV, &lib.path);
            }
        }
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn {name}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
            seen: HashMap::new(),
        })
    }

    /// The value the child reports for `key`, waiting at most `timeout`.
    fn get(&mut self, key: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.seen.get(key) {
                return Ok(v.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let Some(rest) = line.strip_prefix('@') else {
                        continue;
                    };
                    let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    if k == "error" {
                        return Err(format!("{}: {v}", self.name));
                    }
                    self.seen.insert(k.to_owned(), v.to_owned());
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: no `{key}` within {timeout:?} (killed)",
                        self.name
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string());
                    return Err(format!(
                        "{}: exited ({}) without reporting `{key}`",
                        self.name,
                        status.unwrap_or_else(|e| e.to_string())
                    ));
                }
            }
        }
    }

    fn get_num<T: FromStr>(&mut self, key: &str, timeout: Duration) -> Result<T, String> {
        let v = self.get(key, timeout)?;
        v.parse()
            .map_err(|_| format!("{}: `{key}` is not a number: {v:?}", self.name))
    }

    /// Lets the child go (closes its stdin) and returns its peak RSS in
    /// KiB, which it reports on the way out.
    fn finish(mut self) -> Result<u64, String> {
        drop(self.stdin.take());
        let hwm = self.get_num("vmhwm_kb", Duration::from_secs(10))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(hwm);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(format!("{}: did not exit when told to (killed)", self.name))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ----- the table -----

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// A number for the table: thousands separators for big ones, three
/// significant digits or so for the rest.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a >= 10_000.0 {
        let digits = format!("{:.0}", a);
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(v: f64, reference: Option<f64>) -> String {
    match reference {
        Some(r) if r.is_finite() && v.is_finite() => {
            if r == 0.0 && v == 0.0 {
                "=".into()
            } else if r == 0.0 {
                "∞".into()
            } else {
                format!("{:.2}×", v / r)
            }
        }
        _ => "—".into(),
    }
}

fn print_table(
    selected: &[Meas],
    samples: &BTreeMap<(usize, usize, Impl), Vec<f64>>,
    opts: &Opts,
    has_nstat: bool,
) {
    println!();
    println!(
        "| Measurement | Implementation | Median | Unit | Better | ÷ libzmq | ÷ best peer | Min – max (rounds) |"
    );
    println!("|---|---|---:|---|---|---:|---:|---|");
    for (mi, m) in selected.iter().enumerate() {
        // The CURVE rows' libzmq is pyzmq's: ratios are to it there.
        let reference = if m.impls.contains(&Impl::LibzmqCurve) {
            Impl::LibzmqCurve
        } else {
            Impl::Libzmq
        };
        for (k, metric) in metrics(m.kind).iter().enumerate() {
            let med = |imp: Impl| samples.get(&(mi, k, imp)).map(|v| median(v));
            let libzmq = med(reference);
            let best_peer = [libzmq, med(Impl::ZmqRs)]
                .into_iter()
                .flatten()
                .filter(|v| v.is_finite())
                .reduce(|a, b| {
                    if (a <= b) == metric.lower_is_better {
                        a
                    } else {
                        b
                    }
                });
            for &imp in m.impls.iter().filter(|i| opts.impls.contains(i)) {
                if let Some(why) = not_applicable(m.kind, imp) {
                    println!(
                        "| {} — {} | {} | n/a | {} | | | | {why} |",
                        m.title,
                        metric.name,
                        imp.label(),
                        metric.unit,
                    );
                    continue;
                }
                let Some(v) = samples.get(&(mi, k, imp)) else {
                    let why = if matches!(m.kind, Kind::Conn { .. }) && k == 2 && !has_nstat {
                        "no nstat"
                    } else if matches!(m.kind, Kind::SlowSub { .. }) && k == SLOWSUB_DROPPED {
                        "n/a (no such counter)"
                    } else {
                        "FAILED"
                    };
                    println!(
                        "| {} — {} | {} | {why} | {} | | | | 0/{} |",
                        m.title,
                        metric.name,
                        imp.label(),
                        metric.unit,
                        opts.rounds
                    );
                    continue;
                };
                let md = median(v);
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                println!(
                    "| {} — {} | {} | {} | {} | {} | {} | {} | {} – {} ({}/{}) |",
                    m.title,
                    metric.name,
                    imp.label(),
                    fmt_num(md),
                    metric.unit,
                    if metric.lower_is_better {
                        "lower"
                    } else {
                        "higher"
                    },
                    ratio(md, libzmq),
                    ratio(md, best_peer),
                    fmt_num(lo),
                    fmt_num(hi),
                    v.len(),
                    opts.rounds
                );
            }
        }
    }
    println!();
    println!(
        "Ratios: this row's median ÷ libzmq's, and ÷ the best peer's (the better of libzmq and \
zmq.rs on that line). Latency is per round trip (libzmq's remote_lat prints half of it). \
Throughput runs from the sender's first message to the receiver's last, across processes \
(CLOCK_REALTIME), default HWM 1000 (zmq.rs has no HWM setting). Peak RSS is each process's \
VmHWM. Per-connection RSS is the server's VmRSS growth ÷ 1,000."
    );
    if selected
        .iter()
        .any(|m| m.impls.contains(&Impl::LibzmqCurve))
    {
        println!();
        match libzmq_curve::lib() {
            Ok(lib) => println!(
                "CURVE rows: both ends inside CURVE, fixed long-term keys, no ZAP handler. Their \
libzmq column is libzmq {} with libsodium, loaded from {} (the vendored 4.3.4 has no CURVE); \
their ratios are to it.",
                lib.version_string,
                lib.path.display()
            ),
            Err(why) => println!("CURVE rows: no libzmq with CURVE: {why}."),
        }
    }
    if selected.iter().any(|m| matches!(m.kind, Kind::Tail { .. })) {
        println!();
        println!(
            "Round-trip tail: {} round trips per run after a 0.1 s warm-up, each timed on its own \
(Instant before the send, after the reply), REP and REQ in two processes; p50/p99/p99.9 are \
nearest-rank percentiles of that run, max its slowest round trip. The median is over rounds, and \
the min – max column's upper end for `max` is the slowest round trip of the whole run. \
Heartbeats: ZMQ_HEARTBEAT_IVL {} ms and ZMQ_HEARTBEAT_TIMEOUT {} ms on both ends.",
            fmt_num(opts.tail_round_trips as f64),
            HEARTBEAT_IVL.as_millis(),
            role::HEARTBEAT_TIMEOUT.as_millis()
        );
    }
}

/// After the table, when the tail-latency rows ran: their targets, with
/// ferrozmq's numbers, libzmq's from the same run and a verdict. p99.9 is
/// compared as medians over rounds, like the table; the maximum is the
/// slowest round trip over all rounds. Raw TCP's maximum, the floor, tells
/// whether the machine itself stalled.
fn print_tail_targets(
    selected: &[Meas],
    samples: &BTreeMap<(usize, usize, Impl), Vec<f64>>,
    opts: &Opts,
) {
    const P999: usize = 2;
    const MAX: usize = 3;
    let tail: Vec<(usize, &Meas)> = selected
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m.kind, Kind::Tail { .. }))
        .collect();
    if tail.is_empty() {
        return;
    }
    let get = |mi: usize, k: usize, imp: Impl| samples.get(&(mi, k, imp)).filter(|v| !v.is_empty());
    let med = |mi, k, imp| get(mi, k, imp).map(|v| median(v));
    let worst = |mi, k, imp| get(mi, k, imp).map(|v| v.iter().copied().fold(f64::MIN, f64::max));
    // Raw TCP's slowest round trip in this run, from whichever row has one.
    let floor_max = tail
        .iter()
        .filter_map(|&(mi, _)| worst(mi, MAX, Impl::Tcp))
        .reduce(f64::max);
    let us = |v: Option<f64>| v.map_or("—".into(), |v| format!("{} µs", fmt_num(v)));
    println!();
    println!(
        "Tail-latency targets (issue 10): ferrozmq's p99.9 no higher than libzmq's in the same run, \
and no round trip stalled (ferrozmq's maximum below {} ms when the machine is quiet).",
        fmt_num(TAIL_MAX_TARGET_US / 1e3)
    );
    println!();
    println!("| Row | Target | ferrozmq | libzmq 4.3.4 | raw TCP (floor) | Verdict |");
    println!("|---|---|---:|---:|---:|---|");
    for (mi, m) in tail {
        let show = |imp: Impl| opts.impls.contains(&imp) && not_applicable(m.kind, imp).is_none();
        let tcp = |v: Option<f64>| if show(Impl::Tcp) { us(v) } else { "n/a".into() };
        let (ferro, libzmq) = (med(mi, P999, Impl::Ferro), med(mi, P999, Impl::Libzmq));
        let verdict = match (ferro, libzmq) {
            (Some(f), Some(l)) if f <= l => "met".to_owned(),
            (Some(f), Some(l)) => format!("missed ({} libzmq's)", ratio(f, Some(l))),
            _ => "— (a run is missing)".to_owned(),
        };
        println!(
            "| {} | p99.9 ≤ libzmq's (medians over {} round(s)) | {} | {} | {} | {verdict} |",
            m.title,
            opts.rounds,
            us(ferro),
            us(libzmq),
            tcp(med(mi, P999, Impl::Tcp)),
        );
        let ferro = worst(mi, MAX, Impl::Ferro);
        let verdict = match ferro {
            Some(f) if f < TAIL_MAX_TARGET_US => "met".to_owned(),
            Some(_) => match floor_max {
                Some(t) if t >= TAIL_MAX_TARGET_US => {
                    "missed, but raw TCP stalled too: the machine was not quiet".to_owned()
                }
                _ => "missed".to_owned(),
            },
            None => "— (a run is missing)".to_owned(),
        };
        println!(
            "| {} | max < {} ms (slowest of all rounds) | {} | {} | {} | {verdict} |",
            m.title,
            fmt_num(TAIL_MAX_TARGET_US / 1e3),
            us(ferro),
            us(worst(mi, MAX, Impl::Libzmq)),
            tcp(worst(mi, MAX, Impl::Tcp)),
        );
    }
}
