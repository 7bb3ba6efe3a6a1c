//! HTTPS proxies: an HTTP `CONNECT host:port` tunnel (RFC 9110, 9.3.6),
//! with `Proxy-Authorization: Basic` when credentials are given, and TLS to
//! APNs through it. The proxy sees only the host name and port; everything
//! else (the token, the notification) stays inside the TLS session to Apple.
//!
//! Which proxy applies follows curl's rules:
//! - `https_proxy`, then `HTTPS_PROXY`, then `all_proxy`, then `ALL_PROXY`
//!   (the first that is set and not empty);
//! - `no_proxy` (else `NO_PROXY`): a comma-separated list of hosts that
//!   bypass the proxy. `*` alone bypasses it for every host. A name matches
//!   itself and its subdomains (`example.com` matches `example.com` and
//!   `api.example.com`, not `notexample.com`; a leading dot is ignored). An
//!   IP address matches as written, or as a CIDR range (`10.0.0.0/8`).
//!   Loopback is not special: `localhost` or `127.0.0.1` bypass the proxy
//!   only when listed.
//! - An explicit proxy ([`ClientBuilder::proxy`](crate::ClientBuilder::proxy))
//!   beats the environment's; `NO_PROXY` still applies to it, as with curl.
//!
//! ```
//! use apns_provider::transport::{NoProxy, Proxy};
//! let proxy: Proxy = "http://alice:s3cret@proxy.corp:3128".parse()?;
//! assert_eq!(proxy.to_string(), "http://proxy.corp:3128"); // never the credentials
//! assert!(!format!("{proxy:?}").contains("s3cret"));
//! let proxy = proxy.with_no_proxy(NoProxy::parse(".internal, 10.0.0.0/8"));
//! assert!(proxy.applies_to("api.push.apple.com"));
//! assert!(!proxy.applies_to("mock.internal"));
//! assert!(!proxy.applies_to("10.1.2.3"));
//! # Ok::<(), apns_provider::Error>(())
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use zeroize::Zeroizing;

use super::connection::{Phase, Stage};
pub use super::no_proxy::NoProxy;
pub use super::proxy_redact::redacted;
use super::Endpoint;
use crate::error::{Error, Result};

/// The default port of a proxy URL without one (curl's).
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// The most a proxy's answer to `CONNECT` may hold before the blank line.
const MAX_ANSWER: usize = 16 * 1024;

/// An HTTP proxy that tunnels to APNs with `CONNECT`.
///
/// Parsed from `http://[user:password@]host[:port]` (the scheme may be
/// left out; the port defaults to 1080, as with curl; user and password
/// may be percent-encoded). `Display` and `Debug` never show the
/// credentials.
#[derive(Clone)]
pub struct Proxy {
    host: String,
    port: u16,
    credentials: Option<ProxyCredentials>,
    no_proxy: NoProxy,
}

/// A proxy user and password, kept as the `Proxy-Authorization` value they
/// make (zeroized on drop). Prints as `[redacted]`.
///
/// ```
/// let c = apns_provider::transport::ProxyCredentials::basic("alice", "s3cret");
/// assert_eq!(format!("{c:?}"), "ProxyCredentials([redacted])");
/// ```
#[derive(Clone)]
pub struct ProxyCredentials {
    header: Zeroizing<String>,
}

impl ProxyCredentials {
    /// HTTP Basic credentials.
    pub fn basic(user: &str, password: &str) -> Self {
        let pair = Zeroizing::new(format!("{user}:{password}"));
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*pair));
        ProxyCredentials {
            header: Zeroizing::new(format!("Basic {}", &*encoded)),
        }
    }
}

