//! The one jittered exponential backoff of the crate: reconnect delays in
//! the pool, and the spacing of probes while APNs answers with transient
//! errors.

use std::time::Duration;

/// `min * 2^(attempt-1)`, capped at `max`, then scaled by a random factor
/// in `[0.5, 1]` so that many clients (or many connections) do not retry in
/// step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
        }
    }

    /// The delay before attempt number `attempt` (1 for the first retry).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(0.5 + 0.5 * random_fraction())
    }

    /// The un-jittered delay: the most [`delay`](Backoff::delay) returns.
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(16);
        self.min.saturating_mul(1u32 << exp).min(self.max)
    }
}

/// A random number in `[0, 1)`, for jitter (from the OS random source that
/// `uuid` already uses; no other RNG is needed). The low 53 bits of a v4
/// UUID are random; its top bits of that half are the fixed variant (`10`),
/// which once kept every fraction in `[0.5, 0.75)`.
pub(crate) fn random_fraction() -> f64 {
    const BITS: u32 = 53;
    let random = uuid::Uuid::new_v4().as_u128() as u64 & ((1u64 << BITS) - 1);
    random as f64 / (1u64 << BITS) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_fractions_cover_the_whole_unit_interval() {
        let draws: Vec<f64> = (0..2000).map(|_| random_fraction()).collect();
        assert!(draws.iter().all(|f| (0.0..1.0).contains(f)));
        // Each quarter gets some of 2000 draws (a miss has odds of 0.75^2000).
        for quarter in 0..4 {
            let lo = quarter as f64 / 4.0;
            assert!(
                draws.iter().any(|f| (lo..lo + 0.25).contains(f)),
                "no draw in [{lo}, {})",
                lo + 0.25
            );
        }
    }

    #[test]
    fn doubles_to_the_cap_and_jitters_within_half_to_full() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ceilings: Vec<u128> = (1..=6).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
        for attempt in 1..=8 {
            for _ in 0..50 {
                let d = b.delay(attempt);
                let c = b.ceiling(attempt);
                assert!(d <= c && d >= c / 2, "{d:?} outside [{:?}, {c:?}]", c / 2);
            }
        }
        // max below min is lifted to min.
        assert_eq!(
            Backoff::new(Duration::from_secs(2), Duration::ZERO).ceiling(5),
            Duration::from_secs(2)
        );
    }
}
