//! The fast path: application threads borrow ready engines.
//!
//! libzmq hands every message across three threads: the sender's I/O
//! thread, the receiver's I/O thread, then the receiving application
//! thread. A raw TCP round trip wakes one thread per direction. To get near
//! that floor without giving up the I/O thread's ownership:
//!
//! - **send**: when a `send` turns a pipe from idle to busy and its engine
//!   is not already writing, the sending thread borrows the engine with
//!   `try_lock` and writes the batch itself ([`try_flush`]). Only in a
//!   request-reply rhythm: when the socket's last call was a `recv`, or
//!   the connection has been quiet for [`STREAMING_GAP`]. A thread
//!   streaming messages back to back would otherwise pay one `write` per
//!   message, where the I/O thread batches hundreds into one.
//! - **recv**: a thread about to block in `recv` first reads whatever its
//!   engines have ([`try_read`]), then parks in `poll(2)` on their
//!   descriptors plus the socket's [`Parker`] ([`park`]), and reads the
//!   bytes itself when they arrive. A [`crate::Poller`] does the same for
//!   many sockets in one `poll(2)`: both are a [`ParkSet`]. Streams
//!   (`EngineIo::is_streaming`) are left to the I/O thread, which reads
//!   ahead while the application consumes.
//!
//! Every borrow is a `try_lock` on one engine's `io`; when it fails, the
//! I/O thread is already on that engine and the caller falls back to the
//! I/O thread's path (post the flush, or wait to be woken). The I/O thread
//! remains the only code that creates, registers or closes connections,
//! runs handshakes and owns timers. A borrower that meets EOF or an error
//! only records it in `EngineIo::broken` and asks the I/O thread to look.

use super::engine::{EngineShared, ReadStop};
use super::Command;
use crate::pattern::PipeId;
use crate::socket::{SocketCore, SocketShared};
use parking_lot::MutexGuard;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Above this many connections a blocked `recv` waits for the I/O thread
/// instead of polling every descriptor itself.
const MAX_PARK_FDS: usize = 64;
/// Reads per borrowed engine per `try_read`.
const READS_PER_BORROW: usize = 4;
/// Back-to-back sends (no `recv` between them) closer together than this
/// on one connection are a stream, left to the I/O thread to batch.
pub(crate) const STREAMING_GAP: Duration = Duration::from_micros(50);

/// Writes `pipe`'s queued messages on the caller's thread if its engine is
/// idle. Returns true when nothing is left for the I/O thread to do.
pub(crate) fn try_flush(core: &mut SocketCore, pipe: PipeId, after_recv: bool) -> bool {
    let Some(engine) = core.direct.get(&pipe).cloned() else {
        return false;
    };
    let Some(mut io) = engine.io.try_lock() else {
        return false;
    };
    if engine.write_blocked.load(Ordering::SeqCst) || io.broken.is_some() {
        return false;
    }
    let now = Instant::now();
    let streaming = !after_recv
        && io
            .last_direct_write
            .is_some_and(|t| now.saturating_duration_since(t) < STREAMING_GAP);
    io.last_direct_write = Some(now);
    if streaming {
        return false;
    }
    loop {
        let moved = io.refill(&mut core.pipes, pipe);
        match io.flush(&engine.write_blocked) {
            Ok(true) if moved == 0 => return true,
            Ok(true) => {}
            // The writable edge will bring the I/O thread back.
            Ok(false) => return true,
            Err(e) => {
                io.broken = Some(super::engine::Close::Io(e));
                return false;
            }
        }
    }
}

/// Reads the socket's engines that have bytes waiting, on the caller's
/// thread. Returns true when anything was delivered to a pipe.
pub(crate) fn try_read(shared: &SocketShared, core: &mut SocketCore) -> bool {
    let engines: Vec<(PipeId, Arc<EngineShared>)> =
        core.direct.iter().map(|(p, e)| (*p, e.clone())).collect();
    match engines.len() {
        0 => false,
        // One connection: a `recv` that finds nothing is as cheap as asking.
        1 => engines
            .iter()
            .any(|(pipe, e)| read_engine(shared, core, *pipe, e, 0)),
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
                    delivered |= read_engine(shared, core, *pipe, e, fd.revents);
                }
            }
            delivered
        }
    }
}

