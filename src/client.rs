//! The APNs client: build once, clone freely, send.
//!
//! What the client guarantees (also in the README):
//! - every `send` resolves, with an answer or a typed error, before its
//!   deadline (`request_timeout`, default 30 s, covering waits and retries);
//! - it never has more requests on a connection than the server allows;
//! - it resends, once, what the server provably never processed (streams
//!   refused with `REFUSED_STREAM`, streams above a GOAWAY's last stream);
//! - it retries transient rejections (500, 503, `TooManyProviderTokenUpdates`,
//!   `IdleTimeout`) within a retry budget, and `ExpiredProviderToken` once
//!   after one re-mint; it never retries permanent rejections;
//! - a request on the wire when its connection died is *not* resent: the
//!   error says it may have been delivered.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use rustls_pki_types::CertificateDer;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::auth::{
    CertificateInfo, ClientCertificate, KeyId, ProviderToken, SigningKey, TeamId, TokenCache,
    TokenSigner,
};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::notification::Notification;
use crate::response::{ReasonClass, Response};
use crate::transport::connection::{Keepalive, Timeouts};
use crate::transport::pool::{Pool, PoolConfig};
use crate::transport::{tls, Endpoint, Environment};

/// Default limit for establishing the TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for the TLS and HTTP/2 handshakes.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for one `send`, from the call to the answer, retries
/// included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default idle time before a keepalive PING.
pub const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Default time to wait for a PING's answer before retiring the connection.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How transient rejections are retried.
///
/// Retries happen only for answers Apple documents as transient (500, 503,
/// `TooManyProviderTokenUpdates`, `IdleTimeout`); each retry takes a token
/// from a budget refilled by `budget_ratio` per notification (plus an
/// initial reserve of `budget_reserve`), so an outage cannot turn into a
/// retry storm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries per notification (default 3).
    pub max_retries: u32,
    /// First wait before retrying a 500 (default 1 s), doubled per retry.
    pub backoff_min: Duration,
    /// Longest wait between retries (default 60 s).
    pub backoff_max: Duration,
    /// Retry tokens earned per notification sent (default 0.1: at most one
    /// retry per ten notifications in a sustained outage).
    pub budget_ratio: f64,
    /// Retry tokens available at start, and the most that can accumulate
    /// (default 10): at most this many retries in a burst.
    pub budget_reserve: f64,
    /// At-least-once delivery (default `false`): also resend, with the same
    /// `apns-id`, a notification that *may* have been delivered (its
    /// connection died while it was on the wire). The device may then show
    /// it twice; give such notifications an `apns-collapse-id` so a
    /// duplicate replaces the first instead of adding to it.
    pub resend_unknown: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            budget_ratio: 0.1,
            budget_reserve: 10.0,
            resend_unknown: false,
        }
    }
}

impl RetryPolicy {
    /// No retries at all (resends of unprocessed streams still happen: they
    /// cannot duplicate a notification).
    pub fn never() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Sets [`max_retries`](RetryPolicy::max_retries).
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the backoff bounds.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Sets [`resend_unknown`](RetryPolicy::resend_unknown): at-least-once
    /// delivery, at the cost of possible duplicates.
    pub fn with_resend_unknown(mut self, resend: bool) -> Self {
        self.resend_unknown = resend;
        self
    }

    /// Sets the budget.
    pub fn with_budget(mut self, ratio: f64, reserve: f64) -> Self {
        self.budget_ratio = ratio.max(0.0);
        self.budget_reserve = reserve.max(0.0);
        self
    }
}

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
    /// Resends of requests the server never processed.
    pub resends: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Provider tokens minted.
    pub tokens_minted: u64,
}

/// What [`Client::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Requests in flight when shutdown started.
    pub in_flight_at_start: u64,
    /// Of those, how many finished (answered or failed) before the deadline.
    pub completed: u64,
    /// Of those, how many were abandoned at the deadline with
    /// [`Error::Shutdown`].
    pub abandoned: u64,
    /// The client's counters after shutdown: every notification is accepted,
    /// rejected or failed.
    pub stats: ClientStats,
}

