//! [`Socket`]: the application-facing handle. The state it shares with
//! the I/O thread is in `crate::shared`; how its calls wait is in
//! `crate::wait`.

use crate::close::CloseHandle;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result, SendError};
use crate::events::Events;
use crate::io::{Command, Mailbox};
use crate::message::{IntoFrame, Message};
use crate::monitor::{EndpointStatus, MonitorEvent};
use crate::options::{Mechanism, Options, ReconnectStop};
use crate::pattern::{IoRequest, PipeId, Stats};
use crate::shared::{SocketCore, SocketShared};
use crate::socket_type::SocketType;
use crate::wait::readiness::{self, Readiness};
use crate::wait::{borrow, park};
use crate::zmtp::mechanism::{CurveKeyPair, CurvePublicKey, CurveSecretKey, SecretBytes};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::MutexGuard;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Resolves a host name for `bind` on the caller's thread, since
/// `getaddrinfo` blocks and the I/O thread must not. Prefers IPv4, as libzmq
/// does without `ZMQ_IPV6`.
fn resolve_for_bind(ep: Endpoint) -> Result<Endpoint> {
    use crate::endpoint::{EndpointError, EndpointErrorKind, Host, TcpEndpoint};
    use std::net::ToSocketAddrs;
    let Endpoint::Tcp(TcpEndpoint {
        host: Host::Name(name),
        port,
    }) = &ep
    else {
        return Ok(ep);
    };
    let unresolved = |why: String| EndpointError::new(&ep, EndpointErrorKind::Unresolved(why));
    let addrs: Vec<_> = (name.as_str(), *port)
        .to_socket_addrs()
        .map_err(|e| unresolved(e.to_string()))?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .ok_or_else(|| unresolved("resolves to no address".into()))?;
    Ok(Endpoint::Tcp(TcpEndpoint {
        host: Host::Ip(addr.ip()),
        port: *port,
    }))
}

/// A ZeroMQ socket.
///
/// A socket is `Send` and `Sync`: it may move between threads, and calls
/// from several threads are serialised internally (libzmq sockets are not
/// thread-safe; ours are, at the cost of one uncontended lock per call).
///
/// Dropping the socket closes it: pending outbound messages get up to
/// `linger` to be written, in the background. [`Socket::close`] does the
/// same without giving up the handle, so that a thread can close a socket
/// that others are blocked on.
#[derive(Debug)]
pub struct Socket {
    shared: Arc<SocketShared>,
    mailbox: Mailbox,
}

/// When a blocking call gives up.
#[derive(Clone, Copy)]
enum Wait {
    Never,
    /// A timeout whose clock has not started: most calls never block, and
    /// reading the clock on each of them cost 8% of a 64-byte send.
    Within(Duration),
    Until(Instant),
    Forever,
}

impl Wait {
    fn from_timeout(t: Option<Duration>) -> Wait {
        match t {
            None => Wait::Forever,
            Some(d) if d.is_zero() => Wait::Never,
            Some(d) => Wait::Within(d),
        }
    }

    /// The same wait with its clock started, at the first need to block.
    fn started(self) -> Wait {
        match self {
            Wait::Within(d) => Instant::now()
                .checked_add(d)
                .map_or(Wait::Forever, Wait::Until),
            w => w,
        }
    }
}

/// Where a `recv` may take a message from.
#[derive(Clone, Copy, Debug)]
enum RecvFrom {
    /// The queue, and the connections a caller that will not park reads
    /// first (see [`borrow::try_read`]).
    Anywhere,
    /// The queue only (see [`Socket::try_recv_queued`]).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Queued { raise: bool },
}

impl Socket {
    pub(crate) fn new(shared: Arc<SocketShared>, mailbox: Mailbox) -> Socket {
        Socket { shared, mailbox }
    }

    /// This socket's type.
    pub fn socket_type(&self) -> SocketType {
        self.shared.ty
    }

    /// Acts on pipe notices: those of inproc pipes here (moving the
    /// messages, `shared::inproc`), the rest by passing them to the I/O
    /// thread. Must be called without the core lock when the socket has
    /// inproc links (see [`Socket::has_inproc`]).
    pub(crate) fn notify_io(&self, requests: Vec<IoRequest>) {
        self.mailbox
            .send_pipe_notices(self.shared.route_inproc(requests));
    }

    /// What a [`crate::Poller`] keeps of the socket: its shared state and
    /// its I/O thread's mailbox, without the socket itself (whose drop
    /// closes it).
    pub(crate) fn handle(&self) -> (Arc<SocketShared>, Mailbox) {
        (self.shared.clone(), self.mailbox.clone())
    }

    /// Whether pipe notices may need this socket's core lock to act on
    /// (an inproc transfer takes it), so that a caller holding it must
    /// let go first.
    fn has_inproc(&self) -> bool {
        !self.shared.inproc.is_empty()
    }

    fn check_alive(&self) -> Result<()> {
        self.shared.check_open()
    }

