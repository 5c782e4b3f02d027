//! The guide's weather update client: averages one zip code's updates.
//!
//! ```text
//! cargo run --release --example wuclient -- [ENDPOINT] [ZIPCODE] [--updates N]
//! ```
//! Connects a SUB to ENDPOINT (default `tcp://localhost:5556`),
//! subscribes to the updates of ZIPCODE (default 10001), collects N of
//! them (default 100) and prints their average temperature. Exits
//! non-zero if no update arrives for 10 s.

use ferrozmq::{Context, SocketType};
use std::process::ExitCode;
use std::time::Duration;

#[path = "shared/help.rs"]
mod help;

fn main() -> ExitCode {
    if help::requested(include_str!("wuclient.rs")) {
        return ExitCode::SUCCESS;
    }
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut updates = 100u32;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--updates" => match args.next().and_then(|s| s.parse().ok()) {
                Some(n) => updates = n,
                None => {
                    eprintln!("wuclient: --updates needs a number");
                    return ExitCode::from(2);
                }
            },
            s => positional.push(s.to_owned()),
        }
    }
    let endpoint = positional
        .first()
        .cloned()
        .unwrap_or_else(|| "tcp://localhost:5556".to_owned());
    let zip = positional
        .get(1)
        .cloned()
        .unwrap_or_else(|| "10001".to_owned());
    match run(&endpoint, &zip, updates) {
        Ok(avg) => {
            println!("Average temperature for zipcode '{zip}' was {avg:.1}F");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wuclient: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(endpoint: &str, zip: &str, updates: u32) -> Result<f64, String> {
    let ctx = Context::new();
    let subscriber = ctx.socket(SocketType::Sub).map_err(|e| e.to_string())?;
    subscriber
        .set_linger(Some(Duration::ZERO))
        .map_err(|e| e.to_string())?;
    subscriber.connect(endpoint).map_err(|e| e.to_string())?;
    // The trailing space keeps 10001 from matching 100010 and the like.
    subscriber
        .subscribe(format!("{zip} "))
        .map_err(|e| e.to_string())?;
    let mut total = 0i64;
    for n in 0..updates {
        let m = subscriber
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| format!("after {n} updates: {e}"))?;
        let text = m
            .first()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default();
        let temperature: i64 = text
            .split_whitespace()
            .nth(1)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("malformed update {text:?}"))?;
        total += temperature;
    }
    Ok(total as f64 / f64::from(updates.max(1)))
}
