//! The push route (`POST /3/device/<token>`): the checks APNs applies to a
//! push request, in APNs' order, each with the answer APNs gives. Parsing reuses the crate's own types, so the mock and
//! the client agree on what a valid field is.

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, Method};

use super::records::AcceptedNotification;
use super::rejection::{reject, Rejection};
use super::state::{lock, MockConn, State};
use super::trust::{authenticate, check_certificate_environment};
use crate::notification::{ApnsId, CollapseId, DeviceToken, Priority, PushType};
use crate::response::Reason;

// Named once, not parsed from text at every request.
const AUTHORIZATION: HeaderName = HeaderName::from_static("authorization");
const APNS_ID: HeaderName = HeaderName::from_static("apns-id");
const APNS_EXPIRATION: HeaderName = HeaderName::from_static("apns-expiration");
const APNS_PRIORITY: HeaderName = HeaderName::from_static("apns-priority");
const APNS_TOPIC: HeaderName = HeaderName::from_static("apns-topic");
const APNS_PUSH_TYPE: HeaderName = HeaderName::from_static("apns-push-type");
const APNS_COLLAPSE_ID: HeaderName = HeaderName::from_static("apns-collapse-id");

const APNS_HEADERS: [HeaderName; 7] = [
    AUTHORIZATION,
    APNS_ID,
    APNS_EXPIRATION,
    APNS_PRIORITY,
    APNS_TOPIC,
    APNS_PUSH_TYPE,
    APNS_COLLAPSE_ID,
];

/// Checks a push request; on success, what was accepted.
pub(crate) fn validate(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    payload: &Bytes,
    state: &State,
    conn: &MockConn,
) -> Result<AcceptedNotification, Rejection> {
    if method != Method::POST {
        return Err(reject(Reason::MethodNotAllowed));
    }
    let device_token = path
        .strip_prefix("/3/device/")
        .ok_or_else(|| reject(Reason::BadPath))?;
    if device_token.is_empty() {
        return Err(reject(Reason::MissingDeviceToken));
    }
    // The client's own rules: even-length hex of at most 200 digits.
    if DeviceToken::new(device_token).is_err() {
        return Err(reject(Reason::BadDeviceToken));
    }
    if APNS_HEADERS
        .iter()
        .any(|h| headers.get_all(h).iter().nth(1).is_some())
    {
        return Err(reject(Reason::DuplicateHeaders));
    }
    let text = |name: &HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let apns_id = match text(&APNS_ID) {
        Some(id) => ApnsId::parse(id)
            .map_err(|_| reject(Reason::BadMessageId))?
            .to_string(),
        None => ApnsId::new_v4().to_string(),
    };
    let expiration = match text(&APNS_EXPIRATION) {
        Some(e) => Some(
            e.parse::<u64>()
                .map_err(|_| reject(Reason::BadExpirationDate))?,
        ),
        None => None,
    };
    let priority = match text(&APNS_PRIORITY) {
        Some(p) => Some(
            p.parse::<Priority>()
                .map_err(|_| reject(Reason::BadPriority))?
                .as_u8(),
        ),
        None => None,
    };
    let push_type = match text(&APNS_PUSH_TYPE) {
        Some(t) => t
            .parse::<PushType>()
            .map_err(|_| reject(Reason::InvalidPushType))?,
        None => PushType::Alert,
    };
    let collapse_id = match text(&APNS_COLLAPSE_ID) {
        Some(c) => Some(
            CollapseId::new(c)
                .map_err(|_| reject(Reason::BadCollapseId))?
                .as_str()
                .to_string(),
        ),
        None => None,
    };

    let (key, topic) = match &conn.certificate {
        Some(cert) => {
            check_certificate_environment(cert, state, conn)?;
            // The topic may be omitted when the certificate has just one.
            let topic = match text(&APNS_TOPIC) {
                Some(t) if !t.is_empty() => t.to_string(),
                _ => cert
                    .default_topic()
                    .ok_or_else(|| reject(Reason::MissingTopic))?,
            };
            if !cert.allows_topic(&topic) {
                return Err(reject(Reason::TopicDisallowed));
            }
            (None, topic)
        }
        None => {
            let key = authenticate(text(&AUTHORIZATION), state, conn)?;
            let topic = text(&APNS_TOPIC).ok_or_else(|| reject(Reason::MissingTopic))?;
            if topic.is_empty() {
                return Err(reject(Reason::MissingTopic));
            }
            if !key.allows_topic(topic) {
                return Err(reject(Reason::TopicDisallowed));
            }
            (Some(key), topic.to_string())
        }
    };
    // Each push type has its topic:
    // `docs/apns-facts.md`, "Topic suffixes".
    // A VoIP push to the bare bundle id is for no VoIP token.
    // Apple names no reason for it; the mock answers as for a topic the
    // credentials do not allow.
    if let Some(suffix) = push_type.topic_suffix().filter(|s| !s.is_empty()) {
        if !topic.ends_with(suffix) {
            return Err(reject(Reason::TopicDisallowed));
        }
    }
    if payload.is_empty() {
        return Err(reject(Reason::PayloadEmpty));
    }
    if payload.len() > push_type.payload_limit() {
        return Err(reject(Reason::PayloadTooLarge));
    }
    if let Some(ts) = lock(&state.unregistered)
        .get(&device_token.to_ascii_lowercase())
        .copied()
    {
        return Err(Rejection {
            timestamp_ms: Some(ts),
            ..reject(Reason::Unregistered)
        });
    }
    Ok(AcceptedNotification {
        device_token: device_token.to_string(),
        topic,
        push_type: push_type.as_str().to_string(),
        priority,
        expiration,
        collapse_id,
        apns_id,
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
