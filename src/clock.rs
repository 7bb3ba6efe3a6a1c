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
        unix_seconds(self.system_time())
    }
}

/// Whole seconds since the UNIX epoch at `time` (0 before 1970).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(apns_provider::clock::unix_seconds(UNIX_EPOCH + Duration::from_millis(2500)), 2);
/// ```
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whole seconds since the UNIX epoch now, by the system clock.
pub fn now_unix_seconds() -> u64 {
    unix_seconds(SystemTime::now())
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
///
/// ```
/// assert_eq!(apns_provider::clock::format_utc_millis(1_700_000_000_000), "2023-11-14T22:13:20Z");
/// ```
pub fn format_utc_millis(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC); a date
/// before 1970 prints as 1970-01-01.
pub fn format_utc_seconds(secs: i64) -> String {
    format_utc_millis((secs.max(0) as u64).saturating_mul(1000))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_utc_millis(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc_millis(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_utc_millis(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc_seconds(-5), "1970-01-01T00:00:00Z");
        let _ = format_utc_millis(u64::MAX); // far future: no overflow
    }
}