    fn call_io<T>(&self, make: impl FnOnce(Sender<Result<T>>) -> Command) -> Result<T> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.mailbox.send(make(tx));
        // The I/O thread always answers; a closed channel means it is gone.
        rx.recv().unwrap_or(Err(Error::ContextTerminated))
    }

    /// The options a new `bind` or `connect` shapes its connections with,
    /// checked, and fixed from now on: in one critical section, so that a
    /// setter on another thread either comes first or is refused.
    fn options_for_endpoint(&self) -> Result<Options> {
        let mut core = self.shared.core.lock();
        core.options.mechanism_config()?;
        core.connected_once = true;
        Ok(core.options.clone())
    }

    /// Binds to a local endpoint and returns the endpoint actually bound,
    /// with a wildcard port resolved: `bind("tcp://127.0.0.1:*")` returns,
    /// for example, `"tcp://127.0.0.1:40123"`.
    pub fn bind(&self, endpoint: &str) -> Result<String> {
        self.check_alive()?;
        let ep = resolve_for_bind(Endpoint::parse(endpoint)?)?;
        let options = self.options_for_endpoint()?;
        let socket = self.shared.clone();
        let requested = endpoint.to_owned();
        let bound = self.call_io(|reply| Command::Bind {
            socket,
            endpoint: ep,
            requested,
            options,
            reply,
        })?;
        self.shared.core.lock().last_endpoint = Some(bound.clone());
        Ok(bound)
    }

    /// Connects to a remote endpoint. Returns at once: the connection is
    /// made, and remade after failures, in the background. Messages sent
    /// before it is up wait in its pipe (up to the HWM).
    pub fn connect(&self, endpoint: &str) -> Result<()> {
        self.check_alive()?;
        let ep = Endpoint::parse(endpoint)?;
        ep.check_connectable()?;
        let options = self.options_for_endpoint()?;
        if let Endpoint::Inproc(name) = ep {
            // The I/O thread makes the pipe once it knows the peer is
            // compatible, if it is bound already.
            let socket = self.shared.clone();
            return self.call_io(|reply| Command::InprocConnect {
                socket,
                name,
                options,
                reply,
            });
        }
        let pipe = PipeId(self.shared.ctx.next_id());
        let io = {
            let mut core = self.shared.core.lock();
            let c = &mut *core;
            c.pipes.insert(pipe, c.options.sndhwm, c.options.rcvhwm);
            c.pipes.set_endpoint(pipe, ep.to_string());
            c.pattern.attach(pipe, &mut c.pipes);
            c.last_endpoint = Some(ep.to_string());
            c.settle()
        };
        self.notify_io(io.0);
        if io.1 {
            self.shared.wake();
        }
        self.mailbox.send(Command::Connect {
            socket: self.shared.clone(),
            endpoint: ep,
            pipe,
            options,
        });
        Ok(())
    }

    /// Stops connecting to an endpoint given to [`Socket::connect`] and
    /// closes its connection. Messages still queued for it are dropped.
    pub fn disconnect(&self, endpoint: &str) -> Result<()> {
        self.check_alive()?;
        let ep = Endpoint::parse(endpoint)?;
        let socket = self.shared.id;
        self.call_io(|reply| Command::Disconnect {
            socket,
            endpoint: ep.to_string(),
            reply,
        })
    }

    /// Stops listening on an endpoint given to, or returned by,
    /// [`Socket::bind`]. Connections already accepted stay up.
    pub fn unbind(&self, endpoint: &str) -> Result<()> {
        self.check_alive()?;
        Endpoint::parse(endpoint)?;
        let socket = self.shared.id;
        let endpoint = endpoint.to_owned();
        self.call_io(|reply| Command::Unbind {
            socket,
            endpoint,
            reply,
        })
    }

    // ----- sending -----

    /// Sends a message, blocking while no peer can take it (at the HWM),
    /// for at most `sndtimeo`.
    pub fn send(&self, msg: impl Into<Message>) -> Result<(), SendError> {
        self.send_wait(msg.into(), None)
    }

    /// Sends a multipart message built from the given frames.
    pub fn send_multipart<I, F>(&self, frames: I) -> Result<(), SendError>
    where
        I: IntoIterator<Item = F>,
        F: IntoFrame,
    {
        self.send(Message::from_frames(frames))
    }

    /// Sends, waiting at most `timeout`; [`Error::TimedOut`] after that.
    pub fn send_timeout(
        &self,
        msg: impl Into<Message>,
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.send_wait(msg.into(), Some(Wait::from_timeout(Some(timeout))))
    }

    /// Sends without blocking; [`Error::WouldBlock`] if it cannot now.
    pub fn try_send(&self, msg: impl Into<Message>) -> Result<(), SendError> {
        self.send_wait(msg.into(), Some(Wait::Never))
    }

    /// `wait: None` means "as `sndtimeo` says", read under the same lock.
    fn send_wait(&self, mut msg: Message, wait: Option<Wait>) -> Result<(), SendError> {
        let shared = &*self.shared;
        let mut core = shared.core.lock();
        let mut wait = wait.unwrap_or_else(|| Wait::from_timeout(core.options.sndtimeo));
        loop {
            if let Err(e) = shared.check_open() {
                return Err(SendError::new(e, msg));
            }
            let c = &mut *core;
            let result = c.pattern.send(msg, &mut c.pipes);
            let (io, wake) = c.settle();
            match result {
                Err(SendError {
                    error: Error::WouldBlock,
                    message,
                }) => {
                    msg = message;
                    if !io.is_empty() {
                        if self.has_inproc() {
                            // An inproc transfer may free room: with the
                            // lock released, then try again.
                            MutexGuard::unlocked(&mut core, || self.notify_io(io));
                            continue;
                        }
                        self.notify_io(io);
                    }
                    wait = wait.started();
                    if !self.block(&mut core, wait, false) {
                        let error = match wait {
                            Wait::Never => Error::WouldBlock,
                            _ => Error::TimedOut,
                        };
                        return Err(SendError::new(error, msg));
                    }
                }
                other => {
                    let mut io = io;
                    // Fast path: write on this thread if the engine is idle.
                    // Only for a message to one peer: a publisher's send to
                    // 32 subscribers made 32 writes on the sending thread,
                    // which slowed sends past the streaming gap, so every
                    // later send looked "quiet" and wrote directly too
                    // (4,000 sends/s where the I/O thread batches millions).
                    let after_recv = std::mem::take(&mut core.last_was_recv);
                    let flushes = io
                        .iter()
                        .filter(|r| matches!(r, IoRequest::Flush(_)))
                        .count();
                    if flushes == 1 {
                        io.retain(|r| match r {
                            IoRequest::Flush(pipe) => {
                                !borrow::try_flush(&mut core, *pipe, after_recv)
                            }
                            _ => true,
                        });
                    }
                    drop(core);
                    self.notify_io(io);
                    if wake {
                        shared.wake();
                    }
                    return other;
                }
            }
        }
    }

    /// Blocks until the socket's state may have changed, with `read`
    /// reading its connections on the way (see `crate::wait::park`).
    /// Returns false when the wait is over (non-blocking, or the deadline
    /// passed) without blocking.
    fn block(&self, core: &mut MutexGuard<'_, SocketCore>, wait: Wait, read: bool) -> bool {
        let deadline = match wait.started() {
            Wait::Never => return false,
            Wait::Until(d) => Some(d),
            _ => None,
        };
        park::park(&self.shared, &self.mailbox, core, deadline, read)
    }

    // ----- receiving -----

    /// Receives a message, blocking for at most `rcvtimeo`.
    pub fn recv(&self) -> Result<Message> {
        self.recv_wait(None)
    }

    /// Receives, waiting at most `timeout`; [`Error::TimedOut`] after that.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message> {
        self.recv_wait(Some(Wait::from_timeout(Some(timeout))))
    }

    /// Receives without blocking; [`Error::WouldBlock`] if nothing is ready.
    pub fn try_recv(&self) -> Result<Message> {
        self.recv_wait(Some(Wait::Never))
    }

    /// [`Socket::try_recv`] for the tokio adapter's waiting `recv`: from
    /// what is queued only, reading no connection (the task reads the ones
    /// it armed). Taking a message wakes the socket's other waiters but
    /// not its readiness descriptor, unless `raise` (another task of the
    /// adapter waits on the descriptor): the descriptor is the adapter's,
    /// and the taking task looks at the socket again before it sleeps on
    /// it. Raising it for the task's own message cost an eventfd write and
    /// a read per round trip, a fifth of the task's time with 32 clients.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn try_recv_queued(&self, raise: bool) -> Result<Message> {
        self.recv_inner(Some(Wait::Never), RecvFrom::Queued { raise })
    }

    // ----- readiness for event loops -----

    /// The socket's readiness descriptor (libzmq's `ZMQ_FD`), for event
    /// loops that wait on descriptors: it becomes readable whenever the
    /// socket's readiness may have changed, and stays readable for as
    /// long as [`Socket::events`] last found the socket ready
    /// (level-triggered; libzmq's is edge-triggered). Created on first
    /// use (an `eventfd`); later calls return the same descriptor.
    ///
    /// The contract:
    /// 1. When the descriptor is readable, call [`Socket::events`]. Never
    ///    read or write the descriptor yourself.
    /// 2. `events()` says what a `try_recv` / `try_send` would do now. It
    ///    leaves the descriptor readable if the socket is ready for
    ///    anything, and not readable otherwise.
    /// 3. After a `try_recv` or `try_send` returns `WouldBlock`, call
    ///    `events()` before waiting on the descriptor again: it lowers the
    ///    descriptor, and it is raised again by the next change.
    ///
    /// A socket that is always writable (a PUB, say) keeps its descriptor
    /// readable: wait on it only when waiting for what you need.
    ///
    /// A socket wrapped in `ferrozmq::tokio::AsyncSocket` lends its
    /// descriptor to the adapter, whose waiting `recv` does not raise it
    /// for the messages it takes itself.
    pub fn readiness(&self) -> Result<Readiness> {
        self.check_alive()?;
        readiness::descriptor(&self.shared)
    }

    /// What the socket is ready for now (libzmq's `ZMQ_EVENTS`):
    /// [`Events::IN`] if a `try_recv` would return a message,
    /// [`Events::OUT`] if a `try_send` would queue one, the same truth as
    /// [`Socket::poll`] with a zero timeout. Also lowers the readiness
    /// descriptor when the answer is nothing (see [`Socket::readiness`]).
    pub fn events(&self) -> Result<Events> {
        self.events_raising(Events::IN | Events::OUT)
    }

    /// [`Socket::events`], leaving the descriptor raised only when the
    /// socket is ready for something of `raise_for`.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn events_raising(&self, raise_for: Events) -> Result<Events> {
        self.check_alive()?;
        let (ready, io, wake) = readiness::events(&self.shared, raise_for);
        self.notify_io(io);
        if wake {
            self.shared.wake();
        }
        Ok(ready)
    }

    /// Receives a one-frame UTF-8 message as a `String` (pyzmq's
    /// `recv_string`), blocking for at most `rcvtimeo`. A message that is
    /// not one UTF-8 frame is [`Error::InvalidMessage`]; it has been
    /// received (and is dropped), as with pyzmq.
    pub fn recv_string(&self) -> Result<String> {
        self.recv()?.to_str().map(str::to_owned)
    }

    /// `wait: None` means "as `rcvtimeo` says", read under the same lock.
    fn recv_wait(&self, wait: Option<Wait>) -> Result<Message> {
        self.recv_inner(wait, RecvFrom::Anywhere)
    }

    /// Receives a message, as `from` says.
    fn recv_inner(&self, wait: Option<Wait>, from: RecvFrom) -> Result<Message> {
        let shared = &*self.shared;
        let mut core = shared.core.lock();
        let mut wait = wait.unwrap_or_else(|| Wait::from_timeout(core.options.rcvtimeo));
        let mut pulled = false;
        loop {
            shared.check_open()?;
            let c = &mut *core;
            let result = c.pattern.recv(&mut c.pipes);
            let (io, wake) = c.settle();
            let mut unlocked = false;
            if !io.is_empty() {
                if self.has_inproc() {
                    // A resume pulls from an inproc peer, which takes
                    // this socket's lock; what it brings is looked at
                    // again below.
                    MutexGuard::unlocked(&mut core, || self.notify_io(io));
                    unlocked = true;
                } else {
                    self.notify_io(io);
                }
            }
            match result {
                Err(Error::WouldBlock) if unlocked => continue,
                Err(Error::WouldBlock) if self.has_inproc() && !pulled => {
                    // Before sleeping, take what inproc peers have queued
                    // or are handing over right now (waiting for their
                    // transfer beats a wake-up per message); then look
                    // again under the lock, in the critical section that
                    // registers the wait.
                    pulled = true;
                    let io = MutexGuard::unlocked(&mut core, || self.shared.pull_inproc());
                    for r in io {
                        self.mailbox.send(Command::Pipe(r));
                    }
                    continue;
                }
                Err(Error::WouldBlock) => {
                    pulled = false;
                    // Fast path: bytes may be waiting in the kernel that the
                    // I/O thread has not read yet; read them here. A thread
                    // about to park needn't: `poll` reports them at once.
                    let parking = !matches!(wait, Wait::Never) && park::can_park(&core);
                    let read = matches!(from, RecvFrom::Anywhere);
                    if !parking && read && borrow::try_read(&self.mailbox, &mut core) {
                        continue;
                    }
                    wait = wait.started();
                    if !self.block(&mut core, wait, true) {
                        return Err(match wait {
                            Wait::Never => Error::WouldBlock,
                            _ => Error::TimedOut,
                        });
                    }
                }
                other => {
                    core.last_was_recv = other.is_ok();
                    let quiet = match from {
                        RecvFrom::Queued { raise: false } if wake => core.readiness.clone(),
                        _ => None,
                    };
                    drop(core);
                    match quiet {
                        Some(readiness) => shared.waiters.notify_all_except(&readiness),
                        None if wake => shared.wake(),
                        None => {}
                    }
                    return other;
                }
            }
        }
    }

    // ----- subscriptions -----

    /// SUB: receive the messages whose first frame starts with `prefix`
    /// (`ZMQ_SUBSCRIBE`); an empty prefix matches everything. Counted, as
    /// in libzmq: subscribing twice needs two unsubscribes. Sent to every
    /// publisher now, to those not connected yet when they connect, and
    /// again after every reconnection, whatever the HWM.
    pub fn subscribe(&self, prefix: impl AsRef<[u8]>) -> Result<()> {
        self.set_subscription(prefix.as_ref(), true)
    }

    /// SUB: removes one count of a subscription made with
    /// [`Socket::subscribe`] (`ZMQ_UNSUBSCRIBE`). Unsubscribing from a
    /// prefix not subscribed to does nothing.
    pub fn unsubscribe(&self, prefix: impl AsRef<[u8]>) -> Result<()> {
        self.set_subscription(prefix.as_ref(), false)
    }

    fn set_subscription(&self, prefix: &[u8], subscribe: bool) -> Result<()> {
        self.check_alive()?;
        let (result, (io, wake)) = {
            let mut core = self.shared.core.lock();
            let c = &mut *core;
            let result = c.pattern.set_subscription(prefix, subscribe, &mut c.pipes);
            (result, c.settle())
        };
        self.notify_io(io);
        if wake {
            self.shared.wake();
        }
        result
    }

    // ----- introspection -----

    /// The last endpoint bound (resolved) or connected, like
    /// `ZMQ_LAST_ENDPOINT`.
    pub fn last_endpoint(&self) -> Option<String> {
        self.shared.core.lock().last_endpoint.clone()
    }

    /// What each endpoint is doing now: listening, connecting, waiting to
    /// retry (and until when), connected; with the number of connect
    /// attempts and the last error. Inspect this when a request "hangs".
    pub fn endpoints(&self) -> Result<Vec<EndpointStatus>> {
        self.check_alive()?;
        let socket = self.shared.id;
        self.call_io(|reply| Command::Status { socket, reply })
    }

    /// Counters of messages dropped where ZeroMQ semantics drop them.
    pub fn stats(&self) -> Stats {
        self.shared.core.lock().pipes.stats
    }

    /// Starts monitoring: returns a channel of events about this socket's
    /// endpoints and connections. A second call replaces the first monitor,
    /// which then receives [`crate::EventKind::MonitorStopped`].
    pub fn monitor(&self) -> Receiver<MonitorEvent> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let old = self.shared.core.lock().monitor.replace(tx);
        if let Some(old) = old {
            let _ = old.send(MonitorEvent {
                endpoint: String::new(),
                kind: crate::monitor::EventKind::MonitorStopped,
            });
        }
        rx
    }

    // ----- options -----

    /// Sets options, as one of the classes in `crate::options` says: a
    /// closed socket refuses, an option that shapes connections is
    /// refused once the socket has had a `bind` or `connect`, and a live
    /// one reaches the pattern and every existing pipe before the lock is
    /// let go, so that no send or recv sees half of it.
    fn set_option(
        &self,
        option: &'static str,
        applies: Applies,
        set: impl FnOnce(&mut Options),
    ) -> Result<()> {
        let (io, wake) = {
            let mut core = self.shared.core.lock();
            self.check_alive()?;
            if applies == Applies::BeforeConnect && core.connected_once {
                return Err(Error::OptionAfterConnect { option });
            }
            let c = &mut *core;
            let hwms = (c.options.sndhwm, c.options.rcvhwm);
            set(&mut c.options);
            if hwms != (c.options.sndhwm, c.options.rcvhwm) {
                c.pipes.set_hwms(c.options.sndhwm, c.options.rcvhwm);
            }
            c.configure_pattern();
            c.settle()
        };
        self.notify_io(io);
        if wake {
            self.shared.wake();
        }
        Ok(())
    }

    /// Refuses an option that means nothing to this socket's type, as
    /// libzmq does with `EINVAL`.
    fn only_for(&self, types: &[SocketType], why: &'static str) -> Result<()> {
        self.check_alive()?;
        if types.contains(&self.shared.ty) {
            Ok(())
        } else {
            Err(Error::InvalidOption(why))
        }
    }

    /// All current option values.
    pub fn options(&self) -> Options {
        self.shared.core.lock().options.clone()
    }
}

