//! Failures the mock injects, to prove a client survives what APNs and
//! networks do: the public [`Fault`] list, what is armed, and what a fault
//! decides for one request. A leaf: the shared state holds the armed
//! faults; the serve loop asks them and acts.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::StatusCode;

use super::rejection::{reject, Rejection};
use super::shim::PingFault;
use crate::response::Reason;

/// A failure the mock can inject, to prove a client survives what APNs and
/// networks do. Arm with [`MockServerBuilder::fault`](super::MockServerBuilder::fault) or
/// [`MockServer::inject`](super::MockServer::inject); [`MockServer::clear_faults`](super::MockServer::clear_faults) disarms all.
///
/// ```
/// use apns_provider::mock::{Fault, MockServer};
/// use apns_provider::Reason;
/// use std::time::Duration;
///
/// let builder = MockServer::builder()
///     .fault(Fault::ErrorStorm { reason: Reason::ServiceUnavailable, count: 50 })
///     .fault(Fault::Outage { duration: Duration::from_secs(20) });
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Once: the first connection to answer `requests` requests then sends
    /// GOAWAY (NO_ERROR) naming that stream as the last processed one, with
    /// debug data `{"reason": reason}`; streams above it are not processed,
    /// and the connection closes when the rest are answered.
    GoAwayAfter {
        /// Requests a connection answers before the GOAWAY.
        requests: u64,
        /// The APNs reason in the debug data, e.g. `Shutdown`.
        reason: String,
    },
    /// The next `count` streams are reset with `REFUSED_STREAM`.
    RefuseStreams {
        /// How many.
        count: u64,
    },
    /// Once: after `requests` more requests, the next one is read and its
    /// connection's TCP socket closed, failing everything in flight on it.
    DropConnectionAfter {
        /// Requests let through first.
        requests: u64,
    },
    /// Requests are read and never answered, and PINGs are dropped: the
    /// client sees silence, as with a dead network path.
    BlackHole,
    /// PING frames from clients are dropped unanswered.
    IgnorePings,
    /// New TCP connections are accepted and never get a TLS answer.
    StallTlsHandshake,
    /// The next `count` requests are answered with `reason` (and its status:
    /// 500, 503 or 429).
    ErrorStorm {
        /// The reason, e.g. `Reason::ServiceUnavailable`.
        reason: Reason,
        /// How many requests.
        count: u64,
    },
    /// A timed outage: every request is answered `503 ServiceUnavailable`
    /// for `duration` from the moment the fault is armed.
    Outage {
        /// How long the outage lasts.
        duration: Duration,
    },
    /// Every answer is delayed by `delay` (a slow APNs, or a long path).
    Latency {
        /// The delay before each answer.
        delay: Duration,
    },
    /// Every answer is delayed by a time drawn evenly from `min` to `max`
    /// (the distance to Apple, with its jitter). A waiting answer is a
    /// timer, not a busy task: thousands wait at no CPU cost.
    LatencyBetween {
        /// The shortest delay.
        min: Duration,
        /// The longest delay (`min` if below it).
        max: Duration,
    },
    /// After any rejection a connection's stream limit drops to 1, and rises
    /// again after the next accepted request.
    LimitDropsAfterRejection,
    /// Every request is answered `403 ExpiredProviderToken`.
    ExpireAllTokens,
}

/// Armed faults. Counted faults disarm themselves when used up.
#[derive(Default)]
pub(crate) struct Faults {
    goaway_after: Option<(u64, String)>,
    refuse: u64,
    drop_after: Option<u64>,
    black_hole: bool,
    pub stall_tls: bool,
    storm: Option<(StatusCode, Reason, u64)>,
    outage_until: Option<Instant>,
    latency: Option<(Duration, Duration)>,
    pub limit_drop: bool,
    expire_all: bool,
}

impl Faults {
    /// How long this answer waits, if a latency is armed.
    pub(crate) fn delay(&self) -> Option<Duration> {
        let (min, max) = self.latency?;
        Some(min + (max - min).mul_f64(crate::backoff::random_fraction()))
    }

