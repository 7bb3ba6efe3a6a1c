//! What the gateway does with a batch once every item is valid: send it
//! now and answer with the results ([`SendNow`], the default), or hand it to
//! a queue and answer with job ids (a [`Dispatch`] of your own, such as a
//! Redis Streams producer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use http::StatusCode;
use serde_json::json;

use super::App;
use crate::notification::Notification;
use crate::spec::{result_json, NotificationSpec};

/// One validated notification of a request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Item {
    /// The app it is for.
    pub app: Arc<App>,
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
/// ([`result_json`](crate::spec::result_json)).
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
    if let Some(m) = item.app.metrics() {
        m.record(item.notification.push_type(), result, elapsed);
    }
}
