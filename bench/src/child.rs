//! What every child process shares: reporting to the parent, the watchdog,
//! exiting when the parent lets go, and the process-level probes (clock,
//! memory, CPU).
//!
//! A child talks to the parent through stdout lines of the form
//! `@key value`; anything else it prints is ignored. It reports
//! `@error <text>` and exits non-zero on failure. When its stdin closes (the
//! parent is done with it, or the parent died) it reports `@vmhwm_kb` and
//! exits at once, without running destructors.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Prints one `@key value` line for the parent.
pub fn report(key: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "@{key} {value}");
    let _ = out.flush();
}

/// Reports an error and exits.
pub fn fail(msg: &str) -> ! {
    report("error", msg.replace('\n', " "));
    std::process::exit(1)
}

/// Wall-clock time in ns since the epoch (CLOCK_REALTIME): comparable
/// between processes on the same machine.
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// A field of /proc/self/status in kB (`VmRSS`, `VmHWM`), 0 if unknown.
pub fn status_kb(field: &str) -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    s.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// User plus system CPU time of this process (all threads), in µs.
pub fn cpu_us() -> u64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// Starts the two background guards of a child: a watchdog that ends the
/// process after `limit`, and a stdin watcher that ends it (reporting
/// `@vmhwm_kb`) when the parent closes our stdin.
pub fn start_guards(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        fail(&format!("watchdog: child still running after {limit:?}"));
    });
    std::thread::spawn(|| {
        let stdin = std::io::stdin();
        let mut line = String::new();
        let mut lock = stdin.lock();
        // Any line or EOF means "finish now".
        let _ = lock.read_line(&mut line);
        report("vmhwm_kb", status_kb("VmHWM"));
        std::process::exit(0);
    });
}

/// The end of a server that counted connections in (`conn1000`, the
/// handshake rows): when the last came, and, once their buffers have
/// settled, the resident memory; then parks until the parent is done.
pub fn report_all_in_and_park() -> ! {
    report("all_in_ns", now_ns());
    std::thread::sleep(Duration::from_millis(500));
    report("rss_kb", status_kb("VmRSS"));
    park_forever()
}

/// Blocks this thread until the stdin watcher ends the process.
pub fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// How often a sender looks at the clock: about every 4 MiB, at most every
/// 1024 messages.
pub fn clock_batch(size: usize) -> u64 {
    (4 * 1024 * 1024 / size.max(1)).clamp(1, 1024) as u64
}

/// The most messages a throughput sender sends in `secs`: 3 GB/s worth.
/// Senders stop at `secs` or at this, whichever comes first, so that an
/// implementation whose `send` queues without bound (zmq.rs) does not turn
/// one second of sending into a long drain.
pub fn max_messages(size: usize, secs: f64) -> u64 {
    ((secs * 3e9) / size.max(1) as f64).max(1.0) as u64
}

/// The payload every sender sends.
pub fn payload(size: usize) -> bytes::Bytes {
    bytes::Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// Round trips for [`crate::role::WARMUP`], untimed: connections up,
/// caches warm.
fn warm_up(round_trip: &mut impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let t = Instant::now();
    while t.elapsed() < crate::role::WARMUP {
        round_trip()?;
    }
    Ok(())
}

/// Warms up for [`crate::role::WARMUP`], then makes round trips for
/// `secs` and reports `count` and `rtt_ns` (their mean). Every
/// implementation's REQ client times its round trips this way.
pub fn mean_round_trips(
    secs: f64,
    mut round_trip: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    warm_up(&mut round_trip)?;
    let limit = Duration::from_secs_f64(secs);
    let (t, mut n) = (Instant::now(), 0u64);
    while t.elapsed() < limit {
        round_trip()?;
        n += 1;
    }
    let elapsed = t.elapsed();
    report("count", n);
    report("rtt_ns", elapsed.as_nanos() / u128::from(n.max(1)));
    Ok(())
}

/// Warms up for [`crate::role::WARMUP`], then times `count` calls of
/// `round_trip` one by one (`Instant` before and after each) and reports
/// their percentiles (see [`report_percentiles`]).
pub fn time_round_trips(
    count: usize,
    mut round_trip: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    warm_up(&mut round_trip)?;
    let mut ns = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        round_trip()?;
        ns.push(nanos(t.elapsed()));
    }
    report_percentiles(ns);
    Ok(())
}

/// A round trip's duration in ns (saturating: 584 years).
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Reports `count`, then `p50_ns`, `p99_ns`, `p999_ns` (nearest rank: the
/// smallest sample with at least that share of samples at or below it) and
/// `max_ns` of the round trips in `ns`.
pub fn report_percentiles(mut ns: Vec<u64>) {
    ns.sort_unstable();
    let n = ns.len();
    report("count", n);
    if n == 0 {
        return;
    }
    // ceil(n × per_mille / 1000), in integers, at least 1.
    let rank = |per_mille: usize| ns[(n * per_mille).div_ceil(1000).clamp(1, n) - 1];
    report("p50_ns", rank(500));
    report("p99_ns", rank(990));
    report("p999_ns", rank(999));
    report("max_ns", ns[n - 1]);
}

/// Waits for the subscriber threads of a PUB/SUB row and reports `count`
/// (bodies, all together) and `last_ns` (the latest end-marker arrival).
/// The slow subscriber of a lossy run (the last) is neither counted nor
/// waited for; a matching run's subscribers run until the parent lets go.
pub fn join_subscribers(
    threads: Vec<std::thread::JoinHandle<Result<(u64, u128), String>>>,
    k: usize,
    mode: crate::role::SubMode,
) -> Result<(), String> {
    use crate::role::SubMode;
    let counted = match mode {
        SubMode::Match => 0,
        SubMode::Lossy { slow_rate } if slow_rate > 0.0 => k - 1,
        _ => k,
    };
    let (mut count, mut last_ns) = (0u64, 0u128);
    for t in threads.into_iter().take(counted) {
        let (n, at) = t.join().map_err(|_| "subscriber thread panicked")??;
        count += n;
        last_ns = last_ns.max(at);
    }
    if counted > 0 {
        report("count", count);
        report("last_ns", last_ns);
    }
    park_forever()
}

/// Which end of a CURVE connection this child's sockets are, when its row
/// runs inside CURVE (the parent starts it as `curve-server` or
/// `curve-client` instead of `server` or `client`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// Sockets are CURVE servers, with the server's key pair.
    Server,
    /// Sockets are CURVE clients of that server, with the clients' pair.
    Client,
}

static CURVE: std::sync::OnceLock<Option<Curve>> = std::sync::OnceLock::new();

/// Sets, once, whether and as which end this child runs inside CURVE. A
/// child plays one role, so this holds for all its sockets, and the roles'
/// code stays the same for NULL and CURVE: each implementation's socket
/// factory asks [`curve`].
pub fn set_curve(curve: Option<Curve>) {
    let _ = CURVE.set(curve);
}

/// See [`set_curve`]; `None`: NULL, the default.
pub fn curve() -> Option<Curve> {
    CURVE.get().copied().flatten()
}

/// Raises this process's open-file limit to its hard limit: the rows with
/// 1,000 connections hold a descriptor (or, for libzmq, several) per
/// socket, more than a soft limit of 1,024 allows.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit only writes the struct we pass.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
        || lim.rlim_cur >= lim.rlim_max
    {
        return;
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: a valid rlimit, with the soft limit within the hard one.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}
