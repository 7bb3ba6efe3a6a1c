//! What the gateway does with a batch once every item is valid: send it
//! now and answer with the results ([`SendNow`], the default), or hand it to
//! a queue and answer with job ids ([`Enqueue`], with the feature `worker`,
//! for `apns worker`s on Redis Streams; or a [`Dispatch`] of your own).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use http::StatusCode;
use serde_json::json;

use super::apps::ServedApp;
use crate::notification::Notification;
use crate::wire::{result_json, NotificationSpec};

/// One validated notification of a request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Item {
    /// The app it is for.
    pub app: Arc<ServedApp>,
    /// As the request gave it (without `app`): what a queue stores.
    pub spec: NotificationSpec,
    /// As it will be sent: the spec over the app's defaults, validated.
    pub notification: Notification,
}

/// The validated items of one request, in the request's order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Batch {
    /// The items.
    pub items: Vec<Item>,
}

/// The answer to a request: its status and JSON body.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Reply {
    /// The HTTP status (200 for results, 202 for an enqueued batch...).
    pub status: StatusCode,
    /// The JSON body.
    pub body: serde_json::Value,
}

impl Reply {
    /// A reply.
    pub fn new(status: StatusCode, body: serde_json::Value) -> Self {
        Reply { status, body }
    }
}

/// What the gateway does with a valid batch.
///
/// [`SendNow`] sends and answers `200` with one result per item. A queue
/// would store each item's [`spec`](Item::spec) with its app's name and
/// answer `202` with the job ids.
pub trait Dispatch: Send + Sync + 'static {
    /// Handles a batch. The gateway bounds the time it may take.
    fn dispatch(&self, batch: Batch) -> BoxFuture<'_, Reply>;

    /// Whether what dispatching needs beyond the apps (a queue server) is
    /// reachable; `Err` says what is not, for `/readyz`.
    fn ready(&self) -> BoxFuture<'_, std::result::Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// A name for `/readyz` and logs (`send`, `enqueue`...).
    fn name(&self) -> &'static str;
}

/// Sends each batch at once and answers `200` with the results, in order:
/// `{"results":[...],"accepted":N,"rejected":N,"failed":N}`, each result
/// with the fields of a bulk send's result lines
/// ([`result_json`](crate::wire::result_json)).
#[derive(Debug, Default, Clone, Copy)]
pub struct SendNow;

impl Dispatch for SendNow {
    fn dispatch(&self, batch: Batch) -> BoxFuture<'_, Reply> {
        Box::pin(send_batch(batch))
    }

    fn name(&self) -> &'static str {
        "send"
    }
}

/// Sends every item at once: each waits for a stream within its client's
/// deadline, so the whole batch resolves within that deadline (the pool,
/// not this loop, bounds what is on the wire).
async fn send_batch(batch: Batch) -> Reply {
    let n = batch.items.len();
    let mut results: Vec<Option<serde_json::Value>> = vec![None; n];
    let (mut accepted, mut rejected, mut failed) = (0u64, 0u64, 0u64);
    let mut outcomes = futures_util::stream::iter(batch.items.into_iter().enumerate())
        .map(|(i, item)| async move {
            let started = Instant::now();
            let result = item.app.client().send(&item.notification).await;
            let elapsed = started.elapsed();
            (i, item, result, elapsed)
        })
        .buffer_unordered(n.max(1));
    while let Some((i, item, result, elapsed)) = outcomes.next().await {
        record(&item, &result, elapsed);
        match &result {
            Ok(r) if r.is_accepted() => accepted += 1,
            Ok(_) => rejected += 1,
            Err(_) => failed += 1,
        }
        results[i] = Some(result_json(
            item.notification.device_token().as_str(),
            &result,
        ));
    }
    let results: Vec<serde_json::Value> = results.into_iter().flatten().collect();
    Reply::new(
        StatusCode::OK,
        json!({"results": results, "accepted": accepted, "rejected": rejected, "failed": failed}),
    )
}

fn record(item: &Item, result: &crate::Result<crate::Response>, elapsed: Duration) {
    item.app.record_outcome(result);
    if let Some(m) = item.app.metrics() {
        m.record(item.notification.push_type(), result, elapsed);
    }
}

