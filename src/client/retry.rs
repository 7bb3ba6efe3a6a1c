//! How transient answers are retried: the policy a user sets, and the retry
//! budget that keeps an outage from becoming a retry storm.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How transient rejections are retried and unprocessed requests resent.
///
/// - **Retried** (each retry counts against `max_retries`): answers Apple
///   documents as transient: `500 InternalServerError`, `503
///   ServiceUnavailable` and `Shutdown` (on a new connection),
///   `429 TooManyProviderTokenUpdates` (same token, new connection) and
///   `400 IdleTimeout` (new connection).
/// - **Probing.** After such an answer the client sends one request at a
///   time across its pool, spaced by a jittered backoff from `backoff_min`
///   doubling to `backoff_max`, until one gets a real answer; everything else
///   waits (until its own deadline) and then resumes at full speed.
/// - **Budget.** A retry sent while probing spends a token of a budget that
///   is earned at `budget_ratio` per notification and at least
///   `budget_per_second` per second, up to `budget_reserve`; with none left
///   the last answer is returned. Retries that waited out the outage and go
///   out after APNs recovered are the original load, not amplification, and
///   spend nothing.
/// - **Resent** until the deadline, never counted as retries: requests the
///   server provably never processed (`REFUSED_STREAM`, streams above a
///   GOAWAY's last-stream-id, requests whose connection closed before they
///   were sent). They cannot duplicate a notification.
/// - With [`resend_unknown`](RetryPolicy::resend_unknown), also requests
///   that *may* have been delivered.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries of transient rejections per notification (default 10).
    pub max_retries: u32,
    /// First spacing between probes while APNs answers with transient
    /// errors (default 100 ms), doubled per failed probe.
    pub backoff_min: Duration,
    /// Longest spacing between probes (default 250 ms: at most about four
    /// requests per second reach a failing APNs from one client).
    pub backoff_max: Duration,
    /// Retry tokens earned per notification sent (default 0.1).
    pub budget_ratio: f64,
    /// Retry tokens earned per second whatever the traffic (default 10, the
    /// floor Finagle's retry budget uses): a bulk send rides out hundreds of
    /// transient errors.
    pub budget_per_second: f64,
    /// Retry tokens available at start, and the most that can accumulate
    /// (default 10): at most this many retries in a burst.
    pub budget_reserve: f64,
    /// At-least-once delivery (default `false`): also resend, with the same
    /// `apns-id`, a notification that *may* have been delivered (its
    /// connection died while it was on the wire). The device may then show
    /// it twice; give such notifications an `apns-collapse-id` so a
    /// duplicate replaces the first instead of adding to it.
    pub resend_unknown: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 10,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(250),
            budget_ratio: 0.1,
            budget_per_second: 10.0,
            budget_reserve: 10.0,
            resend_unknown: false,
        }
    }
}

impl RetryPolicy {
    /// No retries of transient rejections (resends of unprocessed streams
    /// still happen: they cannot duplicate a notification).
    ///
    /// ```
    /// # use apns_provider::RetryPolicy;
    /// assert_eq!(RetryPolicy::never().max_retries, 0);
    /// ```
    pub fn never() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Sets [`max_retries`](RetryPolicy::max_retries).
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the spacing of probes during an outage.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Sets [`resend_unknown`](RetryPolicy::resend_unknown): at-least-once
    /// delivery, at the cost of possible duplicates.
    ///
    /// ```
    /// # use apns_provider::RetryPolicy;
    /// let policy = RetryPolicy::default().with_resend_unknown(true);
    /// assert!(policy.resend_unknown);
    /// ```
    pub fn with_resend_unknown(mut self, resend: bool) -> Self {
        self.resend_unknown = resend;
        self
    }