/// Borrows one engine and reads what it has. Returns true when it
/// delivered anything.
fn read_engine(
    shared: &SocketShared,
    core: &mut SocketCore,
    pipe: PipeId,
    engine: &Arc<EngineShared>,
    revents: libc::c_short,
) -> bool {
    let Some(mut io) = engine.io.try_lock() else {
        // The I/O thread holds it, maybe only to write or re-arm a timer,
        // and it may have skipped these bytes for us: hand them back.
        shared.mailbox.send(Command::EngineCheck(engine.token));
        return false;
    };
    if io.read_paused || io.broken.is_some() {
        return false;
    }
    if revents & libc::POLLRDHUP != 0 {
        io.peer_closed = true;
    }
    let before = core.pipes.get(pipe).map_or(0, |p| p.inbound_len());
    let stop = io.read_ready(Instant::now(), &mut &mut core.pipes, pipe, READS_PER_BORROW);
    let after = core.pipes.get(pipe).map_or(0, |p| p.inbound_len());
    // PONGs and other replies the session produced while reading.
    if io.session.has_output() && !engine.write_blocked.load(Ordering::SeqCst) {
        if let Err(e) = io.flush(&engine.write_blocked) {
            io.broken = Some(super::engine::Close::Io(e));
        }
    }
    let check = matches!(stop, ReadStop::Broken | ReadStop::Budget)
        || io.broken.is_some()
        || io.deadline_moved_earlier();
    drop(io);
    if check {
        shared.mailbox.send(Command::EngineCheck(engine.token));
    }
    after > before
}

/// Whether a blocked `recv` on this socket should park in `poll(2)`.
pub(crate) fn can_park(core: &SocketCore) -> bool {
    !core.direct.is_empty() && core.direct.len() <= MAX_PARK_FDS
}

/// Parks the caller until one of the socket's idle engines is readable,
/// the socket is woken, or `deadline` passes, then reads what arrived.
/// Returns false on timeout. The one-socket case of a [`ParkSet`].
pub(crate) fn park(
    shared: &SocketShared,
    core: &mut MutexGuard<'_, SocketCore>,
    deadline: Option<Instant>,
) -> bool {
    let Some(timeout_ms) = poll_timeout(deadline) else {
        return false;
    };
    let mut set = ParkSet::default();
    let Some(armed) = set.arm(shared, core, true) else {
        // No eventfd: wait for the I/O thread like everyone else.
        match deadline {
            None => shared.cond.wait(core),
            Some(d) => {
                shared.cond.wait_until(core, d);
            }
        }
        return true;
    };
    MutexGuard::unlocked(core, || set.wait(timeout_ms));
    set.disarm(armed, core);
    true
}

/// `poll(2)`'s timeout for `deadline`, rounded up so that we never wake
/// just before it; `None` once it has passed.
pub(crate) fn poll_timeout(deadline: Option<Instant>) -> Option<i32> {
    match deadline {
        None => Some(-1),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            Some(left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32)
        }
    }
}

/// What one thread waits on in a single `poll(2)`: for each socket, its
/// [`Parker`], and for sockets whose input is wanted, their idle engines.
///
/// While armed, the caller counts in the socket's `parked` (so that
/// [`SocketShared::wake`] writes the eventfd) and in each polled engine's
/// `parked_readers`, and the I/O thread leaves those engines alone: on a
/// readable edge it sets `skipped` and re-checks `parked_readers`. On
/// [`ParkSet::disarm`], the caller first decrements `parked_readers`, then
/// reads every engine that `poll` reported or whose `skipped` it clears.
/// With SeqCst on both sides, either the I/O thread's re-check sees the
/// decrement (and it reads), or its `skipped` store comes before the
/// caller's swap (and the caller reads): bytes are never left with no
/// reader.
///
/// A socket is armed under its lock, in the same critical section that
/// found it not ready: anything delivered after that sees `parked` and
/// writes the eventfd, so no wake-up falls between the check and the wait.
#[derive(Default)]
pub(crate) struct ParkSet<'a> {
    fds: Vec<libc::pollfd>,
    /// One per entry of `fds`. Holding the engines keeps their descriptors
    /// open, so that no number is closed and reused under `poll`.
    slots: Vec<Slot<'a>>,
}

enum Slot<'a> {
    Parker(&'a SocketShared),
    Engine(PipeId, Arc<EngineShared>),
}

/// The entries one socket added to a [`ParkSet`].
#[derive(Clone, Debug)]
pub(crate) struct Armed(std::ops::Range<usize>);

