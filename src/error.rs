//! The one error type of this crate, with predicates in the style of
//! `reqwest::Error`.
//!
//! A rejection by APNs (a non-200 answer) is *not* an [`Error`] from
//! [`Client::send`](crate::Client::send): it is a [`Response`](crate::Response)
//! whose [`reason`](crate::Response::reason) says why. Call
//! [`Response::error_for_status`](crate::Response::error_for_status) to turn
//! it into an [`Error`] when that is more convenient.

use std::time::Duration;

use crate::response::Response;

/// A `Result` alias where the error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building, signing or sending a
/// notification, or running the mock server.
///
/// Messages are one line, say what was wrong and, where it helps, what to do.
/// They never contain key material or provider tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A notification field or identifier failed validation before anything
    /// was sent. `field` names the field (`device_token`, `topic`, `team_id`...).
    #[error("invalid {field}: {message}")]
    InvalidField {
        /// The field that failed validation.
        field: &'static str,
        /// What was wrong with it and what is expected.
        message: String,
    },

    /// The encoded payload is larger than APNs accepts for its push type.
    #[error("payload is {size} bytes, over the {limit}-byte limit for {push_type} pushes; shorten it (custom data is the usual culprit)")]
    PayloadTooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// Limit for the push type in bytes.
        limit: usize,
        /// The push type whose limit applies.
        push_type: &'static str,
    },

    /// A signing key (`.p8`) or public key could not be loaded.
    #[error("{0}")]
    Key(String),

    /// Client or server configuration that cannot work (bad endpoint URL,
    /// unreadable CA file, refresh interval outside Apple's window...).
    #[error("{0}")]
    Config(String),

    /// Reading or writing a local file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The TCP connection to the endpoint could not be established.
    #[error("could not connect to {endpoint}: {source}")]
    Connect {
        /// `host:port` that was dialled.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The TLS handshake failed (untrusted certificate, wrong host name,
    /// server did not offer HTTP/2...).
    #[error("TLS handshake with {endpoint} failed: {message}")]
    Tls {
        /// `host:port` of the server.
        endpoint: String,
        /// What went wrong.
        message: String,
    },

    /// An operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// Which step timed out: `connect`, `TLS handshake`, `HTTP/2
        /// handshake`, `waiting for a free stream` or `request`.
        what: &'static str,
        /// The configured limit.
        after: Duration,
        /// Whether APNs may have received and delivered the notification.
        may_have_been_delivered: bool,
    },

    /// The HTTP/2 connection failed or was closed while a request was in
    /// flight.
    #[error("connection lost: {message}{}", if *.may_have_been_delivered { " (the notification may have been delivered)" } else { " (the notification was not delivered)" })]
    Connection {
        /// What happened, including any GOAWAY reason sent by the server.
        message: String,
        /// `false` only when the server provably never processed the request
        /// (REFUSED_STREAM, or a stream above a GOAWAY's last-stream-id), so
        /// it is safe to send again.
        may_have_been_delivered: bool,
    },

    /// No connection to APNs could be made for this request: the last
    /// connection attempt failed, and the next is not due before the
    /// request's deadline.
    #[error("{source}{}", .retry_in.map(|d| format!(" (next connection attempt in {:.1}s)", d.as_secs_f64())).unwrap_or_default())]
    Unavailable {
        /// `host:port` of the endpoint.
        endpoint: String,
        /// The last connection error ([`Error::Connect`], [`Error::Tls`],
        /// [`Error::Timeout`]...).
        source: std::sync::Arc<Error>,
        /// When the pool will try to connect again, if known.
        retry_in: Option<Duration>,
    },

    /// The client's bounded queue of waiting requests is full (see
    /// [`ClientBuilder::max_pending`](crate::ClientBuilder::max_pending)).
    #[error(
        "too many requests waiting for a stream (limit {limit}); slow down or raise max_pending"
    )]
    QueueFull {
        /// The configured limit.
        limit: usize,
    },

    /// The client was shut down: the request was refused, or still in flight
    /// at the shutdown deadline.
    #[error("the client is shut down{}", if *.may_have_been_delivered { " (the notification was in flight and may have been delivered)" } else { "; the notification was not sent" })]
    Shutdown {
        /// Whether the request was on the wire when it was abandoned.
        may_have_been_delivered: bool,
    },

    /// APNs rejected a freshly minted token as expired right after a
    /// re-mint: the clock of this machine (or of the token's `iat`) is wrong,
    /// and retrying would loop.
    #[error("APNs reported a freshly minted provider token as expired (ExpiredProviderToken twice in a row): check this machine's clock (iat must be within the last hour) and the key's team")]
    TokenExpiredAgain(Box<Response>),

    /// The server answered something that is not valid APNs HTTP/2.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// APNs rejected the notification. Produced by
    /// [`Response::error_for_status`](crate::Response::error_for_status),
    /// and by the channel-management calls of
    /// [`Channels`](crate::client::Channels) for any answer but a success.
    #[error("rejected by APNs: {}", .0.describe())]
    Rejected(Box<Response>),
}

impl Error {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidField {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True if a timeout (connect, TLS handshake or request) caused this error.
    pub fn is_timeout(&self) -> bool {
        matches!(self.root(), Error::Timeout { .. })
    }

    /// The error behind an [`Error::Unavailable`] (the failed connection
    /// attempt); any other error itself.
    pub fn root(&self) -> &Error {
        match self {
            Error::Unavailable { source, .. } => source.root(),
            other => other,
        }
    }

    /// True if the error happened before anything was sent because the input
    /// was invalid (a field, a payload size, a key).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidField { .. } | Error::PayloadTooLarge { .. } | Error::Key(_)
        )
    }

    /// True if the connection to APNs could not be made or was lost.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Tls { .. }
                | Error::Connection { .. }
                | Error::Timeout { .. }
                | Error::Unavailable { .. }
                | Error::Protocol(_)
        )
    }

    /// True if APNs answered with a rejection (see [`Error::Rejected`]).
    pub fn is_rejected(&self) -> bool {
        matches!(self, Error::Rejected(_))
    }

    /// True if sending the same notification again may succeed: transport
    /// failures, and rejections whose reason is transient.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Connection { .. }
            | Error::Unavailable { .. }
            | Error::QueueFull { .. } => true,
            Error::Rejected(r) => r.reason().is_some_and(|r| r.is_retryable()),
            _ => false,
        }
    }

    /// Whether APNs may have delivered the notification despite this error.
    ///
    /// `false` means the notification certainly did not reach the device
    /// (it failed before sending, the stream was refused, or APNs rejected
    /// it). `true` means the request was on the wire when the failure
    /// happened, so a resend may produce a duplicate.
    pub fn may_have_been_delivered(&self) -> bool {
        match self {
            Error::Timeout {
                may_have_been_delivered,
                ..
            }
            | Error::Connection {
                may_have_been_delivered,
                ..
            }
            | Error::Shutdown {
                may_have_been_delivered,
            } => *may_have_been_delivered,
            _ => false,
        }
    }
}
