//! [`ClientBuilder`]: every setting of a [`Client`], checked once at
//! [`build`](ClientBuilder::build).

use std::fmt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::HeaderValue;
use rustls_pki_types::CertificateDer;
use tokio::sync::{watch, Notify};

use super::broadcast::ChannelsPool;
use super::retry::RetryBudget;
use super::stats::Counters;
use super::{Client, Credentials, Inner, RetryPolicy};
use crate::auth::{ClientCertificate, KeyId, SigningKey, TeamId, TokenCache, TokenSigner};
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::transport::connection::{Keepalive, Timeouts};
use crate::transport::pool::{Pool, PoolConfig};
use crate::transport::{tls, Endpoint, Environment, IntoEndpoint, Proxy};

/// The most connections a pool opens; larger [`ClientBuilder::pool_size`]
/// values are lowered to this.
pub const MAX_POOL_SIZE: usize = 64;

/// Default limit for establishing the TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for the TLS and HTTP/2 handshakes.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for one `send`, from the call to the answer, retries
/// included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default idle time before a keepalive PING.
pub const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Default silence from the server, while requests are outstanding, before
/// a liveness PING.
pub const DEFAULT_LIVENESS_SILENCE: Duration = Duration::from_secs(2);
/// Default time to wait for a PING's answer before closing the connection.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Configures a [`Client`]. Errors in any setting are reported by
/// [`build`](ClientBuilder::build).
#[must_use]
pub struct ClientBuilder {
    endpoint: Endpoint,
    channels_endpoint: Option<Endpoint>,
    signer: Option<Result<TokenSigner>>,
    certificate: Option<ClientCertificate>,
    resolve: Option<(String, u16, std::net::SocketAddr)>,
    webpki_roots: bool,
    extra_roots: Vec<CertificateDer<'static>>,
    timeouts: Timeouts,
    clock: Option<Arc<dyn Clock>>,
    refresh_after: Option<Duration>,
    pool: PoolConfig,
    retry: RetryPolicy,
    proxy: ProxySetting,
    error: Option<Error>,
}

/// Where the proxy setting comes from.
#[derive(Debug, Clone)]
enum ProxySetting {
    /// `HTTPS_PROXY` and friends, read at `build` (the default).
    Environment,
    /// This one.
    Fixed(Proxy),
    /// Never a proxy.
    Off,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("credentials", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            endpoint: Endpoint::production(),
            channels_endpoint: None,
            signer: None,
            certificate: None,
            resolve: None,
            webpki_roots: true,
            extra_roots: Vec::new(),
            timeouts: Timeouts {
                connect: DEFAULT_CONNECT_TIMEOUT,
                tls: DEFAULT_TLS_TIMEOUT,
                request: DEFAULT_REQUEST_TIMEOUT,
            },
            clock: None,
            refresh_after: None,
            pool: PoolConfig {
                size: 1,
                reconnect: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
                // Replaced by the retry policy's at build.
                probe: Backoff::new(Duration::ZERO, Duration::ZERO),
                keepalive: Some(Keepalive {
                    idle: DEFAULT_KEEPALIVE_IDLE,
                    silence: DEFAULT_LIVENESS_SILENCE,
                    timeout: DEFAULT_KEEPALIVE_TIMEOUT,
                }),
                max_pending: None,
                route: Default::default(),
            },
            retry: RetryPolicy::default(),
            proxy: ProxySetting::Environment,
            error: None,
        }
    }
}

impl ClientBuilder {
    /// Sends to Apple's host for `env` (default: production).
    pub fn environment(mut self, env: Environment) -> Self {
        self.endpoint = Endpoint::for_environment(env);
        self
    }

