//! Application-thread code: how a calling thread waits, and how it
//! borrows a connection on the way (the fast path). Nothing here runs on
//! the I/O thread.
//!
//! libzmq hands every message across three threads: the sender's I/O
//! thread, the receiver's I/O thread, then the receiving application
//! thread. A raw TCP round trip wakes one thread per direction. To get near
//! that floor without giving up the I/O thread's ownership:
//!
//! - [`borrow`]: a `send` that turns a pipe from idle to busy writes the
//!   batch itself when the engine is free, and a `try_recv` reads
//!   what its connections have;
//! - [`park`]: a thread about to block registers its own wake-up
//!   ([`crate::waiter`]) with every socket it waits on, and sleeps in one
//!   `poll(2)` on that wake-up plus, when it waits for input, the
//!   sockets' connections, which it then reads itself. A blocked `recv` is
//!   the one-socket case; [`crate::Poller`] is the many-socket one.
//!
//! - [`readiness`]: the same waiting protocol for an event loop of the
//!   application's own, through a descriptor (`Socket::readiness`,
//!   `Socket::events`).
//!
//! Every borrow is a `try_lock` on one engine's `io`; when it fails, the
//! caller falls back to the I/O thread's path. Who is responsible for a
//! connection's incoming bytes at each moment is `crate::conn::owner`.

pub(crate) mod borrow;
pub(crate) mod park;
pub(crate) mod readiness;