/// Adds each batch to a Redis stream for `apns worker`s to send (feature
/// `worker`), and answers `202` with the job ids, in order:
/// `{"enqueued":N,"jobs":[{"job":"<uuid>","entry":"<stream entry id>"},...]}`.
///
/// Each job holds the notification as validated (the app's defaults, such
/// as its topic, filled in) and, as its `app`, the gateway's name for the
/// app, which the workers resolve to credentials (see
/// [`job_app`](Enqueue::job_app) to change that). If Redis fails the
/// answer is `503` (the gateway adds `Retry-After`), and the batch may be
/// in part enqueued.
///
/// ```no_run
/// use std::sync::Arc;
/// use apns_provider::gateway::{Enqueue, Gateway};
/// use apns_provider::worker::Producer;
///
/// # async fn run(builder: apns_provider::gateway::GatewayBuilder) -> apns_provider::Result<()> {
/// let producer = Producer::connect("redis://127.0.0.1:6379", "apns:jobs").await?;
/// let gateway = builder.dispatch(Arc::new(Enqueue::new(producer))).build()?;
/// # Ok(()) }
/// ```
#[cfg(feature = "worker")]
pub struct Enqueue {
    producer: crate::worker::Producer,
    job_app: JobApp,
}

/// What [`Enqueue::job_app`] takes.
#[cfg(feature = "worker")]
type JobApp = Box<dyn Fn(&ServedApp) -> Option<String> + Send + Sync>;

#[cfg(feature = "worker")]
impl std::fmt::Debug for Enqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enqueue")
            .field("producer", &self.producer)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "worker")]
impl Enqueue {
    /// Enqueues with `producer`.
    pub fn new(producer: crate::worker::Producer) -> Self {
        Enqueue {
            producer,
            job_app: Box::new(|app| Some(app.name().to_string())),
        }
    }

    /// What a job's `app` is for an item of `app` (by default the app's
    /// name; `None` for jobs the workers send with their own credentials).
    pub fn job_app(
        mut self,
        f: impl Fn(&ServedApp) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.job_app = Box::new(f);
        self
    }

    async fn enqueue(&self, batch: Batch) -> Reply {
        use crate::worker::Job;
        let jobs: Vec<Job> = batch
            .items
            .iter()
            .map(|item| {
                let mut job =
                    Job::from_notification(uuid::Uuid::new_v4().to_string(), &item.notification);
                job.app = (self.job_app)(&item.app);
                job
            })
            .collect();
        // "May be in part" only when part may really have landed: Redis
        // answers each XADD, so a refusal is known job by job.
        match self.producer.add_each(&jobs).await {
            Ok(each) => {
                let landed: Vec<serde_json::Value> = jobs
                    .iter()
                    .zip(&each)
                    .filter_map(|(job, r)| {
                        let entry = r.as_ref().ok()?;
                        Some(json!({"job": job.id, "entry": entry}))
                    })
                    .collect();
                match each.iter().find_map(|r| r.as_ref().err()) {
                    None => Reply::new(
                        StatusCode::ACCEPTED,
                        json!({"enqueued": landed.len(), "jobs": landed}),
                    ),
                    Some(e) => {
                        tracing::warn!("enqueue failed: {e}");
                        let error = format!(
                            "Redis refused {} of the {} job(s): {e}; the {} listed were enqueued, the others not",
                            jobs.len() - landed.len(),
                            jobs.len(),
                            landed.len()
                        );
                        Reply::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            json!({"error": error, "may_be_in_part": !landed.is_empty(), "enqueued": landed.len(), "jobs": landed}),
                        )
                    }
                }
            }
            Err(f) => {
                tracing::warn!("enqueue failed: {f}");
                let error = if f.may_have_landed {
                    format!("{f}; the batch may be in part enqueued")
                } else {
                    format!("{f}; nothing was enqueued")
                };
                Reply::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": error, "may_be_in_part": f.may_have_landed}),
                )
            }
        }
    }
}

#[cfg(feature = "worker")]
impl Dispatch for Enqueue {
    fn dispatch(&self, batch: Batch) -> BoxFuture<'_, Reply> {
        Box::pin(self.enqueue(batch))
    }

    fn ready(&self) -> BoxFuture<'_, std::result::Result<(), String>> {
        Box::pin(async { self.producer.ping().await.map_err(|e| e.to_string()) })
    }

    fn name(&self) -> &'static str {
        "enqueue"
    }
}
