//! Borrowing a ready connection on the caller's thread: writing a batch
//! when `send` turns a pipe from idle to busy ([`try_flush`]), and reading
//! what the connections have ([`try_read`], [`read_engine`]).
//!
//! Sending borrows only in a request-reply rhythm: when the socket's last
//! call was a `recv`, or the socket has had nothing to flush for
//! [`STREAMING_GAP`]. A thread streaming messages back to back would
//! otherwise pay one `write` per message, where the I/O thread batches
//! hundreds into one and runs beside the sender. The gap is the socket's,
//! not the connection's: a publisher whose sends each reach a different
//! subscriber streams as much as one that sends to one, and writing on the
//! sending thread cost it a wake-up of a subscriber per message (half of
//! its time when 1 % of 10,000 subscriptions matched).

use super::park::pollfd;
use crate::conn::{Close, EngineShared, ReadStop, WriteWatch};
use crate::io::{Command, Mailbox};
use crate::pattern::PipeId;
use crate::shared::SocketCore;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads per borrowed engine per `try_read`.
const READS_PER_BORROW: usize = 4;
/// Back-to-back sends (no `recv` between them) closer together than this
/// on one connection are a stream, left to the I/O thread to batch.
pub(crate) const STREAMING_GAP: Duration = Duration::from_micros(50);

/// Writes `pipe`'s queued messages on the caller's thread if its engine is
/// idle. Returns true when nothing is left for the I/O thread to do.
pub(crate) fn try_flush(core: &mut SocketCore, pipe: PipeId, after_recv: bool) -> bool {
    let now = Instant::now();
    let streaming = !after_recv
        && core
            .last_flush
            .is_some_and(|t| now.saturating_duration_since(t) < STREAMING_GAP);
    core.last_flush = Some(now);
    if streaming {
        return false;
    }
    let Some(engine) = core.direct.get(&pipe).cloned() else {
        return false;
    };
    let Some(mut io) = engine.io.try_lock() else {
        return false;
    };
    if engine.write_blocked.load(Ordering::SeqCst) || io.broken.is_some() {
        return false;
    }
    loop {
        let moved = io.refill(&mut core.pipes, pipe);
        match io.flush(&engine.write_blocked) {
            Ok(true) if moved == 0 => return true,
            Ok(true) => {}
            // The writable edge will bring the I/O thread back, if it
            // watches; else the flush notice asks it to (a Unix stream).
            Ok(false) => return !WriteWatch::must_ask(&engine.watch_writes),
            Err(e) => {
                io.broken = Some(Close::Io(e));
                return false;
            }
        }
    }
}

/// Reads the socket's engines that have bytes waiting, on the caller's
/// thread. Returns true when anything was delivered to a pipe.
pub(crate) fn try_read(mailbox: &Mailbox, core: &mut SocketCore) -> bool {
    let engines: Vec<(PipeId, Arc<EngineShared>)> =
        core.direct.iter().map(|(p, e)| (*p, e.clone())).collect();
    match engines.len() {
        0 => false,
        // One connection: a `recv` that finds nothing is as cheap as asking.
        1 => engines.iter().any(|(pipe, e)| {
            read_engine(mailbox, core, *pipe, e, 0, false).is_some_and(|r| r.delivered)
        }),
        // Several: one `poll` says which have bytes, instead of a `recv`
        // on each.
        _ => {
            let mut fds: Vec<libc::pollfd> = engines.iter().map(|(_, e)| pollfd(e.fd)).collect();
            // SAFETY: `fds` is a valid array of `fds.len()` pollfds, and the
            // descriptors stay open while `engines` holds their engines.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
            if n <= 0 {
                return false;
            }
            let mut delivered = false;
            for ((pipe, e), fd) in engines.iter().zip(&fds) {
                if fd.revents != 0 {
                    delivered |= read_engine(mailbox, core, *pipe, e, fd.revents, false)
                        .is_some_and(|r| r.delivered);
                }
            }
            delivered
        }
    }
}

/// What one borrowed read of an engine did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Borrowed {
    /// It delivered messages to the pipe.
    pub(crate) delivered: bool,
    /// Nothing is left for a reader: the kernel had no more bytes, or the
    /// engine needs none (paused at the HWM, overdrawn, broken: the I/O
    /// thread's business).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) settled: bool,
}

/// Borrows one engine and reads what it has. Returns what it did, or
/// `None` when someone else was in the engine. `duty`: this thread took
/// `SKIPPED` from the engine's `ReadOwner`, so the bytes are its to read
/// whatever happens.
pub(crate) fn read_engine(
    mailbox: &Mailbox,
    core: &mut SocketCore,
    pipe: PipeId,
    engine: &Arc<EngineShared>,
    revents: libc::c_short,
    duty: bool,
) -> Option<Borrowed> {
    let Some(mut io) = engine.io.try_lock() else {
        // Someone else is in it (the I/O thread on a timer or a write, or
        // another reader). Bytes left to us by the I/O thread go back to
        // it, which decides again (`ReadOwner::edge`). Other bytes are
        // still where the table in `conn::owner` says someone notices
        // them: handing those back too made every timer's lock start a
        // cascade of hand-backs, each lock making the next `try_lock`
        // fail (two thirds of all round trips with 20 ms heartbeats).
        if duty {
            mailbox.send(Command::EngineCheck(engine.token));
        }
        return None;
    };
    if io.read_paused || io.overdrawn || io.broken.is_some() {
        return Some(Borrowed {
            delivered: false,
            settled: true,
        });
    }
    if revents & libc::POLLRDHUP != 0 {
        io.peer_closed = true;
    }
    let before = core.pipes.get(pipe).map_or(0, |p| p.inbound_len());
    let stop = io.read_ready(Instant::now(), &mut &mut core.pipes, pipe, READS_PER_BORROW);
    let after = core.pipes.get(pipe).map_or(0, |p| p.inbound_len());
    // PONGs and other replies the session produced while reading.
    if io.session.has_output() && !engine.write_blocked.load(Ordering::SeqCst) {
        match io.flush(&engine.write_blocked) {
            Err(e) => io.broken = Some(Close::Io(e)),
            Ok(false) if WriteWatch::must_ask(&engine.watch_writes) => {
                mailbox.send(Command::EngineCheck(engine.token));
            }
            Ok(_) => {}
        }
    }
    let check = matches!(
        stop,
        ReadStop::Broken | ReadStop::Budget | ReadStop::Overdrawn
    ) || io.broken.is_some()
        || io.deadline_moved_earlier();
    drop(io);
    if check {
        mailbox.send(Command::EngineCheck(engine.token));
    }
    Some(Borrowed {
        delivered: after > before,
        settled: !matches!(stop, ReadStop::Budget),
    })
}
