//! What the connections of one mock share ([`State`]) and what one
//! connection remembers ([`MockConn`]): the context every handler reads.
//! It imports no handler and no dispatcher, only the data files (keys,
//! registry, faults, records, shim), so handlers and the serve loop can
//! all depend on it without a circle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::faults::Faults;
use super::keys::TrustedKey;
use super::records::{AcceptedBroadcast, AcceptedNotification, Records};
use super::registry::Registry;
use super::shim::{ConnControl, HpackCounts, PingFault};
use crate::auth::CertificateInfo;
use crate::clock::Clock;
use crate::transport::Environment;

/// The mock's limits on slow or silent clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerTimeouts {
    /// TLS handshake plus HTTP/2 preface, and then each request's body.
    pub handshake: Duration,
    /// No request for this long closes the connection.
    pub idle: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        ServerTimeouts {
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(5 * 60),
        }
    }
}

/// The tokens one key has shown lately, across every connection: the one
/// in use and the one before it (connections switch one by one), and when
/// the newest appeared.
pub(crate) struct KeyTokens {
    pub current: String,
    pub previous: Option<String>,
    pub since: std::time::Instant,
}

/// Everything the connections of one mock share.
pub(crate) struct State {
    pub keys: HashMap<String, TrustedKey>,
    pub max_streams: u32,
    pub environment: Environment,
    pub clock: Arc<dyn Clock>,
    pub strict_tokens: bool,
    /// `Some`: Apple's 20-minute token rule per key, across connections.
    pub per_key_tokens: Option<Mutex<HashMap<String, KeyTokens>>>,
    pub accept_all: bool,
    pub bad_environment_goaway: bool,
    pub unregistered: Mutex<HashMap<String, u64>>,
    pub records: Mutex<Records<AcceptedNotification>>,
    pub broadcasts: Mutex<Records<AcceptedBroadcast>>,
    pub channels: Mutex<Registry>,
    pub timeouts: ServerTimeouts,
    pub faults: Mutex<Faults>,
    pub pings: Arc<PingFault>,
    pub hpack: Arc<HpackCounts>,
    pub counters: MockCounters,
}

#[derive(Default)]
pub(crate) struct MockCounters {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub tokens_verified: AtomicU64,
    pub violations: AtomicU64,
    pub max_concurrent: AtomicU64,
    pub limit_drops: AtomicU64,
    pub goaways: AtomicU64,
    pub refused: AtomicU64,
    pub dropped: AtomicU64,
    pub black_holed: AtomicU64,
    pub timed_out: AtomicU64,
    pub key_token_updates_refused: AtomicU64,
    pub broadcasts_accepted: AtomicU64,
    pub broadcasts_rejected: AtomicU64,
    pub channel_requests: AtomicU64,
    pub channels_created: AtomicU64,
    pub channels_deleted: AtomicU64,
}

/// What one connection remembers: its team and last verified token, its
/// advertised stream limit, and whether it is going away.
pub(crate) struct MockConn {
    pub id: u64,
    pub control: Arc<ConnControl>,
    pub active: AtomicUsize,
    pub answered: AtomicU64,
    pub auth: Mutex<ConnAuth>,
    // Streams admitted for processing, and the GOAWAY's last stream once
    // one went out: streams above it are not processed. One lock, so no
    // stream slips in above a GOAWAY being sent.
    pub admitted: Mutex<Admitted>,
    // Ends the connection: `kill` at once (TCP closed mid-flight), or
    // `closing` once in-flight streams are done (after a GOAWAY).
    pub kill: Notify,
    pub closing: AtomicBool,
    // Milliseconds since `born` when a stream last started or ended.
    last_active_ms: AtomicU64,
    born: Instant,
    // The client certificate, in certificate mode.
    pub certificate: Option<CertificateInfo>,
}

impl MockConn {
    /// A new connection, born now.
    pub(crate) fn new(
        id: u64,
        control: Arc<ConnControl>,
        certificate: Option<CertificateInfo>,
    ) -> Self {
        MockConn {
            id,
            control,
            active: AtomicUsize::new(0),
            answered: AtomicU64::new(0),
            auth: Mutex::new(ConnAuth::default()),
            admitted: Mutex::new(Admitted::default()),
            kill: Notify::new(),
            closing: AtomicBool::new(false),
            last_active_ms: AtomicU64::new(0),
            born: Instant::now(),
            certificate,
        }
    }

    pub(crate) fn touch(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }

    /// Admits `stream_id` for processing; false when it is above the last
    /// stream of a GOAWAY already sent.
    pub(crate) fn admit(&self, stream_id: u32) -> bool {
        let mut admitted = lock(&self.admitted);
        if admitted.goaway_last.is_some_and(|last| stream_id > last) {
            return false;
        }
        admitted.highest = admitted.highest.max(stream_id);
        true
    }

    /// Sends a GOAWAY with `reason` at once and closes the connection when
    /// the streams already admitted are answered.
    pub(crate) fn go_away_now(&self, state: &State, reason: &str) {
        let debug = serde_json::json!({ "reason": reason }).to_string();
        let mut admitted = lock(&self.admitted);
        if admitted.goaway_last.is_some() {
            return;
        }
        let last = admitted.highest;
        admitted.goaway_last = Some(last);
        self.control.go_away(last, 0, debug.as_bytes());
        drop(admitted);
        self.closing.store(true, Ordering::Release);
        state.counters.goaways.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub(crate) struct Admitted {
    pub highest: u32,
    pub goaway_last: Option<u32>,
}

/// What a connection remembers about token authentication.
#[derive(Default)]
pub(crate) struct ConnAuth {
    pub team: Option<String>,
    pub token: Option<CachedToken>,
}

impl ConnAuth {
    /// Whether a valid token was seen on this connection.
    pub(crate) fn is_valid(&self) -> bool {
        self.token.is_some()
    }
}

/// The last token verified on a connection, so a signature is verified
/// once, not per request.
pub(crate) struct CachedToken {
    pub raw: String,
    pub kid: String,
    pub iss: String,
    pub iat: i64,
    pub since: Instant,
}

/// Locks, riding over poisoning: a panicked handler must not take the mock
/// down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
