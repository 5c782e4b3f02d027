//! An async adapter for tokio (cargo feature `tokio`): [`AsyncSocket`].
//!
//! It runs on the socket's readiness descriptor (`Socket::readiness`)
//! through tokio's `AsyncFd`: no thread per socket, no polling on a timer.
//! Each operation tries the non-blocking call first, and only when that
//! would block does it wait for the descriptor, ask `Socket::events`, and
//! try again. The sockets stay ordinary [`Socket`]s: the same context can
//! serve blocking threads and async tasks at once.
//!
//! # Cancellation
//! - Dropping a [`AsyncSocket::recv`] future never loses a message: a
//!   message is taken from the socket only in the poll that returns it.
//! - A message handed to [`AsyncSocket::send`] (or to the `Sink`) first
//!   goes into the adapter's one-message slot, and leaves it only when the
//!   socket has queued it. Dropping the future before that leaves the
//!   message in the slot, not lost: the next `send`, `flush` or `Sink`
//!   operation sends it first (order is kept), and
//!   [`AsyncSocket::take_unsent`] hands it back instead.
//!
//! # Reading on the task
//! While [`AsyncSocket::recv`] waits, its task reads the socket's
//! connections itself, as a thread blocked in `Socket::recv` does: it
//! registers each connection's descriptor with the runtime's reactor and
//! arms it (`crate::conn::owner`), so the I/O thread leaves the reading to
//! it and a reply reaches the task without crossing that thread and the
//! readiness descriptor (the two hops that held 32 async clients to half
//! of zmq.rs's rate). The arms are dropped when the future completes or is
//! dropped. The `Stream` does not arm: a stream that is held but not
//! polled would leave bytes, heartbeats included, with no reader; it waits
//! on the readiness descriptor alone, and the I/O thread reads for it.
//!
//! # Several tasks
//! One task may receive while another sends (for example after splitting
//! the `Stream` and the `Sink`). Whichever task polls the descriptor also
//! wakes the other when the socket became ready for it.

use crate::conn::EngineShared;
use crate::error::{Error, Result, SendError};
use crate::events::Events;
use crate::io::Mailbox;
use crate::message::{IntoFrame, Message};
use crate::pattern::PipeId;
use crate::shared::SocketShared;
use crate::socket::Socket;
use crate::wait::park::{can_park, disarm_one, wants_reader, Disarmed};
use crate::wait::readiness::Readiness;
use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
use parking_lot::Mutex;
use std::future::poll_fn;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// A [`Socket`] for async code on tokio: `recv().await`, `send(m).await`,
/// `Stream` of received messages and `Sink` of messages to send.
///
/// ```no_run
/// # async fn demo() -> ferrozmq::Result<()> {
/// use ferrozmq::{tokio::AsyncSocket, Context, SocketType};
/// let ctx = Context::new();
/// let req = AsyncSocket::new(ctx.socket(SocketType::Req)?)?;
/// req.get_ref().connect("tcp://127.0.0.1:5555")?;
/// req.send("hello").await?;
/// let reply = req.recv().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncSocket {
    // Declared before `socket`: deregistered from tokio before the socket
    // (whose state keeps the descriptor open) goes.
    fd: AsyncFd<Readiness>,
    socket: Socket,
    /// Tasks waiting for each direction, for the task that polls the
    /// descriptor to wake.
    wakers: Mutex<Wakers>,
    /// The message being sent (see the module docs on cancellation).
    unsent: Mutex<Option<Message>>,
    /// The connections `recv` reads while it waits.
    reader: TaskReader,
}

/// The connections registered with the reactor, for `recv` to read while
/// it waits (see the module docs, "Reading on the task"). Dropping it
/// disarms them.
#[derive(Debug)]
struct TaskReader {
    shared: Arc<SocketShared>,
    mailbox: Mailbox,
    conns: Mutex<Vec<Conn>>,
}

/// A connection of the socket that a waiting `recv` reads itself.
#[derive(Debug)]
struct Conn {
    pipe: PipeId,
    /// Registered with the runtime. Holding the engine keeps the
    /// descriptor open, so its number is never closed and reused while the
    /// reactor has it.
    fd: AsyncFd<EngineFd>,
    /// Armed on the engine's `ReadOwner`; disarmed before anything else
    /// is done with the socket.
    armed: bool,
}

