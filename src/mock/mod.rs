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
//!     .token_auth(key, "ABCDE12345", "TEAM123456")
//!     .build()?;
//! let n = Notification::builder("abcdef0123", Payload::alert("hi")).topic("com.example.app").build()?;
//! assert!(client.send(&n).await?.is_accepted());
//! assert_eq!(mock.accepted().len(), 1);
//! # Ok(()) }
//! ```

mod ca;
mod shim;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::auth::verify as jwt;
use crate::auth::{CertificateInfo, KeyId, PublicKey, TeamId};
use crate::clock::{self, Clock};
use crate::error::{Error, Result};
use crate::notification::{DeviceToken, PushType};
use crate::response::Reason;
use crate::transport::{Endpoint, Environment};
use shim::{ConnControl, HpackCounts, PingFault, SettingsShim};

/// APNs' default stream limit after the first valid token (observed 500-1500).
pub const DEFAULT_MAX_STREAMS: u32 = 1000;

/// A key the mock accepts provider tokens from.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    key_id: KeyId,
    team_id: TeamId,
    public_key: PublicKey,
    sec1: Vec<u8>,
    topics: Vec<String>,
    environment: Option<Environment>,
}

impl TrustedKey {
    /// Trusts tokens with `kid = key_id`, `iss = team_id`, signed by
    /// `public_key`'s private half.
    pub fn new(key_id: &str, team_id: &str, public_key: PublicKey) -> Result<Self> {
        Ok(TrustedKey {
            key_id: KeyId::new(key_id)?,
            team_id: TeamId::new(team_id)?,
            sec1: public_key.to_sec1_bytes(),
            public_key,
            topics: Vec::new(),
            environment: None,
        })
    }

    /// Limits the key to these bundle ids (and their push-type suffixes);
    /// other topics get `TopicDisallowed`. Without this, any topic is allowed.
    pub fn topics<I, S>(mut self, bundle_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics = bundle_ids.into_iter().map(Into::into).collect();
        self
    }

    /// Limits the key to one environment, as Apple allows since 2025; tokens
    /// sent to a mock of the other environment get
    /// `BadEnvironmentKeyIdInToken`.
    pub fn environment(mut self, env: Environment) -> Self {
        self.environment = Some(env);
        self
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn allows_topic(&self, topic: &str) -> bool {
        self.topics.is_empty()
            || self.topics.iter().any(|bundle| {
                topic == bundle
                    || topic.strip_prefix(bundle.as_str()).is_some_and(|suffix| {
                        PushType::ALL
                            .iter()
                            .any(|t| t.topic_suffix() == Some(suffix))
                    })
            })
    }
}

/// A notification the mock accepted, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptedNotification {
    /// The device token from the path.
    pub device_token: String,
    /// `apns-topic`.
    pub topic: String,
    /// `apns-push-type` (`alert` when absent).
    pub push_type: String,
    /// `apns-priority`, if sent.
    pub priority: Option<u8>,
    /// `apns-expiration`, if sent.
    pub expiration: Option<u64>,
    /// `apns-collapse-id`, if sent.
    pub collapse_id: Option<String>,
    /// The `apns-id` returned (echoed or generated).
    pub apns_id: String,
    /// The JSON body.
    pub payload: Bytes,
    /// The key id of the token that authorized it.
    pub key_id: String,
    /// The team id of that token.
    pub team_id: String,
    /// Which connection it came on (1, 2, ... in accept order).
    pub connection: u64,
    /// The client certificate's subject, in certificate mode (then
    /// `key_id` and `team_id` are empty).
    pub certificate_subject: Option<String>,
}

/// A failure the mock can inject, to prove a client survives what APNs and
/// networks do. Arm with [`MockServerBuilder::fault`] or
/// [`MockServer::inject`]; [`MockServer::clear_faults`] disarms all.
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
    /// Requests are read and never answered.
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
    /// After any rejection a connection's stream limit drops to 1, and rises
    /// again after the next accepted request.
    LimitDropsAfterRejection,
    /// Every request is answered `403 ExpiredProviderToken`.
    ExpireAllTokens,
}

