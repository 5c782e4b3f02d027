//! Blocking: one `poll(2)` on the thread's own wake-up and, for sockets
//! waited on for input, their connections.
//!
//! A wait goes through the steps of `crate::waiter`: the caller resets
//! its [`Waiter`], then for each socket, under that socket's lock and in
//! the same critical section that found it not ready, registers the
//! waiter and arms the connections ([`ParkSet::arm`]); then sleeps
//! ([`ParkSet::wait`]); then, under each lock again, unregisters and reads
//! what `poll` reported or the I/O thread left to it
//! ([`ParkSet::disarm`]).
//!
//! Which connections a thread arms, so that none is left unwatched (the
//! responsibility table is in `crate::conn::owner`): every connection of
//! the socket except those it can see, under the engine's lock, need no
//! reader now: reading paused at the HWM, broken, or a stream the I/O
//! thread reads ahead (a stream is armed all the same if it is handed
//! off). A connection it cannot lock (someone else is in it) is armed if
//! its reads are handed off: leaving such a one out is how bytes used to
//! wait for the next review. One the I/O thread still watches is left to
//! it: it reads what arrives and notifies, and arming it would take a
//! stream it is reading ahead away from it. Should reading be handed off
//! later, the I/O thread notifies the socket's waiters, and they arm
//! again.

use super::borrow::read_engine;
use crate::conn::EngineShared;
use crate::io::Mailbox;
use crate::pattern::PipeId;
use crate::shared::{SocketCore, SocketShared};
use crate::waiter::{Waiter, WaiterRef};
use parking_lot::MutexGuard;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

/// Above this many connections a thread waiting for input leaves the
/// reading to the I/O thread and waits only for its wake-up.
const MAX_PARK_FDS: usize = 64;

/// Whether a thread waiting for input on this socket arms its
/// connections.
pub(crate) fn can_park(core: &SocketCore) -> bool {
    !core.direct.is_empty() && core.direct.len() <= MAX_PARK_FDS
}

/// Blocks the caller until the socket's state may have changed (it was
/// woken, or one of its connections became readable, which it then
/// reads), or `deadline` passes. With `read`, the connections are polled
/// and read; without, only the wake-up is waited on (`send` at the HWM).
/// Returns false, without waiting, once the deadline has passed. The
/// one-socket case of a [`ParkSet`].
pub(crate) fn park(
    shared: &SocketShared,
    mailbox: &Mailbox,
    core: &mut MutexGuard<'_, SocketCore>,
    deadline: Option<Instant>,
    read: bool,
) -> bool {
    let Some(timeout_ms) = crate::waiter::poll_timeout(deadline) else {
        return false;
    };
    // The pool hands it over reset and in no list. The caller's check and
    // the registration below happen under one holding of the core lock,
    // which every change that could end the wait needs: no notification
    // can fall between them.
    let waiter = shared.ctx.waiters.take();
    let mut set = ParkSet::new(&waiter);
    let armed = set.arm(&waiter, shared, core, read);
    MutexGuard::unlocked(core, || set.wait(&waiter, timeout_ms));
    set.disarm(armed, &waiter, shared, mailbox, core);
    shared.ctx.waiters.give(waiter);
    if !set.busy.is_empty() {
        MutexGuard::unlocked(core, || set.wait_for_busy());
    }
    true
}

/// What a thread about to wait saw of a connection under its lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    /// Reading is paused at the HWM, or the connection is broken.
    pub(crate) needs_no_reader: bool,
    /// The I/O thread reads it ahead (`EngineIo::is_streaming`).
    pub(crate) streaming: bool,
}

/// Whether a thread waiting for input arms a connection, given whether its
/// reads are handed off and what it saw under the connection's lock
/// (`None`: someone else held it). See the module docs; the loom model
/// `a_waiting_reader_always_watches_a_handed_off_connection` runs this.
pub(crate) fn should_arm(handed_off: bool, seen: Option<Seen>) -> bool {
    match seen {
        Some(seen) => !seen.needs_no_reader && (!seen.streaming || handed_off),
        // Busy: if the I/O thread watches it, it reads what comes and
        // wakes us (arming a stream it is reading would take the stream
        // from it); if reading was handed off, nobody else would notice
        // its bytes.
        None => handed_off,
    }
}

/// Whether a reader about to wait arms `engine`: [`should_arm`] on what
/// it sees now. Call under the socket's lock.
pub(crate) fn wants_reader(engine: &EngineShared) -> bool {
    let seen = engine.io.try_lock().map(|io| Seen {
        needs_no_reader: io.read_paused || io.overdrawn || io.broken.is_some(),
        streaming: io.is_streaming(),
    });
    should_arm(engine.owner.is_handed_off(), seen)
}

/// What a reader that watches a connection its own way (the tokio
/// adapter's task, through the runtime's reactor) found when it disarmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) enum Disarmed {
    /// Nothing to read: not readable, no duty, or no longer the socket's.
    Idle,
    /// It read the connection.
    Read(super::borrow::Borrowed),
    /// It had to read, but someone else was in the engine. A duty was
    /// handed back to the I/O thread; readable bytes are where the table
    /// in `crate::conn::owner` says someone notices them.
    Busy,
}

