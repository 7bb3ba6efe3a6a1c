//! APNs answers: status, ids, and the reason for a rejection.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::format_utc_millis;
use crate::error::{Error, Result};

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident => $status:literal, $class:ident;)*) => {
        /// Why APNs rejected a request: every reason Apple documents, and
        /// [`Reason::Other`] for the ones it adds later (never lost).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Reason {
            $($(#[$doc])* $name,)*
            /// A reason this version does not know, kept as sent.
            Other(String),
        }

        impl Reason {
            /// Every known reason (without `Other`).
            pub const KNOWN: &'static [Reason] = &[$(Reason::$name,)*];

            /// The reason as APNs spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                    Reason::Other(s) => s,
                }
            }

            /// The name of a known reason, `None` for `Other`: static, so
            /// it can outlive the answer (the retry loop's pool reports).
            pub(crate) fn known_name(&self) -> Option<&'static str> {
                match self {
                    $(Reason::$name => Some(stringify!($name)),)*
                    Reason::Other(_) => None,
                }
            }

            /// The HTTP status APNs sends with this reason (0 for `Other`).
            pub fn status(&self) -> u16 {
                match self {
                    $(Reason::$name => $status,)*
                    Reason::Other(_) => 0,
                }
            }

            /// What a client should do about it.
            pub fn class(&self) -> ReasonClass {
                match self {
                    $(Reason::$name => ReasonClass::$class,)*
                    Reason::Other(_) => ReasonClass::Unknown,
                }
            }
        }

        impl FromStr for Reason {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
                Ok(match s {
                    $(stringify!($name) => Reason::$name,)*
                    // Seen in the wild for Apple's documented spelling
                    // (`docs/apns-facts.md`, "Key scopes"): the same reason.
                    "BadEnvironmentKeyInToken" => Reason::BadEnvironmentKeyIdInToken,
                    other => Reason::Other(other.to_string()),
                })
            }
        }
    };
}

reasons! {
    /// The collapse id is too long.
    BadCollapseId => 400, RequestBug;
    /// The device token is malformed or for another environment.
    BadDeviceToken => 400, TokenMismatch;
    /// `apns-expiration` is bad.
    BadExpirationDate => 400, RequestBug;
    /// `apns-id` is bad.
    BadMessageId => 400, RequestBug;
    /// `apns-priority` is bad.
    BadPriority => 400, RequestBug;
    /// `apns-topic` is bad.
    BadTopic => 400, RequestBug;
    /// The token does not match the topic.
    DeviceTokenNotForTopic => 400, TokenMismatch;
    /// A header was repeated.
    DuplicateHeaders => 400, RequestBug;
    /// The connection was idle too long.
    IdleTimeout => 400, Reconnect;
    /// `apns-push-type` is bad.
    InvalidPushType => 400, RequestBug;
    /// No device token in the path.
    MissingDeviceToken => 400, RequestBug;
    /// `apns-topic` is required.
    MissingTopic => 400, RequestBug;
    /// The body was empty.
    PayloadEmpty => 400, RequestBug;
    /// Sending to this topic is not allowed.
    TopicDisallowed => 400, RequestBug;
    /// The client certificate is bad.
    BadCertificate => 403, Configuration;
    /// The client certificate is for the other environment.
    BadCertificateEnvironment => 403, Configuration;
    /// The provider token is older than an hour.
    ExpiredProviderToken => 403, RefreshProviderToken;
    /// The action is not allowed.
    Forbidden => 403, Configuration;
    /// The provider token is not valid (wrong key id, team id or signature).
    InvalidProviderToken => 403, Configuration;
    /// No provider token and no certificate.
    MissingProviderToken => 403, Configuration;
    /// The key id in the token is unrelated to this connection's team.
    UnrelatedKeyIdInToken => 403, WrongKey;
    /// The key is not enabled for this environment.
    BadEnvironmentKeyIdInToken => 403, WrongKey;
    /// The path is bad.
    BadPath => 404, RequestBug;
    /// Only POST is supported.
    MethodNotAllowed => 405, RequestBug;
    /// The device token is no longer active for the topic.
    Unregistered => 410, DeadToken;
    /// The device token has expired.
    ExpiredToken => 410, DeadToken;
    /// The payload is too large.
    PayloadTooLarge => 413, RequestBug;
    /// The provider token changed too often on this connection.
    TooManyProviderTokenUpdates => 429, TokenUpdates;
    /// Too many requests to the same device token.
    TooManyRequests => 429, BackOffDevice;
    /// APNs had an internal error.
    InternalServerError => 500, RetryLater;
    /// APNs is unavailable.
    ServiceUnavailable => 503, RetryNewConnection;
    /// The APNs server is shutting down.
    Shutdown => 503, RetryNewConnection;
    /// Broadcast: the Broadcast capability is not enabled for this app.
    FeatureNotEnabled => 400, Configuration;
    /// Broadcast: no `apns-channel-id`.
    MissingChannelId => 400, RequestBug;
    /// Broadcast: the channel id is malformed.
    BadChannelId => 400, RequestBug;
    /// Broadcast: the channel does not exist.
    ChannelNotRegistered => 400, RequestBug;
    /// Broadcast: bad request parameters.
    BadRequestParams => 400, RequestBug;
    /// Broadcast: bad payload.
    BadRequestPayload => 400, RequestBug;
    /// Broadcast: no push type.
    MissingPushType => 400, RequestBug;
    /// Broadcast: too many channels.
    CannotCreateChannelConfig => 400, RequestBug;
    /// Broadcast: the topic does not match the channel.
    TopicMismatch => 400, RequestBug;
}