#[derive(Debug)]
struct EngineFd(Arc<EngineShared>);

impl AsRawFd for EngineFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd
    }
}

/// How arming went.
enum Armed {
    /// The armed connections are quiet: wait.
    Waiting,
    /// One is readable already: disarm and read it.
    Readable,
}

#[derive(Debug, Default)]
struct Wakers {
    recv: Option<Waker>,
    send: Option<Waker>,
}

impl Wakers {
    fn slot(&mut self, dir: Events) -> &mut Option<Waker> {
        if dir == Events::IN {
            &mut self.recv
        } else {
            &mut self.send
        }
    }
}

/// What one non-blocking attempt did.
enum Attempt<T> {
    Done(T),
    WouldBlock,
}

impl AsyncSocket {
    /// Wraps `socket`. Must be called inside a tokio runtime with I/O
    /// enabled (it registers the readiness descriptor with the runtime);
    /// outside one it fails with [`Error::InvalidState`].
    pub fn new(socket: Socket) -> Result<AsyncSocket> {
        if ::tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidState(
                "AsyncSocket::new needs a tokio runtime (call it inside one)",
            ));
        }
        let readiness = socket.readiness()?;
        // SAFETY: the descriptor is the eventfd of the waiter that
        // `readiness` holds: open, and the same, for as long as the
        // `AsyncFd` owns the handle.
        let fd = unsafe { AsyncFd::register_with_interest(readiness, Interest::READABLE) }
            .map_err(|e| Error::Io(e.into_parts().1))?;
        let (shared, mailbox) = socket.handle();
        Ok(AsyncSocket {
            fd,
            socket,
            wakers: Mutex::new(Wakers::default()),
            unsent: Mutex::new(None),
            reader: TaskReader {
                shared,
                mailbox,
                conns: Mutex::new(Vec::new()),
            },
        })
    }

    /// The socket, for `bind`, `connect`, options and the rest.
    pub fn get_ref(&self) -> &Socket {
        &self.socket
    }

    /// The socket back. A message still in the send slot is dropped with
    /// the adapter; take it first with [`AsyncSocket::take_unsent`].
    pub fn into_inner(self) -> Socket {
        self.socket
    }

    /// Receives a message. Cancel-safe: dropping the future loses nothing.
    /// While it waits, its task reads the connections (see the module
    /// docs).
    pub async fn recv(&self) -> Result<Message> {
        let _disarm = DisarmOnDrop(self);
        poll_fn(|cx| self.poll_io(cx, Events::IN, |cx| self.attempt_recv_reading(cx))).await
    }

    /// Sends a message, waiting while the socket cannot take it (its
    /// HWM, or no peer yet). See the module docs for what dropping the
    /// future does.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), SendError> {
        let mut msg = Some(msg.into());
        poll_fn(|cx| {
            if let Err(e) = std::task::ready!(self.poll_flush_unsent(cx)) {
                let message = msg.take().unwrap_or_default();
                return Poll::Ready(Err(SendError::new(e, message)));
            }
            if let Some(m) = msg.take() {
                *self.unsent.lock() = Some(m);
            }
            self.poll_flush_unsent(cx)
                .map(|r| r.map_err(|e| SendError::new(e, self.take_unsent().unwrap_or_default())))
        })
        .await
    }

    /// Sends a multipart message built from the given frames.
    pub async fn send_multipart<I, F>(&self, frames: I) -> Result<(), SendError>
    where
        I: IntoIterator<Item = F>,
        F: IntoFrame,
    {
        self.send(Message::from_frames(frames)).await
    }

    /// The message a cancelled `send` left unsent, if any: it will not be
    /// sent any more.
    pub fn take_unsent(&self) -> Option<Message> {
        self.unsent.lock().take()
    }

    /// Polls for a received message. Unlike [`AsyncSocket::recv`], it
    /// leaves reading the connections to the I/O thread (see the module
    /// docs).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        self.poll_io(cx, Events::IN, |_| recv_attempt(self.socket.try_recv()))
    }

    /// One attempt of a `recv` that reads the connections: read what the
    /// armed ones have, take a queued message, or arm them again.
    fn attempt_recv_reading(&self, cx: &mut Context<'_>) -> Result<Attempt<Message>> {
        loop {
            let busy = self.reader.disarm(Some(cx));
            let raise = self.wakers.lock().send.is_some();
            if let Attempt::Done(m) = recv_attempt(self.socket.try_recv_queued(raise))? {
                return Ok(Attempt::Done(m));
            }
            match self.reader.arm(cx) {
                Armed::Readable if !busy => continue,
                Armed::Readable => {
                    // Whoever holds the engine is about done with it;
                    // come back after the runtime's other tasks rather
                    // than spin on its lock here.
                    cx.waker().wake_by_ref();
                    return Ok(Attempt::WouldBlock);
                }
                Armed::Waiting => return Ok(Attempt::WouldBlock),
            }
        }
    }

    /// Polls until the send slot is empty: its message queued by the
    /// socket. An error leaves the message in the slot.
    fn poll_flush_unsent(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_io(cx, Events::OUT, |_| {
            let mut slot = self.unsent.lock();
            let Some(msg) = slot.take() else {
                return Ok(Attempt::Done(()));
            };
            match self.socket.try_send(msg) {
                Ok(()) => Ok(Attempt::Done(())),
                Err(SendError { error, message }) => {
                    *slot = Some(message);
                    match error {
                        Error::WouldBlock => Ok(Attempt::WouldBlock),
                        e => Err(e),
                    }
                }
            }
        })
    }

    /// One direction's wait: try; register this task's waker; try again
    /// (a change between the two is then seen); wait for the descriptor;
    /// ask `events`, waking the other direction's task if the socket is
    /// ready for it; repeat.
    fn poll_io<T>(
        &self,
        cx: &mut Context<'_>,
        dir: Events,
        mut attempt: impl FnMut(&mut Context<'_>) -> Result<Attempt<T>>,
    ) -> Poll<Result<T>> {
        let other = if dir == Events::IN {
            Events::OUT
        } else {
            Events::IN
        };
        loop {
            if let Attempt::Done(t) = attempt(cx)? {
                return Poll::Ready(Ok(t));
            }
            *self.wakers.lock().slot(dir) = Some(cx.waker().clone());
            if let Attempt::Done(t) = attempt(cx)? {
                self.wakers.lock().slot(dir).take();
                return Poll::Ready(Ok(t));
            }
            let mut guard = match self.fd.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::Io(e))),
                Poll::Ready(Ok(guard)) => guard,
            };
            // Keep the descriptor raised only for directions a task waits
            // on: a writable socket must not keep waking a receiver.
            let waiting = if self.wakers.lock().slot(other).is_some() {
                dir | other
            } else {
                dir
            };
            let ready = self.socket.events_raising(waiting)?;
            if ready.contains(other) {
                if let Some(w) = self.wakers.lock().slot(other).take() {
                    w.wake();
                }
            }
            if ready.contains(dir) {
                guard.retain_ready();
            } else {
                guard.clear_ready();
            }
        }
    }
}

