//! Reconnect backoff, sans-IO: the delays between connection attempts.
//!
//! Starts at `reconnect_ivl`, doubles after each failed attempt up to
//! `reconnect_ivl_max` (0 keeps it constant, as in libzmq), and adds up to
//! 25% random jitter so that many clients of a restarted server do not
//! reconnect in lockstep. It resets only after a successful ZMTP handshake,
//! not on TCP connect (as nng's dialer does): a server that accepts and then
//! drops us must not be hammered at the base interval.

use std::time::Duration;

/// Backoff state for one connecter.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    current: Duration,
    rng: u64,
}

impl Backoff {
    /// A backoff starting at `base`, growing to `max` (zero: no growth).
    /// `seed` drives the jitter.
    pub fn new(base: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            max,
            current: base,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt; grows the interval for the one
    /// after.
    pub fn next_delay(&mut self) -> Duration {
        let ivl = self.current;
        let quarter = (ivl.as_micros() / 4) as u64;
        let jitter = if quarter == 0 {
            0
        } else {
            self.next_random() % quarter
        };
        if self.max > self.base {
            self.current = (self.current * 2).min(self.max);
        }
        ivl + Duration::from_micros(jitter)
    }

    /// The interval (without jitter) that the next delay will use.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn current(&self) -> Duration {
        self.current
    }

    /// Back to the base interval, after a successful handshake.
    pub fn reset(&mut self) {
        self.current = self.base;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for jitter, and no dependency.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_to_the_cap_with_bounded_jitter_and_resets() {
        let mut b = Backoff::new(ms(50), ms(400), 42);
        let expected = [50, 100, 200, 400, 400, 400];
        for want in expected {
            let d = b.next_delay();
            assert!(
                d >= ms(want) && d < ms(want) + ms(want) / 4,
                "{d:?} vs {want}"
            );
        }
        b.reset();
        assert!(b.next_delay() < ms(63));
    }

    #[test]
    fn zero_max_means_constant() {
        let mut b = Backoff::new(ms(100), Duration::ZERO, 7);
        for _ in 0..5 {
            assert!(b.next_delay() < ms(125));
        }
        assert_eq!(b.current(), ms(100));
    }
}
