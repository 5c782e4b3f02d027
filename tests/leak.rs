//! No thread or file-descriptor growth over 1,000 connect/close cycles.
//!
//! This binary holds a single test on purpose: thread and fd counts are
//! per process, and other tests running in parallel would disturb them.

mod util;

use ferrozmq::{Context, SocketType};
use std::time::{Duration, Instant};
use util::*;

const CYCLES: usize = 1000;
/// A new client context every this many cycles, so that context creation
/// and termination (I/O thread, poller, waker) are cycled too.
const CYCLES_PER_CONTEXT: usize = 10;
/// Slack for the test harness's own bookkeeping.
const SLACK: usize = 2;

/// Thread and fd counts of this process.
fn counts() -> (usize, usize) {
    (thread_count(), fd_count())
}

/// Threads and fds are released by the kernel (and accepted connections
/// by the server's I/O thread) slightly after the calls that end them
/// return; wait until the counts are back within `SLACK` of `target`, or
/// give up after a bounded time and return what they are.
fn settle(target: (usize, usize)) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = counts();
        if (now.0 <= target.0 + SLACK && now.1 <= target.1 + SLACK) || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn check(what: &str, before: (usize, usize), after: (usize, usize)) {
    eprintln!(
        "{what}: threads {} -> {}, fds {} -> {}",
        before.0, after.0, before.1, after.1
    );
    assert!(
        after.0 <= before.0 + SLACK,
        "{what}: thread leak: {} before, {} after",
        before.0,
        after.0
    );
    assert!(
        after.1 <= before.1 + SLACK,
        "{what}: fd leak: {} before, {} after",
        before.1,
        after.1
    );
}

/// A server context with a REP thread, and client contexts with `cycles`
/// REQ sockets each doing connect + one round trip + drop. With `check`,
/// also verifies that the still-running server holds nothing per client.
fn run(cycles: usize, check_server: bool) {
    let server_ctx = ctx();
    let server = RepServer::start(&server_ctx, "leak");
    let with_server = counts();
    let mut client_ctx: Option<Context> = None;
    for i in 0..cycles {
        if i % CYCLES_PER_CONTEXT == 0 {
            client_ctx = Some(ctx());
        }
        let c = client_ctx.as_ref().expect("client context");
        let req = socket(c, SocketType::Req);
        req.connect(&server.endpoint).expect("connect");
        let reply = round_trip(&req, format!("cycle {i}"));
        assert_eq!(strs(&reply), ["leak".to_string(), format!("cycle {i}")]);
    }
    bounded(TIMEOUT, "client context drop", move || drop(client_ctx));
    if check_server {
        check(
            "server still running, clients gone",
            with_server,
            settle(with_server),
        );
    }
    assert_eq!(server.stop(), cycles);
    bounded(TIMEOUT, "server context drop", move || drop(server_ctx));
}

#[test]
fn no_thread_or_fd_growth_over_1000_cycles() {
    // Warm up anything allocated once per process.
    run(CYCLES_PER_CONTEXT, false);
    let baseline = counts();

    let started = Instant::now();
    run(CYCLES, true);
    eprintln!("{CYCLES} cycles in {:?}", started.elapsed());

    check("all contexts dropped", baseline, settle(baseline));
}
