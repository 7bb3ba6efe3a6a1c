//! The notification model: typed, validated request fields.
//!
//! Every type here validates on construction, so an invalid value is
//! rejected (with an error naming the field) before anything is sent.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::payload::Payload;

/// A device token: non-empty, even-length hexadecimal of at most
/// [`MAX_HEX_DIGITS`](DeviceToken::MAX_HEX_DIGITS) digits. Apple warns not to
/// assume a length (simulator tokens are longer than the 32 bytes of
/// devices), so only an upper bound of 100 bytes is enforced: APNs answers
/// `BadDeviceToken` to anything longer, and a path built from an unbounded
/// token would not fit in a request. Upper-case hex is kept as given.
///
/// ```
/// # use apns_provider::DeviceToken;
/// assert!(DeviceToken::new("00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0").is_ok());
/// assert!(DeviceToken::new("abc").is_err()); // odd length
/// assert!(DeviceToken::new("").is_err());
/// assert!(DeviceToken::new("ab".repeat(101)).is_err()); // 202 digits: too long
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceToken(String);

impl DeviceToken {
    /// The longest token accepted: 200 hex digits (100 bytes).
    pub const MAX_HEX_DIGITS: usize = 200;

    /// Validates a hex device token. Nothing is stripped: spaces or `<>`
    /// (as `NSData` descriptions print) are errors.
    pub fn new(token: impl AsRef<str>) -> Result<Self> {
        let token = token.as_ref();
        if token.is_empty() {
            return Err(Error::invalid("device_token", "empty; expected hex digits"));
        }
        if token.len() > Self::MAX_HEX_DIGITS {
            return Err(Error::invalid(
                "device_token",
                format!(
                    "device token too long: {} characters, over the limit of {} hex digits (100 bytes)",
                    token.len(),
                    Self::MAX_HEX_DIGITS
                ),
            ));
        }
        if let Some((i, c)) = token.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "device_token",
                format!(
                    "{c:?} at position {} is not a hex digit; expected only 0-9 and a-f (remove spaces or <> around the token)",
                    i + 1
                ),
            ));
        }
        if token.len() % 2 != 0 {
            return Err(Error::invalid(
                "device_token",
                format!(
                    "{} hex digits is an odd number; a token is whole bytes (64 digits on devices)",
                    token.len()
                ),
            ));
        }
        Ok(DeviceToken(token.to_string()))
    }

    /// The token as hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceToken({})", self.0)
    }
}
impl FromStr for DeviceToken {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// The `apns-push-type` header. All eleven types Apple defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PushType {
    /// Visible alert, sound or badge.
    #[default]
    Alert,
    /// Silent `content-available` push; priority must be 5.
    Background,
    /// Location query (token auth only).
    Location,
    /// VoIP (PushKit) call.
    Voip,
    /// watchOS complication update.
    Complication,
    /// File Provider change.
    Fileprovider,
    /// Mobile device management (topic is the certificate's UID).
    Mdm,
    /// Live Activity update (token auth only).
    Liveactivity,
    /// Push to Talk.
    Pushtotalk,
    /// WidgetKit reload.
    Widgets,
    /// Controls reload.
    Controls,
}

impl PushType {
    /// All push types, in Apple's order.
    pub const ALL: [PushType; 11] = [
        PushType::Alert,
        PushType::Background,
        PushType::Location,
        PushType::Voip,
        PushType::Complication,
        PushType::Fileprovider,
        PushType::Mdm,
        PushType::Liveactivity,
        PushType::Pushtotalk,
        PushType::Widgets,
        PushType::Controls,
    ];

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            PushType::Alert => "alert",
            PushType::Background => "background",
            PushType::Location => "location",
            PushType::Voip => "voip",
            PushType::Complication => "complication",
            PushType::Fileprovider => "fileprovider",
            PushType::Mdm => "mdm",
            PushType::Liveactivity => "liveactivity",
            PushType::Pushtotalk => "pushtotalk",
            PushType::Widgets => "widgets",
            PushType::Controls => "controls",
        }
    }

    /// The suffix the topic must carry after the bundle id (`""` for the
    /// bare bundle id; `None` for `mdm`, whose topic is a certificate UID).
    pub fn topic_suffix(self) -> Option<&'static str> {
        match self {
            PushType::Alert | PushType::Background => Some(""),
            PushType::Voip => Some(".voip"),
            PushType::Complication => Some(".complication"),
            PushType::Fileprovider => Some(".pushkit.fileprovider"),
            PushType::Liveactivity => Some(".push-type.liveactivity"),
            PushType::Location => Some(".location-query"),
            PushType::Pushtotalk => Some(".voip-ptt"),
            PushType::Widgets => Some(".push-type.widgets"),
            PushType::Controls => Some(".push-type.controls"),
            PushType::Mdm => None,
        }
    }

    /// The payload size limit in bytes: 5120 for VoIP, 4096 otherwise.
    pub fn payload_limit(self) -> usize {
        match self {
            PushType::Voip => 5120,
            _ => 4096,
        }
    }

    /// Whether APNs accepts this type only over token authentication.
    pub fn requires_token_auth(self) -> bool {
        matches!(self, PushType::Location | PushType::Liveactivity)
    }

    /// The topic to use for this push type given an app's bundle id.
    ///
    /// ```
    /// # use apns_provider::PushType;
    /// assert_eq!(PushType::Voip.topic_for("com.example.app"), "com.example.app.voip");
    /// ```
    pub fn topic_for(self, bundle_id: &str) -> String {
        format!("{bundle_id}{}", self.topic_suffix().unwrap_or(""))
    }
}

