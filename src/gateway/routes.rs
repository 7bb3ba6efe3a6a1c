//! The gateway's HTTP surface (axum): routes, authentication, limits.
//!
//! | route | auth | what |
//! |---|---|---|
//! | `POST /v1/notifications` | bearer | validate every item, then dispatch |
//! | `POST /v1/broadcasts`, `/v1/channels...` | bearer | broadcast push (see `broadcast.rs`) |
//! | `GET /healthz` | none | the process is alive |
//! | `GET /readyz` | none | every app's client connects and its recent sends do not all fail; the dispatcher is ready |
//! | `GET /metrics` | bearer, unless public | Prometheus text |
//!
//! Order of checks on `/v1/`: authentication (cheap; an unauthenticated
//! flood takes no slot), then the concurrency bound (503 with
//! `Retry-After` when full, never a queue), then the request timeout around
//! reading the body and dispatching.
//!
//! Outermost, every answer is counted by route and status
//! (`apns_gateway_requests_total`), refusals included.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::state::Shared;
use super::validate::{self, Refusal};
use crate::client::ConnectionState;

type St = State<Arc<Shared>>;

/// The router of a gateway.
pub(crate) fn router(shared: Arc<Shared>, metrics_public: bool) -> Router {
    let api = Router::new()
        .route("/v1/notifications", post(notifications))
        .route("/v1/broadcasts", post(super::broadcast::broadcast))
        .route(
            "/v1/channels",
            post(super::broadcast::create).get(super::broadcast::list),
        )
        .route(
            "/v1/channels/{id}",
            get(super::broadcast::show).delete(super::broadcast::delete),
        )
        .layer(middleware::from_fn_with_state(shared.clone(), bounded))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            authenticated,
        ));
    let mut metrics = Router::new().route("/metrics", get(metrics));
    if !metrics_public {
        metrics = metrics.layer(middleware::from_fn_with_state(
            shared.clone(),
            authenticated,
        ));
    }
    Router::new()
        .merge(api)
        .merge(metrics)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), counted))
        .with_state(shared)
}

/// The routes, as `apns_gateway_requests_total` labels them; anything else
/// is `other`, so the label's values stay few.
const ROUTES: [&str; 7] = [
    "/v1/notifications",
    "/v1/broadcasts",
    "/v1/channels",
    "/v1/channels/{id}",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// Counts every answer by route and status (outermost: 401, 413, 503 and
/// 504 included).
async fn counted(State(s): St, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| ROUTES.iter().find(|r| **r == m.as_str()))
        .copied()
        .unwrap_or("other");
    let response = next.run(request).await;
    s.metrics.gateway_request(route, response.status().as_u16());
    response
}

/// A JSON error answer: `{"error": message, ...extra}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

async fn authenticated(State(s): St, request: Request, next: Next) -> Response {
    let ok = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| s.tokens.check_header(v.as_bytes()));
    if !ok {
        let why = if request.headers().contains_key(header::AUTHORIZATION) {
            "unauthorized: the API token is not valid"
        } else {
            "unauthorized: send Authorization: Bearer <API token>"
        };
        let mut response = error(StatusCode::UNAUTHORIZED, why);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

async fn bounded(State(s): St, request: Request, next: Next) -> Response {
    let Ok(_slot) = s.slots.clone().try_acquire_owned() else {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "overloaded: {} requests are in progress, the most this gateway takes at once; retry later",
                s.limits.max_concurrent_requests
            ),
        );
        let secs = s.limits.retry_after.as_secs().max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    };
    let limit = s.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the request took longer than {limit:?}; some notifications may have been sent (set the gateway's request timeout above the notifications' timeout)"),
        ),
    }
}

async fn notifications(State(s): St, headers: HeaderMap, body: Body) -> Response {
    let max = s.limits.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {max} bytes, this gateway's limit; send fewer notifications per request"),
        )
    };
    if declared.is_some_and(|n| n > max as u64) {
        return too_large();
    }
    // One buffer, reserved from Content-Length: the body is held once.
    let bytes = match super::body::read(body, declared, max).await {
        Ok(b) => b,
        Err(super::body::ReadError::TooLarge) => return too_large(),
        // A client that went away mid-body.
        Err(super::body::ReadError::Failed(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    };
    let batch = match validate::batch(&bytes, &s.apps, s.limits.max_items) {
        Ok(batch) => batch,
        Err(Refusal::NotJson(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        }
        Err(Refusal::Shape(why)) => return error(StatusCode::UNPROCESSABLE_ENTITY, why),
        Err(Refusal::TooMany { limit }) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("over {limit} notifications in one request; at most {limit}"),
            )
        }
        Err(Refusal::Invalid { problems, total }) => {
            let first = &problems[0];
            let message = format!(
                "{total} invalid notification(s), nothing was sent; first: index {}{}: {}",
                first.index,
                first
                    .field
                    .as_deref()
                    .map(|f| format!(", field {f}"))
                    .unwrap_or_default(),
                first.message
            );
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({"error": message, "invalid": total, "errors": problems})),
            )
                .into_response();
        }
    };
    // The items own what they need: the body is not held while they are
    // sent (up to --max-body less per request in flight).
    drop(bytes);
    let reply = s.dispatch.dispatch(batch).await;
    let mut response = (reply.status, axum::Json(reply.body)).into_response();
    // A dispatcher that cannot take the batch now (its queue is away):
    // when to try again, as for overload.
    if reply.status == StatusCode::SERVICE_UNAVAILABLE {
        let secs = s.limits.retry_after.as_secs().max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

async fn metrics(State(s): St) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

/// How long `/readyz` waits for a connection to be made.
const READY_WITHIN: Duration = Duration::from_secs(5);

async fn readyz(State(s): St) -> Response {
    let mut apps = serde_json::Map::new();
    let mut ready = true;
    for (name, app) in &s.apps.map {
        let client = app.client();
        let open = client
            .connections()
            .iter()
            .any(|c| c.state == ConnectionState::Open);
        let state = if let Err(why) = app.recent.verdict() {
            Err(why)
        } else if open {
            Ok(())
        } else {
            match tokio::time::timeout(READY_WITHIN, client.warm_up()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no connection to APNs within {READY_WITHIN:?}")),
            }
        };
        ready &= state.is_ok();
        apps.insert(
            name.clone(),
            match state {
                Ok(()) => json!({"ready": true, "endpoint": client.endpoint().to_string()}),
                Err(e) => {
                    json!({"ready": false, "endpoint": client.endpoint().to_string(), "error": e})
                }
            },
        );
    }
    let dispatch = match s.dispatch.ready().await {
        Ok(()) => json!({"name": s.dispatch.name(), "ready": true}),
        Err(e) => {
            ready = false;
            json!({"name": s.dispatch.name(), "ready": false, "error": e})
        }
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"ready": ready, "apps": apps, "dispatch": dispatch})),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not found: the API is POST /v1/notifications, POST /v1/broadcasts, /v1/channels; also GET /healthz, /readyz, /metrics",
    )
}
