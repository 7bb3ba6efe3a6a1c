//! A queue worker on Redis Streams: many processes, on many machines,
//! sharing one send job through a consumer group, with nothing lost when
//! one of them dies (feature `worker`).
//!
//! Producers add one stream entry per notification (a [`Job`]: see it for
//! the fields; any language can `XADD` them, and a [`Producer`] does it
//! from Rust).
//! Each [`Worker`] reads jobs with `XREADGROUP`, sends them through a
//! [`Client`] per app (credentials come from an [`AppResolver`]), and for
//! each job writes one [`JobResult`] to a results stream and acknowledges
//! the job, both in one `MULTI`/`EXEC`.
//!
//! ```no_run
//! use apns_provider::worker::{App, Delivery, Worker};
//! use apns_provider::{Client, SigningKey};
//! use apns_provider::wire::SpecDefaults;
//!
//! # async fn run() -> apns_provider::Result<()> {
//! let client = Client::builder()
//!     .token_auth(SigningKey::from_file("AuthKey_ABCDE12345.p8")?, "ABCDE12345", "TEAM123456")
//!     .build()?;
//! // Every job goes out with this client here; a real resolver maps each
//! // job's `app` to its own client (one per team, key and environment).
//! let app = App::new(client).with_defaults(SpecDefaults::new().topic("com.example.app"));
//! let worker = Worker::builder("redis://127.0.0.1:6379", move |_app: Option<&str>| Ok(app.clone()))
//!     .stream("apns:jobs")
//!     .delivery(Delivery::AtLeastOnce)
//!     .build()?;
//! let handle = worker.handle(); // stop() at shutdown; abort() to give up at once
//! let running = tokio::spawn(worker.run());
//! // ... at shutdown: finish what is in flight, write its results
//! handle.stop();
//! let stats = running.await.expect("the worker task")?;
//! println!("{} accepted, {} dead-lettered", stats.accepted, stats.dead_lettered);
//! # Ok(()) }
//! ```
//!
//! ## What is guaranteed
//!
//! - **Every job gets exactly one result entry**, written with the job's
//!   `XACK` in one transaction: a crash never leaves a result without an
//!   acknowledgement, or an acknowledgement without a result.
//! - **A dead worker's jobs are not lost.** Every worker runs `XAUTOCLAIM`
//!   for entries idle longer than [`claim_idle`](WorkerBuilder::claim_idle);
//!   one delivered more than [`max_deliveries`](WorkerBuilder::max_deliveries)
//!   times goes to the dead letter with its last error, and gets a result.
//! - **Duplicates are bounded and chosen.** Before sending, a worker sets a
//!   marker (`<stream>:attempt:<entry id>`, with a TTL). A job that comes
//!   back with the marker set may have been delivered: with
//!   [`Delivery::AtLeastOnce`] it is sent again with the same `apns-id`;
//!   with [`Delivery::AtMostOnce`] it gets a result saying
//!   `may_have_been_delivered` instead. A worker writes a job's result only
//!   while the marker is still its own (`WATCH`), so two workers that hold
//!   the same job never both write one.
//! - **Bad jobs** (a malformed entry, a bad token or payload, an unknown
//!   app) get a result with the error, go to the dead letter and are
//!   acknowledged at once: they never come back.
//! - **Redis outages** are waited out: connections reopen with backoff,
//!   results not yet written are kept and written when Redis answers, and
//!   the worker never stops on a transient error.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`Worker`], [`WorkerBuilder`], [`App`], [`AppResolver`], [`WorkerStats`] |
//! | `job.rs` | the job and result formats |
//! | `producer.rs` | [`Producer`]: adding jobs (`XADD`) |
//! | `queue.rs` | Redis connections, commands and replies |
//! | `read.rs` | reading and claiming through a script that keeps oversized fields in Redis |
//! | `run.rs` | the loops: read and claim; stopping |
//! | `deliver.rs` | one delivery: its marker, decoding, sending |
//! | `finish.rs` | writing outcomes: result, dead letter, acknowledgement |

mod deliver;
mod finish;
mod job;
mod producer;
mod queue;
mod read;
mod run;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::notification::Notification;
use crate::response::Response;
use crate::wire::SpecDefaults;

