//! `apns worker`: sends the jobs of a Redis stream with the library's
//! `Worker`, resolving each job's `app` to a profile's credentials.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use apns_provider::metrics::Metrics;
use apns_provider::wire::SpecDefaults;
use apns_provider::worker::{App, AppResolver, Delivery, Worker, WorkerHandle, WorkerStats};
use apns_provider::{Client, Environment, Error, RetryPolicy};

use super::args::{CertArgs, DeliveryArg, KeyArgs, TargetArgs, WorkerArgs};
use super::credentials::{resolve, Credentials, Resolved};
use super::failure::{exit, Failure};

/// `--timeout`'s default for a job, in seconds.
const DEFAULT_TIMEOUT: f64 = 30.0;

pub async fn run(args: WorkerArgs) -> Result<u8, Failure> {
    let timeout = args.target.timeout_or(DEFAULT_TIMEOUT);
    if args.claim_idle <= timeout {
        eprintln!(
            "apns: warning: --claim-idle {:?} is not above --timeout {:?}: a job still being sent may be claimed by another worker and sent twice",
            args.claim_idle, timeout
        );
    }
    let delivery = match args.delivery {
        DeliveryArg::AtLeastOnce => Delivery::AtLeastOnce,
        DeliveryArg::AtMostOnce => Delivery::AtMostOnce,
    };
    // A bad --endpoint or --proxy stops the worker before it takes a job.
    args.target.server.endpoint()?;
    args.target.proxy.choice()?;
    let resolver = Profiles {
        target: args.target.clone(),
        topic: args.topic.topic.clone(),
        connections: args.pool.connections,
        timeout,
        delivery,
        clients: Mutex::new(HashMap::new()),
        own: None,
        metrics: args.metrics.metrics_listen.map(|_| Metrics::new()),
    };
    // The worker's own credentials (for jobs without an app) are checked
    // now: a bad --key-file stops it before it takes any job.
    let own = if args.target.has_credentials() {
        Some(resolver.app(&args.target.key, &args.target.cert)?)
    } else {
        None
    };
    if let (Some(m), Some(own)) = (&resolver.metrics, &own) {
        m.watch(OWN_APP, own.client());
    }
    let metrics = resolver.metrics.clone();
    let resolver = Profiles { own, ..resolver };

    let mut builder = Worker::builder(args.redis.url.clone(), resolver)
        .stream(&args.redis.stream)
        .group(&args.group)
        .results_stream(&args.results_stream)
        .dead_letter(&args.dead_letter)
        .concurrency(args.in_flight.concurrency)
        .claim_idle(args.claim_idle)
        .max_deliveries(args.max_deliveries)
        .delivery(delivery)
        .delete_acked(!args.keep_jobs);
    if let Some(name) = &args.consumer {
        builder = builder.consumer(name);
    }
    if let Some(n) = args.results_maxlen {
        builder = builder.results_maxlen(n);
    }
    if let Some(m) = &metrics {
        let m = m.clone();
        builder = builder.on_sent(move |sent| {
            m.app(sent.app.unwrap_or(OWN_APP)).record(
                sent.notification.push_type(),
                sent.result,
                sent.elapsed,
            )
        });
    }
    let worker = builder.build()?;
    let handle = worker.handle();
    // Said once Redis took the password, not before.
    worker.check_redis().await?;
    eprintln!(
        "apns worker: {} reading {} (group {}) on Redis {}; {delivery}; Ctrl-C or SIGTERM stops",
        worker.consumer(),
        args.redis.stream,
        args.group,
        worker.redis_addr()
    );
    let mut metrics_server = None;
    if let (Some(m), Some(addr)) = (&metrics, args.metrics.metrics_listen) {
        let server = m.listen(addr).await.map_err(|e| {
            Failure::usage(format!("--metrics-listen {addr}: cannot listen there: {e}"))
        })?;
        eprintln!(
            "apns worker: metrics at http://{}/metrics",
            server.local_addr()
        );
        metrics_server = Some((server, tokio::spawn(queue_gauge(handle.clone(), m.clone()))));
    }
    let presses = listen_for_signals(handle.clone());
    let progress = (!args.stats_interval.is_zero())
        .then(|| tokio::spawn(progress(handle.clone(), args.stats_interval)));
    let result = worker.run().await;
    if let Some(p) = progress {
        p.abort();
    }
    if let Some((server, gauge)) = metrics_server {
        gauge.abort();
        server.stop().await;
    }
    let stats = result.map_err(|e| Failure {
        code: exit::USAGE,
        message: e.to_string(),
    })?;
    eprintln!(
        "apns worker: stopped: {} results ({} accepted, {} rejected, {} failed), {} dead-lettered, {} claimed, {} left pending to retry, {} abandoned in flight",
        stats.results(),
        stats.accepted,
        stats.rejected,
        stats.failed,
        stats.dead_lettered,
        stats.claimed,
        stats.left_pending,
        stats.in_flight
    );
    let aborted = presses.load(std::sync::atomic::Ordering::Relaxed) >= 2;
    Ok(if aborted { exit::INTERRUPTED } else { exit::OK })
}

