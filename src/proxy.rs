//! [`proxy`] and [`proxy_steerable`]: libzmq's `zmq_proxy` and
//! `zmq_proxy_steerable`, steered by a [`ProxyControl`] handle instead of
//! a control socket.
//!
//! The proxy runs on the caller's thread: one [`Poller`] over the
//! frontend and the backend, whole messages read with `try_recv` and
//! written with `try_send`. It never spawns a thread; run it on one of
//! your own (and steer it from another with a clone of the control).
//!
//! Back-pressure: a direction reads its source only while it holds no
//! message. When the destination cannot take a message now
//! ([`Error::WouldBlock`]: at its HWM, or no peer yet for a PUSH or a
//! DEALER), the proxy keeps it, stops reading that source, and waits for
//! the destination to become writable. Nothing is dropped by the proxy
//! itself; PUB and XPUB destinations drop at their HWM as they always do
//! (counted in their `Socket::stats`).

use crate::error::{Error, Result, SendError};
use crate::message::Message;
use crate::poll::{Events, Poller};
use crate::socket::Socket;
use crate::socket_type::SocketType;
use crate::waiter::Wake;
use std::sync::Arc;

/// Messages moved in one direction before the proxy looks at the other
/// one and at its control again: keeps a busy direction from starving the
/// other, and bounds how long `ProxyControl::pause` waits.
const BATCH: usize = 256;

/// Forwards messages between `frontend` and `backend`, both ways, until a
/// socket fails (libzmq's `zmq_proxy`). Runs on the calling thread.
///
/// What it forwards, as libzmq does: whatever each socket's type can
/// receive goes out of the other one, as whole multipart messages,
/// untouched. So for XSUB/XPUB the published messages go frontend to
/// backend and the subscriptions (the messages XPUB's `recv` gives,
/// which XSUB's `send` takes) backend to frontend; for ROUTER/DEALER the
/// routing envelopes pass through both ways; for PULL/PUSH only frontend
/// to backend (a socket that cannot receive is never read).
///
/// `capture`: every forwarded message is also sent there, after its
/// destination took it, with `try_send`. A capture that cannot take it
/// now ([`Error::WouldBlock`]) loses that copy; [`ProxyStats`]'s
/// `capture_dropped` counts them (see [`proxy_steerable`]).
///
/// What ends it: the first error other than [`Error::WouldBlock`] from
/// the frontend, the backend or the capture, which it returns. In
/// practice [`Error::ContextTerminated`] (a socket's context was
/// terminated) or [`Error::SocketClosed`] (a socket was closed from
/// another thread), as libzmq returns -1 with `ETERM`. A send the
/// destination refuses outright (a ROUTER with `router_mandatory` and an
/// unknown routing id: [`Error::HostUnreachable`]) ends it too, as in
/// libzmq. It never returns `Ok`.
pub fn proxy(frontend: &Socket, backend: &Socket, capture: Option<&Socket>) -> Result<()> {
    run(frontend, backend, capture, &ProxyControl::new())
}

/// [`proxy`], steered by `control` from any thread: pause, resume,
/// terminate and statistics (libzmq's `zmq_proxy_steerable`, with a Rust
/// handle for the control socket). Runs on the calling thread.
///
/// Returns `Ok(())` after [`ProxyControl::terminate`] (at once if it was
/// called before), or the error that ended it as [`proxy`] says. A
/// message held for a destination that could not take it yet is dropped
/// on terminate.
///
/// ```no_run
/// use ferrozmq::{proxy_steerable, Context, ProxyControl, SocketType};
///
/// # fn main() -> Result<(), ferrozmq::Error> {
/// let ctx = Context::new();
/// let frontend = ctx.socket(SocketType::Router)?;
/// frontend.bind("tcp://127.0.0.1:5559")?;
/// let backend = ctx.socket(SocketType::Dealer)?;
/// backend.bind("tcp://127.0.0.1:5560")?;
/// let control = ProxyControl::new();
/// let steer = control.clone();
/// std::thread::spawn(move || {
///     // ... later, from another thread:
///     println!("{:?}", steer.stats());
///     steer.terminate();
/// });
/// proxy_steerable(&frontend, &backend, None, &control)?;
/// # Ok(())
/// # }
/// ```
pub fn proxy_steerable(
    frontend: &Socket,
    backend: &Socket,
    capture: Option<&Socket>,
    control: &ProxyControl,
) -> Result<()> {
    run(frontend, backend, capture, control)
}