    /// Sends to `endpoint` (a mock server, a proxy, port 2197...): an
    /// [`Endpoint`], or a URL string such as `"https://127.0.0.1:8443"`. A
    /// string that is not an `https://HOST[:PORT]` URL makes
    /// [`build`](Self::build) fail with [`Error::InvalidField`] (field
    /// `endpoint`), as reqwest defers a builder's errors to `build()`.
    ///
    /// ```
    /// use apns_provider::{Client, Endpoint, Error, SigningKey};
    ///
    /// let key = SigningKey::from_pem(apns_provider::auth::generate_p8_pem().as_bytes())?;
    /// let client = Client::builder()
    ///     .endpoint("https://127.0.0.1:8443")
    ///     .token_auth(key.clone(), "ABCDE12345", "TEAM123456")
    ///     .build()?;
    /// assert_eq!(client.endpoint(), &Endpoint::new("127.0.0.1", 8443)?);
    ///
    /// let e = Client::builder()
    ///     .endpoint("http://127.0.0.1:8443") // not https
    ///     .token_auth(key, "ABCDE12345", "TEAM123456")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(e, Error::InvalidField { field: "endpoint", .. }), "{e}");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn endpoint(mut self, endpoint: impl IntoEndpoint) -> Self {
        match endpoint.into_endpoint() {
            Ok(endpoint) => self.endpoint = endpoint,
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Sends broadcast channel-management requests to `endpoint`. By
    /// default they go to Apple's management host of the environment
    /// ([`Endpoint::channels_for_environment`]) when the client sends to
    /// Apple, and to the push endpoint itself otherwise (a mock serves both
    /// on one port). Either way they use a connection of their own.
    /// Takes what [`endpoint`](Self::endpoint) takes.
    pub fn channels_endpoint(mut self, endpoint: impl IntoEndpoint) -> Self {
        match endpoint.into_endpoint() {
            Ok(endpoint) => self.channels_endpoint = Some(endpoint),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Authenticates with provider tokens signed by `key`.
    pub fn token_auth(mut self, key: SigningKey, key_id: &str, team_id: &str) -> Self {
        self.signer = Some(
            KeyId::new(key_id)
                .and_then(|k| TeamId::new(team_id).map(|t| TokenSigner::new(key, k, t))),
        );
        self
    }

    /// Authenticates with provider tokens from `signer`.
    pub fn token_signer(mut self, signer: TokenSigner) -> Self {
        self.signer = Some(Ok(signer));
        self
    }

    /// Authenticates with a TLS client certificate instead of tokens (for
    /// teams still moving to `.p8` keys). No `authorization` header is sent;
    /// the topic defaults to the certificate's when it allows exactly one.
    pub fn certificate(mut self, certificate: ClientCertificate) -> Self {
        self.certificate = Some(certificate);
        self
    }

    /// Connects to `addr` when the endpoint (or the channels endpoint) is
    /// `host:port`, instead of resolving the host (like curl's `--resolve
    /// HOST:PORT:ADDR`); TLS still verifies the host name. An entry for
    /// `api.development.push.apple.com` also applies to the sandbox host,
    /// its alias.
    pub fn resolve(mut self, host: &str, port: u16, addr: std::net::SocketAddr) -> Self {
        self.resolve = Some((host.to_ascii_lowercase(), port, addr));
        self
    }

    /// Connects through this HTTPS proxy (an HTTP `CONNECT` tunnel, then TLS
    /// to APNs through it), instead of the one the environment names. Its
    /// no-proxy list still applies (see [`Proxy::with_no_proxy`]).
    ///
    /// By default the client follows the environment as curl does:
    /// `https_proxy`, `HTTPS_PROXY`, `all_proxy` or `ALL_PROXY`, except for
    /// the hosts `NO_PROXY` lists (see [`Proxy`]).
    ///
    /// ```no_run
    /// # use apns_provider::{Client, transport::Proxy};
    /// # fn run(key: apns_provider::SigningKey) -> apns_provider::Result<()> {
    /// let client = Client::builder()
    ///     .proxy("http://user:password@proxy.corp:3128".parse::<Proxy>()?)
    ///     .token_auth(key, "ABCDE12345", "TEAM123456")
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxySetting::Fixed(proxy);
        self
    }

    /// Never uses a proxy, whatever the environment says.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxySetting::Off;
        self
    }

    /// Refreshes provider tokens after this age (default 50 minutes; must be
    /// within 20..60 minutes).
    pub fn token_refresh_after(mut self, refresh_after: Duration) -> Self {
        self.refresh_after = Some(refresh_after);
        self
    }

    /// Also trusts the CA certificates in `pem` (for a mock server or a
    /// TLS-inspecting proxy). The built-in `webpki-roots` stay trusted.
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Self {
        match tls::certificates_from_pem(pem, "CA certificates") {
            Ok(certs) => self.extra_roots.extend(certs),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Also trusts the CA certificates in the PEM file at `path`.
    pub fn add_root_certificates_file(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        match std::fs::read(path) {
            Ok(pem) => {
                match tls::certificates_from_pem(&pem, &format!("CA file {}", path.display())) {
                    Ok(certs) => self.extra_roots.extend(certs),
                    Err(e) => {
                        self.error.get_or_insert(e);
                    }
                }
            }
            Err(e) => {
                self.error.get_or_insert(Error::io(
                    format!("cannot read CA file {}", path.display()),
                    e,
                ));
            }
        }
        self
    }

    /// Whether to trust the built-in `webpki-roots` (default `true`). Turn it
    /// off to trust only the roots you add.
    pub fn webpki_roots(mut self, enabled: bool) -> Self {
        self.webpki_roots = enabled;
        self
    }

    /// Limit for establishing the TCP connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self
    }

    /// Limit for the TLS and HTTP/2 handshakes (default 10 s).
    pub fn tls_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.tls = timeout;
        self
    }

    /// Limit for one `send`, including waiting for a free stream and
    /// retries (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.request = timeout;
        self
    }

