//! A snapshot of the connection pool's slots, built here where the pool
//! lives; the client re-exports it (`crate::ConnectionInfo`) so nothing in
//! transport points back up at the client.

/// One slot of a client's connection pool, as
/// `Client::connections` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The slot's index in the pool (stable across reconnections).
    pub slot: usize,
    /// What the slot holds.
    pub state: ConnectionState,
    /// The server's current `SETTINGS_MAX_CONCURRENT_STREAMS`, for a live
    /// connection.
    pub stream_limit: Option<usize>,
    /// Requests in flight on it.
    pub in_flight: usize,
}

/// The state of a pool slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// No connection, none needed yet (connections open lazily).
    Idle,
    /// A connection is being established (TCP, proxy, TLS, HTTP/2).
    Connecting,
    /// Open and taking requests.
    Open,
    /// Closing or retired: no new requests; those in flight finish.
    Draining,
    /// Waiting before the next attempt, after a connection failure.
    Backoff,
}

impl ConnectionState {
    /// Every state, in a fixed order (for metrics).
    pub const ALL: [ConnectionState; 5] = [
        ConnectionState::Idle,
        ConnectionState::Connecting,
        ConnectionState::Open,
        ConnectionState::Draining,
        ConnectionState::Backoff,
    ];

    /// `idle`, `connecting`, `open`, `draining` or `backoff`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Idle => "idle",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Open => "open",
            ConnectionState::Draining => "draining",
            ConnectionState::Backoff => "backoff",
        }
    }
}
