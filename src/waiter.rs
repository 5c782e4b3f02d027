//! One wake-up per blocked thread.
//!
//! A thread about to block (in `recv`, `send`, `Socket::poll` or
//! `Poller::poll`) takes a [`Waiter`] of its own and registers it in the
//! [`WaiterList`] of every socket it waits on, then checks its condition
//! once more, and only then sleeps. Whoever makes progress possible, or
//! ends the wait for everyone (termination, close), notifies the waiters
//! registered at that moment. A notification is a flag in the waiter
//! itself plus its own signal (an `eventfd`, or the thread's park token),
//! so no thread can consume another's wake-up: the flaw of the shared
//! per-socket `eventfd` this replaces, which the first thread to wake
//! drained for everyone.
//!
//! The protocol, and why it loses nothing:
//! 1. `reset`: the waiter's flag is cleared before the conditions are
//!    checked, so a notification it drops is about a change the check
//!    sees, and no stale one cuts the next wait short.
//! 2. `register`, under the socket's core lock, in the same critical
//!    section that found the socket not ready. Whatever makes it ready
//!    later takes that lock first, and the notifier reads the list after
//!    it: it finds the waiter.
//! 3. `wait`: returns at once if notified in between (the flag), else
//!    sleeps on the signal, which a notification raises.
//! 4. `unregister`: after it, no notifier holds the waiter (notifying
//!    happens under the list's mutex), so it can serve another wait.
//!
//! The loom models in `crate::loom_models` check this sequence.

use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};

/// A shared handle to a [`Waiter`] (loom's `Arc` in the model).
pub(crate) type WaiterRef = Arc<Waiter>;

/// One blocked thread's wake-up: a flag nobody but its owner clears, and
/// a signal that a sleeping owner waits on.
#[derive(Debug)]
pub(crate) struct Waiter {
    notified: AtomicBool,
    signal: Signal,
}

impl Waiter {
    /// A waiter for the calling thread.
    pub(crate) fn new() -> Waiter {
        Waiter {
            notified: AtomicBool::new(false),
            signal: Signal::new(),
        }
    }

    /// Prepares for a new wait. Call before re-checking every condition
    /// the wait is for: a notification that came before is then about a
    /// change the re-check sees.
    pub(crate) fn reset(&self) {
        if self.notified.swap(false, Ordering::AcqRel) {
            self.signal.clear();
        }
    }

    /// Wakes the owner. Idempotent until the next `reset`: only the first
    /// notification raises the signal, so it never holds more than one.
    pub(crate) fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.signal.raise();
        }
    }

    /// Lowers the signal after a `poll` reported it, leaving the flag.
    pub(crate) fn clear_signal(&self) {
        self.signal.clear();
    }

    /// Whether a notification came since the last `reset`.
    pub(crate) fn is_notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// The descriptor that becomes readable on notification, for a
    /// `poll(2)` that also waits on connections. `None` when the system
    /// refused an `eventfd` (and always in the loom model): the owner then
    /// waits with [`Waiter::park`] alone.
    pub(crate) fn fd(&self) -> Option<std::os::fd::RawFd> {
        self.signal.fd()
    }

    /// Sleeps until notified or `deadline` (`None`: no limit; the loom
    /// model has no clock and ignores it). Returns whether it was notified.
    pub(crate) fn park(&self, deadline: Option<std::time::Instant>) -> bool {
        loop {
            if self.is_notified() {
                return true;
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return self.is_notified();
                    }
                    Some(left)
                }
            };
            self.signal.sleep(left);
        }
    }
}

impl Default for Waiter {
    fn default() -> Self {
        Waiter::new()
    }
}

/// The waiters blocked on one socket.
#[derive(Debug, Default)]
pub(crate) struct WaiterList {
    list: Mutex<Vec<Arc<Waiter>>>,
    /// `list.len()`, readable without the mutex: notifying an empty list
    /// (every message when nobody is blocked) costs one load.
    len: AtomicUsize,
}