pub use job::{field, result_field, Job, JobResult, FORMAT_VERSION, MAX_FIELD_BYTES, MAX_ID_BYTES};
pub use producer::{AddFailure, Producer};

/// What a job's `app` resolves to: the client that sends it and the
/// defaults its notifications start from (usually just the app's topic).
#[derive(Clone)]
pub struct App {
    client: Client,
    defaults: Arc<SpecDefaults>,
}

impl App {
    /// An app sending with `client`, with no defaults.
    pub fn new(client: Client) -> App {
        App {
            client,
            defaults: Arc::new(SpecDefaults::new()),
        }
    }

    /// The defaults a job's missing fields are taken from (such as the
    /// topic).
    pub fn with_defaults(mut self, defaults: SpecDefaults) -> App {
        self.defaults = Arc::new(defaults);
        self
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The defaults.
    pub fn defaults(&self) -> &SpecDefaults {
        &self.defaults
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("client", &self.client)
            .field("topic", &self.defaults.default_topic())
            .finish()
    }
}

/// Turns a job's `app` (a name, or `None` for a job without one) into the
/// [`App`] that sends it.
///
/// Called once per name, on a blocking thread (it may read a keychain or
/// files), and kept for the life of the worker; a failure is kept for 10
/// seconds, and the jobs naming that app meanwhile go to the dead letter
/// with the error. Give apps that share a team, key and environment the
/// same [`Client`] (clones share connections): a connection must never
/// carry two teams' tokens, and APNs prefers few connections.
///
/// A closure `Fn(Option<&str>) -> Result<App>` is a resolver.
pub trait AppResolver: Send + Sync + 'static {
    /// The app named `app`.
    fn resolve(&self, app: Option<&str>) -> Result<App>;
}

impl<F> AppResolver for F
where
    F: Fn(Option<&str>) -> Result<App> + Send + Sync + 'static,
{
    fn resolve(&self, app: Option<&str>) -> Result<App> {
        self(app)
    }
}

/// What happens to a job whose earlier delivery may have reached APNs (its
/// worker died, or its connection dropped, while it was on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Send it again, with the same `apns-id`: nothing is lost, and a
    /// device may show it twice (give such notifications a collapse id).
    /// Build the clients with
    /// [`RetryPolicy::with_resend_unknown`](crate::RetryPolicy::with_resend_unknown)
    /// so that they resend such notifications themselves too.
    #[default]
    AtLeastOnce,
    /// Never send it twice: write a result with `may_have_been_delivered:
    /// true` instead.
    AtMostOnce,
}

impl Delivery {
    /// `at-least-once` or `at-most-once`.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::AtMostOnce => "at-most-once",
        }
    }
}

impl FromStr for Delivery {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "at-least-once" => Ok(Delivery::AtLeastOnce),
            "at-most-once" => Ok(Delivery::AtMostOnce),
            _ => Err(Error::invalid(
                "delivery",
                format!("{s:?}: expected at-least-once or at-most-once"),
            )),
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most jobs a worker may have in flight (its slots are counted in
/// `u32`, and each costs memory while Redis is away).
pub const MAX_CONCURRENCY: usize = 1_000_000;

/// The settings of a worker.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub stream: String,
    pub group: String,
    pub consumer: String,
    pub results_stream: String,
    pub dead_letter: String,
    pub concurrency: usize,
    pub claim_idle: Duration,
    pub claim_every: Duration,
    pub max_deliveries: u64,
    pub delivery: Delivery,
    pub marker_ttl: Duration,
    pub block: Duration,
    pub delete_acked: bool,
    pub results_maxlen: Option<u64>,
}

impl Config {
    /// The key of the marker of entry `id`.
    pub fn marker_key(&self, id: &str) -> String {
        format!("{}:attempt:{id}", self.stream)
    }
}

/// One send to APNs a worker made, as told to an
/// [`on_sent`](WorkerBuilder::on_sent) observer.
#[derive(Debug)]
#[non_exhaustive]
pub struct Sent<'a> {
    /// The job's app (`None` for a job naming none).
    pub app: Option<&'a str>,
    /// The notification sent.
    pub notification: &'a Notification,
    /// APNs' answer, or the error that kept one from coming.
    pub result: &'a Result<Response>,
    /// From the send to its result, retries included.
    pub elapsed: Duration,
}

