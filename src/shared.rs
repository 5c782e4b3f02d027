//! What a socket's application threads and the I/O thread share:
//! [`SocketShared`] (the core behind its lock, and the waiters blocked on
//! it) and [`ContextState`] (what a context's sockets need of it). The
//! public handle, [`crate::Socket`], is a thin owner of these.
//!
//! Nothing here knows the mailbox or the I/O thread: callers pass pipe
//! notices on themselves, which keeps this module below both the I/O
//! thread and the application-thread code in the module graph.
//!
//! `inproc` is the one data path that needs no I/O thread: two sockets'
//! pipes linked in memory.

mod inproc;

#[cfg(all(test, loom))]
pub(crate) use inproc::{transfer, Dir, Ends};
pub(crate) use inproc::{End, Link, Notices};

use crate::close::{CloseReport, ReportSlot};
use crate::conn::budget::InboundBudget;
use crate::conn::EngineShared;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::id_map::IdMap;
use crate::monitor::MonitorEvent;
use crate::options::Options;
use crate::pattern::{self, IoRequest, Pattern, PatternOptions, PipeId, Pipes};
use crate::socket_type::SocketType;
use crate::waiter::{WaiterList, WaiterPool, WaiterRef};
use crate::zmtp::mechanism::ZapHandler;
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What the sockets of one context share with it.
#[derive(Debug)]
pub(crate) struct ContextState {
    terminated: AtomicBool,
    next_id: AtomicU64,
    /// Wake-ups for threads about to block, kept between waits so that
    /// a blocking call does not make an `eventfd` each time; closed with
    /// the context.
    pub(crate) waiters: WaiterPool,
    /// The close reports of this context's sockets, summed, for
    /// `Context::term`.
    closed: Mutex<CloseReport>,
    /// The ZAP handler (`Context::set_zap_handler`), read by the I/O
    /// thread when it starts a connection's session.
    zap: ZapSlot,
}

/// The context's ZAP handler, behind a lock (user code: no `Debug`).
#[derive(Default)]
struct ZapSlot(Mutex<Option<Arc<dyn ZapHandler>>>);

impl std::fmt::Debug for ZapSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.0.lock().is_some();
        f.write_str(if set { "ZapSlot(set)" } else { "ZapSlot(none)" })
    }
}

impl ContextState {
    pub(crate) fn new() -> ContextState {
        ContextState {
            terminated: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            waiters: WaiterPool::default(),
            closed: Mutex::new(CloseReport::default()),
            zap: ZapSlot::default(),
        }
    }

    /// Sets or clears the ZAP handler for connections started from now.
    pub(crate) fn set_zap_handler(&self, handler: Option<Arc<dyn ZapHandler>>) {
        *self.zap.0.lock() = handler;
    }

    /// The ZAP handler, if one is set.
    pub(crate) fn zap_handler(&self) -> Option<Arc<dyn ZapHandler>> {
        self.zap.0.lock().clone()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::Acquire)
    }

    /// The sum of the close reports of every socket closed so far.
    pub(crate) fn closed_total(&self) -> CloseReport {
        self.closed.lock().clone()
    }

    /// Marks the context terminated; true for the first caller only.
    pub(crate) fn set_terminated(&self) -> bool {
        !self.terminated.swap(true, Ordering::AcqRel)
    }
}

/// Everything about a socket that both the application and the I/O thread
/// touch, behind one lock. See ARCHITECTURE.md, "Shared state".
#[derive(Debug)]
pub(crate) struct SocketCore {
    pub(crate) pattern: Box<dyn Pattern>,
    pub(crate) pipes: Pipes,
    pub(crate) options: Options,
    pub(crate) monitor: Option<Sender<MonitorEvent>>,
    /// Engines past their handshake, by pipe: what application threads may
    /// borrow on the fast path (`crate::wait`).
    pub(crate) direct: IdMap<PipeId, Arc<EngineShared>>,
    /// The last successful call was a `recv`: the next `send` is a reply
    /// (or the next request), not part of a stream.
    pub(crate) last_was_recv: bool,
    /// When a `send` last had a single pipe to flush: sends closer
    /// together than `wait::borrow::STREAMING_GAP` are a stream, written by
    /// the I/O thread.
    pub(crate) last_flush: Option<Instant>,
    pub(crate) last_endpoint: Option<String>,
    /// A `bind` or `connect` has read the options (even one that failed
    /// later): from now on the options that shape connections are fixed
    /// (`Error::OptionAfterConnect`).
    pub(crate) connected_once: bool,
    /// The readiness descriptor's waiter, once asked for
    /// (`wait::readiness`): registered in `SocketShared::waiters` for
    /// the socket's life.
    pub(crate) readiness: Option<WaiterRef>,
    /// The socket's inbound budget (the same as `SocketShared::inbound`),
    /// for option changes.
    inbound: Arc<InboundBudget>,
}

impl SocketCore {
    /// Detaches drained orphan pipes and collects the notices the I/O
    /// thread and blocked application threads need after a change.
    pub(crate) fn settle(&mut self) -> (Vec<IoRequest>, bool) {
        let notices = self.pipes.take_drop_notices();
        if !notices.is_empty() && self.monitor.is_some() {
            for (pipe, dropped) in notices {
                let endpoint = self.pipes.get(pipe).map(|p| p.endpoint().to_owned());
                self.emit(MonitorEvent {
                    endpoint: endpoint.unwrap_or_default(),
                    kind: crate::monitor::EventKind::DroppedAtHwm { dropped },
                });
            }
        }
        if self.pipes.has_dead() {
            for id in self.pipes.take_dead() {
                self.pattern.detach(id, &mut self.pipes);
                self.pipes.remove(id);
            }
        }
        (self.pipes.take_io_requests(), self.pipes.take_app_wakeup())
    }

