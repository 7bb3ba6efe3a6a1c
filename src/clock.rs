//! Injectable time, so that tests can drive hours of clock without waiting.
//!
//! Two readings are needed: a *monotonic* one to measure a token's age (wall
//! clocks jump; Apple counts the age from the real mint) and a *wall* one for
//! the `iat` claim and for expirations.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time. [`SystemClock`] is the real one; [`ManualClock`] is
/// moved by hand in tests.
pub trait Clock: Send + Sync + fmt::Debug {
    /// A monotonic reading, used to measure ages and intervals.
    fn now(&self) -> Instant;
    /// Wall-clock time, used for `iat` claims and expirations.
    fn system_time(&self) -> SystemTime;

    /// Wall-clock time as whole seconds since the UNIX epoch.
    fn unix_seconds(&self) -> u64 {
        self.system_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn system_time(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when [`advance`](ManualClock::advance) is called.
///
/// Clones share the same time, so one clock can drive a client and a mock
/// server together.
///
/// ```
/// use apns_provider::clock::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(3 * 3600));
/// assert_eq!(clock.now() - start, Duration::from_secs(3 * 3600));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    base_instant: Instant,
    base_system: SystemTime,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock starting at the current real time.
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// A clock whose wall time starts at `start`.
    pub fn starting_at(start: SystemTime) -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                base_instant: Instant::now(),
                base_system: start,
                offset: Mutex::new(Duration::ZERO),
            }),
        }
    }

    /// Moves time forward by `by`, for every clone of this clock.
    pub fn advance(&self, by: Duration) {
        *self.inner.offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    fn offset(&self) -> Duration {
        *self.inner.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.base_instant + self.offset()
    }
    fn system_time(&self) -> SystemTime {
        self.inner.base_system + self.offset()
    }
}

/// The clock used when none is given.
pub(crate) fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
