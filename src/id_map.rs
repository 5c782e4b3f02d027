//! Hash maps keyed by our own counters: pipe ids, tokens, socket and
//! connecter ids.
//!
//! These keys are handed out sequentially by us, never chosen by a peer,
//! so they need no protection against hash flooding, and std's SipHash was
//! a tenth of the per-message profile. A multiply by the golden ratio
//! spreads sequential keys over both the low bits (bucket index) and the
//! high bits (the control byte). Keys that peers choose, such as ROUTER
//! routing ids, keep std's hasher.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` for keys we allocate ourselves.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A `HashSet` for keys we allocate ourselves.
pub(crate) type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_keys_spread_over_buckets() {
        let mut low = HashSet::new();
        for n in 0..1024u64 {
            let mut h = IdHasher::default();
            h.write_u64(n);
            low.insert(h.finish() & 1023);
        }
        assert_eq!(low.len(), 1024, "a bijection on the low bits");
    }
}
