//! An authenticated HTTP gateway in front of one or more [`Client`](crate::Client)s, for
//! services in other languages, cron jobs and back-offices (`apns serve`).
//!
//! - `POST /v1/notifications` takes one notification object or an array of
//!   up to 10,000, with the fields of a tokens-file JSON line
//!   ([`NotificationSpec`](crate::wire::NotificationSpec)) plus `app`. Every
//!   item is validated first: one invalid item gets `422` naming its index
//!   and field, and nothing is sent. Then the batch is dispatched:
//!   [`SendNow`] answers `200` with one result per item, in order;
//!   `Enqueue` (feature `worker`) adds them to a Redis stream and answers
//!   `202` with job ids.
//! - `POST /v1/broadcasts` and `/v1/channels` (create, list, show, delete):
//!   broadcast push for iOS 18 Live Activities, through the apps' clients.
//! - `Authorization: Bearer <token>` is required ([`ApiTokens`]); there is
//!   no anonymous mode. `/healthz` and `/readyz` are open; `/metrics` is
//!   not, unless made public.
//! - Limits ([`Limits`]): body size (413), items per request (413),
//!   request time (504), requests at once (503 with `Retry-After`; never a
//!   queue), connections at once, the time to a connection's first request
//!   and the idle time of a connection. When every connection slot is
//!   taken, a new connection evicts the longest idle one (one that never
//!   sent a request first), so silent clients cannot keep real ones out.
//! - `/readyz` checks every app's connection to APNs and its recent sends:
//!   not ready when, within the last minute, its last 3 sends in a row got
//!   no answer from APNs, or APNs refused the credentials of the last 2
//!   (see [`ServedApp::record_outcome`]).
//! - `/metrics` counts every answer by route and status
//!   (`apns_gateway_requests_total`), the refusals (401, 413, 503) included.
//! - HTTP/1.1 and HTTP/2 (axum on hyper), over TLS when configured; a
//!   graceful stop, bounded by the shutdown grace.
//!
//! ```no_run
//! # async fn run(client: apns_provider::Client) -> apns_provider::Result<()> {
//! use apns_provider::gateway::{ApiTokens, App, Gateway};
//! use apns_provider::wire::SpecDefaults;
//! let gateway = Gateway::builder()
//!     .app("shop", App::new(client).with_defaults(SpecDefaults::builder().topic("com.example.shop").build()?))
//!     .api_tokens(ApiTokens::from_file("/etc/apns/api-tokens")?)
//!     .build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await
//!     .map_err(|e| apns_provider::Error::Config(e.to_string()))?;
//! gateway.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`Gateway`], its builder |
//! | `apps.rs` | [`ServedApp`] (an [`App`], `crate::app`'s, with its name, metrics and readiness), the table of them |
//! | `api_tokens.rs` | [`ApiTokens`]: the API bearer tokens clients of the gateway send (not APNs provider auth) |
//! | `state.rs` | what every handler shares; [`Limits`] |
//! | `dispatch.rs` | [`Dispatch`], [`SendNow`], `Enqueue`, [`Batch`], [`Reply`] |
//! | `body.rs` | reading a body once, scanning it in place (items counted, fields borrowed) |
//! | `validate.rs` | request bodies to batches, problems by index and field |
//! | `broadcast.rs` | the broadcast and channel routes |
//! | `routes.rs` | the axum router, authentication and limits, the request counter, readiness |
//! | `ready.rs` | what readiness learns from recent sends |
//! | `server.rs` | the accept loop, TLS, the graceful stop |
//! | `conns.rs` | connection slots, eviction, first-request and idle deadlines |
//!
//! No two files import each other: `routes.rs` mounts `broadcast.rs`, and
//! both take their state from `state.rs`; no file imports `mod.rs`.

mod api_tokens;
mod apps;
mod body;
mod broadcast;
mod conns;
mod dispatch;
mod ready;
mod routes;
mod server;
mod state;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use crate::app::App;
pub use api_tokens::{ApiTokens, MIN_TOKEN_LEN};
pub use apps::ServedApp;
pub use body::MAX_FIELD_TEXT;
#[cfg(feature = "worker")]
pub use dispatch::Enqueue;
pub use dispatch::{Batch, Dispatch, Item, Reply, SendNow};
pub use server::tls_config_from_pem_files;
pub use state::{Limits, DEFAULT_MAX_ITEMS};
pub use validate::{Problem, Refusal};

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Configures a [`Gateway`].
#[must_use]
pub struct GatewayBuilder {
    apps: BTreeMap<String, App>,
    // `None` until set: then the first app added.
    default_app: Option<Option<String>>,
    first_app: Option<String>,
    tokens: Option<ApiTokens>,
    limits: Limits,
    tls: Option<Arc<ServerConfig>>,
    metrics: Option<Metrics>,
    metrics_public: bool,
    dispatch: Option<Arc<dyn Dispatch>>,
    shutdown_grace: Duration,
}

