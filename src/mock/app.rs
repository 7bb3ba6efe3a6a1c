//! The checks every request to an app's broadcast routes shares (a
//! broadcast send and channel management): the bundle id in the path,
//! repeated headers, the request id, the app's credentials, and the
//! `apns-channel-id` header.

use http::HeaderMap;

use super::keys::TrustedKey;
use super::rejection::{reject, Rejection};
use super::state::{MockConn, State};
use super::trust::{authenticate, check_certificate_environment};
use crate::broadcast::ChannelId;
use crate::notification::{ApnsId, PushType, Topic};
use crate::response::Reason;

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
            check_certificate_environment(cert, state, conn)?;
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
