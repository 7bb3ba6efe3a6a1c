//! Authentication: `.p8` keys, ES256 provider tokens and their cache, and
//! TLS client certificates for teams still on certificates.
//!
//! - [`ClientCertificate`] loads a `.p12` or PEM push certificate and
//!   [`CertificateInfo`] says what Apple put in it.
//! - [`SigningKey`] loads the key Apple issues (`AuthKey_<KEYID>.p8`).
//! - [`TokenSigner`] mints provider tokens (JWTs) exactly as Apple specifies.
//! - [`TokenCache`] reuses a token and refreshes it within Apple's rules
//!   (not more often than every 20 minutes, never older than 60).

mod cache;
mod cert;
mod ids;
pub(crate) mod key;
mod token;
pub(crate) mod verify;

pub use cache::{TokenCache, DEFAULT_REFRESH_AFTER, MAX_REFRESH_AFTER, MIN_REFRESH_AFTER};
pub use cert::{CertEnvironment, CertificateInfo, ClientCertificate};
pub use ids::{check_ids_against_file_name, KeyId, TeamId};
pub use key::{generate_p8_pem, load_key_file, PublicKey, SigningKey};
pub use token::{decode_unverified, ProviderToken, TokenClaims, TokenSigner};
pub use verify::verify_token;

pub(crate) use key::{pem_encode, read_private_file};
