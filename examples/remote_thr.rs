//! Throughput test, sending end: a connecting PUSH socket.
//!
//! Same command line as libzmq's `perf/remote_thr`; works against
//! `local_thr` from this crate or from libzmq:
//!
//! ```text
//! cargo run --release --example remote_thr -- tcp://127.0.0.1:5556 64 1000000
//! ```
//!
//! Sends `<message-count>` messages of `<message-size>` zero bytes, then
//! waits (without limit, like libzmq's default linger) until all are
//! written, and exits. Prints nothing on success.

use bytes::Bytes;
use ferrozmq::{Context, Message, SocketType};
use std::process::ExitCode;

#[path = "perf/common.rs"]
mod common;
#[path = "shared/help.rs"]
mod help;

fn main() -> ExitCode {
    common::main_with(
        include_str!("remote_thr.rs"),
        "remote_thr <connect-to> <message-size> <message-count>",
        0,
        run,
    )
}

fn run(connect_to: &str, size: usize, count: u64) -> Result<(), String> {
    let ctx = Context::new();
    let s = ctx
        .socket(SocketType::Push)
        .map_err(|e| format!("error in socket: {e}"))?;
    // libzmq's default: keep the socket open until everything is written.
    s.set_linger(None).map_err(|e| e.to_string())?;
    s.connect(connect_to)
        .map_err(|e| format!("error in connect: {e}"))?;
    // One zeroed buffer, shared by every message (frames are refcounted).
    let payload = Bytes::from(vec![0u8; size]);
    for _ in 0..count {
        s.send(Message::from(payload.clone()))
            .map_err(|e| format!("error in send: {}", e.error))?;
    }
    drop(s);
    // Dropping the context waits for the linger to run out.
    drop(ctx);
    Ok(())
}
