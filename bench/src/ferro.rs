//! The roles, played by ferrozmq.

use crate::child::{
    clock_batch, cpu_us, max_messages, mean_round_trips, now_ns, payload, report, status_kb,
    time_round_trips, Curve,
};
use crate::role::{
    end_marker, match_messages, report_inproc_rate, topic, PubMode, Role, SubCount, SubMode,
    CURVE_CLIENT_PUBLIC, CURVE_CLIENT_SECRET, CURVE_SERVER_PUBLIC, CURVE_SERVER_SECRET,
    HEARTBEAT_TIMEOUT, MATCH_PREFIXES, SETTLE,
};
use bytes::Bytes;
use ferrozmq::{Context, Events, Message, Poller, Socket, SocketType};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Where the inproc rows' two threads meet.
const INPROC: &str = "inproc://bench";

fn err(what: &str) -> impl Fn(ferrozmq::Error) -> String + '_ {
    move |e| format!("ferrozmq {what}: {e}")
}

fn send(s: &Socket, msg: Message) -> Result<(), String> {
    s.send(msg)
        .map_err(|e| format!("ferrozmq send: {}", e.error))
}

/// A socket of type `ty`, with this child's CURVE keys if the row runs
/// inside CURVE ([`crate::child::curve`]).
fn socket(ctx: &Context, ty: SocketType) -> Result<Socket, String> {
    let s = ctx.socket(ty).map_err(err("socket"))?;
    match crate::child::curve() {
        None => {}
        Some(Curve::Server) => {
            s.set_curve_server(true).map_err(err("curve_server"))?;
            s.set_curve_secretkey(CURVE_SERVER_SECRET)
                .map_err(err("curve_secretkey"))?;
            s.set_curve_publickey(CURVE_SERVER_PUBLIC)
                .map_err(err("curve_publickey"))?;
        }
        Some(Curve::Client) => {
            s.set_curve_secretkey(CURVE_CLIENT_SECRET)
                .map_err(err("curve_secretkey"))?;
            s.set_curve_publickey(CURVE_CLIENT_PUBLIC)
                .map_err(err("curve_publickey"))?;
            s.set_curve_serverkey(CURVE_SERVER_PUBLIC)
                .map_err(err("curve_serverkey"))?;
        }
    }
    Ok(s)
}

/// Turns ZMTP heartbeats on for `s`'s later connections, if asked to.
fn heartbeats(s: &Socket, ivl: Option<Duration>) {
    if ivl.is_some() {
        s.set_heartbeat_ivl(ivl).unwrap();
        s.set_heartbeat_timeout(Some(HEARTBEAT_TIMEOUT)).unwrap();
    }
}

/// REP: echoes `size`-byte requests until an error.
fn rep_serve(s: &Socket, size: usize) -> Result<(), String> {
    loop {
        let m = s.recv().map_err(err("recv"))?;
        if m.byte_len() != size {
            return Err(format!("request of {} bytes", m.byte_len()));
        }
        send(s, m)?;
    }
}

/// REQ: round trips for `secs` after a warm-up; reports `count` and
/// `rtt_ns`.
fn req_rounds(s: &Socket, size: usize, secs: f64) -> Result<(), String> {
    let msg = Message::from(payload(size));
    let round_trip = || -> Result<(), String> {
        send(s, msg.clone())?;
        let r = s.recv().map_err(err("recv"))?;
        if r.byte_len() != size {
            return Err(format!("reply of {} bytes", r.byte_len()));
        }
        Ok(())
    };
    mean_round_trips(secs, round_trip)
}

/// PULL: counts `size`-byte messages until an empty one.
fn pull_count(s: &Socket, size: usize) -> Result<u64, String> {
    let mut n = 0u64;
    loop {
        let m = s.recv().map_err(err("recv"))?;
        match m.byte_len() {
            0 => return Ok(n),
            l if l == size => n += 1,
            l => return Err(format!("message {n} has {l} bytes")),
        }
    }
}

/// PUSH: sends for `secs` (or `max_messages`), then the empty end
/// marker; returns how many were sent.
fn push_for(s: &Socket, size: usize, secs: f64) -> Result<u64, String> {
    let body = payload(size);
    let (batch, limit) = (clock_batch(size), Duration::from_secs_f64(secs));
    let t = Instant::now();
    let mut n = 0u64;
    let max = max_messages(size, secs);
    while n < max && t.elapsed() < limit {
        for _ in 0..batch {
            send(s, Message::from(body.clone()))?;
        }
        n += batch;
    }
    send(s, Message::from(Bytes::new()))?;
    Ok(n)
}

