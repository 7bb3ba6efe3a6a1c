//! Broadcast push (iOS 18 Live Activities) through the gateway's apps:
//! `POST /v1/broadcasts` and the `/v1/channels` routes.
//!
//! | route | body or query | success |
//! |---|---|---|
//! | `POST /v1/broadcasts` | `{"channel_id", "payload", "priority"?, "expiration"?, "request_id"?, "app"?, "bundle_id"?}` | `200 {"status":200,"channel_id","request_id","apns_unique_id"}` |
//! | `POST /v1/channels` | `{"storage"?: "none"\|"most-recent", "app"?, "bundle_id"?}` | `201 {"channel_id","storage"}` |
//! | `GET /v1/channels` | `?app=&bundle_id=` | `200 {"bundle_id","channels":[...]}` |
//! | `GET /v1/channels/{id}` | `?app=&bundle_id=` | `200 {"channel_id","storage","push_type"}` |
//! | `DELETE /v1/channels/{id}` | `?app=&bundle_id=` | `200 {"channel_id","deleted":true}` |
//!
//! Each is one request to APNs, sent at once whatever the dispatcher (a
//! queue takes notification batches, not these). The bundle id defaults to
//! the app's topic (without a `.push-type.liveactivity` suffix). APNs'
//! rejection is answered with APNs' status and
//! `{"error","status","reason","request_id"}`; a field of ours that is
//! wrong is `422` naming it; APNs out of reach is `502`, or `504` past the
//! deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::apps::ServedApp;
use super::state::Shared;
use crate::broadcast::{Broadcast, ChannelId, StoragePolicy};
use crate::error::Error;
use crate::notification::{ApnsId, Expiration, Priority, PushType};
use crate::payload::Payload;

type St = State<Arc<Shared>>;

/// An answer other than success: a status and a JSON body (small, so
/// results carrying it stay small).
struct Refused(StatusCode, Value);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

const LIVE_ACTIVITY_SUFFIX: &str = ".push-type.liveactivity";

/// A refusal before anything is sent: `422` naming the field.
fn invalid(field: &str, message: impl std::fmt::Display) -> Refused {
    Refused(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"error": format!("invalid {field}: {message}"), "field": field}),
    )
}

/// The app and bundle id a request names (or the defaults).
fn target(
    s: &Shared,
    app: Option<&str>,
    bundle_id: Option<&str>,
) -> Result<(Arc<ServedApp>, String), Refused> {
    let app = s.apps.pick(app).map_err(|e| invalid("app", e))?.clone();
    let bundle = match bundle_id {
        Some(b) => b.to_string(),
        None => match app.defaults().default_topic() {
            Some(t) => t
                .strip_suffix(LIVE_ACTIVITY_SUFFIX)
                .unwrap_or(t)
                .to_string(),
            None => {
                return Err(invalid(
                    "bundle_id",
                    "missing: the app has no default topic; give the app's bundle id",
                ))
            }
        },
    };
    Ok((app, bundle))
}

/// What a failed call answers.
fn failure(e: Error) -> Response {
    match e {
        Error::Rejected(answer) => rejected(&answer),
        e if e.is_invalid_input() => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        e => {
            let status = if e.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else if e.is_connection() {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (
                status,
                axum::Json(json!({
                    "error": e.to_string(),
                    "may_have_been_delivered": e.may_have_been_delivered(),
                })),
            )
                .into_response()
        }
    }
}

/// APNs' rejection, with APNs' status.
fn rejected(answer: &crate::Response) -> Response {
    let status = StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    (
        status,
        axum::Json(json!({
            "error": format!("rejected by APNs: {}", answer.describe()),
            "status": answer.status(),
            "reason": answer.reason().map(|r| r.as_str()),
            "request_id": answer.apns_request_id(),
        })),
    )
        .into_response()
}

/// The body as a JSON object with only `allowed` fields, each given once
/// (no key twice at any depth: parsers disagree on which copy wins).
fn object(body: &[u8], allowed: &[&str]) -> Result<serde_json::Map<String, Value>, Refused> {
    use super::body::{cut, ObjectError};
    use super::validate::{MAX_FIELD_NAME, MAX_MESSAGE};
    super::body::object(body, allowed).map_err(|e| match e {
        ObjectError::NotJson(e) => Refused(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("the body is not JSON: {e}")}),
        ),
        ObjectError::NotObject => Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "the body must be a JSON object"}),
        ),
        // What is quoted from the body is cut: the answer stays small.
        ObjectError::Unknown(unknown) => invalid(
            &cut(unknown, MAX_FIELD_NAME),
            format!("unknown field; expected {}", allowed.join(", ")),
        ),
        ObjectError::Field((Some(field), message)) => {
            invalid(&cut(field, MAX_FIELD_NAME), cut(message, MAX_MESSAGE))
        }
        ObjectError::Field((None, message)) => invalid("body", cut(message, MAX_MESSAGE)),
    })
}

fn text<'a>(
    map: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, Refused> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

