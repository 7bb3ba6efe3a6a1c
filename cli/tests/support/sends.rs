//! Sending batches against a faulty mock and checking what every fault
//! test checks: each send resolved before its deadline, and the counts add
//! up.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use apns_provider::mock::{Fault, MockServer};
use apns_provider::{
    ApnsId, Client, ClientBuilder, ClientStats, Error, Notification, Payload, Response, RetryPolicy,
};
use futures_util::StreamExt;

use super::*;

/// The deadline of the fast clients.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Scheduling slack allowed past a deadline.
pub const SLACK: Duration = Duration::from_millis(750);

/// Short deadline and backoffs, so faults resolve quickly.
pub fn fast(builder: ClientBuilder) -> ClientBuilder {
    builder
        .request_timeout(DEADLINE)
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .retry_policy(
            RetryPolicy::default()
                .with_backoff(Duration::from_millis(10), Duration::from_millis(100)),
        )
}

pub async fn setup(faults: &[Fault]) -> (MockServer, Client) {
    setup_with(faults, |b| b).await
}

/// A mock armed with `faults` (and `dead0000` unregistered), and a fast
/// client for it, adjusted by `tweak`.
pub async fn setup_with(
    faults: &[Fault],
    tweak: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> (MockServer, Client) {
    let key = new_key();
    let mut mock = mock_for(&key).unregistered("dead0000", 1_700_000_000_000);
    for f in faults {
        mock = mock.fault(f.clone());
    }
    let mock = mock.start().await.unwrap();
    let client = tweak(fast(client_for(&mock, key))).build().unwrap();
    (mock, client)
}

/// A notification with a unique apns-id, so the mock's records can be
/// matched one to one.
pub fn note(i: usize) -> Notification {
    Notification::builder(DEVICE, Payload::alert(format!("n{i}")))
        .topic(BUNDLE)
        .apns_id(ApnsId::new_v4())
        .build()
        .unwrap()
}

pub struct Outcome {
    pub id: String,
    pub result: Result<Response, Error>,
    pub elapsed: Duration,
}

/// Sends `n` notifications with `concurrency` in flight and checks the
/// universal invariants against the fast clients' deadline.
pub async fn batch(client: &Client, n: usize, concurrency: usize) -> Vec<Outcome> {
    batch_within(client, n, concurrency, DEADLINE).await
}

/// Like [`batch`], for a client whose deadline is `deadline`.
pub async fn batch_within(
    client: &Client,
    n: usize,
    concurrency: usize,
    deadline: Duration,
) -> Vec<Outcome> {
    let stream = futures_util::stream::iter(0..n).map(|i| {
        let client = client.clone();
        async move {
            let n = note(i);
            let start = Instant::now();
            let result = client.send(&n).await;
            Outcome {
                id: n.apns_id().unwrap().to_string(),
                result,
                elapsed: start.elapsed(),
            }
        }
    });
    let outcomes: Vec<Outcome> = stream.buffer_unordered(concurrency).collect().await;
    assert_eq!(outcomes.len(), n);
    for o in &outcomes {
        assert!(
            o.elapsed <= deadline + SLACK,
            "a send outlived its deadline: {:?}",
            o.elapsed
        );
    }
    check_accounts(&client.stats());
    outcomes
}

/// Every notification is accounted for.
pub fn check_accounts(s: &ClientStats) {
    assert_eq!(s.in_flight, 0, "{s:?}");
    assert_eq!(s.sent, s.accepted + s.rejected + s.failed, "{s:?}");
}

pub fn accepted_ids(outcomes: &[Outcome]) -> HashSet<String> {
    outcomes
        .iter()
        .filter(|o| o.result.as_ref().is_ok_and(|r| r.is_accepted()))
        .map(|o| o.id.clone())
        .collect()
}

pub fn mock_ids(mock: &MockServer) -> Vec<String> {
    mock.accepted().into_iter().map(|a| a.apns_id).collect()
}
