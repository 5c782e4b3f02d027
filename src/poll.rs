//! Waiting on several sockets at once: [`Poller`], ZeroMQ's `zmq_poll`.
//!
//! One thread can drive many sockets: a client with 32 REQ sockets, a
//! broker between a ROUTER and a DEALER, a worker that also listens for a
//! stop signal. Readiness is level-triggered, as in libzmq: a socket is
//! reported for as long as a `recv` (or `send`) would not block.

use crate::error::Result;
pub use crate::events::Events;
use crate::io::Mailbox;
use crate::shared::SocketShared;
use crate::socket::Socket;
use crate::wait::park::{Armed, ParkSet};
use crate::waiter::{Waiter, WaiterRef, Wake};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Socket {
    /// Waits until this socket is ready for any of `events`, for at most
    /// `timeout` (`None`: no limit). Returns what it is ready for, empty
    /// on timeout. The one-socket case of [`Poller`] (pyzmq's
    /// `Socket.poll`).
    pub fn poll(&self, events: Events, timeout: Option<Duration>) -> Result<Events> {
        let mut poller = Poller::new();
        poller.add(self, events);
        poller.poll(timeout)?;
        Ok(poller.events(0))
    }
}

/// Waits until any of several sockets is ready (ZeroMQ's `zmq_poll`,
/// pyzmq's `Poller`).
///
/// ```
/// use ferrozmq::{Context, Events, Poller, SocketType};
/// use std::time::Duration;
///
/// # fn main() -> Result<(), ferrozmq::Error> {
/// let ctx = Context::new();
/// let rep = ctx.socket(SocketType::Rep)?;
/// let endpoint = rep.bind("tcp://127.0.0.1:*")?;
/// let clients = [ctx.socket(SocketType::Req)?, ctx.socket(SocketType::Req)?];
/// let mut poller = Poller::new();
/// for c in &clients {
///     c.connect(&endpoint)?;
///     c.send("ping")?;
///     poller.add(c, Events::IN);
/// }
/// for _ in 0..2 {
///     let request = rep.recv_timeout(Duration::from_secs(5))?;
///     rep.send(request)?;
/// }
/// let mut replies = 0;
/// while replies < 2 {
///     if poller.poll(Some(Duration::from_secs(5)))? == 0 {
///         panic!("no reply within 5 s");
///     }
///     for i in 0..poller.len() {
///         if poller.events(i).is_readable() {
///             clients[i].try_recv()?;
///             replies += 1;
///         }
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// Sockets may belong to different contexts, and calls on them from other
/// threads while it waits are fine. A poller does not borrow its sockets:
/// like mio's `Registry`, [`Poller::add`] returns a token, and
/// [`Poller::modify`] and [`Poller::remove`] take it. So the guide's
/// recovery move (remove a socket, close it, add a fresh one, poll on)
/// works with a poller that lives on. A socket dropped while still added
/// makes `poll` fail with [`crate::Error::SocketClosed`]: remove it first.
///
/// Waiting costs no CPU: the thread blocks in one `poll(2)` on its own
/// wake-up, registered with every socket, and, for sockets polled for
/// input, on their connections, which it then reads itself (as a blocked
/// `recv` does) instead of waiting for the I/O thread to hand the messages
/// over.
#[derive(Default)]
pub struct Poller {
    /// By token; `None` where a socket was removed (reused by `add`).
    items: Vec<Option<Item>>,
    /// What the current wait is armed with, and the previous wait's set
    /// (kept for its buffers).
    set: ParkSet,
    spare: ParkSet,
    /// Crate-private: a wake-up from outside the sockets (the proxy's
    /// control) and the generation of it last seen. `None` for every
    /// public user, whose polls behave exactly as without it.
    wake: Option<(Arc<Wake>, u64)>,
}

