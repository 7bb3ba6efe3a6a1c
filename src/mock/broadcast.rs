//! A broadcast send as APNs checks it (`POST /4/broadcasts/apps/<bundle
//! id>`); the checks it shares with channel management are in `app.rs`.
//! The rules are in (`docs/apns-facts.md`, "Broadcast") and its
//! subsections; where Apple does not document which reason a check gives,
//! the mock's choice is marked *(unsure)*.

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::app::{authorize_app, channel_id_of};
use super::records::AcceptedBroadcast;
use super::rejection::{reject, Rejection};
use super::route::request_id_of;
use super::state::{lock, MockConn, State};
use crate::broadcast::{StoragePolicy, BROADCAST_PAYLOAD_LIMIT};
use crate::notification::{Priority, PushType};
use crate::response::Reason;

const BROADCAST_HEADERS: [&str; 4] = [
    "apns-channel-id",
    "apns-push-type",
    "apns-priority",
    "apns-expiration",
];

/// Checks a broadcast send; on success, what was accepted (without its
/// unique id, which the answer adds).
pub(crate) fn validate_broadcast(
    method: &Method,
    bundle: &str,
    headers: &HeaderMap,
    payload: &Bytes,
    state: &State,
    conn: &MockConn,
) -> Result<AcceptedBroadcast, Rejection> {
    if method != Method::POST {
        return Err(reject(Reason::MethodNotAllowed));
    }
    let key = authorize_app(bundle, headers, &BROADCAST_HEADERS, state, conn)?;
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    match text("apns-push-type") {
        None => return Err(reject(Reason::MissingPushType)),
        Some(t) if t != PushType::Liveactivity.as_str() => {
            return Err(reject(Reason::InvalidPushType))
        }
        Some(_) => {}
    }
    let channel_id = channel_id_of(headers)?;
    // Both are required (`docs/apns-facts.md`, "Broadcast send"). (unsure)
    // Apple does not say what a missing one gets; the mock answers as for
    // a bad one.
    let priority = text("apns-priority")
        .and_then(|p| p.parse::<Priority>().ok())
        .ok_or_else(|| reject(Reason::BadPriority))?;
    let expiration = text("apns-expiration")
        .and_then(|e| e.parse::<u64>().ok())
        .ok_or_else(|| reject(Reason::BadExpirationDate))?;
    if payload.is_empty() {
        return Err(reject(Reason::PayloadEmpty));
    }
    // Payload ≤ 5,120 bytes (`docs/apns-facts.md`, "Broadcast send").
    if payload.len() > BROADCAST_PAYLOAD_LIMIT {
        return Err(reject(Reason::PayloadTooLarge));
    }
    let policy = lock(&state.channels).registered(state.environment, bundle, &channel_id)?;
    // "A non-zero expiration on a no-storage channel is rejected"
    // (`docs/apns-facts.md`, "Broadcast send").
    if policy == StoragePolicy::NoStorage && expiration != 0 {
        return Err(reject(Reason::BadExpirationDate));
    }
    Ok(AcceptedBroadcast {
        bundle_id: bundle.to_string(),
        channel_id: channel_id.as_str().to_string(),
        push_type: PushType::Liveactivity.as_str().to_string(),
        priority: priority.as_u8(),
        expiration,
        request_id: request_id_of(headers),
        unique_id: String::new(),
        payload: payload.clone(),
        key_id: key
            .map(|k| k.key_id().as_str().to_string())
            .unwrap_or_default(),
        team_id: key
            .map(|k| k.team_id().as_str().to_string())
            .unwrap_or_default(),
        connection: conn.id,
        certificate_subject: conn.certificate.as_ref().map(|c| c.subject.clone()),
    })
}