impl TaskReader {
    /// Arms the connections that want a reader, registering new ones with
    /// the reactor, and asks the reactor about each (which also has it
    /// wake this task when one becomes readable). Arming happens under the
    /// socket's lock, as a blocking reader's does (`wait::park`).
    fn arm(&self, cx: &mut Context<'_>) -> Armed {
        let mut conns = self.conns.lock();
        {
            let core = self.shared.core.lock();
            // Forget connections the socket no longer has.
            conns.retain(|c| {
                core.direct
                    .get(&c.pipe)
                    .is_some_and(|e| Arc::ptr_eq(e, &c.fd.get_ref().0))
            });
            if !can_park(&core) {
                return Armed::Waiting;
            }
            for (pipe, engine) in core.direct.iter() {
                if !wants_reader(engine) {
                    continue;
                }
                let i = match conns.iter().position(|c| c.pipe == *pipe) {
                    Some(i) => i,
                    None => {
                        let fd = EngineFd(engine.clone());
                        // SAFETY: the descriptor is the connection's, kept
                        // open by the engine that `EngineFd` holds for as
                        // long as the `AsyncFd` (which owns it) is
                        // registered.
                        match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                            Ok(fd) => conns.push(Conn {
                                pipe: *pipe,
                                fd,
                                armed: false,
                            }),
                            // Unarmed, it stays the I/O thread's to read.
                            Err(_) => continue,
                        }
                        conns.len() - 1
                    }
                };
                engine.owner.arm();
                conns[i].armed = true;
            }
        }
        let mut readable = false;
        for c in conns.iter().filter(|c| c.armed) {
            // The guard is dropped without clearing: `disarm` reads and
            // clears under a guard of its own.
            // An error (the reactor going away) is no reason to read: the
            // next attempt would see the same and spin.
            readable |= matches!(c.fd.poll_read_ready(cx), Poll::Ready(Ok(_)));
        }
        if readable {
            Armed::Readable
        } else {
            Armed::Waiting
        }
    }

    /// Disarms every armed connection, reading those the reactor reports
    /// readable (with `cx`) or whose bytes the I/O thread left to us. A
    /// connection read to the end has its readiness cleared, under the
    /// guard taken before the read, so that bytes arriving meanwhile are
    /// not forgotten. Returns whether one had to be read but someone else
    /// was in it.
    fn disarm(&self, mut cx: Option<&mut Context<'_>>) -> bool {
        let mut conns = self.conns.lock();
        // A connection the I/O thread has closed is held by us alone:
        // give its descriptor back (its peer was told at the close).
        conns.retain(|c| c.armed || Arc::strong_count(&c.fd.get_ref().0) > 1);
        if !conns.iter().any(|c| c.armed) {
            return false;
        }
        // Without a task to take what is read (the `recv` ended), the
        // socket's waiters are told here, as the I/O thread would.
        let orphaned = cx.is_none();
        let (mut busy, mut delivered) = (false, false);
        let mut core = self.shared.core.lock();
        for c in conns.iter_mut().filter(|c| c.armed) {
            c.armed = false;
            let guard = match cx.as_deref_mut().map(|cx| c.fd.poll_read_ready(cx)) {
                Some(Poll::Ready(Ok(guard))) => Some(guard),
                _ => None,
            };
            let engine = &c.fd.get_ref().0;
            match disarm_one(&self.mailbox, &mut core, c.pipe, engine, guard.is_some()) {
                Disarmed::Read(read) => {
                    delivered |= read.delivered;
                    if let (true, Some(mut guard)) = (read.settled, guard) {
                        guard.clear_ready();
                    }
                }
                Disarmed::Busy => busy = true,
                Disarmed::Idle => {}
            }
        }
        if orphaned && delivered {
            let (io, wake) = core.settle();
            drop(core);
            self.mailbox.send_pipe_notices(self.shared.route_inproc(io));
            if wake {
                self.shared.wake();
            }
        }
        busy
    }
}