    pub(crate) fn arm(&mut self, fault: Fault, pings: &PingFault) {
        match fault {
            Fault::GoAwayAfter { requests, reason } => {
                self.goaway_after = Some((requests.max(1), reason))
            }
            Fault::RefuseStreams { count } => self.refuse += count,
            Fault::DropConnectionAfter { requests } => self.drop_after = Some(requests),
            // A black hole swallows everything, PINGs included: the client
            // sees silence, as with a dead path.
            Fault::BlackHole => {
                self.black_hole = true;
                pings.ignore.store(true, Ordering::Release);
            }
            Fault::IgnorePings => pings.ignore.store(true, Ordering::Release),
            Fault::StallTlsHandshake => self.stall_tls = true,
            Fault::ErrorStorm { reason, count } => {
                let status = StatusCode::from_u16(reason.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                // A storm of zero requests is no storm.
                self.storm = (count > 0).then_some((status, reason, count));
            }
            Fault::Outage { duration } => {
                self.outage_until = Instant::now().checked_add(duration);
            }
            Fault::Latency { delay } => self.latency = Some((delay, delay)),
            Fault::LatencyBetween { min, max } => self.latency = Some((min, max.max(min))),
            Fault::LimitDropsAfterRejection => self.limit_drop = true,
            Fault::ExpireAllTokens => self.expire_all = true,
        }
    }
}

/// What a fault decides for one request, before validation.
pub(crate) enum FaultAction {
    None,
    Refuse,
    BlackHole,
    Drop,
    Answer(Rejection),
}

impl Faults {
    /// What the armed faults decide for the next request (one already
    /// admitted on its connection), using up counted faults.
    pub(crate) fn decide(&mut self) -> FaultAction {
        if self.refuse > 0 {
            self.refuse -= 1;
            return FaultAction::Refuse;
        }
        if let Some(n) = self.drop_after {
            if n == 0 {
                self.drop_after = None;
                return FaultAction::Drop;
            }
            self.drop_after = Some(n - 1);
        }
        if self.black_hole {
            return FaultAction::BlackHole;
        }
        if let Some(until) = self.outage_until {
            if Instant::now() < until {
                return FaultAction::Answer(reject(Reason::ServiceUnavailable));
            }
            self.outage_until = None;
        }
        if let Some((status, reason, count)) = &mut self.storm {
            let rejection = Rejection {
                status: *status,
                reason: reason.clone(),
                timestamp_ms: None,
            };
            *count -= 1;
            if *count == 0 {
                self.storm = None;
            }
            return FaultAction::Answer(rejection);
        }
        if self.expire_all {
            return FaultAction::Answer(reject(Reason::ExpiredProviderToken));
        }
        FaultAction::None
    }

    /// Fault `GoAwayAfter`: once a connection has answered `answered`
    /// requests, the reason of the GOAWAY due now (disarming the fault).
    pub(crate) fn goaway_due(&mut self, answered: u64) -> Option<String> {
        let (after, _) = self.goaway_after.as_ref()?;
        if answered < *after {
            return None;
        }
        self.goaway_after.take().map(|(_, reason)| reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_draws_each_delay_within_its_range() {
        let pings = PingFault::default();
        let mut faults = Faults::default();
        assert_eq!(faults.delay(), None, "no latency armed");
        let ms = Duration::from_millis;
        faults.arm(Fault::Latency { delay: ms(50) }, &pings);
        assert_eq!(faults.delay(), Some(ms(50)));
        faults.arm(
            Fault::LatencyBetween {
                min: ms(40),
                max: ms(60),
            },
            &pings,
        );
        let delays: Vec<Duration> = (0..200).map(|_| faults.delay().unwrap()).collect();
        assert!(delays.iter().all(|d| (ms(40)..=ms(60)).contains(d)));
        assert!(delays.iter().any(|d| *d < ms(50)) && delays.iter().any(|d| *d > ms(50)));
        // A max below the min is the min.
        faults.arm(
            Fault::LatencyBetween {
                min: ms(40),
                max: ms(10),
            },
            &pings,
        );
        assert_eq!(faults.delay(), Some(ms(40)));
    }
}
