//! The loops of a worker, each a task with its own Redis connection:
//!
//! - the **reader** takes back this consumer's own pending jobs (from an
//!   earlier run with the same name), then reads new ones with a blocking
//!   `XREADGROUP`, as many as there are free slots;
//! - the **claimer** runs `XAUTOCLAIM` for jobs idle past `claim_idle`
//!   (their worker died) and refreshes the group's pending count;
//! - both **dispatch** what they got: one `SET marker ... GET` per job (in
//!   one pipeline) says whether an earlier delivery was sending it, then a
//!   task per job decides, sends, and hands its outcome to
//! - the **finisher**, which writes outcomes in batches: `WATCH` the
//!   markers, keep the jobs whose marker is still this worker's, and in one
//!   `MULTI`/`EXEC` add each result, acknowledge the job and drop its
//!   marker. A slot is freed only once its job's outcome is written, so
//!   memory stays bounded while Redis is away.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::job::{excerpt, JobResult};
use super::queue::{self, Conn, Entry, Fields, Target};
use super::{App, AppResolver, Config, Delivery, Job, Shared, Worker, WorkerStats};
use crate::backoff::Backoff;
use crate::error::{Error, Result};

pub(crate) const RUNNING: u8 = 0;
pub(crate) const STOPPING: u8 = 1;
pub(crate) const ABORTED: u8 = 2;

/// The most entries one `XREADGROUP` asks for.
const READ_MAX: usize = 512;
/// The most entries one `XAUTOCLAIM` claims.
const CLAIM_MAX: usize = 256;
/// The most outcomes one transaction writes.
const FINISH_BATCH: usize = 512;
/// How often the group's pending count and lag are read.
const REFRESH_STATS: Duration = Duration::from_secs(5);
/// How long an app that could not be resolved is remembered as such.
const FAILED_APP_TTL: Duration = Duration::from_secs(10);
/// The response timeout of the connections that do not block.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// After failures to reach APNs, reading pauses this long (doubling).
const INTAKE_PAUSE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Why a task ended early.
enum Halt {
    /// A stop was asked for while Redis could not be reached.
    Stopped,
    /// Something waiting cannot fix.
    Fatal(Error),
}

/// What one delivery of a job came to, for the finisher.
enum Action {
    /// A result to write; the job is done.
    Result(JobResult),
    /// A result, and the job's fields to the dead letter; the job is done.
    Dead {
        result: JobResult,
        fields: Fields,
        error: String,
        deliveries: u64,
    },
    /// Failed before reaching APNs: stays pending, to be claimed and tried
    /// again; the marker records the error.
    Retry { marker: String },
    /// May have reached APNs (at-least-once): stays pending with its
    /// `sending` marker, to be sent again when claimed.
    Release,
}

struct Finish {
    id: String,
    key: String,
    /// The marker this worker set; the outcome is written only if it is
    /// still there.
    expected: String,
    action: Action,
    _permit: OwnedSemaphorePermit,
}

/// What an earlier delivery left in the marker.
#[derive(Debug, PartialEq)]
enum Marker {
    /// It was being sent: the outcome is unknown.
    Sending,
    /// It failed before reaching APNs, with this error.
    Failed(String),
}

impl Marker {
    fn parse(value: &str) -> Marker {
        let mut parts = value.splitn(4, '|');
        match (parts.next(), parts.nth(2)) {
            (Some("failed"), Some(error)) => Marker::Failed(error.to_string()),
            // Anything else may have been on the wire.
            _ => Marker::Sending,
        }
    }
}

fn attempt() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn sending_marker(consumer: &str) -> String {
    format!("sending|{consumer}|{}", attempt())
}

fn failed_marker(consumer: &str, error: &str) -> String {
    format!("failed|{consumer}|{}|{}", attempt(), excerpt(error, 500))
}

/// An app resolved, or why it could not be (and when that was found).
type Resolved = std::result::Result<App, (String, Instant)>;

/// Apps resolved so far, by name.
struct AppCache {
    resolver: Arc<dyn AppResolver>,
    apps: Mutex<HashMap<Option<String>, Resolved>>,
    // One resolution at a time: they are rare, and may prompt or read files.
    resolving: tokio::sync::Mutex<()>,
}

