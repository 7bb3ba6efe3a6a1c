//! Where notifications go: Apple's production and sandbox hosts, or any
//! `https://host:port` (a mock server, a proxy).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Apple's production host.
pub const PRODUCTION_HOST: &str = "api.push.apple.com";
/// Apple's sandbox (development) host.
pub const SANDBOX_HOST: &str = "api.sandbox.push.apple.com";
/// The old name of the sandbox host: accepted, never emitted.
pub const DEVELOPMENT_ALIAS_HOST: &str = "api.development.push.apple.com";
/// Apple's production host for broadcast channel management.
pub const CHANNELS_PRODUCTION_HOST: &str = "api-manage-broadcast.push.apple.com";
/// Apple's sandbox host for broadcast channel management.
pub const CHANNELS_SANDBOX_HOST: &str = "api-manage-broadcast.sandbox.push.apple.com";
/// The port of [`CHANNELS_PRODUCTION_HOST`].
pub const CHANNELS_PRODUCTION_PORT: u16 = 2196;
/// The port of [`CHANNELS_SANDBOX_HOST`].
pub const CHANNELS_SANDBOX_PORT: u16 = 2195;

/// The APNs environment a device token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Environment {
    /// Apps signed for the App Store, TestFlight or ad hoc distribution.
    Production,
    /// Apps signed with a development profile (run from Xcode).
    Sandbox,
}

impl Environment {
    /// `production` or `sandbox`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Sandbox => "sandbox",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = Error;
    /// Parses `production`, `sandbox`, or `development` (an alias of sandbox).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "production" | "prod" => Ok(Environment::Production),
            "sandbox" | "development" | "dev" => Ok(Environment::Sandbox),
            _ => Err(Error::invalid(
                "environment",
                format!("{s:?} is not an environment; expected sandbox or production"),
            )),
        }
    }
}

