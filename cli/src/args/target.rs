//! Where and how a command reaches APNs: credentials, environment, another
//! server than Apple's, the timeout and the proxy (`TargetArgs`), and the
//! client builder they make.

use std::path::PathBuf;
use std::time::Duration;

use apns_provider::{Client, ClientBuilder, Endpoint, Environment};
use clap::Args;

use super::credentials::{CertArgs, KeyArgs};
use super::numbers;
use super::proxy::{with_proxy, ProxyArgs};
use super::values;
use crate::credentials::{pick_environment, resolve, Credentials, Resolved};
use crate::failure::Failure;

/// Another server than Apple's (`apns mock`, a test server) and the CA to
/// trust for it: `--endpoint` and `--ca-file`, the same for every command
/// that connects.
#[derive(Debug, Args, Clone, Default)]
pub struct ServerArgs {
    /// Connect to this server instead of Apple's (`apns mock`, or a relay in front of APNs),
    /// e.g. https://127.0.0.1:8443.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Also trust the CA certificates in this PEM file (for a mock or a TLS-inspecting proxy).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

impl ServerArgs {
    /// `--endpoint`, else Apple's host for `environment`.
    pub fn endpoint_or(&self, environment: Environment) -> Result<Endpoint, Failure> {
        Ok(self
            .endpoint()?
            .unwrap_or_else(|| Endpoint::for_environment(environment)))
    }

    /// `--endpoint`, if given.
    pub fn endpoint(&self) -> Result<Option<Endpoint>, Failure> {
        Ok(self.endpoint.as_deref().map(str::parse).transpose()?)
    }

    /// `builder`, also trusting `--ca-file`.
    pub fn trusted(&self, builder: ClientBuilder) -> ClientBuilder {
        match &self.ca_file {
            Some(ca) => builder.add_root_certificates_file(ca),
            None => builder,
        }
    }
}

/// Everything a command that reaches APNs needs to know about it: who
/// sends (key or certificate), to which environment and server, within
/// which time, through which proxy. Declared once, for `send`, `worker`,
/// `serve`, `doctor`, `channel` and `broadcast`.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub cert: CertArgs,
    /// Apple environment: sandbox or production (default: the profile's, else production).
    /// Device tokens and broadcast channels belong to one environment.
    #[arg(long = "env", env = "APNS_ENV", value_name = "ENV", value_parser = values::environment())]
    pub environment: Option<Environment>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Limit in seconds for one request to APNs, retries included (default 30; for `apns
    /// doctor`, each check's limit, default 10).
    #[arg(long, value_name = "SECONDS", value_parser = numbers::seconds(false, numbers::DAY))]
    pub timeout: Option<f64>,
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

impl TargetArgs {
    /// Whether credentials are given (`--key`, `--key-file` or `--cert`).
    pub fn has_credentials(&self) -> bool {
        self.key.profile.is_some() || self.key.file.key_file.is_some() || self.cert.cert.is_some()
    }

    /// The credentials of the flags, the environment and the profile.
    pub fn resolve(&self) -> Result<Resolved, Failure> {
        resolve(&self.key, &self.cert)
    }

    /// `--env`, else the profile's, else production (a profile limited to
    /// one environment refuses the other).
    pub fn environment_for(&self, resolved: &Resolved) -> Result<Environment, Failure> {
        pick_environment(self.environment, resolved)
    }

    /// `--timeout`, else `default` seconds.
    pub fn timeout_or(&self, default: f64) -> Duration {
        Duration::from_secs_f64(self.timeout.unwrap_or(default))
    }

    /// A client builder for `credentials` against `environment` (or
    /// `--endpoint`), trusting `--ca-file`, through the proxy the flags
    /// and the environment choose, with `timeout` per request. What it
    /// chose is logged (`-v`), never a secret.
    pub fn client_builder(
        &self,
        credentials: Credentials,
        environment: Environment,
        timeout: Duration,
    ) -> Result<ClientBuilder, Failure> {
        let endpoint = self.server.endpoint_or(environment)?;
        tracing::info!("endpoint {endpoint} ({environment})");
        if let Some(ca) = &self.server.ca_file {
            tracing::info!("also trusting the CA certificates in {}", ca.display());
        }
        let proxy = self.proxy.choice()?;
        match &proxy {
            _ if self.proxy.no_proxy => tracing::info!("no proxy: --no-proxy"),
            Some(p) if !p.applies_to(endpoint.host()) => {
                tracing::info!("no proxy: NO_PROXY lists {}", endpoint.host())
            }
            Some(p) => tracing::info!("through the HTTPS proxy {p} (CONNECT tunnel)"),
            None => tracing::info!("no proxy: none given, none in HTTPS_PROXY or ALL_PROXY"),
        }
        let builder = with_proxy(Client::builder().endpoint(endpoint), proxy);
        let builder = match credentials {
            Credentials::Token(signer) => {
                tracing::info!(
                    "credentials: token key {} of team {}",
                    signer.key_id(),
                    signer.team_id()
                );
                builder.token_signer(signer)
            }
            Credentials::Certificate(cert) => {
                let info = cert.info();
                tracing::info!(
                    "credentials: certificate {} (topics {})",
                    info.subject,
                    info.allowed_topics().join(", ")
                );
                builder.certificate(cert)
            }
        };
        Ok(self.server.trusted(builder).request_timeout(timeout))
    }
}