impl AppCache {
    fn lookup(&self, app: Option<&str>) -> Option<std::result::Result<App, String>> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        match apps.get(&app.map(str::to_string))? {
            Ok(a) => Some(Ok(a.clone())),
            Err((e, at)) if at.elapsed() < FAILED_APP_TTL => Some(Err(e.clone())),
            Err(_) => None,
        }
    }

    async fn get(&self, app: Option<&str>) -> std::result::Result<App, String> {
        if let Some(found) = self.lookup(app) {
            return found;
        }
        let _one = self.resolving.lock().await;
        if let Some(found) = self.lookup(app) {
            return found;
        }
        let resolver = self.resolver.clone();
        let name = app.map(str::to_string);
        let resolved = tokio::task::spawn_blocking(move || resolver.resolve(name.as_deref()))
            .await
            .unwrap_or_else(|e| Err(Error::Config(format!("the app resolver failed: {e}"))))
            .map_err(|e| e.to_string());
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.insert(
            app.map(str::to_string),
            resolved.clone().map_err(|e| (e, Instant::now())),
        );
        resolved
    }

    fn clients(&self) -> Vec<crate::Client> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.values()
            .filter_map(|a| a.as_ref().ok().map(|a| a.client.clone()))
            .collect()
    }
}

struct Ctx {
    config: Config,
    target: Arc<Target>,
    shared: Arc<Shared>,
    apps: AppCache,
    permits: Arc<Semaphore>,
    /// Entry ids this worker is handling, so that a claim of one of its
    /// own slow jobs does not start it twice.
    in_flight: Mutex<HashSet<String>>,
    finish: mpsc::UnboundedSender<Finish>,
    pause_until: Mutex<Option<Instant>>,
    fail_streak: AtomicU32,
}

impl Ctx {
    fn state(&self) -> u8 {
        *self.shared.state.borrow()
    }

    fn forget(&self, id: &str) {
        let mut mine = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        mine.remove(id);
        self.shared
            .in_flight
            .store(mine.len() as u64, Ordering::Relaxed);
    }

