//! The roles, played by zmq.rs (the `zeromq` crate) on tokio's
//! current-thread runtime, its fastest setting for one socket per process.

use crate::child::{
    clock_batch, cpu_us, max_messages, nanos, now_ns, payload, report, report_percentiles,
    status_kb,
};
use crate::role::{
    end_marker, match_messages, star_to_zero, topic, PubMode, Role, SubCount, SubMode,
    MATCH_PREFIXES, SETTLE, WARMUP,
};
use bytes::Bytes;
use std::time::{Duration, Instant};
use zeromq::prelude::*;
use zeromq::{
    DealerSocket, PullSocket, PushSocket, RepSocket, ReqSocket, RouterSocket, SubSocket,
    XPubSocket, ZmqError, ZmqMessage,
};

fn err(what: &str) -> impl Fn(ZmqError) -> String + '_ {
    move |e| format!("zmq.rs {what}: {e}")
}

fn byte_len(m: &ZmqMessage) -> usize {
    m.iter().map(Bytes::len).sum()
}

/// Plays `role`; returns once its work is done and reported.
pub fn run(role: &Role) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(play(role.clone()))
}

/// Keeps the runtime (and so the sockets' I/O tasks) going until the
/// parent lets go.
/// Round trips for `WARMUP`, before a latency client starts timing.
async fn warm_up(s: &mut ReqSocket, body: &Bytes) -> Result<(), String> {
    let t = Instant::now();
    while t.elapsed() < WARMUP {
        round_trip(s, body).await?;
    }
    Ok(())
}

async fn stay() -> Result<(), String> {
    std::future::pending::<()>().await;
    Ok(())
}

