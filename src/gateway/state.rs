//! What the gateway's handlers share (`Shared`) and the [`Limits`] they
//! enforce. A leaf: it imports none of the route files.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::api_tokens::ApiTokens;
use super::apps::Apps;
use super::dispatch::Dispatch;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// What every handler shares.
pub(crate) struct Shared {
    pub apps: Apps,
    pub tokens: ApiTokens,
    pub limits: Limits,
    pub dispatch: Arc<dyn Dispatch>,
    pub metrics: Metrics,
    pub slots: Arc<Semaphore>,
}

/// The most notifications one request may carry by default.
pub const DEFAULT_MAX_ITEMS: usize = 10_000;

/// What a gateway accepts, at most.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Request body size in bytes (default 1 MiB); larger: 413.
    pub max_body_bytes: usize,
    /// Notifications per request (default 10,000); more: 413.
    pub max_items: usize,
    /// Time to read a request and dispatch it (default 60 s); longer: 504.
    /// Keep it above the clients' request timeout (30 s by default), so
    /// that every send resolves within it.
    pub request_timeout: Duration,
    /// `/v1/` requests in progress at once (default 32); more: 503 with
    /// `Retry-After`.
    pub max_concurrent_requests: usize,
    /// The `Retry-After` of a 503 (default 1 s).
    pub retry_after: Duration,
    /// Open connections (default 1024). When all are taken, a new
    /// connection evicts the one idle longest (no request in progress;
    /// one that never sent a request first); only when every connection
    /// has a request in progress do new ones wait to be accepted. Keep it
    /// under the process's file descriptor limit.
    pub max_connections: usize,
    /// Time from accepting a connection to its first complete request head
    /// (TLS handshake and protocol detection included; default 10 s);
    /// longer: the connection is closed. Silent sockets, TLS clients that
    /// send nothing and HTTP/2 clients that send only their preface hold a
    /// slot at most this long. At most a day.
    pub first_request_timeout: Duration,
    /// Time a connection (HTTP/2, or HTTP/1.1 keep-alive) may stay with no
    /// request in progress (default 60 s); longer: it is closed gracefully
    /// (HTTP/2 GOAWAY). Clients reconnect. At most a day.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_items: DEFAULT_MAX_ITEMS,
            request_timeout: Duration::from_secs(60),
            max_concurrent_requests: 32,
            retry_after: Duration::from_secs(1),
            max_connections: 1024,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The longest [`Limits::first_request_timeout`] and
/// [`Limits::idle_timeout`] a gateway takes (a day).
const MAX_CONNECTION_DEADLINE: Duration = Duration::from_secs(86_400);

/// Refuses limits the gateway cannot run with (instead of a panic once
/// serving): zeros, counts over what a semaphore holds, zero deadlines,
/// connection deadlines over a day.
pub(crate) fn check_limits(l: &Limits) -> Result<()> {
    if l.max_body_bytes == 0
        || l.max_items == 0
        || l.max_concurrent_requests == 0
        || l.max_connections == 0
    {
        return Err(Error::Config(
            "the gateway's limits (body size, items, concurrent requests, connections) must be above 0"
                .into(),
        ));
    }
    for (name, n) in [
        ("max_concurrent_requests", l.max_concurrent_requests),
        ("max_connections", l.max_connections),
    ] {
        if n > Semaphore::MAX_PERMITS {
            return Err(Error::Config(format!(
                "the gateway's {name} ({n}) is over {}, the most it can count",
                Semaphore::MAX_PERMITS
            )));
        }
    }
    for (name, d) in [
        ("request_timeout", l.request_timeout),
        ("first_request_timeout", l.first_request_timeout),
        ("idle_timeout", l.idle_timeout),
    ] {
        if d.is_zero() {
            return Err(Error::Config(format!(
                "the gateway's {name} must be above 0"
            )));
        }
    }
    // hyper adds the connection deadlines to `Instant::now()`, which
    // panics past what an `Instant` holds.
    for (name, d) in [
        ("first_request_timeout", l.first_request_timeout),
        ("idle_timeout", l.idle_timeout),
    ] {
        if d > MAX_CONNECTION_DEADLINE {
            return Err(Error::Config(format!(
                "the gateway's {name} ({d:?}) is over {MAX_CONNECTION_DEADLINE:?}, the longest it takes"
            )));
        }
    }
    Ok(())
}
