//! What `/readyz` learns from recent sends: an app whose sends all fail
//! is not ready, even when its connection to APNs is open.
//!
//! The rule, per app, over the sends that finished in the last
//! [`WINDOW`] (one minute):
//! - **No answer.** The last [`UNANSWERED`] (3) or more sends in a row
//!   ended without an answer from APNs (timeout, connection lost, TLS,
//!   proxy, unavailable): not ready.
//! - **Credentials refused.** APNs answered the last [`REFUSED`] (2) or
//!   more sends in a row with a credential error (`InvalidProviderToken`,
//!   `ExpiredProviderToken`, `MissingProviderToken`, `BadCertificate`,
//!   `BadCertificateEnvironment`, `Forbidden`, a key for another team or
//!   environment), or the provider token expired again right after a new
//!   one: not ready.
//!
//! Any other answer (accepted, or a rejection of one notification such as
//! `BadDeviceToken` or `Unregistered`) ends both streaks. Errors of the
//! request itself (an invalid field, a full local queue, a shutdown) count
//! for neither. A streak whose last send is older than the window is
//! forgotten, so an instance taken out of rotation (and so sending
//! nothing) becomes ready again after a minute and can try again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::response::{ReasonClass, Response};

/// How long a streak of failures counts after its last send.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Sends in a row without an answer that make an app not ready.
pub(crate) const UNANSWERED: u32 = 3;
/// Credential refusals in a row that make an app not ready.
pub(crate) const REFUSED: u32 = 2;

/// The recent outcomes of one app's sends (see the module's rule).
#[derive(Debug, Default)]
pub(crate) struct RecentOutcomes {
    state: Mutex<Streaks>,
}

#[derive(Debug, Default, Clone)]
struct Streaks {
    unanswered: u32,
    refused: u32,
    last: Option<Instant>,
    /// What the last failure was, for the operator.
    why: String,
}

/// What one outcome says about the app's health.
enum Class {
    Healthy,
    Unanswered,
    Refused,
    Neutral,
}

fn classify(result: &crate::Result<Response>) -> Class {
    match result {
        Ok(r) => match r.reason().map(|reason| reason.class()) {
            Some(ReasonClass::Configuration)
            | Some(ReasonClass::WrongKey)
            | Some(ReasonClass::RefreshProviderToken) => Class::Refused,
            _ => Class::Healthy,
        },
        Err(Error::TokenExpiredAgain(_)) | Err(Error::Credentials { .. }) => Class::Refused,
        Err(
            Error::Timeout { .. }
            | Error::Connection { .. }
            | Error::Unavailable { .. }
            | Error::Connect { .. }
            | Error::Tls { .. }
            | Error::Proxy { .. }
            | Error::Protocol(_),
        ) => Class::Unanswered,
        Err(_) => Class::Neutral,
    }
}

impl RecentOutcomes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Streaks> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one finished send into account.
    pub(crate) fn record(&self, result: &crate::Result<Response>) {
        self.record_at(result, Instant::now());
    }

    fn record_at(&self, result: &crate::Result<Response>, now: Instant) {
        let class = classify(result);
        let mut s = self.lock();
        match class {
            Class::Neutral => return,
            Class::Healthy => {
                *s = Streaks::default();
                return;
            }
            Class::Unanswered => {
                s.unanswered += 1;
                s.refused = 0;
            }
            Class::Refused => {
                s.refused += 1;
                s.unanswered = 0;
            }
        }
        s.last = Some(now);
        s.why = match result {
            Ok(r) => format!(
                "APNs answered {} {}",
                r.status(),
                r.reason().map(|r| r.as_str()).unwrap_or("")
            ),
            Err(e) => e.to_string(),
        };
    }

    /// `Err(why)` when the recent sends say the app cannot send.
    pub(crate) fn verdict(&self) -> Result<(), String> {
        self.verdict_at(Instant::now())
    }

    fn verdict_at(&self, now: Instant) -> Result<(), String> {
        let s = self.lock().clone();
        let Some(last) = s.last else { return Ok(()) };
        if now.saturating_duration_since(last) > WINDOW {
            return Ok(());
        }
        if s.refused >= REFUSED {
            return Err(format!(
                "the last {} sends were refused for their credentials (last: {})",
                s.refused, s.why
            ));
        }
        if s.unanswered >= UNANSWERED {
            return Err(format!(
                "the last {} sends got no answer from APNs (last: {})",
                s.unanswered, s.why
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, reason: Option<&str>) -> crate::Result<Response> {
        let body = reason
            .map(|r| format!("{{\"reason\":\"{r}\"}}"))
            .unwrap_or_default();
        Ok(Response::from_parts(status, None, None, body.as_bytes()))
    }

    fn unanswered() -> crate::Result<Response> {
        Err(Error::Protocol("the connection went silent".into()))
    }

    #[test]
    fn refusals_and_silences_in_a_row_make_an_app_unready_for_a_minute() {
        let r = RecentOutcomes::default();
        let t0 = Instant::now();
        assert!(r.verdict_at(t0).is_ok(), "no send yet");
        r.record_at(&answer(403, Some("InvalidProviderToken")), t0);
        assert!(r.verdict_at(t0).is_ok(), "one refusal is not enough");
        r.record_at(&answer(403, Some("InvalidProviderToken")), t0);
        let why = r.verdict_at(t0).unwrap_err();
        assert!(why.contains("InvalidProviderToken"), "{why}");
        // Forgotten after the window.
        assert!(r.verdict_at(t0 + WINDOW + Duration::from_secs(1)).is_ok());
        // A device's rejection is an answer: the streak ends.
        r.record_at(&answer(400, Some("BadDeviceToken")), t0);
        assert!(r.verdict_at(t0).is_ok());
        for _ in 0..UNANSWERED - 1 {
            r.record_at(&unanswered(), t0);
        }
        assert!(r.verdict_at(t0).is_ok());
        r.record_at(&unanswered(), t0);
        assert!(r.verdict_at(t0).unwrap_err().contains("no answer"));
        r.record_at(&answer(200, None), t0);
        assert!(r.verdict_at(t0).is_ok());
    }
}
