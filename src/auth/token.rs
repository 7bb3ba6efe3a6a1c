//! Minting ES256 provider tokens.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderValue;
use serde::Deserialize;

use super::{KeyId, SigningKey, TeamId};
use crate::error::{Error, Result};

/// Signs provider tokens for one (team, key) pair.
///
/// ```
/// # use apns_provider::{SigningKey, TokenSigner, KeyId, TeamId};
/// # let key = SigningKey::from_pem(apns_provider::auth::generate_p8_pem().as_bytes())?;
/// let signer = TokenSigner::new(key, KeyId::new("ABCDE12345")?, TeamId::new("TEAM123456")?);
/// let jwt = signer.sign_jwt(1_700_000_000);
/// assert_eq!(jwt.split('.').count(), 3);
/// # Ok::<(), apns_provider::Error>(())
/// ```
#[derive(Clone)]
pub struct TokenSigner {
    key: SigningKey,
    key_id: KeyId,
    team_id: TeamId,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key", &"[redacted]")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .finish()
    }
}

impl TokenSigner {
    /// A signer for `team_id` using `key` (whose Apple id is `key_id`).
    pub fn new(key: SigningKey, key_id: KeyId, team_id: TeamId) -> Self {
        TokenSigner {
            key,
            key_id,
            team_id,
        }
    }

    /// The key id (`kid`).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The team id (`iss`).
    pub fn team_id(&self) -> &TeamId {
        &self.team_id
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs a JWT issued at `iat` (UNIX seconds): header `{"alg":"ES256","kid":...}`,
    /// claims `{"iss":...,"iat":...}`, base64url without padding, and the raw
    /// 64-byte `r||s` signature.
    pub fn sign_jwt(&self, iat: u64) -> String {
        // Both ids are validated alphanumerics, so no JSON escaping is needed.
        let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, self.key_id);
        let claims = format!(r#"{{"iss":"{}","iat":{iat}}}"#, self.team_id);
        let mut jwt = String::with_capacity(200);
        jwt.push_str(&URL_SAFE_NO_PAD.encode(header));
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims));
        let signature = self.key.sign(jwt.as_bytes());
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        jwt
    }

    /// Mints a [`ProviderToken`] issued at `iat`, recording `minted_at` (a
    /// monotonic reading) to measure its age.
    pub fn mint(&self, iat: u64, minted_at: Instant) -> ProviderToken {
        ProviderToken::new(self.sign_jwt(iat), iat, minted_at, 0)
    }
}

/// A signed provider token (JWT). Its `Debug` prints `[redacted]`; the text is
/// only reachable through [`expose_secret`](ProviderToken::expose_secret).
#[derive(Clone)]
pub struct ProviderToken {
    inner: Arc<TokenInner>,
}

struct TokenInner {
    jwt: zeroize::Zeroizing<String>,
    // `bearer <jwt>`, built once per mint and marked sensitive so HPACK never
    // indexes it.
    header: HeaderValue,
    issued_at: u64,
    minted_at: Instant,
    generation: u64,
    after_invalidation: bool,
}

impl fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProviderToken([redacted])")
    }
}

impl ProviderToken {
    pub(crate) fn new(jwt: String, issued_at: u64, minted_at: Instant, generation: u64) -> Self {
        Self::with_origin(jwt, issued_at, minted_at, generation, false)
    }

    pub(crate) fn with_origin(
        jwt: String,
        issued_at: u64,
        minted_at: Instant,
        generation: u64,
        after_invalidation: bool,
    ) -> Self {
        let mut header = HeaderValue::try_from(format!("bearer {jwt}"))
            .expect("a JWT is base64url and dots, always a valid header value");
        header.set_sensitive(true);
        ProviderToken {
            inner: Arc::new(TokenInner {
                jwt: zeroize::Zeroizing::new(jwt),
                header,
                issued_at,
                minted_at,
                generation,
                after_invalidation,
            }),
        }
    }

    /// The JWT text. Handle with care: anyone holding it can push to your
    /// apps for up to an hour.
    pub fn expose_secret(&self) -> &str {
        &self.inner.jwt
    }

    /// The `iat` claim (UNIX seconds).
    pub fn issued_at(&self) -> u64 {
        self.inner.issued_at
    }

    /// When the token was minted (monotonic).
    pub fn minted_at(&self) -> Instant {
        self.inner.minted_at
    }

    /// A number that changes with each mint of a [`TokenCache`](super::TokenCache).
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// True if this token was minted to replace one APNs reported expired.
    /// If APNs reports *this* one expired too, re-minting cannot help: the
    /// clock is wrong.
    pub fn is_replacement(&self) -> bool {
        self.inner.after_invalidation
    }

    /// The `authorization` header value (`bearer <jwt>`), marked sensitive.
    pub(crate) fn header_value(&self) -> &HeaderValue {
        &self.inner.header
    }
}

/// The decoded, *unverified* content of a provider token, for debugging
/// `InvalidProviderToken`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct TokenClaims {
    /// Header `alg`.
    pub alg: String,
    /// Header `kid` (key id).
    pub kid: String,
    /// Claim `iss` (team id).
    pub iss: String,
    /// Claim `iat` (UNIX seconds).
    pub iat: u64,
}

/// Decodes a provider token's header and claims without checking its
/// signature.
pub fn decode_unverified(jwt: &str) -> Result<TokenClaims> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        kid: String,
    }
    #[derive(Deserialize)]
    struct Claims {
        iss: String,
        iat: u64,
    }
    let bad = |what: &str| Error::invalid("token", what.to_string());
    let mut parts = jwt.trim().split('.');
    let (Some(h), Some(c), Some(_s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a JWT: expected three dot-separated parts"));
    };
    let decode = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| bad("a part is not base64url"))
    };
    let header: Header =
        serde_json::from_slice(&decode(h)?).map_err(|_| bad("header is not {alg, kid} JSON"))?;
    let claims: Claims =
        serde_json::from_slice(&decode(c)?).map_err(|_| bad("claims are not {iss, iat} JSON"))?;
    Ok(TokenClaims {
        alg: header.alg,
        kid: header.kid,
        iss: claims.iss,
        iat: claims.iat,
    })
}
