//! The APNs client: build once, clone freely, send.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use rustls_pki_types::CertificateDer;

use crate::auth::{KeyId, ProviderToken, SigningKey, TeamId, TokenCache, TokenSigner};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::notification::Notification;
use crate::response::{Reason, Response};
use crate::transport::{tls, Connection, Endpoint, Environment, Timeouts};

/// Default limit for establishing the TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for the TLS and HTTP/2 handshakes.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for one request, from the call to `send` to the answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends notifications to APNs over one long-lived HTTP/2 connection per
/// client, with token authentication.
///
/// A `Client` is immutable once built and cheap to clone (clones share the
/// connection and the token cache). Create one per (team, key, environment)
/// and keep it for the life of the process.
///
/// ```no_run
/// use apns_provider::{Client, Environment, Notification, Payload, SigningKey};
///
/// # async fn run() -> apns_provider::Result<()> {
/// let client = Client::builder()
///     .environment(Environment::Sandbox)
///     .token_auth(SigningKey::from_file("AuthKey_ABCDE12345.p8")?, "ABCDE12345", "TEAM123456")
///     .build()?;
/// let notification = Notification::builder("00fc13adff78...", Payload::alert("Hello"))
///     .topic("com.example.app")
///     .build()?;
/// let response = client.send(&notification).await?;
/// println!("{}", response.describe());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    authority: http::uri::Authority,
    tokens: Arc<TokenCache>,
    tls: Arc<rustls::ClientConfig>,
    timeouts: Timeouts,
    // One connection, opened lazily and replaced when it dies. The async
    // mutex makes concurrent first sends share one connect.
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint)
            .field("key_id", self.inner.tokens.signer().key_id())
            .field("team_id", self.inner.tokens.signer().team_id())
            .field("credentials", &"[redacted]")
            .finish()
    }
}

impl Client {
    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The endpoint this client sends to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The current provider token (minted if due). Useful to hand a token to
    /// another tool such as curl.
    pub fn provider_token(&self) -> ProviderToken {
        self.inner.tokens.get()
    }

    /// The token cache, to inspect mint counts.
    pub fn token_cache(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// Sends one notification and returns APNs' answer.
    ///
    /// `Ok` carries any answer from APNs, accepted or rejected (see
    /// [`Response::is_accepted`] and [`Response::error_for_status`]); `Err`
    /// means no answer was obtained. An `ExpiredProviderToken` answer makes
    /// the client mint one new token, open a new connection and send once
    /// more.
    pub async fn send(&self, notification: &Notification) -> Result<Response> {
        let response = self.send_once(notification).await?;
        if response.reason() == Some(&Reason::ExpiredProviderToken) {
            tracing::warn!("APNs answered ExpiredProviderToken; minting a new token and retrying once on a new connection");
            self.retire_connection().await;
            let response = self.send_once(notification).await?;
            if response.reason() == Some(&Reason::ExpiredProviderToken) {
                tracing::error!("a freshly minted token was reported expired: check this machine's clock (iat must be within the last hour)");
            }
            return Ok(response);
        }
        Ok(response)
    }

    async fn send_once(&self, notification: &Notification) -> Result<Response> {
        let deadline = tokio::time::Instant::now() + self.inner.timeouts.request;
        let token = self.inner.tokens.get();
        let request = self.build_request(notification, &token)?;
        let connection = self.connection().await?;
        let result = connection
            .send(
                request,
                notification.payload.clone(),
                deadline,
                self.inner.timeouts.request,
            )
            .await;
        if let Ok(response) = &result {
            if response.reason() == Some(&Reason::ExpiredProviderToken) {
                // However many requests saw this token expire, one re-mint.
                self.inner.tokens.invalidate(&token);
            }
        }
        result
    }

    fn build_request(&self, n: &Notification, token: &ProviderToken) -> Result<http::Request<()>> {
        let uri = http::Uri::builder()
            .scheme("https")
            .authority(self.inner.authority.clone())
            .path_and_query(format!("/3/device/{}", n.device_token.as_str()))
            .build()
            .map_err(|e| Error::invalid("device_token", e.to_string()))?;
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(uri)
            .body(())
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let headers = request.headers_mut();
        // `authorization` is marked sensitive: HPACK sends it never-indexed.
        headers.insert(AUTHORIZATION, token.header_value().clone());
        headers.insert(
            HeaderName::from_static("apns-push-type"),
            HeaderValue::from_static(n.push_type.as_str()),
        );
        let topic = n
            .topic
            .as_ref()
            .ok_or_else(|| Error::invalid("topic", "required with token authentication; set it to the app's bundle id (plus the push type's suffix)"))?;
        headers.insert(
            HeaderName::from_static("apns-topic"),
            HeaderValue::from_str(topic.as_str())
                .map_err(|e| Error::invalid("topic", e.to_string()))?,
        );
        if let Some(id) = n.apns_id {
            headers.insert(
                HeaderName::from_static("apns-id"),
                HeaderValue::from_str(&id.to_string())
                    .map_err(|e| Error::invalid("apns_id", e.to_string()))?,
            );
        }
        if let Some(exp) = n.expiration {
            headers.insert(
                HeaderName::from_static("apns-expiration"),
                HeaderValue::from(exp.as_unix_seconds()),
            );
        }
        if let Some(p) = n.priority {
            headers.insert(
                HeaderName::from_static("apns-priority"),
                HeaderValue::from_static(p.as_header()),
            );
        }
        if let Some(c) = &n.collapse_id {
            headers.insert(
                HeaderName::from_static("apns-collapse-id"),
                HeaderValue::from_str(c.as_str())
                    .map_err(|e| Error::invalid("collapse_id", e.to_string()))?,
            );
        }
        Ok(request)
    }

    async fn connection(&self) -> Result<Arc<Connection>> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok(conn.clone());
        }
        let conn = Arc::new(
            Connection::connect(
                &self.inner.endpoint,
                self.inner.tls.clone(),
                &self.inner.timeouts,
            )
            .await?,
        );
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn retire_connection(&self) {
        if let Some(old) = self.inner.connection.lock().await.take() {
            tracing::debug!(connection = old.id(), "retiring connection");
        }
    }
}

