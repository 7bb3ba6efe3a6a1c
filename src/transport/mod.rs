//! The raw HTTP/2 transport: endpoints, TLS configuration and connections.
//!
//! TCP (with `TCP_NODELAY`; through an HTTPS proxy's `CONNECT` tunnel when
//! one applies, see [`Proxy`]) -> rustls (ALPN `h2`, `webpki-roots` trust plus
//! extra roots) -> `h2` client. Token connections start with one allowed
//! stream, as Apple requires, and then follow the server's SETTINGS.

pub(crate) mod buffered;
pub(crate) mod connection;
mod endpoint;
pub(crate) mod frames;
pub(crate) mod hpack;
mod inbound;
mod no_proxy;
pub(crate) mod pool;
mod proxy;
mod proxy_redact;
mod shim;
pub(crate) mod snapshot;
mod stage;
pub(crate) mod tls;

pub use endpoint::{
    Endpoint, Environment, IntoEndpoint, CHANNELS_PRODUCTION_HOST, CHANNELS_PRODUCTION_PORT,
    CHANNELS_SANDBOX_HOST, CHANNELS_SANDBOX_PORT, DEVELOPMENT_ALIAS_HOST, PRODUCTION_HOST,
    SANDBOX_HOST,
};
pub(crate) use proxy::Route;
pub use proxy::{redacted as redacted_proxy, NoProxy, Proxy, ProxyCredentials, DEFAULT_PROXY_PORT};
