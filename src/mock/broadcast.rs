//! The broadcast API as APNs checks it: the routes of the two broadcast
//! hosts, which the mock plays on its one listener, the credentials of an
//! app-level request, and the checks of a broadcast send (`POST
//! /4/broadcasts/apps/<bundle id>`). The rules are in
//! (`docs/apns-facts.md`, "Broadcast") and its subsections; where Apple does
//! not document which reason a check gives, the mock's choice is marked
//! *(unsure)*.

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::auth::{authenticate, TrustedKey};
use super::channels::policy_of;
use super::faults::go_away_now;
use super::records::AcceptedBroadcast;
use super::server::{MockConn, State};
use super::validate::{reject, Rejection};
use crate::broadcast::{ChannelId, StoragePolicy, BROADCAST_PAYLOAD_LIMIT};
use crate::notification::{ApnsId, Priority, PushType, Topic};
use crate::response::Reason;

/// Where a request goes, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `/3/device/...`, and any path no other route claims (answered
    /// `BadPath` by the push checks).
    Push,
    /// `/4/broadcasts/apps/<bundle>`.
    Broadcast(&'a str),
    /// `/1/apps/<bundle>/channels`: create, read, delete.
    Channel(&'a str),
    /// `/1/apps/<bundle>/all-channels`: list.
    AllChannels(&'a str),
}

impl<'a> Route<'a> {
    pub(crate) fn of(path: &'a str) -> Route<'a> {
        if let Some(bundle) = path.strip_prefix("/4/broadcasts/apps/") {
            return Route::Broadcast(bundle);
        }
        let Some(rest) = path.strip_prefix("/1/apps/") else {
            return Route::Push;
        };
        if let Some(bundle) = rest.strip_suffix("/channels") {
            Route::Channel(bundle)
        } else if let Some(bundle) = rest.strip_suffix("/all-channels") {
            Route::AllChannels(bundle)
        } else {
            Route::Push
        }
    }

    /// Answers carry `apns-request-id` on the broadcast routes, `apns-id`
    /// on pushes.
    pub(crate) fn is_push(self) -> bool {
        self == Route::Push
    }
}

/// The `apns-request-id` of an answer: the request's, echoed, or a new one
/// (`docs/apns-facts.md`, "Broadcast": "the response echoes it or carries
/// a server-made one").
pub(crate) fn request_id_of(headers: &HeaderMap) -> String {
    headers
        .get("apns-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| ApnsId::parse(v).ok())
        .unwrap_or_else(ApnsId::new_v4)
        .to_string()
}

/// The checks every request to an app's broadcast routes shares: a bundle
/// id in the path, no repeated header, a request id that is a UUID, and
/// credentials for that app. The path carries the bare bundle id: a
/// push-type suffix is `TopicDisallowed`
/// (`docs/apns-facts.md`, "Broadcast send": no topic suffix). Returns the
/// token's key (`None` with a certificate).
pub(crate) fn authorize_app<'s>(
    bundle: &str,
    headers: &HeaderMap,
    checked: &[&str],
    state: &'s State,
    conn: &MockConn,
) -> Result<Option<&'s TrustedKey>, Rejection> {
    if Topic::new(bundle).is_err() {
        return Err(reject(Reason::BadPath));
    }
    if checked
        .iter()
        .chain(["authorization", "apns-request-id"].iter())
        .any(|h| headers.get_all(*h).iter().count() > 1)
    {
        return Err(reject(Reason::DuplicateHeaders));
    }
    // (unsure) Apple does not say which reason a malformed
    // apns-request-id gets; the mock answers as for a bad apns-id.
    if let Some(id) = headers.get("apns-request-id") {
        if id
            .to_str()
            .ok()
            .and_then(|v| ApnsId::parse(v).ok())
            .is_none()
        {
            return Err(reject(Reason::BadMessageId));
        }
    }
    let key = match &conn.certificate {
        Some(cert) => {
            if !cert.environment.allows(state.environment) {
                if state.bad_environment_goaway {
                    go_away_now(state, conn, "BadCertificateEnvironment");
                }
                return Err(reject(Reason::BadCertificateEnvironment));
            }
            if !cert.allows_topic(bundle) {
                return Err(reject(Reason::TopicDisallowed));
            }
            None
        }
        None => {
            let header = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap_or("\u{fffd}"));
            let key = authenticate(header, state, conn)?;
            if !key.allows_topic(bundle) {
                return Err(reject(Reason::TopicDisallowed));
            }
            Some(key)
        }
    };
    let suffixed = PushType::ALL
        .iter()
        .filter_map(|t| t.topic_suffix())
        .any(|s| !s.is_empty() && bundle.ends_with(s));
    if suffixed {
        return Err(reject(Reason::TopicDisallowed));
    }
    Ok(key)
}

/// The channel named by `apns-channel-id`: `MissingChannelId` without one,
/// `BadChannelId` when it is not base64.
pub(crate) fn channel_id_of(headers: &HeaderMap) -> Result<ChannelId, Rejection> {
    let value = headers
        .get("apns-channel-id")
        .ok_or_else(|| reject(Reason::MissingChannelId))?;
    value
        .to_str()
        .ok()
        .and_then(|v| ChannelId::new(v).ok())
        .ok_or_else(|| reject(Reason::BadChannelId))
}

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
    let policy = policy_of(state, bundle, &channel_id)?;
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

#[cfg(test)]
mod tests {
    use super::Route;

    #[test]
    fn routes_by_path() {
        assert_eq!(Route::of("/3/device/abcd"), Route::Push);
        assert_eq!(
            Route::of("/4/broadcasts/apps/com.a"),
            Route::Broadcast("com.a")
        );
        assert_eq!(Route::of("/1/apps/com.a/channels"), Route::Channel("com.a"));
        assert_eq!(
            Route::of("/1/apps/com.a/all-channels"),
            Route::AllChannels("com.a")
        );
        assert_eq!(Route::of("/1/apps/com.a/other"), Route::Push);
        assert_eq!(Route::of("/"), Route::Push);
    }
}