struct Item {
    shared: Arc<SocketShared>,
    mailbox: Mailbox,
    wanted: Events,
    ready: Events,
    /// Its entries in `set` while armed.
    armed: Option<Armed>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.items
                    .iter()
                    .map(|i| i.as_ref().map(|i| (i.wanted, i.ready))),
            )
            .finish()
    }
}

impl Poller {
    /// An empty poller.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a socket to wait on for `events`; returns its token, which
    /// [`Poller::events`], [`Poller::modify`] and [`Poller::remove`] take.
    /// Adding a socket again changes its events and returns its existing
    /// token (as pyzmq's `register`). Tokens are small integers: the first
    /// socket added gets 0, the next 1, and so on; a removed socket's
    /// token is given to the next one added.
    pub fn add(&mut self, socket: &Socket, events: Events) -> usize {
        let (shared, mailbox) = socket.handle();
        if let Some(i) = self
            .items
            .iter()
            .position(|i| i.as_ref().is_some_and(|i| Arc::ptr_eq(&i.shared, &shared)))
        {
            return self.modify(i, events);
        }
        let item = Some(Item {
            shared,
            mailbox,
            wanted: events,
            ready: Events::NONE,
            armed: None,
        });
        match self.items.iter().position(Option::is_none) {
            Some(free) => {
                self.items[free] = item;
                free
            }
            None => {
                self.items.push(item);
                self.items.len() - 1
            }
        }
    }

    /// Stops waiting on the socket of `token`; returns false if there was
    /// none. The poller keeps nothing of it: it may be closed now.
    pub fn remove(&mut self, token: usize) -> bool {
        let removed = self.items.get_mut(token).and_then(Option::take).is_some();
        while matches!(self.items.last(), Some(None)) {
            self.items.pop();
        }
        removed
    }

    /// Lets `wake` end this poller's waits too (crate-private; see
    /// [`Wake`]). A `poll` then also returns, with whatever is ready
    /// (possibly nothing), when `wake.wake()` was called since the last
    /// `poll` returned or since this call; and sockets added with
    /// [`Events::NONE`] still end it with an error when closed or
    /// terminated, so that a proxy waiting paused notices that.
    pub(crate) fn set_wake(&mut self, wake: Arc<Wake>) {
        let seq = wake.seq();
        self.wake = Some((wake, seq));
    }

    /// Changes what the socket of `token` is waited on for (`NONE` leaves
    /// it out of later polls). Returns the token; a token with no socket
    /// is ignored.
    pub fn modify(&mut self, token: usize, events: Events) -> usize {
        if let Some(Some(item)) = self.items.get_mut(token) {
            item.wanted = events;
        }
        token
    }

    /// One more than the largest token in use: `0..len()` covers every
    /// socket added (and any removed since, which report no events).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no socket is added.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// What the socket of `token` was ready for at the end of the last
    /// [`Poller::poll`] (only conditions it was polled for). Unknown or
    /// removed tokens report [`Events::NONE`].
    pub fn events(&self, token: usize) -> Events {
        match self.items.get(token) {
            Some(Some(i)) => i.ready,
            _ => Events::NONE,
        }
    }