/// What [`WorkerBuilder::on_sent`] takes.
type OnSent = Arc<dyn Fn(&Sent<'_>) + Send + Sync>;

/// Configures a [`Worker`]; see [`Worker::builder`].
#[must_use]
pub struct WorkerBuilder {
    url: String,
    resolver: Arc<dyn AppResolver>,
    config: Config,
    claim_every: Option<Duration>,
    on_sent: Option<OnSent>,
}

/// The consumer name used when none is given: the host name and process
/// id, unique among the workers of one Redis.
pub fn default_consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}

impl WorkerBuilder {
    /// The jobs stream (default `apns:jobs`).
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.config.stream = name.into();
        self
    }
    /// The consumer group (default `apns`); created at the start of the
    /// stream if missing.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.config.group = name.into();
        self
    }
    /// This worker's consumer name (default: host name and process id).
    /// A worker that keeps its name across restarts takes back its own
    /// pending jobs at once; give each running worker its own.
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.config.consumer = name.into();
        self
    }
    /// The stream results go to (default `apns:results`).
    pub fn results_stream(mut self, name: impl Into<String>) -> Self {
        self.config.results_stream = name.into();
        self
    }
    /// The dead-letter stream (default `apns:dead`).
    pub fn dead_letter(mut self, name: impl Into<String>) -> Self {
        self.config.dead_letter = name.into();
        self
    }
    /// Jobs in flight at once, from read to result written (default 1000,
    /// at most [`MAX_CONCURRENCY`]).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n;
        self
    }
    /// How long a job stays pending with another consumer before this one
    /// claims it (default 60 s). Keep it above the clients' request
    /// timeout, so that live workers' jobs are not claimed.
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.config.claim_idle = idle;
        self
    }
    /// How often to look for jobs to claim (default: a quarter of
    /// `claim_idle`, between 1 and 15 s).
    pub fn claim_every(mut self, every: Duration) -> Self {
        self.claim_every = Some(every);
        self
    }
    /// Deliveries after which a job goes to the dead letter (default 5).
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.config.max_deliveries = n;
        self
    }
    /// At-least-once (the default) or at-most-once; see [`Delivery`].
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.config.delivery = delivery;
        self
    }
    /// How long a job's marker outlives a worker that died while sending
    /// it (default 24 h): a job claimed later than that counts as never
    /// sent.
    pub fn marker_ttl(mut self, ttl: Duration) -> Self {
        self.config.marker_ttl = ttl;
        self
    }
    /// Whether to delete a job from the stream once its result is written
    /// (default true: the stream does not grow without end). Keep them
    /// when other consumer groups read the same stream.
    pub fn delete_acked(mut self, delete: bool) -> Self {
        self.config.delete_acked = delete;
        self
    }
    /// Trims the results stream to about `n` entries (`XADD ... MAXLEN ~
    /// n`); by default it is never trimmed, so read (and trim) it.
    pub fn results_maxlen(mut self, n: u64) -> Self {
        self.config.results_maxlen = Some(n);
        self
    }

    /// Calls `observe` after each send to APNs (not for jobs that never
    /// reach it, such as dead-lettered ones): for metrics or logs. It runs
    /// on the worker's tasks, so it must be quick.
    ///
    /// ```
    /// # use apns_provider::worker::{App, Worker};
    /// # fn resolver(_: Option<&str>) -> apns_provider::Result<App> { unimplemented!() }
    /// let worker = Worker::builder("redis://127.0.0.1:6379", resolver)
    ///     .on_sent(|sent| {
    ///         let status = sent.result.as_ref().map(|r| r.status()).ok();
    ///         eprintln!("{:?} {:?} in {:?}", sent.app, status, sent.elapsed);
    ///     })
    ///     .build()?;
    /// # Ok::<(), apns_provider::Error>(())
    /// ```
    pub fn on_sent(mut self, observe: impl Fn(&Sent<'_>) + Send + Sync + 'static) -> Self {
        self.on_sent = Some(Arc::new(observe));
        self
    }

    /// Checks the settings and the URL (nothing connects before
    /// [`Worker::run`]).
    pub fn build(self) -> Result<Worker> {
        let mut config = self.config;
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if !(1..=MAX_CONCURRENCY).contains(&config.concurrency) {
            return Err(Error::Config(format!(
                "the worker's concurrency must be between 1 and {MAX_CONCURRENCY}"
            )));
        }
        if config.max_deliveries == 0 {
            return bad("max_deliveries must be at least 1");
        }
        if config.claim_idle < Duration::from_millis(100) {
            return bad("claim_idle must be at least 100 ms");
        }
        if config.marker_ttl < config.claim_idle {
            return bad("the marker TTL must be longer than claim_idle");
        }
        for (what, name) in [
            ("stream", &config.stream),
            ("group", &config.group),
            ("consumer", &config.consumer),
            ("results stream", &config.results_stream),
            ("dead-letter stream", &config.dead_letter),
        ] {
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(Error::Config(format!(
                    "the {what} name must be non-empty, without control characters"
                )));
            }
        }
        if config.results_stream == config.stream || config.dead_letter == config.stream {
            return bad("the results and dead-letter streams must not be the jobs stream");
        }
        config.claim_every = self.claim_every.unwrap_or_else(|| {
            (config.claim_idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(15))
        });
        let target = queue::Target::open(&self.url)?;
        Ok(Worker {
            config,
            target: Arc::new(target),
            resolver: self.resolver,
            shared: Arc::new(Shared::default()),
            on_sent: self.on_sent,
        })
    }
}