impl WaiterList {
    pub(crate) fn new() -> WaiterList {
        WaiterList {
            list: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
        }
    }

    /// Adds a waiter. Call in the critical section that found the
    /// socket not ready (see the module docs).
    pub(crate) fn register(&self, w: &Arc<Waiter>) {
        let mut list = self.list.lock();
        list.push(w.clone());
        self.len.store(list.len(), Ordering::SeqCst);
    }

    /// Removes a waiter; after this no notifier holds it.
    pub(crate) fn unregister(&self, w: &Arc<Waiter>) {
        let mut list = self.list.lock();
        if let Some(i) = list.iter().position(|x| Arc::ptr_eq(x, w)) {
            list.swap_remove(i);
        }
        self.len.store(list.len(), Ordering::SeqCst);
    }

    /// Wakes every registered waiter. Each keeps its registration until it
    /// removes itself, so a waiter notified twice is woken once.
    pub(crate) fn notify_all(&self) {
        if self.len.load(Ordering::SeqCst) == 0 {
            return;
        }
        for w in self.list.lock().iter() {
            w.notify();
        }
    }

    /// Wakes every registered waiter but `skip`: for a thread that made
    /// the change itself and will look at the socket again before it
    /// sleeps on `skip` (the tokio adapter's task, whose readiness
    /// descriptor it is).
    pub(crate) fn notify_all_except(&self, skip: &Arc<Waiter>) {
        if self.len.load(Ordering::SeqCst) == 0 {
            return;
        }
        for w in self.list.lock().iter() {
            if !Arc::ptr_eq(w, skip) {
                w.notify();
            }
        }
    }

    /// How many threads are registered (tests and diagnostics).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }
}

/// A wake-up for a [`crate::Poller`] that comes from no socket: the
/// proxy's control handle (`crate::proxy::ProxyControl`) uses it to end
/// the proxy's `poll` when it is paused, resumed or terminated.
///
/// It follows the waiter protocol: the poller registers its waiter in
/// `list` for the whole call, then on each pass resets the waiter, reads
/// `seq`, and sleeps only if `seq` is the value it last saw. `wake` bumps
/// `seq` and then notifies the list. Both sides use SeqCst (the list's
/// `len` too), so either the poller's read sees the new `seq`, or the
/// notifier's read of `len` sees the registration and raises the waiter.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    list: WaiterList,
    seq: AtomicU64,
}

impl Wake {
    /// Ends the wait of every poller watching this (now or at its next
    /// pass): each sees a new `seq`.
    pub(crate) fn wake(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        self.list.notify_all();
    }

    /// The current generation; a poller compares it with the one it saw.
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    pub(crate) fn register(&self, w: &Arc<Waiter>) {
        self.list.register(w);
    }

    pub(crate) fn unregister(&self, w: &Arc<Waiter>) {
        self.list.unregister(w);
    }
}

/// `poll(2)`'s timeout for `deadline`, rounded up so that we never wake
/// just before it; `None` once it has passed.
pub(crate) fn poll_timeout(deadline: Option<std::time::Instant>) -> Option<i32> {
    match deadline {
        None => Some(-1),
        Some(d) => {
            let left = d.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            Some(millis_rounded_up(left))
        }
    }
}

/// Whole milliseconds, rounded up, capped at `i32::MAX`.
fn millis_rounded_up(d: std::time::Duration) -> i32 {
    d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
}

/// Idle waiters of one context, so that blocking does not cost an
/// `eventfd` each time. Closed (its descriptors with it) when the context
/// terminates; a waiter given back after that is dropped.
#[derive(Debug)]
pub(crate) struct WaiterPool(parking_lot::Mutex<Option<Vec<Arc<Waiter>>>>);

/// Idle waiters kept per context: as many as threads block at once in
/// most programs.
const POOL_MAX: usize = 16;

