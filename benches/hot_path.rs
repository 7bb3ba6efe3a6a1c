//! The pieces every notification goes through, timed one by one, and a
//! whole round trip through the client and the mock over loopback TLS and
//! HTTP/2.
//!
//! `cargo bench --bench hot_path` (add `-- <filter>` for one group). The
//! whole-process figures (CPU per notification of `apns send`, the mock's
//! cost per request) come from `apns bench`; see the README's
//! "Performance" section.

use std::time::Duration;

use apns_provider::auth::{generate_p8_pem, TokenCache, TokenSigner};
use apns_provider::mock::{MockServer, TrustedKey};
use apns_provider::wire::{write_result_line, Ended, SpecDefaults};
use apns_provider::{Client, KeyId, Notification, Payload, PushType, Response, SigningKey, TeamId};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::StreamExt;

const TOKEN: &str = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";
const KEY_ID: &str = "ABCDE12345";
const TEAM_ID: &str = "TEAM123456";

fn key() -> SigningKey {
    SigningKey::from_pem(generate_p8_pem().as_bytes()).expect("a generated key loads")
}

/// A client of `mock`, trusting its CA, signing with `key`.
fn client_for(mock: &MockServer, key: SigningKey) -> Client {
    Client::builder()
        .endpoint(mock.endpoint())
        .add_root_certificates_pem(mock.ca_pem().expect("the mock's CA").as_bytes())
        .token_auth(key, KEY_ID, TEAM_ID)
        .build()
        .expect("a client of the mock")
}

/// Building the notification for one line of a tokens file.
fn notification(c: &mut Criterion) {
    let mut g = c.benchmark_group("notification");
    let defaults = SpecDefaults::builder()
        .topic("com.example.app")
        .payload(Payload::alert("Hello"))
        .build()
        .expect("valid defaults");
    g.bench_function("from_defaults", |b| {
        b.iter(|| {
            defaults
                .build_for_token(std::hint::black_box(TOKEN))
                .unwrap()
        })
    });
    g.bench_function("builder_with_payload", |b| {
        b.iter(|| {
            let payload = Payload::builder()
                .alert_text("Your order shipped")
                .badge(3)
                .thread_id("orders")
                .build();
            Notification::builder(std::hint::black_box(TOKEN), payload)
                .topic("com.example.app")
                .push_type(PushType::Alert)
                .build()
                .unwrap()
        })
    });
    g.finish();
}

/// Reading APNs' answer and writing the result line a user sees.
fn answer(c: &mut Criterion) {
    let mut g = c.benchmark_group("answer");
    let id = "5e8b2c3a-8d6f-4b8e-9a41-7c2e2f0b8d11";
    g.bench_function("accepted_from_parts", |b| {
        b.iter(|| Response::from_parts(200, Some(id.to_owned()), None, b""))
    });
    let body = br#"{"reason":"Unregistered","timestamp":1700000000000}"#;
    g.bench_function("rejected_from_parts", |b| {
        b.iter(|| Response::from_parts(410, Some(id.to_owned()), None, body))
    });
    let ok = Ok(Response::from_parts(200, Some(id.to_owned()), None, b""));
    let mut out = Vec::with_capacity(256);
    g.bench_function("result_line", |b| {
        b.iter(|| {
            out.clear();
            write_result_line(&mut out, Some(42), TOKEN, Ended::Answer(&ok));
            out.len()
        })
    });
    g.finish();
}

/// Signing a provider token (once per ~50 minutes) against taking the
/// cached one (once per request).
fn token(c: &mut Criterion) {
    let mut g = c.benchmark_group("token");
    let signer = TokenSigner::new(
        key(),
        KeyId::new(KEY_ID).unwrap(),
        TeamId::new(TEAM_ID).unwrap(),
    );
    g.bench_function("sign_es256", |b| {
        b.iter(|| signer.sign_jwt(std::hint::black_box(1_700_000_000)))
    });
    let cache = TokenCache::new(signer.clone());
    cache.get();
    g.bench_function("cached", |b| b.iter(|| cache.get()));
    g.finish();
}

/// Whole round trips through the client, real TLS and HTTP/2 on loopback,
/// to a mock that accepts everything (its checks are timed by
/// `apns bench --mock-cost`).
fn round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = key();
    let (mock, client) = rt.block_on(async {
        let mock = MockServer::builder()
            .trust_key(TrustedKey::new(KEY_ID, TEAM_ID, key.public_key()).unwrap())
            .accept_all(true)
            .keep(0)
            .start()
            .await
            .unwrap();
        let client = client_for(&mock, key);
        client.warm_up().await.unwrap();
        (mock, client)
    });
    let n = Notification::builder(TOKEN, Payload::alert("Hello"))
        .topic("com.example.app")
        .build()
        .unwrap();

    let mut g = c.benchmark_group("round_trip");
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("send_one", |b| {
        b.to_async(&rt)
            .iter(|| async { client.send(&n).await.unwrap() })
    });
    const MANY: u64 = 1000;
    g.throughput(Throughput::Elements(MANY));
    g.sample_size(20);
    g.bench_function("send_many_1000", |b| {
        b.to_async(&rt).iter_batched(
            || vec![n.clone(); MANY as usize],
            |batch| async {
                let accepted = client
                    .send_many(futures_util::stream::iter(batch), 500)
                    .filter(|o| std::future::ready(o.result.is_ok()))
                    .count()
                    .await;
                assert_eq!(accepted, MANY as usize);
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
    drop(client);
    drop(mock);
}

/// The request for a notification, and the client's rewrite of its HEADERS
/// block (`:path` never indexed), on a block as it crossed the wire.
fn request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = key();
    let (client, blocks) = rt.block_on(async {
        let mock = MockServer::builder()
            .trust_key(TrustedKey::new(KEY_ID, TEAM_ID, key.public_key()).unwrap())
            .capture_header_blocks(2)
            .start()
            .await
            .unwrap();
        let client = client_for(&mock, key);
        let n = Notification::builder(TOKEN, Payload::alert("Hello"))
            .topic("com.example.app")
            .build()
            .unwrap();
        client.send(&n).await.unwrap();
        client.send(&n).await.unwrap();
        (client, mock.header_blocks())
    });
    let n = Notification::builder(TOKEN, Payload::alert("Hello"))
        .topic("com.example.app")
        .build()
        .unwrap();
    let mut g = c.benchmark_group("request");
    g.bench_function("build", |b| {
        b.iter(|| apns_provider::__bench::build_request(&client, &n).unwrap())
    });
    // The second block: the first one also carries the whole token.
    let (_, block) = blocks.last().cloned().expect("the mock captured a block");
    g.bench_function("never_index_path", |b| {
        b.iter_batched_ref(
            || block.clone(),
            |block| apns_provider::__bench::never_index_path(block),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, notification, request, answer, token, round_trip);
criterion_main!(benches);