/// Counters describing what the mock saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MockStats {
    /// TLS connections accepted.
    pub connections: u64,
    /// Requests answered (accepted or rejected).
    pub requests: u64,
    /// Requests rejected.
    pub rejected: u64,
    /// Distinct tokens whose signature was verified (cached per connection).
    pub tokens_verified: u64,
    /// Streams opened above the advertised limit (refused); a well-behaved
    /// client keeps this at 0.
    pub stream_limit_violations: u64,
    /// The most streams in flight at once on one connection.
    pub max_concurrent_streams_seen: u64,
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

/// Configures a [`MockServer`].
#[must_use]
pub struct MockServerBuilder {
    listen: SocketAddr,
    keys: Vec<TrustedKey>,
    max_streams: u32,
    unregistered: HashMap<String, u64>,
    environment: Environment,
    clock: Arc<dyn Clock>,
    strict_tokens: bool,
    server_names: Vec<String>,
    identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    faults: Vec<Fault>,
    accept_all: bool,
    client_ca: Option<Vec<u8>>,
    bad_environment_goaway: bool,
}

impl std::fmt::Debug for MockServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServerBuilder")
            .field("listen", &self.listen)
            .field("keys", &self.keys)
            .field("max_streams", &self.max_streams)
            .finish_non_exhaustive()
    }
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        MockServerBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            keys: Vec::new(),
            max_streams: DEFAULT_MAX_STREAMS,
            unregistered: HashMap::new(),
            environment: Environment::Sandbox,
            clock: clock::system(),
            strict_tokens: false,
            server_names: Vec::new(),
            identity_pem: None,
            faults: Vec::new(),
            accept_all: false,
            client_ca: None,
            bad_environment_goaway: false,
        }
    }
}

