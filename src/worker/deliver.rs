//! What happens to one delivery of a job: dispatching a batch (marking
//! each job as this worker's attempt, in one pipeline), then a task per job
//! that decodes it, checks it, sends it, and hands the outcome to the
//! finisher.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::config::Delivery;
use super::ctx::{retrying, Ctx, Finish, Halt, Sent};
use super::decide::Action;
use super::job::{excerpt, Job, JobResult};
use super::queue::{self, Conn, Fields};
use super::read::{Entry, Shape};
use super::stats::{Shared, STOPPING};

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

pub(super) fn failed_marker(consumer: &str, error: &str) -> String {
    format!("failed|{consumer}|{}|{}", attempt(), excerpt(error, 500))
}

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

/// What to do with one delivery of a job: decode it, check it, send it.
async fn decide(ctx: &Ctx, d: &Delivered) -> Action {
    let cfg = &ctx.config;
    // A placeholder is never taken for the job's own value.
    let raw = |name: &[u8]| {
        d.fields
            .iter()
            .enumerate()
            .find(|(i, (k, _))| k.as_slice() == name && !d.shape.is_replaced(2 * i + 1))
            .map(|(_, (_, v))| String::from_utf8_lossy(v).into_owned())
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
    if let Some(why) = d.shape.problem(&d.fields) {
        return dead(base, format!("invalid job: {why}"), false);
    }
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
        // Its text starts with "invalid <field>:" already.
        Err(e) => return dead(base, e.to_string(), false),
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
    let notification = match app.defaults().build(&spec) {
        Ok(n) => n,
        Err(e) => return dead(base, e.to_string(), false),
    };
    if notification.topic().is_none() && app.client().certificate().is_none() {
        return dead(
            base,
            "invalid topic: required; the job has none and its app no default topic".into(),
            false,
        );
    }
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
    match result {
        Ok(r) => {
            ctx.note_answer();
            Action::Result(base.answered(&r))
        }
        Err(e) if e.may_have_been_delivered() => match cfg.delivery {
            Delivery::AtMostOnce => Action::Result(base.failed(e.to_string(), true)),
            Delivery::AtLeastOnce => {
                ctx.note_failure(&e);
                Action::Release
            }
        },
        Err(e) => {
            ctx.note_failure(&e);
            Action::Retry {
                marker: failed_marker(&cfg.consumer, &e.to_string()),
            }
        }
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
