//! [`MockServer`], the handle on a running mock (what it saw, what it
//! holds, faults armed at run time), and [`MockStats`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::faults::{Fault, Faults};
use super::records::{AcceptedBroadcast, AcceptedNotification};
use super::registry::RegisteredChannel;
use super::state::{lock, State};
use crate::broadcast::{ChannelId, StoragePolicy};
use crate::error::{Error, Result};
use crate::transport::Endpoint;

/// Counters describing what the mock saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MockStats {
    /// TLS connections accepted.
    pub connections: u64,
    /// Requests answered (accepted or rejected): notifications, broadcasts
    /// and channel-management requests.
    pub requests: u64,
    /// Requests accepted (all of them, however many
    /// [`MockServer::accepted`] and [`MockServer::broadcasts`] keep).
    pub accepted: u64,
    /// Requests rejected.
    pub rejected: u64,
    /// Broadcasts accepted (all of them, however many
    /// [`MockServer::broadcasts`] keeps).
    pub broadcasts_accepted: u64,
    /// Broadcasts rejected.
    pub broadcasts_rejected: u64,
    /// Channel-management requests answered (accepted or rejected).
    pub channel_requests: u64,
    /// Channels created by requests (not by [`MockServer::add_channels`]).
    pub channels_created: u64,
    /// Channels deleted.
    pub channels_deleted: u64,
    /// Distinct tokens whose signature was verified (cached per connection).
    pub tokens_verified: u64,
    /// Streams opened above the advertised limit (refused); a well-behaved
    /// client keeps this at 0.
    pub stream_limit_violations: u64,
    /// The most streams in flight at once on one connection.
    pub max_concurrent_streams_seen: u64,
    /// Times a connection's advertised stream limit dropped back to 1
    /// (the `LimitDropsAfterRejection` fault).
    pub stream_limit_drops: u64,
    /// Connections closed, or streams reset, by the mock's timeouts (no
    /// preface, a half-open stream, an idle connection).
    pub timeouts: u64,
    /// Tokens refused with `TooManyProviderTokenUpdates` by the per-key
    /// rule ([`MockServerBuilder::token_updates_per_key`](super::MockServerBuilder::token_updates_per_key)).
    pub key_token_updates_refused: u64,
    /// GOAWAY frames sent by the `GoAwayAfter` fault.
    pub goaways_sent: u64,
    /// Streams refused by faults (`RefuseStreams`, or above a GOAWAY).
    pub streams_refused: u64,
    /// Connections closed mid-flight by `DropConnectionAfter`.
    pub connections_dropped: u64,
    /// Requests swallowed by `BlackHole`.
    pub black_holed: u64,
    /// PINGs dropped by `IgnorePings`.
    pub pings_ignored: u64,
    /// `:path` fields sent as never-indexed literals, as Apple asks.
    pub paths_never_indexed: u64,
    /// `:path` fields sent any other way.
    pub paths_indexable: u64,
    /// `authorization` fields sent as never-indexed literals.
    pub authorizations_never_indexed: u64,
    /// `authorization` fields sent any other way.
    pub authorizations_indexable: u64,
}

