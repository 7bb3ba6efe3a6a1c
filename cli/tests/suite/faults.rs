//! One test per fault the mock can inject, on a multi-threaded runtime.
//! Each checks that every send resolves before its deadline, that the
//! counts add up (sent = accepted + rejected + failed) and what the mock
//! saw. The outages of issue 10 (storms, timed outages, black holes) are in
//! `outages.rs`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use apns_provider::client::ConnectionState;
use apns_provider::clock::{Clock, ManualClock};
use apns_provider::mock::{Fault, MockServer};
use apns_provider::{Client, Error, Notification, Payload, Reason, RetryPolicy};
use futures_util::StreamExt;

use crate::support::sends::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_streams_above_last_are_resent_on_a_new_connection() {
    let (mock, client) = setup(&[Fault::GoAwayAfter {
        requests: 20,
        reason: "Shutdown".into(),
    }])
    .await;
    // Warm up: the stream limit rises after the first valid token.
    let out = batch(&client, 300, 100).await;
    assert_eq!(accepted_ids(&out).len(), 300, "every notification accepted");
    let stats = mock.stats();
    assert_eq!(stats.goaways_sent, 1);
    assert!(stats.connections >= 2, "{stats:?}");
    // Nothing lost, nothing delivered twice.
    let ids = mock_ids(&mock);
    assert_eq!(ids.len(), 300);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 300);
    let c = client.stats();
    // Streams the mock refused above the GOAWAY, plus any the client failed
    // itself on reading the GOAWAY, were each resent once.
    assert!(c.resends >= stats.streams_refused, "{c:?} {stats:?}");
    assert_eq!(c.retries, 0);
}