/// Sends the jobs of a Redis stream; see the [module](self) docs.
pub struct Worker {
    config: Config,
    target: Arc<queue::Target>,
    resolver: Arc<dyn AppResolver>,
    shared: Arc<Shared>,
    on_sent: Option<OnSent>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The address only: the URL may hold a password.
        f.debug_struct("Worker")
            .field("redis", &self.target.addr)
            .field("stream", &self.config.stream)
            .field("group", &self.config.group)
            .field("consumer", &self.config.consumer)
            .finish()
    }
}

impl Worker {
    /// A worker for the Redis at `url` (`redis://[:PASSWORD@]HOST[:PORT][/DB]`),
    /// sending each job with the app `resolver` gives for it.
    pub fn builder(url: impl Into<String>, resolver: impl AppResolver) -> WorkerBuilder {
        WorkerBuilder {
            url: url.into(),
            resolver: Arc::new(resolver),
            config: Config {
                stream: "apns:jobs".into(),
                group: "apns".into(),
                consumer: default_consumer_name(),
                results_stream: "apns:results".into(),
                dead_letter: "apns:dead".into(),
                concurrency: 1000,
                claim_idle: Duration::from_secs(60),
                claim_every: Duration::from_secs(15),
                max_deliveries: 5,
                delivery: Delivery::AtLeastOnce,
                marker_ttl: Duration::from_secs(24 * 3600),
                block: Duration::from_secs(2),
                delete_acked: true,
                results_maxlen: None,
            },
            claim_every: None,
            on_sent: None,
        }
    }

    /// The consumer name.
    pub fn consumer(&self) -> &str {
        &self.config.consumer
    }

    /// The Redis address (`host:port`; never the password).
    pub fn redis_addr(&self) -> &str {
        &self.target.addr
    }

    /// A handle to stop the worker and read its stats from elsewhere.
    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle {
            shared: self.shared.clone(),
            target: self.target.clone(),
        }
    }

    /// Runs until stopped: creates the group if missing, then reads,
    /// claims, sends and writes results. Returns the final stats after a
    /// [`stop`](WorkerHandle::stop) (every job in flight finished and its
    /// result written) or an [`abort`](WorkerHandle::abort) (jobs in
    /// flight left pending, for another worker to claim). Transient Redis
    /// errors are waited out; an error is returned only for what waiting
    /// cannot fix (bad credentials, a key of the wrong type).
    pub async fn run(self) -> Result<WorkerStats> {
        run::run(self).await
    }
}

/// Stops a running [`Worker`] and reads its stats. Cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    shared: Arc<Shared>,
    target: Arc<queue::Target>,
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("redis", &self.target.addr)
            .finish()
    }
}

impl WorkerHandle {
    /// Graceful stop: no new reads or claims; jobs in flight finish and
    /// their results are written.
    pub fn stop(&self) {
        self.shared.state.send_if_modified(|s| {
            let was = *s;
            *s = (*s).max(run::STOPPING);
            was != *s
        });
    }

