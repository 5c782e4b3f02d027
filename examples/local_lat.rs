//! Latency test, bound end: a REP socket that echoes every request.
//!
//! Same command line and behaviour as libzmq's `perf/local_lat`, so either
//! end can be swapped for libzmq's own tool (the wire protocol is the same):
//!
//! ```text
//! cargo run --release --example local_lat -- tcp://127.0.0.1:5555 64 100000
//! cargo run --release --example remote_lat -- tcp://127.0.0.1:5555 64 100000
//! ```
//!
//! Echoes `<roundtrip-count>` messages of `<message-size>` bytes, then waits
//! a second so that the last reply gets out, and exits.

use ferrozmq::{Context, SocketType};
use std::process::ExitCode;
use std::time::Duration;

#[path = "perf/common.rs"]
mod common;
#[path = "shared/help.rs"]
mod help;

fn main() -> ExitCode {
    common::main_with(
        include_str!("local_lat.rs"),
        "local_lat <bind-to> <message-size> <roundtrip-count>",
        0,
        run,
    )
}

fn run(bind_to: &str, size: usize, count: u64) -> Result<(), String> {
    let ctx = Context::new();
    let s = ctx
        .socket(SocketType::Rep)
        .map_err(|e| format!("error in socket: {e}"))?;
    s.bind(bind_to).map_err(|e| format!("error in bind: {e}"))?;
    for _ in 0..count {
        let msg = s.recv().map_err(|e| format!("error in recv: {e}"))?;
        if msg.len() != 1 || msg.byte_len() != size {
            return Err("message of incorrect size received".into());
        }
        s.send(msg)
            .map_err(|e| format!("error in send: {}", e.error))?;
    }
    // As libzmq's tool does: give the last reply time to leave.
    std::thread::sleep(Duration::from_secs(1));
    Ok(())
}
