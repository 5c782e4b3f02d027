//! Waiting on several sockets at once: [`Poller`], ZeroMQ's `zmq_poll`.
//!
//! One thread can drive many sockets: a client with 32 REQ sockets, a
//! broker between a ROUTER and a DEALER, a worker that also listens for a
//! stop signal. Readiness is level-triggered, as in libzmq: a socket is
//! reported for as long as a `recv` (or `send`) would not block.

use crate::error::{Error, Result};
use crate::io::direct::{self, Armed, ParkSet};
use crate::socket::Socket;
use std::time::{Duration, Instant};

/// A set of readiness conditions: [`Events::IN`], [`Events::OUT`], or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Events(u8);

impl Events {
    /// Nothing.
    pub const NONE: Events = Events(0);
    /// A `recv` would return without blocking (`ZMQ_POLLIN`): a message,
    /// or the failure of an outstanding request.
    pub const IN: Events = Events(1);
    /// A `send` would not block (`ZMQ_POLLOUT`).
    pub const OUT: Events = Events(2);

    /// True when every condition in `other` is in `self`.
    pub fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no condition is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when [`Events::IN`] is set.
    pub fn is_readable(self) -> bool {
        self.contains(Events::IN)
    }

    /// True when [`Events::OUT`] is set.
    pub fn is_writable(self) -> bool {
        self.contains(Events::OUT)
    }
}

impl std::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for Events {
    type Output = Events;
    fn bitand(self, rhs: Events) -> Events {
        Events(self.0 & rhs.0)
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
/// Sockets may belong to different contexts. A poller borrows its sockets;
/// calls on them from other threads while it waits are fine.
///
/// Waiting costs no CPU: the thread blocks in one `poll(2)` on each
/// socket's wake-up eventfd and, for sockets polled for input, on their
/// connections, which it then reads itself (as a blocked `recv` does)
/// instead of waiting for the I/O thread to hand the messages over.
#[derive(Default)]
pub struct Poller<'a> {
    items: Vec<Item<'a>>,
    /// What the current wait is armed with, and the previous wait's set
    /// (kept for its buffers).
    set: ParkSet<'a>,
    spare: ParkSet<'a>,
}

struct Item<'a> {
    socket: &'a Socket,
    wanted: Events,
    ready: Events,
    /// Its entries in `set` while armed.
    armed: Option<Armed>,
}

impl std::fmt::Debug for Poller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.items.iter().map(|i| (i.wanted, i.ready)))
            .finish()
    }
}

impl<'a> Poller<'a> {
    /// An empty poller.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a socket to wait on for `events`; returns its index, which
    /// [`Poller::events`] takes. Adding a socket again changes its events
    /// and returns its existing index (as pyzmq's `register`).
    pub fn add(&mut self, socket: &'a Socket, events: Events) -> usize {
        if let Some(i) = self
            .items
            .iter()
            .position(|i| std::ptr::eq(i.socket, socket))
        {
            self.items[i].wanted = events;
            return i;
        }
        self.items.push(Item {
            socket,
            wanted: events,
            ready: Events::NONE,
            armed: None,
        });
        self.items.len() - 1
    }

    /// Changes what the socket at `index` is waited on for (`NONE` leaves
    /// it out of later polls).
    ///
    /// # Panics
    /// If `index` was not returned by [`Poller::add`].
    pub fn set_events(&mut self, index: usize, events: Events) {
        self.items[index].wanted = events;
    }

    /// How many sockets were added.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no socket was added.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// What the socket at `index` was ready for at the end of the last
    /// [`Poller::poll`] (only conditions it was polled for). Out-of-range
    /// indexes report [`Events::NONE`].
    pub fn events(&self, index: usize) -> Events {
        self.items.get(index).map_or(Events::NONE, |i| i.ready)
    }

    /// Waits until at least one socket is ready for what it was added
    /// with, or `timeout` passes (`None`: no limit; zero: just look).
    /// Returns how many sockets are ready; 0 means the timeout passed.
    ///
    /// Fails with [`Error::ContextTerminated`] when a socket's context
    /// was terminated, and with [`Error::Io`] when the operating system
    /// refuses the wake-up descriptor a socket needs (descriptors
    /// exhausted).
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<usize> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut waited = false;
        let result = loop {
            // Wait once even for a zero timeout, so that bytes already in
            // the kernel are read: a zero-timeout `poll(2)` is how we ask.
            let timeout_ms = match direct::poll_timeout(deadline) {
                Some(ms) => Some(ms),
                None if !waited => Some(0),
                None => None,
            };
            let ready = match self.scan(timeout_ms.is_some()) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            let Some(ms) = timeout_ms.filter(|_| ready == 0) else {
                break Ok(ready);
            };
            self.set.wait(ms);
            waited = true;
        };
        // Whatever is still armed (sockets before the first ready one, or
        // all of them after an error) is taken out of the wait.
        let (set, items) = (&mut self.set, &mut self.items);
        for item in items {
            if let Some(armed) = item.armed.take() {
                set.disarm(armed, &mut item.socket.shared().core.lock());
            }
        }
        self.set.clear();
        result
    }

    /// One pass over the sockets, each under one lock: takes it out of the
    /// last wait (reading what its engines brought), records its
    /// readiness, and with `arm`, until one is found ready, arms it for
    /// the next wait in the same critical section that saw it not ready.
    /// Returns how many are ready.
    fn scan(&mut self, arm: bool) -> Result<usize> {
        // The last wait's entries stay readable in `spare` while the next
        // wait's are built in `set`.
        std::mem::swap(&mut self.set, &mut self.spare);
        self.set.clear();
        let mut ready = 0;
        let mut failed = None;
        for item in &mut self.items {
            let shared = item.socket.shared();
            let mut core = shared.core.lock();
            if let Some(armed) = item.armed.take() {
                self.spare.disarm(armed, &mut core);
            }
            item.ready = Events::NONE;
            if item.wanted.is_empty() || failed.is_some() {
                continue;
            }
            if shared.ctx.is_terminated() {
                failed = Some(Error::ContextTerminated);
                continue;
            }
            let (now, wake) = shared.readiness(&mut core, item.wanted);
            item.ready = now;
            if now.is_empty() && ready == 0 && arm {
                item.armed = self.set.arm(shared, &core, item.wanted.is_readable());
                if item.armed.is_none() {
                    failed = Some(Error::Io(std::io::Error::other(
                        "no eventfd for a poller (descriptors exhausted?)",
                    )));
                }
            }
            drop(core);
            if wake {
                shared.wake();
            }
            if !now.is_empty() {
                ready += 1;
            }
        }
        self.spare.clear();
        match failed {
            Some(e) => Err(e),
            None => Ok(ready),
        }
    }
}