impl WaiterPool {
    /// A waiter for the calling thread, reset and held by no list.
    pub(crate) fn take(&self) -> Arc<Waiter> {
        let w = self
            .0
            .lock()
            .as_mut()
            .and_then(Vec::pop)
            .unwrap_or_else(|| Arc::new(Waiter::new()));
        w.reset();
        w
    }

    /// Gives back a waiter that no list holds any more.
    pub(crate) fn give(&self, w: Arc<Waiter>) {
        // A waiter without a descriptor is bound to the thread that made
        // it; it cannot serve another.
        if !w.signal.is_shareable() {
            return;
        }
        if let Some(pool) = self.0.lock().as_mut() {
            if pool.len() < POOL_MAX {
                pool.push(w);
            }
        }
    }

    /// Drops every idle waiter and keeps no more.
    pub(crate) fn close(&self) {
        self.0.lock().take();
    }

    pub(crate) fn new() -> WaiterPool {
        WaiterPool(parking_lot::Mutex::new(Some(Vec::new())))
    }
}

impl Default for WaiterPool {
    fn default() -> Self {
        WaiterPool::new()
    }
}

/// What a sleeping waiter blocks on.
#[cfg(not(loom))]
#[derive(Debug)]
enum Signal {
    /// Readable while raised: lets one `poll(2)` wait for a notification
    /// and for connections at once.
    EventFd(std::os::fd::OwnedFd),
    /// No descriptor could be had: the thread's own park token, with
    /// the flag to tell a real wake-up from a spurious one.
    Thread(std::thread::Thread),
}

#[cfg(not(loom))]
impl Signal {
    fn new() -> Signal {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd takes no pointers; a negative result is an error.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Signal::Thread(std::thread::current());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Signal::EventFd(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    }

    fn is_shareable(&self) -> bool {
        matches!(self, Signal::EventFd(_))
    }

    fn fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match self {
            Signal::EventFd(fd) => Some(fd.as_raw_fd()),
            Signal::Thread(_) => None,
        }
    }

    fn raise(&self) {
        match self {
            Signal::EventFd(fd) => {
                use std::os::fd::AsRawFd;
                let one: u64 = 1;
                // SAFETY: writes 8 bytes from a valid u64 to our own
                // eventfd. It cannot overflow: it is raised at most once
                // per `reset`.
                unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            }
            Signal::Thread(t) => t.unpark(),
        }
    }

    fn clear(&self) {
        if let Signal::EventFd(fd) = self {
            use std::os::fd::AsRawFd;
            let mut buf: u64 = 0;
            // SAFETY: reads at most 8 bytes into a valid u64 from our own
            // non-blocking eventfd.
            unsafe { libc::read(fd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
        }
    }

    fn sleep(&self, timeout: Option<std::time::Duration>) {
        match self {
            Signal::EventFd(fd) => {
                use std::os::fd::AsRawFd;
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = timeout.map_or(-1, millis_rounded_up);
                // SAFETY: one valid pollfd.
                let n = unsafe { libc::poll(&mut pfd, 1, ms) };
                // Raised but not flagged: a notification that raced with
                // `reset`. Clear it, or every later sleep would return at
                // once; the owner re-checks its condition anyway.
                if n > 0 {
                    self.clear();
                }
            }
            Signal::Thread(_) => match timeout {
                None => std::thread::park(),
                Some(t) => std::thread::park_timeout(t),
            },
        }
    }
}

#[cfg(loom)]
#[derive(Debug)]
struct Signal(loom::thread::Thread);

/// The model's signal: the owning thread's park token (no descriptors,
/// no clock).
#[cfg(loom)]
impl Signal {
    fn new() -> Signal {
        Signal(loom::thread::current())
    }
    fn is_shareable(&self) -> bool {
        false
    }
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    fn raise(&self) {
        self.0.unpark();
    }
    fn clear(&self) {}
    fn sleep(&self, _timeout: Option<std::time::Duration>) {
        loom::thread::park();
    }
}