/// When a change of an option takes effect (see `crate::options`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Applies {
    /// At once, to everything, existing connections included.
    Live,
    /// Only before the socket's first `bind` or `connect`.
    BeforeConnect,
}

/// The sentence each setter's doc ends with, by its class.
macro_rules! applies_doc {
    (Live) => {
        "Applies at once, to existing connections too."
    };
    (BeforeConnect) => {
        "Set before the first bind or connect: it shapes connections as \
         they are made, and once the socket has bound or connected \
         anything, setting it fails with [`Error::OptionAfterConnect`] \
         and leaves the value unchanged."
    };
}

/// A refused zero: for these options `None` is how to say "none".
fn not_zero<T: Default + PartialEq>(value: &Option<T>, why: &'static str) -> Result<()> {
    match value {
        Some(v) if *v == T::default() => Err(Error::InvalidOption(why)),
        _ => Ok(()),
    }
}

/// `TCP_KEEPIDLE` and `TCP_KEEPINTVL` are whole seconds, 1 to 32767 on
/// Linux: anything else would fail every later connection, not the call.
fn keepalive_secs(value: &Option<Duration>, why: &'static str) -> Result<()> {
    match value {
        Some(d) if d.as_secs() < 1 || d.as_secs() > 32767 => Err(Error::InvalidOption(why)),
        _ => Ok(()),
    }
}

