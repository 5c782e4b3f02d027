//! The inbound memory budget of one socket, for messages still arriving.
//!
//! `maxmsgsize` bounds one message; nothing bounded what a peer that
//! announces a huge body and streams it can make us hold, or what many
//! such peers can make us hold together. The budget does, per socket:
//! - each connection reports the bytes it holds for its current message
//!   (its unparsed input plus the frames of the message so far) as they
//!   change by [`REPORT_STEP`]; the sum is `partial`;
//! - when `partial` exceeds the limit, the connection that holds the most
//!   is dropped (`io::budget`), and the others read on.
//!
//! Complete messages waiting to be read are bounded by the same figure,
//! but by back-pressure, not by dropping anyone: `Pipes` stops reading at
//! it, as at the receive HWM (`pattern::pipe`). A slow application thus
//! never costs a peer its connection.
//!
//! The counters are atomics because connections are read both by the I/O
//! thread and by application threads; they are an accounting, not a
//! protocol: nothing waits on them.

use std::sync::atomic::{AtomicU64, Ordering};

/// A connection reports what it holds when that changed by this much
/// since its last report, so that small messages cost no atomic
/// operation at all. Each connection may thus hold up to this much more
/// than the sum says.
pub(crate) const REPORT_STEP: u64 = 4 * 1024;
/// No limit.
const UNLIMITED: u64 = u64::MAX;

/// One socket's inbound budget, shared by its connections and its core.
#[derive(Debug)]
pub(crate) struct InboundBudget {
    limit: AtomicU64,
    /// Bytes held by connections for messages still arriving.
    partial: AtomicU64,
}

impl InboundBudget {
    pub(crate) fn new(limit: Option<u64>) -> InboundBudget {
        InboundBudget {
            limit: AtomicU64::new(limit.unwrap_or(UNLIMITED)),
            partial: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_limit(&self, limit: Option<u64>) {
        self.limit
            .store(limit.unwrap_or(UNLIMITED), Ordering::Relaxed);
    }

    /// The limit, `None` when there is none.
    pub(crate) fn limit(&self) -> Option<u64> {
        let l = self.limit.load(Ordering::Relaxed);
        (l != UNLIMITED).then_some(l)
    }

    /// Whether what is held exceeds the limit.
    pub(crate) fn overdrawn(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        limit != UNLIMITED && self.partial.load(Ordering::Relaxed) > limit
    }

    /// Held bytes for messages still arriving, summed.
    #[cfg(test)]
    pub(crate) fn partial(&self) -> u64 {
        self.partial.load(Ordering::Relaxed)
    }
}

/// One connection's share of its socket's budget.
#[derive(Debug, Default)]
pub(crate) struct Share {
    /// What this connection last reported.
    reported: u64,
}

impl Share {
    /// Records that the connection now holds `held` bytes. Returns whether
    /// the budget is overdrawn after a report that grew it.
    pub(crate) fn update(&mut self, budget: &InboundBudget, held: u64) -> bool {
        if held.abs_diff(self.reported) < REPORT_STEP && !(held == 0 && self.reported != 0) {
            return false;
        }
        let grew = held > self.reported;
        if grew {
            budget
                .partial
                .fetch_add(held - self.reported, Ordering::Relaxed);
        } else {
            budget
                .partial
                .fetch_sub(self.reported - held, Ordering::Relaxed);
        }
        self.reported = held;
        grew && budget.overdrawn()
    }

    /// What this connection holds, as far as the budget knows.
    pub(crate) fn reported(&self) -> u64 {
        self.reported
    }

    /// The connection is gone: its share goes back.
    pub(crate) fn release(&mut self, budget: &InboundBudget) {
        self.update(budget, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny xorshift, so that the property test needs no dependency.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Over any order of connections growing, shrinking, finishing and
    /// going (disconnects and reconnects), the sum stays within
    /// `REPORT_STEP` per connection of the truth, and is zero once every
    /// connection is gone.
    #[test]
    fn the_sum_follows_connections_in_any_order() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200 {
            let budget = InboundBudget::new(Some(1 << 20));
            let mut conns: Vec<(Share, u64)> = Vec::new();
            for _ in 0..300 {
                match rng(&mut seed) % 5 {
                    0 => conns.push((Share::default(), 0)),
                    1 if !conns.is_empty() => {
                        let i = (rng(&mut seed) as usize) % conns.len();
                        let (mut share, _) = conns.swap_remove(i);
                        share.release(&budget);
                    }
                    _ if !conns.is_empty() => {
                        let i = (rng(&mut seed) as usize) % conns.len();
                        let held = rng(&mut seed) % (64 * 1024);
                        let (share, truth) = &mut conns[i];
                        let over = share.update(&budget, held);
                        *truth = held;
                        if over {
                            assert!(budget.overdrawn());
                        }
                    }
                    _ => {}
                }
                let truth: u64 = conns.iter().map(|(_, t)| t).sum();
                let slack = REPORT_STEP * conns.len() as u64;
                assert!(budget.partial().abs_diff(truth) <= slack);
                let reported: u64 = conns.iter().map(|(s, _)| s.reported()).sum();
                assert_eq!(budget.partial(), reported);
            }
            for (mut share, _) in conns {
                share.release(&budget);
            }
            assert_eq!(budget.partial(), 0);
        }
    }

    #[test]
    fn overdrawn_above_the_limit_only() {
        let budget = InboundBudget::new(Some(100 * 1024));
        let (mut a, mut b) = (Share::default(), Share::default());
        assert!(!a.update(&budget, 60 * 1024));
        assert!(b.update(&budget, 50 * 1024), "110 KiB held");
        assert!(
            !b.update(&budget, 30 * 1024),
            "shrinking is never a new overdraft"
        );
        assert!(!budget.overdrawn());
        a.release(&budget);
        b.release(&budget);
        assert_eq!(budget.partial(), 0);
        budget.set_limit(None);
        assert!(!a.update(&budget, 1 << 40));
        assert_eq!(budget.limit(), None);
    }
}
