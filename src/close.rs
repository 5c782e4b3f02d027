//! What became of a socket's outbound messages when it closed:
//! [`CloseReport`], and [`CloseHandle`] to wait for it.
//!
//! Closing hands whatever is still queued to the I/O thread, which keeps
//! writing it for up to `linger`. Only the I/O thread knows how that ends,
//! so it publishes the report into the socket's [`ReportSlot`] when the
//! socket's last connection has closed; a thread waiting for it waits as
//! every blocked thread does (`crate::waiter`): reset, check under the
//! slot's lock, register in the same critical section, sleep.

use crate::sync::{Arc as SyncArc, Mutex};
use crate::waiter::{Waiter, WaiterList};
use std::time::{Duration, Instant};

/// What became of the messages a socket still had queued when it closed.
///
/// A message counts as delivered once its last byte has been written to
/// the kernel: whether the peer then read it is not known (TCP gives no
/// such receipt). A message only partly written when the connection went
/// counts as dropped, since the peer cannot use half of one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseReport {
    /// Messages written while the socket lingered.
    pub delivered: u64,
    /// Messages still queued (or partly written) when `linger` ran out.
    /// Also counted in `Socket::stats().dropped_linger`.
    pub dropped_linger: u64,
    /// Messages lost while lingering because their peer disconnected.
    /// Also counted in `Socket::stats().dropped_peer_gone`.
    pub dropped_peer_gone: u64,
    /// Messages that had arrived but that the application never read.
    pub unread: u64,
    /// The same, per peer (a connect endpoint, or an accepted peer's
    /// address), for every peer that had anything queued.
    pub peers: Vec<PeerReport>,
}

/// One peer's share of a [`CloseReport`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerReport {
    /// The endpoint given to `connect`, or the accepted peer's address.
    pub endpoint: String,
    /// Messages written to this peer while the socket lingered.
    pub delivered: u64,
    /// Messages for this peer dropped when `linger` ran out.
    pub dropped_linger: u64,
    /// Messages for this peer lost because it disconnected.
    pub dropped_peer_gone: u64,
}

impl CloseReport {
    /// Every message dropped, whatever the cause.
    pub fn dropped(&self) -> u64 {
        self.dropped_linger + self.dropped_peer_gone
    }

    /// Adds another socket's report (for `Context::term`).
    pub(crate) fn absorb(&mut self, other: &CloseReport) {
        self.delivered += other.delivered;
        self.dropped_linger += other.dropped_linger;
        self.dropped_peer_gone += other.dropped_peer_gone;
        self.unread += other.unread;
        self.peers.extend(other.peers.iter().cloned());
    }

    /// Adds a peer's share, keeping the totals in step.
    pub(crate) fn push_peer(&mut self, peer: PeerReport) {
        self.delivered += peer.delivered;
        self.dropped_linger += peer.dropped_linger;
        self.dropped_peer_gone += peer.dropped_peer_gone;
        self.peers.push(peer);
    }
}

impl PeerReport {
    /// A peer with nothing counted yet.
    pub(crate) fn new(endpoint: &str) -> PeerReport {
        PeerReport {
            endpoint: endpoint.to_owned(),
            ..PeerReport::default()
        }
    }
}

/// Where the I/O thread leaves a socket's [`CloseReport`], and the threads
/// waiting for it.
#[derive(Debug)]
pub(crate) struct ReportSlot {
    report: Mutex<Option<CloseReport>>,
    waiters: WaiterList,
}

impl ReportSlot {
    pub(crate) fn new() -> ReportSlot {
        ReportSlot {
            report: Mutex::new(None),
            waiters: WaiterList::new(),
        }
    }

    /// Leaves the report and wakes every waiter; only the first report
    /// counts. Returns whether this one did.
    pub(crate) fn publish(&self, report: CloseReport) -> bool {
        let mut slot = self.report.lock();
        if slot.is_some() {
            return false;
        }
        *slot = Some(report);
        // Under the slot's lock: a waiter that found it empty has
        // registered by now.
        self.waiters.notify_all();
        true
    }

    /// The report, if the I/O thread has left it.
    pub(crate) fn get(&self) -> Option<CloseReport> {
        self.report.lock().clone()
    }

    /// Waits for the report until `deadline` (`None`: no limit).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Option<CloseReport> {
        let w = SyncArc::new(Waiter::new());
        loop {
            w.reset();
            {
                let slot = self.report.lock();
                if let Some(r) = slot.as_ref() {
                    return Some(r.clone());
                }
                self.waiters.register(&w);
            }
            let woken = w.park(deadline);
            let slot = self.report.lock();
            self.waiters.unregister(&w);
            if !woken {
                return slot.clone();
            }
        }
    }
}

/// A closed socket's [`CloseReport`], to come once its linger is over.
/// Returned by `Socket::close`; dropping it waits for nothing.
#[derive(Clone, Debug)]
pub struct CloseHandle {
    slot: std::sync::Arc<ReportSlot>,
}

impl CloseHandle {
    pub(crate) fn new(slot: std::sync::Arc<ReportSlot>) -> CloseHandle {
        CloseHandle { slot }
    }

    /// Waits until every queued message has been written or dropped
    /// (at most the socket's `linger`, or until the context terminates),
    /// then says which. With an infinite linger and a peer that never
    /// reads, this waits for ever: prefer [`CloseHandle::wait_timeout`].
    pub fn wait(&self) -> CloseReport {
        // `wait` only returns empty-handed when its deadline passes.
        self.slot.wait(None).unwrap_or_default()
    }

    /// Like [`CloseHandle::wait`], for at most `timeout`; `None` when the
    /// socket is still lingering then.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<CloseReport> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.slot.wait(Some(deadline)),
            None => Some(self.wait()),
        }
    }

    /// The report if lingering is over, without waiting.
    pub fn try_report(&self) -> Option<CloseReport> {
        self.slot.get()
    }
}
