//! The I/O thread's timer queue: deadlines ordered in a `BTreeMap`, so that
//! the next one is the first key and cancelling is a removal.

use std::collections::BTreeMap;
use std::time::Instant;

/// A handle to cancel a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey(Instant, u64);

impl TimerKey {
    /// When the timer fires.
    pub(crate) fn deadline(&self) -> Instant {
        self.0
    }
}

#[derive(Debug)]
pub(crate) struct Timers<T> {
    map: BTreeMap<TimerKey, T>,
    seq: u64,
}

impl<T> Timers<T> {
    pub(crate) fn new() -> Self {
        Timers {
            map: BTreeMap::new(),
            seq: 0,
        }
    }

    pub(crate) fn insert(&mut self, at: Instant, what: T) -> TimerKey {
        self.seq += 1;
        let key = TimerKey(at, self.seq);
        self.map.insert(key, what);
        key
    }

    pub(crate) fn cancel(&mut self, key: TimerKey) {
        self.map.remove(&key);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.map.keys().next().map(|k| k.0)
    }

    /// Removes and returns one timer that is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        let first = *self.map.keys().next()?;
        if first.0 <= now {
            self.map.remove(&first)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_in_deadline_order_and_cancellable() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.insert(t0 + Duration::from_millis(30), "c");
        let b = t.insert(t0 + Duration::from_millis(20), "b");
        t.insert(t0 + Duration::from_millis(10), "a");
        t.cancel(b);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(t.pop_due(t0), None);
        let now = t0 + Duration::from_millis(40);
        assert_eq!(t.pop_due(now), Some("a"));
        assert_eq!(t.pop_due(now), Some("c"));
        assert_eq!(t.pop_due(now), None);
    }
}