/// `POST /v1/broadcasts`.
pub(crate) async fn broadcast(State(s): St, body: axum::body::Bytes) -> Response {
    const FIELDS: [&str; 7] = [
        "app",
        "bundle_id",
        "channel_id",
        "payload",
        "priority",
        "expiration",
        "request_id",
    ];
    let map = match object(&body, &FIELDS) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let built = (|| -> Result<_, Refused> {
        let (app, bundle) = target(&s, text(&map, "app")?, text(&map, "bundle_id")?)?;
        let channel = text(&map, "channel_id")?.ok_or_else(|| invalid("channel_id", "missing"))?;
        let payload = match map.get("payload") {
            Some(Value::String(raw)) => Payload::raw(raw.clone().into_bytes()),
            Some(v @ Value::Object(_)) => Payload::raw(v.to_string().into_bytes()),
            _ => return Err(invalid("payload", "missing: a JSON object (or its text)")),
        }
        .map_err(|e| invalid("payload", e))?;
        let mut b = Broadcast::builder(&bundle, channel, payload);
        match map.get("priority") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                b = b.priority(
                    n.to_string()
                        .parse::<Priority>()
                        .map_err(|e| invalid("priority", e))?,
                )
            }
            Some(_) => return Err(invalid("priority", "must be 10, 5 or 1")),
        }
        match map.get("expiration") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                b = b.expiration(
                    n.to_string()
                        .parse::<Expiration>()
                        .map_err(|e| invalid("expiration", e))?,
                )
            }
            Some(Value::String(t)) => {
                b = b.expiration(
                    t.parse::<Expiration>()
                        .map_err(|e| invalid("expiration", e))?,
                )
            }
            Some(_) => return Err(invalid("expiration", "must be UNIX seconds or +DURATION")),
        }
        if let Some(id) = text(&map, "request_id")? {
            b = b.request_id(ApnsId::parse(id).map_err(|e| invalid("request_id", e))?);
        }
        let broadcast = b.build().map_err(|e| match &e {
            Error::InvalidField { field, .. } => invalid(field, &e),
            _ => invalid("broadcast", &e),
        })?;
        Ok((app, broadcast))
    })();
    let (app, broadcast) = match built {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let started = Instant::now();
    let result = app.client().broadcast(&broadcast).await;
    if let Some(m) = app.metrics() {
        m.record(PushType::Liveactivity, &result, started.elapsed());
    }
    match result {
        Ok(r) if r.is_success() => (
            StatusCode::OK,
            axum::Json(json!({
                "status": r.status(),
                "channel_id": broadcast.channel_id().as_str(),
                "request_id": r.apns_request_id(),
                "apns_unique_id": r.apns_unique_id(),
            })),
        )
            .into_response(),
        Ok(r) => rejected(&r),
        Err(e) => failure(e),
    }
}

/// `POST /v1/channels`.
pub(crate) async fn create(State(s): St, body: axum::body::Bytes) -> Response {
    let map = match object(&body, &["app", "bundle_id", "storage"]) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let parsed = (|| -> Result<_, Refused> {
        let (app, bundle) = target(&s, text(&map, "app")?, text(&map, "bundle_id")?)?;
        let storage = match text(&map, "storage")? {
            Some(p) => p
                .parse::<StoragePolicy>()
                .map_err(|e| invalid("storage", e))?,
            None => StoragePolicy::NoStorage,
        };
        Ok((app, bundle, storage))
    })();
    let (app, bundle, storage) = match parsed {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    match app.client().channels().create(&bundle, storage).await {
        Ok(id) => (
            StatusCode::CREATED,
            axum::Json(json!({"channel_id": id.as_str(), "storage": storage.as_str()})),
        )
            .into_response(),
        Err(e) => failure(e),
    }
}

type Params = Query<HashMap<String, String>>;

fn from_query(
    s: &Shared,
    q: &HashMap<String, String>,
) -> Result<(Arc<ServedApp>, String), Refused> {
    if let Some(unknown) = q.keys().find(|k| *k != "app" && *k != "bundle_id") {
        return Err(invalid(
            unknown,
            "unknown parameter; expected app, bundle_id",
        ));
    }
    target(
        s,
        q.get("app").map(String::as_str),
        q.get("bundle_id").map(String::as_str),
    )
}

/// `GET /v1/channels`.
pub(crate) async fn list(State(s): St, Query(q): Params) -> Response {
    let (app, bundle) = match from_query(&s, &q) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    match app.client().channels().list(&bundle).await {
        Ok(ids) => {
            let ids: Vec<&str> = ids.iter().map(ChannelId::as_str).collect();
            (
                StatusCode::OK,
                axum::Json(json!({"bundle_id": bundle, "channels": ids})),
            )
                .into_response()
        }
        Err(e) => failure(e),
    }
}

fn channel_id(id: &str) -> Result<ChannelId, Refused> {
    ChannelId::new(id).map_err(|e| invalid("channel_id", e))
}

/// `GET /v1/channels/{id}`.
pub(crate) async fn show(State(s): St, Path(id): Path<String>, Query(q): Params) -> Response {
    let (app, bundle, id) = match from_query(&s, &q).and_then(|(a, b)| Ok((a, b, channel_id(&id)?)))
    {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    match app.client().channels().get(&bundle, &id).await {
        Ok(info) => (
            StatusCode::OK,
            axum::Json(json!({
                "channel_id": info.channel_id.as_str(),
                "storage": info.storage_policy.as_str(),
                "push_type": info.push_type,
            })),
        )
            .into_response(),
        Err(e) => failure(e),
    }
}

/// `DELETE /v1/channels/{id}`.
pub(crate) async fn delete(State(s): St, Path(id): Path<String>, Query(q): Params) -> Response {
    let (app, bundle, id) = match from_query(&s, &q).and_then(|(a, b)| Ok((a, b, channel_id(&id)?)))
    {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    match app.client().channels().delete(&bundle, &id).await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(json!({"channel_id": id.as_str(), "deleted": true})),
        )
            .into_response(),
        Err(e) => failure(e),
    }
}
