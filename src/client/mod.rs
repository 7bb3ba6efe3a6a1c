//! The APNs client: build once, clone freely, send.
//!
//! What the client guarantees (also in the README's Guarantees):
//! - every `send` resolves, with an answer or a typed error, before its
//!   deadline (`request_timeout`, default 30 s, covering waits and retries);
//! - it never has more requests on a connection than the server allows;
//! - it resends, until the deadline, what the server provably never
//!   processed (`REFUSED_STREAM`, streams above a GOAWAY's last stream);
//! - it retries transient rejections (500, 503, `Shutdown`,
//!   `TooManyProviderTokenUpdates`, `IdleTimeout`), probing one request at a
//!   time while they last, within a retry budget; `ExpiredProviderToken`
//!   once after one re-mint; never permanent rejections;
//! - a request on the wire when its connection died is *not* resent unless
//!   [`RetryPolicy::resend_unknown`] asks for it: the error says it may have
//!   been delivered.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`Client`], its accessors, `send` and `send_many` |
//! | `builder.rs` | [`ClientBuilder`] |
//! | `attempt.rs` | the I/O loop of one request (push, broadcast or channel request): leases, requests, sends |
//! | `decide.rs` | what follows each attempt (retry, resend, re-mint, stop), decided without I/O |
//! | `broadcast.rs` | [`Client::broadcast`], and [`Channels`]: channel management on its own pool |
//! | `retry.rs` | [`RetryPolicy`] and the retry budget |
//! | `shutdown.rs` | graceful `shutdown` and immediate `abort` |
//! | `stats.rs` | [`ClientStats`], [`SendOutcome`], [`ShutdownReport`] |

mod attempt;
mod broadcast;
mod builder;
mod decide;
mod retry;
mod shutdown;
mod stats;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use http::header::HeaderValue;
use tokio::sync::{watch, Notify};

use crate::auth::{CertificateInfo, ClientCertificate, ProviderToken, TokenCache};
use crate::error::{Error, Result};
use crate::notification::Notification;
use crate::response::Response;
use crate::transport::connection::Timeouts;
use crate::transport::pool::Pool;
use crate::transport::Endpoint;

pub use crate::transport::snapshot::{ConnectionInfo, ConnectionState};
pub use broadcast::Channels;
pub use builder::{
    ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEPALIVE_IDLE, DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_LIVENESS_SILENCE, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TLS_TIMEOUT, MAX_POOL_SIZE,
};
pub use retry::RetryPolicy;
pub use stats::{ClientStats, SendOutcome, ShutdownReport, RETRY_REASONS};

use attempt::Outgoing;
use broadcast::ChannelsPool;
use retry::RetryBudget;
use stats::Counters;

/// Sends notifications to APNs over a pool of long-lived HTTP/2
/// connections, authenticated with provider tokens (a `.p8` key) or a TLS
/// client certificate.
///
/// A `Client` is immutable once built and cheap to clone (clones share the
/// pool, the token cache and the counters). Build one per (team, key,
/// environment), or per certificate, and keep it for the life of the
/// process: a connection never carries two teams' tokens.
///
/// ```no_run
/// use apns_provider::{Client, Environment, Notification, Payload, SigningKey};
///
/// # async fn run() -> apns_provider::Result<()> {
/// let client = Client::builder()
///     .environment(Environment::Sandbox)
///     .token_auth(SigningKey::from_file("AuthKey_ABCDE12345.p8")?, "ABCDE12345", "TEAM123456")
///     .build()?;
/// let notification = Notification::builder(
///         "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0",
///         Payload::alert("Hello"),
///     )
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
    credentials: Credentials,
    warnings: Vec<String>,
    pool: Arc<Pool>,
    // Channel management: its own host and pool, opened at the first
    // channel request.
    channels: ChannelsPool,
    timeouts: Timeouts,
    retry: RetryPolicy,
    budget: RetryBudget,
    counters: Counters,
    closing: AtomicBool,
    idle: Notify,
    force: watch::Sender<bool>,
    shutdown_report: Mutex<Option<ShutdownReport>>,
    shutdown_lock: tokio::sync::Mutex<()>,
}

/// How the client authenticates: one or the other, never both.
// One per client, built once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Credentials {
    /// Provider tokens, minted and cached.
    Token(Arc<TokenCache>),
    /// A TLS client certificate; `default_topic` is its only topic, when it
    /// has one, encoded once.
    Certificate {
        certificate: ClientCertificate,
        default_topic: Option<HeaderValue>,
    },
}