/// The first SIGINT or SIGTERM stops the worker gracefully, the second
/// abandons what is in flight. Registered before the worker starts, so no
/// signal falls to the default handler.
fn listen_for_signals(handle: WorkerHandle) -> std::sync::Arc<std::sync::atomic::AtomicU32> {
    use std::sync::atomic::{AtomicU32, Ordering};
    let presses = std::sync::Arc::new(AtomicU32::new(0));
    let counted = presses.clone();
    let on_signal = move || {
        let n = counted.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 {
            eprintln!(
                "apns worker: stopping: no new jobs; finishing the {} in flight and writing their results (signal again to abandon them)",
                handle.stats().in_flight
            );
            handle.stop();
        } else if n == 2 {
            eprintln!(
                "apns worker: abandoning {} job(s) in flight: they stay pending, and another worker claims them",
                handle.stats().in_flight
            );
            handle.abort();
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    on_signal();
                }
            });
        }
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            on_signal();
        }
    });
    presses
}

/// The label of jobs naming no app (sent with the worker's own
/// credentials).
const OWN_APP: &str = "default";

/// Keeps `apns_queue_pending` at what the worker last saw of its group:
/// entries not yet delivered to any worker plus those delivered without a
/// result yet.
async fn queue_gauge(handle: WorkerHandle, metrics: Metrics) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let s = handle.stats();
        if s.lag.is_some() || s.pending.is_some() {
            let jobs = s.lag.unwrap_or(0).saturating_add(s.pending.unwrap_or(0));
            metrics.set_queue_pending(i64::try_from(jobs).unwrap_or(i64::MAX));
        }
    }
}

/// A line on stderr every `every`: jobs/s, in flight, pending, claimed,
/// dead-lettered.
async fn progress(handle: WorkerHandle, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut last = handle.stats().results();
    let mut at = std::time::Instant::now();
    loop {
        tick.tick().await;
        let s = handle.stats();
        let rate = (s.results() - last) as f64 / at.elapsed().as_secs_f64().max(0.001);
        last = s.results();
        at = std::time::Instant::now();
        eprintln!("apns worker: {rate:.0} jobs/s; {}", describe(&s));
    }
}

fn describe(s: &WorkerStats) -> String {
    let known = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    format!(
        "in flight {}; pending {}; lag {}; claimed {}; dead-lettered {}; {} results ({} accepted, {} rejected, {} failed); retried {}; taken over {}; Redis errors {}",
        s.in_flight,
        known(s.pending),
        known(s.lag),
        s.claimed,
        s.dead_lettered,
        s.results(),
        s.accepted,
        s.rejected,
        s.failed,
        s.retried,
        s.taken_over,
        s.redis_errors
    )
}

/// Resolves a job's `app` to a profile (`keys.toml`: keychain, file or
/// env stores), and a job without one to the worker's own credentials.
/// Apps with the same team, key and environment (or certificate) share
/// one client.
struct Profiles {
    /// `--env`, `--endpoint`, `--ca-file`, `--timeout` and the proxy
    /// flags, for every app.
    target: TargetArgs,
    topic: Option<String>,
    connections: usize,
    timeout: Duration,
    delivery: Delivery,
    clients: Mutex<HashMap<String, Client>>,
    own: Option<App>,
    /// With --metrics-listen: each app's client is watched under its name.
    metrics: Option<Metrics>,
}

impl Profiles {
    fn app(&self, key: &KeyArgs, cert: &CertArgs) -> Result<App, Failure> {
        let resolved = resolve(key, cert)?;
        let environment = self.target.environment_for(&resolved)?;
        let Resolved {
            credentials, topic, ..
        } = resolved;
        let mut topic = topic.or_else(|| self.topic.clone());
        if let Credentials::Certificate(c) = &credentials {
            topic = topic.or_else(|| c.info().default_topic());
        }
        let client = self.client(credentials, environment)?;
        let mut defaults = SpecDefaults::builder();
        if let Some(t) = topic {
            defaults = defaults.topic(t);
        }
        Ok(App::new(client).with_defaults(defaults.build()?))
    }

    fn client(
        &self,
        credentials: Credentials,
        environment: Environment,
    ) -> Result<Client, Failure> {
        let endpoint = self.target.server.endpoint_or(environment)?;
        let identity = match &credentials {
            Credentials::Token(s) => {
                format!(
                    "token {} {} {environment} {endpoint}",
                    s.team_id(),
                    s.key_id()
                )
            }
            Credentials::Certificate(c) => {
                let i = c.info();
                format!(
                    "certificate {} {} {} {environment} {endpoint}",
                    i.subject, i.not_before, i.not_after
                )
            }
        };
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&identity) {
            return Ok(c.clone());
        }
        let builder = self
            .target
            .client_builder(credentials, environment, self.timeout)?
            .pool_size(self.connections)
            .retry_policy(
                RetryPolicy::default().with_resend_unknown(self.delivery == Delivery::AtLeastOnce),
            );
        let client = builder.build()?;
        // Once per client: an app's certificate expiring soon, say.
        for w in client.warnings() {
            eprintln!("apns: warning: {w}");
        }
        clients.insert(identity, client.clone());
        Ok(client)
    }
}

impl AppResolver for Profiles {
    fn resolve(&self, app: Option<&str>) -> apns_provider::Result<App> {
        match app {
            None => self.own.clone().ok_or_else(|| {
                Error::Config(
                    "no credentials: the job names no app, and the worker has none of its own (--key, --key-file or --cert)".into(),
                )
            }),
            Some(name) => {
                let app = self
                    .app(&KeyArgs::named(name), &CertArgs::default())
                    .map_err(|f| Error::Config(f.message))?;
                if let Some(m) = &self.metrics {
                    m.watch(name, app.client());
                }
                Ok(app)
            }
        }
    }
}
