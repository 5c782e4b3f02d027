//! The streaming attack of issue 16, from the parent process: raw TCP
//! peers that speak just enough ZMTP to be let in, then announce a huge
//! body and stream it. The server under test runs in its own process, so
//! that its peak RSS is the attack's cost.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A NULL-mechanism ZMTP 3.1 greeting and a READY for a REQ peer.
fn hello() -> Vec<u8> {
    let mut g = vec![0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 1;
    g[12..16].copy_from_slice(b"NULL");
    let mut body = b"\x05READY\x0bSocket-Type".to_vec();
    body.extend_from_slice(&3u32.to_be_bytes());
    body.extend_from_slice(b"REQ");
    g.extend_from_slice(&[0x04, body.len() as u8]);
    g.extend_from_slice(&body);
    g
}

/// Attackers under way: each streams until dropped or `cap`, then (if not
/// dropped) stays connected until released, so that the server holds what
/// it read when its peak is taken.
pub struct Attack {
    threads: Vec<std::thread::JoinHandle<Result<bool, String>>>,
    streamed: std::sync::mpsc::Receiver<()>,
    release: Option<std::sync::mpsc::Sender<()>>,
}

/// Starts `attackers` streams against `addr` (host:port).
pub fn start(addr: &str, attackers: usize, cap: usize) -> Attack {
    let (done_tx, streamed) = std::sync::mpsc::channel();
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let hold = std::sync::Arc::new(std::sync::Mutex::new(hold));
    let threads = (0..attackers)
        .map(|_| {
            let (addr, done, hold) = (addr.to_owned(), done_tx.clone(), hold.clone());
            std::thread::spawn(move || {
                let result = stream(&addr, cap);
                let _ = done.send(());
                if let Ok((false, _s)) = &result {
                    // Held open until released (or the parent is gone).
                    let _ = hold
                        .lock()
                        .map(|rx| rx.recv_timeout(Duration::from_secs(60)));
                }
                result.map(|(dropped, _)| dropped)
            })
        })
        .collect();
    Attack {
        threads,
        streamed,
        release: Some(release),
    }
}

impl Attack {
    /// Waits until every attacker has been dropped or has sent its cap.
    pub fn wait_streamed(&self) -> Result<(), String> {
        for _ in 0..self.threads.len() {
            self.streamed
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| "an attacker never finished streaming".to_string())?;
        }
        Ok(())
    }

    /// Releases the attackers still connected; returns how many of all
    /// were dropped by the server.
    pub fn finish(mut self) -> Result<usize, String> {
        drop(self.release.take());
        let mut dropped = 0;
        for t in self.threads {
            if t.join().map_err(|_| "attacker panicked".to_string())?? {
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

/// One attacker: whether the server dropped it before `cap`, and the
/// connection (to hold open when it did not).
fn stream(addr: &str, cap: usize) -> Result<(bool, Option<TcpStream>), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))
        .and_then(|()| s.set_read_timeout(Some(Duration::from_secs(20))))
        .map_err(|e| format!("timeouts: {e}"))?;
    s.write_all(&hello()).map_err(|e| format!("hello: {e}"))?;
    // The server's greeting: the handshake is under way before the claim.
    let mut greeting = [0u8; 64];
    s.read_exact(&mut greeting)
        .map_err(|e| format!("greeting: {e}"))?;
    // 2^34: libzmq allocates an announced body up front, and fails (and
    // drops the peer) only from about 2^36 on this machine's memory.
    let mut head = vec![0x01, 0x00, 0x02]; // empty delimiter (MORE), LONG
    head.extend_from_slice(&(1u64 << 34).to_be_bytes());
    s.write_all(&head).map_err(|e| format!("claim: {e}"))?;
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < cap {
        match s.write(&chunk) {
            Ok(0) => return Ok((true, None)),
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err("a write stalled: the server neither reads nor drops".into())
            }
            Err(_) => return Ok((true, None)),
        }
    }
    Ok((false, Some(s)))
}