/// An APNs server address.
///
/// A host is kept as given, as curl does: the old sandbox name
/// `api.development.push.apple.com` is accepted (and is the sandbox
/// environment), never emitted by default.
///
/// ```
/// # use apns_provider::{Endpoint, Environment};
/// let e: Endpoint = "https://api.development.push.apple.com".parse()?;
/// assert_eq!(e.environment(), Some(Environment::Sandbox)); // the old name is an alias
/// assert_eq!(e.host(), "api.development.push.apple.com"); // and TLS checks the name typed
/// let mock: Endpoint = "https://127.0.0.1:8443".parse()?;
/// assert_eq!(mock.port(), 8443);
/// # Ok::<(), apns_provider::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    /// `https://api.push.apple.com:443`.
    pub fn production() -> Self {
        Endpoint {
            host: PRODUCTION_HOST.into(),
            port: 443,
        }
    }

    /// `https://api.sandbox.push.apple.com:443`.
    pub fn sandbox() -> Self {
        Endpoint {
            host: SANDBOX_HOST.into(),
            port: 443,
        }
    }

    /// Apple's endpoint for `env`.
    pub fn for_environment(env: Environment) -> Self {
        match env {
            Environment::Production => Self::production(),
            Environment::Sandbox => Self::sandbox(),
        }
    }

    /// Apple's broadcast channel-management host for `env`
    /// (`docs/apns-facts.md`, "Channel management":
    /// `api-manage-broadcast.sandbox.push.apple.com:2195`
    /// and `api-manage-broadcast.push.apple.com:2196`). Channels are not
    /// shared between the environments.
    ///
    /// ```
    /// # use apns_provider::{Endpoint, Environment};
    /// let e = Endpoint::channels_for_environment(Environment::Sandbox);
    /// assert_eq!(e.to_string(), "https://api-manage-broadcast.sandbox.push.apple.com:2195");
    /// assert_eq!(e.environment(), Some(Environment::Sandbox));
    /// ```
    pub fn channels_for_environment(env: Environment) -> Self {
        match env {
            Environment::Production => Endpoint {
                host: CHANNELS_PRODUCTION_HOST.into(),
                port: CHANNELS_PRODUCTION_PORT,
            },
            Environment::Sandbox => Endpoint {
                host: CHANNELS_SANDBOX_HOST.into(),
                port: CHANNELS_SANDBOX_PORT,
            },
        }
    }

    /// Where channel requests go for a client sending to this endpoint:
    /// Apple's management host of the same environment for Apple's push
    /// hosts; the endpoint itself for any other (a mock serves both on one
    /// port).
    pub fn default_channels_endpoint(&self) -> Endpoint {
        match self.host.as_str() {
            PRODUCTION_HOST => Self::channels_for_environment(Environment::Production),
            SANDBOX_HOST => Self::channels_for_environment(Environment::Sandbox),
            _ => self.clone(),
        }
    }

    /// An arbitrary host and port.
    pub fn new(host: impl Into<String>, port: u16) -> Result<Self> {
        let host = host.into();
        if host.is_empty() {
            return Err(Error::invalid("endpoint", "empty host name"));
        }
        Ok(Endpoint {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The same endpoint on another port (Apple also listens on 2197).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The host name (or IP address) to connect to and verify.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, as sent in `:authority`.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The environment, when this is one of Apple's hosts (push or channel
    /// management).
    pub fn environment(&self) -> Option<Environment> {
        match self.host.as_str() {
            PRODUCTION_HOST | CHANNELS_PRODUCTION_HOST => Some(Environment::Production),
            SANDBOX_HOST | DEVELOPMENT_ALIAS_HOST | CHANNELS_SANDBOX_HOST => {
                Some(Environment::Sandbox)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}", self.authority())
    }
}

/// What `ClientBuilder::endpoint` takes: an [`Endpoint`], or a URL string (`&str`, `String`) parsed as
/// `https://HOST[:PORT]`, as reqwest's builders take `impl IntoUrl`. A string
/// that does not parse is reported by `build()`. Sealed: implemented only
/// here.
///
/// ```
/// use apns_provider::{Endpoint, IntoEndpoint};
///
/// assert_eq!("https://127.0.0.1:8443".into_endpoint()?, Endpoint::new("127.0.0.1", 8443)?);
/// assert_eq!(Endpoint::sandbox().into_endpoint()?, Endpoint::sandbox());
/// assert!(String::from("http://127.0.0.1").into_endpoint().is_err());
/// # Ok::<(), apns_provider::Error>(())
/// ```
pub trait IntoEndpoint: sealed::Sealed {
    /// The endpoint, or why this is not one
    /// ([`Error::InvalidField`] for the field `endpoint`).
    fn into_endpoint(self) -> Result<Endpoint>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Endpoint {}
    impl Sealed for &super::Endpoint {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
}

impl IntoEndpoint for Endpoint {
    fn into_endpoint(self) -> Result<Endpoint> {
        Ok(self)
    }
}

impl IntoEndpoint for &Endpoint {
    fn into_endpoint(self) -> Result<Endpoint> {
        Ok(self.clone())
    }
}

impl IntoEndpoint for &str {
    fn into_endpoint(self) -> Result<Endpoint> {
        self.parse()
    }
}

impl IntoEndpoint for String {
    fn into_endpoint(self) -> Result<Endpoint> {
        self.parse()
    }
}

impl IntoEndpoint for &String {
    fn into_endpoint(self) -> Result<Endpoint> {
        self.parse()
    }
}

impl FromStr for Endpoint {
    type Err = Error;
    /// Parses `https://host[:port][/]`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(
                "endpoint",
                format!("{s:?} {why}; expected https://HOST[:PORT] such as https://127.0.0.1:8443"),
            )
        };
        let uri: http::Uri = s.parse().map_err(|_| bad("is not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("is not an https:// URL (APNs requires TLS)"));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad("has a path"));
        }
        let host = uri.host().ok_or_else(|| bad("has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Endpoint::new(host, uri.port_u16().unwrap_or(443))
    }
}
