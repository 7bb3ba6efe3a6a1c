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
//! | module | what it holds |
//! |---|---|
//! | [`auth`] | `.p8` keys, the ES256 token signer, the token cache |
//! | [`broadcast`] | broadcast push (iOS 18 Live Activities): channel ids, storage policies, [`Broadcast`] |
//! | [`notification`] | device token, topic, push type, priority, expiration... and lints |
//! | [`payload`] | the payload builder (every `aps` key) and raw JSON |
//! | [`response`] | APNs' answer and the open [`Reason`] enum |
//! | [`transport`] | endpoints, TLS (rustls + ring + webpki-roots), HTTP/2 connections |
//! | [`client`] | [`Client`], its builder, and [`Channels`] (channel management) |
//! | [`keystore`] | keys in the OS keychain, a file store or the environment; named profiles |
//! | [`mock`] | a validating mock APNs server over real TLS and HTTP/2 |
//! | [`doctor`] | step-by-step checks of the road to an endpoint (DNS, TCP, TLS, ALPN, chain) |
//! | [`clock`] | injectable time for tests |
//!
//! Dependencies point one way: `client` uses `auth`, `transport`, `payload`,
//! `notification` and `broadcast`, which use `error`. The mock reuses the types, never
//! the client.
//!
//! Secrets (keys, tokens) print as `[redacted]` in `Debug` output and never
//! appear in error messages or logs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
mod backoff;
pub mod broadcast;
pub mod client;
pub mod clock;
pub mod doctor;
pub mod error;
#[cfg(feature = "keystore")]
pub mod keystore;
#[cfg(feature = "mock")]
pub mod mock;
pub mod notification;
pub mod payload;
pub mod response;
pub mod spec;
pub mod transport;

pub use auth::{
    CertEnvironment, CertificateInfo, ClientCertificate, KeyId, ProviderToken, PublicKey,
    SigningKey, TeamId, TokenCache, TokenSigner,
};
pub use broadcast::{Broadcast, BroadcastBuilder, ChannelId, ChannelInfo, StoragePolicy};
pub use client::{
    Channels, Client, ClientBuilder, ClientStats, RetryPolicy, SendOutcome, ShutdownReport,
};
pub use error::{Error, Result};
pub use notification::{
    ApnsId, CollapseId, DeviceToken, Expiration, Lint, Notification, NotificationBuilder, Priority,
    PushType, Topic,
};
pub use payload::Payload;
pub use response::{Reason, ReasonClass, Response};
pub use transport::{Endpoint, Environment};

// Compiles the README's examples as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
