//! The roles, played by libzmq 4.3.4 through the `zmq` crate, with its
//! defaults (one I/O thread, HWM 1000, backlog 100).

use crate::child::{
    clock_batch, cpu_us, max_messages, mean_round_trips, now_ns, payload, report, status_kb,
    time_round_trips,
};
use crate::role::{
    end_marker, match_messages, report_inproc_rate, topic, PubMode, Role, SubCount, SubMode,
    HEARTBEAT_TIMEOUT, MATCH_PREFIXES, SETTLE,
};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn err(what: &str) -> impl Fn(zmq::Error) -> String + '_ {
    move |e| format!("libzmq {what}: {e}")
}

fn socket(ctx: &zmq::Context, ty: zmq::SocketType) -> Result<zmq::Socket, String> {
    ctx.socket(ty).map_err(err("socket"))
}

fn bind(s: &zmq::Socket, ep: &str) -> Result<String, String> {
    s.bind(ep).map_err(err("bind"))?;
    s.get_last_endpoint()
        .map_err(err("last endpoint"))?
        .map_err(|_| "libzmq last endpoint is not UTF-8".to_owned())
}

/// Turns ZMTP heartbeats on for `s`'s later connections, if asked to.
fn heartbeats(s: &zmq::Socket, ivl: Option<Duration>) -> Result<(), String> {
    let Some(ivl) = ivl else { return Ok(()) };
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    s.set_heartbeat_ivl(ms(ivl)).map_err(err("heartbeat_ivl"))?;
    s.set_heartbeat_timeout(ms(HEARTBEAT_TIMEOUT))
        .map_err(err("heartbeat_timeout"))
}

/// Forwards one whole (possibly multipart) message from `s` back to `s`.
fn echo(s: &zmq::Socket, msg: &mut zmq::Message) -> Result<(), String> {
    loop {
        s.recv(msg, 0).map_err(err("recv"))?;
        let more = msg.get_more();
        let part = std::mem::replace(msg, zmq::Message::new());
        s.send(part, if more { zmq::SNDMORE } else { 0 })
            .map_err(err("send"))?;
        if !more {
            return Ok(());
        }
    }
}

// The `zmq` crate has no setter for ZMQ_XPUB_NODROP; libzmq itself is
// linked in through it, so we call the C function directly.
extern "C" {
    fn zmq_setsockopt(
        socket: *mut libc::c_void,
        option: libc::c_int,
        value: *const libc::c_void,
        len: libc::size_t,
    ) -> libc::c_int;
}

/// ZMQ_XPUB_NODROP, from zmq.h.
const ZMQ_XPUB_NODROP: libc::c_int = 69;