macro_rules! option_accessors {
    ($(
        $(#[$doc:meta])*
        $field:ident, $setter:ident: $ty:ty, $applies:ident
        $(, only $($st:ident)|+ => $only:literal)?
        $(, check $check:expr)?;
    )*) => {
        impl Socket {
            $(
                $(#[$doc])*
                ///
                #[doc = applies_doc!($applies)]
                pub fn $setter(&self, value: $ty) -> Result<()> {
                    $(self.only_for(
                        &[$(SocketType::$st),+],
                        concat!(stringify!($field), " applies to ", $only, " sockets only"),
                    )?;)?
                    $({
                        let check: fn(&$ty) -> Result<()> = $check;
                        check(&value)?;
                    })?
                    self.set_option(stringify!($field), Applies::$applies, |o| o.$field = value)
                }

                #[doc = concat!("The current `", stringify!($field), "`.")]
                pub fn $field(&self) -> $ty {
                    self.shared.core.lock().options.$field.clone()
                }
            )*
        }
    };
}

option_accessors! {
    /// Outbound high-water mark per peer, in messages (`ZMQ_SNDHWM`,
    /// default 1000, 0 = unlimited). Existing pipes take the new value
    /// too, as in libzmq 4.2 and later: a raised HWM frees room for
    /// blocked senders; a lowered one stops new messages until the queue
    /// is below it, and drops nothing already queued.
    sndhwm, set_sndhwm: usize, Live;
    /// Inbound high-water mark per peer, in messages (`ZMQ_RCVHWM`,
    /// default 1000, 0 = unlimited). Existing pipes take the new value
    /// too: a raised HWM lets a connection paused at the old one read
    /// again.
    rcvhwm, set_rcvhwm: usize, Live;
    /// How long pending messages are kept after close (`ZMQ_LINGER`);
    /// `None` waits forever, zero drops them at once. Default 1 s
    /// (libzmq: forever). Read when the socket closes.
    linger, set_linger: Option<Duration>, Live;
    /// Timeout of a blocking `send` (`ZMQ_SNDTIMEO`); `None` is forever,
    /// zero never blocks.
    sndtimeo, set_sndtimeo: Option<Duration>, Live;
    /// Timeout of a blocking `recv` (`ZMQ_RCVTIMEO`); `None` is forever,
    /// zero never blocks.
    rcvtimeo, set_rcvtimeo: Option<Duration>, Live;
    /// First interval between reconnect attempts (`ZMQ_RECONNECT_IVL`,
    /// default 100 ms); `None` disables reconnecting. Zero is refused: it
    /// would retry in a tight loop (libzmq's 0 does).
    reconnect_ivl, set_reconnect_ivl: Option<Duration>, BeforeConnect,
        check |v| not_zero(v, "reconnect_ivl of zero would retry in a tight loop; \
                               None disables reconnecting");
    /// Cap of the reconnect backoff (`ZMQ_RECONNECT_IVL_MAX`); zero keeps
    /// the interval constant.
    reconnect_ivl_max, set_reconnect_ivl_max: Duration, BeforeConnect;
    /// Limit of one TCP connect attempt (`ZMQ_CONNECT_TIMEOUT`); zero
    /// leaves it to the OS.
    connect_timeout, set_connect_timeout: Duration, BeforeConnect;
    /// Limit of the ZMTP handshake (`ZMQ_HANDSHAKE_IVL`, default 30 s);
    /// zero disables it.
    handshake_ivl, set_handshake_ivl: Duration, BeforeConnect;
    /// `SO_KEEPALIVE` on connections (`ZMQ_TCP_KEEPALIVE`); `None`
    /// keeps the OS default.
    tcp_keepalive, set_tcp_keepalive: Option<bool>, BeforeConnect;
    /// Largest inbound message accepted (`ZMQ_MAXMSGSIZE`); a peer that
    /// sends a larger one is disconnected. `None` is unlimited.
    maxmsgsize, set_maxmsgsize: Option<u64>, BeforeConnect;
    /// Bytes this socket may hold of messages still arriving, summed over
    /// its connections (default 320 MiB; `None` is unlimited; not in
    /// libzmq). When they overdraw it, the connection that holds the
    /// most is dropped (`stats().disconnected_over_budget`, and a
    /// `Disconnected` event with `ProtocolError::InboundBudget`). The
    /// same figure bounds complete messages waiting to be read, by
    /// pausing reading as the receive HWM does. Zero is refused: it would
    /// drop every connection at its first message.
    inbound_budget, set_inbound_budget: Option<u64>, Live,
        check |v| not_zero(v, "an inbound_budget of zero would drop every connection; \
                               None is unlimited");
    /// ROUTER: fail sends to unknown peers with [`Error::HostUnreachable`]
    /// and block at the HWM, instead of dropping (`ZMQ_ROUTER_MANDATORY`).
    router_mandatory, set_router_mandatory: bool, Live,
        only Router => "ROUTER";
    /// Listen backlog for `bind` (`ZMQ_BACKLOG`, default 4096); at least 1.
    backlog, set_backlog: i32, BeforeConnect,
        check |v| if *v > 0 {
            Ok(())
        } else {
            Err(Error::InvalidOption("backlog must be at least 1"))
        };
    /// When to stop reconnecting (`ZMQ_RECONNECT_STOP`).
    reconnect_stop, set_reconnect_stop: ReconnectStop, BeforeConnect;
    /// REQ: allow sending a new request before the previous reply
    /// (`ZMQ_REQ_RELAXED`). Usually paired with `req_correlate`.
    req_relaxed, set_req_relaxed: bool, Live,
        only Req => "REQ";
    /// REQ: tag each request with an id frame and discard replies that do
    /// not carry the current one (`ZMQ_REQ_CORRELATE`).
    req_correlate, set_req_correlate: bool, Live,
        only Req => "REQ";
    /// REQ: when the connection carrying the outstanding request is lost,
    /// resend it to another peer (or the same one after it reconnects),
    /// as nng's REQ does, instead of failing `recv` with
    /// [`Error::PeerLost`]. Replies to the lost copy are discarded.
    req_resend, set_req_resend: bool, Live,
        only Req => "REQ";
    /// REQ, DEALER, PUSH: queue messages only to peers whose handshake
    /// has completed (`ZMQ_IMMEDIATE`, default off). With no such peer,
    /// `send` blocks, times out or returns [`Error::WouldBlock`]; and
    /// when a connection drops, what was queued for it is dropped and
    /// counted in `stats().dropped_peer_gone`, as libzmq does. Off, a
    /// message may wait for an endpoint that is still connecting (and
    /// moves to the first peer that connects, see README.md).
    immediate, set_immediate: bool, Live;
    /// PUB, XPUB: what one subscriber's subscriptions may cost before it
    /// is disconnected (their bytes plus 64 bytes each; default 1 MiB,
    /// about 10,000 subscriptions of 40 bytes; `None` is unlimited; not
    /// in libzmq). The subscriber is dropped with a `Disconnected` event
    /// carrying `ProtocolError::TooManySubscriptions`, as a peer that
    /// breaks `maxmsgsize` is. Zero is refused: it would drop every
    /// subscriber.
    subscription_limit, set_subscription_limit: Option<u64>, BeforeConnect,
        only Pub | XPub => "PUB and XPUB",
        check |v| not_zero(v, "a subscription_limit of zero would drop every subscriber; \
                               None is unlimited");
    /// SUB, XSUB, PULL, DEALER: keep only the newest message from each
    /// peer (`ZMQ_CONFLATE`): the latest value of a telemetry stream. An
    /// unread message is replaced by the next one from the same peer,
    /// counted in `stats().dropped_conflated`. Unlike libzmq's, whole
    /// multipart messages are kept, and only inbound queues conflate, so
    /// that PUB and PUSH (which libzmq also lists) refuse it.
    conflate, set_conflate: bool, Live,
        only Sub | XSub | Pull | Dealer => "SUB, XSUB, PULL and DEALER";
    /// XPUB: pass every subscription up to `recv`, duplicates included
    /// (`ZMQ_XPUB_VERBOSE`; default: only new ones).
    xpub_verbose, set_xpub_verbose: bool, Live,
        only XPub => "XPUB";
    /// XPUB: pass every unsubscription up too (`ZMQ_XPUB_VERBOSER`).
    xpub_verboser, set_xpub_verboser: bool, Live,
        only XPub => "XPUB";
    /// XPUB: subscriptions are passed up but not applied; the application
    /// applies them by sending them back (`ZMQ_XPUB_MANUAL`).
    xpub_manual, set_xpub_manual: bool, Live,
        only XPub => "XPUB";
    /// XPUB: at a subscriber's HWM, block (or `WouldBlock`) instead of
    /// dropping the message for it (`ZMQ_XPUB_NODROP`).
    xpub_nodrop, set_xpub_nodrop: bool, Live,
        only XPub => "XPUB";
    /// XPUB: a message sent first to every new subscriber
    /// (`ZMQ_XPUB_WELCOME_MSG`).
    xpub_welcome_msg, set_xpub_welcome_msg: Option<Bytes>, Live,
        only XPub => "XPUB";
    /// Send a ZMTP PING this often (`ZMQ_HEARTBEAT_IVL`); `None` disables
    /// heartbeats (libzmq's 0, refused here).
    heartbeat_ivl, set_heartbeat_ivl: Option<Duration>, BeforeConnect,
        check |v| not_zero(v, "a heartbeat_ivl of zero is meaningless; \
                               None disables heartbeats");
    /// Drop a peer that sends nothing for this long after a PING
    /// (`ZMQ_HEARTBEAT_TIMEOUT`); `None` uses `heartbeat_ivl`.
    heartbeat_timeout, set_heartbeat_timeout: Option<Duration>, BeforeConnect,
        check |v| not_zero(v, "a heartbeat_timeout of zero is meaningless; \
                               None uses heartbeat_ivl");
    /// The time-to-live we ask peers to apply to us (`ZMQ_HEARTBEAT_TTL`),
    /// carried in our PINGs in whole deciseconds: 100 ms to 6553.5 s
    /// (the largest a 16-bit count of deciseconds holds). `None` asks
    /// for none (libzmq's 0).
    heartbeat_ttl, set_heartbeat_ttl: Option<Duration>, BeforeConnect,
        check |v| match v {
            Some(d) if *d < Duration::from_millis(100) || *d > Duration::from_millis(6_553_500) => {
                Err(Error::InvalidOption(
                    "heartbeat_ttl is whole deciseconds, 100 ms to 6553.5 s; None asks for none",
                ))
            }
            _ => Ok(()),
        };
    /// `TCP_KEEPIDLE` (`ZMQ_TCP_KEEPALIVE_IDLE`), in whole seconds, 1 to
    /// 32767; `None` keeps the OS default.
    tcp_keepalive_idle, set_tcp_keepalive_idle: Option<Duration>, BeforeConnect,
        check |v| keepalive_secs(v, "tcp_keepalive_idle is 1 to 32767 seconds; \
                                     None keeps the OS default");
    /// `TCP_KEEPCNT` (`ZMQ_TCP_KEEPALIVE_CNT`), 1 to 127 probes; `None`
    /// keeps the OS default.
    tcp_keepalive_cnt, set_tcp_keepalive_cnt: Option<u32>, BeforeConnect,
        check |v| match v {
            Some(n) if !(1..=127).contains(n) => Err(Error::InvalidOption(
                "tcp_keepalive_cnt is 1 to 127 probes; None keeps the OS default",
            )),
            _ => Ok(()),
        };
    /// `TCP_KEEPINTVL` (`ZMQ_TCP_KEEPALIVE_INTVL`), in whole seconds, 1
    /// to 32767; `None` keeps the OS default.
    tcp_keepalive_intvl, set_tcp_keepalive_intvl: Option<Duration>, BeforeConnect,
        check |v| keepalive_secs(v, "tcp_keepalive_intvl is 1 to 32767 seconds; \
                                     None keeps the OS default");
}

impl Socket {
    /// Sets the routing id sent to peers (`ZMQ_ROUTING_ID`): 1 to 255
    /// bytes, not starting with a zero byte (reserved for generated ids).
    ///
    #[doc = applies_doc!(BeforeConnect)]
    pub fn set_routing_id(&self, id: impl Into<Bytes>) -> Result<()> {
        let id = id.into();
        if id.is_empty() || id.len() > 255 || id[0] == 0 {
            return Err(Error::InvalidOption(
                "routing_id must be 1-255 bytes and not start with 0",
            ));
        }
        self.set_option("routing_id", Applies::BeforeConnect, |o| {
            o.routing_id = id;
        })
    }

    /// The routing id sent to peers; empty when none was set.
    pub fn routing_id(&self) -> Bytes {
        self.shared.core.lock().options.routing_id.clone()
    }
}

/// Why a CURVE key was refused.
const BAD_CURVE_KEY: Error = Error::InvalidOption("a CURVE key is 32 bytes or 40 Z85 characters");

/// Security options (libzmq's `ZMQ_PLAIN_*`, `ZMQ_CURVE_*`,
/// `ZMQ_ZAP_DOMAIN`). Like libzmq, setting a PLAIN option selects PLAIN
/// and setting `curve_server` or `curve_serverkey` selects CURVE. Each
/// is set before the socket's first `bind` or `connect` (after it, the
/// setter fails with [`Error::OptionAfterConnect`]), and a `bind` or
/// `connect` fails with [`Error::InvalidOption`] when the chosen
/// mechanism lacks a key.
impl Socket {
    /// PLAIN: be the server, which checks clients' passwords through the
    /// context's ZAP handler (`ZMQ_PLAIN_SERVER`). PLAIN sends passwords
    /// in clear: use it only where the network is trusted.
    ///
    #[doc = applies_doc!(BeforeConnect)]
    pub fn set_plain_server(&self, server: bool) -> Result<()> {
        self.set_option("plain_server", Applies::BeforeConnect, |o| {
            o.plain_server = server;
            o.mechanism = if server {
                Mechanism::Plain
            } else {
                Mechanism::Null
            };
        })
    }

    /// PLAIN client: the username (`ZMQ_PLAIN_USERNAME`), at most 255
    /// bytes.
    ///
    #[doc = applies_doc!(BeforeConnect)]
    pub fn set_plain_username(&self, username: impl Into<Bytes>) -> Result<()> {
        let username = username.into();
        if username.len() > 255 {
            return Err(Error::InvalidOption("plain_username is at most 255 bytes"));
        }
        self.set_option("plain_username", Applies::BeforeConnect, |o| {
            o.plain_username = username;
            o.plain_server = false;
            o.mechanism = Mechanism::Plain;
        })
    }

    /// PLAIN client: the password (`ZMQ_PLAIN_PASSWORD`), at most 255
    /// bytes. It travels in clear.
    ///
    #[doc = applies_doc!(BeforeConnect)]
    pub fn set_plain_password(&self, password: impl AsRef<[u8]>) -> Result<()> {
        let password = password.as_ref();
        if password.len() > 255 {
            return Err(Error::InvalidOption("plain_password is at most 255 bytes"));
        }
        let password = SecretBytes::new(password.to_vec());
        self.set_option("plain_password", Applies::BeforeConnect, |o| {
            o.plain_password = password;
            o.plain_server = false;
            o.mechanism = Mechanism::Plain;
        })
    }

    /// CURVE: be the server (`ZMQ_CURVE_SERVER`); needs `curve_secretkey`.
    ///
    #[doc = applies_doc!(BeforeConnect)]
    pub fn set_curve_server(&self, server: bool) -> Result<()> {
        self.set_option("curve_server", Applies::BeforeConnect, |o| {
            o.curve_server = server;
            o.mechanism = if server {
                Mechanism::Curve
            } else {
                Mechanism::Null
            };
        })
    }

    /// CURVE: our long-term public key (`ZMQ_CURVE_PUBLICKEY`), 32 bytes
    /// or 40 Z85 characters. Optional: it follows from the secret key,
    /// and must match it when given.
    ///
    #[doc = applies_doc!(BeforeConnect)]
    pub fn set_curve_publickey(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let key = CurvePublicKey::from_bytes_or_z85(key.as_ref()).map_err(|_| BAD_CURVE_KEY)?;
        self.set_option("curve_publickey", Applies::BeforeConnect, |o| {
            o.curve_publickey = Some(key);
        })
    }

    /// CURVE: our long-term secret key (`ZMQ_CURVE_SECRETKEY`), 32 bytes
    /// or 40 Z85 characters. Kept zeroized-on-drop, never shown by
    /// `Debug`.
    ///
    #[doc = applies_doc!(BeforeConnect)]
    pub fn set_curve_secretkey(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let key = CurveSecretKey::from_bytes_or_z85(key.as_ref()).map_err(|_| BAD_CURVE_KEY)?;
        self.set_option("curve_secretkey", Applies::BeforeConnect, |o| {
            o.curve_secretkey = Some(key);
        })
    }

    /// CURVE client: the server's public key (`ZMQ_CURVE_SERVERKEY`), 32
    /// bytes or 40 Z85 characters. Selects CURVE, as a client.
    ///
    #[doc = applies_doc!(BeforeConnect)]
    pub fn set_curve_serverkey(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let key = CurvePublicKey::from_bytes_or_z85(key.as_ref()).map_err(|_| BAD_CURVE_KEY)?;
        self.set_option("curve_serverkey", Applies::BeforeConnect, |o| {
            o.curve_serverkey = Some(key);
            o.curve_server = false;
            o.mechanism = Mechanism::Curve;
        })
    }

    /// Sets both CURVE keys of this socket from a key pair.
    ///
    #[doc = applies_doc!(BeforeConnect)]
    pub fn set_curve_keypair(&self, keys: &CurveKeyPair) -> Result<()> {
        self.set_option("curve_keypair", Applies::BeforeConnect, |o| {
            o.curve_publickey = Some(keys.public);
            o.curve_secretkey = Some(keys.secret.clone());
        })
    }

    /// The ZAP domain passed to the context's ZAP handler
    /// (`ZMQ_ZAP_DOMAIN`), at most 255 bytes, as in libzmq.
    ///
    #[doc = applies_doc!(BeforeConnect)]
    pub fn set_zap_domain(&self, domain: impl Into<String>) -> Result<()> {
        let domain = domain.into();
        if domain.len() > 255 {
            return Err(Error::InvalidOption("zap_domain is at most 255 bytes"));
        }
        self.set_option("zap_domain", Applies::BeforeConnect, |o| {
            o.zap_domain = domain;
        })
    }

    /// The security mechanism later connections will use.
    pub fn mechanism(&self) -> Mechanism {
        self.shared.core.lock().options.mechanism
    }
}

impl Socket {
    /// Closes the socket now, as dropping it does: pending outbound
    /// messages get up to `linger` to be written, in the background.
    /// Threads blocked on it (in `send`, `recv` or a [`crate::Poller`])
    /// return [`Error::SocketClosed`], and so does every later call. Takes
    /// `&self` so that one thread can close a socket that others share.
    /// Idempotent.
    ///
    /// The returned handle tells, once lingering is over, what became of
    /// the messages still queued: `sock.close().wait()` is a close that
    /// reports (delivered, dropped, per peer). Ignoring the handle closes
    /// in the background, as dropping the socket does; messages dropped
    /// when `linger` runs out are still counted in
    /// `stats().dropped_linger` and logged as a warning.
    pub fn close(&self) -> CloseHandle {
        if self.shared.close() {
            // The I/O thread lingers over whatever is still queued.
            self.mailbox.send(Command::CloseSocket(self.shared.clone()));
        }
        CloseHandle::new(self.shared.report.clone())
    }

    /// How many threads are blocked on this socket right now (in `send`,
    /// `recv` or a poller). For tests that must know a thread is waiting
    /// before they act.
    #[doc(hidden)]
    pub fn blocked_threads(&self) -> usize {
        self.shared.waiters.len()
    }
}

/// The readiness descriptor ([`Socket::readiness`]), or -1 when the
/// system refused to create it (`readiness()` says why). A Rust event
/// loop should hold the [`Readiness`] handle instead, which implements
/// `AsFd` too.
impl std::os::fd::AsRawFd for Socket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.readiness()
            .map_or(-1, |r| std::os::fd::AsRawFd::as_raw_fd(&r))
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.close();
    }
}
