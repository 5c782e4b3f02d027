//! A subscriber that checks what it receives.
//!
//! ```text
//! cargo run --release --example sub -- ENDPOINT [--bind] [--subscribe PREFIX]...
//!     [--count N] [--timeout-ms MS]
//! ```
//! Connects a SUB to ENDPOINT (or binds it, with `--bind`) with the given
//! subscriptions (everything when none is given), receives N messages
//! (default 1,000) and checks that each matches a subscription. Prints
//! `sub: received N messages in T s (R msg/s)` and exits 0. Exits
//! non-zero, saying how many arrived, if the next message takes longer
//! than MS (default 10,000), or naming the message that matches no
//! subscription.

use ferrozmq::{Context, Error, SocketType};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[path = "shared/help.rs"]
mod help;

struct Args {
    endpoint: String,
    bind: bool,
    prefixes: Vec<String>,
    count: u64,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        endpoint: String::new(),
        bind: false,
        prefixes: Vec::new(),
        count: 1000,
        timeout: Duration::from_secs(10),
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bind" => args.bind = true,
            "--subscribe" => args
                .prefixes
                .push(it.next().ok_or("--subscribe needs a prefix")?),
            "--count" => {
                args.count = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--count needs a number")?
            }
            "--timeout-ms" => {
                args.timeout = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .map(Duration::from_millis)
                    .ok_or("--timeout-ms needs a number of milliseconds")?
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s if args.endpoint.is_empty() => args.endpoint = s.to_owned(),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    if args.endpoint.is_empty() {
        return Err("missing endpoint".into());
    }
    if args.prefixes.is_empty() {
        args.prefixes.push(String::new());
    }
    Ok(args)
}

fn main() -> ExitCode {
    if help::requested(include_str!("sub.rs")) {
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sub: {e}");
            eprintln!("usage: sub ENDPOINT [--bind] [--subscribe PREFIX]... [--count N] [--timeout-ms MS]");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sub: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let ctx = Context::new();
    let sub = ctx.socket(SocketType::Sub).map_err(|e| e.to_string())?;
    sub.set_linger(Some(Duration::ZERO))
        .map_err(|e| e.to_string())?;
    for p in &args.prefixes {
        sub.subscribe(p).map_err(|e| e.to_string())?;
    }
    if args.bind {
        sub.bind(&args.endpoint).map_err(|e| e.to_string())?;
    } else {
        sub.connect(&args.endpoint).map_err(|e| e.to_string())?;
    }
    let mut start = None;
    for n in 0..args.count {
        let m = match sub.recv_timeout(args.timeout) {
            Ok(m) => m,
            Err(Error::TimedOut) => {
                return Err(format!(
                    "timed out after {:?}: {n} of {} messages arrived",
                    args.timeout, args.count
                ))
            }
            Err(e) => return Err(format!("after {n} messages: {e}")),
        };
        start.get_or_insert_with(Instant::now);
        let first = m.first().map(|f| f.to_vec()).unwrap_or_default();
        if !args
            .prefixes
            .iter()
            .any(|p| first.starts_with(p.as_bytes()))
        {
            return Err(format!(
                "message {n} ({:?}) matches no subscription",
                String::from_utf8_lossy(&first[..first.len().min(64)])
            ));
        }
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64()).max(1e-9);
    println!(
        "sub: received {} messages in {:.3} s ({:.0} msg/s)",
        args.count,
        secs,
        args.count as f64 / secs
    );
    Ok(())
}