/// The result of one notification from [`Client::send_many`].
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

/// Sends notifications to APNs over a pool of long-lived HTTP/2
/// connections, with token authentication.
///
/// A `Client` is immutable once built and cheap to clone (clones share the
/// pool, the token cache and the counters). Build one per (team, key,
/// environment) and keep it for the life of the process: a connection never
/// carries two teams' tokens.
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
    // Exactly one of the two: token or certificate authentication.
    tokens: Option<Arc<TokenCache>>,
    certificate: Option<ClientCertificate>,
    // The certificate's default topic, encoded once.
    default_topic: Option<HeaderValue>,
    warnings: Vec<String>,
    pool: Arc<Pool>,
    timeouts: Timeouts,
    retry: RetryPolicy,
    budget: Mutex<f64>,
    counters: Counters,
    closing: AtomicBool,
    idle: Notify,
    force: watch::Sender<bool>,
    shutdown_report: Mutex<Option<ShutdownReport>>,
    shutdown_lock: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    resends: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Client");
        d.field("endpoint", &self.inner.endpoint);
        if let Some(tokens) = &self.inner.tokens {
            d.field("key_id", tokens.signer().key_id())
                .field("team_id", tokens.signer().team_id());
        }
        if let Some(cert) = &self.inner.certificate {
            d.field("certificate", &cert.info().subject);
        }
        d.field("credentials", &"[redacted]").finish()
    }
}