impl fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProxyCredentials([redacted])")
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("url", &self.to_string())
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[redacted]"),
            )
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Proxy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Proxy::parse(s)
    }
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port]`. Errors never repeat
    /// the credentials.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let shown = redacted(url);
        let bad = |why: &str| {
            Error::invalid(
                "proxy",
                format!("{shown:?} {why}; expected http://[USER:PASSWORD@]HOST:PORT"),
            )
        };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(bad(
                    "is an https:// proxy (TLS to the proxy itself), which is not supported",
                ))
            }
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "uses {scheme}://, which is not supported (only http:// proxies are)"
                )))
            }
            None => url,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("has a path"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("has an unclosed ["))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("has a bad port"))?),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(bad("has no valid host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                bad(if userinfo.is_none() {
                    "has a bad port (or is USER:PASSWORD without @HOST:PORT after it)"
                } else {
                    "has a bad port"
                })
            })?,
            None => DEFAULT_PROXY_PORT,
        };
        let credentials = match userinfo {
            None => None,
            Some(info) => {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                let user = Zeroizing::new(
                    percent_decode(user).ok_or_else(|| bad("has a badly encoded user"))?,
                );
                let password = Zeroizing::new(
                    percent_decode(password).ok_or_else(|| bad("has a badly encoded password"))?,
                );
                Some(ProxyCredentials::basic(&user, &password))
            }
        };
        Ok(Proxy {
            host: host.to_ascii_lowercase(),
            port,
            credentials,
            no_proxy: NoProxy::default(),
        })
    }

    /// The proxy the environment names for HTTPS (`https_proxy`,
    /// `HTTPS_PROXY`, `all_proxy`, `ALL_PROXY`, in that order), with the
    /// environment's `NO_PROXY`; `None` when none is set.
    pub fn from_env() -> Result<Option<Proxy>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Proxy::from_env), reading variables through
    /// `lookup` (for tests, or a configuration of your own).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Proxy>> {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        for name in ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
            if let Some(url) = set(name) {
                let proxy = Proxy::parse(&url).map_err(|e| match e {
                    Error::InvalidField { message, .. } => {
                        Error::Config(format!("the proxy in {name} is unusable: {message}"))
                    }
                    other => other,
                })?;
                return Ok(Some(proxy.with_no_proxy(NoProxy::from_lookup(&lookup))));
            }
        }
        Ok(None)
    }

    /// Sets the credentials (replacing any from the URL).
    pub fn with_credentials(mut self, credentials: ProxyCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sets the hosts that bypass this proxy.
    pub fn with_no_proxy(mut self, no_proxy: NoProxy) -> Self {
        self.no_proxy = no_proxy;
        self
    }

    /// The proxy's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether credentials are set.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// Whether connections to `host` go through this proxy (`false` when
    /// the no-proxy list names it).
    pub fn applies_to(&self, host: &str) -> bool {
        !self.no_proxy.matches(host)
    }

    /// Connects to the proxy, without the tunnel.
    pub(crate) async fn connect(&self, within: Duration) -> Result<TcpStream> {
        let unreachable = |why: String| Error::Proxy {
            proxy: self.to_string(),
            status: None,
            message: format!("cannot reach the proxy at {self}: {why}"),
        };
        let tcp = timeout(within, TcpStream::connect((self.host.as_str(), self.port)))
            .await
            .map_err(|_| unreachable(format!("no connection within {within:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// Asks the proxy on `tcp` for a tunnel to `endpoint`. On success the
    /// stream carries the tunnel; nothing past the proxy's answer has been
    /// read.
    pub(crate) async fn handshake(
        &self,
        tcp: &mut TcpStream,
        endpoint: &Endpoint,
        within: Duration,
    ) -> Result<()> {
        let target = endpoint.authority();
        let failed = |status: Option<u16>, message: String| Error::Proxy {
            proxy: self.to_string(),
            status,
            message,
        };
        let exchange = async {
            let mut request = Zeroizing::new(format!(
                "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: apns-provider/{}\r\n",
                env!("CARGO_PKG_VERSION")
            ));
            if let Some(c) = &self.credentials {
                request.push_str("Proxy-Authorization: ");
                request.push_str(&c.header);
                request.push_str("\r\n");
            }
            request.push_str("\r\n");
            tcp.write_all(request.as_bytes()).await?;
            read_answer(tcp).await
        };
        let answer = timeout(within, exchange)
            .await
            .map_err(|_| {
                failed(
                    None,
                    format!(
                        "the proxy at {self} did not answer CONNECT {target} within {within:?}"
                    ),
                )
            })?
            .map_err(|e| {
                failed(
                    None,
                    format!(
                        "the connection to the proxy at {self} failed during CONNECT {target}: {e}"
                    ),
                )
            })?;
        let head = match answer {
            Answer::Head(head) => head,
            Answer::Closed => {
                return Err(failed(
                    None,
                    format!("the proxy at {self} closed the connection before answering CONNECT {target}"),
                ))
            }
            Answer::TooLong => {
                return Err(failed(
                    None,
                    format!("the proxy at {self} answered CONNECT {target} with over {MAX_ANSWER} bytes of headers"),
                ))
            }
            Answer::Trailing => {
                return Err(failed(
                    None,
                    format!("the proxy at {self} sent data after its answer to CONNECT {target}, before TLS began"),
                ))
            }
        };
        let (status, reason) = parse_status(&head).ok_or_else(|| {
            failed(
                None,
                format!(
                    "the proxy at {self} answered CONNECT {target} with something that is not HTTP"
                ),
            )
        })?;
        match status {
            200..=299 => Ok(()),
            407 => Err(failed(
                Some(407),
                if self.credentials.is_some() {
                    format!("proxy authentication required: the proxy at {self} rejected the credentials (407 to CONNECT {target})")
                } else {
                    format!("proxy authentication required: the proxy at {self} wants credentials and none were given (407 to CONNECT {target})")
                },
            )),
            _ => Err(failed(
                Some(status),
                format!("the proxy at {self} refused the tunnel to {target}: {status} {reason}"),
            )),
        }
    }

    /// Connects through the proxy to `endpoint`: TCP to the proxy, then the
    /// tunnel, both within `within`.
    pub(crate) async fn tunnel(
        &self,
        endpoint: &Endpoint,
        within: Duration,
        stage: &Stage,
    ) -> Result<TcpStream> {
        let started = tokio::time::Instant::now();
        stage.set(Phase::ProxyTcp);
        let mut tcp = self.connect(within).await?;
        stage.set(Phase::ProxyConnect);
        let left = within.saturating_sub(started.elapsed());
        self.handshake(&mut tcp, endpoint, left).await?;
        Ok(tcp)
    }
}

enum Answer {
    Head(String),
    Closed,
    TooLong,
    Trailing,
}

/// Reads the proxy's answer up to its blank line. A tunnel's first bytes
/// come from the server only after our TLS hello, so anything past the
/// blank line is a broken proxy, never data to keep.
async fn read_answer(tcp: &mut TcpStream) -> std::io::Result<Answer> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Answer::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if end + 4 < buf.len() {
                // A body with a refusal (407, 403...) is fine: it is not
                // a tunnel.
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                return Ok(match parse_status(&head) {
                    Some((200..=299, _)) => Answer::Trailing,
                    _ => Answer::Head(head),
                });
            }
            return Ok(Answer::Head(
                String::from_utf8_lossy(&buf[..end]).into_owned(),
            ));
        }
        if buf.len() > MAX_ANSWER {
            return Ok(Answer::TooLong);
        }
    }
}

/// `HTTP/1.1 407 Proxy Authentication Required` -> (407, "Proxy ...").
fn parse_status(head: &str) -> Option<(u16, String)> {
    let line = head.lines().next()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse::<u16>().ok()?;
    let reason: String = parts
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    Some((status, reason))
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not
/// UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// How a connection reaches its endpoint: directly (to a pinned address,
/// or through DNS), or through a proxy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Route {
    /// Connect here instead of resolving the endpoint's host (not used
    /// through a proxy, which resolves the host itself).
    pub resolve: Option<SocketAddr>,
    /// The proxy to tunnel through, when one applies to the endpoint.
    pub proxy: Option<std::sync::Arc<Proxy>>,
}

impl Route {
    /// A TCP stream to `endpoint` (through the proxy's tunnel if any),
    /// within `within`.
    pub(crate) async fn dial(
        &self,
        endpoint: &Endpoint,
        within: Duration,
        stage: &Stage,
    ) -> Result<TcpStream> {
        if let Some(proxy) = &self.proxy {
            return proxy.tunnel(endpoint, within, stage).await;
        }
        stage.set(Phase::Tcp);
        let authority = endpoint.authority();
        // Resolve on every connect, so a new connection follows DNS changes
        // (unless an address was pinned, like curl's --resolve).
        let dial = async {
            match self.resolve {
                Some(addr) => TcpStream::connect(addr).await,
                None => TcpStream::connect((endpoint.host(), endpoint.port())).await,
            }
        };
        timeout(within, dial)
            .await
            .map_err(|_| Error::Timeout {
                what: super::stage::CONNECT_TCP,
                after: within,
                may_have_been_delivered: false,
            })?
            .map_err(|source| Error::Connect {
                endpoint: authority,
                source,
            })
    }
}

#[cfg(test)]
mod tests;