/// What a client should do about a rejection, following Apple's guidance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReasonClass {
    /// A bug in the request: never retry.
    RequestBug,
    /// Token, topic or environment mismatch: never retry. Many at once
    /// usually means the wrong environment, not dead tokens.
    TokenMismatch,
    /// Reconnect and send again.
    Reconnect,
    /// Credentials or configuration: stop and tell the operator.
    Configuration,
    /// The provider token expired: mint a new one, use a new connection,
    /// retry once. (Not to be confused with [`Reason::ExpiredToken`], a dead
    /// *device* token.)
    RefreshProviderToken,
    /// The wrong key for this connection: new connection / right key.
    WrongKey,
    /// The device token is dead: stop sending to it.
    DeadToken,
    /// Keep the token, use a new connection, back off.
    TokenUpdates,
    /// Too many pushes to one device: back off for that device.
    BackOffDevice,
    /// Retry with backoff.
    RetryLater,
    /// Retry on a new connection with backoff.
    RetryNewConnection,
    /// A reason this version does not know.
    Unknown,
}

impl Reason {
    /// Whether sending the same notification again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ReasonClass::Reconnect
                | ReasonClass::RefreshProviderToken
                | ReasonClass::TokenUpdates
                | ReasonClass::BackOffDevice
                | ReasonClass::RetryLater
                | ReasonClass::RetryNewConnection
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// APNs' answer to one notification.
///
/// ```
/// # use apns_provider::{Response, Reason};
/// let r = Response::from_parts(410, Some("6e0f5d77-...".into()), None,
///     br#"{"reason":"Unregistered","timestamp":1700000000000}"#);
/// assert!(!r.is_accepted());
/// assert_eq!(r.reason(), Some(&Reason::Unregistered));
/// assert_eq!(r.timestamp_millis(), Some(1_700_000_000_000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    apns_id: Option<String>,
    apns_unique_id: Option<String>,
    reason: Option<Reason>,
    timestamp_ms: Option<u64>,
    // Broadcasts and channel management only: a push leaves it `None`, so
    // its answer costs no allocation more.
    broadcast: Option<Box<BroadcastParts>>,
}

/// What answers to broadcasts and channel-management requests carry beyond
/// a push's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BroadcastParts {
    request_id: Option<String>,
    channel_id: Option<String>,
    body: bytes::Bytes,
}

impl Response {
    /// Builds a response from its HTTP parts. The body is APNs' JSON error
    /// (or empty on success); an unparsable body on a failure is kept as an
    /// [`Reason::Other`] so the text is never lost.
    pub fn from_parts(
        status: u16,
        apns_id: Option<String>,
        apns_unique_id: Option<String>,
        body: &[u8],
    ) -> Response {
        #[derive(serde::Deserialize)]
        struct Body {
            reason: Option<String>,
            timestamp: Option<u64>,
        }
        let (reason, timestamp_ms) = if body.iter().all(|b| b.is_ascii_whitespace()) {
            (None, None)
        } else {
            match serde_json::from_slice::<Body>(body) {
                Ok(b) => (
                    b.reason.map(|r| r.parse().unwrap_or_else(|e| match e {})),
                    b.timestamp,
                ),
                Err(_) => (
                    Some(Reason::Other(
                        String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned(),
                    )),
                    None,
                ),
            }
        };
        Response {
            status,
            apns_id,
            apns_unique_id,
            reason,
            timestamp_ms,
            broadcast: None,
        }
    }

