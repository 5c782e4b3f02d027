//! The REQ/REP latency roles (mean and tail) over a bare
//! `std::net::TcpStream` with `TCP_NODELAY`, or a bare Unix stream socket
//! for `ipc://` endpoints: write the request, read exactly as many bytes
//! back. The floor any messaging library on that transport can approach.

use crate::child::{mean_round_trips, payload, report, time_round_trips};
use crate::role::Role;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("raw {what}: {e}")
}

/// A raw connection of either transport.
enum Raw {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Raw {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Raw::Tcp(s) => s.write_all(b),
            Raw::Unix(s) => s.write_all(b),
        }
    }

    fn read_exact(&mut self, b: &mut [u8]) -> std::io::Result<()> {
        match self {
            Raw::Tcp(s) => s.read_exact(b),
            Raw::Unix(s) => s.read_exact(b),
        }
    }
}

/// A client connection to `ep` (`tcp://host:port` or `ipc://path`), as
/// both latency clients use it.
fn connect(ep: &str) -> Result<Raw, String> {
    let timeout = Some(Duration::from_secs(30));
    if let Some(path) = ep.strip_prefix("ipc://") {
        let s = UnixStream::connect(path).map_err(io("connect"))?;
        s.set_read_timeout(timeout).map_err(io("timeout"))?;
        return Ok(Raw::Unix(s));
    }
    let addr = ep
        .strip_prefix("tcp://")
        .ok_or("tcp:// or ipc:// endpoint expected")?;
    let s = TcpStream::connect(addr).map_err(io("connect"))?;
    s.set_nodelay(true).map_err(io("nodelay"))?;
    s.set_read_timeout(timeout).map_err(io("timeout"))?;
    Ok(Raw::Tcp(s))
}

/// Listens on `bind`, reports the endpoint, and accepts one client.
fn accept_one(bind: &str) -> Result<Raw, String> {
    if let Some(path) = bind.strip_prefix("ipc://") {
        let l = UnixListener::bind(path).map_err(io("bind"))?;
        report("endpoint", bind);
        let (s, _) = l.accept().map_err(io("accept"))?;
        return Ok(Raw::Unix(s));
    }
    let addr = bind
        .strip_prefix("tcp://")
        .ok_or("tcp:// or ipc:// endpoint expected")?
        .replace(":*", ":0");
    let l = TcpListener::bind(addr).map_err(io("bind"))?;
    let local = l.local_addr().map_err(io("local_addr"))?;
    report("endpoint", format!("tcp://{local}"));
    let (s, _) = l.accept().map_err(io("accept"))?;
    s.set_nodelay(true).map_err(io("nodelay"))?;
    Ok(Raw::Tcp(s))
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
            let mut s = accept_one(bind)?;
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
            let round_trip = || -> Result<(), String> {
                s.write_all(&body).map_err(io("write"))?;
                s.read_exact(&mut buf).map_err(io("read"))
            };
            mean_round_trips(*secs, round_trip)
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