/// The handle that steers a [`proxy_steerable`]: cheap to clone, and
/// usable from any thread (`Send + Sync`).
///
/// Each call takes effect at once: when [`ProxyControl::pause`] returns,
/// the proxy forwards nothing more until [`ProxyControl::resume`] (it
/// waits for the proxy to finish the batch it is in, at most
/// `BATCH` (256) non-blocking moves). Its wake-up ends the proxy's poll
/// directly: the proxy does not poll on a timer.
///
/// One control may steer several proxies at once; they share its state
/// and statistics.
#[derive(Clone, Debug, Default)]
pub struct ProxyControl {
    inner: Arc<ControlInner>,
}

#[derive(Debug, Default)]
struct ControlInner {
    /// The proxy holds it while it forwards a batch, so that changing the
    /// state waits for the batch to end.
    state: parking_lot::Mutex<Steer>,
    /// Ends the proxy's poll after a change of state.
    wake: Arc<Wake>,
}

#[derive(Debug, Default)]
struct Steer {
    mode: Mode,
    stats: ProxyStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mode {
    #[default]
    Running,
    Paused,
    Terminated,
}

impl ProxyControl {
    /// A control for a proxy not started yet, in the running state.
    pub fn new() -> ProxyControl {
        ProxyControl::default()
    }

    /// Stops forwarding until [`ProxyControl::resume`]. Messages keep
    /// queueing in the sockets (up to their HWMs). While paused the proxy
    /// still returns the error of a socket that is closed or whose context
    /// is terminated.
    pub fn pause(&self) {
        self.set(Mode::Paused);
    }

    /// Forwards again after [`ProxyControl::pause`].
    pub fn resume(&self) {
        self.set(Mode::Running);
    }

    /// Makes [`proxy_steerable`] return `Ok(())`; final (a later `resume`
    /// does not undo it, and a proxy started with this control returns at
    /// once).
    pub fn terminate(&self) {
        self.set(Mode::Terminated);
    }

    /// Messages and bytes forwarded so far each way, and capture copies
    /// dropped.
    pub fn stats(&self) -> ProxyStats {
        self.inner.state.lock().stats
    }

    fn set(&self, mode: Mode) {
        {
            let mut steer = self.inner.state.lock();
            if steer.mode == Mode::Terminated {
                return;
            }
            steer.mode = mode;
        }
        self.inner.wake.wake();
    }
}

/// What a proxy has forwarded ([`ProxyControl::stats`]; libzmq's
/// `STATISTICS` reply, without the per-socket frame counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Messages read from the frontend and taken by the backend.
    pub frontend_to_backend: Traffic,
    /// Messages read from the backend and taken by the frontend
    /// (subscriptions, for XPUB/XSUB; replies, for ROUTER/DEALER).
    pub backend_to_frontend: Traffic,
    /// Copies the capture socket could not take when they were sent
    /// (`try_send` would have blocked), and so lost.
    pub capture_dropped: u64,
}

/// Messages and bytes moved in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Whole (multipart) messages.
    pub messages: u64,
    /// Their frames' bytes, summed (no framing overhead).
    pub bytes: u64,
}

/// Whether a socket type's `recv` can ever return a message.
fn can_recv(ty: SocketType) -> bool {
    !matches!(ty, SocketType::Pub | SocketType::Push)
}

/// Whether a socket type's `send` can ever take a message.
fn can_send(ty: SocketType) -> bool {
    !matches!(ty, SocketType::Sub | SocketType::Pull)
}

/// One direction of the proxy.
struct Direction<'a> {
    from: &'a Socket,
    to: &'a Socket,
    /// Poller indexes of `from` and `to`.
    from_i: usize,
    to_i: usize,
    /// False when `from` cannot receive or `to` cannot send.
    active: bool,
    /// A message read but not yet taken by `to` (back-pressure).
    held: Option<Message>,
}

