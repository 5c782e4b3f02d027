//! Latency test, connecting end: a REQ socket that times round trips.
//!
//! Same command line and output as libzmq's `perf/remote_lat`; works against
//! `local_lat` from this crate or from libzmq:
//!
//! ```text
//! cargo run --release --example remote_lat -- tcp://127.0.0.1:5555 64 100000
//! ```
//!
//! Prints the average one-way latency: the elapsed time of all round trips
//! divided by twice their number, in microseconds.

use ferrozmq::{Context, Message, SocketType};
use std::process::ExitCode;
use std::time::Instant;

#[path = "perf/common.rs"]
mod common;
#[path = "shared/help.rs"]
mod help;

fn main() -> ExitCode {
    common::main_with(
        include_str!("remote_lat.rs"),
        "remote_lat <connect-to> <message-size> <roundtrip-count>",
        1,
        run,
    )
}

fn run(connect_to: &str, size: usize, count: u64) -> Result<(), String> {
    let ctx = Context::new();
    let s = ctx
        .socket(SocketType::Req)
        .map_err(|e| format!("error in socket: {e}"))?;
    s.connect(connect_to)
        .map_err(|e| format!("error in connect: {e}"))?;
    let mut msg = Message::from(vec![0u8; size]);
    let watch = Instant::now();
    for _ in 0..count {
        s.send(msg)
            .map_err(|e| format!("error in send: {}", e.error))?;
        msg = s.recv().map_err(|e| format!("error in recv: {e}"))?;
        if msg.len() != 1 || msg.byte_len() != size {
            return Err("message of incorrect size received".into());
        }
    }
    let elapsed_us = watch.elapsed().as_secs_f64() * 1e6;
    let latency = elapsed_us / (count as f64 * 2.0);
    println!("message size: {size} [B]");
    println!("roundtrip count: {count}");
    println!("average latency: {latency:.3} [us]");
    Ok(())
}
