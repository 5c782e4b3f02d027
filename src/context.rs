//! [`Context`]: owns the I/O thread that serves all of its sockets.

use crate::close::CloseReport;
use crate::error::{Error, Result};
use crate::io::{self, Command, Mailbox};
use crate::shared::{ContextState, SocketShared};
use crate::socket::Socket;
use crate::socket_type::SocketType;
use crate::zmtp::mechanism::ZapHandler;
use parking_lot::Mutex;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

/// A ZeroMQ context: a background I/O thread and the sockets it serves.
///
/// Cloning a `Context` gives another handle to the same context. When the
/// last handle is dropped (or [`Context::term`] is called) the context
/// terminates: blocked and future calls on its sockets return
/// [`Error::ContextTerminated`], pending outbound messages get up to each
/// socket's `linger` to be written, and the I/O thread is joined. Unlike
/// libzmq, termination does not wait for the application to close its
/// sockets, and with the default finite `linger` it never hangs forever.
#[derive(Clone, Debug)]
pub struct Context {
    handle: Arc<ContextHandle>,
}

#[derive(Debug)]
struct ContextHandle {
    inner: Arc<ContextInner>,
}

impl Drop for ContextHandle {
    fn drop(&mut self) {
        self.inner.terminate();
    }
}

/// The context's own state: its I/O thread and the sockets to wake when
/// it terminates. What sockets need of it is the [`ContextState`].
#[derive(Debug)]
struct ContextInner {
    io: Mutex<Option<IoHandle>>,
    state: Arc<ContextState>,
    sockets: Mutex<Vec<Weak<SocketShared>>>,
    /// Held by the thread terminating the context.
    term: Mutex<()>,
}

#[derive(Debug)]
struct IoHandle {
    mailbox: Mailbox,
    thread: Option<JoinHandle<()>>,
}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

impl Context {
    /// A new context. Its I/O thread starts with the first socket.
    pub fn new() -> Context {
        Context {
            handle: Arc::new(ContextHandle {
                inner: Arc::new(ContextInner {
                    io: Mutex::new(None),
                    state: Arc::new(ContextState::new()),
                    sockets: Mutex::new(Vec::new()),
                    term: Mutex::new(()),
                }),
            }),
        }
    }

    /// Creates a socket of the given type.
    pub fn socket(&self, ty: SocketType) -> Result<Socket> {
        let inner = &self.handle.inner;
        let mailbox = inner.mailbox()?;
        let state = &inner.state;
        let shared = Arc::new(SocketShared::new(state.next_id(), ty, state.clone()));
        let mut sockets = inner.sockets.lock();
        sockets.retain(|w| w.strong_count() > 0);
        sockets.push(Arc::downgrade(&shared));
        Ok(Socket::new(shared, mailbox))
    }

    /// Sets the ZAP handler (RFC 27, as a Rust callback) that PLAIN and
    /// CURVE servers of this context ask about each client, for
    /// connections that start from now on. It is called on the I/O
    /// thread, so it must answer quickly. Without one, a REP or ROUTER of
    /// this context bound on `inproc://zeromq.zap.01` is asked with RFC
    /// 27's frames, as libzmq does; with neither, servers behave as
    /// libzmq's with no ZAP handler bound: every client that completes
    /// the handshake is accepted.
    pub fn set_zap_handler(&self, handler: impl ZapHandler) {
        self.handle
            .inner
            .state
            .set_zap_handler(Some(Arc::new(handler)));
    }

    /// Removes the ZAP handler: later connections are accepted as without
    /// one.
    pub fn clear_zap_handler(&self) {
        self.handle.inner.state.set_zap_handler(None);
    }

    /// Terminates the context now (see the type docs), even if other
    /// handles to it exist, and waits until its sockets have lingered.
    /// Returns what became of the messages its sockets still had queued
    /// when they closed: the [`CloseReport`]s of every socket of this
    /// context closed so far, summed. Idempotent: a later call returns
    /// the same, once the first has finished.
    pub fn term(&self) -> CloseReport {
        self.handle.inner.terminate();
        self.handle.inner.state.closed_total()
    }
}

impl ContextInner {
    /// The mailbox of the I/O thread, starting the thread if needed.
    fn mailbox(&self) -> Result<Mailbox> {
        if self.state.is_terminated() {
            return Err(Error::ContextTerminated);
        }
        let mut io = self.io.lock();
        if let Some(h) = io.as_ref() {
            return Ok(h.mailbox.clone());
        }
        let (mailbox, thread) = io::spawn()?;
        *io = Some(IoHandle {
            mailbox: mailbox.clone(),
            thread: Some(thread),
        });
        Ok(mailbox)
    }

    fn terminate(&self) {
        // Held throughout, so that a second caller returns only once the
        // first has finished (and the close reports are in).
        let _term = self.term.lock();
        if !self.state.set_terminated() {
            return;
        }
        // Wake every thread blocked on a socket so it sees the flag. Under
        // the socket's lock: a thread that checked the flag before it was
        // set has registered its waiter by the time we get the lock.
        let sockets: Vec<_> = self
            .sockets
            .lock()
            .drain(..)
            .filter_map(|s| s.upgrade())
            .collect();
        for s in &sockets {
            let _guard = s.core.lock();
            s.wake();
        }
        self.state.waiters.close();
        let handle = self.io.lock().take();
        if let Some(mut h) = handle {
            h.mailbox.send(Command::Terminate);
            if let Some(t) = h.thread.take() {
                // The I/O thread lingers for at most the sockets' linger,
                // then exits; a panic there has already been reported.
                let _ = t.join();
            }
        }
        // The I/O thread reported on every socket it served; one it never
        // knew (no bind or connect) had nothing queued.
        for s in &sockets {
            s.publish_report(CloseReport::default());
        }
    }
}