    /// Connections in the pool (default 1, at most [`MAX_POOL_SIZE`]). They
    /// open lazily, when the live ones are at the server's stream limit.
    pub fn pool_size(mut self, connections: usize) -> Self {
        // Hundreds of connections to one endpoint are never useful (each
        // carries up to the server's stream limit) and look like abuse.
        self.pool.size = connections.clamp(1, MAX_POOL_SIZE);
        self
    }

    /// Backoff between connection attempts after connection failures
    /// (connect, TLS or HTTP/2 handshake errors, a connection lost without a
    /// GOAWAY): jittered, doubling from `min` (default 1 s) to `max`
    /// (default 60 s), reset by the next answer. Answers from the server
    /// (503, `Shutdown`, GOAWAY) never lengthen it.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.pool.reconnect = Backoff::new(min, max);
        self
    }

    /// Sends a PING after `idle` without traffic and closes the connection
    /// when no answer comes within `timeout` (defaults 60 s and 3 s).
    pub fn keepalive(mut self, idle: Duration, timeout: Duration) -> Self {
        let silence = self
            .pool
            .keepalive
            .map_or(DEFAULT_LIVENESS_SILENCE, |k| k.silence);
        self.pool.keepalive = Some(Keepalive {
            idle,
            silence,
            timeout,
        });
        self
    }

    /// Liveness: while requests are outstanding and the server sent no
    /// frame for `silence` (default 2 s), sends a PING; no answer within the
    /// keepalive timeout closes the connection. What was on the wire then
    /// fails as "may have been delivered" and what was queued moves to a new
    /// connection, so a black hole is found in seconds, not at the deadline.
    pub fn liveness_check(mut self, silence: Duration) -> Self {
        let k = self.pool.keepalive.unwrap_or(Keepalive {
            idle: DEFAULT_KEEPALIVE_IDLE,
            silence,
            timeout: DEFAULT_KEEPALIVE_TIMEOUT,
        });
        self.pool.keepalive = Some(Keepalive { silence, ..k });
        self
    }

    /// Turns keepalive and liveness PINGs off.
    pub fn no_keepalive(mut self) -> Self {
        self.pool.keepalive = None;
        self
    }

    /// Bounds the requests waiting for a stream: past `n`, `send` fails at
    /// once with [`Error::QueueFull`] instead of waiting. Unbounded by
    /// default (waiting is bounded by each request's deadline).
    pub fn max_pending(mut self, n: usize) -> Self {
        self.pool.max_pending = Some(n);
        self
    }

    /// How transient rejections are retried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Uses `clock` for token ages and `iat` claims (for tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates the configuration and creates the client. No connection is
    /// made until the first send.
    pub fn build(mut self) -> Result<Client> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut warnings = Vec::new();
        let credentials = match (self.signer, self.certificate) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "both a token key and a certificate were given: use one (tokens are Apple's recommendation)".into(),
                ))
            }
            (None, None) => {
                return Err(Error::Config(
                    "no credentials: call token_auth() with the .p8 key, key id and team id (or certificate())".into(),
                ))
            }
            (Some(signer), None) => {
                let mut tokens = TokenCache::new(signer?);
                if let Some(clock) = self.clock.clone() {
                    tokens = tokens.with_clock(clock);
                }
                if let Some(refresh) = self.refresh_after {
                    tokens = tokens.with_refresh_after(refresh)?;
                }
                Credentials::Token(Arc::new(tokens))
            }
            (None, Some(certificate)) => {
                let now = self
                    .clock
                    .as_ref()
                    .map_or_else(std::time::SystemTime::now, |c| c.system_time());
                if let Some(w) =
                    certificate
                        .info()
                        .check_usable(now, self.endpoint.environment())?
                {
                    // Returned by `warnings()`, for the caller to show once.
                    tracing::info!("{w}");
                    warnings.push(w);
                }
                let default_topic = certificate
                    .info()
                    .default_topic()
                    .and_then(|t| HeaderValue::from_str(&t).ok());
                Credentials::Certificate {
                    certificate,
                    default_topic,
                }
            }
        };
        let certificate = match &credentials {
            Credentials::Certificate { certificate, .. } => Some(certificate),
            Credentials::Token(_) => None,
        };
        let identity = certificate.map(|c| (c.chain().to_vec(), c.key()));
        let tls = tls::client_config_with_cert(self.webpki_roots, &self.extra_roots, identity)?;
        let channels_endpoint = self
            .channels_endpoint
            .take()
            .unwrap_or_else(|| self.endpoint.default_channels_endpoint());
        let resolve = |endpoint: &Endpoint| {
            let (host, port, addr) = self.resolve.as_ref()?;
            let alias = |h: &str| {
                if h == crate::transport::DEVELOPMENT_ALIAS_HOST {
                    crate::transport::SANDBOX_HOST.to_string()
                } else {
                    h.to_string()
                }
            };
            (alias(host) == alias(endpoint.host()) && *port == endpoint.port()).then_some(*addr)
        };
        self.pool.route.resolve = resolve(&self.endpoint);
        let channels_resolve = resolve(&channels_endpoint);
        let proxy = match self.proxy {
            ProxySetting::Environment => Proxy::from_env()?,
            ProxySetting::Fixed(p) => Some(p),
            ProxySetting::Off => None,
        }
        .map(Arc::new);
        // Each host is matched against NO_PROXY on its own: the push host
        // and the channel-management host may be treated differently.
        self.pool.route.proxy = proxy.clone().filter(|p| p.applies_to(self.endpoint.host()));
        if let Some(p) = &self.pool.route.proxy {
            tracing::debug!(proxy = %p, endpoint = %self.endpoint, "connecting through an HTTPS proxy");
        }
        // Channel management is light traffic: one connection.
        let channels_config = PoolConfig {
            size: 1,
            route: crate::transport::Route {
                resolve: channels_resolve,
                proxy: proxy.filter(|p| p.applies_to(channels_endpoint.host())),
            },
            ..self.pool.clone()
        };
        let authority = self
            .endpoint
            .authority()
            .parse()
            .map_err(|_| Error::Config(format!("invalid endpoint {}", self.endpoint)))?;
        self.pool.probe = Backoff::new(self.retry.backoff_min, self.retry.backoff_max);
        let channels = ChannelsPool::new(
            channels_endpoint,
            tls.clone(),
            self.timeouts,
            PoolConfig {
                probe: self.pool.probe,
                ..channels_config
            },
        )?;
        let pool = Arc::new(Pool::new(
            self.endpoint.clone(),
            tls,
            self.timeouts,
            self.pool,
        ));
        Ok(Client {
            inner: Arc::new(Inner {
                endpoint: self.endpoint,
                authority,
                credentials,
                warnings,
                pool,
                channels,
                timeouts: self.timeouts,
                budget: RetryBudget::new(&self.retry),
                retry: self.retry,
                counters: Counters::default(),
                closing: AtomicBool::new(false),
                idle: Notify::new(),
                force: watch::channel(false).0,
                shutdown_report: Mutex::new(None),
                shutdown_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pem(crate::auth::generate_p8_pem().as_bytes()).unwrap()
    }

    fn built(endpoint: impl IntoEndpoint) -> Result<Client> {
        Client::builder()
            .endpoint(endpoint)
            .token_auth(key(), "ABCDE12345", "TEAM123456")
            .build()
    }

    #[test]
    fn endpoint_takes_an_endpoint_or_a_url_string() {
        let mock = Endpoint::new("127.0.0.1", 8443).unwrap();
        let url = String::from("https://127.0.0.1:8443");
        for client in [
            built(mock.clone()),
            built(&mock),
            built("https://127.0.0.1:8443"),
            built(url.clone()),
            built(&url),
        ] {
            assert_eq!(client.unwrap().endpoint(), &mock);
        }
    }

    #[test]
    fn a_bad_endpoint_string_fails_build_with_its_field() {
        for bad in [
            "http://127.0.0.1:8443",
            "127.0.0.1:8443",
            "https://x/path",
            "",
        ] {
            let e = built(bad).err().unwrap_or_else(|| panic!("{bad:?} built"));
            assert!(
                matches!(
                    e,
                    Error::InvalidField {
                        field: "endpoint",
                        ..
                    }
                ),
                "{bad:?}: {e}"
            );
            assert!(e.to_string().contains("https://HOST[:PORT]"), "{e}");
        }
        // Reported even when a later call names a good endpoint: the first
        // mistake is not silently replaced.
        let e = Client::builder()
            .channels_endpoint("ftp://mock")
            .endpoint(Endpoint::sandbox())
            .token_auth(key(), "ABCDE12345", "TEAM123456")
            .build()
            .err()
            .unwrap();
        assert!(
            matches!(
                e,
                Error::InvalidField {
                    field: "endpoint",
                    ..
                }
            ),
            "{e}"
        );
    }
}
