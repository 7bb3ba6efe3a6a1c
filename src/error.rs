//! The one error type of this crate, with predicates in the style of
//! `reqwest::Error`.
//!
//! A rejection by APNs (a non-200 answer) is *not* an [`Error`] from
//! [`Client::send`](crate::Client::send): it is a [`Response`]
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

    /// A broadcast channel id longer than [`MAX_CHANNEL_ID_LEN`]
    /// (crate::broadcast::MAX_CHANNEL_ID_LEN): it would go out as an
    /// `apns-channel-id` header on the shared connection, and servers
    /// refuse header lists past a few kilobytes. The id is never shown.
    ///
    /// [`MAX_CHANNEL_ID_LEN`]: crate::broadcast::MAX_CHANNEL_ID_LEN
    #[error("invalid channel_id: {length} bytes, over the {limit}-byte limit; a channel id is the short base64 text APNs returned when the channel was created")]
    ChannelIdTooLong {
        /// The id's length in bytes.
        length: usize,
        /// The limit.
        limit: usize,
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

    /// Credentials that cannot be used: a `.p8` key, a certificate or a
    /// `.p12` (and its password). `problem` says which case it is, for
    /// callers that must tell them apart; the message says what was found.
    #[error("{message}")]
    Credentials {
        /// What is wrong.
        problem: CredentialProblem,
        /// One line: what was found and expected. Never key material.
        message: String,
    },

    /// A key store or profile problem (feature `keystore`): no keychain
    /// service, no such key or profile...
    #[error("{message}")]
    Keystore {
        /// What is wrong.
        problem: KeystoreProblem,
        /// The key or profile concerned, when there is one.
        name: Option<String>,
        /// One line: what happened. Never a secret.
        message: String,
    },

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

    /// The HTTPS proxy could not be used: it could not be reached, refused
    /// the tunnel, or wants credentials (407). The message names the proxy
    /// (never its credentials).
    #[error("{message}")]
    Proxy {
        /// The proxy, as `http://host:port`.
        proxy: String,
        /// The proxy's answer to `CONNECT`, when it gave one.
        status: Option<u16>,
        /// What happened.
        message: String,
    },

    /// The TLS handshake failed (untrusted certificate, wrong host name,
    /// server did not offer HTTP/2...).
    #[error("TLS handshake with {endpoint} failed: {message}")]
    Tls {
        /// `host:port` of the server.
        endpoint: String,
        /// Which case it is.
        problem: TlsProblem,
        /// What went wrong.
        message: String,
    },

    /// An operation did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// Which stage timed out: `connect (TCP)`, `TLS handshake`,
        /// `HTTP/2 handshake (waiting for the server's first SETTINGS)`,
        /// `waiting for a free stream` (every stream of live connections
        /// busy) or `request` (sent, no answer). A stall at the proxy is an
        /// [`Error::Proxy`] naming it and the CONNECT stage.
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

    /// The job queue (Redis) failed in a way that waiting cannot fix: bad
    /// credentials or permissions, a key of the wrong type. (Outages are
    /// waited out, never reported as errors.)
    #[error("Redis: {0}")]
    Redis(String),

    /// APNs rejected the notification. Produced by
    /// [`Response::error_for_status`](crate::Response::error_for_status),
    /// and by the channel-management calls of
    /// [`Channels`](crate::client::Channels) for any answer but a success.
    #[error("rejected by APNs: {}", .0.describe())]
    Rejected(Box<Response>),
}

/// What is wrong with credentials; see [`Error::Credentials`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialProblem {
    /// Not what it should be: wrong format, damaged, another algorithm...
    Malformed,
    /// The `.p12` password is wrong (or the file needs one and none was
    /// given).
    WrongPassword,
    /// Not a PKCS#12 file, or a truncated one.
    NotPkcs12,
    /// A private key file that its group or others may read.
    KeyFileTooOpen,
    /// The private key does not match the certificate.
    KeyMismatch,
    /// A certificate without its private key.
    MissingKey,
    /// A separate key file given for a `.p12`, which carries its own.
    SeparateKeyForPkcs12,
    /// The certificate has expired.
    CertificateExpired,
    /// The certificate is not valid yet (is this machine's clock right?).
    CertificateNotYetValid,
    /// The certificate is for the other APNs environment.
    WrongEnvironment,
    /// The certificate is X.509 version 1 (or 2), which rustls and webpki
    /// refuse: only version 3 is accepted. `openssl x509 -req` makes
    /// version 1 unless given extensions (`-extfile`).
    UnsupportedCertificateVersion,
}

