//! The smallest complete program: a REP echo server and a REQ client in one
//! process, talking over TCP on loopback.
//!
//! ```text
//! cargo run --release --example hello
//! ```

use ferrozmq::{Context, SocketType};
use std::time::{Duration, Instant};

#[path = "shared/help.rs"]
mod help;

fn main() -> Result<(), ferrozmq::Error> {
    if help::requested(include_str!("hello.rs")) {
        return Ok(());
    }
    let ctx = Context::new();
    let rep = ctx.socket(SocketType::Rep)?;
    let endpoint = rep.bind("tcp://127.0.0.1:*")?;
    let server = std::thread::spawn(move || -> Result<(), ferrozmq::Error> {
        for _ in 0..1000 {
            let request = rep.recv_timeout(Duration::from_secs(5))?;
            rep.send(request)?;
        }
        Ok(())
    });

    let req = ctx.socket(SocketType::Req)?;
    req.connect(&endpoint)?;
    let t0 = Instant::now();
    for i in 0..1000u32 {
        req.send(format!("hello {i}"))?;
        let reply = req.recv_timeout(Duration::from_secs(5))?;
        assert_eq!(reply, ferrozmq::Message::from(format!("hello {i}")));
    }
    let elapsed = t0.elapsed();
    server.join().expect("server thread panicked")?;
    println!(
        "hello: 1000 round trips over {endpoint} in {elapsed:?} ({:.1} us each)",
        elapsed.as_secs_f64() * 1e6 / 1000.0
    );
    Ok(())
}