/// Marks a send finished, even when the caller drops its future: a
/// cancelled send counts as failed, so the counters always add up.
struct InFlight<'a> {
    inner: &'a Inner,
    finished: bool,
}
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.inner.counters.failed.fetch_add(1, Ordering::AcqRel);
        }
        self.inner.idle.notify_waiters();
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

    /// The current provider token (minted if due), with token
    /// authentication. Useful to hand a token to another tool such as curl.
    pub fn provider_token(&self) -> Option<ProviderToken> {
        self.inner.tokens.as_ref().map(|t| t.get())
    }

    /// The token cache, with token authentication.
    pub fn token_cache(&self) -> Option<&TokenCache> {
        self.inner.tokens.as_deref()
    }

    /// The client certificate's details, with certificate authentication.
    pub fn certificate(&self) -> Option<&CertificateInfo> {
        self.inner.certificate.as_ref().map(|c| c.info())
    }

    /// Warnings found when the client was built, such as a certificate
    /// expiring within 30 days. Also logged at WARN.
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// What the client has done so far.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        let sent = c.sent.load(Ordering::Acquire);
        let accepted = c.accepted.load(Ordering::Acquire);
        let rejected = c.rejected.load(Ordering::Acquire);
        let failed = c.failed.load(Ordering::Acquire);
        ClientStats {
            sent,
            accepted,
            rejected,
            failed,
            in_flight: sent.saturating_sub(accepted + rejected + failed),
            retries: c.retries.load(Ordering::Relaxed),
            resends: c.resends.load(Ordering::Relaxed),
            connections_opened: self.inner.pool.connections_opened(),
            tokens_minted: self.inner.tokens.as_ref().map_or(0, |t| t.mint_count()),
        }
    }

    /// Sends one notification and returns APNs' answer.
    ///
    /// `Ok` carries APNs' final answer, accepted or rejected (see
    /// [`Response::is_accepted`] and [`Response::error_for_status`]); `Err`
    /// means no final answer was obtained before the deadline. Waits for a
    /// free stream when every connection is at the server's limit.
    pub async fn send(&self, notification: &Notification) -> Result<Response> {
        let inner = &*self.inner;
        if inner.closing.load(Ordering::Acquire) {
            return Err(Error::Shutdown {
                may_have_been_delivered: false,
            });
        }
        inner.counters.sent.fetch_add(1, Ordering::AcqRel);
        let mut in_flight = InFlight {
            inner,
            finished: false,
        };
        let sent = Arc::new(AtomicBool::new(false));
        let mut force = inner.force.subscribe();
        let result = tokio::select! {
            // The abort is checked first, so a send resumed after it never
            // puts a request on the wire.
            biased;
            _ = force.wait_for(|forced| *forced) => Err(Error::Shutdown {
                may_have_been_delivered: sent.load(Ordering::Acquire),
            }),
            r = self.send_with_retries(notification, &sent) => r,
        };
        let counter = match &result {
            Ok(r) if r.is_accepted() => &inner.counters.accepted,
            Ok(_) => &inner.counters.rejected,
            Err(_) => &inner.counters.failed,
        };
        counter.fetch_add(1, Ordering::AcqRel);
        in_flight.finished = true;
        result
    }

    async fn send_with_retries(&self, n: &Notification, sent: &AtomicBool) -> Result<Response> {
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.timeouts.request;
        self.check_for_certificate(n)?;
        self.deposit_budget();
        let mut retries = 0u32;
        let mut resent = false;
        let mut reminted = false;
        let mut avoid = None;
        loop {
            let (conn, permit) = inner.pool.acquire(deadline, avoid.take()).await?;
            // The token is taken once a stream is ours, so a request that
            // waited carries the newest token.
            let token = inner.tokens.as_ref().map(|t| t.get());
            let request = self.build_request(n, token.as_ref())?;
            let result = conn
                .send(
                    &permit,
                    request,
                    n.payload.clone(),
                    deadline,
                    inner.timeouts.request,
                    sent,
                )
                .await;
            drop(permit);
            let response = match result {
                Ok(r) => r,
                Err(e)
                    if !e.may_have_been_delivered()
                        && matches!(e, Error::Connection { .. })
                        && !resent =>
                {
                    // Never processed by the server: safe to send again, once,
                    // preferably on another connection.
                    tracing::debug!(connection = conn.id(), error = %e, "resending a request the server did not process");
                    resent = true;
                    avoid = Some(conn.id());
                    sent.store(false, Ordering::Release);
                    inner.counters.resends.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(reason) = response.reason() else {
                if response.is_accepted() {
                    inner.pool.mark_healthy(&conn);
                }
                return Ok(response);
            };
            let wait = match reason.class() {
                ReasonClass::ExpiredToken => {
                    let (Some(tokens), Some(token)) = (&inner.tokens, &token) else {
                        return Ok(response);
                    };
                    // A fresh replacement reported expired too: re-minting
                    // cannot help, the clock is wrong. Once the replacement is
                    // 20 minutes old, a new mint is allowed again (the clock
                    // may have been fixed), so one bad moment does not block
                    // sending until the next refresh.
                    let fresh_replacement = token.is_replacement()
                        && tokens.age(token) < crate::auth::MIN_REFRESH_AFTER;
                    if reminted || fresh_replacement {
                        tracing::error!("a freshly minted provider token was reported expired; check this machine's clock");
                        return Err(Error::TokenExpiredAgain(Box::new(response)));
                    }
                    inner.pool.retire(&conn, false, "ExpiredProviderToken");
                    // However many requests saw this token expire, one re-mint.
                    tokens.invalidate(token);
                    tracing::info!("ExpiredProviderToken: minted a new token; retrying once on a new connection");
                    reminted = true;
                    sent.store(false, Ordering::Release);
                    continue;
                }
                ReasonClass::TokenUpdates | ReasonClass::RetryNewConnection => {
                    inner.pool.retire(&conn, true, reason.as_str());
                    Duration::ZERO
                }
                ReasonClass::Reconnect => {
                    inner.pool.retire(&conn, false, reason.as_str());
                    Duration::ZERO
                }
                ReasonClass::RetryLater => self.backoff(retries),
                _ => return Ok(response), // permanent: never retried
            };
            if retries >= inner.retry.max_retries
                || Instant::now() + wait >= deadline
                || !self.withdraw_budget()
            {
                return Ok(response);
            }
            retries += 1;
            inner.counters.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(reason = %reason, retry = retries, "retrying a transient rejection");
            sent.store(false, Ordering::Release);
            tokio::time::sleep(wait).await;
        }
    }

    fn backoff(&self, retries: u32) -> Duration {
        let p = &self.inner.retry;
        let base = p
            .backoff_min
            .saturating_mul(1u32 << retries.min(16))
            .min(p.backoff_max);
        base.mul_f64(
            0.5 + 0.5 * (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64,
        )
    }

    fn deposit_budget(&self) {
        let p = &self.inner.retry;
        let mut b = self.inner.budget.lock().unwrap_or_else(|e| e.into_inner());
        *b = (*b + p.budget_ratio).min(p.budget_reserve.max(1.0));
    }

    fn withdraw_budget(&self) -> bool {
        let mut b = self.inner.budget.lock().unwrap_or_else(|e| e.into_inner());
        if *b >= 1.0 {
            *b -= 1.0;
            true
        } else {
            tracing::warn!("retry budget exhausted; returning the rejection without retrying");
            false
        }
    }

    /// Sends a stream of notifications with at most `concurrency` in flight,
    /// yielding each result as it completes (not in input order). Memory is
    /// bounded by `concurrency`, not by the number of notifications.
    ///
    /// ```no_run
    /// # use apns_provider::{Client, Notification};
    /// # async fn run(client: Client, list: Vec<Notification>) {
    /// use futures_util::StreamExt;
    /// let mut results = client.send_many(futures_util::stream::iter(list), 1000);
    /// while let Some(outcome) = results.next().await {
    ///     println!("{} -> {:?}", outcome.notification.device_token(), outcome.result.map(|r| r.status()));
    /// }
    /// # }
    /// ```
    pub fn send_many<S>(
        &self,
        notifications: S,
        concurrency: usize,
    ) -> impl Stream<Item = SendOutcome> + Send + 'static
    where
        S: Stream<Item = Notification> + Send + 'static,
    {
        self.send_many_tagged(notifications.map(|n| ((), n)), concurrency)
            .map(|((), outcome)| outcome)
    }

    /// Like [`send_many`](Client::send_many), carrying a tag of yours (a line
    /// number, a database id) with each notification to its outcome.
    pub fn send_many_tagged<T, S>(
        &self,
        notifications: S,
        concurrency: usize,
    ) -> impl Stream<Item = (T, SendOutcome)> + Send + 'static
    where
        T: Send + 'static,
        S: Stream<Item = (T, Notification)> + Send + 'static,
    {
        let client = self.clone();
        notifications
            .map(move |(tag, notification)| {
                let client = client.clone();
                async move {
                    let started = std::time::Instant::now();
                    let result = client.send(&notification).await;
                    let outcome = SendOutcome {
                        notification,
                        result,
                        elapsed: started.elapsed(),
                    };
                    (tag, outcome)
                }
            })
            .buffer_unordered(concurrency.max(1))
    }

    /// Stops intake, waits up to `grace` for requests in flight, then
    /// abandons the rest with [`Error::Shutdown`] and closes the connections.
    ///
    /// Later sends fail at once with [`Error::Shutdown`]. Calling it again
    /// returns the first report.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let inner = &*self.inner;
        let _serial = inner.shutdown_lock.lock().await;
        if let Some(report) = *inner
            .shutdown_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            return report;
        }
        inner.closing.store(true, Ordering::Release);
        let in_flight_at_start = self.stats().in_flight;
        let finished_before = self.finished();
        let deadline = Instant::now() + grace;
        self.wait_idle(Some(deadline)).await;
        let completed = self.finished() - finished_before;
        if self.stats().in_flight > 0 {
            let _ = inner.force.send(true);
            self.wait_idle(None).await;
        }
        inner.pool.close();
        let stats = self.stats();
        let report = ShutdownReport {
            in_flight_at_start,
            completed: completed.min(in_flight_at_start),
            abandoned: in_flight_at_start.saturating_sub(completed),
            stats,
        };
        tracing::info!(?report, "APNs client shut down");
        *inner
            .shutdown_report
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(report);
        report
    }

    /// Abandons everything at once, without waiting: later sends fail with
    /// [`Error::Shutdown`], every send in progress resolves promptly with
    /// [`Error::Shutdown`] (saying whether it was on the wire), and from
    /// the moment this returns no new request goes on the wire. For a
    /// second Ctrl-C; [`shutdown`](Client::shutdown) is the graceful way.
    pub fn abort(&self) {
        let inner = &*self.inner;
        inner.closing.store(true, Ordering::Release);
        let _ = inner.force.send(true);
        inner.pool.close();
    }

    fn finished(&self) -> u64 {
        let s = self.stats();
        s.accepted + s.rejected + s.failed
    }

    async fn wait_idle(&self, deadline: Option<Instant>) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stats().in_flight == 0 {
                return;
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, notified).await.is_err() {
                        return;
                    }
                }
                None => notified.await,
            }
        }
    }

    /// With a certificate: the topic must be one it allows, and the push
    /// type must not need token authentication.
    fn check_for_certificate(&self, n: &Notification) -> Result<()> {
        let Some(cert) = &self.inner.certificate else {
            return Ok(());
        };
        let info = cert.info();
        if n.push_type.requires_token_auth() {
            return Err(Error::invalid(
                "push_type",
                format!(
                    "{} pushes need token authentication (a .p8 key); certificates cannot send them",
                    n.push_type
                ),
            ));
        }
        match &n.topic {
            Some(topic) if !info.allows_topic(topic.as_str()) => Err(Error::invalid(
                "topic",
                format!(
                    "{topic} is not allowed by the certificate, which allows {}",
                    info.allowed_topics().join(", ")
                ),
            )),
            Some(_) => Ok(()),
            None if self.inner.default_topic.is_some() => Ok(()),
            None => Err(Error::invalid(
                "topic",
                format!(
                    "required: the certificate allows several topics ({})",
                    info.allowed_topics().join(", ")
                ),
            )),
        }
    }

    fn build_request(
        &self,
        n: &Notification,
        token: Option<&ProviderToken>,
    ) -> Result<http::Request<()>> {
        if n.topic.is_none() && self.inner.default_topic.is_none() {
            return Err(Error::invalid(
                "topic",
                "required with token authentication; set it to the app's bundle id (plus the push type's suffix)",
            ));
        }
        let uri = http::Uri::from_parts({
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(http::uri::Scheme::HTTPS);
            parts.authority = Some(self.inner.authority.clone());
            parts.path_and_query = Some(n.path.clone());
            parts
        })
        .map_err(|e| Error::Protocol(e.to_string()))?;
        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.reserve(n.headers.len() + 2);
        // `authorization` is marked sensitive: HPACK sends it never-indexed.
        // Certificate connections send none.
        if let Some(token) = token {
            headers.insert(AUTHORIZATION, token.header_value().clone());
        }
        for (name, value) in n.headers.iter() {
            headers.insert(name.clone(), value.clone());
        }
        if n.topic.is_none() {
            if let Some(topic) = &self.inner.default_topic {
                headers.insert(HeaderName::from_static("apns-topic"), topic.clone());
            }
        }
        Ok(request)
    }
}

