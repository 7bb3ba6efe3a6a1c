//! Prometheus metrics of a long-running sender (`apns serve`, `apns send
//! --metrics-listen`, a worker): one registry, readings taken from each
//! [`Client`] at scrape time, outcomes recorded by the sending loop, and a
//! small `/metrics` listener.
//!
//! | metric | type | labels | what it counts |
//! |---|---|---|---|
//! | `apns_notifications_total` | counter | `outcome`, `reason`, `push_type`, `app` | notifications finished: `accepted`, `rejected` (with APNs' reason) or `failed` (with the error's kind) |
//! | `apns_request_duration_seconds` | histogram | `app` | time from `send` to its result, waits and retries included |
//! | `apns_in_flight` | gauge | `app` | notifications being sent now |
//! | `apns_connections` | gauge | `app`, `state` | pool slots by state: `open`, `connecting`, `draining`, `backoff`, `idle` |
//! | `apns_stream_limit` | gauge | `app`, `slot` | each live connection's `SETTINGS_MAX_CONCURRENT_STREAMS` |
//! | `apns_connections_opened_total` | counter | `app` | connections opened |
//! | `apns_retries_total` | counter | `app`, `reason` | retries of transient answers |
//! | `apns_resends_total` | counter | `app` | resends of requests APNs never processed |
//! | `apns_token_mints_total` | counter | `app` | provider tokens minted |
//! | `apns_token_age_seconds` | gauge | `app` | age of the current provider token |
//! | `apns_queue_pending` | gauge | | jobs waiting in the queue (set by a worker) |
//! | `apns_gateway_requests_total` | counter | `route`, `status` | answers of `apns serve`, by route template (`other` for unknown paths) and HTTP status, refusals (401, 413, 503) included |
//!
//! The readings of a client cost nothing on its send path: they are taken
//! when Prometheus scrapes. Recording an outcome is a hash lookup and an
//! atomic increment, without allocation.
//!
//! ```no_run
//! # async fn run(client: apns_provider::Client, n: apns_provider::Notification) -> std::io::Result<()> {
//! use apns_provider::metrics::Metrics;
//! let metrics = Metrics::new();
//! let app = metrics.watch("default", &client);
//! let server = metrics.listen("127.0.0.1:9464".parse().unwrap()).await?;
//! let started = std::time::Instant::now();
//! let result = client.send(&n).await;
//! app.record(n.push_type(), &result, started.elapsed());
//! println!("{}", metrics.encode()); // what GET /metrics answers
//! server.stop().await;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

use crate::client::{Client, ConnectionState};
use crate::error::{Error, Result};
use crate::notification::PushType;
use crate::response::{Reason, Response};

/// The `Content-Type` of [`Metrics::encode`]'s text (Prometheus 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Histogram buckets of `apns_request_duration_seconds`: APNs answers in
/// milliseconds; waits for a stream, retries and backoffs take seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Connections a `/metrics` listener serves at once; more wait in the
/// kernel's backlog.
const MAX_SCRAPERS: usize = 16;

/// The metrics registry of a process. Cheap to clone (clones share it).
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

struct Shared {
    registry: Registry,
    notifications: Family<NotificationLabels, Counter>,
    durations: Family<AppLabel, Histogram, fn() -> Histogram>,
    watched: Arc<Watched>,
}

/// The labels of `apns_gateway_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GatewayLabels {
    route: &'static str,
    status: u16,
}

impl EncodeLabelSet for GatewayLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::result::Result<(), fmt::Error> {
        ("route", self.route).encode(encoder.encode_label())?;
        ("status", self.status as u64).encode(encoder.encode_label())
    }
}