impl MockServerBuilder {
    /// Address to bind (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
    /// Accepts tokens signed by this key.
    pub fn trust_key(mut self, key: TrustedKey) -> Self {
        self.keys.push(key);
        self
    }
    /// Stream limit advertised after the first valid token (default 1000).
    pub fn max_streams(mut self, n: u32) -> Self {
        self.max_streams = n.max(1);
        self
    }
    /// Answers `410 Unregistered` for `device_token`, with `timestamp_ms`.
    pub fn unregistered(mut self, device_token: &str, timestamp_ms: u64) -> Self {
        self.unregistered
            .insert(device_token.to_ascii_lowercase(), timestamp_ms);
        self
    }
    /// Which environment the mock plays (default sandbox, which also sends
    /// `apns-unique-id`).
    pub fn environment(mut self, env: Environment) -> Self {
        self.environment = env;
        self
    }
    /// Uses `clock` for token ages (for tests that skip hours).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Refuses tokens APNs tolerates: padded or standard base64, DER
    /// signatures, extra fields, a capitalized `Bearer`.
    pub fn strict_tokens(mut self, strict: bool) -> Self {
        self.strict_tokens = strict;
        self
    }
    /// Adds a DNS name or IP address to the generated server certificate
    /// (`localhost` and `127.0.0.1` are always there).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_names.push(name.into());
        self
    }
    /// Serves with this certificate chain and key instead of a generated CA.
    pub fn tls_identity_pem(mut self, cert_chain_pem: &[u8], key_pem: &[u8]) -> Self {
        self.identity_pem = Some((cert_chain_pem.to_vec(), key_pem.to_vec()));
        self
    }

    /// Certificate mode: clients may authenticate with a TLS client
    /// certificate signed by this CA (PEM); the topics they may use come
    /// from the certificate (Apple's topics extension, else its UID).
    /// Clients without a certificate still use tokens.
    pub fn client_ca_pem(mut self, pem: &[u8]) -> Self {
        self.client_ca = Some(pem.to_vec());
        self
    }
    /// How a certificate for the other environment is refused: `false`
    /// (default) answers each request `403 BadCertificateEnvironment`;
    /// `true` sends a GOAWAY with that reason and closes the connection, as
    /// APNs sometimes does.
    pub fn bad_environment_as_goaway(mut self, goaway: bool) -> Self {
        self.bad_environment_goaway = goaway;
        self
    }
    /// Arms a fault from the start.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }
    /// Fast mode for benchmarks: every request is answered 200 at once,
    /// without validation, token checks or recording, and connections allow
    /// `max_streams` streams from the start. Not for correctness tests.
    pub fn accept_all(mut self, accept_all: bool) -> Self {
        self.accept_all = accept_all;
        self
    }

    /// Binds, and serves in the background until the [`MockServer`] is
    /// dropped or shut down. Needs a Tokio runtime.
    pub async fn start(self) -> Result<MockServer> {
        let identity = match &self.identity_pem {
            Some((cert, key)) => ca::from_pem(cert, key)?,
            None => ca::generate(&self.server_names)?,
        };
        let tls = ca::server_config(&identity, self.client_ca.as_deref())?;
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|e| Error::io(format!("mock cannot listen on {}", self.listen), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("mock listener address", e))?;
        let mut keys = HashMap::new();
        for k in self.keys {
            keys.insert(k.key_id.as_str().to_string(), k);
        }
        let pings = Arc::new(PingFault::default());
        let mut faults = Faults::default();
        for fault in self.faults {
            faults.arm(fault, &pings);
        }
        let state = Arc::new(State {
            keys,
            max_streams: self.max_streams,
            environment: self.environment,
            clock: self.clock,
            strict_tokens: self.strict_tokens,
            accept_all: self.accept_all,
            bad_environment_goaway: self.bad_environment_goaway,
            unregistered: Mutex::new(self.unregistered),
            accepted: Mutex::new(Vec::new()),
            faults: Mutex::new(faults),
            pings,
            hpack: Arc::new(HpackCounts::default()),
            counters: Counters::default(),
        });
        let accept_state = state.clone();
        let task = tokio::spawn(accept_loop(listener, tls, accept_state));
        tracing::info!(%addr, "mock APNs server listening");
        Ok(MockServer {
            addr,
            ca_pem: identity.ca_pem,
            state,
            task,
        })
    }
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
        Endpoint::new(self.addr.ip().to_string(), self.addr.port())
            .expect("an IP address is a valid host")
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

    /// Notifications accepted so far, in order.
    pub fn accepted(&self) -> Vec<AcceptedNotification> {
        lock(&self.state.accepted).clone()
    }

    /// Forgets the accepted notifications.
    pub fn clear_accepted(&self) {
        lock(&self.state.accepted).clear();
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
            rejected: c.rejected.load(Ordering::Relaxed),
            tokens_verified: c.tokens_verified.load(Ordering::Relaxed),
            stream_limit_violations: c.violations.load(Ordering::Relaxed),
            max_concurrent_streams_seen: c.max_concurrent.load(Ordering::Relaxed),
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

struct State {
    keys: HashMap<String, TrustedKey>,
    max_streams: u32,
    environment: Environment,
    clock: Arc<dyn Clock>,
    strict_tokens: bool,
    accept_all: bool,
    bad_environment_goaway: bool,
    unregistered: Mutex<HashMap<String, u64>>,
    accepted: Mutex<Vec<AcceptedNotification>>,
    faults: Mutex<Faults>,
    pings: Arc<PingFault>,
    hpack: Arc<HpackCounts>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    rejected: AtomicU64,
    tokens_verified: AtomicU64,
    violations: AtomicU64,
    max_concurrent: AtomicU64,
    goaways: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    black_holed: AtomicU64,
}

/// Armed faults. Counted faults disarm themselves when used up.
#[derive(Default)]
struct Faults {
    goaway_after: Option<(u64, String)>,
    refuse: u64,
    drop_after: Option<u64>,
    black_hole: bool,
    stall_tls: bool,
    storm: Option<(StatusCode, Reason, u64)>,
    limit_drop: bool,
    expire_all: bool,
}

impl Faults {
    fn arm(&mut self, fault: Fault, pings: &PingFault) {
        match fault {
            Fault::GoAwayAfter { requests, reason } => {
                self.goaway_after = Some((requests.max(1), reason))
            }
            Fault::RefuseStreams { count } => self.refuse += count,
            Fault::DropConnectionAfter { requests } => self.drop_after = Some(requests),
            Fault::BlackHole => self.black_hole = true,
            Fault::IgnorePings => pings.ignore.store(true, Ordering::Release),
            Fault::StallTlsHandshake => self.stall_tls = true,
            Fault::ErrorStorm { reason, count } => {
                let status = StatusCode::from_u16(reason.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                // A storm of zero requests is no storm.
                self.storm = (count > 0).then_some((status, reason, count));
            }
            Fault::LimitDropsAfterRejection => self.limit_drop = true,
            Fault::ExpireAllTokens => self.expire_all = true,
        }
    }
}

/// What one connection remembers: its team, its last verified token, its
/// advertised stream limit and whether it is going away.
struct ConnState {
    id: u64,
    control: Arc<ConnControl>,
    active: AtomicUsize,
    answered: AtomicU64,
    auth: Mutex<ConnAuth>,
    // Streams admitted for processing, and the GOAWAY's last stream once
    // one went out: streams above it are not processed. One lock, so no
    // stream slips in above a GOAWAY being sent.
    admitted: Mutex<Admitted>,
    // Ends the connection: `drop` at once (TCP closed mid-flight), or
    // `closing` once in-flight streams are done (after a GOAWAY).
    kill: Notify,
    closing: AtomicBool,
    // The client certificate, in certificate mode.
    certificate: Option<CertificateInfo>,
}

#[derive(Default)]
struct Admitted {
    highest: u32,
    goaway_last: Option<u32>,
}

#[derive(Default)]
struct ConnAuth {
    team: Option<String>,
    token: Option<CachedToken>,
}

struct CachedToken {
    raw: String,
    kid: String,
    iss: String,
    iat: i64,
    since: Instant,
}

async fn accept_loop(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<State>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    // Connection tasks live in the set, so aborting this task ends them all.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let id = state.counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
                let acceptor = acceptor.clone();
                let state = state.clone();
                if lock(&state.faults).stall_tls {
                    // Fault: hold the socket and never answer the ClientHello.
                    connections.spawn(async move {
                        let _held = tcp;
                        std::future::pending::<()>().await;
                    });
                    continue;
                }
                connections.spawn(async move {
                    if let Err(e) = serve_connection(acceptor, tcp, id, state).await {
                        tracing::debug!(connection = id, %peer, error = %e, "mock connection ended");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    id: u64,
    state: Arc<State>,
) -> std::result::Result<(), String> {
    let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("client did not negotiate h2".into());
    }
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| CertificateInfo::from_der(leaf).ok());
    // Certificate connections are not subject to the token ramp-up.
    let initial = if state.accept_all || certificate.is_some() {
        state.max_streams
    } else {
        1
    };
    let control = ConnControl::new(initial, state.pings.clone(), state.hpack.clone());
    let conn = Arc::new(ConnState {
        id,
        control: control.clone(),
        active: AtomicUsize::new(0),
        answered: AtomicU64::new(0),
        auth: Mutex::new(ConnAuth::default()),
        admitted: Mutex::new(Admitted::default()),
        kill: Notify::new(),
        closing: AtomicBool::new(false),
        certificate,
    });
    let io = SettingsShim::new(tls, control.clone());
    let mut h2 = h2::server::Builder::new()
        // h2 enforces this; the shim advertises the real, changing limit.
        .max_concurrent_streams(state.max_streams)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
    let result = loop {
        tokio::select! {
            next = h2.accept() => {
                let Some(next) = next else { break Ok(()) };
                let (request, respond) = match next {
                    Ok(pair) => pair,
                    Err(e) => break Err(e.to_string()),
                };
                let state = state.clone();
                let conn = conn.clone();
                tokio::spawn(async move {
                    handle_stream(request, respond, &state, &conn).await;
                });
            }
            _ = conn.kill.notified() => {
                // Fault: close TCP with requests in flight, no GOAWAY.
                state.counters.dropped.fetch_add(1, Ordering::Relaxed);
                break Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(20)), if conn.closing.load(Ordering::Acquire) => {
                if conn.active.load(Ordering::Acquire) == 0 {
                    break Ok(());
                }
            }
        }
    };
    result
}

/// Decrements the active-stream count when a stream ends, however it ends.
struct ActiveGuard<'a>(&'a AtomicUsize);
impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a fault decides for one request, before validation.
enum FaultAction {
    None,
    Refuse,
    BlackHole,
    Drop,
    Answer(Rejection),
}

fn fault_for_request(state: &State, conn: &ConnState, stream_id: u32) -> FaultAction {
    {
        let mut admitted = lock(&conn.admitted);
        if admitted.goaway_last.is_some_and(|last| stream_id > last) {
            return FaultAction::Refuse;
        }
        admitted.highest = admitted.highest.max(stream_id);
    }
    let mut f = lock(&state.faults);
    if f.refuse > 0 {
        f.refuse -= 1;
        return FaultAction::Refuse;
    }
    if let Some(n) = f.drop_after {
        if n == 0 {
            f.drop_after = None;
            return FaultAction::Drop;
        }
        f.drop_after = Some(n - 1);
    }
    if f.black_hole {
        return FaultAction::BlackHole;
    }
    if let Some((status, reason, count)) = &mut f.storm {
        let rejection = Rejection {
            status: *status,
            reason: reason.clone(),
            timestamp_ms: None,
        };
        *count -= 1;
        if *count == 0 {
            f.storm = None;
        }
        return FaultAction::Answer(rejection);
    }
    if f.expire_all {
        return FaultAction::Answer(reject(Reason::ExpiredProviderToken));
    }
    FaultAction::None
}

async fn handle_stream(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    state: &State,
    conn: &ConnState,
) {
    let active = conn.active.fetch_add(1, Ordering::AcqRel) + 1;
    // Released just before the stream's last frame is queued: once the
    // client can see the stream end, it may open the next one.
    let guard = ActiveGuard(&conn.active);
    state
        .counters
        .max_concurrent
        .fetch_max(active as u64, Ordering::Relaxed);
    let stream_id: u32 = respond.stream_id().into();
    if active > conn.control.limit_at_open(stream_id) as usize {
        state.counters.violations.fetch_add(1, Ordering::Relaxed);
        drop(guard);
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return;
    }
    let (parts, mut body) = request.into_parts();
    let mut payload = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
        // Keep a little past the largest limit so oversize is detectable.
        if payload.len() <= 8192 {
            payload.extend_from_slice(&chunk);
        }
    }
    let payload = payload.freeze();

    let verdict = match fault_for_request(state, conn, stream_id) {
        FaultAction::None => None,
        FaultAction::Refuse => {
            state.counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(guard);
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            return;
        }
        FaultAction::BlackHole => {
            // Read, never answered: wait until the client gives up.
            state.counters.black_holed.fetch_add(1, Ordering::Relaxed);
            let _ = futures_util::future::poll_fn(|cx| respond.poll_reset(cx)).await;
            return;
        }
        FaultAction::Drop => {
            conn.kill.notify_one();
            return;
        }
        FaultAction::Answer(rejection) => Some(Err(rejection)),
    };
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    let verdict = match verdict {
        Some(v) => v,
        None if state.accept_all => Ok(None),
        None => validate(
            &parts.method,
            parts.uri.path(),
            &parts.headers,
            &payload,
            state,
            conn,
        )
        .map(Some),
    };
    let mut builder = http::Response::builder();
    let (status, body) = match verdict {
        Ok(accepted) => {
            let apns_id = match &accepted {
                Some(a) => a.apns_id.clone(),
                None => uuid::Uuid::new_v4().to_string(),
            };
            builder = builder.header("apns-id", apns_id);
            if state.environment == Environment::Sandbox {
                builder = builder.header("apns-unique-id", uuid::Uuid::new_v4().to_string());
            }
            if let Some(accepted) = accepted {
                lock(&state.accepted).push(accepted);
            }
            if lock(&state.faults).limit_drop && conn.control.current() == 1 && conn.auth_valid() {
                conn.control.set(state.max_streams);
            }
            (StatusCode::OK, Bytes::new())
        }
        Err(rejection) => {
            state.counters.rejected.fetch_add(1, Ordering::Relaxed);
            if lock(&state.faults).limit_drop {
                // APNs may drop a connection back to one stream after rejections.
                conn.control.set(1);
            }
            let apns_id = parts
                .headers
                .get("apns-id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| uuid::Uuid::parse_str(v).is_ok())
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            builder = builder.header("apns-id", apns_id);
            let body = match rejection.timestamp_ms {
                Some(ts) => format!(r#"{{"reason":"{}","timestamp":{ts}}}"#, rejection.reason),
                None => format!(r#"{{"reason":"{}"}}"#, rejection.reason),
            };
            (rejection.status, Bytes::from(body))
        }
    };
    maybe_go_away(state, conn);
    let response = builder
        .status(status)
        .body(())
        .expect("static response parts are valid");
    let end = body.is_empty();
    drop(guard);
    if let Ok(mut stream) = respond.send_response(response, end) {
        if !end {
            let _ = stream.send_data(body, true);
        }
    }
}

/// Sends a GOAWAY with `reason` at once and closes the connection when the
/// streams already admitted are answered.
fn go_away_now(state: &State, conn: &ConnState, reason: &str) {
    let debug = serde_json::json!({ "reason": reason }).to_string();
    let mut admitted = lock(&conn.admitted);
    if admitted.goaway_last.is_some() {
        return;
    }
    let last = admitted.highest;
    admitted.goaway_last = Some(last);
    conn.control.go_away(last, 0, debug.as_bytes());
    drop(admitted);
    conn.closing.store(true, Ordering::Release);
    state.counters.goaways.fetch_add(1, Ordering::Relaxed);
}

/// Fault: after a connection answered n requests, a GOAWAY naming the
/// highest stream admitted so far as the last processed one, with APNs'
/// JSON reason.
fn maybe_go_away(state: &State, conn: &ConnState) {
    let answered = conn.answered.fetch_add(1, Ordering::AcqRel) + 1;
    let mut faults = lock(&state.faults);
    let Some((after, reason)) = &faults.goaway_after else {
        return;
    };
    if answered < *after {
        return;
    }
    let reason = reason.clone();
    faults.goaway_after = None;
    drop(faults);
    go_away_now(state, conn, &reason);
}

impl ConnState {
    fn auth_valid(&self) -> bool {
        lock(&self.auth).token.is_some()
    }
}

struct Rejection {
    status: StatusCode,
    reason: Reason,
    timestamp_ms: Option<u64>,
}

fn reject(reason: Reason) -> Rejection {
    Rejection {
        status: StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::BAD_REQUEST),
        reason,
        timestamp_ms: None,
    }
}

const APNS_HEADERS: [&str; 7] = [
    "authorization",
    "apns-id",
    "apns-expiration",
    "apns-priority",
    "apns-topic",
    "apns-push-type",
    "apns-collapse-id",
];

fn validate(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    payload: &Bytes,
    state: &State,
    conn: &ConnState,
) -> std::result::Result<AcceptedNotification, Rejection> {
    if method != Method::POST {
        return Err(reject(Reason::MethodNotAllowed));
    }
    let device_token = path
        .strip_prefix("/3/device/")
        .ok_or_else(|| reject(Reason::BadPath))?;
    if device_token.is_empty() {
        return Err(reject(Reason::MissingDeviceToken));
    }
    if DeviceToken::new(device_token).is_err() {
        return Err(reject(Reason::BadDeviceToken));
    }
    if APNS_HEADERS
        .iter()
        .any(|h| headers.get_all(*h).iter().count() > 1)
    {
        return Err(reject(Reason::DuplicateHeaders));
    }
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let apns_id = match text("apns-id") {
        Some(id) => {
            if id.len() != 36 || uuid::Uuid::parse_str(id).is_err() {
                return Err(reject(Reason::BadMessageId));
            }
            id.to_ascii_lowercase()
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let expiration = match text("apns-expiration") {
        Some(e) => Some(
            e.parse::<u64>()
                .map_err(|_| reject(Reason::BadExpirationDate))?,
        ),
        None => None,
    };
    let priority = match text("apns-priority") {
        Some(p @ ("10" | "5" | "1")) => p.parse::<u8>().ok(),
        Some(_) => return Err(reject(Reason::BadPriority)),
        None => None,
    };
    let push_type = match text("apns-push-type") {
        Some(t) => t
            .parse::<PushType>()
            .map_err(|_| reject(Reason::InvalidPushType))?,
        None => PushType::Alert,
    };
    let collapse_id = text("apns-collapse-id").map(str::to_string);
    if collapse_id.as_ref().is_some_and(|c| c.len() > 64) {
        return Err(reject(Reason::BadCollapseId));
    }

    let (key, topic) = match &conn.certificate {
        Some(cert) => {
            if !cert.environment.allows(state.environment) {
                if state.bad_environment_goaway {
                    go_away_now(state, conn, "BadCertificateEnvironment");
                }
                return Err(reject(Reason::BadCertificateEnvironment));
            }
            // The topic may be omitted when the certificate has just one.
            let topic = match text("apns-topic") {
                Some(t) if !t.is_empty() => t.to_string(),
                _ => cert
                    .default_topic()
                    .ok_or_else(|| reject(Reason::MissingTopic))?,
            };
            if !cert.allows_topic(&topic) {
                return Err(reject(Reason::TopicDisallowed));
            }
            (None, topic)
        }
        None => {
            let key = authenticate(text("authorization"), state, conn)?;
            let topic = text("apns-topic").ok_or_else(|| reject(Reason::MissingTopic))?;
            if topic.is_empty() {
                return Err(reject(Reason::MissingTopic));
            }
            if !key.allows_topic(topic) {
                return Err(reject(Reason::TopicDisallowed));
            }
            (Some(key), topic.to_string())
        }
    };
    if payload.is_empty() {
        return Err(reject(Reason::PayloadEmpty));
    }
    if payload.len() > push_type.payload_limit() {
        return Err(reject(Reason::PayloadTooLarge));
    }
    if let Some(ts) = lock(&state.unregistered)
        .get(&device_token.to_ascii_lowercase())
        .copied()
    {
        return Err(Rejection {
            timestamp_ms: Some(ts),
            ..reject(Reason::Unregistered)
        });
    }
    Ok(AcceptedNotification {
        device_token: device_token.to_string(),
        topic,
        push_type: push_type.as_str().to_string(),
        priority,
        expiration,
        collapse_id,
        apns_id,
        payload: payload.clone(),
        key_id: key
            .map(|k| k.key_id.as_str().to_string())
            .unwrap_or_default(),
        team_id: key
            .map(|k| k.team_id.as_str().to_string())
            .unwrap_or_default(),
        connection: conn.id,
        certificate_subject: conn.certificate.as_ref().map(|c| c.subject.clone()),
    })
}

/// Checks the provider token, caching the verified token per connection so
/// that a signature is verified once, not per request.
fn authenticate<'s>(
    header: Option<&str>,
    state: &'s State,
    conn: &ConnState,
) -> std::result::Result<&'s TrustedKey, Rejection> {
    let header = header.ok_or_else(|| reject(Reason::MissingProviderToken))?;
    let token = jwt::bearer(header, state.strict_tokens)
        .ok_or_else(|| reject(Reason::MissingProviderToken))?;
    let now_unix = state.clock.unix_seconds() as i64;
    let now = state.clock.now();
    let mut auth = lock(&conn.auth);

    let cached = auth.token.as_ref().filter(|c| c.raw == token);
    let (kid, iss, iat) = match cached {
        Some(c) => (c.kid.clone(), c.iss.clone(), c.iat),
        None => {
            let invalid = || reject(Reason::InvalidProviderToken);
            let parsed = jwt::parse(token, state.strict_tokens).map_err(|_| invalid())?;
            let key = state.keys.get(&parsed.kid).ok_or_else(invalid)?;
            if key.team_id.as_str() != parsed.iss {
                return Err(invalid());
            }
            let iat = i64::try_from(parsed.iat).map_err(|_| invalid())?;
            parsed.verify(&key.sec1).map_err(|_| invalid())?;
            state
                .counters
                .tokens_verified
                .fetch_add(1, Ordering::Relaxed);
            (parsed.kid, parsed.iss, iat)
        }
    };
    let key = state
        .keys
        .get(&kid)
        .ok_or_else(|| reject(Reason::InvalidProviderToken))?;
    if let Some(env) = key.environment {
        if env != state.environment {
            return Err(reject(Reason::BadEnvironmentKeyIdInToken));
        }
    }
    if auth.team.as_ref().is_some_and(|team| *team != iss) {
        return Err(reject(Reason::UnrelatedKeyIdInToken));
    }
    if now_unix - iat >= 3600 {
        return Err(reject(Reason::ExpiredProviderToken));
    }
    if iat - now_unix > 300 {
        // Issued in the future: the provider's clock is wrong.
        return Err(reject(Reason::InvalidProviderToken));
    }
    if cached.is_none() {
        if let Some(previous) = &auth.token {
            if now.saturating_duration_since(previous.since) < Duration::from_secs(20 * 60) {
                return Err(reject(Reason::TooManyProviderTokenUpdates));
            }
        }
        let first = auth.token.is_none();
        auth.team = Some(iss.clone());
        auth.token = Some(CachedToken {
            raw: token.to_string(),
            kid,
            iss,
            iat,
            since: now,
        });
        if first {
            // APNs raises the stream limit after the first valid token.
            conn.control.set(state.max_streams);
        }
    }
    Ok(key)
}