/// Configures a [`Client`]. Errors in any setting are reported by
/// [`build`](ClientBuilder::build).
#[must_use]
pub struct ClientBuilder {
    endpoint: Endpoint,
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
                backoff_min: Duration::from_secs(1),
                backoff_max: Duration::from_secs(60),
                keepalive: Some(Keepalive {
                    idle: DEFAULT_KEEPALIVE_IDLE,
                    timeout: DEFAULT_KEEPALIVE_TIMEOUT,
                }),
                max_pending: None,
                resolve: None,
            },
            retry: RetryPolicy::default(),
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

    /// Authenticates with a TLS client certificate instead of tokens (for
    /// teams still moving to `.p8` keys). No `authorization` header is sent;
    /// the topic defaults to the certificate's when it allows exactly one.
    pub fn certificate(mut self, certificate: ClientCertificate) -> Self {
        self.certificate = Some(certificate);
        self
    }

    /// Connects to `addr` when the endpoint is `host:port`, instead of
    /// resolving the host (like curl's `--resolve HOST:PORT:ADDR`); TLS still
    /// verifies the host name. An entry for `api.development.push.apple.com`
    /// also applies to the sandbox host, its alias.
    pub fn resolve(mut self, host: &str, port: u16, addr: std::net::SocketAddr) -> Self {
        self.resolve = Some((host.to_ascii_lowercase(), port, addr));
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

    /// Connections in the pool (default 1). They open lazily, when the live
    /// ones are at the server's stream limit.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool.size = connections.max(1);
        self
    }

    /// Backoff between connection attempts after failures: jittered,
    /// doubling from `min` (default 1 s) to `max` (default 60 s), reset by
    /// an accepted request.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.pool.backoff_min = min;
        self.pool.backoff_max = max.max(min);
        self
    }

    /// Sends a PING after `idle` without traffic and retires the connection
    /// when no answer comes within `timeout` (defaults 60 s and 10 s).
    pub fn keepalive(mut self, idle: Duration, timeout: Duration) -> Self {
        self.pool.keepalive = Some(Keepalive { idle, timeout });
        self
    }

    /// Turns keepalive PINGs off.
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
        let (tokens, certificate) = match (self.signer, self.certificate) {
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
                (Some(Arc::new(tokens)), None)
            }
            (None, Some(cert)) => (None, Some(cert)),
        };
        let mut warnings = Vec::new();
        let mut default_topic = None;
        if let Some(cert) = &certificate {
            let info = cert.info();
            let now = self
                .clock
                .as_ref()
                .map_or_else(std::time::SystemTime::now, |c| c.system_time());
            let date = |secs: i64| crate::response::format_utc_millis(secs.max(0) as u64 * 1000);
            if info.is_expired(now) {
                return Err(Error::Config(format!(
                    "the push certificate for {} expired on {}: renew it in the Apple Developer account, or move to token authentication",
                    info.bundle_id.as_deref().unwrap_or(&info.subject),
                    date(info.not_after)
                )));
            }
            let now_secs = now
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            if now_secs < info.not_before {
                return Err(Error::Config(format!(
                    "the push certificate is not valid before {}: check this machine's clock",
                    date(info.not_before)
                )));
            }
            if let Some(env) = self.endpoint.environment() {
                if !info.environment.allows(env) {
                    return Err(Error::Config(format!(
                        "a {:?} certificate cannot be used with the {env} environment (APNs would answer BadCertificateEnvironment)",
                        info.environment
                    )));
                }
            }
            if let Some(w) = info.expiry_warning(now, Duration::from_secs(30 * 86_400)) {
                tracing::warn!("{w}");
                warnings.push(w);
            }
            default_topic = info
                .default_topic()
                .and_then(|t| HeaderValue::from_str(&t).ok());
        }
        let tls = tls::client_config_with_cert(
            self.webpki_roots,
            &self.extra_roots,
            certificate.as_ref(),
        )?;
        if let Some((host, port, addr)) = &self.resolve {
            let endpoint_host = self.endpoint.host();
            let alias = |h: &str| {
                if h == crate::transport::DEVELOPMENT_ALIAS_HOST {
                    crate::transport::SANDBOX_HOST.to_string()
                } else {
                    h.to_string()
                }
            };
            if alias(host) == alias(endpoint_host) && *port == self.endpoint.port() {
                self.pool.resolve = Some(*addr);
            }
        }
        let authority = self
            .endpoint
            .authority()
            .parse()
            .map_err(|_| Error::Config(format!("invalid endpoint {}", self.endpoint)))?;
        let pool = Arc::new(Pool::new(
            self.endpoint.clone(),
            tls,
            self.timeouts,
            self.pool,
        ));
        let budget = self.retry.budget_reserve;
        Ok(Client {
            inner: Arc::new(Inner {
                endpoint: self.endpoint,
                authority,
                tokens,
                certificate,
                default_topic,
                warnings,
                pool,
                timeouts: self.timeouts,
                retry: self.retry,
                budget: Mutex::new(budget),
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
