//! Random seeds without a dependency, for the patterns' and connecters'
//! jitter and id choices (the sans-IO modules take a seed, never read a
//! clock or an entropy source themselves).

use std::hash::{BuildHasher, Hasher};

/// A random 64-bit seed without a dependency: std's hasher keys are
/// randomly seeded per process and per `RandomState`.
pub(crate) fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}
