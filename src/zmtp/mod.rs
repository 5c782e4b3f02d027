//! ZMTP 3.1 (RFC 23 and 37), sans-IO.
//!
//! Nothing here touches sockets, threads or the clock: time is passed in as
//! `Instant`s and bytes are passed in and out as buffers.
//!
//! - [`frame`]: frame header encoding and the incremental frame decoder.
//! - [`greeting`]: the 64-byte greeting.
//! - [`command`]: commands (`READY`, `ERROR`, `PING`, `PONG`) and metadata.
//! - [`mechanism`]: the security mechanisms (NULL, PLAIN, CURVE) the
//!   session runs its handshake and, for CURVE, its traffic through; keys,
//!   Z85 and the ZAP callback types.
//! - [`session`]: one connection's protocol state machine: greeting,
//!   handshake (through a mechanism), traffic, and its timers.
//! - [`zap`]: ZAP's wire form (RFC 27), for handlers bound on
//!   `inproc://zeromq.zap.01`.

pub mod command;
pub mod frame;
pub mod greeting;
pub mod mechanism;
pub mod session;
pub mod zap;

#[cfg(test)]
mod harness;

pub use session::{Session, SessionConfig, SessionEvent};
