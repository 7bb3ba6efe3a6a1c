//! `--proxy` and `--no-proxy`, the same on every command that reaches
//! APNs, and the proxy they choose with the environment's variables.

use apns_provider::transport::{NoProxy, Proxy};
use apns_provider::ClientBuilder;
use clap::Args;

use crate::failure::Failure;

/// How to reach APNs through an HTTPS proxy.
#[derive(Debug, Args, Clone, Default)]
pub struct ProxyArgs {
    /// Reach APNs through this HTTP proxy (a CONNECT tunnel; TLS to Apple runs inside it):
    /// http://[USER:PASSWORD@]HOST:PORT. Beats HTTPS_PROXY / ALL_PROXY; NO_PROXY still applies.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "no_proxy",
        help_heading = "Proxy"
    )]
    pub proxy: Option<String>,
    /// Never use a proxy, whatever HTTPS_PROXY, https_proxy, ALL_PROXY or all_proxy say.
    #[arg(long, help_heading = "Proxy")]
    pub no_proxy: bool,
}

impl ProxyArgs {
    /// The proxy the flags and the environment choose, as curl would:
    /// `--proxy` (with the environment's NO_PROXY), else HTTPS_PROXY and
    /// the like, unless `--no-proxy`.
    pub fn choice(&self) -> Result<Option<Proxy>, Failure> {
        if self.no_proxy {
            return Ok(None);
        }
        match &self.proxy {
            Some(url) => Ok(Some(Proxy::parse(url)?.with_no_proxy(NoProxy::from_env()))),
            None => Ok(Proxy::from_env()?),
        }
    }
}

/// `builder` going through `proxy`, or connecting directly.
pub fn with_proxy(builder: ClientBuilder, proxy: Option<Proxy>) -> ClientBuilder {
    match proxy {
        Some(p) => builder.proxy(p),
        None => builder.no_proxy(),
    }
}
