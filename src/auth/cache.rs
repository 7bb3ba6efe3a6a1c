//! Reusing provider tokens within Apple's rules.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{ProviderToken, TokenSigner};
use crate::clock::{self, Clock};
use crate::error::{Error, Result};

/// Refresh a token after this age unless configured otherwise.
pub const DEFAULT_REFRESH_AFTER: Duration = Duration::from_secs(50 * 60);
/// APNs answers `TooManyProviderTokenUpdates` to tokens changed more often.
pub const MIN_REFRESH_AFTER: Duration = Duration::from_secs(20 * 60);
/// APNs answers `ExpiredProviderToken` to tokens this old.
pub const MAX_REFRESH_AFTER: Duration = Duration::from_secs(60 * 60);

/// A cache holding the current provider token of one signer.
///
/// - The token is reused until it is `refresh_after` old (50 minutes by
///   default, configurable within 20..60 minutes), measured from its mint
///   with the monotonic clock.
/// - A new token is never minted within 20 minutes of the previous one,
///   except after [`invalidate`](TokenCache::invalidate), which is meant for
///   an `ExpiredProviderToken` answer.
/// - Concurrent callers at the refresh point cause exactly one mint.
///
/// ```
/// # use apns_provider::{SigningKey, TokenSigner, TokenCache, KeyId, TeamId};
/// # use apns_provider::clock::ManualClock;
/// # use std::{sync::Arc, time::Duration};
/// # let key = SigningKey::from_pem(apns_provider::auth::generate_p8_pem().as_bytes())?;
/// # let signer = TokenSigner::new(key, KeyId::new("ABCDE12345")?, TeamId::new("TEAM123456")?);
/// let clock = ManualClock::new();
/// let cache = TokenCache::new(signer).with_clock(Arc::new(clock.clone()));
/// let first = cache.get();
/// clock.advance(Duration::from_secs(49 * 60));
/// assert_eq!(cache.get().expose_secret(), first.expose_secret());
/// clock.advance(Duration::from_secs(60));
/// assert_ne!(cache.get().expose_secret(), first.expose_secret());
/// assert_eq!(cache.mint_count(), 2);
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(cache.current_age(), Some(Duration::from_secs(90)));
/// # Ok::<(), apns_provider::Error>(())
/// ```
pub struct TokenCache {
    signer: TokenSigner,
    clock: Arc<dyn Clock>,
    refresh_after: Duration,
    // A std mutex held while signing: signing takes microseconds, and holding
    // it is what guarantees a single mint when many callers arrive at once.
    state: Mutex<State>,
    mints: AtomicU64,
}

#[derive(Default)]
struct State {
    current: Option<ProviderToken>,
    generation: u64,
    invalidated: bool,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("signer", &self.signer)
            .field("refresh_after", &self.refresh_after)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl TokenCache {
    /// A cache with the default refresh period (50 minutes) and the system
    /// clock.
    pub fn new(signer: TokenSigner) -> Self {
        TokenCache {
            signer,
            clock: clock::system(),
            refresh_after: DEFAULT_REFRESH_AFTER,
            state: Mutex::new(State::default()),
            mints: AtomicU64::new(0),
        }
    }

    /// Uses `clock` instead of the system clock (for tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the refresh period. It must lie in Apple's window: at least 20
    /// minutes (or APNs answers `TooManyProviderTokenUpdates`) and under 60
    /// (or it answers `ExpiredProviderToken`).
    pub fn with_refresh_after(mut self, refresh_after: Duration) -> Result<Self> {
        if !(MIN_REFRESH_AFTER..MAX_REFRESH_AFTER).contains(&refresh_after) {
            return Err(Error::Config(format!(
                "token refresh period {refresh_after:?} is outside Apple's window: use at least 20 minutes and less than 60 (default 50)"
            )));
        }
        self.refresh_after = refresh_after;
        Ok(self)
    }

    /// The signer behind this cache.
    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// The configured refresh period.
    pub fn refresh_after(&self) -> Duration {
        self.refresh_after
    }

    /// The current token, minting one if there is none or it is due for
    /// refresh.
    pub fn get(&self) -> ProviderToken {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        if let Some(token) = &state.current {
            if now.saturating_duration_since(token.minted_at()) < self.refresh_after {
                return token.clone();
            }
        }
        state.generation += 1;
        let iat = self.clock.unix_seconds();
        let jwt = self.signer.sign_jwt(iat);
        let token = ProviderToken::with_origin(jwt, iat, now, state.generation, state.invalidated);
        state.invalidated = false;
        self.mints.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            key_id = %self.signer.key_id(),
            generation = state.generation,
            "minted a new provider token"
        );
        state.current = Some(token.clone());
        token
    }

    /// Drops `rejected` so that the next [`get`](TokenCache::get) mints a new
    /// token. Call it after APNs answered `ExpiredProviderToken` to a request
    /// that carried `rejected`.
    ///
    /// Returns `true` if this call dropped the token; `false` if a newer token
    /// has replaced it already (another request saw the same expiry), so that
    /// however many requests saw one expiry, one new token is minted.
    pub fn invalidate(&self, rejected: &ProviderToken) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &state.current {
            Some(current) if current.generation() == rejected.generation() => {
                state.current = None;
                state.invalidated = true;
                true
            }
            _ => false,
        }
    }

    /// How old `token` is, by this cache's monotonic clock.
    pub fn age(&self, token: &ProviderToken) -> Duration {
        self.clock
            .now()
            .saturating_duration_since(token.minted_at())
    }

    /// How old the current token is (by the monotonic clock), or `None`
    /// before the first mint and right after an invalidation. For metrics:
    /// it takes the cache's lock briefly and mints nothing.
    pub fn current_age(&self) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let minted = state.current.as_ref()?.minted_at();
        Some(self.clock.now().saturating_duration_since(minted))
    }

    /// How many tokens this cache has minted.
    pub fn mint_count(&self) -> u64 {
        self.mints.load(Ordering::Relaxed)
    }
}