#[test]
fn goaway_reason_is_logged() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .finish();
    // A current-thread runtime, so every task logs to this subscriber.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let (mock, client) = setup(&[Fault::GoAwayAfter {
                requests: 3,
                reason: "Shutdown".into(),
            }])
            .await;
            let out = batch(&client, 40, 20).await;
            assert_eq!(accepted_ids(&out).len(), 40);
            assert_eq!(mock.stats().goaways_sent, 1);
        })
    });
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("GOAWAY") && logs.contains("reason Shutdown"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_streams_are_resent_until_the_deadline_and_never_blamed() {
    let (mock, client) = setup(&[]).await;
    for count in [1, 2, 5] {
        mock.inject(Fault::RefuseStreams { count });
        assert_eq!(accepted_ids(&batch(&client, 1, 1).await).len(), 1);
    }
    assert_eq!(mock.stats().streams_refused, 8);
    assert_eq!(client.stats().resends, 8);
    assert_eq!(mock_ids(&mock).len(), 3);

    // A server that refuses everything: resent, one probe at a time, until
    // the deadline; then reported as never delivered.
    mock.inject(Fault::RefuseStreams { count: 1_000_000 });
    let before = mock.stats().streams_refused;
    let out = batch(&client, 1, 1).await;
    let e = out[0].result.as_ref().unwrap_err();
    // Only the attempt on the wire when the deadline struck is unknown.
    assert!(!e.may_have_been_delivered() || e.is_timeout(), "{e}");
    let refused = mock.stats().streams_refused - before;
    // Probes are spaced 10 to 100 ms in these fast clients: a few dozen in
    // 5 s, not a tight loop.
    assert!((5..=200).contains(&refused), "{refused} refused in 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_shorter_than_the_liveness_check_still_bounds_a_black_hole() {
    let (mock, client) = setup_with(&[Fault::BlackHole], |b| {
        b.request_timeout(Duration::from_millis(400))
    })
    .await;
    let started = Instant::now();
    let stream = futures_util::stream::iter(0..5).map(|i| {
        let client = client.clone();
        async move { client.send(&note(i)).await }
    });
    let results: Vec<_> = stream.buffer_unordered(5).collect().await;
    assert!(started.elapsed() < Duration::from_millis(400) + SLACK);
    let mut on_wire = 0;
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert!(e.is_timeout(), "{e}");
        if e.may_have_been_delivered() {
            on_wire += 1;
        }
    }
    // One stream until a first valid answer: the first request is on the
    // wire; the others wait for the stream (not delivered), except any that
    // got it just as its deadline struck.
    let swallowed = mock.stats().black_holed;
    assert!(
        swallowed >= 1 && swallowed <= on_wire,
        "{swallowed} {on_wire}"
    );
    assert!(on_wire < 5);
    check_accounts(&client.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_ping_retires_the_connection_before_a_send_lands() {
    let (mock, client) = setup_with(&[], |b| {
        b.keepalive(Duration::from_millis(100), Duration::from_millis(200))
    })
    .await;
    assert_eq!(accepted_ids(&batch(&client, 3, 1).await).len(), 3);
    mock.inject(Fault::IgnorePings);
    wait_until_async(
        "the mock ignores a PING",
        Duration::from_secs(5),
        async || mock.stats().pings_ignored >= 1,
    )
    .await;
    wait_until_async(
        "the client retires the connection whose PING went unanswered",
        Duration::from_secs(5),
        async || {
            !client
                .connections()
                .iter()
                .any(|c| c.state == ConnectionState::Open)
        },
    )
    .await;
    mock.clear_faults();
    let out = batch(&client, 3, 1).await;
    assert_eq!(
        accepted_ids(&out).len(),
        3,
        "the next sends go to a new connection"
    );
    assert_eq!(mock.stats().connections, 2);
    assert_eq!(client.stats().connections_opened, 2);
    // Answered PINGs keep a connection. (Not an ordering: time for several
    // 100-ms keepalive rounds to pass; the mock counts no answered PING.)
    tokio::time::sleep(Duration::from_millis(600)).await;
    batch(&client, 1, 1).await;
    assert_eq!(mock.stats().connections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshake_times_out_then_recovers() {
    let (mock, client) = setup_with(&[Fault::StallTlsHandshake], |b| {
        b.tls_timeout(Duration::from_millis(200))
    })
    .await;
    let out = batch(&client, 3, 3).await;
    for o in &out {
        let e = o.result.as_ref().unwrap_err();
        assert!(
            e.is_timeout() && e.to_string().contains("TLS handshake"),
            "{e}"
        );
        assert!(!e.may_have_been_delivered());
    }
    mock.clear_faults();
    // No pause needed: a send that finds the pool in its reconnect backoff
    // (at most 100 ms here) waits it out within its 5-s deadline.
    assert_eq!(accepted_ids(&batch(&client, 3, 1).await).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_storms_are_retried_within_bounds() {
    // 503: retried on a new connection each time.
    let (mock, client) = setup(&[Fault::ErrorStorm {
        reason: Reason::ServiceUnavailable,
        count: 2,
    }])
    .await;
    assert_eq!(accepted_ids(&batch(&client, 1, 1).await).len(), 1);
    assert_eq!(client.stats().retries, 2);
    assert_eq!(mock.stats().connections, 3);

    // 500: retried with backoff on the same connection.
    mock.inject(Fault::ErrorStorm {
        reason: Reason::InternalServerError,
        count: 2,
    });
    assert_eq!(accepted_ids(&batch(&client, 1, 1).await).len(), 1);
    assert_eq!(client.stats().retries, 4);
    assert_eq!(mock.stats().connections, 3);

    // TooManyProviderTokenUpdates: new connection, same token.
    mock.inject(Fault::ErrorStorm {
        reason: Reason::TooManyProviderTokenUpdates,
        count: 1,
    });
    assert_eq!(accepted_ids(&batch(&client, 1, 1).await).len(), 1);
    assert_eq!(mock.stats().connections, 4);
    assert_eq!(client.stats().tokens_minted, 1);

    // 429 TooManyRequests is about one device: never retried.
    mock.inject(Fault::ErrorStorm {
        reason: Reason::TooManyRequests,
        count: 1,
    });
    let out = batch(&client, 1, 1).await;
    assert_eq!(
        out[0].result.as_ref().unwrap().reason(),
        Some(&Reason::TooManyRequests)
    );
    assert_eq!(client.stats().retries, 5);

    // Permanent rejections are never retried.
    let before = mock.stats().requests;
    let r = client
        .send(
            &Notification::builder("dead0000", Payload::alert("x"))
                .topic(BUNDLE)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert_eq!(mock.stats().requests, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_max_retries_and_at_the_budget() {
    let policy = RetryPolicy::default()
        .with_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .with_max_retries(2)
        .with_budget(0.0, 0.0, 5.0);
    let (mock, client) = setup_with(
        &[Fault::ErrorStorm {
            reason: Reason::InternalServerError,
            count: 1000,
        }],
        |b| b.retry_policy(policy),
    )
    .await;
    let out = batch(&client, 1, 1).await;
    assert_eq!(out[0].result.as_ref().unwrap().status(), 500);
    assert_eq!(mock.stats().requests, 3, "one try and two retries");
    // Ten more: the budget (5 tokens, none earned) allows 3 more retries.
    let out = batch(&client, 10, 1).await;
    assert!(out
        .iter()
        .all(|o| o.result.as_ref().unwrap().status() == 500));
    assert_eq!(client.stats().retries, 5);
    assert_eq!(mock.stats().requests, 3 + 10 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_limit_dropping_to_one_is_respected() {
    // Answers take 2 ms, so streams overlap in the mock however loaded the
    // machine is (without it, a busy machine could answer each request
    // before the next one is read, and nothing would show the limit rose).
    let (mock, client) = setup(&[
        Fault::LimitDropsAfterRejection,
        Fault::Latency {
            delay: Duration::from_millis(2),
        },
    ])
    .await;
    // Warm up: the limit rises after the first valid token, and many
    // streams run at once.
    batch(&client, 1, 1).await;
    batch(&client, 200, 100).await;
    assert!(
        mock.stats().max_concurrent_streams_seen > 1,
        "{:?}",
        mock.stats()
    );
    let stream = futures_util::stream::iter(0..300).map(|i| {
        let client = client.clone();
        async move {
            let token = if i % 10 == 0 { "dead0000" } else { DEVICE };
            let n = Notification::builder(token, Payload::alert("x"))
                .topic(BUNDLE)
                .build()
                .unwrap();
            client.send(&n).await
        }
    });
    let results: Vec<_> = stream.buffer_unordered(50).collect().await;
    let statuses: Vec<u16> = results
        .iter()
        .map(|r| r.as_ref().unwrap().status())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 410).count(), 30);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 270);
    let stats = mock.stats();
    // The limit did drop (30 rejections) while many streams were in use.
    assert!(stats.stream_limit_drops >= 1, "{stats:?}");
    // The mock refuses and counts any stream opened above the limit the
    // client was bound by at that moment.
    assert_eq!(stats.stream_limit_violations, 0, "{stats:?}");
    check_accounts(&client.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_expired_mints_once_and_reports_the_clock() {
    let (mock, client) = setup(&[Fault::ExpireAllTokens]).await;
    let out = batch(&client, 10, 10).await;
    for o in &out {
        let e = o.result.as_ref().unwrap_err();
        assert!(matches!(e, Error::TokenExpiredAgain(_)), "{e}");
    }
    assert_eq!(client.stats().tokens_minted, 2, "exactly one re-mint");
    let requests = mock.stats().requests;
    assert!(
        (11..=20).contains(&requests),
        "at most one retry each, no loop: {requests}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_seeing_one_expiry_cause_one_new_token() {
    let client_clock = ManualClock::new();
    let mock_clock =
        ManualClock::starting_at(client_clock.system_time() + Duration::from_secs(1800));
    let key = new_key();
    let mock = mock_for(&key)
        .clock(shared(&mock_clock))
        .start()
        .await
        .unwrap();
    let client = fast(client_for(&mock, key))
        .clock(shared(&client_clock))
        .build()
        .unwrap();
    assert_eq!(accepted_ids(&batch(&client, 5, 1).await).len(), 5);
    client_clock.advance(Duration::from_secs(35 * 60));
    mock_clock.advance(Duration::from_secs(35 * 60));
    let out = batch(&client, 100, 100).await;
    assert_eq!(accepted_ids(&out).len(), 100);
    assert_eq!(client.stats().tokens_minted, 2);
    assert_eq!(
        mock.stats().tokens_verified,
        2,
        "the mock saw exactly one new token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_queue_reports_full() {
    let (mock, client) = setup_with(&[Fault::BlackHole], |b| {
        b.max_pending(2).request_timeout(Duration::from_millis(500))
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..3 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.send(&note(i)).await }));
        // In order: the first on the wire (in the black hole), then each
        // next one waiting.
        wait_until_async(
            &format!("send {i} is under way"),
            Duration::from_secs(5),
            async || mock.stats().black_holed == 1 && client.stats().in_flight == i as u64 + 1,
        )
        .await;
    }
    // One on the wire, two waiting: the fourth is refused at once.
    let e = client.send(&note(9)).await.unwrap_err();
    assert!(matches!(e, Error::QueueFull { limit: 2 }), "{e}");
    for t in tasks {
        assert!(t.await.unwrap().unwrap_err().is_timeout());
    }
    check_accounts(&client.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_then_abandons_and_accounts_for_everything() {
    let (mock, client) = setup(&[]).await;
    batch(&client, 20, 10).await;
    mock.inject(Fault::BlackHole);
    let mut tasks = Vec::new();
    for i in 0..5 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.send(&note(i)).await }));
    }
    wait_until_async(
        "the five sends are on the wire",
        Duration::from_secs(5),
        async || mock.stats().black_holed == 5,
    )
    .await;
    let report = client.shutdown(Duration::from_millis(200)).await;
    assert_eq!(report.in_flight_at_start, 5);
    assert_eq!(report.abandoned, 5);
    assert_eq!(report.completed, 0);
    for t in tasks {
        let e = t.await.unwrap().unwrap_err();
        assert!(matches!(e, Error::Shutdown { .. }), "{e}");
    }
    let s = report.stats;
    assert_eq!((s.sent, s.accepted, s.failed, s.in_flight), (25, 20, 5, 0));
    // Later sends fail at once; a second shutdown is harmless.
    let e = client.send(&note(99)).await.unwrap_err();
    assert!(matches!(
        e,
        Error::Shutdown {
            may_have_been_delivered: false
        }
    ));
    assert_eq!(client.shutdown(Duration::ZERO).await, report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let (mock, client) = setup(&[]).await;
    batch(&client, 1, 1).await; // raise the stream limit
                                // Slow answers, so that shutdown starts with requests in flight.
    mock.inject(Fault::Latency {
        delay: Duration::from_millis(300),
    });
    let c = client.clone();
    let running = tokio::spawn(async move { batch(&c, 50, 50).await });
    wait_until_async(
        "50 sends are in flight",
        Duration::from_secs(5),
        async || client.stats().in_flight == 50,
    )
    .await;
    let report = client.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.in_flight_at_start, 50);
    assert_eq!(report.completed, 50);
    assert_eq!(report.abandoned, 0);
    let out = running.await.unwrap();
    assert_eq!(accepted_ids(&out).len(), 50, "every one was answered");
    assert_eq!(mock.stats().accepted, 51);
    // Later sends are refused, never sent.
    let e = client.send(&note(99)).await.unwrap_err();
    assert!(matches!(
        e,
        Error::Shutdown {
            may_have_been_delivered: false
        }
    ));
    check_accounts(&report.stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_many_streams_every_result() {
    let (mock, client) = setup(&[]).await;
    let input = futures_util::stream::iter((0..5000).map(note));
    let results: Vec<_> = client.send_many(input, 200).collect().await;
    assert_eq!(results.len(), 5000);
    assert!(results
        .iter()
        .all(|o| o.result.as_ref().unwrap().is_accepted()));
    let ids: HashSet<_> = results
        .iter()
        .map(|o| o.notification.apns_id().unwrap())
        .collect();
    assert_eq!(ids.len(), 5000);
    assert_eq!(mock.accepted().len(), 5000);
    check_accounts(&client.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_spreads_load_and_two_teams_never_share_a_connection() {
    let key_a = new_key();
    let key_b = new_key();
    let mock = MockServer::builder()
        .max_streams(10)
        .trust_key(
            apns_provider::mock::TrustedKey::new(KEY_ID, TEAM_ID, key_a.public_key()).unwrap(),
        )
        .trust_key(
            apns_provider::mock::TrustedKey::new("KEYB000001", "TEAMB00001", key_b.public_key())
                .unwrap(),
        )
        .start()
        .await
        .unwrap();
    let a = fast(client_for(&mock, key_a)).pool_size(3).build().unwrap();
    let b = fast(
        Client::builder()
            .no_proxy()
            .endpoint(mock.endpoint())
            .add_root_certificates_pem(mock.ca_pem().unwrap().as_bytes())
            .token_auth(key_b, "KEYB000001", "TEAMB00001"),
    )
    .build()
    .unwrap();
    let (ra, rb) = tokio::join!(batch(&a, 300, 60), batch(&b, 50, 10));
    assert_eq!(accepted_ids(&ra).len(), 300);
    assert_eq!(accepted_ids(&rb).len(), 50);
    assert_eq!(
        a.stats().connections_opened,
        3,
        "load beyond one connection's limit opens the pool"
    );
    assert_eq!(b.stats().connections_opened, 1);
    let per_conn_team: std::collections::HashMap<u64, HashSet<String>> = mock
        .accepted()
        .into_iter()
        .fold(Default::default(), |mut m, a| {
            m.entry(a.connection).or_default().insert(a.team_id);
            m
        });
    assert_eq!(per_conn_team.len(), 4);
    assert!(per_conn_team.values().all(|teams| teams.len() == 1));
    assert_eq!(mock.stats().stream_limit_violations, 0);
}
