//! Loom models of the waiting and hand-off protocol. They drive the real
//! [`Waiter`], [`WaiterList`] and [`ReadOwner`] (their atomics and mutexes
//! come from `crate::sync`, which is loom's under `--cfg loom`); what loom
//! cannot run is stood in for by small pieces of model state: the socket
//! core is a mutex over a message count, the kernel's socket buffer is a
//! count of unread chunks, epoll's registration is the `HANDED_OFF` bit,
//! and an edge is a count of edges the I/O thread has yet to handle.
//!
//! Run (see README.md for deeper runs):
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ferrozmq --release --lib loom_models`

use crate::close::{CloseReport, ReportSlot};
use crate::conn::owner::{Edge, ReadOwner};
use crate::conn::WriteWatch;
use crate::shared::{transfer, Dir, Ends};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::wait::park::{should_arm, Seen};
use crate::waiter::{Waiter, WaiterList, Wake};
use loom::thread;

/// A socket as the waiting protocol sees it: the core lock over what a
/// waiter checks, the terminated flag, and the waiter list.
struct Socket {
    /// Queued messages.
    core: Mutex<usize>,
    terminated: AtomicBool,
    waiters: WaiterList,
}

impl Socket {
    fn new() -> Arc<Socket> {
        Arc::new(Socket {
            core: Mutex::new(0),
            terminated: AtomicBool::new(false),
            waiters: WaiterList::new(),
        })
    }

    /// `recv` as `Socket::recv_wait` and `wait::park` do it: reset, check
    /// under the lock, register in the same critical section, sleep,
    /// unregister under the lock, check again. Returns false when it
    /// ended on termination.
    fn recv(&self) -> bool {
        let w = Arc::new(Waiter::new());
        loop {
            w.reset();
            {
                let mut queued = self.core.lock();
                if self.terminated.load(Ordering::Acquire) {
                    return false;
                }
                if *queued > 0 {
                    *queued -= 1;
                    return true;
                }
                self.waiters.register(&w);
            }
            w.park(None);
            let _core = self.core.lock();
            self.waiters.unregister(&w);
        }
    }

    /// A delivery: change under the lock, notify after it.
    fn deliver(&self) {
        *self.core.lock() += 1;
        self.waiters.notify_all();
    }

    /// `wait::readiness::events`: reset the descriptor's waiter, check
    /// under the lock, raise it again when ready (level-triggered).
    fn events(&self, fd: &Waiter) -> bool {
        fd.reset();
        let ready = *self.core.lock() > 0;
        if ready {
            fd.notify();
        }
        ready
    }

    /// A `try_recv` after `events` said IN.
    fn take(&self) {
        let mut queued = self.core.lock();
        assert!(*queued > 0, "events said IN");
        *queued -= 1;
    }

    /// `wait::readiness::descriptor`: a waiter registered for the
    /// socket's life, raised at first.
    fn descriptor(&self) -> Arc<Waiter> {
        let fd = Arc::new(Waiter::new());
        fd.notify();
        let _core = self.core.lock();
        self.waiters.register(&fd);
        fd
    }

    /// `IoThread::zap_replies` (`io::zap`): reset the internal DEALER's
    /// waiter, then take every reply queued, under the lock. Returns how
    /// many it took.
    fn drain(&self, fd: &Waiter) -> usize {
        fd.reset();
        std::mem::take(&mut *self.core.lock())
    }

    /// `ContextInner::terminate`: flag first, then notify under the lock.
    fn terminate(&self) {
        self.terminated.store(true, Ordering::Release);
        let _core = self.core.lock();
        self.waiters.notify_all();
    }
}

/// No lost wake-up: a message delivered at any point of a thread's
/// arming (before its check, between check and sleep, during the sleep)
/// is seen. A lost one leaves the receiver parked forever, which loom
/// reports as a deadlock.
#[test]
fn a_delivery_while_arming_is_always_seen() {
    loom::model(|| {
        let s = Socket::new();
        let producer = {
            let s = s.clone();
            thread::spawn(move || s.deliver())
        };
        assert!(s.recv(), "the message was received");
        producer.join().expect("producer");
    });
}

/// The readiness descriptor: an event loop that waits on it, asks
/// `events` and takes a message on IN always gets a message delivered at
/// any point (a lost raise parks it forever: a deadlock), and once the
/// message is taken `events` lowers the descriptor.
#[test]
fn the_readiness_descriptor_is_never_lowered_over_a_waiting_message() {
    loom::model(|| {
        let s = Socket::new();
        let fd = s.descriptor();
        let producer = {
            let s = s.clone();
            thread::spawn(move || s.deliver())
        };
        loop {
            fd.park(None);
            if s.events(&fd) {
                s.take();
                break;
            }
        }
        producer.join().expect("producer");
        assert!(!s.events(&fd), "nothing waits");
        assert!(!fd.is_notified(), "lowered");
    });
}

/// Level-triggered: with two messages delivered, taking one leaves the
/// descriptor raised, with no further delivery, so a loop that takes one
/// message per wake-up gets the second too.
#[test]
fn the_readiness_descriptor_stays_raised_while_the_socket_is_ready() {
    loom::model(|| {
        let s = Socket::new();
        let fd = s.descriptor();
        let producer = {
            let s = s.clone();
            thread::spawn(move || {
                s.deliver();
                s.deliver();
            })
        };
        let mut taken = 0;
        while taken < 2 {
            fd.park(None);
            if s.events(&fd) {
                s.take();
                taken += 1;
            }
        }
        producer.join().expect("producer");
    });
}

/// The ZAP client (`io::zap`): the I/O thread sleeps until its waiter on
/// the internal DEALER is raised (an `eventfd` edge in its poll), then
/// resets it and takes every reply. Replies the handler's thread delivers
/// at any point of that are all taken: one stranded would leave the I/O
/// thread asleep with a connection waiting (a deadlock here). Seen to
/// deadlock when the drain resets after taking. (The I/O thread's part
/// runs on a spawned thread: a park token left over on the model's main
/// thread would confuse loom's `join`.)
#[test]
fn zap_replies_delivered_during_a_drain_are_never_stranded() {
    loom::model(|| {
        let s = Socket::new();
        let io = {
            let s = s.clone();
            thread::spawn(move || {
                // Registered for the DEALER's life, before any request.
                let fd = Arc::new(Waiter::new());
                {
                    let _core = s.core.lock();
                    s.waiters.register(&fd);
                }
                let mut taken = s.drain(&fd);
                while taken < 2 {
                    fd.park(None);
                    taken += s.drain(&fd);
                }
                taken
            })
        };
        // The handler's thread: two replies.
        s.deliver();
        s.deliver();
        assert_eq!(io.join().expect("I/O thread"), 2);
    });
}

/// Two receivers, two messages delivered one by one: each receiver gets
/// one, whatever the interleaving (nobody's wake-up is consumed by
/// another thread).
#[test]
fn each_of_two_waiters_gets_its_message() {
    loom::model(|| {
        let s = Socket::new();
        let other = {
            let s = s.clone();
            thread::spawn(move || s.recv())
        };
        let producer = {
            let s = s.clone();
            thread::spawn(move || {
                s.deliver();
                s.deliver();
            })
        };
        assert!(s.recv());
        assert!(other.join().expect("receiver"));
        producer.join().expect("producer");
        assert_eq!(*s.core.lock(), 0);
    });
}

/// Termination reaches every waiter: two threads blocked on one socket
/// both return when it terminates. The shared per-socket eventfd this
/// replaced failed exactly here (one thread drained it for both).
#[test]
fn termination_reaches_every_waiter() {
    loom::model(|| {
        let s = Socket::new();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || s.recv())
            })
            .collect();
        s.terminate();
        for w in waiters {
            assert!(!w.join().expect("waiter"), "ended by termination");
        }
    });
}

/// The tokio adapter's quiet `recv` (`Socket::try_recv_queued`): the task
/// reads a connection itself (here two messages come out of the kernel
/// under the lock), takes one, and notifies every waiter but the socket's
/// readiness descriptor, which it looks past because it checks the socket
/// again before it sleeps on it. Meanwhile the I/O thread delivers a third
/// message, and a blocked thread waits for one. Whatever the interleaving,
/// the task gets two and the thread one: a notification the skip lost
/// would park one of them forever (loom: a deadlock; seen when the task
/// also skips the other waiters).
#[test]
fn a_quiet_take_strands_no_waiter() {
    loom::model(|| {
        let s = Socket::new();
        let fd = s.descriptor();
        let kernel = Arc::new(AtomicUsize::new(2));
        let io = {
            let s = s.clone();
            thread::spawn(move || s.deliver())
        };
        let blocked = {
            let s = s.clone();
            thread::spawn(move || assert!(s.recv(), "the blocked thread's message"))
        };
        // The task: take quietly; if nothing, wait on the descriptor and
        // ask `events`, as `AsyncSocket::poll_io` does.
        let mut got = 0;
        while got < 2 {
            let took = {
                let mut queued = s.core.lock();
                // It reads a connection when it finds nothing queued.
                if *queued == 0 {
                    *queued += kernel.swap(0, Ordering::SeqCst);
                }
                let took = *queued > 0;
                if took {
                    *queued -= 1;
                }
                took
            };
            if took {
                s.waiters.notify_all_except(&fd);
                got += 1;
                continue;
            }
            fd.park(None);
            s.events(&fd);
        }
        io.join().expect("io");
        blocked.join().expect("blocked");
    });
}

/// One connection as the hand-off protocol sees it.
struct Conn {
    owner: ReadOwner,
    /// Chunks in the kernel's receive buffer.
    kernel: AtomicUsize,
    /// Edges (or hand-backs) posted to the I/O thread, not yet handled.
    edges: AtomicUsize,
    /// A chunk arrived while epoll watched readability: someone was told.
    edged: AtomicBool,
    /// The engine's `io` lock (see [`SpinLock`]).
    io: SpinLock,
    /// Set while some thread decodes.
    decoding: AtomicBool,
    /// Chunks decoded so far, by anyone.
    consumed: AtomicUsize,
}

impl Conn {
    fn new() -> Arc<Conn> {
        Arc::new(Conn {
            owner: ReadOwner::new(),
            kernel: AtomicUsize::new(0),
            edges: AtomicUsize::new(0),
            edged: AtomicBool::new(false),
            io: SpinLock(AtomicBool::new(false)),
            decoding: AtomicBool::new(false),
            consumed: AtomicUsize::new(0),
        })
    }

    /// The peer sends a chunk; epoll raises an edge if READABLE is
    /// registered (IoThread).
    fn arrive(&self) {
        self.kernel.fetch_add(1, Ordering::SeqCst);
        if !self.owner.is_handed_off() {
            self.edged.store(true, Ordering::SeqCst);
            self.edges.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Reads and decodes everything in the kernel, holding `io`.
    fn read(&self) {
        assert!(
            !self.decoding.swap(true, Ordering::SeqCst),
            "two readers decoding one connection"
        );
        let chunks = self.kernel.swap(0, Ordering::SeqCst);
        self.consumed.fetch_add(chunks, Ordering::SeqCst);
        self.decoding.store(false, Ordering::SeqCst);
    }

    /// The I/O thread handles the edges posted so far
    /// (`IoThread::engine_read_ready`).
    fn io_thread_turn(&self) {
        while self.edges.load(Ordering::SeqCst) > 0 {
            self.edges.fetch_sub(1, Ordering::SeqCst);
            match self.owner.edge() {
                Edge::Read => {
                    self.io.lock();
                    self.read();
                    self.io.unlock();
                }
                // Re-registered without READABLE, then marked.
                Edge::LeaveToReaders => self.owner.set_handed_off(),
            }
        }
    }

    /// The I/O thread on a timer (a PING, a re-arm): it holds the engine
    /// across some work of its own and reads nothing.
    fn io_thread_timer(&self) {
        self.io.lock();
        self.edges.load(Ordering::SeqCst);
        self.io.unlock();
    }

    /// A reader's wait (`ParkSet::arm`, `wait`, `disarm`): `poll` is
    /// level-triggered, so it reports the chunks present while it looks.
    fn reader_wait(&self) {
        self.owner.arm();
        let polled = self.kernel.load(Ordering::SeqCst) > 0;
        let must_read = self.owner.disarm();
        if polled || must_read {
            if self.io.try_lock() {
                self.read();
                self.io.unlock();
            } else if must_read {
                // Someone else is in it: a duty goes back to the I/O
                // thread (`EngineCheck`); polled bytes stay where the
                // table says someone notices them.
                self.edges.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// The review takes back a handed-off connection nobody is armed on;
    /// re-registering READABLE reports the chunks already waiting.
    fn review(&self) {
        if self.owner.is_handed_off() && self.owner.readers() == 0 {
            self.owner.set_io_thread();
            if self.kernel.load(Ordering::SeqCst) > 0 {
                self.edges.fetch_add(1, Ordering::SeqCst);
            }
            self.io_thread_turn();
        }
    }

    /// What must hold once every thread is done and the I/O thread has
    /// handled what was posted: a chunk that raised an edge was read (by
    /// the I/O thread, or by the reader it was left to); one left unread
    /// arrived with no edge, on a handed-off connection with no reader
    /// armed, and waits for the review, which reads it.
    fn check_quiescent(&self) {
        self.io_thread_turn();
        if self.kernel.load(Ordering::SeqCst) > 0 {
            assert!(
                !self.edged.load(Ordering::SeqCst),
                "a chunk the I/O thread was told of was left unread"
            );
            assert!(
                self.owner.is_handed_off(),
                "chunks stranded on a connection the I/O thread watches"
            );
        }
        self.review();
        assert_eq!(self.kernel.load(Ordering::SeqCst), 0, "chunks stranded");
    }
}

/// Never two readers decoding one connection, and nothing stranded, with
/// two readers racing the I/O thread over one edge.
#[test]
fn never_two_readers_decoding_one_connection() {
    loom::model(|| {
        let c = Conn::new();
        c.arrive();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let c = c.clone();
                thread::spawn(move || c.reader_wait())
            })
            .collect();
        c.io_thread_turn();
        for r in readers {
            r.join().expect("reader");
        }
        c.check_quiescent();
    });
}

/// No bytes stranded after a hand-back: chunks arriving while a reader
/// arms, polls and disarms, with the I/O thread handling edges and
/// hand-backs and then holding the engine for a timer concurrently, are
/// always read (by the reader, by the I/O thread, or at the latest by the
/// review of a handed-off connection).
#[test]
fn no_bytes_stranded_after_a_hand_back() {
    loom::model(|| {
        let c = Conn::new();
        let peer = {
            let c = c.clone();
            thread::spawn(move || c.arrive())
        };
        let reader = {
            let c = c.clone();
            thread::spawn(move || c.reader_wait())
        };
        c.io_thread_turn();
        c.io_thread_timer();
        peer.join().expect("peer");
        reader.join().expect("reader");
        c.check_quiescent();
    });
}

/// The runtime's reactor as a task sees one connection it registered
/// (tokio's `AsyncFd`): the registration is edge-triggered and its own,
/// so every arrival sets `ready` whatever the I/O thread watches, and
/// wakes the task; `tick` counts arrivals, so that clearing `ready` under
/// a guard taken before a read keeps an arrival that came after it (as
/// `AsyncFdReadyGuard::clear_ready` does).
struct Reactor {
    /// (ready, tick)
    state: loom::sync::Mutex<(bool, usize)>,
    woken: loom::sync::Condvar,
}

impl Reactor {
    fn new() -> Arc<Reactor> {
        Arc::new(Reactor {
            state: loom::sync::Mutex::new((false, 0)),
            woken: loom::sync::Condvar::new(),
        })
    }

    /// The peer sends a chunk: the kernel has it, epoll tells the I/O
    /// thread if it watches (`Conn::arrive`) and the reactor in any case.
    fn arrive(&self, c: &Conn) {
        c.arrive();
        let mut s = self.state.lock().expect("reactor");
        s.0 = true;
        s.1 += 1;
        drop(s);
        self.woken.notify_all();
    }

    /// `poll_read_ready` until ready: the guard is the tick it saw.
    fn wait_ready(&self) -> usize {
        let mut s = self.state.lock().expect("reactor");
        while !s.0 {
            s = self.woken.wait(s).expect("reactor");
        }
        s.1
    }

    /// `clear_ready` under the guard from `wait_ready`.
    fn clear(&self, guard: usize) {
        let mut s = self.state.lock().expect("reactor");
        if s.1 == guard {
            s.0 = false;
        }
    }
}

/// The tokio adapter's `recv` (`tokio::TaskReader`): arm, wait for the
/// reactor, disarm, read what it reported or what the I/O thread left,
/// and clear the readiness only after a read that got everything; until
/// `want` chunks have been decoded by anyone.
fn task_recv(c: &Conn, reactor: &Reactor, want: usize) {
    while c.consumed.load(Ordering::SeqCst) < want {
        c.owner.arm();
        let guard = reactor.wait_ready();
        let must_read = c.owner.disarm();
        if c.io.try_lock() {
            c.read();
            c.io.unlock();
            reactor.clear(guard);
        } else {
            if must_read {
                c.edges.fetch_add(1, Ordering::SeqCst);
            }
            // Busy: the readiness is kept, and the task comes back after
            // the runtime's other tasks.
            thread::yield_now();
        }
    }
}

/// A task reading its connections through the reactor is never left
/// waiting over bytes nobody reads, whether the I/O thread watches the
/// connection or has handed it off, with the I/O thread handling edges
/// and holding the engine for a timer meanwhile: two chunks arrive and the
/// task's `recv` loop ends (a stranded chunk would park it forever, which
/// loom reports as a deadlock; seen with `clear` made unconditional).
#[test]
fn a_task_reader_never_waits_over_unread_bytes() {
    for handed_off in [false, true] {
        loom::model(move || {
            let c = Conn::new();
            if handed_off {
                c.owner.set_handed_off();
            }
            let reactor = Reactor::new();
            let peer = {
                let (c, reactor) = (c.clone(), reactor.clone());
                thread::spawn(move || {
                    reactor.arrive(&c);
                    reactor.arrive(&c);
                })
            };
            let task = {
                let (c, reactor) = (c.clone(), reactor.clone());
                thread::spawn(move || task_recv(&c, &reactor, 2))
            };
            c.io_thread_turn();
            c.io_thread_timer();
            peer.join().expect("peer");
            task.join().expect("task");
            c.check_quiescent();
        });
    }
}

/// An engine's `io` lock in the connection models, built on a
/// compare-and-swap: loom explores a `Mutex::try_lock` only partly (it
/// never made one fail in these models), a CAS in every order.
struct SpinLock(AtomicBool);

impl SpinLock {
    fn try_lock(&self) -> bool {
        self.0
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
    fn lock(&self) {
        while !self.try_lock() {
            thread::yield_now();
        }
    }
    fn unlock(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Bug 2 of issue 10: a thread waiting for input on a socket whose
/// connection is handed off must watch that connection even when someone
/// else holds it at that moment (here the I/O thread, on a timer), or
/// bytes that arrive wait for the review. The receiver runs the real arm
/// rule ([`should_arm`]); `poll(2)` is its waiter registered in the
/// connection's wait queue (`pollers`, which an arrival notifies under the
/// queue's lock), checked after registering, as the kernel does. A
/// receiver that left the connection out would sleep forever: loom
/// reports the deadlock (seen with the rule's busy case made `false`).
#[test]
fn a_waiting_reader_always_watches_a_handed_off_connection() {
    loom::model(|| {
        let owner = Arc::new(ReadOwner::new());
        owner.set_handed_off();
        let io = Arc::new(SpinLock(AtomicBool::new(false)));
        let kernel = Arc::new(AtomicUsize::new(0));
        // The fd's wait queue: its lock orders an arrival against a
        // poller's register-then-check, as the kernel's does.
        let pollers = Arc::new((Mutex::new(()), WaiterList::new()));
        let holder = {
            let io = io.clone();
            // The I/O thread on a heartbeat timer.
            thread::spawn(move || {
                io.lock();
                io.unlock();
            })
        };
        let peer = {
            let (kernel, pollers) = (kernel.clone(), pollers.clone());
            thread::spawn(move || {
                let queue = pollers.0.lock();
                kernel.fetch_add(1, Ordering::SeqCst);
                drop(queue);
                pollers.1.notify_all();
            })
        };
        // The receiver: `Socket::recv_wait` over `wait::park`.
        let delivered = Mutex::new(0usize);
        let w = Arc::new(Waiter::new());
        loop {
            w.reset();
            let core = delivered.lock();
            if *core > 0 {
                break;
            }
            let seen = io.try_lock().then(|| {
                io.unlock();
                Seen {
                    needs_no_reader: false,
                    streaming: false,
                }
            });
            let armed = should_arm(owner.is_handed_off(), seen);
            if armed {
                owner.arm();
            }
            drop(core);
            // `poll(2)`: on the armed connection, register, then check.
            let ready = armed && {
                let _queue = pollers.0.lock();
                pollers.1.register(&w);
                kernel.load(Ordering::SeqCst) > 0
            };
            if !ready {
                w.park(None);
            }
            let mut core = delivered.lock();
            if !armed {
                continue;
            }
            pollers.1.unregister(&w);
            let duty = owner.disarm();
            if kernel.load(Ordering::SeqCst) > 0 || duty {
                if io.try_lock() {
                    *core += kernel.swap(0, Ordering::SeqCst);
                    io.unlock();
                } else {
                    // `ParkSet::wait_for_busy`: wait for the holder with
                    // no other lock held, then look again.
                    drop(core);
                    io.lock();
                    io.unlock();
                }
            }
        }
        holder.join().expect("holder");
        peer.join().expect("peer");
    });
}

/// A close report, published by the I/O thread once, reaches every thread
/// waiting for it, whether it waits before or after the publication, and
/// a second publication changes nothing.
#[test]
fn a_close_report_reaches_every_thread_waiting_for_it() {
    loom::model(|| {
        let slot = Arc::new(ReportSlot::new());
        let report = |n| CloseReport {
            dropped_linger: n,
            ..CloseReport::default()
        };
        let waiter = {
            let slot = slot.clone();
            thread::spawn(move || slot.wait(None).map(|r| r.dropped_linger))
        };
        let io = {
            let slot = slot.clone();
            thread::spawn(move || {
                assert!(slot.publish(report(1)));
                assert!(!slot.publish(report(2)));
            })
        };
        assert_eq!(slot.wait(None).map(|r| r.dropped_linger), Some(1));
        assert_eq!(waiter.join().ok().flatten(), Some(1));
        let _ = io.join();
    });
}

/// The proxy's wake-up (`Wake`): a poller that registered once, and on
/// each pass resets, reads the generation and sleeps only if it is the one
/// it saw, always ends its wait when the control is used, whenever that
/// happens (as `Poller::poll` does with `set_wake`).
#[test]
fn a_proxy_wake_always_ends_the_poll() {
    loom::model(|| {
        let wake = Arc::new(Wake::default());
        let waiter = Arc::new(Waiter::new());
        wake.register(&waiter);
        let mut seen = wake.seq();
        let control = {
            let wake = wake.clone();
            thread::spawn(move || wake.wake())
        };
        loop {
            waiter.reset();
            let now = wake.seq();
            if std::mem::replace(&mut seen, now) != now {
                break;
            }
            waiter.park(None);
        }
        wake.unregister(&waiter);
        let _ = control.join();
    });
}

/// An inproc link's direction as `shared::inproc::transfer` sees it: the
/// sender's queue with its flush flag (`Pipes::write`'s
/// `output_signalled`) and the receiver's queue with its pause flag
/// (`read_paused`), each behind its own lock as the two socket cores
/// are, and the direction's own mutex.
struct InprocPipe {
    /// Queued to send; the flush notice is raised.
    src: Mutex<(std::collections::VecDeque<u32>, bool)>,
    /// Delivered; reading is paused at the HWM.
    dst: Mutex<(std::collections::VecDeque<u32>, bool)>,
    dir: Mutex<Dir<u32>>,
}

const INPROC_SNDHWM: usize = 1;
const INPROC_RCVHWM: usize = 1;

impl Ends for &InprocPipe {
    type Msg = u32;

    fn room(&mut self) -> Option<usize> {
        Some(INPROC_RCVHWM.saturating_sub(self.dst.lock().0.len()))
    }

    fn take(&mut self, max: usize, batch: &mut Vec<u32>) {
        let mut src = self.src.lock();
        while batch.len() < max {
            match src.0.pop_front() {
                Some(m) => batch.push(m),
                None => break,
            }
        }
        if src.0.is_empty() {
            // `pop_outbound` finding it empty clears the flag.
            src.1 = false;
        }
    }

    fn give(&mut self, batch: &mut Vec<u32>) -> Option<usize> {
        let mut dst = self.dst.lock();
        for m in batch.drain(..) {
            dst.0.push_back(m);
            assert!(dst.0.len() <= INPROC_RCVHWM, "past the receiver's HWM");
            if dst.0.len() >= INPROC_RCVHWM {
                dst.1 = true;
            }
        }
        Some(if dst.1 {
            0
        } else {
            INPROC_RCVHWM - dst.0.len()
        })
    }
}

impl InprocPipe {
    /// `send`: queue within the sender's HWM; the send that raises the
    /// flush notice transfers (`Socket::notify_io`).
    fn send(&self, m: u32) -> bool {
        let notify = {
            let mut src = self.src.lock();
            if src.0.len() >= INPROC_SNDHWM {
                return false;
            }
            src.0.push_back(m);
            !std::mem::replace(&mut src.1, true)
        };
        if notify {
            transfer(&self.dir, &mut &*self);
        }
        true
    }

    /// `recv`: take one; the read that drains a paused queue to half its
    /// HWM resumes, pulling from the sender (`Pipes::read_from`).
    fn recv(&self) -> Option<u32> {
        let (m, resume) = {
            let mut dst = self.dst.lock();
            let m = dst.0.pop_front();
            let resume = dst.1 && dst.0.len() <= INPROC_RCVHWM / 2;
            if resume {
                dst.1 = false;
            }
            (m, resume)
        };
        if resume {
            transfer(&self.dir, &mut &*self);
        }
        m
    }
}

/// The inproc hand-off: a sender and a receiver on two threads, each
/// moving messages across as `shared::inproc` does (the receiver also
/// pulls before it would sleep), never strand a message (every message sent is received, in order, once both sides
/// are done, by a reader that only reads) and never fill the receiver
/// past its HWM.
#[test]
fn inproc_transfers_strand_nothing() {
    loom::model(|| {
        let pipe = Arc::new(InprocPipe {
            src: Mutex::new((std::collections::VecDeque::new(), false)),
            dst: Mutex::new((std::collections::VecDeque::new(), false)),
            dir: Mutex::new(Dir::new()),
        });
        let sender = {
            let pipe = pipe.clone();
            thread::spawn(move || (1..=3).filter(|m| pipe.send(*m)).collect::<Vec<u32>>())
        };
        let receiver = {
            let pipe = pipe.clone();
            thread::spawn(move || {
                (0..2)
                    .filter_map(|_| {
                        // `recv_wait`: finding nothing, pull from the
                        // sender (`pull_inproc`), then look again.
                        pipe.recv().or_else(|| {
                            transfer(&pipe.dir, &mut &*pipe);
                            pipe.recv()
                        })
                    })
                    .collect::<Vec<u32>>()
            })
        };
        let sent = sender.join().unwrap_or_default();
        let mut got = receiver.join().unwrap_or_default();
        while let Some(m) = pipe.recv() {
            got.push(m);
        }
        assert_eq!(got, sent, "stranded or reordered");
    });
}

/// A Unix stream's writability watch (`conn::WriteWatch`): a writer that
/// finds the buffer full while the I/O thread, on a writable edge nobody
/// waited for, stops watching. Whatever the interleaving, a blocked
/// writer ends up watched, served by that edge, or asking the I/O thread.
/// Seen to fail when `stop_watching` does not look at `write_blocked`
/// again after clearing the watch.
#[test]
fn a_blocked_writer_is_always_watched() {
    loom::model(|| {
        let blocked = Arc::new(AtomicBool::new(false));
        let watched = Arc::new(AtomicBool::new(true));
        let writer = {
            let (blocked, watched) = (blocked.clone(), watched.clone());
            thread::spawn(move || {
                // `EngineIo::flush` on `WouldBlock`, then the borrower.
                blocked.store(true, Ordering::SeqCst);
                WriteWatch::must_ask(&watched)
            })
        };
        // `IoThread::engine_writable`.
        let served = blocked.swap(false, Ordering::SeqCst);
        if !served {
            let _ = WriteWatch::stop_watching(&watched, &blocked);
        }
        let asked = writer.join().unwrap_or(false);
        let still_blocked = blocked.load(Ordering::SeqCst);
        assert!(
            !still_blocked || served || asked || watched.load(Ordering::SeqCst),
            "a blocked writer nobody watches"
        );
    });
}
