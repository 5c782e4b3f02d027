//! No descriptor, thread or socket file outlives a context that used
//! ipc:// and inproc://. One test in its own binary, since descriptor and
//! thread counts are per process.

mod util;

use ferrozmq::SocketType;
use std::time::{Duration, Instant};
use util::*;

const CYCLES: usize = 50;

/// Waits (bounded) for the counts to come back to `before`, as the
/// kernel releases descriptors slightly after the calls that close them.
fn settled(before: (usize, usize)) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = (thread_count(), fd_count());
        if (now.0 <= before.0 && now.1 <= before.1) || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn nothing_outlives_the_context() {
    let dir = temp_path("leak");
    std::fs::create_dir(&dir).expect("private dir");
    let before = (thread_count(), fd_count());
    for i in 0..CYCLES {
        let ctx = ctx();
        let ipc = format!("ipc://{}/s{i}", dir.display());
        let inproc = unique_name("inproc://leak");
        let rep = socket(&ctx, SocketType::Rep);
        rep.bind(&ipc).expect("bind ipc");
        rep.bind(&inproc).expect("bind inproc");
        let wild = socket(&ctx, SocketType::Pull);
        let wild_ep = wild.bind("ipc://*").expect("bind ipc://*");
        for ep in [&ipc, &inproc] {
            let req = socket(&ctx, SocketType::Req);
            req.connect(ep).expect("connect");
            assert_eq!(strs(&round_trip_rep(&req, &rep)), ["pong"]);
        }
        // Some left connected, some with messages in flight.
        let push = socket(&ctx, SocketType::Push);
        push.connect(&wild_ep).expect("connect");
        send(&push, "in flight", "push");
        bounded(TIMEOUT, "term", move || drop(ctx.term()));
        let wild_path = std::path::PathBuf::from(wild_ep.trim_start_matches("ipc://"));
        assert!(!wild_path.exists(), "{wild_ep} left behind");
        assert!(!wild_path.parent().expect("dir").exists());
    }
    let left: Vec<_> = std::fs::read_dir(&dir).expect("read dir").collect();
    assert!(left.is_empty(), "socket files left: {left:?}");
    std::fs::remove_dir(&dir).expect("remove dir");
    let after = settled(before);
    eprintln!(
        "threads {} -> {}, fds {} -> {}",
        before.0, after.0, before.1, after.1
    );
    assert!(after.0 <= before.0, "thread leak: {before:?} -> {after:?}");
    assert!(after.1 <= before.1, "fd leak: {before:?} -> {after:?}");
}

fn round_trip_rep(req: &ferrozmq::Socket, rep: &ferrozmq::Socket) -> ferrozmq::Message {
    send(req, "ping", "req");
    recv(rep, "rep");
    send(rep, "pong", "rep");
    recv(req, "req")
}
