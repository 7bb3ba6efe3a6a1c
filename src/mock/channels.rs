//! The channel-management host as the mock plays it: the answers to
//! create, read, delete and list, over the registry in the shared state
//! (`docs/apns-facts.md`, "Channel management").

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use super::app::{authorize_app, channel_id_of};
use super::rejection::{reject, Rejection};
use super::route::Route;
use super::state::{lock, MockConn, State};
use crate::broadcast::{StoragePolicy, CHANNEL_PUSH_TYPE};
use crate::response::Reason;

/// A successful channel-management answer.
pub(crate) struct Managed {
    pub status: StatusCode,
    /// `apns-channel-id` of a new channel.
    pub channel_id: Option<String>,
    pub body: Bytes,
    /// What it did to the registry: +1 created, -1 deleted, 0 read.
    pub change: i8,
}

/// Answers a channel-management request on `route`
/// (`Route::Channel` or `Route::AllChannels`).
pub(crate) fn manage(
    method: &Method,
    route: Route<'_>,
    headers: &HeaderMap,
    body: &Bytes,
    state: &State,
    conn: &MockConn,
) -> Result<Managed, Rejection> {
    let (bundle, list) = match route {
        Route::Channel(b) => (b, false),
        Route::AllChannels(b) => (b, true),
        Route::Push | Route::Broadcast(_) => return Err(reject(Reason::BadPath)),
    };
    let allowed = match list {
        true => *method == Method::GET,
        false => [Method::POST, Method::GET, Method::DELETE].contains(method),
    };
    if !allowed {
        return Err(reject(Reason::MethodNotAllowed));
    }
    authorize_app(bundle, headers, &["apns-channel-id"], state, conn)?;
    let env = state.environment;
    let ok = |status, body: Bytes| Managed {
        status,
        channel_id: None,
        body,
        change: 0,
    };
    if list {
        let channels = lock(&state.channels)
            .list(env, bundle)
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        let body = serde_json::json!({ "channels": channels }).to_string();
        return Ok(ok(StatusCode::OK, Bytes::from(body)));
    }
    if *method == Method::POST {
        let policy = create_request(body)?;
        let id = lock(&state.channels).create(env, bundle, policy)?;
        return Ok(Managed {
            status: StatusCode::CREATED,
            channel_id: Some(id.as_str().to_string()),
            body: Bytes::new(),
            change: 1,
        });
    }
    let id = channel_id_of(headers)?;
    if *method == Method::DELETE {
        if !lock(&state.channels).delete(env, bundle, &id) {
            return Err(reject(Reason::ChannelNotRegistered));
        }
        return Ok(Managed {
            change: -1,
            ..ok(StatusCode::NO_CONTENT, Bytes::new())
        });
    }
    let policy = lock(&state.channels).registered(env, bundle, &id)?;
    let body = serde_json::json!({
        "message-storage-policy": policy.as_u8(),
        "push-type": CHANNEL_PUSH_TYPE,
    })
    .to_string();
    Ok(ok(StatusCode::OK, Bytes::from(body)))
}

/// The body of a create: `{"message-storage-policy": 0|1, "push-type":
/// "LiveActivity"}`. (unsure) Apple does not document each malformed
/// body's reason; the mock answers `BadRequestPayload` for a body that is
/// not a JSON object, `MissingPushType`/`InvalidPushType` for the push type
/// (channels are for Live Activities only), and `BadRequestParams` for the
/// policy.
fn create_request(body: &Bytes) -> Result<StoragePolicy, Rejection> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| reject(Reason::BadRequestPayload))?;
    let object = value
        .as_object()
        .ok_or_else(|| reject(Reason::BadRequestPayload))?;
    match object.get("push-type").map(|t| t.as_str()) {
        None => return Err(reject(Reason::MissingPushType)),
        Some(Some(t)) if t.eq_ignore_ascii_case(CHANNEL_PUSH_TYPE) => {}
        Some(_) => return Err(reject(Reason::InvalidPushType)),
    }
    object
        .get("message-storage-policy")
        .and_then(|p| p.as_u64())
        .and_then(|p| u8::try_from(p).ok())
        .and_then(StoragePolicy::from_u8)
        .ok_or_else(|| reject(Reason::BadRequestParams))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_bodies() {
        let body = |s: &str| Bytes::from(s.to_string());
        let reason = |s: &str| create_request(&body(s)).err().map(|r| r.reason);
        assert_eq!(
            create_request(&body(
                r#"{"message-storage-policy":1,"push-type":"LiveActivity"}"#
            ))
            .ok(),
            Some(StoragePolicy::MostRecentMessage)
        );
        assert_eq!(reason("[]"), Some(Reason::BadRequestPayload));
        assert_eq!(
            reason(r#"{"message-storage-policy":0}"#),
            Some(Reason::MissingPushType)
        );
        assert_eq!(
            reason(r#"{"message-storage-policy":0,"push-type":"Alert"}"#),
            Some(Reason::InvalidPushType)
        );
        assert_eq!(
            reason(r#"{"message-storage-policy":2,"push-type":"LiveActivity"}"#),
            Some(Reason::BadRequestParams)
        );
    }
}
