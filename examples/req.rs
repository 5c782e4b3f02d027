//! A request client that checks every reply against its request.
//!
//! ```text
//! cargo run --release --example req -- <endpoint> [--count N] [--size BYTES]
//!     [--timeout-ms MS] [--reconnect-ivl-ms MS] [--reconnect-ivl-max-ms MS]
//!     [--connect-timeout-ms MS] [--req-resend] [--immediate] [--progress]
//! ```
//! Prints one summary line with the number of round trips and the mean
//! round-trip time, and exits 0. Exits non-zero with a message on a timeout
//! or a mismatched reply.
//!
//! `--req-resend` and `--immediate` set the socket options of those names.
//! `--progress` prints, once a second on stderr, how far the run is: round
//! trips done, requests resent, and each endpoint's state with the
//! messages queued for it.

use ferrozmq::{Context, Message, Socket, SocketType};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "shared/help.rs"]
mod help;

struct Args {
    endpoint: String,
    count: u64,
    size: usize,
    timeout: Option<Duration>,
    reconnect_ivl: Option<Duration>,
    reconnect_ivl_max: Option<Duration>,
    connect_timeout: Option<Duration>,
    req_resend: bool,
    immediate: bool,
    progress: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        endpoint: String::new(),
        count: 1,
        size: 5,
        timeout: None,
        reconnect_ivl: None,
        reconnect_ivl_max: None,
        connect_timeout: None,
        req_resend: false,
        immediate: false,
        progress: false,
    };
    let ms = |v: Option<String>, name: &str| -> Result<Duration, String> {
        v.and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_millis)
            .ok_or_else(|| format!("{name} needs a number of milliseconds"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--count" => {
                args.count = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--count needs a number")?
            }
            "--size" => {
                args.size = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--size needs a number of bytes")?
            }
            "--timeout-ms" => args.timeout = Some(ms(it.next(), "--timeout-ms")?),
            "--reconnect-ivl-ms" => args.reconnect_ivl = Some(ms(it.next(), "--reconnect-ivl-ms")?),
            "--reconnect-ivl-max-ms" => {
                args.reconnect_ivl_max = Some(ms(it.next(), "--reconnect-ivl-max-ms")?)
            }
            "--connect-timeout-ms" => {
                args.connect_timeout = Some(ms(it.next(), "--connect-timeout-ms")?)
            }
            "--req-resend" => args.req_resend = true,
            "--immediate" => args.immediate = true,
            "--progress" => args.progress = true,
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
    if help::requested(include_str!("req.rs")) {
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("req: {e}");
            eprintln!("usage: req <endpoint> [--count N] [--size BYTES] [--timeout-ms MS] [--reconnect-ivl-ms MS] [--reconnect-ivl-max-ms MS] [--connect-timeout-ms MS] [--req-resend] [--immediate] [--progress]");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("req: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let ctx = Context::new();
    let req = Arc::new(ctx.socket(SocketType::Req).map_err(|e| e.to_string())?);
    req.set_req_resend(args.req_resend)
        .map_err(|e| e.to_string())?;
    req.set_immediate(args.immediate)
        .map_err(|e| e.to_string())?;
    req.set_rcvtimeo(args.timeout).map_err(|e| e.to_string())?;
    req.set_sndtimeo(args.timeout).map_err(|e| e.to_string())?;
    // Nothing worth keeping is left once we give up.
    req.set_linger(Some(Duration::ZERO))
        .map_err(|e| e.to_string())?;
    if let Some(d) = args.reconnect_ivl {
        req.set_reconnect_ivl(Some(d)).map_err(|e| e.to_string())?;
    }
    if let Some(d) = args.reconnect_ivl_max {
        req.set_reconnect_ivl_max(d).map_err(|e| e.to_string())?;
    }
    if let Some(d) = args.connect_timeout {
        req.set_connect_timeout(d).map_err(|e| e.to_string())?;
    }
    req.connect(&args.endpoint).map_err(|e| e.to_string())?;
    let body: Vec<u8> = (0..args.size).map(|i| (i % 251) as u8).collect();
    let request = Message::from(body);
    let mut total = Duration::ZERO;
    let done = Arc::new(AtomicU64::new(0));
    // Dropped at the end of the run, which stops the progress thread.
    let (_running, stopped) = crossbeam_channel::bounded::<()>(0);
    if args.progress {
        let (req, done) = (req.clone(), done.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let tick = || stopped.recv_timeout(Duration::from_secs(1));
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = tick() {
                eprintln!(
                    "req: {:>4.0} s: {} round trips, {} requests resent\n{}",
                    start.elapsed().as_secs_f64(),
                    done.load(Ordering::Relaxed),
                    req.stats().requests_resent,
                    status(&req)
                );
            }
        });
    }
    for n in 0..args.count {
        let t0 = Instant::now();
        req.send(request.clone()).map_err(|e| match e.error {
            ferrozmq::Error::TimedOut => format!(
                "request {n}: could not send within {:?}\n{}",
                args.timeout.unwrap_or_default(),
                status(&req)
            ),
            e => format!("request {n}: send failed: {e}"),
        })?;
        let reply = req.recv().map_err(|e| match e {
            ferrozmq::Error::TimedOut => format!(
                "request {n}: no reply from {} within {:?}\n{}",
                args.endpoint,
                args.timeout.unwrap_or_default(),
                status(&req)
            ),
            e => format!("request {n}: {e}"),
        })?;
        total += t0.elapsed();
        if reply != request {
            return Err(format!("request {n}: reply does not match the request"));
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    let mean_us = total.as_secs_f64() * 1e6 / args.count.max(1) as f64;
    println!(
        "req: {} round trips of {} bytes to {}, mean round trip {:.1} us",
        args.count, args.size, args.endpoint, mean_us
    );
    Ok(())
}

/// What the connecter is doing: the answer to "why is it hanging?".
fn status(req: &Socket) -> String {
    let now = Instant::now();
    match req.endpoints() {
        Ok(list) => list
            .iter()
            .map(|s| {
                let state = match s.state {
                    ferrozmq::EndpointState::Waiting { until } => format!(
                        "waiting, next attempt in {:?}",
                        until.saturating_duration_since(now)
                    ),
                    other => format!("{other:?}").to_lowercase(),
                };
                let last = s
                    .last_error
                    .as_ref()
                    .map(|(cause, text)| format!(", last error: {cause:?} ({text})"))
                    .unwrap_or_default();
                format!(
                    "  {}: {state}, {} queued, {} connect attempts{last}",
                    s.endpoint, s.queued, s.attempts
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("  (no endpoint status: {e})"),
    }
}
