//! # apns-provider
//!
//! Send Apple push notifications (APNs) the way Apple now wants them sent:
//! HTTP/2 over TLS, authenticated with ES256 provider tokens signed by an
//! Apple `.p8` key.
//!
//! ```no_run
//! use apns_provider::{Client, Environment, Notification, Payload, SigningKey};
//!
//! # async fn run() -> apns_provider::Result<()> {
//! let client = Client::builder()
//!     .environment(Environment::Sandbox)
//!     .token_auth(SigningKey::from_file("AuthKey_ABCDE12345.p8")?, "ABCDE12345", "TEAM123456")
//!     .build()?;
//! let n = Notification::builder("00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0",
//!                               Payload::alert("Hello"))
//!     .topic("com.example.app")
//!     .build()?;
//! let response = client.send(&n).await?;
//! assert!(response.is_accepted());
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! | module | what it holds | uses |
//! |---|---|---|
//! | [`error`] | the one [`Error`] (predicates, typed kinds) and [`Result`] | [`response`] |
//! | [`clock`] | injectable time, UNIX seconds, UTC dates | |
//! | [`auth`] | `.p8` keys, ids, the ES256 token signer and checker, the token cache, client certificates | `error`, `clock`, `notification::PushType`, `transport::Environment` |
//! | [`broadcast`] | broadcast push (iOS 18 Live Activities): channel ids, storage policies, [`Broadcast`] | `payload`, `notification`, `error` |
//! | [`payload`] | the payload builder (every `aps` key) and raw JSON | `error` |
//! | [`notification`] | device token, topic, push type, priority, expiration...; [`Notification`]; lints | `payload`, `error`, `clock` |
//! | [`response`] | APNs' answer and the open [`Reason`] enum | `error`, `clock` |
//! | [`wire`] | notifications and their results as JSON (tokens files, queue jobs, the gateway) | `notification`, `payload`, `response` |
//! | [`transport`] | endpoints, HTTPS proxies (`CONNECT`), TLS (rustls + ring + webpki-roots), the pool, HTTP/2 connections, the byte-level shim | `response`, `error`, `backoff` |
//! | [`client`] | [`Client`], its builder, the retry loop, [`RetryPolicy`], [`Channels`] (channel management), shutdown, stats | `auth`, `transport`, `notification`, `broadcast`, `response` |
//! | [`doctor`] | step-by-step checks of the road to an endpoint (DNS, TCP, proxy, TLS, ALPN, chain) | `transport` |
//! | `keystore` (feature `keystore`) | keys in the OS keychain, a file store or the environment; named profiles | `auth` |
//! | `mock` (feature `mock`) | a validating mock APNs server over real TLS and HTTP/2 | the types above, never the client |
//! | `metrics` (feature `metrics`) | Prometheus metrics of running clients, and a `/metrics` listener | `client` |
//! | `app` (features `gateway`, `worker`) | `App`: a client and the defaults its notifications start from, what the gateway and the worker send for | `client`, `wire` |
//! | `gateway` (feature `gateway`) | an authenticated HTTP gateway in front of apps (`apns serve`): API tokens, validation, dispatch, routes, server | `app`, `client`, `wire`, `metrics` |
//! | `worker` (feature `worker`) | the queue job format and a worker sending the jobs of a Redis stream: settings, shared context, pure decisions, the loops | `app`, `client`, `wire` |
//!
//! Dependencies point one way, down this table: `client` uses `auth`,
//! `transport`, `payload`, `notification` and `broadcast`, which use `error` and
//! `clock`; nothing points back up. The mock reuses the types, never the
//! client. The `apns` command line (package `apns-cli`) sits on top of all of it.
//!
//! ## Features
//!
//! | feature | adds |
//! |---|---|
//! | (none) | the core above, with no optional dependency |
//! | `keystore` | `apns_provider::keystore` (keyring-core and the platform's store, toml) |
//! | `mock` | `apns_provider::mock` (rcgen) |
//! | `metrics` | `apns_provider::metrics` (prometheus-client) |
//! | `gateway` | `apns_provider::gateway` (axum, hyper-util) |
//! | `worker` | `apns_provider::worker` (redis, without TLS) |
//!
//! The default is the core alone, so `cargo add apns-provider` pulls no
//! optional crate. The `apns` command line is a package of its own
//! (`apns-cli`, in the repository's `cli/`) built on this crate's public
//! API. Everything runs on Tokio: use the client from inside a Tokio
//! runtime.
//!
//! Secrets (keys, tokens) print as `[redacted]` in `Debug` output and never
//! appear in error messages or logs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "gateway", feature = "worker"))]
pub mod app;
pub mod auth;
mod backoff;
pub mod broadcast;
pub mod client;
pub mod clock;
mod crypto;
pub mod doctor;
pub mod error;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "keystore")]
pub mod keystore;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "mock")]
pub mod mock;
pub mod notification;
pub mod payload;
pub mod response;
mod tls_words;
pub mod wire;
// Used by the readers of other programs' JSON (gateway, tokens files, jobs).
mod strict_json;
pub mod transport;
#[cfg(feature = "worker")]
pub mod worker;

/// Internals timed by `cargo bench` (with the testing feature, `mock`).
/// Not part of the API: they may change or go in any release.
#[cfg(feature = "mock")]
#[doc(hidden)]
pub mod __bench {
    use crate::{Client, Notification, Result};

    /// The HTTP request the client sends for `n`, with its current token.
    pub fn build_request(client: &Client, n: &Notification) -> Result<http::Request<()>> {
        client.build_request(n, client.provider_token().as_ref(), None)
    }

    /// The client's rewrite of a HEADERS block (`:path` never indexed).
    pub fn never_index_path(block: &mut [u8]) -> bool {
        crate::transport::hpack::never_index_path(block)
    }
}

pub use auth::{
    CertEnvironment, CertificateInfo, ClientCertificate, KeyId, ProviderToken, PublicKey,
    SigningKey, TeamId, TokenCache, TokenSigner,
};
pub use broadcast::{Broadcast, BroadcastBuilder, ChannelId, ChannelInfo, StoragePolicy};
pub use client::{
    Channels, Client, ClientBuilder, ClientStats, RetryPolicy, SendOutcome, ShutdownReport,
};
pub use error::{CredentialProblem, Error, KeystoreProblem, Result, TlsProblem};
pub use notification::{
    ApnsId, CollapseId, DeviceToken, Expiration, Lint, Notification, NotificationBuilder, Priority,
    PushType, Topic,
};
pub use payload::Payload;
pub use response::{Reason, ReasonClass, Response};
pub use transport::{Endpoint, Environment, IntoEndpoint};

// Compiles the README's examples as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
