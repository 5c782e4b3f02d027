//! The guide's weather update server: publishes random weather updates.
//!
//! ```text
//! cargo run --release --example wuserver -- [ENDPOINT] [--count N]
//! ```
//! Binds a PUB to ENDPOINT (default `tcp://*:5556`) and publishes updates
//! of the form `"ZIPCODE TEMPERATURE HUMIDITY"` (a five-digit zip code),
//! N of them (default: until killed).

use ferrozmq::{Context, SocketType};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[path = "shared/help.rs"]
mod help;

fn main() -> ExitCode {
    if help::requested(include_str!("wuserver.rs")) {
        return ExitCode::SUCCESS;
    }
    let mut args = std::env::args().skip(1);
    let mut endpoint = "tcp://*:5556".to_owned();
    let mut count = u64::MAX;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--count" => match args.next().and_then(|s| s.parse().ok()) {
                Some(n) => count = n,
                None => {
                    eprintln!("wuserver: --count needs a number");
                    return ExitCode::from(2);
                }
            },
            s => endpoint = s.to_owned(),
        }
    }
    let ctx = Context::new();
    let publisher = match ctx.socket(SocketType::Pub) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wuserver: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = publisher.bind(&endpoint) {
        eprintln!("wuserver: bind {endpoint}: {e}");
        return ExitCode::FAILURE;
    }
    // Weather needs no cryptographic randomness: a xorshift seeded by the
    // clock is enough.
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..count {
        let update = format!(
            "{:05} {} {}",
            next(100_000),
            next(215) as i64 - 80,
            next(50) + 10
        );
        if let Err(e) = publisher.send(update) {
            eprintln!("wuserver: {}", e.error);
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
