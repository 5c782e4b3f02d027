//! An echo server: replies to every request with the same frames.
//!
//! ```text
//! cargo run --release --example rep -- tcp://127.0.0.1:5555
//! ```
//! Runs until killed. Works with any ZMTP 3.x REQ or DEALER peer, such as
//! pyzmq's or libzmq's.

use ferrozmq::{Context, SocketType};
use std::process::ExitCode;

#[path = "shared/help.rs"]
mod help;

fn main() -> ExitCode {
    if help::requested(include_str!("rep.rs")) {
        return ExitCode::SUCCESS;
    }
    let Some(endpoint) = std::env::args().nth(1) else {
        eprintln!("usage: rep <endpoint-to-bind>");
        return ExitCode::from(2);
    };
    let ctx = Context::new();
    let run = || -> ferrozmq::Result<()> {
        let rep = ctx.socket(SocketType::Rep)?;
        let bound = rep.bind(&endpoint)?;
        eprintln!("rep: echoing on {bound}");
        loop {
            let request = rep.recv()?;
            rep.send(request)?;
        }
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rep: {e}");
            ExitCode::FAILURE
        }
    }
}