fn set_xpub_nodrop(s: &mut zmq::Socket, on: bool) -> Result<(), String> {
    let v: libc::c_int = on.into();
    // SAFETY: a live socket, and a pointer to an int of the size given.
    let rc = unsafe {
        zmq_setsockopt(
            s.as_mut_ptr(),
            ZMQ_XPUB_NODROP,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>(),
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err("libzmq xpub_nodrop: zmq_setsockopt failed".into()),
    }
}

/// REP: echoes `size`-byte requests until an error.
fn rep_serve(s: &zmq::Socket, size: usize) -> Result<(), String> {
    let mut msg = zmq::Message::new();
    loop {
        s.recv(&mut msg, 0).map_err(err("recv"))?;
        if msg.len() != size {
            return Err(format!("request of {} bytes", msg.len()));
        }
        let m = std::mem::replace(&mut msg, zmq::Message::new());
        s.send(m, 0).map_err(err("send"))?;
    }
}

/// REQ: round trips for `secs` after a warm-up; reports `count` and
/// `rtt_ns`.
fn req_rounds(s: &zmq::Socket, size: usize, secs: f64) -> Result<(), String> {
    let body = payload(size);
    let mut reply = zmq::Message::new();
    let round_trip = || -> Result<(), String> {
        s.send(&body[..], 0).map_err(err("send"))?;
        s.recv(&mut reply, 0).map_err(err("recv"))?;
        if reply.len() != size {
            return Err(format!("reply of {} bytes", reply.len()));
        }
        Ok(())
    };
    mean_round_trips(secs, round_trip)
}

/// PULL: counts `size`-byte messages until an empty one.
fn pull_count(s: &zmq::Socket, size: usize) -> Result<u64, String> {
    let mut msg = zmq::Message::new();
    let mut n = 0u64;
    loop {
        s.recv(&mut msg, 0).map_err(err("recv"))?;
        match msg.len() {
            0 => return Ok(n),
            l if l == size => n += 1,
            l => return Err(format!("message {n} has {l} bytes")),
        }
    }
}

/// PUSH: sends for `secs` (or `max_messages`), then the empty end
/// marker; returns how many were sent.
fn push_for(s: &zmq::Socket, size: usize, secs: f64) -> Result<u64, String> {
    let body = payload(size);
    let (batch, limit) = (clock_batch(size), Duration::from_secs_f64(secs));
    let t = Instant::now();
    let mut n = 0u64;
    let max = max_messages(size, secs);
    while n < max && t.elapsed() < limit {
        for _ in 0..batch {
            s.send(&body[..], 0).map_err(err("send"))?;
        }
        n += batch;
    }
    s.send(&[] as &[u8], 0).map_err(err("send"))?;
    Ok(n)
}

/// Where the inproc rows' two threads meet.
const INPROC: &str = "inproc://bench";

/// Plays `role`; returns once its work is done and reported.
pub fn run(role: &Role) -> Result<(), String> {
    let ctx = zmq::Context::new();
    match role {
        Role::RepServer {
            bind: ep,
            size,
            heartbeat,
        } => {
            let s = socket(&ctx, zmq::REP)?;
            heartbeats(&s, *heartbeat)?;
            report("endpoint", bind(&s, ep)?);
            rep_serve(&s, *size)?;
        }
        Role::ReqClient { ep, size, secs } => {
            let s = socket(&ctx, zmq::REQ)?;
            s.set_rcvtimeo(30_000).map_err(err("rcvtimeo"))?;
            s.connect(ep).map_err(err("connect"))?;
            req_rounds(&s, *size, *secs)?;
        }
        Role::InprocLat { size, secs } => {
            let rep = socket(&ctx, zmq::REP)?;
            rep.bind(INPROC).map_err(err("bind"))?;
            let size = *size;
            // Ends with the process.
            std::thread::spawn(move || rep_serve(&rep, size));
            let req = socket(&ctx, zmq::REQ)?;
            req.set_rcvtimeo(30_000).map_err(err("rcvtimeo"))?;
            req.connect(INPROC).map_err(err("connect"))?;
            req_rounds(&req, size, *secs)?;
        }
        Role::InprocThr { size, secs } => {
            let pull = socket(&ctx, zmq::PULL)?;
            pull.bind(INPROC).map_err(err("bind"))?;
            let size = *size;
            let receiver =
                std::thread::spawn(move || pull_count(&pull, size).map(|n| (n, Instant::now())));
            let push = socket(&ctx, zmq::PUSH)?;
            push.set_sndtimeo(30_000).map_err(err("sndtimeo"))?;
            push.connect(INPROC).map_err(err("connect"))?;
            let start = Instant::now();
            let sent = push_for(&push, size, *secs)?;
            let (received, end) = receiver
                .join()
                .map_err(|_| "libzmq receiver panicked".to_owned())??;
            report_inproc_rate(sent, received, end.duration_since(start))?;
        }
        Role::TailClient {
            ep,
            size,
            count,
            heartbeat,
        } => {
            let s = socket(&ctx, zmq::REQ)?;
            s.set_rcvtimeo(30_000).map_err(err("rcvtimeo"))?;
            heartbeats(&s, *heartbeat)?;
            s.connect(ep).map_err(err("connect"))?;
            let body = payload(*size);
            let mut reply = zmq::Message::new();
            time_round_trips(*count, || {
                s.send(&body[..], 0).map_err(err("send"))?;
                s.recv(&mut reply, 0).map_err(err("recv"))?;
                if reply.len() != *size {
                    return Err(format!("reply of {} bytes", reply.len()));
                }
                Ok(())
            })?;
        }
        Role::PullServer { bind: ep, size } => {
            let s = socket(&ctx, zmq::PULL)?;
            report("endpoint", bind(&s, ep)?);
            let n = pull_count(&s, *size)?;
            report("last_ns", now_ns());
            report("count", n);
        }
        Role::PushClient { ep, size, secs } => {
            let s = socket(&ctx, zmq::PUSH)?;
            s.set_sndtimeo(30_000).map_err(err("sndtimeo"))?;
            s.connect(ep).map_err(err("connect"))?;
            std::thread::sleep(SETTLE);
            let start_ns = now_ns();
            let n = push_for(&s, *size, *secs)?;
            report("start_ns", start_ns);
            report("count", n);
            crate::child::park_forever();
        }
        Role::RouterEcho { bind: ep } => {
            let s = socket(&ctx, zmq::ROUTER)?;
            report("endpoint", bind(&s, ep)?);
            let mut msg = zmq::Message::new();
            loop {
                echo(&s, &mut msg)?;
            }
        }
        Role::ReqMany {
            ep,
            clients,
            size,
            secs,
        } => {
            // One thread drives every client with zmq_poll.
            let sockets = (0..*clients)
                .map(|_| {
                    let s = socket(&ctx, zmq::REQ)?;
                    s.set_linger(0).map_err(err("linger"))?;
                    s.set_rcvtimeo(30_000).map_err(err("rcvtimeo"))?;
                    s.connect(ep).map_err(err("connect"))?;
                    Ok(s)
                })
                .collect::<Result<Vec<_>, String>>()?;
            let body = payload(*size);
            let mut reply = zmq::Message::new();
            let mut check = |s: &zmq::Socket, flags| -> Result<(), String> {
                s.recv(&mut reply, flags).map_err(err("recv"))?;
                match reply.len() {
                    l if l == *size => Ok(()),
                    l => Err(format!("reply of {l} bytes")),
                }
            };
            for s in &sockets {
                s.send(&body[..], 0).map_err(err("send"))?;
                check(s, 0)?;
            }
            let limit = Duration::from_secs_f64(*secs);
            let start = Instant::now();
            for s in &sockets {
                s.send(&body[..], 0).map_err(err("send"))?;
            }
            let mut items: Vec<_> = sockets
                .iter()
                .map(|s| s.as_poll_item(zmq::POLLIN))
                .collect();
            let (mut total, mut active) = (0u64, sockets.len());
            while active > 0 {
                if zmq::poll(&mut items, 30_000).map_err(err("poll"))? == 0 {
                    return Err("no reply within 30 s".into());
                }
                for (i, s) in sockets.iter().enumerate() {
                    if !items[i].is_readable() {
                        continue;
                    }
                    check(s, zmq::DONTWAIT)?;
                    total += 1;
                    if start.elapsed() < limit {
                        s.send(&body[..], 0).map_err(err("send"))?;
                    } else {
                        items[i].set_events(zmq::PollEvents::empty());
                        active -= 1;
                    }
                }
            }
            report("count", total);
            report("rate", total as f64 / start.elapsed().as_secs_f64());
        }
        Role::AsyncReq { .. } => return Err("libzmq has no async adapter".into()),
        Role::ReqThreads {
            ep,
            clients,
            size,
            secs,
        } => {
            let barrier = Arc::new(Barrier::new(clients + 1));
            let limit = Duration::from_secs_f64(*secs);
            let threads: Vec<_> = (0..*clients)
                .map(|_| {
                    let (ctx, barrier, ep, size) =
                        (ctx.clone(), barrier.clone(), ep.clone(), *size);
                    std::thread::spawn(move || -> Result<(u64, Instant), String> {
                        let s = socket(&ctx, zmq::REQ)?;
                        s.set_rcvtimeo(30_000).map_err(err("rcvtimeo"))?;
                        s.set_linger(0).map_err(err("linger"))?;
                        s.connect(&ep).map_err(err("connect"))?;
                        let body = payload(size);
                        let mut reply = zmq::Message::new();
                        let mut round_trip = || -> Result<(), String> {
                            s.send(&body[..], 0).map_err(err("send"))?;
                            s.recv(&mut reply, 0).map_err(err("recv"))?;
                            if reply.len() != size {
                                return Err(format!("reply of {} bytes", reply.len()));
                            }
                            Ok(())
                        };
                        let first = round_trip();
                        barrier.wait();
                        first?;
                        let (t, mut n) = (Instant::now(), 0u64);
                        while t.elapsed() < limit {
                            round_trip()?;
                            n += 1;
                        }
                        Ok((n, Instant::now()))
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            let (mut total, mut end) = (0u64, start);
            for t in threads {
                let (n, e) = t.join().map_err(|_| "client thread panicked")??;
                total += n;
                end = end.max(e);
            }
            report("count", total);
            report("rate", total as f64 / (end - start).as_secs_f64());
        }
        Role::RouterCount { bind: ep, n } => {
            let s = socket(&ctx, zmq::ROUTER)?;
            s.set_rcvtimeo(90_000).map_err(err("rcvtimeo"))?;
            report("endpoint", bind(&s, ep)?);
            std::thread::sleep(Duration::from_millis(300));
            report("base_rss_kb", status_kb("VmRSS"));
            let mut ids = std::collections::HashSet::new();
            while ids.len() < *n {
                let frames = s.recv_multipart(0).map_err(err("recv"))?;
                ids.insert(frames.into_iter().next().unwrap_or_default());
            }
            crate::child::report_all_in_and_park();
        }
        Role::DealerMany { ep, n } => {
            let sockets = (0..*n)
                .map(|_| {
                    let s = socket(&ctx, zmq::DEALER)?;
                    s.set_linger(0).map_err(err("linger"))?;
                    Ok(s)
                })
                .collect::<Result<Vec<_>, String>>()?;
            report("start_ns", now_ns());
            for s in &sockets {
                s.connect(ep).map_err(err("connect"))?;
            }
            for s in &sockets {
                s.send("hi", 0).map_err(err("send"))?;
            }
            report("sent", n);
            crate::child::park_forever();
        }
        Role::Idle { secs } => {
            let pull = socket(&ctx, zmq::PULL)?;
            let ep = bind(&pull, "tcp://127.0.0.1:*")?;
            let push = socket(&ctx, zmq::PUSH)?;
            push.connect(&ep).map_err(err("connect"))?;
            push.send("x", 0).map_err(err("send"))?;
            pull.set_rcvtimeo(10_000).map_err(err("rcvtimeo"))?;
            pull.recv_bytes(0).map_err(err("recv"))?;
            std::thread::sleep(Duration::from_millis(200));
            let before = cpu_us();
            std::thread::sleep(Duration::from_secs_f64(*secs));
            report("cpu_us", cpu_us() - before);
            crate::child::park_forever();
        }
        Role::Publisher {
            bind: ep,
            size,
            subscriptions,
            secs,
            mode,
        } => {
            let mut s = socket(&ctx, zmq::XPUB)?;
            // Verbose: every subscriber's "subscribe to everything" reaches
            // us, not just the first, so we can count them in.
            s.set_xpub_verbose(true).map_err(err("xpub_verbose"))?;
            set_xpub_nodrop(&mut s, *mode == PubMode::Fanout)?;
            // A blocked send or a missing subscriber fails the run rather
            // than hanging it.
            s.set_sndtimeo(30_000).map_err(err("sndtimeo"))?;
            s.set_rcvtimeo(30_000).map_err(err("rcvtimeo"))?;
            report("endpoint", bind(&s, ep)?);
            let mut seen = 0;
            while seen < *subscriptions {
                let m = s.recv_bytes(0).map_err(err("recv subscription"))?;
                if m.first() == Some(&1) {
                    seen += 1;
                }
            }
            let bodies: Vec<Vec<u8>> = match mode {
                PubMode::Match => match_messages(),
                _ => vec![payload(*size).to_vec()],
            };
            let (batch, limit) = (clock_batch(*size), Duration::from_secs_f64(*secs));
            let max = max_messages(*size, *secs);
            let (start_ns, cpu_before) = (now_ns(), cpu_us());
            let t = Instant::now();
            let mut n = 0u64;
            while n < max && t.elapsed() < limit {
                for i in n..n + batch {
                    let body = &bodies[i as usize % bodies.len()];
                    s.send(&body[..], 0).map_err(err("send"))?;
                }
                n += batch;
                if *mode == PubMode::Slow {
                    crate::role::pace(n, t);
                }
            }
            let elapsed = t.elapsed().as_secs_f64();
            let cpu = cpu_us() - cpu_before;
            if *mode != PubMode::Match {
                s.send(&end_marker(n)[..], 0).map_err(err("send"))?;
            }
            report("start_ns", start_ns);
            report("count", n);
            report("rate", n as f64 / elapsed);
            report("cpu_us", cpu);
            if *mode == PubMode::Slow {
                // Any copy of the end marker may be dropped at the HWM:
                // repeat it until the parent has what it needs.
                loop {
                    std::thread::sleep(Duration::from_millis(1));
                    s.send(&end_marker(n)[..], 0).map_err(err("send"))?;
                }
            }
            crate::child::park_forever();
        }
        Role::Subscribers { ep, k, size, mode } => {
            let threads: Vec<_> = (0..*k)
                .map(|i| {
                    let (ctx, ep, size, mode, k) = (ctx.clone(), ep.clone(), *size, *mode, *k);
                    std::thread::spawn(move || -> Result<(u64, u128), String> {
                        let s = socket(&ctx, zmq::SUB)?;
                        match mode {
                            SubMode::Match => {
                                for j in 0..MATCH_PREFIXES {
                                    s.set_subscribe(topic(i * MATCH_PREFIXES + j).as_bytes())
                                        .map_err(err("subscribe"))?;
                                }
                            }
                            _ => s.set_subscribe(b"").map_err(err("subscribe"))?,
                        }
                        s.connect(&ep).map_err(err("connect"))?;
                        let mut msg = zmq::Message::new();
                        if mode == SubMode::Match {
                            // Only the publisher is timed: just drain.
                            loop {
                                s.recv(&mut msg, 0).map_err(err("recv"))?;
                            }
                        }
                        s.set_rcvtimeo(30_000).map_err(err("rcvtimeo"))?;
                        let mut c = SubCount::new(size, mode, i == k - 1);
                        loop {
                            s.recv(&mut msg, 0).map_err(err("recv"))?;
                            if c.take(msg.len(), &msg)? {
                                return Ok((c.n, now_ns()));
                            }
                            if let Some(d) = c.pace() {
                                std::thread::sleep(d);
                            }
                        }
                    })
                })
                .collect();
            crate::child::join_subscribers(threads, *k, *mode)?;
        }
    }
    Ok(())
}
