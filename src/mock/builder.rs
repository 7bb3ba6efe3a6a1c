//! [`MockServerBuilder`]: what the mock trusts, plays and injects.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

use super::ca;
use super::faults::{Fault, Faults};
use super::handle::MockServer;
use super::keys::TrustedKey;
use super::records::{Records, DEFAULT_KEEP};
use super::registry::Registry;
use super::server;
use super::shim::{HpackCounts, PingFault};
use super::state::{MockCounters, ServerTimeouts, State};
use crate::broadcast::MAX_CHANNELS_PER_APP;
use crate::clock::{self, Clock};
use crate::error::{Error, Result};
use crate::transport::Environment;

#[allow(unused_imports)] // for doc links
use super::handle::MockStats;

/// APNs' default stream limit after the first valid token (observed 500-1500).
pub const DEFAULT_MAX_STREAMS: u32 = 1000;

impl MockServer {
    /// Starts configuring a mock server.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }
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
    token_updates_per_key: bool,
    server_names: Vec<String>,
    identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    faults: Vec<Fault>,
    accept_all: bool,
    client_ca: Option<Vec<u8>>,
    bad_environment_goaway: bool,
    keep: usize,
    capture_header_blocks: usize,
    max_channels: usize,
    timeouts: ServerTimeouts,
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
            token_updates_per_key: false,
            server_names: Vec::new(),
            identity_pem: None,
            faults: Vec::new(),
            accept_all: false,
            client_ca: None,
            bad_environment_goaway: false,
            keep: DEFAULT_KEEP,
            capture_header_blocks: 0,
            max_channels: MAX_CHANNELS_PER_APP,
            timeouts: ServerTimeouts::default(),
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
    /// Enforces Apple's 20-minute token rule per key across all
    /// connections, as Apple seems to, not only per connection
    /// (`docs/apns-facts.md`, "Token rules"). A token for a key answers `429
    /// TooManyProviderTokenUpdates` when it is neither of the last two that
    /// key showed and the newest is younger than 20 minutes. A fleet whose
    /// processes mint their own tokens fails this; one whose tokens are
    /// identical passes.
    pub fn token_updates_per_key(mut self, per_key: bool) -> Self {
        self.token_updates_per_key = per_key;
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
    /// How many accepted notifications to keep for
    /// [`MockServer::accepted`], and broadcasts for
    /// [`MockServer::broadcasts`] (default 10,000 of each; the oldest go
    /// first). [`MockStats`] counts them all, so memory stays bounded
    /// however long the mock runs.
    pub fn keep(mut self, records: usize) -> Self {
        self.keep = records;
        self
    }
    /// Keeps the raw HPACK blocks of the last `n` requests (default none),
    /// to check a client's header encoding with a decoder of your own:
    /// [`MockServer::header_blocks`].
    pub fn capture_header_blocks(mut self, n: usize) -> Self {
        self.capture_header_blocks = n;
        self
    }
    /// The most broadcast channels per app (and environment) before a
    /// create gets `CannotCreateChannelConfig` (default 10,000, Apple's
    /// limit); a lower one tests that path cheaply.
    pub fn max_channels(mut self, per_app: usize) -> Self {
        self.max_channels = per_app;
        self
    }
    /// How long a client may take to finish the TLS handshake and send the
    /// HTTP/2 preface, and then each request (default 10 s): a client that
    /// connects and says nothing is closed.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.handshake = timeout;
        self
    }
    /// How long a connection may stay without a request before the mock
    /// closes it with a GOAWAY (default 5 minutes).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.idle = timeout;
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
            keys.insert(k.key_id().as_str().to_string(), k);
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
            per_key_tokens: self
                .token_updates_per_key
                .then(|| Mutex::new(HashMap::new())),
            accept_all: self.accept_all,
            bad_environment_goaway: self.bad_environment_goaway,
            unregistered: Mutex::new(self.unregistered),
            records: Mutex::new(Records::new(self.keep)),
            broadcasts: Mutex::new(Records::new(self.keep)),
            channels: Mutex::new(Registry::new(self.max_channels)),
            timeouts: self.timeouts,
            faults: Mutex::new(faults),
            pings,
            hpack: Arc::new(HpackCounts::new(self.capture_header_blocks)),
            counters: MockCounters::default(),
        });
        let accept_state = state.clone();
        let task = tokio::spawn(server::accept_loop(listener, tls, accept_state));
        tracing::info!(%addr, "mock APNs server listening");
        Ok(MockServer::new(addr, identity.ca_pem, state, task))
    }
}