/// Plays `role`; returns once its work is done and reported.
pub fn run(role: &Role) -> Result<(), String> {
    let ctx = Context::new();
    match role {
        Role::RepServer {
            bind,
            size,
            heartbeat,
        } => {
            let s = socket(&ctx, SocketType::Rep)?;
            heartbeats(&s, *heartbeat);
            report("endpoint", s.bind(bind).map_err(err("bind"))?);
            rep_serve(&s, *size)?;
        }
        Role::ReqClient { ep, size, secs } => {
            let s = socket(&ctx, SocketType::Req)?;
            s.set_rcvtimeo(Some(Duration::from_secs(30)))
                .map_err(err("option"))?;
            s.connect(ep).map_err(err("connect"))?;
            req_rounds(&s, *size, *secs)?;
        }
        Role::InprocLat { size, secs } => {
            let rep = socket(&ctx, SocketType::Rep)?;
            rep.bind(INPROC).map_err(err("bind"))?;
            let size = *size;
            // Ends with the process.
            std::thread::spawn(move || rep_serve(&rep, size));
            let req = socket(&ctx, SocketType::Req)?;
            req.set_rcvtimeo(Some(Duration::from_secs(30)))
                .map_err(err("option"))?;
            req.connect(INPROC).map_err(err("connect"))?;
            req_rounds(&req, size, *secs)?;
        }
        Role::InprocThr { size, secs } => {
            let pull = socket(&ctx, SocketType::Pull)?;
            pull.bind(INPROC).map_err(err("bind"))?;
            let size = *size;
            let receiver =
                std::thread::spawn(move || pull_count(&pull, size).map(|n| (n, Instant::now())));
            let push = socket(&ctx, SocketType::Push)?;
            push.set_sndtimeo(Some(Duration::from_secs(30)))
                .map_err(err("option"))?;
            push.connect(INPROC).map_err(err("connect"))?;
            let start = Instant::now();
            let sent = push_for(&push, size, *secs)?;
            let (received, end) = receiver
                .join()
                .map_err(|_| "ferrozmq receiver panicked".to_owned())??;
            report_inproc_rate(sent, received, end.duration_since(start))?;
        }
        Role::TailClient {
            ep,
            size,
            count,
            heartbeat,
        } => {
            let s = socket(&ctx, SocketType::Req)?;
            s.set_rcvtimeo(Some(Duration::from_secs(30)))
                .map_err(err("option"))?;
            heartbeats(&s, *heartbeat);
            s.connect(ep).map_err(err("connect"))?;
            let msg = Message::from(payload(*size));
            time_round_trips(*count, || {
                send(&s, msg.clone())?;
                let r = s.recv().map_err(err("recv"))?;
                if r.byte_len() != *size {
                    return Err(format!("reply of {} bytes", r.byte_len()));
                }
                Ok(())
            })?;
        }
        Role::PullServer { bind, size } => {
            let s = socket(&ctx, SocketType::Pull)?;
            report("endpoint", s.bind(bind).map_err(err("bind"))?);
            let n = pull_count(&s, *size)?;
            report("last_ns", now_ns());
            report("count", n);
        }
        Role::PushClient { ep, size, secs } => {
            let s = socket(&ctx, SocketType::Push)?;
            s.set_linger(Some(Duration::from_secs(60)))
                .map_err(err("option"))?;
            s.set_sndtimeo(Some(Duration::from_secs(30)))
                .map_err(err("option"))?;
            s.connect(ep).map_err(err("connect"))?;
            std::thread::sleep(SETTLE);
            let start_ns = now_ns();
            let n = push_for(&s, *size, *secs)?;
            report("start_ns", start_ns);
            report("count", n);
            // Stay up (and keep writing) until the parent lets go.
            crate::child::park_forever();
        }
        Role::RouterEcho { bind } => {
            let s = socket(&ctx, SocketType::Router)?;
            report("endpoint", s.bind(bind).map_err(err("bind"))?);
            loop {
                let m = s.recv().map_err(err("recv"))?;
                send(&s, m)?;
            }
        }
        Role::AsyncReq {
            ep,
            clients,
            size,
            secs,
        } => async_req(&ctx, ep, *clients, *size, *secs)?,
        Role::ReqMany {
            ep,
            clients,
            size,
            secs,
        } => {
            // One thread drives every client through a poller, as zmq.rs's
            // tasks share one runtime thread.
            let sockets = (0..*clients)
                .map(|_| {
                    let s = socket(&ctx, SocketType::Req)?;
                    s.connect(ep).map_err(err("connect"))?;
                    Ok(s)
                })
                .collect::<Result<Vec<_>, String>>()?;
            let msg = Message::from(payload(*size));
            let check = |r: Message| -> Result<(), String> {
                match r.byte_len() {
                    l if l == *size => Ok(()),
                    l => Err(format!("reply of {l} bytes")),
                }
            };
            for s in &sockets {
                send(s, msg.clone())?;
                check(
                    s.recv_timeout(Duration::from_secs(30))
                        .map_err(err("recv"))?,
                )?;
            }
            let mut poller = Poller::new();
            for s in &sockets {
                poller.add(s, Events::IN);
            }
            let limit = Duration::from_secs_f64(*secs);
            let start = Instant::now();
            for s in &sockets {
                send(s, msg.clone())?;
            }
            let (mut total, mut active) = (0u64, sockets.len());
            while active > 0 {
                if poller
                    .poll(Some(Duration::from_secs(30)))
                    .map_err(err("poll"))?
                    == 0
                {
                    return Err("no reply within 30 s".into());
                }
                for (i, s) in sockets.iter().enumerate() {
                    if !poller.events(i).is_readable() {
                        continue;
                    }
                    check(s.try_recv().map_err(err("recv"))?)?;
                    total += 1;
                    if start.elapsed() < limit {
                        send(s, msg.clone())?;
                    } else {
                        poller.modify(i, Events::NONE);
                        active -= 1;
                    }
                }
            }
            report("count", total);
            report("rate", total as f64 / start.elapsed().as_secs_f64());
        }
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
                        let s = socket(&ctx, SocketType::Req)?;
                        s.set_rcvtimeo(Some(Duration::from_secs(30)))
                            .map_err(err("option"))?;
                        s.connect(&ep).map_err(err("connect"))?;
                        let msg = Message::from(payload(size));
                        let round_trip = || -> Result<(), String> {
                            send(&s, msg.clone())?;
                            let r = s.recv().map_err(err("recv"))?;
                            if r.byte_len() != size {
                                return Err(format!("reply of {} bytes", r.byte_len()));
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
        Role::RouterCount { bind, n } => {
            let s = socket(&ctx, SocketType::Router)?;
            s.set_rcvtimeo(Some(Duration::from_secs(90)))
                .map_err(err("option"))?;
            report("endpoint", s.bind(bind).map_err(err("bind"))?);
            std::thread::sleep(Duration::from_millis(300));
            report("base_rss_kb", status_kb("VmRSS"));
            let mut ids = std::collections::HashSet::new();
            while ids.len() < *n {
                let m = s.recv().map_err(err("recv"))?;
                ids.insert(m.first().cloned().unwrap_or_default());
            }
            crate::child::report_all_in_and_park();
        }
        Role::DealerMany { ep, n } => {
            let sockets = (0..*n)
                .map(|_| {
                    let s = socket(&ctx, SocketType::Dealer)?;
                    s.set_linger(Some(Duration::ZERO)).map_err(err("option"))?;
                    Ok(s)
                })
                .collect::<Result<Vec<_>, String>>()?;
            report("start_ns", now_ns());
            for s in &sockets {
                s.connect(ep).map_err(err("connect"))?;
            }
            for s in &sockets {
                send(s, Message::from("hi"))?;
            }
            report("sent", n);
            crate::child::park_forever();
        }
        Role::Idle { secs } => {
            let pull = socket(&ctx, SocketType::Pull)?;
            let ep = pull.bind("tcp://127.0.0.1:*").map_err(err("bind"))?;
            let push = socket(&ctx, SocketType::Push)?;
            push.connect(&ep).map_err(err("connect"))?;
            send(&push, Message::from("x"))?;
            pull.recv_timeout(Duration::from_secs(10))
                .map_err(err("recv"))?;
            std::thread::sleep(Duration::from_millis(200));
            let before = cpu_us();
            std::thread::sleep(Duration::from_secs_f64(*secs));
            report("cpu_us", cpu_us() - before);
            crate::child::park_forever();
        }
        Role::Publisher {
            bind,
            size,
            subscriptions,
            secs,
            mode,
        } => {
            let s = socket(&ctx, SocketType::XPub)?;
            // Verbose: every subscriber's "subscribe to everything" reaches
            // us, not just the first, so we can count them in.
            s.set_xpub_verbose(true).map_err(err("option"))?;
            s.set_xpub_nodrop(*mode == PubMode::Fanout)
                .map_err(err("option"))?;
            // A blocked send or a missing subscriber fails the run rather
            // than hanging it.
            s.set_sndtimeo(Some(Duration::from_secs(30)))
                .map_err(err("option"))?;
            s.set_rcvtimeo(Some(Duration::from_secs(30)))
                .map_err(err("option"))?;
            report("endpoint", s.bind(bind).map_err(err("bind"))?);
            let mut seen = 0;
            while seen < *subscriptions {
                let m = s.recv().map_err(err("recv subscription"))?;
                if m.first().and_then(|f| f.first()) == Some(&1) {
                    seen += 1;
                }
            }
            let bodies: Vec<Bytes> = match mode {
                PubMode::Match => match_messages().into_iter().map(Bytes::from).collect(),
                _ => vec![payload(*size)],
            };
            let (batch, limit) = (clock_batch(*size), Duration::from_secs_f64(*secs));
            let max = max_messages(*size, *secs);
            let (start_ns, cpu_before) = (now_ns(), cpu_us());
            let t = Instant::now();
            let mut n = 0u64;
            while n < max && t.elapsed() < limit {
                for i in n..n + batch {
                    let body = &bodies[i as usize % bodies.len()];
                    send(&s, Message::from(body.clone()))?;
                }
                n += batch;
                if *mode == PubMode::Slow {
                    crate::role::pace(n, t);
                }
            }
            let elapsed = t.elapsed().as_secs_f64();
            let cpu = cpu_us() - cpu_before;
            let dropped = s.stats().dropped_hwm;
            if *mode != PubMode::Match {
                send(&s, Message::from(Bytes::copy_from_slice(&end_marker(n))))?;
            }
            report("start_ns", start_ns);
            report("count", n);
            report("rate", n as f64 / elapsed);
            report("cpu_us", cpu);
            report("dropped_hwm", dropped);
            if *mode == PubMode::Slow {
                // Any copy of the end marker may be dropped at the HWM:
                // repeat it until the parent has what it needs.
                loop {
                    std::thread::sleep(Duration::from_millis(1));
                    send(&s, Message::from(Bytes::copy_from_slice(&end_marker(n))))?;
                }
            }
            crate::child::park_forever();
        }
        Role::Subscribers { ep, k, size, mode } => {
            let threads: Vec<_> = (0..*k)
                .map(|i| {
                    let (ctx, ep, size, mode, k) = (ctx.clone(), ep.clone(), *size, *mode, *k);
                    std::thread::spawn(move || -> Result<(u64, u128), String> {
                        let s = socket(&ctx, SocketType::Sub)?;
                        match mode {
                            SubMode::Match => {
                                for j in 0..MATCH_PREFIXES {
                                    s.subscribe(topic(i * MATCH_PREFIXES + j))
                                        .map_err(err("subscribe"))?;
                                }
                            }
                            _ => s.subscribe("").map_err(err("subscribe"))?,
                        }
                        s.connect(&ep).map_err(err("connect"))?;
                        if mode == SubMode::Match {
                            // Only the publisher is timed: just drain.
                            loop {
                                s.recv().map_err(err("recv"))?;
                            }
                        }
                        s.set_rcvtimeo(Some(Duration::from_secs(30)))
                            .map_err(err("option"))?;
                        let mut c = SubCount::new(size, mode, i == k - 1);
                        loop {
                            let m = s.recv().map_err(err("recv"))?;
                            let first = m.first().map_or(&[][..], |f| &f[..]);
                            if c.take(m.byte_len(), first)? {
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

/// One round trip through the tokio adapter, checking the reply's size.
async fn async_round_trip(
    s: &ferrozmq::tokio::AsyncSocket,
    msg: Message,
    size: usize,
) -> Result<(), String> {
    s.send(msg).await.map_err(|e| format!("send: {e}"))?;
    let r = s.recv().await.map_err(err("recv"))?;
    match r.byte_len() {
        l if l == size => Ok(()),
        l => Err(format!("reply of {l} bytes")),
    }
}

/// `clients` REQ sockets through the tokio adapter, a task each on one
/// current-thread runtime, as zmq.rs's clients run (see `Role::AsyncReq`).
fn async_req(
    ctx: &Context,
    ep: &str,
    clients: usize,
    size: usize,
    secs: f64,
) -> Result<(), String> {
    use ferrozmq::tokio::AsyncSocket;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let msg = Message::from(payload(size));
        let mut sockets = Vec::with_capacity(clients);
        for _ in 0..clients {
            let s = AsyncSocket::new(socket(ctx, SocketType::Req)?).map_err(err("async"))?;
            s.get_ref().connect(ep).map_err(err("connect"))?;
            async_round_trip(&s, msg.clone(), size).await?;
            sockets.push(s);
        }
        let warm = Instant::now();
        while warm.elapsed() < crate::role::WARMUP {
            async_round_trip(&sockets[0], msg.clone(), size).await?;
        }
        let limit = Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for s in sockets {
            let msg = msg.clone();
            tasks.spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < limit {
                    async_round_trip(&s, msg.clone(), size).await?;
                    n += 1;
                }
                Ok::<_, String>((n, Instant::now()))
            });
        }
        let (mut total, mut end) = (0u64, start);
        while let Some(r) = tasks.join_next().await {
            let (n, e) = r.map_err(|e| format!("client task: {e}"))??;
            total += n;
            end = end.max(e);
        }
        let elapsed = (end - start).as_secs_f64();
        report("count", total);
        report("rate", total as f64 / elapsed);
        report(
            "rtt_ns",
            (elapsed * 1e9 * clients as f64 / total.max(1) as f64) as u64,
        );
        Ok::<(), String>(())
    })
}
