//! The validated fields of a notification request: device token, push
//! type, priority, expiration, collapse id, `apns-id` and topic. Each
//! validates on construction, so an invalid value is rejected, with an
//! error naming the field, before anything is sent.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

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
        Expiration::At(crate::clock::now_unix_seconds().saturating_add(after.as_secs()))
    }

    /// Expire at a wall-clock time.
    pub fn at(time: SystemTime) -> Self {
        Expiration::At(crate::clock::unix_seconds(time))
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

/// The `apns-collapse-id` header: at most 64 bytes. Cheap to clone (a
/// notification copied per device shares it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollapseId(std::sync::Arc<str>);

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
        Ok(CollapseId(id.into()))
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

/// The `apns-topic` header: usually the bundle id plus the push type's
/// suffix. Cheap to clone (a notification copied per device shares it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(std::sync::Arc<str>);

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
        Ok(Topic(topic.into()))
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
