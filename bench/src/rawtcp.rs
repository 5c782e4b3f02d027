//! The REQ/REP latency roles (mean and tail) over a bare `std::net::TcpStream` with
//! `TCP_NODELAY`: write the request, read exactly as many bytes back. The
//! floor any messaging library on TCP can approach.

use crate::child::{payload, report, time_round_trips};
use crate::role::{Role, WARMUP};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("tcp {what}: {e}")
}

/// A client connection to `ep` (`tcp://host:port`), as both latency
/// clients use it.
fn connect(ep: &str) -> Result<TcpStream, String> {
    let addr = ep.strip_prefix("tcp://").ok_or("tcp endpoint expected")?;
    let s = TcpStream::connect(addr).map_err(io("connect"))?;
    s.set_nodelay(true).map_err(io("nodelay"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io("timeout"))?;
    Ok(s)
}

/// Plays `role` (only the latency roles exist for raw TCP).
pub fn run(role: &Role) -> Result<(), String> {
    match role {
        Role::RepServer {
            heartbeat: Some(_), ..
        }
        | Role::TailClient {
            heartbeat: Some(_), ..
        } => Err("raw TCP has no heartbeats".into()),
        Role::RepServer { bind, size, .. } => {
            let addr = bind
                .strip_prefix("tcp://")
                .ok_or("tcp endpoint expected")?
                .replace(":*", ":0");
            let l = TcpListener::bind(addr).map_err(io("bind"))?;
            let local = l.local_addr().map_err(io("local_addr"))?;
            report("endpoint", format!("tcp://{local}"));
            let (mut s, _) = l.accept().map_err(io("accept"))?;
            s.set_nodelay(true).map_err(io("nodelay"))?;
            let mut buf = vec![0u8; *size];
            loop {
                if s.read_exact(&mut buf).is_err() {
                    // The client is gone: the run is over.
                    return Ok(());
                }
                s.write_all(&buf).map_err(io("write"))?;
            }
        }
        Role::ReqClient { ep, size, secs } => {
            let mut s = connect(ep)?;
            let body = payload(*size);
            let mut buf = vec![0u8; *size];
            let mut round_trip = || -> Result<(), String> {
                s.write_all(&body).map_err(io("write"))?;
                s.read_exact(&mut buf).map_err(io("read"))
            };
            let t = Instant::now();
            while t.elapsed() < WARMUP {
                round_trip()?;
            }
            let limit = Duration::from_secs_f64(*secs);
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
        Role::TailClient {
            ep, size, count, ..
        } => {
            let mut s = connect(ep)?;
            let body = payload(*size);
            let mut buf = vec![0u8; *size];
            time_round_trips(*count, || {
                s.write_all(&body).map_err(io("write"))?;
                s.read_exact(&mut buf).map_err(io("read"))
            })
        }
        r => Err(format!("raw TCP has no {r:?} role")),
    }
}
