//! The loops of a worker, each a task with its own Redis connection
//! (what happens to one delivery is in `deliver.rs`, the writing of
//! outcomes in `finish.rs`):
//!
//! - the **reader** takes back this consumer's own pending jobs (from an
//!   earlier run with the same name), then reads new ones (`XREADGROUP`
//!   inside a script that keeps oversized fields in Redis: `read.rs`), as
//!   many as there are free slots, polling while the stream is empty;
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

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::deliver::dispatch;
use super::finish::finisher;
use super::queue::{self, Conn, Target};
use super::read;
use super::{App, AppResolver, Config, Shared, Worker, WorkerStats};
use crate::backoff::Backoff;
use crate::error::{Error, Result};

pub(crate) const RUNNING: u8 = 0;
pub(crate) const STOPPING: u8 = 1;
pub(crate) const ABORTED: u8 = 2;

/// The most entries one `XREADGROUP` asks for.
const READ_MAX: usize = 512;
/// The most entries one `XAUTOCLAIM` claims.
const CLAIM_MAX: usize = 256;
/// The first and the longest wait between reads while the stream is
/// empty.
const POLL_MIN: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(200);
/// How often the group's pending count and lag are read.
const REFRESH_STATS: Duration = Duration::from_secs(5);
/// How long an app that could not be resolved is remembered as such.
const FAILED_APP_TTL: Duration = Duration::from_secs(10);
/// The response timeout of the connections that do not block.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// After failures to reach APNs, reading pauses this long (doubling).
const INTAKE_PAUSE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Why a task ended early.
pub(super) enum Halt {
    /// A stop was asked for while Redis could not be reached.
    Stopped,
    /// Something waiting cannot fix.
    Fatal(Error),
}

/// An app resolved, or why it could not be (and when that was found).
type Resolved = std::result::Result<App, (String, Instant)>;

/// Apps resolved so far, by name.
pub(super) struct AppCache {
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

    pub(super) async fn get(&self, app: Option<&str>) -> std::result::Result<App, String> {
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

pub(super) struct Ctx {
    pub config: Config,
    pub target: Arc<Target>,
    pub shared: Arc<Shared>,
    pub apps: AppCache,
    pub permits: Arc<Semaphore>,
    /// Entry ids this worker is handling, so that a claim of one of its
    /// own slow jobs does not start it twice.
    pub in_flight: Mutex<HashSet<String>>,
    pub finish: mpsc::UnboundedSender<super::finish::Finish>,
    pause_until: Mutex<Option<Instant>>,
    fail_streak: AtomicU32,
    pub on_sent: Option<super::OnSent>,
}

impl Ctx {
    pub fn state(&self) -> u8 {
        *self.shared.state.borrow()
    }

    pub fn forget(&self, id: &str) {
        let mut mine = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        mine.remove(id);
        self.shared
            .in_flight
            .store(mine.len() as u64, Ordering::Relaxed);
    }

    /// A send failed without an answer: pause intake, longer each time, and
    /// say why at the 1st, 2nd, 4th, 8th... failure in a row (the job stays
    /// pending; without this line an operator would see only counters).
    pub fn note_failure(&self, error: &crate::Error) {
        let streak = self.fail_streak.fetch_add(1, Ordering::Relaxed) + 1;
        if streak.is_power_of_two() {
            tracing::warn!(
                failures_in_a_row = streak,
                "sends are failing: {error}; the jobs stay pending and are retried"
            );
        }
        let delay = Backoff::new(INTAKE_PAUSE.0, INTAKE_PAUSE.1).delay(streak);
        *self.pause_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + delay);
    }

    pub fn note_answer(&self) {
        let streak = self.fail_streak.swap(0, Ordering::Relaxed);
        if streak > 0 {
            tracing::info!("sends are answered again, after {streak} failure(s) in a row");
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
            let result: std::result::Result<_, ::redis::RedisError> = match $conn.get().await {
                Ok($c) => $body.await,
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => {
                    $conn.worked();
                    break v;
                }
                Err(e) if $crate::worker::queue::is_fatal(&e) => {
                    return Err($crate::worker::run::Halt::Fatal(
                        $crate::worker::queue::fatal_error(&$ctx.target, $what, &e),
                    ));
                }
                Err(e) => {
                    let nogroup = $crate::worker::queue::is_nogroup(&e);
                    $conn.broke(&e).await;
                    if nogroup {
                        $crate::worker::run::recreate_group(&$ctx, &mut *$conn).await;
                    }
                    if $ctx.state() >= $give_up {
                        return Err($crate::worker::run::Halt::Stopped);
                    }
                }
            }
        }
    };
}
pub(super) use retrying;

pub(super) async fn recreate_group(ctx: &Ctx, conn: &mut Conn) {
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
        on_sent,
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
        on_sent,
    });
    let mut state = ctx.shared.state.subscribe();
    // A missing or refused password is told now, in Redis's words.
    ctx.target.check().await?;

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
            read::read_group(c, &cfg.stream, &cfg.group, &cfg.consumer, n, &from)
        });
        let Some(last) = entries.last() else { break };
        from = last.id.clone();
        dispatch(&ctx, conn, entries, true, permit).await?;
    }
    let want = (cfg.concurrency / 8).clamp(1, READ_MAX);
    let mut empty_reads = 0u32;
    loop {
        if !wait_pause(&ctx, &mut state).await {
            return Ok(());
        }
        let Some(permit) = slots(&ctx, &mut state, want, READ_MAX).await else {
            return Ok(());
        };
        let n = permit.num_permits();
        let entries = retrying!(ctx, conn, "XREADGROUP", STOPPING, |c| {
            read::read_group(c, &cfg.stream, &cfg.group, &cfg.consumer, n, ">")
        });
        if entries.is_empty() {
            // Nothing new: the slots go back (the claimer may want them),
            // and the next look comes after a delay that grows while the
            // stream stays empty (a script cannot BLOCK; see read.rs).
            drop(permit);
            empty_reads = empty_reads.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(poll_delay(empty_reads)) => {}
                _ = state.wait_for(|s| *s != RUNNING) => return Ok(()),
            }
            continue;
        }
        empty_reads = 0;
        ctx.shared
            .read
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        // Dispatched even during a stop: these entries are ours now.
        dispatch(&ctx, conn, entries, false, permit).await?;
    }
}

/// The wait after the `n`th empty read in a row: 5 ms, doubling up to
/// `POLL_MAX`. Why this and not another signal: every cheap way to wait
/// for an entry (`XREAD BLOCK`, `XREADGROUP BLOCK`) returns the entry
/// itself, whole, which is what the script exists to avoid; an idle worker
/// costs Redis a few cheap script calls a second instead.
fn poll_delay(n: u32) -> Duration {
    let ms = POLL_MIN.as_millis() as u64;
    Duration::from_millis(ms.saturating_mul(1 << n.saturating_sub(1).min(16))).min(POLL_MAX)
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
                read::autoclaim(
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
