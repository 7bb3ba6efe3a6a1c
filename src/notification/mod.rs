//! The notification model: typed, validated request fields, the
//! [`Notification`] they make, and lints for likely mistakes.
//!
//! | file | what it holds |
//! |---|---|
//! | `fields.rs` | [`DeviceToken`], [`PushType`], [`Priority`], [`Expiration`], [`CollapseId`], [`ApnsId`], [`Topic`] |
//! | `mod.rs` | [`Notification`] and its builder; the request path and headers, encoded once |
//! | `lint.rs` | [`Lint`] and [`Notification::lints`] |

mod fields;
mod lint;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::payload::{Payload, PayloadSummary};

pub use fields::{ApnsId, CollapseId, DeviceToken, Expiration, Priority, PushType, Topic};
pub use lint::Lint;
pub(crate) use lint::{expiration_lint, live_activity_lints};

/// One notification to one device: validated headers and an encoded payload.
///
/// Build it with [`Notification::builder`]:
///
/// ```
/// # use apns_provider::{Notification, Payload, PushType};
/// let n = Notification::builder(
///         "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0",
///         Payload::alert("Hello"),
///     )
///     .topic("com.example.app")
///     .build()?;
/// assert_eq!(n.push_type(), PushType::Alert);
/// # Ok::<(), apns_provider::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Notification {
    pub(crate) device_token: DeviceToken,
    pub(crate) topic: Option<Topic>,
    pub(crate) push_type: PushType,
    pub(crate) priority: Option<Priority>,
    pub(crate) expiration: Option<Expiration>,
    pub(crate) collapse_id: Option<CollapseId>,
    pub(crate) apns_id: Option<ApnsId>,
    pub(crate) payload: Bytes,
    pub(crate) payload_has: PayloadSummary,
    // Built once here, so sending costs no header encoding (clones of these
    // share their bytes).
    pub(crate) path: http::uri::PathAndQuery,
    pub(crate) headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl Notification {
    /// Starts a notification to `device_token` carrying `payload`.
    pub fn builder(device_token: impl AsRef<str>, payload: Payload) -> NotificationBuilder {
        NotificationBuilder {
            device_token: DeviceToken::new(device_token),
            payload,
            topic: None,
            push_type: None,
            priority: None,
            expiration: None,
            collapse_id: None,
            apns_id: None,
            error: None,
        }
    }

    /// The device token.
    pub fn device_token(&self) -> &DeviceToken {
        &self.device_token
    }
    /// The topic, if set.
    pub fn topic(&self) -> Option<&Topic> {
        self.topic.as_ref()
    }
    /// The push type (sent on every request).
    pub fn push_type(&self) -> PushType {
        self.push_type
    }
    /// The priority, if set (APNs assumes 10).
    pub fn priority(&self) -> Option<Priority> {
        self.priority
    }
    /// The expiration, if set.
    pub fn expiration(&self) -> Option<Expiration> {
        self.expiration
    }
    /// The collapse id, if set.
    pub fn collapse_id(&self) -> Option<&CollapseId> {
        self.collapse_id.as_ref()
    }
    /// The `apns-id`, if set (APNs assigns one otherwise).
    pub fn apns_id(&self) -> Option<ApnsId> {
        self.apns_id
    }
    /// The encoded JSON payload, exactly as it will be sent.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The request path, `/3/device/<token>`.
    pub fn path(&self) -> &str {
        self.path.as_str()
    }

    /// The `apns-*` request headers, exactly as they will be sent (the
    /// `authorization` header of token authentication is added per
    /// connection, and is not among them).
    ///
    /// ```
    /// # use apns_provider::{Notification, Payload};
    /// let token = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";
    /// let n = Notification::builder(token, Payload::alert("hi"))
    ///     .topic("com.example.app")
    ///     .build()?;
    /// let headers: Vec<_> = n.headers().collect();
    /// assert!(headers.contains(&("apns-topic", "com.example.app")));
    /// assert!(headers.contains(&("apns-push-type", "alert")));
    /// # Ok::<(), apns_provider::Error>(())
    /// ```
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or_default()))
    }

    /// The same notification to another device (cheap: the payload is
    /// shared).
    pub fn with_device_token(&self, token: DeviceToken) -> Notification {
        Notification {
            path: device_path(&token),
            device_token: token,
            ..self.clone()
        }
    }
}

/// Builds a [`Notification`], reporting the first invalid field at
/// [`build`](NotificationBuilder::build).
#[derive(Debug)]
#[must_use]
pub struct NotificationBuilder {
    device_token: Result<DeviceToken>,
    payload: Payload,
    topic: Option<Result<Topic>>,
    push_type: Option<PushType>,
    priority: Option<Priority>,
    expiration: Option<Expiration>,
    collapse_id: Option<Result<CollapseId>>,
    apns_id: Option<ApnsId>,
    error: Option<Error>,
}