impl Credentials {
    fn tokens(&self) -> Option<&Arc<TokenCache>> {
        match self {
            Credentials::Token(tokens) => Some(tokens),
            Credentials::Certificate { .. } => None,
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Client");
        d.field("endpoint", &self.inner.endpoint);
        match &self.inner.credentials {
            Credentials::Token(tokens) => d
                .field("key_id", tokens.signer().key_id())
                .field("team_id", tokens.signer().team_id()),
            Credentials::Certificate { certificate, .. } => {
                d.field("certificate", &certificate.info().subject)
            }
        };
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
            Counters::bump(&self.inner.counters.failed);
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
        self.inner.credentials.tokens().map(|t| t.get())
    }

    /// The token cache, with token authentication.
    pub fn token_cache(&self) -> Option<&TokenCache> {
        self.inner.credentials.tokens().map(|t| &**t)
    }

    /// The client certificate's details, with certificate authentication.
    pub fn certificate(&self) -> Option<&CertificateInfo> {
        match &self.inner.credentials {
            Credentials::Certificate { certificate, .. } => Some(certificate.info()),
            Credentials::Token(_) => None,
        }
    }

    /// Warnings found when the client was built, such as a certificate
    /// expiring within 30 days: show them to your operator. Also logged at
    /// INFO.
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// What the client has done so far.
    pub fn stats(&self) -> ClientStats {
        let inner = &*self.inner;
        let channels = inner.channels.opened();
        inner.counters.snapshot(
            inner.pool.probes_sent() + channels.map_or(0, |p| p.probes_sent()),
            inner.pool.connections_opened() + channels.map_or(0, |p| p.connections_opened()),
            inner.credentials.tokens().map_or(0, |t| t.mint_count()),
        )
    }

    /// Each slot of the connection pool: its state, the server's stream
    /// limit and the requests in flight. Cheap (a brief lock of the pool),
    /// meant for metrics and health checks, not for every send.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.inner.pool.connections()
    }

    /// Retries of transient answers so far, by reason (in
    /// [`RETRY_REASONS`] order); they add up to [`ClientStats::retries`].
    pub fn retries_by_reason(&self) -> Vec<(&'static str, u64)> {
        self.inner.counters.retries_by_reason()
    }

    /// The HTTPS proxy connections go through, if one applies to the
    /// endpoint.
    pub fn proxy(&self) -> Option<&crate::transport::Proxy> {
        self.inner.pool.proxy()
    }

    /// Makes sure a connection to APNs is open, opening one if needed
    /// (TCP, proxy, TLS and HTTP/2 handshakes), without sending anything.
    /// Returns the connection error when none can be made before the
    /// request timeout. For readiness checks, and to spare the first send
    /// the handshakes.
    pub async fn warm_up(&self) -> Result<()> {
        let inner = &*self.inner;
        if inner.closing.load(Ordering::Acquire) {
            return Err(Error::Shutdown {
                may_have_been_delivered: false,
            });
        }
        let deadline = tokio::time::Instant::now() + inner.timeouts.request;
        // A stream leased and given back unused: nothing goes on the wire.
        inner.pool.acquire(deadline, None).await.map(drop)
    }

    /// Sends one notification and returns APNs' answer.
    ///
    /// `Ok` carries APNs' final answer, accepted or rejected (see
    /// [`Response::is_accepted`] and [`Response::error_for_status`]); `Err`
    /// means no final answer was obtained before the deadline. Waits for a
    /// free stream when every connection is at the server's limit.
    pub async fn send(&self, notification: &Notification) -> Result<Response> {
        let sent = AtomicBool::new(false);
        // Boxed: the attempt's state machine is a few KiB, and callers that
        // keep thousands of sends in flight (`send_many`, a
        // `FuturesUnordered`) would otherwise copy it on every move.
        let work = Box::pin(self.attempt(Outgoing::Push(notification), &sent));
        self.guarded(&sent, true, work).await
    }

    /// Runs one request to its end: refused once the client is shut down,
    /// abandoned at once by [`abort`](Client::abort), and, when `counted`
    /// (a notification or a broadcast), counted in [`ClientStats`] so that
    /// `shutdown` waits for it.
    async fn guarded(
        &self,
        sent: &AtomicBool,
        counted: bool,
        work: impl Future<Output = Result<Response>>,
    ) -> Result<Response> {
        let inner = &*self.inner;
        if inner.closing.load(Ordering::Acquire) {
            return Err(Error::Shutdown {
                may_have_been_delivered: false,
            });
        }
        if counted {
            Counters::bump(&inner.counters.sent);
        }
        let mut in_flight = InFlight {
            inner,
            finished: !counted,
        };
        let mut force = inner.force.subscribe();
        let result = tokio::select! {
            // The abort is checked first, so a send resumed after it never
            // puts a request on the wire.
            biased;
            _ = force.wait_for(|forced| *forced) => Err(Error::Shutdown {
                may_have_been_delivered: sent.load(Ordering::Acquire),
            }),
            r = work => r,
        };
        if counted {
            let counter = match &result {
                Ok(r) if r.is_accepted() => &inner.counters.accepted,
                Ok(_) => &inner.counters.rejected,
                Err(_) => &inner.counters.failed,
            };
            Counters::bump(counter);
        }
        in_flight.finished = true;
        result
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
    ///
    /// ```no_run
    /// # use apns_provider::{Client, Notification};
    /// # async fn run(client: Client, rows: Vec<(u64, Notification)>) {
    /// use futures_util::StreamExt;
    /// let mut results = client.send_many_tagged(futures_util::stream::iter(rows), 500);
    /// while let Some((row_id, outcome)) = results.next().await {
    ///     println!("row {row_id}: {:?}", outcome.result.map(|r| r.status()));
    /// }
    /// # }
    /// ```
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
}
