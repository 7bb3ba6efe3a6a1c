//! [`Broadcast`]: one Live Activity notification to a channel, with its
//! path and headers encoded once, and its lints.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use super::ChannelId;
use crate::error::{Error, Result};
use crate::notification::{
    expiration_lint, header_value, live_activity_lints, ApnsId, Expiration, Lint, Priority,
    PushType, Topic,
};
use crate::payload::{EventSeen, Payload, PayloadSummary};

/// The payload limit of a broadcast (`docs/apns-facts.md`, "Broadcast send":
/// payload at most 5,120 bytes).
pub const BROADCAST_PAYLOAD_LIMIT: usize = 5120;

/// One notification to a broadcast channel: `POST
/// /4/broadcasts/apps/<bundle id>` with `apns-channel-id`, `apns-push-type:
/// liveactivity`, `apns-priority` and `apns-expiration` (all required by
/// APNs, so always sent), and `apns-request-id` when set.
///
/// ```
/// # use apns_provider::broadcast::Broadcast;
/// # use apns_provider::payload::LiveActivityEvent;
/// # use apns_provider::{Expiration, Payload, Priority};
/// let payload = Payload::builder()
///     .event(LiveActivityEvent::Update)
///     .timestamp(1_750_000_000)
///     .content_state(serde_json::json!({"score": "2-1"}))
///     .build();
/// let b = Broadcast::builder("com.example.app", "dHN0LXNyY2gtY2hubA==", payload)
///     .priority(Priority::Normal)
///     .build()?;
/// assert_eq!(b.path(), "/4/broadcasts/apps/com.example.app");
/// assert_eq!(b.expiration(), Expiration::DoNotStore); // the default: right for every channel
/// assert!(b.lints().is_empty());
/// # Ok::<(), apns_provider::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Broadcast {
    pub(crate) bundle_id: Topic,
    pub(crate) channel_id: ChannelId,
    pub(crate) priority: Priority,
    pub(crate) expiration: Expiration,
    pub(crate) request_id: Option<ApnsId>,
    pub(crate) payload: Bytes,
    payload_has: PayloadSummary,
    // Built once, like a notification's, so a send encodes nothing.
    pub(crate) path: http::uri::PathAndQuery,
    pub(crate) headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl Broadcast {
    /// Starts a broadcast of `payload` to `channel_id`, a channel of the app
    /// `bundle_id` (the bare bundle id: no push-type suffix).
    pub fn builder(
        bundle_id: impl AsRef<str>,
        channel_id: impl AsRef<str>,
        payload: Payload,
    ) -> BroadcastBuilder {
        BroadcastBuilder {
            bundle_id: super::bundle_id(bundle_id),
            channel_id: ChannelId::new(channel_id),
            payload,
            priority: None,
            expiration: None,
            request_id: None,
            error: None,
        }
    }

    /// The app's bundle id (the path's).
    pub fn bundle_id(&self) -> &Topic {
        &self.bundle_id
    }
    /// The channel.
    pub fn channel_id(&self) -> &ChannelId {
        &self.channel_id
    }
    /// `apns-priority` (default 10).
    pub fn priority(&self) -> Priority {
        self.priority
    }
    /// `apns-expiration` (default 0: do not store).
    pub fn expiration(&self) -> Expiration {
        self.expiration
    }
    /// `apns-request-id`, if set (APNs makes one otherwise).
    pub fn request_id(&self) -> Option<ApnsId> {
        self.request_id
    }
    /// The encoded JSON payload, exactly as it will be sent.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
    /// The request path, `/4/broadcasts/apps/<bundle id>`.
    pub fn path(&self) -> &str {
        self.path.as_str()
    }
    /// The `apns-*` headers, in the order they are sent (no
    /// `authorization`: the client adds it).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or_default()))
    }

    /// Likely mistakes APNs would accept, or would drop silently: the Live
    /// Activity payload rules, a bundle id with a push-type suffix (APNs
    /// answers `TopicDisallowed`), a start event (broadcasts update and end
    /// activities; starting one is a push-to-start notification to a device
    /// with `input-push-channel`), an expiration that looks like a duration.
    ///
    /// ```
    /// # use apns_provider::broadcast::Broadcast;
    /// # use apns_provider::Payload;
    /// let b = Broadcast::builder("com.example.app.push-type.liveactivity", "QUJD", Payload::alert("hi")).build()?;
    /// let codes: Vec<_> = b.lints().iter().map(|l| l.code).collect();
    /// assert!(codes.contains(&"broadcast-bundle-id") && codes.contains(&"live-activity-event"));
    /// # Ok::<(), apns_provider::Error>(())
    /// ```
    pub fn lints(&self) -> Vec<Lint> {
        let mut lints = Vec::new();
        let mut lint = |code, message: String| lints.push(Lint { code, message });
        let bundle = self.bundle_id.as_str();
        // The path carries the bare bundle id; a suffix is TopicDisallowed
        // (`docs/apns-facts.md`, "Broadcast send": no topic suffix).
        if let Some(suffix) = PushType::ALL
            .iter()
            .filter_map(|t| t.topic_suffix())
            .find(|s| !s.is_empty() && bundle.ends_with(s))
        {
            lint(
                "broadcast-bundle-id",
                format!("bundle id {bundle} ends with the push-type suffix {suffix}; a broadcast's path carries the bare bundle id (APNs answers TopicDisallowed)"),
            );
        }
        if self.payload_has.live.event == Some(EventSeen::Start) {
            lint(
                "broadcast-start",
                "a broadcast updates or ends the Live Activities subscribed to a channel; to start one, send a push-to-start notification to a device with aps.input-push-channel".into(),
            );
        }
        if let Some(message) = expiration_lint(Some(self.expiration)) {
            lint("expiration-duration", message);
        }
        if self.payload_has.empty {
            lint(
                "payload-empty-aps",
                "the payload is {\"aps\":{}}: nothing to update; add aps.event and aps.content-state".into(),
            );
        } else {
            live_activity_lints(&self.payload_has.live, &mut lint);
        }
        lints
    }
}

