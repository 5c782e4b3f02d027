//! An idle context costs no CPU: its I/O thread sleeps until something
//! happens. Counted in wake-ups of the I/O thread (its context switches),
//! not in time, so a loaded machine cannot make it flaky.
//!
//! One test per binary: the count is of every thread named `ferrozmq-io`
//! in this process.

mod util;

use ferrozmq::{Message, SocketType};
use std::time::Duration;
use util::*;

/// Context switches so far of this process's I/O threads.
fn io_thread_switches() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = task.expect("task entry").path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if name.trim() != "ferrozmq-io" {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        for line in status.lines() {
            if line.contains("ctxt_switches:") {
                let n = line.split_whitespace().last().unwrap_or("0");
                total += n.parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

#[test]
fn io_thread_sleeps_while_a_blocked_recv_waits_on_a_quiet_connection() {
    let ctx = ctx();
    let rep = socket(&ctx, SocketType::Rep);
    let ep = bind_local(&rep);
    let req = socket(&ctx, SocketType::Req);
    req.connect(&ep).expect("connect");
    // A server blocked in `recv` between requests that arrive while it
    // waits: reading is handed over to its thread.
    let server = std::thread::spawn(move || {
        while let Ok(m) = rep.recv_timeout(TIMEOUT) {
            if m == Message::from("stop") {
                break;
            }
            rep.send(m).expect("reply");
        }
    });
    for i in 0..20u8 {
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(round_trip(&req, vec![i]), Message::from(vec![i]));
    }
    // Quiet from here on, with the server still blocked in `recv`. The
    // hand-off is reviewed every 10 ms and the review stops once a whole
    // interval passes without activity; give it ample time to.
    std::thread::sleep(Duration::from_millis(200));
    let before = io_thread_switches();
    std::thread::sleep(Duration::from_millis(500));
    let woke = io_thread_switches() - before;
    assert!(
        woke <= 3,
        "the I/O thread woke {woke} times in 500 ms on an idle context"
    );
    send(&req, "stop", "stop");
    bounded(TIMEOUT, "server thread", move || {
        server.join().expect("server")
    });
}
