//! Token cache rules over hours of injected clock.

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

use apns_provider::clock::{Clock, ManualClock};
use apns_provider::{KeyId, TeamId, TokenCache, TokenSigner};

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

fn cache(clock: &ManualClock) -> TokenCache {
    let signer = TokenSigner::new(
        new_key(),
        KeyId::new(KEY_ID).unwrap(),
        TeamId::new(TEAM_ID).unwrap(),
    );
    TokenCache::new(signer).with_clock(shared(clock))
}

#[test]
fn reuses_then_refreshes_at_fifty_minutes_for_hours() {
    let clock = ManualClock::new();
    let cache = cache(&clock);
    let first = cache.get();
    let mut mint_times = vec![0u64];
    // Ten hours, one request a minute.
    for minute in 1..=600u64 {
        clock.advance(MIN);
        let before = cache.mint_count();
        let token = cache.get();
        if cache.mint_count() != before {
            mint_times.push(minute);
        }
        assert_eq!(
            token.issued_at(),
            clock.unix_seconds() - (minute - *mint_times.last().unwrap()) * 60
        );
    }
    assert_ne!(first.expose_secret(), cache.get().expose_secret());
    // A mint at 0, 50, 100, ... 600.
    let expected: Vec<u64> = (0..=12).map(|i| i * 50).collect();
    assert_eq!(mint_times, expected);
    for pair in mint_times.windows(2) {
        assert!(pair[1] - pair[0] >= 20, "never two mints within 20 minutes");
        assert!(pair[1] - pair[0] < 60, "never a token an hour old");
    }
}

#[test]
fn refresh_period_is_configurable_within_apples_window() {
    let clock = ManualClock::new();
    let c = cache(&clock).with_refresh_after(30 * MIN).unwrap();
    c.get();
    clock.advance(29 * MIN);
    c.get();
    assert_eq!(c.mint_count(), 1);
    clock.advance(MIN);
    c.get();
    assert_eq!(c.mint_count(), 2);

    for bad in [Duration::ZERO, 19 * MIN, 60 * MIN, 90 * MIN] {
        let e = cache(&clock)
            .with_refresh_after(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("20 minutes") && e.contains("60"), "{e}");
    }
    assert!(cache(&clock).with_refresh_after(20 * MIN).is_ok());
}

#[test]
fn invalidation_after_expiry_mints_once_however_many_requests_saw_it() {
    let clock = ManualClock::new();
    let c = cache(&clock);
    let seen = c.get();
    clock.advance(5 * MIN);
    // Fifty in-flight requests all saw ExpiredProviderToken for `seen`.
    let dropped = (0..50).filter(|_| {
        let invalidated = c.invalidate(&seen);
        c.get();
        invalidated
    });
    assert_eq!(dropped.count(), 1);
    assert_eq!(c.mint_count(), 2);
    // Without an invalidation, no new mint within 20 minutes.
    clock.advance(10 * MIN);
    c.get();
    assert_eq!(c.mint_count(), 2);
}

#[test]
fn concurrent_callers_at_the_refresh_point_cause_one_mint() {
    let clock = ManualClock::new();
    let c = Arc::new(cache(&clock));
    c.get();
    clock.advance(50 * MIN);
    let threads = 16;
    let barrier = Arc::new(Barrier::new(threads));
    let tokens: Vec<String> = (0..threads)
        .map(|_| {
            let c = c.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                c.get().expose_secret().to_string()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(c.mint_count(), 2);
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
}

/// A clock whose wall time jumps while monotonic time runs steadily.
#[derive(Debug)]
struct JumpyClock {
    mono: Mutex<Instant>,
    wall: Mutex<SystemTime>,
}
impl Clock for JumpyClock {
    fn now(&self) -> Instant {
        *self.mono.lock().unwrap()
    }
    fn system_time(&self) -> SystemTime {
        *self.wall.lock().unwrap()
    }
}

#[test]
fn age_is_measured_from_the_mint_with_the_monotonic_clock() {
    let clock = Arc::new(JumpyClock {
        mono: Mutex::new(Instant::now()),
        wall: Mutex::new(SystemTime::now()),
    });
    let signer = TokenSigner::new(
        new_key(),
        KeyId::new(KEY_ID).unwrap(),
        TeamId::new(TEAM_ID).unwrap(),
    );
    let c = TokenCache::new(signer).with_clock(clock.clone());
    c.get();
    // The wall clock jumps three hours ahead (NTP correction): no re-mint.
    *clock.wall.lock().unwrap() += 180 * MIN;
    c.get();
    assert_eq!(c.mint_count(), 1);
    // Monotonic time passes 50 minutes: re-mint, iat from the wall clock.
    *clock.mono.lock().unwrap() += 50 * MIN;
    let t = c.get();
    assert_eq!(c.mint_count(), 2);
    assert_eq!(t.issued_at(), clock.unix_seconds());
}

/// The mock's per-key rule (`token_updates_per_key`, `apns mock
/// --token-updates per-key`): a second process minting its own token for
/// the same key within 20 minutes gets 429 TooManyProviderTokenUpdates,
/// across connections, while the per-connection default lets it through;
/// 20 minutes later the key may change its token again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strict_mock_allows_one_token_change_per_key_per_twenty_minutes() {
    use apns_provider::{Reason, RetryPolicy};
    let key = new_key();
    for per_key in [false, true] {
        let mock_clock = ManualClock::new();
        let mock = mock_for(&key)
            .clock(shared(&mock_clock))
            .token_updates_per_key(per_key)
            .start()
            .await
            .unwrap();
        // Two "processes": the same key, tokens minted 30 s apart.
        let process = |started: SystemTime| {
            client_for(&mock, key.clone())
                .clock(shared(&ManualClock::starting_at(started)))
                .retry_policy(RetryPolicy::default().with_max_retries(0))
                .build()
                .unwrap()
        };
        let now = SystemTime::now();
        let first = process(now - Duration::from_secs(30));
        let second = process(now);
        let r = first.send(&crate::support::sends::note(1)).await.unwrap();
        assert!(r.is_accepted(), "{r:?}");
        let r = second.send(&crate::support::sends::note(2)).await.unwrap();
        if per_key {
            assert_eq!(
                (r.status(), r.reason()),
                (429, Some(&Reason::TooManyProviderTokenUpdates)),
                "{r:?}"
            );
            assert_eq!(mock.stats().key_token_updates_refused, 1);
            // The first process's token is still the key's: it goes on.
            assert!(first
                .send(&crate::support::sends::note(3))
                .await
                .unwrap()
                .is_accepted());
            // 20 minutes on, the key may change its token once.
            mock_clock.advance(Duration::from_secs(20 * 60));
            let third = process(now);
            assert!(third
                .send(&crate::support::sends::note(4))
                .await
                .unwrap()
                .is_accepted());
        } else {
            assert!(r.is_accepted(), "per connection, each has its own: {r:?}");
            assert_eq!(mock.stats().key_token_updates_refused, 0);
        }
    }
}
