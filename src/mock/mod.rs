//! A validating mock APNs server over real TLS and HTTP/2, for our tests and
//! yours.
//!
//! It checks requests the way APNs does (method, path, device token, every
//! `apns-*` header, payload size per push type) and verifies provider
//! tokens with its own implementation (`ring`), including Apple's rules on
//! token age (`ExpiredProviderToken`), token changes per connection
//! (`TooManyProviderTokenUpdates`) and one team per connection. Like APNs, it
//! allows one concurrent stream on a connection until the first request with
//! a valid token, then raises the limit (1000 by default).
//!
//! It also plays the broadcast hosts (iOS 18 Live Activities) on the same
//! listener, routing by path: broadcasts (`/4/broadcasts/apps/<bundle>`)
//! and channel management (`/1/apps/<bundle>/channels`, `.../all-channels`),
//! with a channel registry per app and environment and Apple's rules (see
//! [`MockServer::broadcasts`] and [`MockServer::channels`]).
//!
//! ```
//! use apns_provider::mock::{MockServer, TrustedKey};
//! use apns_provider::{Client, Notification, Payload, SigningKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> apns_provider::Result<()> {
//! let key = SigningKey::from_pem(apns_provider::auth::generate_p8_pem().as_bytes())?;
//! let mock = MockServer::builder()
//!     .trust_key(TrustedKey::new("ABCDE12345", "TEAM123456", key.public_key())?)
//!     .start()
//!     .await?;
//! let client = Client::builder()
//!     .endpoint(mock.endpoint())
//!     .add_root_certificates_pem(mock.ca_pem().unwrap().as_bytes())
//!     .no_proxy() // the mock is on loopback: never through the caller's HTTPS_PROXY
//!     .token_auth(key, "ABCDE12345", "TEAM123456")
//!     .build()?;
//! let n = Notification::builder("abcdef0123", Payload::alert("hi")).topic("com.example.app").build()?;
//! assert!(client.send(&n).await?.is_accepted());
//! assert_eq!(mock.accepted().len(), 1);
//! # Ok(()) }
//! ```
//!
//! Memory stays bounded however long it runs: counters ([`MockStats`]) count
//! everything, and [`MockServer::accepted`] returns the last
//! [`keep`](MockServerBuilder::keep) records (10,000 by default). Clients
//! that connect and say nothing, half-open streams and idle connections are
//! closed by timeouts, and the accept loop backs off when out of file
//! descriptors.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`MockServer`] (the running server) and [`MockStats`] |
//! | `builder.rs` | [`MockServerBuilder`] |
//! | `server.rs` | accept loop, connections, streams, timeouts |
//! | `validate.rs` | APNs' checks of a push request |
//! | `broadcast.rs` | routes by path; the checks of a broadcast and of an app's credentials |
//! | `channels.rs` | the channel registry and the channel-management answers |
//! | `auth.rs` | [`TrustedKey`] and provider-token rules per connection |
//! | `faults.rs` | [`Fault`] injection |
//! | `records.rs` | [`AcceptedNotification`], [`AcceptedBroadcast`] and the bounded record |
//! | `shim.rs` | the byte-level SETTINGS/GOAWAY/PING control under `h2` |
//! | `ca.rs` | the generated CA and server certificate |

mod auth;
mod broadcast;
mod builder;
mod ca;
mod channels;
mod faults;
mod records;
mod server;
mod shim;
mod validate;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::broadcast::{ChannelId, StoragePolicy};
use crate::error::{Error, Result};
use crate::transport::Endpoint;

pub use auth::TrustedKey;
pub use builder::MockServerBuilder;
pub use channels::RegisteredChannel;
pub use faults::Fault;
pub use records::{AcceptedBroadcast, AcceptedNotification, DEFAULT_KEEP};
pub use server::MAX_HEADER_LIST_SIZE;

use faults::Faults;
use server::State;

/// APNs' default stream limit after the first valid token (observed 500-1500).
pub const DEFAULT_MAX_STREAMS: u32 = 1000;

/// MockCounters describing what the mock saw.
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
    /// Starts configuring a mock server.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
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
    /// [`keep`](MockServerBuilder::keep) of them (10,000 by default);
    /// [`MockStats::accepted`] counts them all.
    pub fn accepted(&self) -> Vec<AcceptedNotification> {
        lock(&self.state.records).to_vec()
    }

    /// The raw HPACK header blocks of the last requests, as (connection,
    /// block) in arrival order, when
    /// [`capture_header_blocks`](MockServerBuilder::capture_header_blocks)
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
    /// [`keep`](MockServerBuilder::keep) of them;
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
    /// Stops at the limit ([`max_channels`](MockServerBuilder::max_channels)).
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
