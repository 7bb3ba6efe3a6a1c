//! Writing outcomes: the finisher takes what the job tasks came to, in
//! batches, `WATCH`es their markers, keeps the jobs whose marker is still
//! this worker's, and in one `MULTI`/`EXEC` adds each result (and dead
//! letter), acknowledges the job and drops its marker. A job's slot is
//! freed only once its outcome is written, so memory stays bounded while
//! Redis is away.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};
use tokio::sync::mpsc;

use super::config::Config;
use super::ctx::{recreate_group, Ctx, Finish, Halt, RESPONSE_TIMEOUT};
use super::decide::{self, failed_marker, Action, Tally};
use super::job::JobResult;
use super::queue::{self, Conn};
use super::stats::Shared;

/// How long a transaction's `applied` key outlives it (see `write`).
const APPLIED_TTL_SECS: u64 = 3600;
/// The most outcomes one transaction writes.
const FINISH_BATCH: usize = 512;

pub(super) async fn finisher(
    ctx: Arc<Ctx>,
    mut rx: mpsc::UnboundedReceiver<Finish>,
) -> std::result::Result<(), Halt> {
    let mut conn = Conn::new(ctx.target.clone(), RESPONSE_TIMEOUT, "writing results");
    // The `applied` key of the last transaction (see `write`).
    let mut previous: Option<String> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < FINISH_BATCH {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let written = write(&ctx, &mut conn, &batch, &mut previous).await?;
        let s = &ctx.shared;
        for (f, mine) in batch.into_iter().zip(written) {
            let counter = match decide::tally(&f.action, mine) {
                Tally::TakenOver => &s.taken_over,
                Tally::Accepted => &s.accepted,
                Tally::Rejected => &s.rejected,
                Tally::Failed => &s.failed,
                Tally::DeadLettered => &s.dead_lettered,
                Tally::Retried => &s.retried,
            };
            Shared::bump(counter);
            {
                let mut left = s.left.lock().unwrap_or_else(|p| p.into_inner());
                if mine && f.action.leaves_pending() {
                    left.insert(f.id.clone());
                } else {
                    left.remove(&f.id);
                }
            }
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
    previous: &mut Option<String>,
) -> std::result::Result<Vec<bool>, Halt> {
    let cfg = &ctx.config;
    let involved: Vec<usize> = (0..batch.len())
        .filter(|&i| batch[i].action.writes())
        .collect();
    let mut written: Vec<bool> = batch.iter().map(|f| !f.action.writes()).collect();
    if involved.is_empty() {
        return Ok(written);
    }
    let keys: Vec<&str> = involved.iter().map(|&i| batch[i].key.as_str()).collect();
    // The transaction also sets this key: when its reply is lost, the key
    // says whether it was applied (the markers alone cannot tell our write
    // from another worker's), so that the counts match the streams.
    let applied_key = format!("{}:applied:{}", cfg.stream, uuid::Uuid::new_v4().simple());
    let previous = &mut *previous;
    let mut sent: Option<Vec<bool>> = None;
    loop {
        let attempt: std::result::Result<Option<Vec<bool>>, RedisError> = async {
            let c = conn.get().await?;
            if let Some(mine) = &sent {
                let applied: Option<String> =
                    redis::cmd("GET").arg(&applied_key).query_async(c).await?;
                if applied.is_some() {
                    let _: Value = redis::cmd("DEL").arg(&applied_key).query_async(c).await?;
                    return Ok(Some(mine.clone()));
                }
            }
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
            // The previous batch's key is dropped here: no round trip of
            // its own (the TTL covers the last one before a stop).
            if let Some(old) = previous.as_deref() {
                tx.cmd("DEL").arg(old).ignore();
            }
            tx.cmd("SET")
                .arg(&applied_key)
                .arg(1)
                .arg("EX")
                .arg(APPLIED_TTL_SECS)
                .ignore();
            sent = Some(mine.clone());
            // Nil: a watched marker changed meanwhile; look again.
            let done: Option<Value> = tx.query_async(c).await?;
            sent = None;
            Ok(done.map(|_| mine))
        }
        .await;
        match attempt {
            Ok(Some(mine)) => {
                conn.worked();
                if mine.iter().any(|m| *m) {
                    *previous = Some(applied_key);
                }
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
        Action::Retry { error } => {
            tx.cmd("SET")
                .arg(&f.key)
                .arg(failed_marker(&cfg.consumer, error))
                .arg("EX")
                .arg(cfg.marker_ttl.as_secs().max(1))
                .ignore();
        }
        Action::Release => {}
    }
}