async fn play(role: Role) -> Result<(), String> {
    match role {
        Role::RepServer {
            heartbeat: Some(_), ..
        }
        | Role::TailClient {
            heartbeat: Some(_), ..
        } => Err("zmq.rs 0.7 has no heartbeats".into()),
        Role::RepServer { bind, size, .. } => {
            let mut s = RepSocket::new();
            let ep = s.bind(&star_to_zero(&bind)).await.map_err(err("bind"))?;
            report("endpoint", ep);
            loop {
                let m = s.recv().await.map_err(err("recv"))?;
                if byte_len(&m) != size {
                    return Err(format!("request of {} bytes", byte_len(&m)));
                }
                s.send(m).await.map_err(err("send"))?;
            }
        }
        Role::ReqClient { ep, size, secs } => {
            let mut s = ReqSocket::new();
            s.connect(&ep).await.map_err(err("connect"))?;
            let body = payload(size);
            warm_up(&mut s, &body).await?;
            let limit = Duration::from_secs_f64(secs);
            let (t, mut n) = (Instant::now(), 0u64);
            while t.elapsed() < limit {
                round_trip(&mut s, &body).await?;
                n += 1;
            }
            let elapsed = t.elapsed();
            report("count", n);
            report("rtt_ns", elapsed.as_nanos() / u128::from(n.max(1)));
            stay().await
        }
        Role::TailClient {
            ep, size, count, ..
        } => {
            let mut s = ReqSocket::new();
            s.connect(&ep).await.map_err(err("connect"))?;
            let body = payload(size);
            warm_up(&mut s, &body).await?;
            let mut ns = Vec::with_capacity(count);
            for _ in 0..count {
                let t = Instant::now();
                round_trip(&mut s, &body).await?;
                ns.push(nanos(t.elapsed()));
            }
            report_percentiles(ns);
            stay().await
        }
        Role::PullServer { bind, size } => {
            let mut s = PullSocket::new();
            let ep = s.bind(&star_to_zero(&bind)).await.map_err(err("bind"))?;
            report("endpoint", ep);
            let mut n = 0u64;
            loop {
                let m = s.recv().await.map_err(err("recv"))?;
                match byte_len(&m) {
                    0 => break,
                    l if l == size => n += 1,
                    l => return Err(format!("message {n} has {l} bytes")),
                }
            }
            report("last_ns", now_ns());
            report("count", n);
            stay().await
        }
        Role::PushClient { ep, size, secs } => {
            let mut s = PushSocket::new();
            s.connect(&ep).await.map_err(err("connect"))?;
            tokio::time::sleep(SETTLE).await;
            let body = payload(size);
            let (batch, limit) = (clock_batch(size), Duration::from_secs_f64(secs));
            let start_ns = now_ns();
            let t = Instant::now();
            let mut n = 0u64;
            let max = max_messages(size, secs);
            while n < max && t.elapsed() < limit {
                for _ in 0..batch {
                    s.send(ZmqMessage::from(body.clone()))
                        .await
                        .map_err(err("send"))?;
                }
                n += batch;
            }
            s.send(ZmqMessage::from(Bytes::new()))
                .await
                .map_err(err("send"))?;
            report("start_ns", start_ns);
            report("count", n);
            stay().await
        }
        Role::RouterEcho { bind } => {
            let mut s = RouterSocket::new();
            let ep = s.bind(&star_to_zero(&bind)).await.map_err(err("bind"))?;
            report("endpoint", ep);
            loop {
                let m = s.recv().await.map_err(err("recv"))?;
                s.send(m).await.map_err(err("send"))?;
            }
        }
        Role::ReqThreads { .. } => Err("zmq.rs plays req-many (tasks), not req-threads".into()),
        Role::AsyncReq { .. } => {
            Err("zmq.rs plays the async rows with req and req-many (async already)".into())
        }
        Role::InprocLat { .. } | Role::InprocThr { .. } => {
            Err("zmq.rs 0.7 has no inproc transport".into())
        }
        Role::ReqMany {
            ep,
            clients,
            size,
            secs,
        } => {
            let body = payload(size);
            let mut sockets = Vec::with_capacity(clients);
            for _ in 0..clients {
                let mut s = ReqSocket::new();
                s.connect(&ep).await.map_err(err("connect"))?;
                round_trip(&mut s, &body).await?;
                sockets.push(s);
            }
            let limit = Duration::from_secs_f64(secs);
            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for mut s in sockets {
                let body = body.clone();
                tasks.spawn(async move {
                    let mut n = 0u64;
                    while start.elapsed() < limit {
                        round_trip(&mut s, &body).await?;
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
            report("count", total);
            report("rate", total as f64 / (end - start).as_secs_f64());
            stay().await
        }
        Role::RouterCount { bind, n } => {
            let mut s = RouterSocket::new();
            let ep = s.bind(&star_to_zero(&bind)).await.map_err(err("bind"))?;
            report("endpoint", ep);
            tokio::time::sleep(Duration::from_millis(300)).await;
            report("base_rss_kb", status_kb("VmRSS"));
            let mut ids = std::collections::HashSet::new();
            while ids.len() < n {
                let m = tokio::time::timeout(Duration::from_secs(90), s.recv())
                    .await
                    .map_err(|_| format!("only {} of {n} peers got in", ids.len()))?
                    .map_err(err("recv"))?;
                ids.insert(m.get(0).cloned().unwrap_or_default());
            }
            report("all_in_ns", now_ns());
            tokio::time::sleep(Duration::from_millis(500)).await;
            report("rss_kb", status_kb("VmRSS"));
            stay().await
        }
        Role::DealerMany { ep, n } => {
            let sockets: Vec<DealerSocket> = (0..n).map(|_| DealerSocket::new()).collect();
            report("start_ns", now_ns());
            let mut tasks = tokio::task::JoinSet::new();
            for mut s in sockets {
                let ep = ep.clone();
                tasks.spawn(async move {
                    s.connect(&ep).await.map_err(err("connect"))?;
                    s.send(ZmqMessage::from("hi")).await.map_err(err("send"))?;
                    Ok::<_, String>(s)
                });
            }
            let mut kept = Vec::with_capacity(n);
            while let Some(r) = tasks.join_next().await {
                kept.push(r.map_err(|e| format!("connect task: {e}"))??);
            }
            report("sent", kept.len());
            stay().await
        }
        Role::Idle { secs } => {
            let mut pull = PullSocket::new();
            let ep = pull.bind("tcp://127.0.0.1:0").await.map_err(err("bind"))?;
            let mut push = PushSocket::new();
            push.connect(&ep.to_string())
                .await
                .map_err(err("connect"))?;
            push.send(ZmqMessage::from("x"))
                .await
                .map_err(err("send"))?;
            tokio::time::timeout(Duration::from_secs(10), pull.recv())
                .await
                .map_err(|_| "idle: no message".to_owned())?
                .map_err(err("recv"))?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let before = cpu_us();
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            report("cpu_us", cpu_us() - before);
            stay().await
        }
        Role::Publisher {
            mode: PubMode::Slow,
            ..
        } => Err("zmq.rs 0.7's XPUB waits for a slow subscriber instead of dropping".into()),
        Role::Publisher {
            bind,
            size,
            subscriptions,
            secs,
            mode,
        } => {
            // zmq.rs 0.7's XPUB hands every subscription message up (as
            // verbose does), and its send waits for each subscriber's
            // writer (as nodrop does).
            let mut s = XPubSocket::new();
            let ep = s.bind(&star_to_zero(&bind)).await.map_err(err("bind"))?;
            report("endpoint", ep);
            let mut seen = 0;
            while seen < subscriptions {
                let m = tokio::time::timeout(Duration::from_secs(30), s.recv())
                    .await
                    .map_err(|_| format!("{seen} of {subscriptions} subscriptions arrived"))?
                    .map_err(err("recv subscription"))?;
                if m.get(0).and_then(|f| f.first()) == Some(&1) {
                    seen += 1;
                }
            }
            let bodies: Vec<Bytes> = match mode {
                PubMode::Match => match_messages().into_iter().map(Bytes::from).collect(),
                _ => vec![payload(size)],
            };
            let (batch, limit) = (clock_batch(size), Duration::from_secs_f64(secs));
            let max = max_messages(size, secs);
            let (start_ns, cpu_before) = (now_ns(), cpu_us());
            let t = Instant::now();
            let mut n = 0u64;
            while n < max && t.elapsed() < limit {
                for i in n..n + batch {
                    let body = &bodies[i as usize % bodies.len()];
                    s.send(ZmqMessage::from(body.clone()))
                        .await
                        .map_err(err("send"))?;
                }
                n += batch;
            }
            let elapsed = t.elapsed().as_secs_f64();
            let cpu = cpu_us() - cpu_before;
            if mode != PubMode::Match {
                let end = Bytes::copy_from_slice(&end_marker(n));
                s.send(ZmqMessage::from(end)).await.map_err(err("send"))?;
            }
            report("start_ns", start_ns);
            report("count", n);
            report("rate", n as f64 / elapsed);
            report("cpu_us", cpu);
            stay().await
        }
        Role::Subscribers { ep, k, size, mode } => {
            // Tasks on the one runtime thread, as for req-many.
            let mut tasks = Vec::with_capacity(k);
            for i in 0..k {
                let mut s = SubSocket::new();
                s.connect(&ep).await.map_err(err("connect"))?;
                match mode {
                    SubMode::Match => {
                        for j in 0..MATCH_PREFIXES {
                            s.subscribe(&topic(i * MATCH_PREFIXES + j))
                                .await
                                .map_err(err("subscribe"))?;
                        }
                    }
                    _ => s.subscribe("").await.map_err(err("subscribe"))?,
                }
                tasks.push(tokio::spawn(async move {
                    let mut c = SubCount::new(size, mode, i == k - 1);
                    loop {
                        let recv = tokio::time::timeout(Duration::from_secs(30), s.recv());
                        let m = match (mode, recv.await) {
                            // Only the publisher is timed: just drain.
                            (SubMode::Match, _) => continue,
                            (_, Err(_)) => return Err("no message within 30 s".to_owned()),
                            (_, Ok(m)) => m.map_err(err("recv"))?,
                        };
                        let first = m.get(0).map_or(&[][..], |f| &f[..]);
                        if c.take(byte_len(&m), first)? {
                            return Ok((c.n, now_ns()));
                        }
                        if let Some(d) = c.pace() {
                            tokio::time::sleep(d).await;
                        }
                    }
                }));
            }
            let counted = match mode {
                SubMode::Match => 0,
                SubMode::Lossy { slow_rate } if slow_rate > 0.0 => k - 1,
                _ => k,
            };
            let (mut count, mut last_ns) = (0u64, 0u128);
            for t in tasks.into_iter().take(counted) {
                let (n, at) = t.await.map_err(|e| format!("subscriber task: {e}"))??;
                count += n;
                last_ns = last_ns.max(at);
            }
            if counted > 0 {
                report("count", count);
                report("last_ns", last_ns);
            }
            stay().await
        }
    }
}

async fn round_trip(s: &mut ReqSocket, body: &Bytes) -> Result<(), String> {
    s.send(ZmqMessage::from(body.clone()))
        .await
        .map_err(err("send"))?;
    let r = tokio::time::timeout(Duration::from_secs(30), s.recv())
        .await
        .map_err(|_| "no reply within 30 s".to_owned())?
        .map_err(err("recv"))?;
    if byte_len(&r) != body.len() {
        return Err(format!("reply of {} bytes", byte_len(&r)));
    }
    Ok(())
}