impl fmt::Display for PushType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PushType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        PushType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "push_type",
                    format!(
                        "{s:?} is not a push type; expected one of {}",
                        PushType::ALL.map(|t| t.as_str()).join(", ")
                    ),
                )
            })
    }
}

/// The `apns-priority` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Priority {
    /// 10: deliver immediately (the default for alerts).
    Immediate,
    /// 5: deliver considering power (required for background pushes).
    Normal,
    /// 1: prioritize the device's power over everything.
    Low,
}

impl Priority {
    /// The header value.
    pub fn as_u8(self) -> u8 {
        match self {
            Priority::Immediate => 10,
            Priority::Normal => 5,
            Priority::Low => 1,
        }
    }
    pub(crate) fn as_header(self) -> &'static str {
        match self {
            Priority::Immediate => "10",
            Priority::Normal => "5",
            Priority::Low => "1",
        }
    }
}

impl FromStr for Priority {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "10" => Ok(Priority::Immediate),
            "5" => Ok(Priority::Normal),
            "1" => Ok(Priority::Low),
            _ => Err(Error::invalid(
                "priority",
                format!("{s:?} is not a priority; expected 10, 5 or 1"),
            )),
        }
    }
}

/// The `apns-expiration` header: when APNs stops trying to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expiration {
    /// `0`: try once, do not store the notification.
    DoNotStore,
    /// Keep trying until this time (UNIX seconds).
    At(u64),
}

impl Expiration {
    /// Expire `after` from now.
    pub fn after(after: Duration) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Expiration::At(now.saturating_add(after.as_secs()))
    }

    /// Expire at a wall-clock time.
    pub fn at(time: SystemTime) -> Self {
        Expiration::At(
            time.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        )
    }

    /// The header value (UNIX seconds; `0` for [`Expiration::DoNotStore`]).
    pub fn as_unix_seconds(self) -> u64 {
        match self {
            Expiration::DoNotStore => 0,
            Expiration::At(s) => s,
        }
    }
}

impl FromStr for Expiration {
    type Err = Error;
    /// Parses `0` (do not store), UNIX seconds, or `+DURATION` relative to
    /// now (`+3600`, `+90s`, `+30m`, `+12h`, `+7d`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "expiration",
                format!("{s:?} is not an expiration; expected 0 (do not store), UNIX seconds such as 1767225600, or a relative time such as +1h"),
            )
        };
        if let Some(rel) = s.strip_prefix('+') {
            let (digits, unit) = match rel.find(|c: char| !c.is_ascii_digit()) {
                Some(i) => rel.split_at(i),
                None => (rel, "s"),
            };
            let n: u64 = digits.parse().map_err(|_| bad())?;
            let mult = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return Err(bad()),
            };
            let secs = n.checked_mul(mult).ok_or_else(bad)?;
            return Ok(Expiration::after(Duration::from_secs(secs)));
        }
        match s.parse::<u64>().map_err(|_| bad())? {
            0 => Ok(Expiration::DoNotStore),
            n => Ok(Expiration::At(n)),
        }
    }
}

/// The `apns-collapse-id` header: at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollapseId(String);