    /// Immediate stop: jobs in flight are abandoned (their sends end at
    /// once) and stay pending, for another worker to claim.
    pub fn abort(&self) {
        self.shared.state.send_replace(run::ABORTED);
    }

    /// Whether a stop or an abort was asked for.
    pub fn is_stopping(&self) -> bool {
        *self.shared.state.borrow() != run::RUNNING
    }

    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.snapshot(&self.target)
    }
}

/// What a worker has done: counts since it started, and the group's state
/// as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// New jobs read.
    pub read: u64,
    /// Jobs claimed from other consumers (or taken back from an earlier
    /// run with this consumer name).
    pub claimed: u64,
    /// Results written saying APNs accepted the notification.
    pub accepted: u64,
    /// Results written with a rejection by APNs.
    pub rejected: u64,
    /// Results written without an answer (at-most-once: may have been
    /// delivered).
    pub failed: u64,
    /// Jobs sent to the dead letter (each with a result too).
    pub dead_lettered: u64,
    /// Times a job was left pending to be tried again after a failure to
    /// reach APNs (a job tried three times counts three).
    pub retried: u64,
    /// Jobs this worker left pending to be tried again, and has not
    /// finished since: each once, however often it was tried. After a
    /// graceful stop, with no other worker, `XPENDING` shows these.
    pub left_pending: u64,
    /// Jobs whose result another worker wrote (it claimed them meanwhile).
    pub taken_over: u64,
    /// Jobs in flight now: read or claimed, result not yet written.
    pub in_flight: u64,
    /// Entries pending in the group (all consumers), as last seen.
    pub pending: Option<u64>,
    /// Entries not yet delivered to any consumer, as last seen.
    pub lag: Option<u64>,
    /// Redis errors met (each waited out).
    pub redis_errors: u64,
}

impl WorkerStats {
    /// Results written (accepted, rejected, failed and dead-lettered).
    pub fn results(&self) -> u64 {
        self.accepted + self.rejected + self.failed + self.dead_lettered
    }
}

/// State shared by a worker's tasks and its handles.
pub(crate) struct Shared {
    pub state: tokio::sync::watch::Sender<u8>,
    pub read: AtomicU64,
    pub claimed: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub retried: AtomicU64,
    /// Entry ids whose last outcome this worker wrote left them pending.
    pub left: std::sync::Mutex<std::collections::HashSet<String>>,
    pub taken_over: AtomicU64,
    /// Jobs being handled (read or claimed, outcome not yet written).
    pub in_flight: AtomicU64,
    /// `u64::MAX` when unknown.
    pub pending: AtomicU64,
    pub lag: AtomicU64,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            state: tokio::sync::watch::Sender::new(run::RUNNING),
            read: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            left: Default::default(),
            taken_over: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            pending: AtomicU64::new(u64::MAX),
            lag: AtomicU64::new(u64::MAX),
        }
    }
}

impl Shared {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self, target: &queue::Target) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let known = |c: &AtomicU64| Some(get(c)).filter(|v| *v != u64::MAX);
        WorkerStats {
            read: get(&self.read),
            claimed: get(&self.claimed),
            accepted: get(&self.accepted),
            rejected: get(&self.rejected),
            failed: get(&self.failed),
            dead_lettered: get(&self.dead_lettered),
            retried: get(&self.retried),
            left_pending: self.left.lock().unwrap_or_else(|p| p.into_inner()).len() as u64,
            taken_over: get(&self.taken_over),
            in_flight: get(&self.in_flight),
            pending: known(&self.pending),
            lag: known(&self.lag),
            redis_errors: target.errors.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_out_of_range_is_a_config_error() {
        let resolver = |_: Option<&str>| -> Result<App> { Err(Error::Config("none".into())) };
        for n in [0, MAX_CONCURRENCY + 1, usize::MAX] {
            let e = Worker::builder("redis://127.0.0.1:1", resolver)
                .concurrency(n)
                .build()
                .unwrap_err();
            assert!(
                matches!(&e, Error::Config(m) if m.contains("between 1 and 1000000")),
                "{n}: {e}"
            );
        }
        assert!(Worker::builder("redis://127.0.0.1:1", resolver)
            .concurrency(MAX_CONCURRENCY)
            .build()
            .is_ok());
    }
}