impl NotificationBuilder {
    /// Sets `apns-topic` (required with token auth).
    pub fn topic(mut self, topic: impl AsRef<str>) -> Self {
        self.topic = Some(Topic::new(topic));
        self
    }
    /// Sets `apns-push-type` (default `alert`).
    pub fn push_type(mut self, push_type: PushType) -> Self {
        self.push_type = Some(push_type);
        self
    }
    /// Sets `apns-priority`.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }
    /// Sets `apns-expiration`.
    pub fn expiration(mut self, expiration: Expiration) -> Self {
        self.expiration = Some(expiration);
        self
    }
    /// Sets `apns-collapse-id` (at most 64 bytes).
    pub fn collapse_id(mut self, id: impl AsRef<str>) -> Self {
        self.collapse_id = Some(CollapseId::new(id));
        self
    }
    /// Sets `apns-id`.
    pub fn apns_id(mut self, id: ApnsId) -> Self {
        self.apns_id = Some(id);
        self
    }
    /// Parses and sets `apns-id`.
    pub fn apns_id_str(mut self, id: &str) -> Self {
        match ApnsId::parse(id) {
            Ok(id) => self.apns_id = Some(id),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Validates every field, encodes the payload and checks its size
    /// against the push type's limit.
    pub fn build(self) -> Result<Notification> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let device_token = self.device_token?;
        let topic = self.topic.transpose()?;
        let collapse_id = self.collapse_id.transpose()?;
        let push_type = self.push_type.unwrap_or_default();
        let (payload, summary) = self.payload.encode()?;
        let limit = push_type.payload_limit();
        if payload.len() > limit {
            return Err(Error::PayloadTooLarge {
                size: payload.len(),
                limit,
                push_type: push_type.as_str(),
            });
        }
        let headers = request_headers(
            push_type,
            topic.as_ref(),
            self.apns_id,
            self.expiration,
            self.priority,
            collapse_id.as_ref(),
        )?;
        Ok(Notification {
            path: device_path(&device_token),
            headers,
            device_token,
            topic,
            push_type,
            priority: self.priority,
            expiration: self.expiration,
            collapse_id,
            apns_id: self.apns_id,
            payload,
            payload_has: summary,
        })
    }
}

pub(crate) fn header_value(field: &'static str, value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value).map_err(|_| Error::invalid(field, "not a valid header value"))
}

fn device_path(token: &DeviceToken) -> http::uri::PathAndQuery {
    // A token is at most 200 hex digits, so this path is always short and
    // valid; the fallback only keeps a broken invariant from panicking.
    http::uri::PathAndQuery::try_from(format!("/3/device/{}", token.as_str()))
        .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/3/device/"))
}

/// The `apns-*` request headers, encoded once per notification.
fn request_headers(
    push_type: PushType,
    topic: Option<&Topic>,
    apns_id: Option<ApnsId>,
    expiration: Option<Expiration>,
    priority: Option<Priority>,
    collapse_id: Option<&CollapseId>,
) -> Result<Arc<[(HeaderName, HeaderValue)]>> {
    let mut headers = vec![(
        HeaderName::from_static("apns-push-type"),
        HeaderValue::from_static(push_type.as_str()),
    )];
    if let Some(topic) = topic {
        headers.push((
            HeaderName::from_static("apns-topic"),
            HeaderValue::from_str(topic.as_str())
                .map_err(|_| Error::invalid("topic", "not a valid header value"))?,
        ));
    }
    if let Some(id) = apns_id {
        headers.push((
            HeaderName::from_static("apns-id"),
            HeaderValue::from_str(&id.to_string())
                .map_err(|_| Error::invalid("apns_id", "not a valid header value"))?,
        ));
    }
    if let Some(exp) = expiration {
        headers.push((
            HeaderName::from_static("apns-expiration"),
            HeaderValue::from(exp.as_unix_seconds()),
        ));
    }
    if let Some(p) = priority {
        headers.push((
            HeaderName::from_static("apns-priority"),
            HeaderValue::from_static(p.as_header()),
        ));
    }
    if let Some(c) = collapse_id {
        headers.push((
            HeaderName::from_static("apns-collapse-id"),
            HeaderValue::from_str(c.as_str()).map_err(|_| {
                Error::invalid(
                    "collapse_id",
                    "must be printable ASCII to travel in an HTTP header",
                )
            })?,
        ));
    }
    Ok(headers.into())
}