/// What the scrape-time collector reads.
#[derive(Default)]
struct Watched {
    clients: Mutex<Vec<(Arc<str>, Client)>>,
    queue_pending: AtomicI64,
    has_queue: AtomicBool,
    gateway_requests: Family<GatewayLabels, Counter>,
    has_gateway: AtomicBool,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn new_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Metrics {
    /// An empty registry with every metric of the [module](self) table.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "apns_notifications",
            "Notifications finished, by outcome (accepted, rejected, failed), APNs' reason or the error's kind, push type and app",
            notifications.clone(),
        );
        let durations =
            Family::<AppLabel, Histogram, fn() -> Histogram>::new_with_constructor(new_histogram);
        registry.register(
            "apns_request_duration_seconds",
            "Time from send to result per notification, waits for a stream and retries included",
            durations.clone(),
        );
        let watched = Arc::new(Watched::default());
        registry.register_collector(Box::new(ClientCollector {
            watched: watched.clone(),
        }));
        Metrics {
            shared: Arc::new(Shared {
                registry,
                notifications,
                durations,
                watched,
            }),
        }
    }

    /// Reads `client`'s state at each scrape under the label `app`, and
    /// returns the handle that records its outcomes.
    pub fn watch(&self, app: &str, client: &Client) -> AppMetrics {
        let app: Arc<str> = Arc::from(app);
        let mut clients = self
            .shared
            .watched
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        clients.retain(|(a, _)| **a != *app);
        clients.push((app.clone(), client.clone()));
        AppMetrics {
            app,
            metrics: self.clone(),
        }
    }

    /// A handle recording outcomes under the label `app`, for a sender
    /// whose client is watched elsewhere (or not at all).
    pub fn app(&self, app: &str) -> AppMetrics {
        AppMetrics {
            app: Arc::from(app),
            metrics: self.clone(),
        }
    }

    /// Sets `apns_queue_pending` (jobs waiting in a queue). The metric
    /// appears once set.
    pub fn set_queue_pending(&self, jobs: i64) {
        let w = &self.shared.watched;
        w.queue_pending.store(jobs, Ordering::Relaxed);
        w.has_queue.store(true, Ordering::Relaxed);
    }

    /// Counts one answer of a gateway (`apns_gateway_requests_total`):
    /// `route` is the route's template (a fixed set, such as
    /// `/v1/notifications`, or `other`), so that the label stays bounded.
    /// The metric appears once a gateway serves with this registry.
    pub fn gateway_request(&self, route: &'static str, status: u16) {
        let w = &self.shared.watched;
        w.has_gateway.store(true, Ordering::Relaxed);
        w.gateway_requests
            .get_or_create(&GatewayLabels { route, status })
            .inc();
    }

    /// Shows `apns_gateway_requests_total` even before the first request.
    #[cfg(feature = "gateway")]
    pub(crate) fn show_gateway_requests(&self) {
        self.shared
            .watched
            .has_gateway
            .store(true, Ordering::Relaxed);
    }

    /// Every metric, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing to a String cannot fail; a collector error would be ours.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.shared.registry)
        {
            tracing::error!("cannot encode the metrics: {e}");
        }
        text
    }

    /// Serves `GET /metrics` on `listener` (HTTP/1.1, no authentication:
    /// bind it to loopback or a private interface) until `shutdown`
    /// resolves.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let slots = Arc::new(Semaphore::new(MAX_SCRAPERS));
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => return,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let stream = tokio::select! {
                _ = &mut shutdown => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: pause, go on.
                        tracing::warn!("metrics listener: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(metrics.answer(req.method(), req.uri().path())) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                drop(permit);
            });
        }
    }

    /// Binds `addr` and serves `/metrics` there in the background, until
    /// the returned handle is stopped or dropped.
    pub async fn listen(&self, addr: SocketAddr) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let metrics = self.clone();
        let task = tokio::spawn(async move {
            metrics
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(MetricsServer {
            local_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The answer to one request of the listener.
    fn answer(&self, method: &http::Method, path: &str) -> hyper::Response<Full<Bytes>> {
        let (status, content_type, body) = match (method, path) {
            (&http::Method::GET, "/metrics") => (http::StatusCode::OK, CONTENT_TYPE, self.encode()),
            (_, "/metrics") => (
                http::StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "use GET /metrics\n".to_string(),
            ),
            _ => (
                http::StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found: the metrics are at /metrics\n".to_string(),
            ),
        };
        let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        response
    }
}

/// A background `/metrics` listener; see [`Metrics::listen`].
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MetricsServer {
    /// The address it listens on (with the port picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting scrapes and waits for the listener to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Records the outcomes of one app's notifications; see
/// [`Metrics::watch`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppMetrics {
    app: Arc<str>,
    metrics: Metrics,
}

impl AppMetrics {
    /// The app label.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Counts one finished notification (`apns_notifications_total`) and
    /// its duration (`apns_request_duration_seconds`).
    pub fn record(&self, push_type: PushType, result: &Result<Response>, elapsed: Duration) {
        let (outcome, reason) = match result {
            Ok(r) if r.is_accepted() => ("accepted", ""),
            Ok(r) => ("rejected", reason_label(r)),
            Err(e) => ("failed", error_kind(e)),
        };
        let labels = NotificationLabels {
            outcome,
            reason,
            push_type: push_type.as_str(),
            app: self.app.clone(),
        };
        let shared = &self.metrics.shared;
        shared.notifications.get_or_create(&labels).inc();
        shared
            .durations
            .get_or_create(&AppLabel(self.app.clone()))
            .observe(elapsed.as_secs_f64());
    }
}

/// APNs' reason as a label: the documented ones as spelled, an unknown one
/// as `Other` (a label must not take unbounded values), a missing one as
/// the status.
fn reason_label(r: &Response) -> &'static str {
    match r.reason() {
        Some(reason) => Reason::KNOWN
            .iter()
            .find(|k| *k == reason)
            .map_or("Other", |k| k.as_str()),
        None => match r.status() {
            400 => "400",
            403 => "403",
            404 => "404",
            405 => "405",
            410 => "410",
            413 => "413",
            429 => "429",
            500 => "500",
            503 => "503",
            _ => "none",
        },
    }
}

/// What kind of failure `e` is, as a label.
pub fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Timeout { .. } => "timeout",
        Error::Connection { .. } => "connection_lost",
        Error::Unavailable { source, .. } => match &**source {
            Error::Proxy { .. } => "proxy",
            Error::Tls { .. } => "tls",
            _ => "unavailable",
        },
        Error::Proxy { .. } => "proxy",
        Error::Connect { .. } => "unavailable",
        Error::Tls { .. } => "tls",
        Error::QueueFull { .. } => "queue_full",
        Error::Shutdown { .. } => "shutdown",
        Error::TokenExpiredAgain(_) => "token_expired_again",
        Error::InvalidField { .. } | Error::PayloadTooLarge { .. } => "invalid",
        Error::Protocol(_) => "protocol",
        _ => "other",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NotificationLabels {
    outcome: &'static str,
    reason: &'static str,
    push_type: &'static str,
    app: Arc<str>,
}

impl EncodeLabelSet for NotificationLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::result::Result<(), fmt::Error> {
        ("outcome", self.outcome).encode(encoder.encode_label())?;
        ("reason", self.reason).encode(encoder.encode_label())?;
        ("push_type", self.push_type).encode(encoder.encode_label())?;
        ("app", &*self.app).encode(encoder.encode_label())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AppLabel(Arc<str>);

impl EncodeLabelSet for AppLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::result::Result<(), fmt::Error> {
        ("app", &*self.0).encode(encoder.encode_label())
    }
}

/// Reads the watched clients at each scrape.
struct ClientCollector {
    watched: Arc<Watched>,
}

impl fmt::Debug for ClientCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientCollector")
    }
}