/// Configures a [`Client`]. Errors in any setting are reported by
/// [`build`](ClientBuilder::build).
#[must_use]
pub struct ClientBuilder {
    endpoint: Endpoint,
    signer: Option<Result<TokenSigner>>,
    webpki_roots: bool,
    extra_roots: Vec<CertificateDer<'static>>,
    timeouts: Timeouts,
    clock: Option<Arc<dyn Clock>>,
    refresh_after: Option<Duration>,
    error: Option<Error>,
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
            signer: None,
            webpki_roots: true,
            extra_roots: Vec::new(),
            timeouts: Timeouts {
                connect: DEFAULT_CONNECT_TIMEOUT,
                tls: DEFAULT_TLS_TIMEOUT,
                request: DEFAULT_REQUEST_TIMEOUT,
            },
            clock: None,
            refresh_after: None,
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

    /// Sends to `endpoint` (a mock server, a proxy, port 2197...).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
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

    /// Limit for one request, including waiting for a free stream (default
    /// 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.request = timeout;
        self
    }

    /// Uses `clock` for token ages and `iat` claims (for tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates the configuration and creates the client. No connection is
    /// made until the first send.
    pub fn build(self) -> Result<Client> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let signer = self.signer.ok_or_else(|| {
            Error::Config(
                "no credentials: call token_auth() with the .p8 key, key id and team id".into(),
            )
        })??;
        let mut tokens = TokenCache::new(signer);
        if let Some(clock) = self.clock {
            tokens = tokens.with_clock(clock);
        }
        if let Some(refresh) = self.refresh_after {
            tokens = tokens.with_refresh_after(refresh)?;
        }
        let tls = tls::client_config(self.webpki_roots, &self.extra_roots)?;
        let authority = self
            .endpoint
            .authority()
            .parse()
            .map_err(|_| Error::Config(format!("invalid endpoint {}", self.endpoint)))?;
        Ok(Client {
            inner: Arc::new(Inner {
                endpoint: self.endpoint,
                authority,
                tokens: Arc::new(tokens),
                tls,
                timeouts: self.timeouts,
                connection: tokio::sync::Mutex::new(None),
            }),
        })
    }
}
