//! `fzmq`: send, receive, probe and monitor ZeroMQ endpoints from the
//! shell, built on ferrozmq.
//!
//! The arguments are declared here; each command lives in its own module:
//! [`messaging`] (send, recv, req, rep, pub, sub, push, pull), [`probe`]
//! and [`monitor`]. Every command ends in an [`Outcome`], which decides the
//! exit code (listed in `fzmq --help` and README.md).

mod format;
mod messaging;
mod monitor;
mod probe;
mod progress;

use clap::{Args, Parser, Subcommand};
use ferrozmq::SocketType;
use format::{Encoding, Format};
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes:
   0  success
   1  error (bind failed, bad input line, I/O error)
   2  usage error (bad arguments or endpoint)
   3  timed out (--timeout-ms passed without a message, a reply or a peer)
  probe only:
  10  the host name did not resolve
  11  connection refused (nothing listens there)
  12  TCP connect timed out
  13  host or network unreachable
  14  other TCP connect error
  20  the peer is not a ZMTP peer (wrong signature, echoes our bytes, or closed)
  21  connected, but the peer sent no greeting in time
  22  the peer speaks an unsupported ZMTP version (below 3.0)
  23  the peer wants a security mechanism other than NULL
  24  the ZMTP handshake failed (protocol error, ERROR, closed, no READY)
  25  the peer's socket type is incompatible with --type";

const FORMAT_HELP: &str = "\
Messages on stdin and stdout are one per line. In text mode (the default)
a line holds the frames' bytes, separated by --separator (a tab); --hex
writes each frame in hex, --json writes a JSON array with a string per
UTF-8 frame and {\"hex\": \"...\"} for any other frame.";

/// Send, receive, probe and monitor ZeroMQ (ZMTP 3.x) endpoints.
#[derive(Parser, Debug)]
#[command(name = "fzmq", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send each stdin line as a message (PUSH unless --type says otherwise).
    #[command(after_help = FORMAT_HELP)]
    Send {
        #[command(flatten)]
        common: Common,
        /// The socket type: push, pub, dealer, router, pair, xpub or xsub.
        #[arg(long = "type", value_name = "T", value_parser = parse_type, default_value = "push")]
        ty: SocketType,
    },
    /// Print each message received (PULL unless --type says otherwise).
    #[command(after_help = FORMAT_HELP)]
    Recv {
        #[command(flatten)]
        common: Common,
        /// The socket type: pull, sub, dealer, router, pair, xpub or xsub.
        #[arg(long = "type", value_name = "T", value_parser = parse_type, default_value = "pull")]
        ty: SocketType,
        /// SUB: a topic prefix to receive (repeatable; none means all).
        #[arg(long, value_name = "P")]
        subscribe: Vec<String>,
    },
    /// REQ: send each stdin line as a request and print its reply.
    #[command(after_help = FORMAT_HELP)]
    Req {
        #[command(flatten)]
        common: Common,
    },
    /// REP: print each request and answer it with the next stdin line.
    #[command(after_help = FORMAT_HELP)]
    Rep {
        #[command(flatten)]
        common: Common,
        /// Answer each request with the request itself; stdin is not read.
        #[arg(long)]
        echo: bool,
    },
    /// PUB: publish each stdin line.
    ///
    /// A plain PUB drops what it sends before a subscriber has connected
    /// and subscribed (the slow joiner); --subscribers K waits for K
    /// subscriptions first.
    #[command(after_help = FORMAT_HELP)]
    Pub {
        #[command(flatten)]
        common: Common,
        /// Wait until K subscriptions have arrived before sending (the
        /// socket is then an XPUB, which sees them).
        #[arg(long, value_name = "K", default_value_t = 0)]
        subscribers: u64,
    },
    /// SUB: print each message published that matches a --subscribe prefix.
    #[command(after_help = FORMAT_HELP)]
    Sub {
        #[command(flatten)]
        common: Common,
        /// A topic prefix to receive (repeatable; none means all).
        #[arg(long, value_name = "P")]
        subscribe: Vec<String>,
    },
    /// PUSH: send each stdin line to the next PULL peer.
    #[command(after_help = FORMAT_HELP)]
    Push {
        #[command(flatten)]
        common: Common,
    },
    /// PULL: print each message received.
    #[command(after_help = FORMAT_HELP)]
    Pull {
        #[command(flatten)]
        common: Common,
    },
    /// Diagnose an endpoint: TCP, ZMTP greeting, peer type, compatibility.
    ///
    /// Connects once and reports, step by step and timed: resolution, the
    /// TCP connect (refused, timed out, unreachable), whether the peer
    /// speaks ZMTP, its version and mechanism, its socket type from READY,
    /// and whether --type can talk to it. Each outcome has its exit code.
    #[command(after_help = EXIT_CODES)]
    Probe(probe::ProbeArgs),
    /// Print a socket's monitor events and endpoint status, live.
    ///
    /// Connects (or binds) a socket of --type and prints each monitor
    /// event as it happens and every endpoint's status every
    /// --interval-ms, one per line, with UTC timestamps.
    Monitor(monitor::MonitorArgs),
}

