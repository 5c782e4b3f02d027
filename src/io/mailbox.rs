//! The I/O thread's mailbox: a crossbeam channel of [`Command`]s plus the
//! one `mio::Waker` its `Poll` allows.
//!
//! Senders only make the `eventfd` write when the I/O thread might be
//! asleep: `pending` is set by the first sender after the I/O thread last
//! drained the channel, and only that sender wakes it. The I/O thread
//! clears `pending` *before* draining, so a command sent during a drain
//! either is seen by that drain or wakes the thread again.

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::monitor::EndpointStatus;
use crate::options::Options;
use crate::pattern::{IoRequest, PipeId};
use crate::shared::SocketShared;
use crossbeam_channel::{Receiver, Sender};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::{fmt, io};

/// What application threads (and the resolver) ask of the I/O thread.
pub(crate) enum Command {
    Bind {
        socket: Arc<SocketShared>,
        endpoint: Endpoint,
        requested: String,
        options: Options,
        reply: Sender<Result<String>>,
    },
    Connect {
        socket: Arc<SocketShared>,
        endpoint: Endpoint,
        pipe: PipeId,
        options: Options,
    },
    /// `connect("inproc://name")`: linked at once if the name is bound,
    /// else when it is.
    InprocConnect {
        socket: Arc<SocketShared>,
        name: String,
        options: Options,
        reply: Sender<Result<()>>,
    },
    Disconnect {
        socket: u64,
        endpoint: String,
        reply: Sender<Result<()>>,
    },
    Unbind {
        socket: u64,
        endpoint: String,
        reply: Sender<Result<()>>,
    },
    /// A pipe notice: output to flush, or input room to resume reading.
    Pipe(IoRequest),
    /// An application thread that borrowed this engine met a failure or
    /// left bytes unread: the I/O thread should look at it.
    EngineCheck(mio::Token),
    /// The application dropped its socket.
    CloseSocket(Arc<SocketShared>),
    /// A host name resolved (from the resolver thread).
    Resolved {
        connecter: u64,
        result: io::Result<Vec<SocketAddr>>,
    },
    /// Report the status of a socket's endpoints.
    Status {
        socket: u64,
        reply: Sender<Result<Vec<EndpointStatus>>>,
    },
    /// The context is terminating.
    Terminate,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Command::Bind { .. } => "Bind",
            Command::Connect { .. } => "Connect",
            Command::InprocConnect { .. } => "InprocConnect",
            Command::Disconnect { .. } => "Disconnect",
            Command::Unbind { .. } => "Unbind",
            Command::Pipe(_) => "Pipe",
            Command::EngineCheck(_) => "EngineCheck",
            Command::CloseSocket(_) => "CloseSocket",
            Command::Resolved { .. } => "Resolved",
            Command::Status { .. } => "Status",
            Command::Terminate => "Terminate",
        };
        f.write_str(name)
    }
}

/// The sending side, cloned into every socket.
#[derive(Clone, Debug)]
pub(crate) struct Mailbox {
    tx: Sender<Command>,
    waker: Arc<mio::Waker>,
    pending: Arc<AtomicBool>,
}

/// The receiving side, owned by the I/O thread.
#[derive(Debug)]
pub(crate) struct MailboxRx {
    rx: Receiver<Command>,
    pending: Arc<AtomicBool>,
}

pub(crate) fn mailbox(waker: mio::Waker) -> (Mailbox, MailboxRx) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let pending = Arc::new(AtomicBool::new(false));
    (
        Mailbox {
            tx,
            waker: Arc::new(waker),
            pending: pending.clone(),
        },
        MailboxRx { rx, pending },
    )
}

impl Mailbox {
    /// Passes a pattern's pipe notices on to the I/O thread.
    pub(crate) fn send_pipe_notices(&self, requests: Vec<IoRequest>) {
        for r in requests {
            self.send(Command::Pipe(r));
        }
    }

    /// Posts a command. After the I/O thread has exited this is a no-op:
    /// every caller that needs an answer also waits on a reply channel,
    /// which then reports the context as terminated.
    pub(crate) fn send(&self, cmd: Command) {
        if self.tx.send(cmd).is_err() {
            return;
        }
        if !self.pending.swap(true, Ordering::AcqRel) {
            // A failed wake means the poller is gone, i.e. the I/O thread
            // has exited; nothing is left to wake.
            let _ = self.waker.wake();
        }
    }
}

impl MailboxRx {
    /// Takes every queued command.
    pub(crate) fn drain(&self) -> impl Iterator<Item = Command> + '_ {
        self.pending.store(false, Ordering::Release);
        self.rx.try_iter()
    }
}
