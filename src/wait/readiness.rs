//! The readiness descriptor: libzmq's `ZMQ_FD` and `ZMQ_EVENTS`, for
//! event loops (tokio, mio, a GUI's main loop) that wait on descriptors.
//!
//! The descriptor is one more [`Waiter`] of the socket, registered for
//! the socket's life instead of for one wait: whoever notifies the
//! socket's waiters (a delivery, room freed at the HWM, a peer coming or
//! going, close, termination) raises its `eventfd`. One notifier passes
//! it over: the tokio adapter's task, for a message it takes itself
//! (`Socket::try_recv_queued`), since the descriptor is the adapter's and
//! the task checks the socket again before it sleeps on it. [`events`] follows
//! the waiter protocol of `crate::waiter`: it resets the waiter, then
//! checks the socket under its lock, so a change after the check raises
//! the descriptor again and none is lost.
//!
//! libzmq's `ZMQ_FD` is edge-triggered: after an edge, the application
//! must drain until `ZMQ_EVENTS` says not ready, or it never hears from
//! the socket again. Ours is level-triggered instead: when [`events`]
//! finds the socket ready, it raises the descriptor again, so the
//! descriptor stays readable for as long as the socket is ready, and an
//! application that reads one message and goes back to its loop is woken
//! again for the next. It costs nothing on the fast path: only sockets
//! whose descriptor was asked for have the extra waiter, and a waiter
//! already raised is not written to again until `events` resets it.

use crate::error::{Error, Result};
use crate::events::Events;
use crate::pattern::IoRequest;
use crate::shared::SocketShared;
use crate::waiter::{Waiter, WaiterRef};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// A socket's readiness descriptor (libzmq's `ZMQ_FD`), from
/// `Socket::readiness`: readable whenever the socket's readiness may have
/// changed, and for as long as `Socket::events` last found it ready.
///
/// Wait for it to be readable with any event loop, then ask
/// `Socket::events` what the socket is ready for. Never read from it or
/// write to it yourself. It stays open while this handle or the socket
/// lives, and it is closed when both are gone.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Holds the eventfd open: the waiter closes it when dropped.
    _waiter: WaiterRef,
    fd: RawFd,
}

impl AsRawFd for Readiness {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl AsFd for Readiness {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` is the eventfd of `_waiter`, which this handle keeps
        // alive, and the waiter closes it only when dropped.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

/// The socket's readiness descriptor, created (and registered with the
/// socket's waiters) on first use.
pub(crate) fn descriptor(shared: &SocketShared) -> Result<Readiness> {
    let mut core = shared.core.lock();
    let waiter = match &core.readiness {
        Some(w) => w.clone(),
        None => {
            let w = WaiterRef::new(Waiter::new());
            // Readable at first: the caller cannot know the socket's
            // readiness before it asks `events`.
            w.notify();
            // Under the core lock, as every registration (crate::waiter).
            shared.waiters.register(&w);
            core.readiness = Some(w.clone());
            w
        }
    };
    let fd = waiter.fd().ok_or_else(|| {
        Error::Io(io::Error::other(
            "the system refused an eventfd for the readiness descriptor",
        ))
    })?;
    Ok(Readiness {
        _waiter: waiter,
        fd,
    })
}

/// What the socket is ready for now (`ZMQ_EVENTS`), leaving its
/// descriptor readable if that includes anything of `raise_for` (for
/// `Socket::events`, both directions; the async adapter asks only for the
/// directions it has a task waiting on, so that a writable socket does
/// not keep waking a task that waits to receive). The pipe notices and
/// the wake-up that the check produced are the caller's to pass on.
pub(crate) fn events(shared: &SocketShared, raise_for: Events) -> (Events, Vec<IoRequest>, bool) {
    let mut core = shared.core.lock();
    let waiter = core.readiness.clone();
    // Before the check: a notification this drops is about a change the
    // check sees.
    if let Some(w) = &waiter {
        w.reset();
    }
    let (ready, io, wake) = shared.readiness(&mut core, Events::IN | Events::OUT);
    drop(core);
    if !(ready & raise_for).is_empty() {
        if let Some(w) = &waiter {
            // Level-triggered: readable again while the socket is ready.
            w.notify();
        }
    }
    (ready, io, wake)
}
