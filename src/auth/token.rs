//! Minting ES256 provider tokens.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;
use serde::Deserialize;

use super::{KeyId, SigningKey, TeamId};

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
    // A topic-specific key's bundle ids; `None`: any topic of the team.
    topics: Option<Arc<[String]>>,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key", &"[redacted]")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("topics", &self.topics)
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
            topics: None,
        }
    }

    /// Limits the key to these bundle ids, as Apple's topic-specific keys
    /// are (February 2025; `docs/apns-facts.md`, "Key scopes"): a client
    /// with this signer refuses, before sending, any topic that is not one
    /// of them or one of them plus a push type's suffix.
    ///
    /// ```
    /// # use apns_provider::{PushType, SigningKey, TokenSigner, KeyId, TeamId};
    /// # let key = SigningKey::from_pem(apns_provider::auth::generate_p8_pem().as_bytes())?;
    /// let signer = TokenSigner::new(key, KeyId::new("ABCDE12345")?, TeamId::new("TEAM123456")?)
    ///     .limited_to_topics(["com.example.app"]);
    /// signer.check_topic("com.example.app.voip")?;
    /// assert!(signer.check_topic("com.example.other").is_err());
    /// # Ok::<(), apns_provider::Error>(())
    /// ```
    pub fn limited_to_topics(
        mut self,
        bundle_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.topics = Some(bundle_ids.into_iter().map(Into::into).collect());
        self
    }

    /// The bundle ids the key is limited to, if it is.
    pub fn topics(&self) -> Option<&[String]> {
        self.topics.as_deref()
    }

    /// Whether the key may send to `topic`: any topic without a limit;
    /// else one of its bundle ids, bare or with a push type's suffix.
    pub fn check_topic(&self, topic: &str) -> crate::error::Result<()> {
        let Some(bundles) = &self.topics else {
            return Ok(());
        };
        let within = bundles.iter().any(|bundle| {
            topic.strip_prefix(bundle.as_str()).is_some_and(|suffix| {
                crate::notification::PushType::ALL
                    .iter()
                    .any(|t| t.topic_suffix() == Some(suffix))
            })
        });
        if within {
            return Ok(());
        }
        Err(crate::error::Error::invalid(
            "topic",
            format!(
                "{topic} is outside the key's scope: key {} is limited to {} (and their push-type suffixes)",
                self.key_id,
                bundles.join(", ")
            ),
        ))
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

    /// Signs a JWT issued at `iat` (UNIX seconds): header exactly
    /// `{"alg":"ES256","kid":...}` (no `typ`), claims exactly
    /// `{"iss":...,"iat":...}`, base64url without padding, and the raw
    /// 64-byte `r||s` signature. The structure is `jsonwebtoken`'s, the
    /// signature `p256`'s (see the crate's JWT notes in `auth`).
    pub fn sign_jwt(&self, iat: u64) -> String {
        super::jwt::sign(&self.key, self.key_id.as_str(), self.team_id.as_str(), iat)
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

/// A provider token's header and claims: unverified from
/// [`decode_unverified`](super::decode_unverified) (to debug
/// `InvalidProviderToken`), verified from [`verify_token`](super::verify_token).
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
