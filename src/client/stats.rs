//! What a client reports: its counters, the outcome of one notification of
//! a bulk send, and what a shutdown did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::Result;
use crate::notification::Notification;
use crate::response::Response;

/// Counters of everything a client did. `sent == accepted + rejected +
/// failed + in_flight` at every moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Notifications passed to `send` (each counted once, however retried).
    pub sent: u64,
    /// Accepted by APNs.
    pub accepted: u64,
    /// Rejected by APNs (final answer).
    pub rejected: u64,
    /// Ended with an error (no final answer).
    pub failed: u64,
    /// Still in progress.
    pub in_flight: u64,
    /// Retries of transient rejections.
    pub retries: u64,
    /// Resends of requests the server never processed (and, with
    /// [`RetryPolicy::resend_unknown`](crate::RetryPolicy::resend_unknown),
    /// of requests that may have been delivered).
    pub resends: u64,
    /// Requests sent as the one probe allowed while APNs answered with
    /// transient errors.
    pub probes: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Provider tokens minted.
    pub tokens_minted: u64,
}

/// The result of one notification from [`Client::send_many`](crate::Client::send_many).
#[derive(Debug)]
#[non_exhaustive]
pub struct SendOutcome {
    /// The notification, handed back.
    pub notification: Notification,
    /// Its answer or error.
    pub result: Result<Response>,
    /// How long `send` took, waits and retries included.
    pub elapsed: Duration,
}

/// What [`Client::shutdown`](crate::Client::shutdown) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Requests in flight when shutdown started.
    pub in_flight_at_start: u64,
    /// Of those, how many finished (answered or failed) before the deadline.
    pub completed: u64,
    /// Of those, how many were abandoned at the deadline with
    /// [`Error::Shutdown`](crate::Error::Shutdown).
    pub abandoned: u64,
    /// The client's counters after shutdown: every notification is accepted,
    /// rejected or failed.
    pub stats: ClientStats,
}

/// The answers retried, by reason: what
/// [`Client::retries_by_reason`](crate::Client::retries_by_reason) counts.
/// An answer without a reason counts under its status's usual reason.
pub const RETRY_REASONS: [&str; 6] = [
    "InternalServerError",
    "ServiceUnavailable",
    "Shutdown",
    "TooManyProviderTokenUpdates",
    "IdleTimeout",
    "other",
];

/// The client's own counters (the pool and the token cache keep theirs).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sent: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    pub resends: AtomicU64,
    /// Retries by the reason of the answer retried, indexed as
    /// [`RETRY_REASONS`]; bumped with `retries` (off the fast path).
    pub retry_reasons: [AtomicU64; RETRY_REASONS.len()],
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts one retry of an answer with `reason` (or `status`).
    pub(crate) fn retried(&self, reason: Option<&str>, status: u16) {
        Self::bump(&self.retries);
        let name = reason.unwrap_or(match status {
            500 => "InternalServerError",
            503 => "ServiceUnavailable",
            _ => "other",
        });
        let i = RETRY_REASONS
            .iter()
            .position(|r| *r == name)
            .unwrap_or(RETRY_REASONS.len() - 1);
        self.retry_reasons[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Retries by reason, in [`RETRY_REASONS`] order.
    pub(crate) fn retries_by_reason(&self) -> Vec<(&'static str, u64)> {
        RETRY_REASONS
            .iter()
            .zip(&self.retry_reasons)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// A snapshot; `in_flight` is derived so the sum always holds.
    pub(crate) fn snapshot(
        &self,
        probes: u64,
        connections_opened: u64,
        tokens_minted: u64,
    ) -> ClientStats {
        let sent = self.sent.load(Ordering::Acquire);
        let accepted = self.accepted.load(Ordering::Acquire);
        let rejected = self.rejected.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        ClientStats {
            sent,
            accepted,
            rejected,
            failed,
            in_flight: sent.saturating_sub(accepted + rejected + failed),
            retries: self.retries.load(Ordering::Relaxed),
            resends: self.resends.load(Ordering::Relaxed),
            probes,
            connections_opened,
            tokens_minted,
        }
    }
}