impl Drop for TaskReader {
    fn drop(&mut self) {
        self.disarm(None);
    }
}

/// A `recv` attempt's result as an [`Attempt`].
fn recv_attempt(r: Result<Message>) -> Result<Attempt<Message>> {
    match r {
        Ok(m) => Ok(Attempt::Done(m)),
        Err(Error::WouldBlock) => Ok(Attempt::WouldBlock),
        Err(e) => Err(e),
    }
}

/// Disarms what a `recv` future armed when it ends, completed or
/// dropped: an arm left behind would leave the connection's bytes to a
/// reader that is gone.
struct DisarmOnDrop<'a>(&'a AsyncSocket);

impl Drop for DisarmOnDrop<'_> {
    fn drop(&mut self) {
        self.0.reader.disarm(None);
    }
}

impl futures_core::Stream for AsyncSocket {
    type Item = Result<Message>;

    /// Every received message; an error (the socket closed, the context
    /// terminated) is an item too, and polling on after one repeats it.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_recv(cx).map(Some)
    }
}

impl futures_sink::Sink<Message> for AsyncSocket {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_flush_unsent(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        let mut slot = self.unsent.lock();
        if slot.is_some() {
            return Err(Error::InvalidState("start_send before poll_ready"));
        }
        *slot = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_flush_unsent(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_flush_unsent(cx)
    }
}
