//! The guide's weather-update proxy: an XSUB/XPUB forwarder.
//!
//! ```text
//! cargo run --release --example proxy -- FRONTEND BACKEND [--stats]
//! ```
//! Connects an XSUB to the publisher at FRONTEND (e.g.
//! `tcp://127.0.0.1:5556`) and binds an XPUB at BACKEND (e.g.
//! `tcp://*:8100`) for subscribers, then forwards published messages to
//! them and their subscriptions back to the publisher until killed. The
//! proxy runs on the main thread; with `--stats`, another thread prints
//! `proxy: frontend->backend M msgs B bytes, backend->frontend M msgs B
//! bytes` once a second. Exits non-zero with the reason if a socket fails.

use ferrozmq::{proxy_steerable, Context, ProxyControl, SocketType};
use std::process::ExitCode;
use std::time::Duration;

#[path = "shared/help.rs"]
mod help;

fn main() -> ExitCode {
    if help::requested(include_str!("proxy.rs")) {
        return ExitCode::SUCCESS;
    }
    let mut endpoints = Vec::new();
    let mut stats = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--stats" => stats = true,
            s if s.starts_with("--") => return usage(&format!("unknown option {s}")),
            s => endpoints.push(s.to_owned()),
        }
    }
    let [frontend_ep, backend_ep] = endpoints.as_slice() else {
        return usage("expected FRONTEND and BACKEND");
    };
    match run(frontend_ep, backend_ep, stats) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("proxy: {why}\nusage: proxy FRONTEND BACKEND [--stats]");
    ExitCode::from(2)
}

fn run(frontend_ep: &str, backend_ep: &str, stats: bool) -> Result<(), ferrozmq::Error> {
    let ctx = Context::new();
    let frontend = ctx.socket(SocketType::XSub)?;
    frontend.connect(frontend_ep)?;
    let backend = ctx.socket(SocketType::XPub)?;
    let bound = backend.bind(backend_ep)?;
    eprintln!("proxy: {frontend_ep} -> {bound}");
    let control = ProxyControl::new();
    if stats {
        let control = control.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let s = control.stats();
            println!(
                "proxy: frontend->backend {} msgs {} bytes, backend->frontend {} msgs {} bytes",
                s.frontend_to_backend.messages,
                s.frontend_to_backend.bytes,
                s.backend_to_frontend.messages,
                s.backend_to_frontend.bytes,
            );
        });
    }
    // Returns only when a socket fails: nobody terminates this control.
    proxy_steerable(&frontend, &backend, None, &control)
}
