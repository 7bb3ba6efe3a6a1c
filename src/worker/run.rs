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

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};

use super::apps::{AppCache, AppResolver};
use super::config::Config;
use super::ctx::{retrying, Ctx, Halt, OnSent, RESPONSE_TIMEOUT};
use super::deliver::dispatch;
use super::finish::finisher;
use super::queue::{self, Conn, Target};
use super::read;
use super::stats::{Shared, WorkerStats, ABORTED, RUNNING, STOPPING};
use crate::error::{Error, Result};

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

/// Runs a worker until it is stopped (see [`Worker::run`](super::Worker::run)).
pub(crate) async fn run(
    config: Config,
    target: Arc<Target>,
    resolver: Arc<dyn AppResolver>,
    shared: Arc<Shared>,
    on_sent: Option<OnSent>,
) -> Result<WorkerStats> {
    let concurrency = config.concurrency;
    let stats = {
        let (shared, target) = (shared.clone(), target.clone());
        move || shared.snapshot(&target)
    };
    let (finish_tx, finish_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx::new(
        config,
        target,
        shared,
        AppCache::new(resolver),
        finish_tx,
        on_sent,
    ));
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
        Err(Halt::Stopped) => return Ok(stats()),
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
    let stats = stats();
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