impl fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("apps", &self.apps.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// A configured gateway; [`serve`](Gateway::serve) runs it.
pub struct Gateway {
    shared: Arc<state::Shared>,
    tls: Option<Arc<ServerConfig>>,
    metrics_public: bool,
    shutdown_grace: Duration,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("apps", &self.shared.apps.map.keys().collect::<Vec<_>>())
            .field("dispatch", &self.shared.dispatch.name())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Starts configuring a gateway.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            apps: BTreeMap::new(),
            default_app: None,
            first_app: None,
            tokens: None,
            limits: Limits::default(),
            tls: None,
            metrics: None,
            metrics_public: false,
            dispatch: None,
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// The apps served, by name.
    pub fn apps(&self) -> impl Iterator<Item = &ServedApp> {
        self.shared.apps.map.values().map(|a| &**a)
    }

    /// Validates a `POST /v1/notifications` body as the gateway does
    /// (shape, item count, every item's fields), without sending anything:
    /// for tools, tests and fuzzing. The limits are the gateway's, less the
    /// body size (checked while reading the request).
    pub fn validate(&self, body: &[u8]) -> std::result::Result<Batch, Refusal> {
        validate::batch(body, &self.shared.apps, self.shared.limits.max_items)
    }

    /// The metrics registry the gateway serves at `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Serves on `listener` until `shutdown` resolves; then stops
    /// accepting, closes the connections without a request in progress at
    /// once, lets the requests in progress finish within the shutdown
    /// grace (a hard limit: after it, every connection is dropped, with a
    /// warning naming how many requests were cut), and shuts the apps'
    /// clients down, closing their connections to APNs.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let router = routes::router(self.shared.clone(), self.metrics_public);
        let limits = &self.shared.limits;
        let conn_limits = server::ConnLimits {
            max_connections: limits.max_connections,
            first_request: limits.first_request_timeout,
            idle: limits.idle_timeout,
        };
        server::run(
            router,
            listener,
            self.tls.clone(),
            conn_limits,
            shutdown,
            self.shutdown_grace,
        )
        .await;
        for app in self.shared.apps.map.values() {
            app.client().shutdown(Duration::from_secs(5)).await;
        }
    }
}

impl GatewayBuilder {
    /// Serves `app` under `name` (what requests give as `app`). The first
    /// app added is the default unless [`default_app`](Self::default_app)
    /// says otherwise.
    pub fn app(mut self, name: impl Into<String>, app: App) -> Self {
        let name = name.into();
        self.first_app.get_or_insert_with(|| name.clone());
        self.apps.insert(name, app);
        self
    }

    /// The app of requests that name none (`None`: they must name one,
    /// unless only one app is served).
    pub fn default_app(mut self, name: Option<String>) -> Self {
        self.default_app = Some(name);
        self
    }

    /// The API tokens accepted (required).
    pub fn api_tokens(mut self, tokens: ApiTokens) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The limits (see [`Limits`] for the defaults).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves HTTPS with this configuration (see
    /// [`tls_config_from_pem_files`]); plain HTTP otherwise.
    pub fn tls(mut self, config: Arc<ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Records into `metrics` (a new registry otherwise), e.g. one shared
    /// with other parts of the process.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Serves `/metrics` without authentication (for a Prometheus that
    /// cannot send a bearer token; bind the gateway to a private network).
    pub fn metrics_public(mut self, public: bool) -> Self {
        self.metrics_public = public;
        self
    }

    /// What to do with valid batches ([`SendNow`] by default).
    pub fn dispatch(mut self, dispatch: Arc<dyn Dispatch>) -> Self {
        self.dispatch = Some(dispatch);
        self
    }

    /// How long requests in progress may take to finish after the stop
    /// signal (default 30 s). Idle connections do not wait for it.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<Gateway> {
        let tokens = self.tokens.ok_or_else(|| {
            Error::Config("the gateway needs API tokens: there is no anonymous mode".into())
        })?;
        if self.apps.is_empty() {
            return Err(Error::Config(
                "the gateway needs at least one app (a client to send with)".into(),
            ));
        }
        let default_app = self.default_app.unwrap_or(self.first_app);
        if let Some(d) = &default_app {
            if !self.apps.contains_key(d) {
                return Err(Error::Config(format!(
                    "the default app {d:?} is not served"
                )));
            }
        }
        state::check_limits(&self.limits)?;
        let metrics = self.metrics.unwrap_or_default();
        metrics.show_gateway_requests();
        let map = self
            .apps
            .into_iter()
            .map(|(name, app)| {
                let watched = metrics.watch(&name, app.client());
                let served = ServedApp::new(name.clone(), app, Some(watched));
                (name, Arc::new(served))
            })
            .collect();
        let slots = Arc::new(Semaphore::new(self.limits.max_concurrent_requests));
        Ok(Gateway {
            shared: Arc::new(state::Shared {
                apps: apps::Apps {
                    map,
                    default: default_app,
                },
                tokens,
                limits: self.limits,
                dispatch: self.dispatch.unwrap_or_else(|| Arc::new(SendNow)),
                metrics,
                slots,
            }),
            tls: self.tls,
            metrics_public: self.metrics_public,
            shutdown_grace: self.shutdown_grace,
        })
    }
}
