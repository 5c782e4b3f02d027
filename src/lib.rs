//! # ferrozmq
//!
//! A pure-Rust ZeroMQ library: ZMTP 3.1 on the wire, byte-compatible with
//! libzmq, pyzmq and other ZMTP 3.x peers, with libzmq's socket semantics
//! (high-water marks, linger, reconnect) and a background I/O thread.
//!
//! ```
//! use ferrozmq::{Context, SocketType};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), ferrozmq::Error> {
//! let ctx = Context::new();
//! let rep = ctx.socket(SocketType::Rep)?;
//! let endpoint = rep.bind("tcp://127.0.0.1:*")?; // e.g. "tcp://127.0.0.1:40123"
//!
//! let req = ctx.socket(SocketType::Req)?;
//! req.connect(&endpoint)?; // fine before the server exists: it retries
//! req.send("hello")?;
//!
//! let request = rep.recv_timeout(Duration::from_secs(5))?;
//! assert_eq!(request.first().map(|f| &f[..]), Some(&b"hello"[..]));
//! rep.send(request)?;
//!
//! let reply = req.recv_timeout(Duration::from_secs(5))?;
//! assert_eq!(reply, ferrozmq::Message::from("hello"));
//! # Ok(())
//! # }
//! ```
//!
//! ## Design
//!
//! ```text
//!  application threads                    I/O thread (one per Context)
//!  ───────────────────                    ────────────────────────────
//!  Socket::send ─┐                        ┌─ mio Poll: listeners, connects,
//!                ▼                        │  engines, timer queue, mailbox
//!        Mutex<SocketCore>  ◀── pipes ──▶ │
//!        pattern + pipes                  │  Engine = Stream (TCP, IPC) + zmtp::Session
//!  Socket::recv ─┘  waiters               └─ Connecter, Listener, inproc links
//! ```
//!
//! Transports: `tcp://`, `ipc://` (Unix domain sockets, ZMTP as over TCP)
//! and `inproc://` (sockets of one [`Context`]: messages move from the
//! sending thread into the receiving socket's queue, with no I/O thread
//! and no copy).
//!
//! - `zmtp` is the protocol, sans-IO: greeting, NULL handshake, frames,
//!   commands; bytes in, bytes and events out, time passed in.
//! - `pattern` is the socket-type logic (REQ, REP, DEALER, ROUTER, PUSH,
//!   PULL), sans-IO over per-peer pipes of whole [`Message`]s.
//! - The private `io` module is the only code that touches sockets,
//!   threads and the clock. A thread blocked in `recv` (or in a
//!   [`Poller`] over many sockets, ZeroMQ's `zmq_poll`) reads its
//!   connections itself instead of waiting for the I/O thread to hand
//!   messages over.
//!
//! See ARCHITECTURE.md in the repository for the full map.
#![deny(missing_docs)]

mod backoff;
mod close;
mod conn;
mod context;
pub mod endpoint;
pub mod error;
mod events;
#[doc(hidden)]
pub mod fuzz;
mod id_map;
mod io;
#[cfg(all(test, loom))]
mod loom_models;
pub mod message;
pub mod monitor;
pub mod options;
// Internal: the socket-type logic. Public only for the integration tests
// and benches that drive it directly; not API we keep stable.
#[doc(hidden)]
pub mod pattern;
mod poll;
mod proxy;
mod seed;
mod shared;
mod socket;
pub mod socket_type;
mod sync;
#[cfg(feature = "tokio")]
pub mod tokio;
mod wait;
mod waiter;
// Internal: the sans-IO protocol core, public only for the golden-bytes
// tests, the codec benchmark and the fuzz harness.
#[doc(hidden)]
pub mod zmtp;

/// Frames are `Bytes`: re-exported so that naming one needs no other
/// dependency.
pub use bytes::Bytes;
pub use close::{CloseHandle, CloseReport, PeerReport};
pub use context::Context;
pub use error::{Error, ProtocolError, Result, SendError};
pub use message::{IntoFrame, Message};
pub use monitor::{
    ConnectFailure, EndpointState, EndpointStatus, EventKind, HandshakeFailure, MonitorEvent,
    PeerStatus,
};
pub use options::{Mechanism, ReconnectStop};
pub use pattern::Stats as SocketStats;
pub use poll::{Events, Poller};
pub use proxy::{proxy, proxy_steerable, ProxyControl, ProxyStats, Traffic};
pub use socket::Socket;
pub use socket_type::SocketType;
pub use wait::readiness::Readiness;
pub use zmtp::mechanism::keys::{KeyError, SecretBytes, KEY_LEN, Z85_KEY_LEN};
pub use zmtp::mechanism::z85::{self, Z85Error};
pub use zmtp::mechanism::{
    Credentials, CurveKeyPair, CurvePublicKey, CurveSecretKey, ZapHandler, ZapReply, ZapRequest,
    PROP_USER_ID,
};
