//! Throughput test, receiving end: a bound PULL socket.
//!
//! Same command line and output as libzmq's `perf/local_thr`; works against
//! `remote_thr` from this crate or from libzmq:
//!
//! ```text
//! cargo run --release --example local_thr -- tcp://127.0.0.1:5556 64 1000000
//! cargo run --release --example remote_thr -- tcp://127.0.0.1:5556 64 1000000
//! ```
//!
//! As in libzmq, the clock starts when the first message arrives and stops
//! at the last, and the rate is `message-count / elapsed`. (The `bench`
//! crate of this workspace times end to end instead, from the sender's first
//! message to the receiver's last.)

use ferrozmq::{Context, SocketType};
use std::process::ExitCode;
use std::time::Instant;

#[path = "perf/common.rs"]
mod common;
#[path = "shared/help.rs"]
mod help;

fn main() -> ExitCode {
    common::main_with(
        include_str!("local_thr.rs"),
        "local_thr <bind-to> <message-size> <message-count>",
        1,
        run,
    )
}

fn run(bind_to: &str, size: usize, count: u64) -> Result<(), String> {
    let ctx = Context::new();
    let s = ctx
        .socket(SocketType::Pull)
        .map_err(|e| format!("error in socket: {e}"))?;
    s.bind(bind_to).map_err(|e| format!("error in bind: {e}"))?;
    let check = |msg: &ferrozmq::Message| -> Result<(), String> {
        if msg.len() != 1 || msg.byte_len() != size {
            return Err("message of incorrect size received".into());
        }
        Ok(())
    };
    check(&s.recv().map_err(|e| format!("error in recv: {e}"))?)?;
    let watch = Instant::now();
    for _ in 1..count {
        check(&s.recv().map_err(|e| format!("error in recv: {e}"))?)?;
    }
    // libzmq's stopwatch counts whole microseconds, and at least one.
    let elapsed_us = (watch.elapsed().as_micros() as f64).max(1.0);
    let throughput = count as f64 / elapsed_us * 1e6;
    let megabits = throughput * size as f64 * 8.0 / 1e6;
    println!("message size: {size} [B]");
    println!("message count: {count}");
    println!("mean throughput: {} [msg/s]", throughput as u64);
    println!("mean throughput: {megabits:.3} [Mb/s]");
    Ok(())
}
