//! Provider-token authentication as APNs does it: the keys the mock
//! trusts, and what each connection remembers (its team, its last verified
//! token) to apply Apple's per-connection rules.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::lock;
use super::server::{MockConn, State};
use super::validate::{reject, Rejection};
use crate::auth::verify as jwt;
use crate::auth::{KeyId, PublicKey, TeamId, MAX_REFRESH_AFTER, MIN_REFRESH_AFTER};
use crate::error::Result;
use crate::notification::PushType;
use crate::response::Reason;
use crate::transport::Environment;

/// A key the mock accepts provider tokens from.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    key_id: KeyId,
    team_id: TeamId,
    public_key: PublicKey,
    sec1: Vec<u8>,
    topics: Vec<String>,
    environment: Option<Environment>,
}

impl TrustedKey {
    /// Trusts tokens with `kid = key_id`, `iss = team_id`, signed by
    /// `public_key`'s private half.
    pub fn new(key_id: &str, team_id: &str, public_key: PublicKey) -> Result<Self> {
        Ok(TrustedKey {
            key_id: KeyId::new(key_id)?,
            team_id: TeamId::new(team_id)?,
            sec1: public_key.to_sec1_bytes(),
            public_key,
            topics: Vec::new(),
            environment: None,
        })
    }

    /// Limits the key to these bundle ids (and their push-type suffixes);
    /// other topics get `TopicDisallowed`. Without this, any topic is allowed.
    pub fn topics<I, S>(mut self, bundle_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics = bundle_ids.into_iter().map(Into::into).collect();
        self
    }

    /// Limits the key to one environment, as Apple allows since 2025; tokens
    /// sent to a mock of the other environment get
    /// `BadEnvironmentKeyIdInToken`.
    pub fn environment(mut self, env: Environment) -> Self {
        self.environment = Some(env);
        self
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The key id (`kid`).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The team id (`iss`).
    pub fn team_id(&self) -> &TeamId {
        &self.team_id
    }

    pub(crate) fn allows_topic(&self, topic: &str) -> bool {
        self.topics.is_empty()
            || self.topics.iter().any(|bundle| {
                topic == bundle
                    || topic.strip_prefix(bundle.as_str()).is_some_and(|suffix| {
                        PushType::ALL
                            .iter()
                            .any(|t| t.topic_suffix() == Some(suffix))
                    })
            })
    }
}

/// What a connection remembers about token authentication.
#[derive(Default)]
pub(crate) struct ConnAuth {
    team: Option<String>,
    token: Option<CachedToken>,
}

impl ConnAuth {
    /// Whether a valid token was seen on this connection.
    pub(crate) fn is_valid(&self) -> bool {
        self.token.is_some()
    }
}

struct CachedToken {
    raw: String,
    kid: String,
    iss: String,
    iat: i64,
    since: Instant,
}

/// Checks the provider token, caching the verified token per connection so
/// that a signature is verified once, not per request.
pub(crate) fn authenticate<'s>(
    header: Option<&str>,
    state: &'s State,
    conn: &MockConn,
) -> std::result::Result<&'s TrustedKey, Rejection> {
    let header = header.ok_or_else(|| reject(Reason::MissingProviderToken))?;
    let token = jwt::bearer(header, state.strict_tokens)
        .ok_or_else(|| reject(Reason::MissingProviderToken))?;
    let now_unix = state.clock.unix_seconds() as i64;
    let now = state.clock.now();
    let mut auth = lock(&conn.auth);

    let cached = auth.token.as_ref().filter(|c| c.raw == token);
    let (kid, iss, iat) = match cached {
        Some(c) => (c.kid.clone(), c.iss.clone(), c.iat),
        None => {
            let invalid = || reject(Reason::InvalidProviderToken);
            let parsed = jwt::parse(token, state.strict_tokens).map_err(|_| invalid())?;
            let key = state.keys.get(&parsed.kid).ok_or_else(invalid)?;
            if key.team_id.as_str() != parsed.iss {
                return Err(invalid());
            }
            let iat = i64::try_from(parsed.iat).map_err(|_| invalid())?;
            parsed.verify(&key.sec1).map_err(|_| invalid())?;
            state
                .counters
                .tokens_verified
                .fetch_add(1, Ordering::Relaxed);
            (parsed.kid, parsed.iss, iat)
        }
    };
    let key = state
        .keys
        .get(&kid)
        .ok_or_else(|| reject(Reason::InvalidProviderToken))?;
    if let Some(env) = key.environment {
        if env != state.environment {
            return Err(reject(Reason::BadEnvironmentKeyIdInToken));
        }
    }
    if auth.team.as_ref().is_some_and(|team| *team != iss) {
        return Err(reject(Reason::UnrelatedKeyIdInToken));
    }
    // Saturating: `iat` comes from the client and may be anything.
    if now_unix.saturating_sub(iat) >= MAX_REFRESH_AFTER.as_secs() as i64 {
        return Err(reject(Reason::ExpiredProviderToken));
    }
    if iat.saturating_sub(now_unix) > 300 {
        // Issued in the future: the provider's clock is wrong.
        return Err(reject(Reason::InvalidProviderToken));
    }
    if cached.is_none() {
        if let Some(previous) = &auth.token {
            if now.saturating_duration_since(previous.since) < MIN_REFRESH_AFTER {
                return Err(reject(Reason::TooManyProviderTokenUpdates));
            }
        }
        let first = auth.token.is_none();
        auth.team = Some(iss.clone());
        auth.token = Some(CachedToken {
            raw: token.to_string(),
            kid,
            iss,
            iat,
            since: now,
        });
        if first {
            // APNs raises the stream limit after the first valid token.
            conn.control.set(state.max_streams);
        }
    }
    Ok(key)
}