    /// The tokens of the sockets that were ready at the end of the last
    /// [`Poller::poll`], with what they were ready for.
    pub fn ready(&self) -> impl Iterator<Item = (usize, Events)> + '_ {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(t, i)| Some((t, i.as_ref()?.ready)))
            .filter(|(_, e)| !e.is_empty())
    }

    /// Waits until at least one socket is ready for what it was added
    /// with, or `timeout` passes (`None`: no limit; zero: just look).
    /// Returns how many sockets are ready; 0 means the timeout passed.
    ///
    /// Fails with [`crate::Error::ContextTerminated`] when a socket's
    /// context was terminated, and with [`crate::Error::SocketClosed`]
    /// when a socket was closed (by another thread).
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<usize> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // One wake-up for the whole call, registered with every socket.
        let pool = self
            .items
            .iter()
            .flatten()
            .next()
            .map(|i| i.shared.ctx.clone());
        let waiter = match &pool {
            Some(ctx) => ctx.waiters.take(),
            None => WaiterRef::new(Waiter::new()),
        };
        // Registered for the whole call, before the first read of `seq`
        // (the order `Wake` relies on).
        if let Some((wake, _)) = &self.wake {
            wake.register(&waiter);
        }
        let mut waited = false;
        let result = loop {
            // Wait once even for a zero timeout, so that bytes already in
            // the kernel are read: a zero-timeout `poll(2)` is how we ask.
            let timeout_ms = match crate::waiter::poll_timeout(deadline) {
                Some(ms) => Some(ms),
                None if !waited => Some(0),
                None => None,
            };
            // Before the scan re-checks every socket: a notification this
            // drops is about a change the scan sees.
            waiter.reset();
            let woken = match &mut self.wake {
                Some((wake, seen)) => {
                    let now = wake.seq();
                    std::mem::replace(seen, now) != now
                }
                None => false,
            };
            let ready = match self.scan(&waiter, timeout_ms.is_some() && !woken) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            // No socket lock is held here.
            self.spare.wait_for_busy();
            let Some(ms) = timeout_ms.filter(|_| ready == 0 && !woken) else {
                break Ok(ready);
            };
            self.set.wait(&waiter, ms);
            waited = true;
        };
        // Whatever is still armed (sockets before the first ready one, or
        // all of them after an error) is taken out of the wait.
        let (set, items) = (&mut self.set, &mut self.items);
        for item in items.iter_mut().flatten() {
            if let Some(armed) = item.armed.take() {
                let (shared, mailbox) = (&*item.shared, &item.mailbox);
                set.disarm(armed, &waiter, shared, mailbox, &mut shared.core.lock());
            }
        }
        self.set.wait_for_busy();
        if let Some((wake, _)) = &self.wake {
            wake.unregister(&waiter);
        }
        if let Some(ctx) = pool {
            ctx.waiters.give(waiter);
        }
        result
    }

    /// One pass over the sockets, each under one lock: takes it out of the
    /// last wait (reading what its connections brought), records its
    /// readiness, and with `arm`, until one is found ready, arms it for
    /// the next wait in the same critical section that saw it not ready.
    /// Returns how many are ready.
    fn scan(&mut self, waiter: &WaiterRef, arm: bool) -> Result<usize> {
        // The last wait's entries stay readable in `spare` while the next
        // wait's are built in `set`.
        std::mem::swap(&mut self.set, &mut self.spare);
        self.set.reset(waiter);
        let mut ready = 0;
        let mut failed = None;
        for item in self.items.iter_mut().flatten() {
            let (shared, mailbox) = (&*item.shared, &item.mailbox);
            let mut core = shared.core.lock();
            if let Some(armed) = item.armed.take() {
                self.spare.disarm(armed, waiter, shared, mailbox, &mut core);
            }
            item.ready = Events::NONE;
            // Without a wake hook a socket polled for nothing is left out
            // entirely (as before); with one (the proxy, paused) it is
            // still watched for closing and termination.
            let watch_only = item.wanted.is_empty();
            if (watch_only && self.wake.is_none()) || failed.is_some() {
                continue;
            }
            if let Err(e) = shared.check_open() {
                failed = Some(e);
                continue;
            }
            if watch_only {
                if ready == 0 && arm {
                    // Registered only (no connections armed): closing and
                    // termination notify the socket's waiters.
                    item.armed = Some(self.set.arm(waiter, shared, &core, false));
                }
                continue;
            }
            let (now, io, wake) = shared.readiness(&mut core, item.wanted);
            item.ready = now;
            if now.is_empty() && ready == 0 && arm {
                item.armed = Some(
                    self.set
                        .arm(waiter, shared, &core, item.wanted.is_readable()),
                );
            }
            drop(core);
            mailbox.send_pipe_notices(shared.route_inproc(io));
            if wake {
                shared.wake();
            }
            if !now.is_empty() {
                ready += 1;
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(ready),
        }
    }
}