    /// Adds what an answer to a broadcast or a channel-management request
    /// carries: its `apns-request-id` and `apns-channel-id` headers, and its
    /// body (a channel's description, or a list of channels).
    ///
    /// ```
    /// # use apns_provider::Response;
    /// let r = Response::from_parts(201, None, None, b"")
    ///     .with_broadcast_parts(Some("6e0f5d77-0b3a-4fd1-9a45-3a4e2d7b4f10".into()), Some("QUJD".into()), b"");
    /// assert_eq!(r.apns_channel_id(), Some("QUJD"));
    /// assert!(r.is_success() && !r.is_accepted());
    /// ```
    pub fn with_broadcast_parts(
        mut self,
        request_id: Option<String>,
        channel_id: Option<String>,
        body: &[u8],
    ) -> Response {
        self.broadcast = Some(Box::new(BroadcastParts {
            request_id,
            channel_id,
            body: bytes::Bytes::copy_from_slice(body),
        }));
        self
    }

    /// The HTTP status: 200 when accepted.
    pub fn status(&self) -> u16 {
        self.status
    }
    /// True when APNs accepted the notification (200).
    pub fn is_accepted(&self) -> bool {
        self.status == 200
    }
    /// True for any 2xx status: a push or broadcast accepted (200), a
    /// channel created (201) or deleted (204).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The `apns-request-id` of an answer to a broadcast or a
    /// channel-management request (echoed, or made up by APNs).
    pub fn apns_request_id(&self) -> Option<&str> {
        self.broadcast.as_ref()?.request_id.as_deref()
    }
    /// The `apns-channel-id` of an answer to a channel-management request
    /// (the new channel's id, on a create).
    pub fn apns_channel_id(&self) -> Option<&str> {
        self.broadcast.as_ref()?.channel_id.as_deref()
    }
    /// The body of an answer to a channel-management request (JSON).
    pub(crate) fn body(&self) -> &[u8] {
        self.broadcast.as_ref().map_or(&[], |b| &b.body[..])
    }
    /// The `apns-id` APNs echoed or assigned.
    pub fn apns_id(&self) -> Option<&str> {
        self.apns_id.as_deref()
    }
    /// The `apns-unique-id` (sandbox only): the key to Apple's delivery log.
    pub fn apns_unique_id(&self) -> Option<&str> {
        self.apns_unique_id.as_deref()
    }
    /// The rejection reason, if any.
    pub fn reason(&self) -> Option<&Reason> {
        self.reason.as_ref()
    }
    /// On 410: when the device token stopped being valid (ms since epoch).
    pub fn timestamp_millis(&self) -> Option<u64> {
        self.timestamp_ms
    }
    /// On 410: when the device token stopped being valid.
    pub fn timestamp(&self) -> Option<SystemTime> {
        self.timestamp_ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// Turns a rejection into [`Error::Rejected`]; passes acceptance through.
    pub fn error_for_status(self) -> Result<Response> {
        if self.is_accepted() {
            Ok(self)
        } else {
            Err(Error::Rejected(Box::new(self)))
        }
    }

    /// A one-line description: `200 accepted` or `410 Unregistered (since ...)`.
    pub fn describe(&self) -> String {
        match self.status {
            201 => return "201 created".into(),
            204 => return "204 deleted".into(),
            s if self.is_success() => return format!("{s} accepted"),
            _ => {}
        }
        let reason = self
            .reason
            .as_ref()
            .map(|r| r.as_str().to_string())
            .unwrap_or_else(|| "no reason given".into());
        match self.timestamp_ms {
            Some(ts) => format!(
                "{} {reason} (token invalid since {})",
                self.status,
                format_utc_millis(ts)
            ),
            None => format!("{} {reason}", self.status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_reasons_survive_as_text() {
        let r = Response::from_parts(400, None, None, br#"{"reason":"BrandNewReason"}"#);
        assert_eq!(r.reason(), Some(&Reason::Other("BrandNewReason".into())));
        let r = Response::from_parts(500, None, None, b"<html>oops</html>");
        assert_eq!(r.reason().map(|r| r.as_str()), Some("<html>oops</html>"));
    }

    #[test]
    fn every_known_reason_round_trips() {
        for reason in Reason::KNOWN {
            assert_eq!(&reason.as_str().parse::<Reason>().unwrap(), reason);
            assert!(reason.status() >= 400);
        }
    }

    #[test]
    fn both_spellings_of_the_key_environment_reason_are_one_reason() {
        let r = Response::from_parts(403, None, None, br#"{"reason":"BadEnvironmentKeyInToken"}"#);
        assert_eq!(r.reason(), Some(&Reason::BadEnvironmentKeyIdInToken));
        assert_eq!(
            "BadEnvironmentKeyIdInToken".parse::<Reason>().unwrap(),
            Reason::BadEnvironmentKeyIdInToken
        );
    }
}