/// Options that every messaging command takes.
#[derive(Args, Debug)]
struct Common {
    /// Where: tcp://host:port (with --bind, tcp://*:* picks any port).
    endpoint: String,
    /// Bind to the endpoint instead of connecting to it; the endpoint
    /// bound is printed on stderr.
    #[arg(long)]
    bind: bool,
    /// Stop after N messages (requests, for req and rep).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Give up (exit 3) when a message, reply or peer has not come within
    /// MS milliseconds; also bounds how long queued messages may take to
    /// leave at exit. Without it, wait for ever.
    #[arg(long, value_name = "MS", value_parser = crate::millis())]
    timeout_ms: Option<u64>,
    /// Frames in hex.
    #[arg(long, conflicts_with = "json")]
    hex: bool,
    /// Messages as JSON arrays of frames.
    #[arg(long)]
    json: bool,
    /// Between frames in text and hex modes ("\t", the default, is a tab).
    #[arg(long, value_name = "SEP", default_value = "\\t")]
    separator: String,
}

impl Common {
    fn format(&self) -> Format {
        let encoding = if self.hex {
            Encoding::Hex
        } else if self.json {
            Encoding::Json
        } else {
            Encoding::Text
        };
        Format {
            encoding,
            separator: self.separator.replace("\\t", "\t").into_bytes(),
        }
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

/// Milliseconds for --timeout-ms and --interval-ms: at least 1, and at
/// most what libzmq's int options hold (24.8 days), so that no deadline
/// computed from one can overflow an `Instant`.
fn millis() -> clap::builder::RangedU64ValueParser<u64> {
    clap::builder::RangedU64ValueParser::new().range(1..=i32::MAX as u64)
}

/// Parses a socket type name, in any case, with the library's names.
fn parse_type(s: &str) -> Result<SocketType, String> {
    SocketType::from_name(s.to_ascii_uppercase().as_bytes())
        .ok_or_else(|| format!("unknown socket type {s:?}"))
}

/// How a command ended; decides the exit code.
#[derive(Debug)]
pub enum Outcome {
    /// Exit 0.
    Done,
    /// Exit 1, with this message on stderr.
    Failed(String),
    /// Exit 2, with this message on stderr.
    Usage(String),
    /// Exit 3, with this message on stderr.
    TimedOut(String),
    /// The probe's verdict: its own exit code, already reported on stdout.
    Probe(u8),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Send { common, ty } => messaging::send(&common, ty, 0),
        Command::Push { common } => messaging::send(&common, SocketType::Push, 0),
        Command::Pub {
            common,
            subscribers,
        } => messaging::send(&common, SocketType::Pub, subscribers),
        Command::Recv {
            common,
            ty,
            subscribe,
        } => messaging::recv(&common, ty, &subscribe),
        Command::Pull { common } => messaging::recv(&common, SocketType::Pull, &[]),
        Command::Sub { common, subscribe } => messaging::recv(&common, SocketType::Sub, &subscribe),
        Command::Req { common } => messaging::req(&common),
        Command::Rep { common, echo } => messaging::rep(&common, echo),
        Command::Probe(args) => probe::run(&args),
        Command::Monitor(args) => monitor::run(&args),
    };
    match outcome {
        Outcome::Done => ExitCode::SUCCESS,
        Outcome::Probe(code) => ExitCode::from(code),
        Outcome::Failed(e) => {
            eprintln!("fzmq: {e}");
            ExitCode::from(1)
        }
        Outcome::Usage(e) => {
            eprintln!("fzmq: {e}");
            ExitCode::from(2)
        }
        Outcome::TimedOut(e) => {
            eprintln!("fzmq: timed out: {e}");
            ExitCode::from(3)
        }
    }
}
