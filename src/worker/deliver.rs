//! What happens to one delivery of a job: dispatching a batch (marking
//! each job as this worker's attempt, in one pipeline), then a task per job
//! that decodes it, checks it, sends it, and hands the outcome to the
//! finisher.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::ctx::{retrying, Ctx, Finish, Halt, Sent};
use super::decide::{self, sending_marker, Action, Attempt, Check, Marker};
use super::queue::{self, Conn, Fields};
use super::read::{Entry, Shape};
use super::stats::{Shared, STOPPING};

/// Marks the entries as being handled by this worker and starts a task
/// for each. `taken` entries were claimed (or read back from this
/// consumer's own pending list): they may have been delivered before, and
/// may have been finished meanwhile by the worker they came from.
pub(super) async fn dispatch(
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
                    jobs.push((e.id, f, e.shape));
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
        .map(|(id, _, _)| (cfg.marker_key(id), sending_marker(&cfg.consumer)))
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
            for (id, _, _) in &jobs {
                ctx.forget(id);
            }
            return Err(halt);
        }
    };
    let mut finished_elsewhere = Vec::new();
    let mut started = 0u64;
    for (((id, fields, shape), (key, mine)), old) in jobs.into_iter().zip(markers).zip(old) {
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
            shape,
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
    /// Placeholders the read put in place of oversized fields.
    shape: Shape,
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

/// One delivery of a job: the checks of [`decide::check`], the app
/// (resolved once, then cached), the notification, the send; the decisions
/// are `decide.rs`'s, the waiting is here.
async fn decide(ctx: &Ctx, d: &Delivered) -> Action {
    let cfg = &ctx.config;
    let attempt = Attempt {
        entry_id: &d.id,
        fields: &d.fields,
        shape: &d.shape,
        earlier: d.earlier.as_ref(),
        deliveries: d.deliveries,
    };
    let (mut job, base) = match decide::check(cfg, &attempt) {
        Check::Send { job, base } => (job, base),
        Check::Done(action) => return action,
    };
    let app = ctx.apps.get(job.app.as_deref()).await;
    let (app, notification) = match decide::notification(&mut job, app) {
        Ok(ready) => ready,
        Err(error) => return attempt.dead(base, error, false),
    };
    let started = std::time::Instant::now();
    let result = app.client().send(&notification).await;
    if let Some(observe) = &ctx.on_sent {
        observe(&Sent {
            app: job.app.as_deref(),
            notification: &notification,
            result: &result,
            elapsed: started.elapsed(),
        });
    }
    let action = decide::answered(cfg.delivery, base, &result);
    match &result {
        Ok(_) => ctx.note_answer(),
        // Intake slows down while sends fail and their jobs stay pending.
        Err(e) if action.leaves_pending() => ctx.note_failure(e),
        Err(_) => {}
    }
    action
}
