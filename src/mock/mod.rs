//! A validating mock APNs server over real TLS and HTTP/2, for our tests and
//! yours.
//!
//! It checks requests the way APNs does (method, path, device token, every
//! `apns-*` header, payload size per push type) and verifies provider
//! tokens with its own implementation (`ring`), including Apple's rules on
//! token age (`ExpiredProviderToken`), token changes per connection
//! (`TooManyProviderTokenUpdates`) and one team per connection. Like APNs, it
//! allows one concurrent stream on a connection until the first request with
//! a valid token, then raises the limit (1000 by default).
//!
//! It also plays the broadcast hosts (iOS 18 Live Activities) on the same
//! listener, routing by path: broadcasts (`/4/broadcasts/apps/<bundle>`)
//! and channel management (`/1/apps/<bundle>/channels`, `.../all-channels`),
//! with a channel registry per app and environment and Apple's rules (see
//! [`MockServer::broadcasts`] and [`MockServer::channels`]).
//!
//! ```
//! use apns_provider::mock::{MockServer, TrustedKey};
//! use apns_provider::{Client, Notification, Payload, SigningKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> apns_provider::Result<()> {
//! let key = SigningKey::from_pem(apns_provider::auth::generate_p8_pem().as_bytes())?;
//! let mock = MockServer::builder()
//!     .trust_key(TrustedKey::new("ABCDE12345", "TEAM123456", key.public_key())?)
//!     .start()
//!     .await?;
//! let client = Client::builder()
//!     .endpoint(mock.endpoint())
//!     .add_root_certificates_pem(mock.ca_pem().unwrap().as_bytes())
//!     .no_proxy() // the mock is on loopback: never through the caller's HTTPS_PROXY
//!     .token_auth(key, "ABCDE12345", "TEAM123456")
//!     .build()?;
//! let n = Notification::builder("abcdef0123", Payload::alert("hi")).topic("com.example.app").build()?;
//! assert!(client.send(&n).await?.is_accepted());
//! assert_eq!(mock.accepted().len(), 1);
//! # Ok(()) }
//! ```
//!
//! Memory stays bounded however long it runs: counters ([`MockStats`]) count
//! everything, and [`MockServer::accepted`] returns the last
//! [`keep`](MockServerBuilder::keep) records (10,000 by default). Clients
//! that connect and say nothing, half-open streams and idle connections are
//! closed by timeouts, and the accept loop backs off when out of file
//! descriptors.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | this overview and the public re-exports |
//! | `handle.rs` | [`MockServer`] (the running server) and [`MockStats`] |
//! | `builder.rs` | [`MockServerBuilder`] |
//! | `server.rs` | accept loop, connections, streams, timeouts; dispatches each request by its route |
//! | `push.rs` | the push route: APNs' checks of a push request |
//! | `broadcast.rs` | the broadcast route: the checks of a broadcast send |
//! | `channels.rs` | the channel-management routes' answers |
//! | `app.rs` | the checks the broadcast and channel routes share (path, request id, an app's credentials) |
//! | `trust.rs` | whether the mock trusts a request's credentials: provider-token rules per connection, a certificate's environment |
//! | `state.rs` | what connections share (`State`) and what one remembers (`MockConn`) |
//! | `route.rs` | the route of a request, by its path |
//! | `rejection.rs` | an error answer: status and reason |
//! | `keys.rs` | [`TrustedKey`] |
//! | `registry.rs` | the channel registry, [`RegisteredChannel`] |
//! | `faults.rs` | [`Fault`] injection: what is armed, what it decides |
//! | `records.rs` | [`AcceptedNotification`], [`AcceptedBroadcast`] and the bounded record |
//! | `shim.rs` | the byte-level SETTINGS/GOAWAY/PING control under `h2` |
//! | `ca.rs` | the generated CA and server certificate |
//!
//! Imports run one way: the data files (`rejection`, `route`, `keys`,
//! `registry`, `faults`, `records`, `shim`, `ca`) import no other mock file
//! but each other's leaves; `state` imports only them; the checks (`trust`,
//! then `app`) and the route handlers (`push`, `broadcast`, `channels`)
//! import `state` and the leaves; `server` dispatches to the handlers;
//! `builder` and `handle` sit on top.

mod app;
mod broadcast;
mod builder;
mod ca;
mod channels;
mod faults;
mod handle;
mod keys;
mod push;
mod records;
mod registry;
mod rejection;
mod route;
mod server;
mod shim;
mod state;
mod trust;

pub use builder::{MockServerBuilder, DEFAULT_MAX_STREAMS};
pub use faults::Fault;
pub use handle::{MockServer, MockStats};
pub use keys::TrustedKey;
pub use records::{AcceptedBroadcast, AcceptedNotification, DEFAULT_KEEP};
pub use registry::RegisteredChannel;
pub use server::MAX_HEADER_LIST_SIZE;