    /// Sets the budget: tokens earned per notification, per second, and the
    /// most that can accumulate (negative values count as 0).
    ///
    /// ```
    /// # use apns_provider::RetryPolicy;
    /// let policy = RetryPolicy::default().with_budget(0.2, 20.0, 50.0);
    /// assert_eq!(policy.budget_per_second, 20.0);
    /// ```
    pub fn with_budget(mut self, per_notification: f64, per_second: f64, reserve: f64) -> Self {
        self.budget_ratio = per_notification.max(0.0);
        self.budget_per_second = per_second.max(0.0);
        self.budget_reserve = reserve.max(0.0);
        self
    }
}

/// A token bucket of retries: full at start, earning `ratio` per
/// notification and `per_second` per second, capped at `reserve`.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    ratio: f64,
    per_second: f64,
    cap: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl RetryBudget {
    pub(crate) fn new(policy: &RetryPolicy) -> Self {
        RetryBudget {
            ratio: policy.budget_ratio,
            per_second: policy.budget_per_second,
            cap: policy.budget_reserve,
            state: Mutex::new(Bucket {
                tokens: policy.budget_reserve,
                refilled_at: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One notification was sent.
    pub(crate) fn deposit(&self) {
        let mut b = self.lock();
        b.tokens = (b.tokens + self.ratio).min(self.cap);
    }

    /// Takes a token for a retry, if there is one.
    pub(crate) fn withdraw(&self) -> bool {
        self.withdraw_at(Instant::now())
    }

    fn withdraw_at(&self, now: Instant) -> bool {
        let mut b = self.lock();
        let elapsed = now.saturating_duration_since(b.refilled_at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.cap);
        b.refilled_at = now;
        // Tenths add up to 0.999...: a hair of tolerance keeps ten
        // notifications at one retry.
        if b.tokens >= 1.0 - 1e-9 {
            b.tokens = (b.tokens - 1.0).max(0.0);
            true
        } else {
            false
        }
    }

    #[cfg(test)]
    fn tokens(&self) -> f64 {
        self.lock().tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, per_second: f64, reserve: f64) -> RetryBudget {
        RetryBudget::new(&RetryPolicy::default().with_budget(ratio, per_second, reserve))
    }

    #[test]
    fn starts_full_and_spends_one_per_retry() {
        let b = budget(0.0, 0.0, 3.0);
        let now = Instant::now();
        assert!(b.withdraw_at(now) && b.withdraw_at(now) && b.withdraw_at(now));
        assert!(!b.withdraw_at(now), "the reserve is spent");
    }

    #[test]
    fn earns_per_notification_up_to_the_cap() {
        let b = budget(0.1, 0.0, 2.0);
        let now = Instant::now();
        assert!(b.withdraw_at(now) && b.withdraw_at(now));
        for _ in 0..9 {
            b.deposit();
        }
        assert!(!b.withdraw_at(now), "0.9 tokens is not a retry");
        b.deposit();
        assert!(b.withdraw_at(now), "ten notifications earn one retry");
        for _ in 0..1000 {
            b.deposit();
        }
        assert!((b.tokens() - 2.0).abs() < 1e-9, "capped at the reserve");
    }

    #[test]
    fn the_time_floor_refills_whatever_the_traffic() {
        let b = budget(0.0, 10.0, 10.0);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(b.withdraw_at(start));
        }
        assert!(!b.withdraw_at(start));
        // A tenth of a second earns one retry at 10 per second.
        assert!(b.withdraw_at(start + Duration::from_millis(100)));
        assert!(!b.withdraw_at(start + Duration::from_millis(100)));
        // A minute of quiet refills to the cap, not beyond.
        assert!(b.withdraw_at(start + Duration::from_secs(60)));
        assert!((b.tokens() - 9.0).abs() < 1e-9, "{}", b.tokens());
        // Over 10 seconds of constant demand, about 10 per second get through.
        let mut granted = 0;
        for ms in (0..10_000).step_by(10) {
            if b.withdraw_at(start + Duration::from_secs(60) + Duration::from_millis(ms)) {
                granted += 1;
            }
        }
        assert!((100..=110).contains(&granted), "{granted}");
    }
}