    /// A send failed without an answer: pause intake, longer each time.
    fn note_failure(&self) {
        let streak = self.fail_streak.fetch_add(1, Ordering::Relaxed) + 1;
        let delay = Backoff::new(INTAKE_PAUSE.0, INTAKE_PAUSE.1).delay(streak);
        *self.pause_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + delay);
    }

    fn note_answer(&self) {
        if self.fail_streak.swap(0, Ordering::Relaxed) > 0 {
            *self.pause_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    fn pause_left(&self) -> Option<Duration> {
        let until = (*self.pause_until.lock().unwrap_or_else(|p| p.into_inner()))?;
        until.checked_duration_since(Instant::now())
    }
}

/// Runs a Redis call on `conn` until it works. Outages are waited out
/// (the connection reopens with backoff); a missing group is created
/// again; the caller's function returns `Halt::Stopped` when the state
/// reaches `$give_up` while Redis cannot be reached, and `Halt::Fatal`
/// for errors waiting cannot fix.
macro_rules! retrying {
    ($ctx:expr, $conn:expr, $what:expr, $give_up:expr, |$c:ident| $body:expr) => {
        loop {
            let result: std::result::Result<_, RedisError> = match $conn.get().await {
                Ok($c) => $body.await,
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => {
                    $conn.worked();
                    break v;
                }
                Err(e) if queue::is_fatal(&e) => {
                    return Err(Halt::Fatal(queue::fatal_error(&$ctx.target, $what, &e)));
                }
                Err(e) => {
                    let nogroup = queue::is_nogroup(&e);
                    $conn.broke(&e).await;
                    if nogroup {
                        recreate_group(&$ctx, &mut *$conn).await;
                    }
                    if $ctx.state() >= $give_up {
                        return Err(Halt::Stopped);
                    }
                }
            }
        }
    };
}

async fn recreate_group(ctx: &Ctx, conn: &mut Conn) {
    if let Ok(c) = conn.get().await {
        let cfg = &ctx.config;
        match queue::create_group(c, &cfg.stream, &cfg.group).await {
            Ok(()) => tracing::warn!(
                "the group {} of {} was gone (Redis restarted without its data?): created it again",
                cfg.group,
                cfg.stream
            ),
            Err(e) => tracing::debug!("creating the group again: {e}"),
        }
    }
}

pub(crate) async fn run(worker: Worker) -> Result<WorkerStats> {
    let Worker {
        config,
        target,
        resolver,
        shared,
    } = worker;
    let concurrency = config.concurrency;
    let handle = super::WorkerHandle {
        shared: shared.clone(),
        target: target.clone(),
    };
    let (finish_tx, finish_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        permits: Arc::new(Semaphore::new(concurrency)),
        config,
        target,
        shared,
        apps: AppCache {
            resolver,
            apps: Mutex::new(HashMap::new()),
            resolving: tokio::sync::Mutex::new(()),
        },
        in_flight: Mutex::new(HashSet::new()),
        finish: finish_tx,
        pause_until: Mutex::new(None),
        fail_streak: AtomicU32::new(0),
    });
    let mut state = ctx.shared.state.subscribe();

    let mut reader_conn = Conn::new(
        ctx.target.clone(),
        ctx.config.block + RESPONSE_TIMEOUT,
        "reading jobs",
    );
    match setup(&ctx, &mut reader_conn).await {
        Ok(()) => {}
        Err(Halt::Stopped) => return Ok(handle.stats()),
        Err(Halt::Fatal(e)) => return Err(e),
    }
    let cfg = &ctx.config;
    tracing::info!(
        "worker {} reading {} (group {}) on Redis {}; results to {}, dead letter {}; {} delivery",
        cfg.consumer,
        cfg.stream,
        cfg.group,
        ctx.target.addr,
        cfg.results_stream,
        cfg.dead_letter,
        cfg.delivery
    );

    let mut finisher = tokio::spawn(finisher(ctx.clone(), finish_rx));
    let mut reader = tokio::spawn(reader(ctx.clone(), reader_conn));
    let mut claimer = tokio::spawn(claimer(ctx.clone()));
    let (mut reader_done, mut claimer_done) = (false, false);
    let fatal =
        |r: std::result::Result<std::result::Result<(), Halt>, tokio::task::JoinError>| match r {
            Ok(Ok(())) | Ok(Err(Halt::Stopped)) => None,
            Ok(Err(Halt::Fatal(e))) => Some(e),
            Err(e) => Some(Error::Config(format!("a worker task failed: {e}"))),
        };
    // Until a stop: the reader and claimer end by themselves on one.
    let outcome: Option<Error> = loop {
        if reader_done && claimer_done {
            break None;
        }
        tokio::select! {
            _ = state.wait_for(|s| *s == ABORTED) => break None,
            r = &mut reader, if !reader_done => {
                reader_done = true;
                if let Some(e) = fatal(r) { break Some(e) }
            }
            r = &mut claimer, if !claimer_done => {
                claimer_done = true;
                if let Some(e) = fatal(r) { break Some(e) }
            }
            r = &mut finisher => break fatal(r).or_else(|| Some(Error::Config("the result writer stopped".into()))),
        }
    };
    let mut outcome = outcome;
    if outcome.is_none() && ctx.state() != ABORTED {
        // A graceful stop: every slot comes back once its job's outcome is
        // written.
        tokio::select! {
            _ = ctx.permits.acquire_many(concurrency as u32) => {}
            _ = state.wait_for(|s| *s == ABORTED) => {}
            r = &mut finisher => outcome = fatal(r).or_else(|| Some(Error::Config("the result writer stopped".into()))),
        }
    }
    reader.abort();
    claimer.abort();
    finisher.abort();
    let aborted = ctx.state() == ABORTED || outcome.is_some();
    for client in ctx.apps.clients() {
        if aborted {
            client.abort();
        } else {
            client.shutdown(Duration::from_secs(5)).await;
        }
    }
    let stats = handle.stats();
    tracing::info!(
        "worker {} stopped{}: {} results written, {} dead-lettered",
        ctx.config.consumer,
        if aborted {
            format!(", {} job(s) in flight abandoned", stats.in_flight)
        } else {
            String::new()
        },
        stats.results(),
        stats.dead_lettered
    );
    match outcome {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

/// Creates the group if missing and checks the streams' types (a results
/// stream of the wrong type would fail inside the transaction, after the
/// acknowledgement).
async fn setup(ctx: &Arc<Ctx>, conn: &mut Conn) -> std::result::Result<(), Halt> {
    let cfg = &ctx.config;
    retrying!(ctx, conn, "creating the group", STOPPING, |c| {
        queue::create_group(c, &cfg.stream, &cfg.group)
    });
    for key in [&cfg.results_stream, &cfg.dead_letter] {
        let kind = retrying!(ctx, conn, "checking the streams", STOPPING, |c| {
            queue::key_type(c, key)
        });
        if kind != "stream" && kind != "none" {
            return Err(Halt::Fatal(Error::Redis(format!(
                "{key} on {} is a {kind}, not a stream",
                ctx.target.addr
            ))));
        }
    }
    Ok(())
}

/// Waits for at least `want` free slots (taking up to `max`), or for a
/// stop.
async fn slots(
    ctx: &Ctx,
    state: &mut watch::Receiver<u8>,
    want: usize,
    max: usize,
) -> Option<OwnedSemaphorePermit> {
    let mut permit = tokio::select! {
        p = ctx.permits.clone().acquire_many_owned(want as u32) => p.ok()?,
        _ = state.wait_for(|s| *s != RUNNING) => return None,
    };
    let extra = ctx
        .permits
        .available_permits()
        .min(max.saturating_sub(want));
    if extra > 0 {
        if let Ok(p) = ctx.permits.clone().try_acquire_many_owned(extra as u32) {
            permit.merge(p);
        }
    }
    Some(permit)
}

/// Waits out an intake pause (after failures to reach APNs); false on a
/// stop.
async fn wait_pause(ctx: &Ctx, state: &mut watch::Receiver<u8>) -> bool {
    if let Some(left) = ctx.pause_left() {
        tokio::select! {
            _ = tokio::time::sleep(left) => {}
            _ = state.wait_for(|s| *s != RUNNING) => return false,
        }
    }
    ctx.state() == RUNNING
}

async fn reader(ctx: Arc<Ctx>, mut own: Conn) -> std::result::Result<(), Halt> {
    let conn = &mut own;
    let mut state = ctx.shared.state.subscribe();
    let cfg = &ctx.config;
    // This consumer's own pending jobs first: an earlier run with the same
    // name died with them.
    let mut from = "0".to_string();
    loop {
        let Some(permit) = slots(&ctx, &mut state, 1, READ_MAX).await else {
            return Ok(());
        };
        let n = permit.num_permits();
        let entries = retrying!(ctx, conn, "XREADGROUP", STOPPING, |c| {
            queue::read_group(c, &cfg.stream, &cfg.group, &cfg.consumer, n, &from, None)
        });
        let Some(last) = entries.last() else { break };
        from = last.id.clone();
        dispatch(&ctx, conn, entries, true, permit).await?;
    }
    let want = (cfg.concurrency / 8).clamp(1, READ_MAX);
    loop {
        if !wait_pause(&ctx, &mut state).await {
            return Ok(());
        }
        let Some(permit) = slots(&ctx, &mut state, want, READ_MAX).await else {
            return Ok(());
        };
        let n = permit.num_permits();
        let entries = retrying!(ctx, conn, "XREADGROUP", STOPPING, |c| {
            queue::read_group(
                c,
                &cfg.stream,
                &cfg.group,
                &cfg.consumer,
                n,
                ">",
                Some(cfg.block),
            )
        });
        ctx.shared
            .read
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        // Dispatched even during a stop: these entries are ours now.
        dispatch(&ctx, conn, entries, false, permit).await?;
    }
}

async fn claimer(ctx: Arc<Ctx>) -> std::result::Result<(), Halt> {
    let mut state = ctx.shared.state.subscribe();
    let cfg = &ctx.config;
    let mut own = Conn::new(ctx.target.clone(), RESPONSE_TIMEOUT, "claiming jobs");
    let conn = &mut own;
    // After this worker lost Redis, the owners of idle jobs get a moment to
    // write their results before anyone claims them.
    let grace = (cfg.claim_idle / 2).min(Duration::from_secs(10));
    let mut tick = tokio::time::interval(cfg.claim_every.min(REFRESH_STATS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut next_claim, mut next_stats) = (Instant::now(), Instant::now());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.wait_for(|s| *s != RUNNING) => return Ok(()),
        }
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + REFRESH_STATS;
            let pending = retrying!(ctx, conn, "XPENDING", STOPPING, |c| {
                queue::pending_count(c, &cfg.stream, &cfg.group)
            });
            ctx.shared.pending.store(pending, Ordering::Relaxed);
            let lag = retrying!(ctx, conn, "XINFO GROUPS", STOPPING, |c| {
                queue::group_lag(c, &cfg.stream, &cfg.group)
            });
            ctx.shared
                .lag
                .store(lag.unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        if Instant::now() < next_claim
            || ctx.pause_left().is_some()
            || ctx.target.healthy_for() < grace
        {
            continue;
        }
        next_claim = Instant::now() + cfg.claim_every;
        let mut cursor = "0-0".to_string();
        loop {
            // Waits a little for a slot: the reader gives its own back
            // after each empty read.
            let permit = tokio::select! {
                p = slots(&ctx, &mut state, 1, CLAIM_MAX) => p,
                _ = tokio::time::sleep(cfg.block + Duration::from_millis(500)) => None,
            };
            let Some(permit) = permit else { break };
            let n = permit.num_permits();
            let claimed = retrying!(ctx, conn, "XAUTOCLAIM", STOPPING, |c| {
                queue::autoclaim(
                    c,
                    &cfg.stream,
                    &cfg.group,
                    &cfg.consumer,
                    cfg.claim_idle,
                    &cursor,
                    n,
                )
            });
            if claimed.deleted > 0 {
                tracing::warn!(
                    "{} pending job(s) of {} were deleted from the stream before being sent (XDEL or XTRIM)",
                    claimed.deleted,
                    cfg.stream
                );
            }
            cursor = claimed.cursor;
            if !claimed.entries.is_empty() {
                dispatch(&ctx, conn, claimed.entries, true, permit).await?;
            }
            if cursor == "0-0" || ctx.state() != RUNNING {
                break;
            }
        }
    }
}

/// Marks the entries as being handled by this worker and starts a task
/// for each. `taken` entries were claimed (or read back from this
/// consumer's own pending list): they may have been delivered before, and
/// may have been finished meanwhile by the worker they came from.
async fn dispatch(
    ctx: &Arc<Ctx>,
    conn: &mut Conn,
    entries: Vec<Entry>,
    taken: bool,
    mut permit: OwnedSemaphorePermit,
) -> std::result::Result<(), Halt> {
    let cfg = &ctx.config;
    let mut deleted = Vec::new();
    let mut jobs = Vec::with_capacity(entries.len());
    {
        let mut mine = ctx.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for e in entries {
            match e.fields {
                None => deleted.push(e.id),
                // Already being handled here (a claim of a slow job of ours).
                Some(_) if mine.contains(&e.id) => {}
                Some(f) => {
                    mine.insert(e.id.clone());
                    jobs.push((e.id, f));
                }
            }
        }
        ctx.shared
            .in_flight
            .store(mine.len() as u64, Ordering::Relaxed);
    }
    if !deleted.is_empty() {
        retrying!(ctx, conn, "XACK", STOPPING, |c| {
            queue::ack(c, &cfg.stream, &cfg.group, &deleted)
        });
    }
    let (Some(first), Some(last)) = (jobs.first(), jobs.last()) else {
        return Ok(());
    };
    let markers: Vec<(String, String)> = jobs
        .iter()
        .map(|(id, _)| (cfg.marker_key(id), sending_marker(&cfg.consumer)))
        .collect();
    // Taken entries are looked up *after* their markers are set: one that
    // is no longer pending was finished by the worker it came from, whose
    // transaction committed between the claim and the marker.
    let range = queue::PendingRange {
        stream: &cfg.stream,
        group: &cfg.group,
        consumer: &cfg.consumer,
        first: &first.0,
        last: &last.0,
        // The range may also hold this consumer's jobs in flight.
        count: jobs.len() + cfg.concurrency,
    };
    let range = taken.then_some(&range);
    let marked = async {
        Ok(retrying!(ctx, conn, "SET", STOPPING, |c| {
            queue::set_markers(c, &markers, cfg.marker_ttl, range)
        }))
    };
    let (old, counts) = match marked.await {
        Ok(v) => v,
        Err(halt) => {
            // Stopping with Redis away: the jobs stay pending.
            for (id, _) in &jobs {
                ctx.forget(id);
            }
            return Err(halt);
        }
    };
    let mut finished_elsewhere = Vec::new();
    let mut started = 0u64;
    for (((id, fields), (key, mine)), old) in jobs.into_iter().zip(markers).zip(old) {
        let deliveries = match &counts {
            None => 1,
            Some(c) => match c.get(&id) {
                Some(n) => *n,
                None => {
                    ctx.forget(&id);
                    finished_elsewhere.push(key);
                    Shared::bump(&ctx.shared.taken_over);
                    continue;
                }
            },
        };
        let Some(slot) = permit.split(1) else {
            // Never: a read asks for at most as many entries as it has
            // slots. The job stays pending and is claimed later.
            ctx.forget(&id);
            continue;
        };
        // A retried SET may return this worker's own new marker.
        let earlier = old.filter(|o| *o != mine).map(|o| Marker::parse(&o));
        let job = Delivered {
            id,
            key,
            mine,
            fields,
            earlier,
            deliveries,
            slot,
        };
        started += 1;
        tokio::spawn(process(ctx.clone(), job));
    }
    if taken {
        ctx.shared.claimed.fetch_add(started, Ordering::Relaxed);
    }
    if !finished_elsewhere.is_empty() {
        retrying!(ctx, conn, "DEL", STOPPING, |c| {
            queue::delete(c, &finished_elsewhere)
        });
    }
    Ok(())
}

struct Delivered {
    id: String,
    key: String,
    mine: String,
    fields: Fields,
    earlier: Option<Marker>,
    deliveries: u64,
    slot: OwnedSemaphorePermit,
}

async fn process(ctx: Arc<Ctx>, job: Delivered) {
    let action = decide(&ctx, &job).await;
    let finish = Finish {
        id: job.id,
        key: job.key,
        expected: job.mine,
        action,
        _permit: job.slot,
    };
    // Fails only once the worker has stopped; the job stays pending.
    let _ = ctx.finish.send(finish);
}

/// What to do with one delivery of a job: decode it, check it, send it.
async fn decide(ctx: &Ctx, d: &Delivered) -> Action {
    let cfg = &ctx.config;
    let raw = |name: &[u8]| {
        d.fields
            .iter()
            .find(|(k, _)| k.as_slice() == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    // The result names the job even when the entry is bad.
    let job_id = raw(b"job")
        .filter(|j| !j.is_empty())
        .unwrap_or_else(|| format!("entry {}", d.id));
    let app_name = raw(b"app");
    let base = JobResult::for_job(
        &job_id,
        app_name.as_deref(),
        &raw(b"device_token").unwrap_or_default(),
        &cfg.consumer,
    );
    let dead = |result: JobResult, error: String, maybe: bool| Action::Dead {
        result: result.failed(error.clone(), maybe),
        fields: d.fields.clone(),
        error,
        deliveries: d.deliveries,
    };
    if d.deliveries > cfg.max_deliveries {
        let (last, maybe) = match &d.earlier {
            Some(Marker::Failed(e)) => (e.as_str(), false),
            Some(Marker::Sending) => (
                "a worker stopped or lost its connection while sending it (it may have been delivered)",
                true,
            ),
            None => ("the workers handling it stopped before sending it", false),
        };
        let error = format!(
            "delivered {} times, more than the {} allowed; last error: {last}",
            d.deliveries, cfg.max_deliveries
        );
        return dead(base, error, maybe);
    }
    let job = match Job::from_fields(&d.fields) {
        Ok(j) => j,
        Err(e) => return dead(base, format!("invalid job: {e}"), false),
    };
    if d.earlier == Some(Marker::Sending) && cfg.delivery == Delivery::AtMostOnce {
        return Action::Result(base.failed(
            "outcome unknown: an earlier delivery was interrupted while sending it; not sent again (at-most-once)",
            true,
        ));
    }
    let app = match ctx.apps.get(job.app.as_deref()).await {
        Ok(a) => a,
        Err(e) => {
            let which = match &job.app {
                Some(name) => format!("app {:?}", excerpt(name, 64)),
                None => "the worker's own credentials (the job names no app)".into(),
            };
            return dead(base, format!("{which}: {e}"), false);
        }
    };
    let apns_id = match job.apns_id() {
        Ok(id) => id.to_string(),
        Err(e) => return dead(base, e.to_string(), false),
    };
    let mut spec = job.spec;
    spec.apns_id = Some(apns_id);
    let notification = match app.defaults.build(&spec) {
        Ok(n) => n,
        Err(e) => return dead(base, e.to_string(), false),
    };
    if notification.topic().is_none() && app.client.certificate().is_none() {
        return dead(
            base,
            "invalid topic: required; the job has none and its app no default topic".into(),
            false,
        );
    }
    match app.client.send(&notification).await {
        Ok(r) => {
            ctx.note_answer();
            Action::Result(base.answered(&r))
        }
        Err(e) if e.may_have_been_delivered() => match cfg.delivery {
            Delivery::AtMostOnce => Action::Result(base.failed(e.to_string(), true)),
            Delivery::AtLeastOnce => {
                ctx.note_failure();
                Action::Release
            }
        },
        Err(e) => {
            ctx.note_failure();
            Action::Retry {
                marker: failed_marker(&cfg.consumer, &e.to_string()),
            }
        }
    }
}

async fn finisher(
    ctx: Arc<Ctx>,
    mut rx: mpsc::UnboundedReceiver<Finish>,
) -> std::result::Result<(), Halt> {
    let mut conn = Conn::new(ctx.target.clone(), RESPONSE_TIMEOUT, "writing results");
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < FINISH_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let written = write(&ctx, &mut conn, &batch).await?;
        let s = &ctx.shared;
        for (f, mine) in batch.into_iter().zip(written) {
            let counter = match (&f.action, mine) {
                (_, false) => &s.taken_over,
                (Action::Result(r), true) if r.is_accepted() => &s.accepted,
                (Action::Result(r), true) if r.status.is_some() => &s.rejected,
                (Action::Result(_), true) => &s.failed,
                (Action::Dead { .. }, true) => &s.dead_lettered,
                (Action::Retry { .. } | Action::Release, true) => &s.retried,
            };
            Shared::bump(counter);
            ctx.forget(&f.id);
            // The slot is freed here, with `f`.
        }
    }
    Ok(())
}

/// Writes a batch of outcomes in one transaction, for the jobs whose
/// marker is still this worker's; says which were written (the others
/// were taken over by another worker).
async fn write(
    ctx: &Ctx,
    conn: &mut Conn,
    batch: &[Finish],
) -> std::result::Result<Vec<bool>, Halt> {
    let cfg = &ctx.config;
    let involved: Vec<usize> = (0..batch.len())
        .filter(|&i| !matches!(batch[i].action, Action::Release))
        .collect();
    let mut written: Vec<bool> = batch
        .iter()
        .map(|f| matches!(f.action, Action::Release))
        .collect();
    if involved.is_empty() {
        return Ok(written);
    }
    let keys: Vec<&str> = involved.iter().map(|&i| batch[i].key.as_str()).collect();
    loop {
        let attempt: std::result::Result<Option<Vec<bool>>, RedisError> = async {
            let c = conn.get().await?;
            let current = watch_markers(c, &keys).await?;
            let mut tx = redis::pipe();
            tx.atomic();
            let mut mine = vec![false; batch.len()];
            for (&i, now) in involved.iter().zip(&current) {
                let f = &batch[i];
                if now.as_deref() != Some(f.expected.as_str()) {
                    continue;
                }
                mine[i] = true;
                queue_outcome(cfg, &mut tx, f);
            }
            if !mine.iter().any(|m| *m) {
                let _: Value = redis::cmd("UNWATCH").query_async(c).await?;
                return Ok(Some(mine));
            }
            // Nil: a watched marker changed meanwhile; look again.
            let done: Option<Value> = tx.query_async(c).await?;
            Ok(done.map(|_| mine))
        }
        .await;
        match attempt {
            Ok(Some(mine)) => {
                conn.worked();
                for &i in &involved {
                    written[i] = mine[i];
                }
                return Ok(written);
            }
            Ok(None) => continue,
            Err(e) if queue::is_fatal(&e) => {
                return Err(Halt::Fatal(queue::fatal_error(
                    &ctx.target,
                    "writing results",
                    &e,
                )))
            }
            Err(e) => {
                // A transaction that was applied before its reply was lost
                // shows on the next round: its markers are gone.
                let nogroup = queue::is_nogroup(&e);
                conn.broke(&e).await;
                if nogroup {
                    recreate_group(ctx, conn).await;
                }
            }
        }
    }
}

/// `WATCH` the markers and read them.
async fn watch_markers(
    c: &mut MultiplexedConnection,
    keys: &[&str],
) -> std::result::Result<Vec<Option<String>>, RedisError> {
    let replies: Vec<Value> = redis::pipe()
        .cmd("WATCH")
        .arg(keys)
        .cmd("MGET")
        .arg(keys)
        .query_async(c)
        .await?;
    let values = match replies.into_iter().nth(1) {
        Some(Value::Array(v)) => v,
        _ => {
            return Err(RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "MGET did not answer an array",
            )))
        }
    };
    Ok(values
        .iter()
        .map(|v| match v {
            Value::Nil => None,
            other => queue::text(other),
        })
        .collect())
}

/// The commands of one outcome, inside the transaction.
fn queue_outcome(cfg: &Config, tx: &mut redis::Pipeline, f: &Finish) {
    let add_result = |tx: &mut redis::Pipeline, r: &JobResult| {
        let cmd = tx.cmd("XADD").arg(&cfg.results_stream);
        if let Some(n) = cfg.results_maxlen {
            cmd.arg("MAXLEN").arg("~").arg(n);
        }
        cmd.arg("*");
        for (k, v) in r.to_fields() {
            cmd.arg(k).arg(v);
        }
        cmd.ignore();
    };
    let done = |tx: &mut redis::Pipeline| {
        tx.cmd("XACK")
            .arg(&cfg.stream)
            .arg(&cfg.group)
            .arg(&f.id)
            .ignore();
        if cfg.delete_acked {
            tx.cmd("XDEL").arg(&cfg.stream).arg(&f.id).ignore();
        }
        tx.cmd("DEL").arg(&f.key).ignore();
    };
    match &f.action {
        Action::Result(r) => {
            add_result(tx, r);
            done(tx);
        }
        Action::Dead {
            result,
            fields,
            error,
            deliveries,
        } => {
            let cmd = tx.cmd("XADD").arg(&cfg.dead_letter).arg("*");
            for (k, v) in fields.iter().filter(|(k, _)| !k.starts_with(b"dead_")) {
                cmd.arg(k.as_slice()).arg(v.as_slice());
            }
            cmd.arg("dead_error")
                .arg(error)
                .arg("dead_entry_id")
                .arg(&f.id)
                .arg("dead_deliveries")
                .arg(*deliveries)
                .arg("dead_worker")
                .arg(&cfg.consumer);
            cmd.ignore();
            add_result(tx, result);
            done(tx);
        }
        Action::Retry { marker } => {
            tx.cmd("SET")
                .arg(&f.key)
                .arg(marker)
                .arg("EX")
                .arg(cfg.marker_ttl.as_secs().max(1))
                .ignore();
        }
        Action::Release => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_say_what_an_earlier_delivery_did() {
        assert_eq!(Marker::parse(&sending_marker("w1")), Marker::Sending);
        assert_eq!(
            Marker::parse(&failed_marker("w1", "no route | to host")),
            Marker::Failed("no route | to host".into())
        );
        assert_eq!(Marker::parse("garbage"), Marker::Sending);
        assert_ne!(sending_marker("w"), sending_marker("w"));
    }
}