impl Direction<'_> {
    /// What this direction waits for, as (poller index, events).
    fn interest(&self) -> Option<(usize, Events)> {
        if !self.active {
            None
        } else if self.held.is_some() {
            Some((self.to_i, Events::OUT))
        } else {
            Some((self.from_i, Events::IN))
        }
    }

    /// Moves up to `BATCH` messages, the held one first, stopping at the
    /// first that `to` cannot take now (kept in `held`) or when `from` has
    /// none.
    fn forward(
        &mut self,
        capture: Option<&Socket>,
        traffic: &mut Traffic,
        capture_dropped: &mut u64,
    ) -> Result<()> {
        for _ in 0..BATCH {
            let msg = match self.held.take() {
                Some(m) => m,
                None => match self.from.try_recv() {
                    Ok(m) => m,
                    Err(Error::WouldBlock) => return Ok(()),
                    Err(e) => return Err(e),
                },
            };
            let bytes = msg.byte_len() as u64;
            // Cloning a message shares its frames' bytes.
            let copy = capture.map(|_| msg.clone());
            match self.to.try_send(msg) {
                Ok(()) => {}
                Err(SendError {
                    error: Error::WouldBlock,
                    message,
                }) => {
                    self.held = Some(message);
                    return Ok(());
                }
                Err(e) => return Err(e.error),
            }
            traffic.messages += 1;
            traffic.bytes += bytes;
            if let (Some(c), Some(copy)) = (capture, copy) {
                match c.try_send(copy) {
                    Ok(()) => {}
                    Err(SendError {
                        error: Error::WouldBlock,
                        ..
                    }) => *capture_dropped += 1,
                    Err(e) => return Err(e.error),
                }
            }
        }
        Ok(())
    }
}

fn run(
    frontend: &Socket,
    backend: &Socket,
    capture: Option<&Socket>,
    control: &ProxyControl,
) -> Result<()> {
    let (fty, bty) = (frontend.socket_type(), backend.socket_type());
    let mut poller = Poller::new();
    let fi = poller.add(frontend, Events::NONE);
    // The same socket twice (a ROUTER looping back) gets one index.
    let bi = poller.add(backend, Events::NONE);
    poller.set_wake(control.inner.wake.clone());
    let mut dirs = [
        Direction {
            from: frontend,
            to: backend,
            from_i: fi,
            to_i: bi,
            active: can_recv(fty) && can_send(bty),
            held: None,
        },
        Direction {
            from: backend,
            to: frontend,
            from_i: bi,
            to_i: fi,
            active: can_recv(bty) && can_send(fty),
            held: None,
        },
    ];
    loop {
        let mode = control.inner.state.lock().mode;
        let mut wanted = [Events::NONE; 2];
        match mode {
            Mode::Terminated => return Ok(()),
            // Polled for nothing: the poll ends on the control's wake-up,
            // or with a socket's terminal error.
            Mode::Paused => {}
            Mode::Running => {
                for (i, events) in dirs.iter().filter_map(Direction::interest) {
                    wanted[i] |= events;
                }
            }
        }
        poller.modify(fi, wanted[fi]);
        poller.modify(bi, wanted[bi]);
        poller.poll(None)?;
        for (k, dir) in dirs.iter_mut().enumerate() {
            let ready = match dir.interest() {
                Some((i, events)) => poller.events(i).contains(events),
                None => false,
            };
            if !ready {
                continue;
            }
            // Held across the batch: a pause waits for it to end, and
            // afterwards nothing is forwarded (see `ProxyControl`).
            let mut steer = control.inner.state.lock();
            if steer.mode != Mode::Running {
                break;
            }
            let Steer { stats, .. } = &mut *steer;
            let traffic = if k == 0 {
                &mut stats.frontend_to_backend
            } else {
                &mut stats.backend_to_frontend
            };
            dir.forward(capture, traffic, &mut stats.capture_dropped)?;
        }
    }
}
