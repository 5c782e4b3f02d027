//! Who notices a connection's incoming bytes: one state, in one atomic.
//!
//! An engine past its handshake is read either by the I/O thread, which
//! watches its readable edges in epoll, or by application threads blocked
//! on its socket, which include its descriptor in their own `poll(2)`, or
//! by a task in the tokio adapter's `recv`, which has the runtime's
//! reactor watch it (a reader like the others, whose readiness it clears
//! only after reading to `WouldBlock`).
//! [`ReadOwner`] packs the whole arrangement into one word:
//!
//! - `HANDED_OFF`: clear while the I/O thread's registration includes
//!   READABLE (state **IoThread**), set while it does not (**HandedOff**).
//!   Only the I/O thread changes it, and only after re-registering.
//! - `readers`: application threads armed on the connection, i.e. with its
//!   descriptor in a `poll(2)` they are in or about to enter.
//! - `SKIPPED`: the I/O thread left bytes it was told about to the armed
//!   readers; the first reader to disarm takes the flag and must read.
//! - `ACTIVE`: a reader finished a wait since the I/O thread's last review
//!   of the hand-off; a hint, not part of the responsibility argument.
//!
//! At every moment exactly one party is responsible for the bytes:
//!
//! | state | bytes arrive | responsible |
//! |---|---|---|
//! | IoThread, readers = 0 | edge to the I/O thread | the I/O thread reads ([`Edge::Read`]) |
//! | IoThread, readers > 0 | edge to the I/O thread | it sets `SKIPPED` in the same CAS that saw the readers ([`Edge::LeaveToReaders`]), then hands off; the reader that takes `SKIPPED` reads, or hands back if it cannot lock |
//! | HandedOff, readers > 0 | no edge | the armed readers: `poll(2)` is level-triggered |
//! | HandedOff, readers = 0 | no edge | the next reader to arm (its `poll` reports them at once), or the I/O thread's review, which takes reading back when no thread armed for a whole interval |
//!
//! Transitions:
//!
//! | method | by | from | to |
//! |---|---|---|---|
//! | [`ReadOwner::arm`] | reader, under the socket lock | any | readers + 1 |
//! | [`ReadOwner::disarm`] | reader, under the socket lock | readers = n > 0 | readers n − 1, `SKIPPED` cleared (returns whether it was set), `ACTIVE` set |
//! | [`ReadOwner::take_active`] | I/O thread's review | any | `ACTIVE` cleared; returns whether it was set |
//! | [`ReadOwner::edge`] | I/O thread | IoThread or HandedOff | with readers: `SKIPPED` set (IoThread only: HandedOff readers see the bytes in `poll`); without: unchanged |
//! | [`ReadOwner::set_handed_off`] | I/O thread, after dropping READABLE | IoThread | HandedOff |
//! | [`ReadOwner::set_io_thread`] | I/O thread, after adding READABLE back | HandedOff | IoThread |
//!
//! A reader that took `SKIPPED` but cannot lock the engine (someone else is
//! in it) hands the bytes back with `Command::EngineCheck`; the I/O thread
//! then runs [`ReadOwner::edge`] for them, so they follow the table again.
//! A reader whose `poll` merely reported bytes needs no hand-back: they
//! are in the kernel, where the table already names who notices them.
//! Decoding itself is serialised by the engine's `io` mutex: never two
//! readers at once. The loom models (`crate::loom_models`) check the table.

use crate::sync::{AtomicU32, Ordering};

const READERS: u32 = 0xFFFF;
const HANDED_OFF: u32 = 1 << 16;
const SKIPPED: u32 = 1 << 17;
const ACTIVE: u32 = 1 << 18;

/// What the I/O thread does with a readable edge (or a hand-back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Edge {
    /// Nobody is armed: read now.
    Read,
    /// Armed readers will read; `SKIPPED` makes sure one of them does.
    LeaveToReaders,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct ReadOwner(AtomicU32);

impl ReadOwner {
    pub(crate) fn new() -> ReadOwner {
        ReadOwner(AtomicU32::new(0))
    }

    /// A reader is about to `poll(2)` on the connection.
    pub(crate) fn arm(&self) {
        let prev = self.0.fetch_add(1, Ordering::SeqCst);
        debug_assert!(prev & READERS < READERS, "reader count overflow");
    }

    /// A reader is done polling. Returns true when it must read the
    /// connection whatever its `poll` said: the I/O thread left bytes to
    /// the readers, and this one took the duty.
    pub(crate) fn disarm(&self) -> bool {
        let prev = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                Some(((s - 1) & !SKIPPED) | ACTIVE)
            })
            .unwrap_or_else(|s| s);
        debug_assert!(prev & READERS > 0, "disarm without arm");
        prev & SKIPPED != 0
    }

    /// The I/O thread learnt that bytes may be waiting. One CAS decides:
    /// if readers are armed they are told (`SKIPPED`), else it reads.
    pub(crate) fn edge(&self) -> Edge {
        let r = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                // HandedOff: the armed readers' level-triggered `poll`
                // reports the bytes, so no duty is needed (and a duty
                // whose reader cannot lock would come straight back).
                let duty = if s & HANDED_OFF == 0 { SKIPPED } else { 0 };
                (s & READERS != 0).then_some(s | duty)
            });
        match r {
            Ok(_) => Edge::LeaveToReaders,
            Err(_) => Edge::Read,
        }
    }

    /// The I/O thread stopped watching readability.
    pub(crate) fn set_handed_off(&self) {
        self.0.fetch_or(HANDED_OFF, Ordering::SeqCst);
    }

    /// The I/O thread watches readability again.
    pub(crate) fn set_io_thread(&self) {
        self.0.fetch_and(!HANDED_OFF, Ordering::SeqCst);
    }

    /// Whether a reader finished a wait since the last call: the review
    /// keeps a handed-off connection only while its readers come and go
    /// (one parked through a whole interval counts as idle).
    pub(crate) fn take_active(&self) -> bool {
        self.0.fetch_and(!ACTIVE, Ordering::Relaxed) & ACTIVE != 0
    }

    /// Whether application threads own the reads (HandedOff).
    pub(crate) fn is_handed_off(&self) -> bool {
        self.0.load(Ordering::SeqCst) & HANDED_OFF != 0
    }

    /// Readers armed now.
    #[cfg(loom)]
    pub(crate) fn readers(&self) -> u32 {
        self.0.load(Ordering::SeqCst) & READERS
    }
}