/// A running mock APNs server. Dropping it stops the server.
pub struct MockServer {
    addr: SocketAddr,
    ca_pem: Option<String>,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockServer {
    /// Wraps a mock the builder started.
    pub(crate) fn new(
        addr: SocketAddr,
        ca_pem: Option<String>,
        state: Arc<State>,
        task: JoinHandle<()>,
    ) -> Self {
        MockServer {
            addr,
            ca_pem,
            state,
            task,
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`, ready for [`ClientBuilder::endpoint`](crate::ClientBuilder::endpoint).
    pub fn endpoint(&self) -> Endpoint {
        // An IP address is never an empty host, so `Endpoint::new` cannot
        // fail here; the fallback keeps that invariant panic-free anyway.
        Endpoint::new(self.addr.ip().to_string(), self.addr.port())
            .unwrap_or_else(|_| Endpoint::sandbox().with_port(self.addr.port()))
    }

    /// The generated CA certificate (PEM) that clients must trust; `None`
    /// when the mock serves a given identity.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Writes the generated CA certificate to `path`.
    pub fn write_ca_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let pem = self.ca_pem.as_deref().ok_or_else(|| {
            Error::Config("the mock serves a given certificate; it has no generated CA".into())
        })?;
        std::fs::write(path, pem)
            .map_err(|e| Error::io(format!("cannot write CA file {}", path.display()), e))
    }

    /// The last notifications accepted, oldest first: at most
    /// [`keep`](super::MockServerBuilder::keep) of them (10,000 by default);
    /// [`MockStats::accepted`] counts them all.
    pub fn accepted(&self) -> Vec<AcceptedNotification> {
        lock(&self.state.records).to_vec()
    }

    /// The raw HPACK header blocks of the last requests, as (connection,
    /// block) in arrival order, when
    /// [`capture_header_blocks`](super::MockServerBuilder::capture_header_blocks)
    /// asked for them. Decode a connection's blocks in order (HPACK's
    /// dynamic table carries over from one to the next).
    pub fn header_blocks(&self) -> Vec<(u64, Vec<u8>)> {
        lock(&self.state.hpack.blocks).iter().cloned().collect()
    }

    /// Forgets the accepted notifications (the counters stay).
    pub fn clear_accepted(&self) {
        lock(&self.state.records).clear();
    }

    /// The last broadcasts accepted, oldest first: at most
    /// [`keep`](super::MockServerBuilder::keep) of them;
    /// [`MockStats::broadcasts_accepted`] counts them all.
    pub fn broadcasts(&self) -> Vec<AcceptedBroadcast> {
        lock(&self.state.broadcasts).to_vec()
    }

    /// Forgets the accepted broadcasts (the counters stay).
    pub fn clear_broadcasts(&self) {
        lock(&self.state.broadcasts).clear();
    }

    /// Every channel the mock holds (created and not deleted), in creation
    /// order.
    pub fn channels(&self) -> Vec<RegisteredChannel> {
        lock(&self.state.channels).all()
    }

    /// Registers up to `count` channels for `bundle_id` in the mock's
    /// environment, as if clients had created them, and returns their ids: a
    /// test hook, to reach the per-app limit without thousands of requests.
    /// Stops at the limit ([`max_channels`](super::MockServerBuilder::max_channels)).
    pub fn add_channels(
        &self,
        bundle_id: &str,
        policy: StoragePolicy,
        count: usize,
    ) -> Vec<ChannelId> {
        let mut registry = lock(&self.state.channels);
        (0..count)
            .map_while(|_| {
                registry
                    .create(self.state.environment, bundle_id, policy)
                    .ok()
            })
            .collect()
    }

    /// Marks a device token as unregistered from now on.
    pub fn mark_unregistered(&self, device_token: &str, timestamp_ms: u64) {
        lock(&self.state.unregistered).insert(device_token.to_ascii_lowercase(), timestamp_ms);
    }

    /// What the mock has seen.
    pub fn stats(&self) -> MockStats {
        let c = &self.state.counters;
        MockStats {
            connections: c.connections.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            broadcasts_accepted: c.broadcasts_accepted.load(Ordering::Relaxed),
            broadcasts_rejected: c.broadcasts_rejected.load(Ordering::Relaxed),
            channel_requests: c.channel_requests.load(Ordering::Relaxed),
            channels_created: c.channels_created.load(Ordering::Relaxed),
            channels_deleted: c.channels_deleted.load(Ordering::Relaxed),
            tokens_verified: c.tokens_verified.load(Ordering::Relaxed),
            stream_limit_violations: c.violations.load(Ordering::Relaxed),
            max_concurrent_streams_seen: c.max_concurrent.load(Ordering::Relaxed),
            stream_limit_drops: c.limit_drops.load(Ordering::Relaxed),
            timeouts: c.timed_out.load(Ordering::Relaxed),
            key_token_updates_refused: c.key_token_updates_refused.load(Ordering::Relaxed),
            goaways_sent: c.goaways.load(Ordering::Relaxed),
            streams_refused: c.refused.load(Ordering::Relaxed),
            connections_dropped: c.dropped.load(Ordering::Relaxed),
            black_holed: c.black_holed.load(Ordering::Relaxed),
            pings_ignored: self.state.pings.dropped.load(Ordering::Relaxed),
            paths_never_indexed: self.state.hpack.path_never.load(Ordering::Relaxed),
            paths_indexable: self.state.hpack.path_other.load(Ordering::Relaxed),
            authorizations_never_indexed: self.state.hpack.auth_never.load(Ordering::Relaxed),
            authorizations_indexable: self.state.hpack.auth_other.load(Ordering::Relaxed),
        }
    }

    /// Arms a fault now.
    pub fn inject(&self, fault: Fault) {
        lock(&self.state.faults).arm(fault, &self.state.pings);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        *lock(&self.state.faults) = Faults::default();
        self.state.pings.ignore.store(false, Ordering::Release);
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(self) {
        drop(self)
    }
}