/// Disarms one connection armed by [`wants_reader`] and `owner.arm()`,
/// reading it if the caller saw it `readable` or took the I/O thread's
/// duty: [`ParkSet::disarm`] for one connection. Call under the socket's
/// lock.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn disarm_one(
    mailbox: &Mailbox,
    core: &mut SocketCore,
    pipe: PipeId,
    engine: &Arc<EngineShared>,
    readable: bool,
) -> Disarmed {
    let must_read = engine.owner.disarm();
    let still_ours = core
        .direct
        .get(&pipe)
        .is_some_and(|e| Arc::ptr_eq(e, engine));
    if !still_ours || !(readable || must_read) {
        return Disarmed::Idle;
    }
    let revents = if readable { libc::POLLIN } else { 0 };
    match read_engine(mailbox, core, pipe, engine, revents, must_read) {
        Some(read) => Disarmed::Read(read),
        None => Disarmed::Busy,
    }
}

/// What one thread waits on in a single `poll(2)`: its waiter's
/// descriptor first, then the connections it armed.
#[derive(Default)]
pub(crate) struct ParkSet {
    fds: Vec<libc::pollfd>,
    /// One per entry of `fds` after the first. Holding the engines keeps
    /// their descriptors open, so that no number is closed and reused
    /// under `poll`.
    engines: Vec<(PipeId, Arc<EngineShared>)>,
    /// Connections with bytes for this thread that someone else held at
    /// `disarm`; see [`ParkSet::wait_for_busy`].
    busy: Vec<Arc<EngineShared>>,
}

/// The connections one socket added to a [`ParkSet`].
#[derive(Clone, Debug)]
pub(crate) struct Armed(std::ops::Range<usize>);

impl ParkSet {
    /// An empty set for `waiter`.
    pub(crate) fn new(waiter: &Waiter) -> ParkSet {
        let mut set = ParkSet::default();
        set.reset(waiter);
        set
    }

    /// Empties the set for a new wait by `waiter`, keeping its buffers.
    /// Every armed socket must have been disarmed.
    pub(crate) fn reset(&mut self, waiter: &Waiter) {
        self.fds.clear();
        self.engines.clear();
        self.busy.clear();
        if let Some(fd) = waiter.fd() {
            self.fds.push(pollfd(fd));
        }
    }

    /// Whether the waiter has a descriptor, first in `fds` (else it parks
    /// on its thread token, and no connection is armed).
    fn has_fd(&self) -> bool {
        !self.fds.is_empty()
    }

    /// Registers `waiter` with a socket and, with `read` (and few enough
    /// connections), arms its connections. Call under the socket's lock,
    /// in the critical section that found it not ready.
    pub(crate) fn arm(
        &mut self,
        waiter: &WaiterRef,
        shared: &SocketShared,
        core: &SocketCore,
        read: bool,
    ) -> Armed {
        shared.waiters.register(waiter);
        let start = self.engines.len();
        if read && self.has_fd() && can_park(core) {
            for (pipe, engine) in core.direct.iter() {
                if wants_reader(engine) {
                    engine.owner.arm();
                    self.fds.push(pollfd(engine.fd));
                    self.engines.push((*pipe, engine.clone()));
                }
            }
        }
        Armed(start..self.engines.len())
    }

    /// Blocks for at most `timeout_ms` (-1: no limit) until the waiter is
    /// notified or an armed connection is readable. Call without holding
    /// any socket lock.
    pub(crate) fn wait(&mut self, waiter: &Waiter, timeout_ms: i32) {
        if !self.has_fd() {
            let deadline = u64::try_from(timeout_ms)
                .ok()
                .and_then(|ms| Instant::now().checked_add(std::time::Duration::from_millis(ms)));
            waiter.park(deadline);
            return;
        }
        if waiter.is_notified() {
            // Already woken: look at the connections without sleeping.
            self.poll(0);
        } else {
            self.poll(timeout_ms);
        }
        if self.fds[0].revents != 0 {
            // Usually the notification's own signal; the flag stays set
            // until the next reset. A signal raised without the flag (a
            // notification that raced with the reset) must not make every
            // later `poll` return at once.
            waiter.clear_signal();
        }
    }

    fn poll(&mut self, timeout_ms: i32) {
        // SAFETY: `fds` is a valid, initialised array of `fds.len()`
        // pollfd structs; the waiter's descriptor lives as long as the
        // waiter the caller holds, and every other one stays open while
        // `engines` holds its engine.
        unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
    }

    /// Takes one socket out of the wait (under its lock): unregisters the
    /// waiter, disarms the connections, and reads those that `poll`
    /// reported or that the I/O thread left to this thread.
    pub(crate) fn disarm(
        &mut self,
        armed: Armed,
        waiter: &WaiterRef,
        shared: &SocketShared,
        mailbox: &Mailbox,
        core: &mut SocketCore,
    ) {
        shared.waiters.unregister(waiter);
        for i in armed.0 {
            let (pipe, engine) = &self.engines[i];
            let must_read = engine.owner.disarm();
            let revents = self.fds[i + 1].revents;
            // The I/O thread may have closed it while we polled.
            let still_ours = core
                .direct
                .get(pipe)
                .is_some_and(|e| Arc::ptr_eq(e, engine));
            let busy = still_ours
                && (revents != 0 || must_read)
                && read_engine(mailbox, core, *pipe, engine, revents, must_read).is_none();
            if busy && !must_read {
                self.busy.push(engine.clone());
            }
        }
    }

    /// Waits, holding no lock, until whoever was in the connections that
    /// had bytes for this thread but could not be borrowed is out of them.
    /// Without this the thread would come straight back (the bytes are
    /// still there, so `poll` returns at once) and spin on a `try_lock`
    /// while the holder, most often the I/O thread on a heartbeat timer,
    /// waits for a CPU: on two cores that cost round trips of 4–8 ms.
    pub(crate) fn wait_for_busy(&mut self) {
        for engine in self.busy.drain(..) {
            drop(engine.io.lock());
        }
    }
}

pub(crate) fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        // POLLRDHUP: see `EngineIo::peer_closed`.
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    }
}