impl CollapseId {
    /// Validates a collapse id.
    pub fn new(id: impl AsRef<str>) -> Result<Self> {
        let id = id.as_ref();
        if id.is_empty() {
            return Err(Error::invalid("collapse_id", "empty; omit it instead"));
        }
        if id.len() > 64 {
            return Err(Error::invalid(
                "collapse_id",
                format!("{} bytes, over APNs' limit of 64", id.len()),
            ));
        }
        if id.bytes().any(|b| b.is_ascii_control()) {
            return Err(Error::invalid(
                "collapse_id",
                "contains control characters, which cannot go in an HTTP header",
            ));
        }
        Ok(CollapseId(id.to_string()))
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `apns-id` header: a UUID, sent lower-case and hyphenated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApnsId(uuid::Uuid);

impl ApnsId {
    /// A new random id.
    pub fn new_v4() -> Self {
        ApnsId(uuid::Uuid::new_v4())
    }
    /// Parses a canonical (8-4-4-4-12) UUID; upper case is accepted and sent
    /// lower-cased.
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() != 36 {
            return Err(Error::invalid(
                "apns_id",
                format!("{s:?} is not a UUID of the form 123e4567-e89b-12d3-a456-4266554400a0"),
            ));
        }
        uuid::Uuid::parse_str(s).map(ApnsId).map_err(|_| {
            Error::invalid(
                "apns_id",
                format!("{s:?} is not a UUID of the form 123e4567-e89b-12d3-a456-4266554400a0"),
            )
        })
    }
    /// The UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for ApnsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}
impl FromStr for ApnsId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// The `apns-topic` header: usually the bundle id plus the push type's suffix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    /// Validates a topic: letters, digits, `.`, `-` and `_`, 1 to 255 bytes.
    pub fn new(topic: impl AsRef<str>) -> Result<Self> {
        let topic = topic.as_ref();
        if topic.is_empty() {
            return Err(Error::invalid(
                "topic",
                "empty; expected the app's bundle id such as com.example.app",
            ));
        }
        if topic.len() > 255
            || !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(Error::invalid(
                "topic",
                format!("{topic:?} is not a bundle id; expected letters, digits, '.', '-' and '_' such as com.example.app"),
            ));
        }
        Ok(Topic(topic.to_string()))
    }
    /// The topic as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A warning about a notification that APNs would accept but that is very
/// likely a mistake. See [`Notification::lints`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lint {
    /// A stable identifier, such as `background-priority`.
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

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

/// What the lints need to know about a payload.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PayloadSummary {
    pub alert: bool,
    pub sound: bool,
    pub badge: bool,
    pub content_available: bool,
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

    /// The same notification to another device (cheap: the payload is
    /// shared).
    pub fn with_device_token(&self, token: DeviceToken) -> Notification {
        Notification {
            path: device_path(&token),
            device_token: token,
            ..self.clone()
        }
    }

    /// Likely mistakes that APNs would not report, or would report as a
    /// silently dropped notification.
    ///
    /// ```
    /// # use apns_provider::{Notification, Payload, PushType, Priority};
    /// let n = Notification::builder("abcd", Payload::background())
    ///     .topic("com.example.app")
    ///     .push_type(PushType::Background)
    ///     .priority(Priority::Immediate)
    ///     .build()?;
    /// assert_eq!(n.lints()[0].code, "background-priority");
    /// # Ok::<(), apns_provider::Error>(())
    /// ```
    pub fn lints(&self) -> Vec<Lint> {
        let mut lints = Vec::new();
        let mut lint = |code, message: String| lints.push(Lint { code, message });
        if self.push_type == PushType::Background {
            if self.priority.unwrap_or(Priority::Immediate) == Priority::Immediate {
                lint(
                    "background-priority",
                    "background pushes must use priority 5; with 10 (the default) APNs may reject or drop them".into(),
                );
            }
            let h = self.payload_has;
            if h.alert || h.sound || h.badge {
                lint(
                    "background-visible",
                    "a background push carries alert, sound or badge; use push type alert for visible notifications".into(),
                );
            }
            if !h.content_available {
                lint(
                    "background-content-available",
                    "a background push without aps.content-available = 1 does not wake the app"
                        .into(),
                );
            }
        }
        if let Some(Expiration::At(secs)) = self.expiration {
            // Any time before 2001 is not a real expiration: it is almost
            // always a duration (`300`) sent where an epoch time belongs.
            if secs < 1_000_000_000 {
                lint(
                    "expiration-duration",
                    format!("expiration {secs} is a date in {}; it looks like a duration, so APNs treats the notification as expired. Use now + {secs} seconds (CLI: +{secs})", 1970 + secs / 31_557_600),
                );
            }
        }
        if let (Some(topic), Some(suffix)) = (&self.topic, self.push_type.topic_suffix()) {
            let t = topic.as_str();
            let other_suffix = PushType::ALL
                .iter()
                .filter_map(|p| p.topic_suffix().filter(|s| !s.is_empty()).map(|s| (p, s)))
                .find(|(_, s)| t.ends_with(*s));
            let ok = if suffix.is_empty() {
                other_suffix.is_none()
            } else {
                t.ends_with(suffix)
            };
            if !ok {
                let expected = if suffix.is_empty() {
                    "the bare bundle id".to_string()
                } else {
                    format!("the bundle id followed by {suffix}")
                };
                lint(
                    "topic-suffix",
                    format!(
                        "topic {t} does not fit push type {}: expected {expected}",
                        self.push_type
                    ),
                );
            }
        }
        lints
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