/// One reading of one client, taken before encoding.
struct Reading {
    app: Arc<str>,
    stats: crate::ClientStats,
    connections: Vec<crate::client::ConnectionInfo>,
    retries: Vec<(&'static str, u64)>,
    token_age: Option<Duration>,
}

impl Collector for ClientCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::result::Result<(), fmt::Error> {
        let clients = self
            .watched
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let readings: Vec<Reading> = clients
            .into_iter()
            .map(|(app, c)| Reading {
                stats: c.stats(),
                connections: c.connections(),
                retries: c.retries_by_reason(),
                token_age: c.token_cache().and_then(|t| t.current_age()),
                app,
            })
            .collect();

        gauges(
            &mut encoder,
            "apns_in_flight",
            "Notifications being sent now (waiting for a stream, on the wire, or between retries)",
            readings
                .iter()
                .map(|r| ([("app", &*r.app)], r.stats.in_flight as i64)),
        )?;
        let states = readings.iter().flat_map(|r| {
            ConnectionState::ALL.iter().map(|state| {
                let n = r.connections.iter().filter(|c| c.state == *state).count();
                ([("app", &*r.app), ("state", state.as_str())], n as i64)
            })
        });
        gauges(
            &mut encoder,
            "apns_connections",
            "Connection pool slots by state (open, connecting, draining, backoff, idle)",
            states,
        )?;
        let slots: Vec<(Arc<str>, String, i64)> = readings
            .iter()
            .flat_map(|r| {
                r.connections.iter().filter_map(|c| {
                    c.stream_limit
                        .map(|limit| (r.app.clone(), c.slot.to_string(), limit as i64))
                })
            })
            .collect();
        gauges(
            &mut encoder,
            "apns_stream_limit",
            "The server's SETTINGS_MAX_CONCURRENT_STREAMS on each live connection",
            slots
                .iter()
                .map(|(app, slot, n)| ([("app", &**app), ("slot", slot.as_str())], *n)),
        )?;
        counters(
            &mut encoder,
            "apns_connections_opened",
            "Connections to APNs opened",
            readings
                .iter()
                .map(|r| ([("app", &*r.app)], r.stats.connections_opened)),
        )?;
        counters(
            &mut encoder,
            "apns_retries",
            "Retries of transient answers from APNs, by reason",
            readings.iter().flat_map(|r| {
                r.retries
                    .iter()
                    .map(|(reason, n)| ([("app", &*r.app), ("reason", *reason)], *n))
            }),
        )?;
        counters(
            &mut encoder,
            "apns_resends",
            "Resends of requests APNs never processed (refused streams, GOAWAY)",
            readings
                .iter()
                .map(|r| ([("app", &*r.app)], r.stats.resends)),
        )?;
        counters(
            &mut encoder,
            "apns_token_mints",
            "Provider tokens minted",
            readings
                .iter()
                .map(|r| ([("app", &*r.app)], r.stats.tokens_minted)),
        )?;
        {
            let mut m = encoder.encode_descriptor(
                "apns_token_age_seconds",
                "Age of the current provider token (refreshed at 50 minutes; APNs refuses it at 60)",
                None,
                MetricType::Gauge,
            )?;
            for r in &readings {
                if let Some(age) = r.token_age {
                    let labels = [("app", &*r.app)];
                    ConstGauge::new(age.as_secs_f64()).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        if self.watched.has_queue.load(Ordering::Relaxed) {
            let m = encoder.encode_descriptor(
                "apns_queue_pending",
                "Jobs waiting in the queue",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(self.watched.queue_pending.load(Ordering::Relaxed)).encode(m)?;
        }
        if self.watched.has_gateway.load(Ordering::Relaxed) {
            let m = encoder.encode_descriptor(
                "apns_gateway_requests",
                "Answers of the gateway, by route template and HTTP status (refusals included)",
                None,
                MetricType::Counter,
            )?;
            self.watched.gateway_requests.encode(m)?;
        }
        Ok(())
    }
}

fn gauges<'a, L: EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl Iterator<Item = (L, i64)>,
) -> std::result::Result<(), fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in values {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counters<'a, L: EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl Iterator<Item = (L, u64)>,
) -> std::result::Result<(), fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in values {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_with_bounded_labels() {
        let metrics = Metrics::new();
        let app = metrics.app("shop");
        let ok = Response::from_parts(200, Some("id".into()), None, b"");
        let gone = Response::from_parts(
            410,
            None,
            None,
            br#"{"reason":"Unregistered","timestamp":1}"#,
        );
        let odd = Response::from_parts(400, None, None, br#"{"reason":"SomethingNew"}"#);
        app.record(PushType::Alert, &Ok(ok.clone()), Duration::from_millis(3));
        app.record(PushType::Alert, &Ok(ok), Duration::from_millis(30));
        app.record(PushType::Background, &Ok(gone), Duration::from_millis(3));
        app.record(PushType::Alert, &Ok(odd), Duration::from_millis(3));
        app.record(
            PushType::Alert,
            &Err(Error::QueueFull { limit: 1 }),
            Duration::from_millis(1),
        );
        let text = metrics.encode();
        for line in [
            r#"apns_notifications_total{outcome="accepted",reason="",push_type="alert",app="shop"} 2"#,
            r#"apns_notifications_total{outcome="rejected",reason="Unregistered",push_type="background",app="shop"} 1"#,
            r#"apns_notifications_total{outcome="rejected",reason="Other",push_type="alert",app="shop"} 1"#,
            r#"apns_notifications_total{outcome="failed",reason="queue_full",push_type="alert",app="shop"} 1"#,
            r#"apns_request_duration_seconds_count{app="shop"} 5"#,
            r#"apns_request_duration_seconds_bucket{app="shop",le="0.005"} 4"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("apns_queue_pending"));
        metrics.set_queue_pending(7);
        assert!(metrics.encode().contains("apns_queue_pending 7"));
    }
}