/// Builds a [`Broadcast`], reporting the first invalid field at
/// [`build`](BroadcastBuilder::build).
#[derive(Debug)]
#[must_use]
pub struct BroadcastBuilder {
    bundle_id: Result<Topic>,
    channel_id: Result<ChannelId>,
    payload: Payload,
    priority: Option<Priority>,
    expiration: Option<Expiration>,
    request_id: Option<ApnsId>,
    error: Option<Error>,
}

impl BroadcastBuilder {
    /// Sets `apns-priority` (default 10; 5 and 1 spare the devices' power
    /// and Apple's Live Activity update budget).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }
    /// Sets `apns-expiration` (default 0, do not store). Only a channel that
    /// stores the most recent message takes a later time; a no-storage
    /// channel answers `BadExpirationDate`.
    pub fn expiration(mut self, expiration: Expiration) -> Self {
        self.expiration = Some(expiration);
        self
    }
    /// Sets `apns-request-id` (APNs echoes it, or makes one up).
    pub fn request_id(mut self, id: ApnsId) -> Self {
        self.request_id = Some(id);
        self
    }
    /// Parses and sets `apns-request-id` (a canonical UUID).
    pub fn request_id_str(mut self, id: &str) -> Self {
        match ApnsId::parse(id) {
            Ok(id) => self.request_id = Some(id),
            Err(_) => {
                self.error.get_or_insert(Error::invalid(
                    "request_id",
                    format!(
                        "{id:?} is not a UUID of the form 123e4567-e89b-12d3-a456-4266554400a0"
                    ),
                ));
            }
        }
        self
    }

    /// Validates every field, encodes the payload and checks it against
    /// the 5,120-byte limit, before anything is sent.
    pub fn build(self) -> Result<Broadcast> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let bundle_id = self.bundle_id?;
        let channel_id = self.channel_id?;
        let (payload, payload_has) = self.payload.encode()?;
        if payload.len() > BROADCAST_PAYLOAD_LIMIT {
            return Err(Error::PayloadTooLarge {
                size: payload.len(),
                limit: BROADCAST_PAYLOAD_LIMIT,
                push_type: "broadcast",
            });
        }
        let priority = self.priority.unwrap_or(Priority::Immediate);
        let expiration = self.expiration.unwrap_or(Expiration::DoNotStore);
        let mut headers = vec![
            (
                HeaderName::from_static("apns-channel-id"),
                header_value("channel_id", channel_id.as_str())?,
            ),
            (
                HeaderName::from_static("apns-push-type"),
                HeaderValue::from_static(PushType::Liveactivity.as_str()),
            ),
            (
                HeaderName::from_static("apns-priority"),
                HeaderValue::from_static(priority.as_header()),
            ),
            (
                HeaderName::from_static("apns-expiration"),
                HeaderValue::from(expiration.as_unix_seconds()),
            ),
        ];
        if let Some(id) = self.request_id {
            headers.push((
                HeaderName::from_static("apns-request-id"),
                header_value("request_id", &id.to_string())?,
            ));
        }
        let path =
            http::uri::PathAndQuery::try_from(format!("/4/broadcasts/apps/{}", bundle_id.as_str()))
                .map_err(|_| Error::invalid("bundle_id", "cannot be used in a request path"))?;
        Ok(Broadcast {
            bundle_id,
            channel_id,
            priority,
            expiration,
            request_id: self.request_id,
            payload,
            payload_has,
            path,
            headers: headers.into(),
        })
    }
}
