//! The ZeroMQ guide's Lazy Pirate client: reliable request-reply from the
//! client side alone.
//!
//! ```text
//! cargo run --example rep -- tcp://127.0.0.1:5555            # an echo server
//! cargo run --example lazy_pirate -- tcp://127.0.0.1:5555 \
//!     [--requests N] [--timeout-ms MS] [--retries R]
//! ```
//!
//! Sends numbered requests one at a time. When no reply comes within the
//! timeout, or ferrozmq reports that the connection carrying the request
//! was lost ([`ferrozmq::Error::PeerLost`]), it says so on stderr, throws
//! the socket away, opens a new one and resends the same request. After
//! `R` retries of one request it gives up and exits non-zero. Every reply
//! must echo its request. Ends with a summary line on stdout.
//!
//! Kill and restart the server while this runs to watch it recover.

use ferrozmq::{Context, Error, Socket, SocketType};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[path = "shared/help.rs"]
mod help;

struct Args {
    endpoint: String,
    requests: u64,
    timeout: Duration,
    retries: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        endpoint: String::new(),
        requests: 10,
        timeout: Duration::from_millis(2500),
        retries: 3,
    };
    fn number<T: std::str::FromStr>(v: Option<String>, name: &str) -> Result<T, String> {
        v.and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{name} needs a number"))
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--requests" => args.requests = number(it.next(), "--requests")?,
            "--timeout-ms" => {
                args.timeout = Duration::from_millis(number(it.next(), "--timeout-ms")?)
            }
            "--retries" => args.retries = number(it.next(), "--retries")?,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s if args.endpoint.is_empty() => args.endpoint = s.to_owned(),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    if args.endpoint.is_empty() {
        return Err("missing endpoint".into());
    }
    if args.timeout.is_zero() {
        return Err("--timeout-ms must be positive".into());
    }
    Ok(args)
}

/// A fresh REQ socket connected to the server. Linger 0: whatever the old
/// socket still held is not worth keeping once we give up on it.
fn new_socket(ctx: &Context, endpoint: &str) -> ferrozmq::Result<Socket> {
    let req = ctx.socket(SocketType::Req)?;
    req.set_linger(Some(Duration::ZERO))?;
    req.connect(endpoint)?;
    Ok(req)
}

/// What happened to one attempt at a request.
enum Outcome {
    Reply,
    /// Why to retry, for the log line.
    Retry(String),
}

#[derive(Default)]
struct Summary {
    replies: u64,
    retries: u64,
    /// Failed attempts, by cause.
    timeouts: u64,
    lost: u64,
}

impl Summary {
    fn line(&self, args: &Args, elapsed: Duration) -> String {
        format!(
            "lazy_pirate: {} of {} requests answered by {}, {} retries; failed attempts: {} timeouts, {} connections lost; {:.2}s",
            self.replies,
            args.requests,
            args.endpoint,
            self.retries,
            self.timeouts,
            self.lost,
            elapsed.as_secs_f64()
        )
    }
}

fn attempt(req: &Socket, seq: u64, args: &Args, sum: &mut Summary) -> Result<Outcome, String> {
    let request = seq.to_string();
    let no_reply = || format!("no reply within {}ms", args.timeout.as_millis());
    match req.send_timeout(request.as_str(), args.timeout) {
        Ok(()) => {}
        Err(e) if e.error.is_timeout() => {
            sum.timeouts += 1;
            return Ok(Outcome::Retry(no_reply()));
        }
        Err(e) => return Err(format!("request {seq}: send failed: {}", e.error)),
    }
    match req.recv_timeout(args.timeout) {
        Ok(reply) => {
            if reply.len() == 1 && reply.first().is_some_and(|f| f[..] == *request.as_bytes()) {
                sum.replies += 1;
                Ok(Outcome::Reply)
            } else {
                Err(format!(
                    "request {seq}: the reply does not echo the request: {:?}",
                    reply
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect::<Vec<_>>()
                ))
            }
        }
        Err(Error::TimedOut) => {
            sum.timeouts += 1;
            Ok(Outcome::Retry(no_reply()))
        }
        Err(Error::PeerLost { endpoint }) => {
            sum.lost += 1;
            Ok(Outcome::Retry(format!("connection lost ({endpoint})")))
        }
        Err(e) => Err(format!("request {seq}: {e}")),
    }
}

fn run(args: &Args, sum: &mut Summary) -> Result<(), String> {
    let ctx = Context::new();
    let mut req = new_socket(&ctx, &args.endpoint).map_err(|e| e.to_string())?;
    for seq in 1..=args.requests {
        let mut retry = 0;
        loop {
            match attempt(&req, seq, args, sum)? {
                Outcome::Reply => break,
                Outcome::Retry(why) => {
                    if retry == args.retries {
                        return Err(format!(
                            "giving up on request {seq} after {retry} retries ({why}); the server seems to be offline"
                        ));
                    }
                    retry += 1;
                    sum.retries += 1;
                    eprintln!(
                        "lazy_pirate: retry {retry}/{} for request {seq}: {why}",
                        args.retries
                    );
                    // The old socket may still hold the request, or wait
                    // for a reply that will never come: start afresh.
                    drop(req);
                    req = new_socket(&ctx, &args.endpoint).map_err(|e| e.to_string())?;
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    if help::requested(include_str!("lazy_pirate.rs")) {
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lazy_pirate: {e}");
            eprintln!(
                "usage: lazy_pirate <endpoint> [--requests N] [--timeout-ms MS] [--retries R]"
            );
            return ExitCode::from(2);
        }
    };
    let t0 = Instant::now();
    let mut sum = Summary::default();
    let result = run(&args, &mut sum);
    if let Err(e) = &result {
        eprintln!("lazy_pirate: {e}");
    }
    println!("{}", sum.line(&args, t0.elapsed()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