/// What went wrong in a TLS handshake; see [`Error::Tls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsProblem {
    /// The server's certificate is not signed by a trusted root (a mock or
    /// a TLS-inspecting proxy whose CA was not added, or an interception).
    UntrustedCertificate,
    /// The server's certificate is expired or not yet valid (or this
    /// machine's clock is wrong).
    CertificateDates,
    /// The server's certificate is for another host name.
    WrongHostName,
    /// The server does not speak HTTP/2 (ALPN `h2`), which APNs requires.
    NoHttp2,
    /// Anything else.
    Other,
}

/// What went wrong in a key store; see [`Error::Keystore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeystoreProblem {
    /// No keychain service is reachable (no D-Bus session, no Secret
    /// Service, an unsupported platform).
    NoKeychain,
    /// The keychain is locked or refused access.
    KeychainLocked,
    /// The store has no key by that name.
    NoSuchKey,
    /// The profile file has no profile by that name.
    NoSuchProfile,
    /// A profile by that name exists already.
    ProfileExists,
    /// The profile names its key or password in a form that is refused
    /// (a secret pasted into the file) or not understood.
    BadProfile,
    /// The environment variable that should hold the key is not set.
    MissingVariable,
    /// Any other failure of the store.
    Store,
}

impl Error {
    pub(crate) fn credentials(problem: CredentialProblem, message: impl Into<String>) -> Self {
        Error::Credentials {
            problem,
            message: message.into(),
        }
    }

    /// A key or certificate that cannot be read as what it should be.
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::credentials(CredentialProblem::Malformed, message)
    }

    #[cfg(feature = "keystore")]
    pub(crate) fn keystore(
        problem: KeystoreProblem,
        name: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Error::Keystore {
            problem,
            name: name.map(str::to_string),
            message: message.into(),
        }
    }

    /// What is wrong with the credentials, for an [`Error::Credentials`].
    ///
    /// ```
    /// use apns_provider::{ClientCertificate, CredentialProblem};
    /// let e = ClientCertificate::from_pkcs12(b"not a p12 file", "").unwrap_err();
    /// assert_eq!(e.credential_problem(), Some(CredentialProblem::NotPkcs12));
    /// ```
    pub fn credential_problem(&self) -> Option<CredentialProblem> {
        match self {
            Error::Credentials { problem, .. } => Some(*problem),
            _ => None,
        }
    }

    /// What went wrong in a key store, for an [`Error::Keystore`].
    pub fn keystore_problem(&self) -> Option<KeystoreProblem> {
        match self {
            Error::Keystore { problem, .. } => Some(*problem),
            _ => None,
        }
    }

    /// What went wrong in a TLS handshake, for an [`Error::Tls`] (also
    /// behind an [`Error::Unavailable`]).
    pub fn tls_problem(&self) -> Option<TlsProblem> {
        match self.root() {
            Error::Tls { problem, .. } => Some(*problem),
            _ => None,
        }
    }

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
            Error::InvalidField { .. }
                | Error::ChannelIdTooLong { .. }
                | Error::PayloadTooLarge { .. }
                | Error::Credentials { .. }
        )
    }

    /// True if the connection to APNs could not be made or was lost.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Proxy { .. }
                | Error::Tls { .. }
                | Error::Connection { .. }
                | Error::Timeout { .. }
                | Error::Unavailable { .. }
                | Error::Protocol(_)
        )
    }

    /// True if the HTTPS proxy (or the way to it) failed; see
    /// [`Error::Proxy`].
    pub fn is_proxy(&self) -> bool {
        matches!(self.root(), Error::Proxy { .. })
    }

    /// True if the HTTPS proxy answered `407 Proxy Authentication
    /// Required`: credentials are missing or wrong.
    pub fn is_proxy_auth_required(&self) -> bool {
        matches!(
            self.root(),
            Error::Proxy {
                status: Some(407),
                ..
            }
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
