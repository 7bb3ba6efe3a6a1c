//! A queue worker on Redis Streams: many processes, on many machines,
//! sharing one send job through a consumer group, with nothing lost when
//! one of them dies (feature `worker`).
//!
//! Producers add one stream entry per notification (a [`Job`]: see it for
//! the fields; any language can `XADD` them, and a [`Producer`] does it
//! from Rust).
//! Each [`Worker`] reads jobs with `XREADGROUP`, sends them through a
//! [`Client`](crate::Client) per app (credentials come from an [`AppResolver`]), and for
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
//! let app = App::new(client).with_defaults(SpecDefaults::builder().topic("com.example.app").build()?);
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
//! | `mod.rs` | [`Worker`], [`WorkerBuilder`], [`WorkerHandle`] |
//! | `apps.rs` | [`AppResolver`], the cache of resolved apps ([`App`] is `crate::app`'s, shared with the gateway) |
//! | `config.rs` | [`Delivery`] and the checked settings |
//! | `stats.rs` | [`WorkerStats`], the counters and run state the tasks and handles share |
//! | `ctx.rs` | what the tasks share, why one halts, `retrying!` (Redis calls until they work); [`Sent`] |
//! | `job.rs` | the job and result formats |
//! | `producer.rs` | [`Producer`]: adding jobs (`XADD`) |
//! | `queue.rs` | Redis connections, commands and replies |
//! | `read.rs` | reading and claiming through a script that keeps oversized fields in Redis |
//! | `decide.rs` | what to do with a job, decided without Redis |
//! | `run.rs` | the loops: read and claim; stopping |
//! | `deliver.rs` | one delivery: its marker, decoding, sending |
//! | `finish.rs` | writing outcomes: result, dead letter, acknowledgement |
//!
//! Imports point down this table, never back up: `run.rs` starts
//! `deliver.rs` and `finish.rs`, which share `ctx.rs` and `decide.rs`;
//! no file imports `mod.rs` or a loop above it.

mod apps;
mod config;
mod ctx;
mod decide;
mod deliver;
mod finish;
mod job;
mod producer;
mod queue;
mod read;
mod run;
mod stats;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

pub use crate::app::App;
pub use apps::AppResolver;
pub use config::Delivery;
pub use ctx::Sent;
pub use job::{field, result_field, Job, JobResult, FORMAT_VERSION, MAX_FIELD_BYTES, MAX_ID_BYTES};
pub use producer::{AddFailure, Producer};
pub use stats::WorkerStats;

use config::Config;
use ctx::OnSent;
use stats::{Shared, ABORTED, RUNNING, STOPPING};

/// The most jobs a worker may have in flight (its slots are counted in
/// `u32`, and each costs memory while Redis is away).
pub const MAX_CONCURRENCY: usize = 1_000_000;

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

    /// Connects to Redis once and authenticates, so that a missing or
    /// refused password is told before anything says the worker runs
    /// ([`run`](Worker::run) checks again).
    pub async fn check_redis(&self) -> Result<()> {
        self.target.check().await
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
        run::run(
            self.config,
            self.target,
            self.resolver,
            self.shared,
            self.on_sent,
        )
        .await
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
            *s = (*s).max(STOPPING);
            was != *s
        });
    }

    /// Immediate stop: jobs in flight are abandoned (their sends end at
    /// once) and stay pending, for another worker to claim.
    pub fn abort(&self) {
        self.shared.state.send_replace(ABORTED);
    }

    /// Whether a stop or an abort was asked for.
    pub fn is_stopping(&self) -> bool {
        *self.shared.state.borrow() != RUNNING
    }

    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.snapshot(&self.target)
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