impl<'a> ParkSet<'a> {
    /// Adds a socket: its parker, and with `read` its idle engines (when
    /// there are few enough to poll). `None` when the socket has no
    /// eventfd (descriptors exhausted); nothing was added then.
    pub(crate) fn arm(
        &mut self,
        shared: &'a SocketShared,
        core: &SocketCore,
        read: bool,
    ) -> Option<Armed> {
        let parker = shared.parker()?;
        let start = self.slots.len();
        self.fds.push(pollfd(parker.fd()));
        self.slots.push(Slot::Parker(shared));
        if read && can_park(core) {
            for (pipe, engine) in core.direct.iter() {
                // Skip engines the I/O thread is working on (it will wake
                // us), those that must not be read now, and streams (the
                // I/O thread reads ahead while we consume).
                let usable = engine
                    .io
                    .try_lock()
                    .is_some_and(|io| !io.read_paused && io.broken.is_none() && !io.is_streaming());
                if usable {
                    engine.parked_readers.fetch_add(1, Ordering::SeqCst);
                    engine.parks.fetch_add(1, Ordering::Relaxed);
                    self.fds.push(pollfd(engine.fd));
                    self.slots.push(Slot::Engine(*pipe, engine.clone()));
                }
            }
        }
        shared.parked.fetch_add(1, Ordering::SeqCst);
        Some(Armed(start..self.slots.len()))
    }

    /// Blocks in `poll(2)` on everything armed, for at most `timeout_ms`
    /// (-1: no limit). Call without holding any socket lock.
    pub(crate) fn wait(&mut self, timeout_ms: i32) {
        // SAFETY: `fds` is a valid, initialised array of `fds.len()`
        // pollfd structs, and every descriptor in it stays open while
        // `slots` holds its socket or engine.
        unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        for (slot, fd) in self.slots.iter().zip(&self.fds) {
            if let (Slot::Parker(shared), true) = (slot, fd.revents != 0) {
                if let Some(p) = shared.parker() {
                    p.drain();
                }
            }
        }
    }

    /// Takes one socket out of the wait (under its lock) and reads the
    /// engines that have bytes for it.
    pub(crate) fn disarm(&mut self, armed: Armed, core: &mut SocketCore) {
        let range = armed.0;
        let mut shared = None;
        for slot in &self.slots[range.clone()] {
            match slot {
                Slot::Parker(s) => {
                    s.parked.fetch_sub(1, Ordering::SeqCst);
                    shared = Some(*s);
                }
                Slot::Engine(_, engine) => {
                    engine.parked_readers.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        let Some(shared) = shared else { return };
        for (slot, fd) in self.slots[range.clone()].iter().zip(&self.fds[range]) {
            let Slot::Engine(pipe, engine) = slot else {
                continue;
            };
            let skipped = engine.skipped.swap(false, Ordering::SeqCst);
            // The I/O thread may have closed it while we polled.
            let still_ours = core
                .direct
                .get(pipe)
                .is_some_and(|e| Arc::ptr_eq(e, engine));
            if still_ours && (fd.revents != 0 || skipped) {
                read_engine(shared, core, *pipe, engine, fd.revents);
            }
        }
    }

    /// Empties the set for reuse, keeping its buffers. Every armed socket
    /// must have been disarmed.
    pub(crate) fn clear(&mut self) {
        self.fds.clear();
        self.slots.clear();
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        // POLLRDHUP: see `EngineIo::peer_closed`.
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    }
}

/// A per-socket `eventfd` that wakes threads parked in [`park`].
#[derive(Debug)]
pub(crate) struct Parker {
    fd: OwnedFd,
}

impl Parker {
    fn new() -> Option<Parker> {
        // SAFETY: eventfd takes no pointers; a negative result is an error.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Some(Parker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Wakes every parked thread (the counter stays non-zero until drained).
    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our own eventfd. A
        // failure (counter overflow) still leaves it readable.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }

    fn drain(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a valid u64 from our own
        // non-blocking eventfd.
        unsafe { libc::read(self.fd(), (&mut buf as *mut u64).cast(), 8) };
    }
}

/// Lazily made parker storage for a socket.
#[derive(Debug, Default)]
pub(crate) struct ParkerCell(OnceLock<Option<Parker>>);

impl ParkerCell {
    pub(crate) fn get(&self) -> Option<&Parker> {
        self.0.get_or_init(Parker::new).as_ref()
    }

    /// The parker if one was ever made (waking needs no new descriptor).
    pub(crate) fn existing(&self) -> Option<&Parker> {
        self.0.get().and_then(Option::as_ref)
    }
}
