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
//! # Several tasks
//! One task may receive while another sends (for example after splitting
//! the `Stream` and the `Sink`). Whichever task polls the descriptor also
//! wakes the other when the socket became ready for it.

use crate::error::{Error, Result, SendError};
use crate::events::Events;
use crate::message::{IntoFrame, Message};
use crate::socket::Socket;
use crate::wait::readiness::Readiness;
use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
use parking_lot::Mutex;
use std::future::poll_fn;
use std::pin::Pin;
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
        Ok(AsyncSocket {
            fd,
            socket,
            wakers: Mutex::new(Wakers::default()),
            unsent: Mutex::new(None),
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
    pub async fn recv(&self) -> Result<Message> {
        poll_fn(|cx| self.poll_recv(cx)).await
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

    /// Polls for a received message.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        self.poll_io(cx, Events::IN, || match self.socket.try_recv() {
            Ok(m) => Ok(Attempt::Done(m)),
            Err(Error::WouldBlock) => Ok(Attempt::WouldBlock),
            Err(e) => Err(e),
        })
    }

    /// Polls until the send slot is empty: its message queued by the
    /// socket. An error leaves the message in the slot.
    fn poll_flush_unsent(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_io(cx, Events::OUT, || {
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
        mut attempt: impl FnMut() -> Result<Attempt<T>>,
    ) -> Poll<Result<T>> {
        let other = if dir == Events::IN {
            Events::OUT
        } else {
            Events::IN
        };
        loop {
            if let Attempt::Done(t) = attempt()? {
                return Poll::Ready(Ok(t));
            }
            *self.wakers.lock().slot(dir) = Some(cx.waker().clone());
            if let Attempt::Done(t) = attempt()? {
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
