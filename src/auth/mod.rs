//! Authentication: `.p8` keys, ES256 provider tokens and their cache, and
//! TLS client certificates for teams still on certificates.
//!
//! - [`ClientCertificate`] loads a `.p12` or PEM push certificate and
//!   [`CertificateInfo`] says what Apple put in it.
//! - [`SigningKey`] loads the key Apple issues (`AuthKey_<KEYID>.p8`).
//! - [`TokenSigner`] mints provider tokens (JWTs) exactly as Apple specifies.
//! - [`TokenCache`] reuses a token and refreshes it within Apple's rules
//!   (not more often than every 20 minutes, never older than 60).
//! - [`verify_token`] and [`decode_unverified`] read tokens back (a
//!   verifier, and tools that show a token's header and claims).
//!
//! # JWTs and `jsonwebtoken`'s crypto provider
//!
//! Tokens are built and read with `jsonwebtoken` 12 (header, claims,
//! base64url, `encode`/`decode`), compiled without a crypto backend: `p256`
//! signs and `ring` verifies, supplied through its `CryptoProvider`. That
//! provider is process-wide:
//! - if the application has none installed, this crate installs its own
//!   (ES256 only; other algorithms get an error, never a panic) the first
//!   time a token is signed or verified;
//! - if the application has installed one, or enabled a `jsonwebtoken`
//!   backend feature, it is left alone and never used for provider tokens:
//!   this crate calls its own signer and verifier directly, and the tokens
//!   are the same bytes.
//!
//! An application that uses `jsonwebtoken` 12 with a provider of its own
//! should therefore install it at startup, before its first provider token.

mod cache;
mod cert;
mod ids;
mod jwt;
pub(crate) mod key;
mod token;
pub(crate) mod verify;

pub use cache::{TokenCache, DEFAULT_REFRESH_AFTER, MAX_REFRESH_AFTER, MIN_REFRESH_AFTER};
pub use cert::{CertEnvironment, CertificateInfo, ClientCertificate};
pub use ids::{check_ids_against_file_name, KeyId, TeamId};
pub use key::{generate_p8_pem, load_key_file, PublicKey, SigningKey};
pub use token::{ProviderToken, TokenClaims, TokenSigner};
pub use verify::{decode_unverified, verify_token};

pub(crate) use key::pem_encode;
#[cfg(any(feature = "keystore", feature = "gateway"))]
pub(crate) use key::read_private_file;