    /// Sends a monitor event if someone is listening. A monitor whose
    /// receiver is gone is dropped.
    pub(crate) fn emit(&mut self, event: MonitorEvent) {
        if let Some(tx) = &self.monitor {
            if tx.send(event).is_err() {
                self.monitor = None;
            }
        }
    }

    /// Applies the options the pattern and the inbound budget read.
    pub(crate) fn configure_pattern(&mut self) {
        self.pattern.configure(&pattern_options(&self.options));
        self.inbound.set_limit(self.options.inbound_budget);
        self.pipes.set_byte_limit(self.options.inbound_budget);
        self.pipes.set_conflate(self.options.conflate);
    }
}

/// A socket's state shared by its handle, the application threads using
/// it and the I/O thread.
#[derive(Debug)]
pub(crate) struct SocketShared {
    pub(crate) id: u64,
    pub(crate) ty: SocketType,
    pub(crate) core: Mutex<SocketCore>,
    /// Threads blocked on this socket, each with its own wake-up.
    pub(crate) waiters: WaiterList,
    pub(crate) ctx: Arc<ContextState>,
    /// `Socket::close` was called (maybe from another thread than the
    /// ones blocked on it).
    closed: AtomicBool,
    /// What became of the queued messages, once the socket has closed
    /// and lingered (`crate::close`).
    pub(crate) report: Arc<ReportSlot>,
    /// What the socket's connections and pipes hold of inbound messages
    /// (`conn::budget`).
    pub(crate) inbound: Arc<InboundBudget>,
    /// The socket's inproc connections, by pipe (`inproc`).
    pub(crate) inproc: inproc::Links,
}

impl SocketShared {
    pub(crate) fn new(id: u64, ty: SocketType, ctx: Arc<ContextState>) -> Self {
        let options = Options::default();
        let seed = crate::seed::random_seed();
        let inbound = Arc::new(InboundBudget::new(options.inbound_budget));
        let mut pipes = Pipes::new();
        pipes.set_byte_limit(options.inbound_budget);
        SocketShared {
            id,
            ty,
            core: Mutex::new(SocketCore {
                pattern: pattern::new_pattern(ty, &pattern_options(&options), seed),
                pipes,
                options,
                monitor: None,
                direct: IdMap::default(),
                last_was_recv: false,
                last_flush: None,
                last_endpoint: None,
                connected_once: false,
                readiness: None,
                inbound: inbound.clone(),
            }),
            waiters: WaiterList::new(),
            ctx,
            closed: AtomicBool::new(false),
            report: Arc::new(ReportSlot::new()),
            inbound,
            inproc: inproc::Links::default(),
        }
    }

    /// Leaves the socket's close report, once, and adds it to its
    /// context's total.
    pub(crate) fn publish_report(&self, report: CloseReport) {
        let mut total = self.ctx.closed.lock();
        if self.report.publish(report.clone()) {
            total.absorb(&report);
        }
    }

    /// Wakes every thread blocked on this socket, in `send`, `recv` or a
    /// poller: each re-checks what it waits for.
    pub(crate) fn wake(&self) {
        self.waiters.notify_all();
    }

    /// Why calls on this socket must fail now, if they must.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.ctx.is_terminated() {
            Err(Error::ContextTerminated)
        } else if self.closed.load(Ordering::Acquire) {
            Err(Error::SocketClosed)
        } else {
            Ok(())
        }
    }

    /// Marks the socket closed and wakes every thread blocked on it; true
    /// for the first caller only.
    pub(crate) fn close(&self) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Under the lock, so that a thread between its check and its
        // registration finishes registering first, and is woken.
        let _core = self.core.lock();
        self.wake();
        true
    }

    /// Which of `want` a `recv`/`send` could do now without blocking, the
    /// pipe notices checking produced, and whether blocked threads should
    /// be woken (checking may drop messages that `recv` would drop, which
    /// can free room).
    pub(crate) fn readiness(
        &self,
        core: &mut SocketCore,
        want: Events,
    ) -> (Events, Vec<IoRequest>, bool) {
        let mut ready = Events::NONE;
        let c = &mut *core;
        if want.is_readable() && c.pattern.has_in(&mut c.pipes) {
            ready |= Events::IN;
        }
        if want.is_writable() && c.pattern.has_out(&c.pipes) {
            ready |= Events::OUT;
        }
        let (io, wake) = core.settle();
        (ready, io, wake)
    }
}

fn pattern_options(o: &Options) -> PatternOptions {
    PatternOptions {
        router_mandatory: o.router_mandatory,
        req_relaxed: o.req_relaxed,
        req_correlate: o.req_correlate,
        req_resend: o.req_resend,
        immediate: o.immediate,
        xpub_verbose: o.xpub_verbose,
        xpub_verboser: o.xpub_verboser,
        xpub_manual: o.xpub_manual,
        xpub_nodrop: o.xpub_nodrop,
        xpub_welcome_msg: o.xpub_welcome_msg.clone(),
        subscription_limit: o.subscription_limit,
    }
}
