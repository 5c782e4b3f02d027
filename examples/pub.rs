//! A publisher that waits for its subscribers, then publishes.
//!
//! ```text
//! cargo run --release --example pub -- ENDPOINT [--connect] [--count N] [--size BYTES]
//!     [--topic T] [--subscribers K]
//! ```
//! Binds an XPUB to ENDPOINT (or connects it, with `--connect`), waits
//! until K subscriptions have arrived (default 1; an XPUB sees them, so no
//! message is lost to a late joiner), then sends N messages (default
//! 1,000) of SIZE bytes (default 64), each beginning with the topic T
//! (default empty). `xpub_nodrop` is set: at a slow subscriber's HWM it
//! waits instead of dropping, so every subscriber receives all N.
//! Prints `pub: sent N messages to K subscribers in T s (R msg/s)`.

use ferrozmq::{Context, Message, SocketType};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[path = "shared/help.rs"]
mod help;

struct Args {
    endpoint: String,
    connect: bool,
    count: u64,
    size: usize,
    topic: String,
    subscribers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        endpoint: String::new(),
        connect: false,
        count: 1000,
        size: 64,
        topic: String::new(),
        subscribers: 1,
    };
    let num = |it: &mut dyn Iterator<Item = String>, name: &str| -> Result<u64, String> {
        it.next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{name} needs a number"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--connect" => args.connect = true,
            "--count" => args.count = num(&mut it, "--count")?,
            "--size" => args.size = num(&mut it, "--size")? as usize,
            "--subscribers" => args.subscribers = num(&mut it, "--subscribers")? as usize,
            "--topic" => args.topic = it.next().ok_or("--topic needs a value")?,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s if args.endpoint.is_empty() => args.endpoint = s.to_owned(),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    if args.endpoint.is_empty() {
        return Err("missing endpoint".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    if help::requested(include_str!("pub.rs")) {
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pub: {e}");
            eprintln!("usage: pub ENDPOINT [--connect] [--count N] [--size BYTES] [--topic T] [--subscribers K]");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pub: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let ctx = Context::new();
    let xpub = ctx.socket(SocketType::XPub).map_err(|e| e.to_string())?;
    // Every subscriber's subscription counts, duplicates included.
    xpub.set_xpub_verbose(true).map_err(|e| e.to_string())?;
    xpub.set_xpub_nodrop(true).map_err(|e| e.to_string())?;
    xpub.set_linger(None).map_err(|e| e.to_string())?;
    if args.connect {
        xpub.connect(&args.endpoint).map_err(|e| e.to_string())?;
    } else {
        xpub.bind(&args.endpoint).map_err(|e| e.to_string())?;
    }
    let mut subscribed = 0;
    while subscribed < args.subscribers {
        let m = xpub
            .recv()
            .map_err(|e| format!("waiting for subscribers: {e}"))?;
        if m.first().is_some_and(|f| f.first() == Some(&1)) {
            subscribed += 1;
        }
    }
    let mut body = args.topic.clone().into_bytes();
    body.resize(args.size.max(body.len()), b'.');
    let body = bytes::Bytes::from(body);
    let start = Instant::now();
    for n in 0..args.count {
        xpub.send(Message::from(body.clone()))
            .map_err(|e| format!("message {n}: {}", e.error))?;
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    println!(
        "pub: sent {} messages to {} subscribers in {:.3} s ({:.0} msg/s)",
        args.count,
        args.subscribers,
        secs,
        args.count as f64 / secs
    );
    // Linger (infinite, as above) delivers the tail before the process ends.
    let report = xpub.close().wait_timeout(Duration::from_secs(60));
    if report.is_none() {
        return Err("the subscribers did not take the last messages within 60 s".into());
    }
    Ok(())
}
