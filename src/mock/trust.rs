//! Whether the mock trusts a request's credentials, as APNs checks them per
//! connection: provider tokens (verified against the [`TrustedKey`]s, with
//! Apple's rules on age, changes and one team per connection) and the
//! environment of a client certificate.

use std::sync::atomic::Ordering;

use super::keys::TrustedKey;
use super::rejection::{reject, Rejection};
use super::state::{lock, CachedToken, KeyTokens, MockConn, State};
use crate::auth::verify as jwt;
use crate::auth::{CertificateInfo, MAX_REFRESH_AFTER, MIN_REFRESH_AFTER};
use crate::response::Reason;

/// Checks the provider token, caching the verified token per connection so
/// that a signature is verified once, not per request.
pub(crate) fn authenticate<'s>(
    header: Option<&str>,
    state: &'s State,
    conn: &MockConn,
) -> Result<&'s TrustedKey, Rejection> {
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
            if key.team_id().as_str() != parsed.iss {
                return Err(invalid());
            }
            let iat = i64::try_from(parsed.iat).map_err(|_| invalid())?;
            parsed.verify(key.sec1()).map_err(|_| invalid())?;
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
    if let Some(env) = key.environment_limit() {
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
        if let Some(per_key) = &state.per_key_tokens {
            let mut keys = lock(per_key);
            match keys.get_mut(&kid) {
                None => {
                    keys.insert(
                        kid.clone(),
                        KeyTokens {
                            current: token.to_string(),
                            previous: None,
                            since: now,
                        },
                    );
                }
                Some(seen) if seen.current == token || seen.previous.as_deref() == Some(token) => {}
                Some(seen) => {
                    if now.saturating_duration_since(seen.since) < MIN_REFRESH_AFTER {
                        state
                            .counters
                            .key_token_updates_refused
                            .fetch_add(1, Ordering::Relaxed);
                        return Err(reject(Reason::TooManyProviderTokenUpdates));
                    }
                    seen.previous = Some(std::mem::replace(&mut seen.current, token.to_string()));
                    seen.since = now;
                }
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

/// A client certificate for the other environment gets
/// `BadCertificateEnvironment`, and a GOAWAY too when the mock was asked to
/// answer it so (`docs/apns-facts.md`, "Certificates": "sometimes as a GOAWAY").
pub(crate) fn check_certificate_environment(
    cert: &CertificateInfo,
    state: &State,
    conn: &MockConn,
) -> Result<(), Rejection> {
    if cert.environment.allows(state.environment) {
        return Ok(());
    }
    if state.bad_environment_goaway {
        conn.go_away_now(state, "BadCertificateEnvironment");
    }
    Err(reject(Reason::BadCertificateEnvironment))
}
