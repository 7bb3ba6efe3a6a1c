//! End-to-end sends against the mock over real TLS and HTTP/2, and every
//! rejection the mock makes, seen from the client side.

use std::sync::Arc;
use std::time::Duration;

use apns_provider::clock::{Clock, ManualClock};
use apns_provider::mock::{MockServer, TrustedKey};
use apns_provider::payload::Alert;
use apns_provider::{
    ApnsId, Client, Environment, Error, Expiration, Notification, Payload, Priority, PushType,
    Reason, Response, SigningKey,
};
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

use crate::support::raw::RawConn;
use crate::support::*;

fn alert(token: &str) -> Notification {
    Notification::builder(token, Payload::alert("hi"))
        .topic(BUNDLE)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_every_header_and_the_mock_records_it() {
    let (mock, client) = mock_and_client().await;
    let id = ApnsId::parse("123e4567-e89b-12d3-a456-4266554400a0").unwrap();
    let n = Notification::builder(
        DEVICE,
        Payload::builder()
            .alert(Alert::new().title("T").body("B"))
            .badge(2)
            .build(),
    )
    .topic(BUNDLE)
    .push_type(PushType::Alert)
    .priority(Priority::Normal)
    .expiration(Expiration::At(2_000_000_000))
    .collapse_id("score")
    .apns_id(id)
    .build()
    .unwrap();
    let r = client.send(&n).await.unwrap();
    assert!(r.is_accepted(), "{}", r.describe());
    assert_eq!(r.apns_id(), Some("123e4567-e89b-12d3-a456-4266554400a0"));
    assert!(
        r.apns_unique_id().is_some(),
        "sandbox mock sends apns-unique-id"
    );
    let seen = mock.accepted();
    assert_eq!(seen.len(), 1);
    let a = &seen[0];
    assert_eq!(a.device_token, DEVICE);
    assert_eq!(a.topic, BUNDLE);
    assert_eq!(a.push_type, "alert");
    assert_eq!(a.priority, Some(5));
    assert_eq!(a.expiration, Some(2_000_000_000));
    assert_eq!(a.collapse_id.as_deref(), Some("score"));
    assert_eq!(a.key_id, KEY_ID);
    assert_eq!(a.team_id, TEAM_ID);
    assert_eq!(a.payload.as_ref(), n.payload().as_ref());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mock_sends_no_unique_id() {
    let key = new_key();
    let mock = mock_for(&key)
        .environment(Environment::Production)
        .start()
        .await
        .unwrap();
    let client = client_for(&mock, key).build().unwrap();
    let r = client.send(&alert(DEVICE)).await.unwrap();
    assert!(r.is_accepted());
    assert_eq!(r.apns_unique_id(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_one_token_verified_once() {
    let (mock, client) = mock_and_client().await;
    for _ in 0..50 {
        assert!(client.send(&alert(DEVICE)).await.unwrap().is_accepted());
    }
    let stats = mock.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.requests, 50);
    assert_eq!(
        stats.tokens_verified, 1,
        "verified once, then cached per connection"
    );
    assert_eq!(client.stats().tokens_minted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_limit_starts_at_one_then_follows_settings() {
    let key = new_key();
    let mock = mock_for(&key).max_streams(8).start().await.unwrap();
    let client = client_for(&mock, key).build().unwrap();
    let sends: Vec<_> = (0..400)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.send(&alert(DEVICE)).await })
        })
        .collect();
    for s in sends {
        assert!(s.await.unwrap().unwrap().is_accepted());
    }
    let stats = mock.stats();
    // The mock refuses (and counts) any stream above what it advertised:
    // one until the first valid token, then 8.
    assert_eq!(stats.stream_limit_violations, 0);
    assert!(
        stats.max_concurrent_streams_seen > 1,
        "the limit was raised: {stats:?}"
    );
    assert!(stats.max_concurrent_streams_seen <= 8, "{stats:?}");
    assert_eq!(mock.accepted().len(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_client_sees_auth_topic_and_device_rejections() {
    let key = new_key();
    let mock = mock_for(&key)
        .unregistered("dead0000", 1_700_000_000_000)
        .start()
        .await
        .unwrap();

    // A key the mock does not know under this kid.
    let stranger = client_for(&mock, new_key()).build().unwrap();
    let r = stranger.send(&alert(DEVICE)).await.unwrap();
    assert_eq!(
        (r.status(), r.reason()),
        (403, Some(&Reason::InvalidProviderToken))
    );

    let client = client_for(&mock, key).build().unwrap();
    let other_app = Notification::builder(DEVICE, Payload::alert("x"))
        .topic("com.other.app")
        .build()
        .unwrap();
    let r = client.send(&other_app).await.unwrap();
    assert_eq!(
        (r.status(), r.reason()),
        (400, Some(&Reason::TopicDisallowed))
    );

    let voip = Notification::builder(DEVICE, Payload::alert("x"))
        .topic(PushType::Voip.topic_for(BUNDLE))
        .push_type(PushType::Voip)
        .build()
        .unwrap();
    assert!(
        client.send(&voip).await.unwrap().is_accepted(),
        "suffixed topics of an allowed bundle pass"
    );

    let r = client.send(&alert("dead0000")).await.unwrap();
    assert_eq!((r.status(), r.reason()), (410, Some(&Reason::Unregistered)));
    assert_eq!(r.timestamp_millis(), Some(1_700_000_000_000));
    assert!(r
        .clone()
        .error_for_status()
        .unwrap_err()
        .to_string()
        .contains("Unregistered"));

    mock.mark_unregistered(DEVICE, 1_800_000_000_000);
    let r = client.send(&alert(DEVICE)).await.unwrap();
    assert_eq!(r.timestamp_millis(), Some(1_800_000_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_limited_to_another_environment() {
    let key = new_key();
    let mock = MockServer::builder()
        .trust_key(
            TrustedKey::new(KEY_ID, TEAM_ID, key.public_key())
                .unwrap()
                .environment(Environment::Production),
        )
        .start()
        .await
        .unwrap();
    let client = client_for(&mock, key).build().unwrap();
    let r = client.send(&alert(DEVICE)).await.unwrap();
    assert_eq!(
        (r.status(), r.reason()),
        (403, Some(&Reason::BadEnvironmentKeyIdInToken))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_reminted_once_and_retried_on_a_new_connection() {
    // The mock's clock runs 30 minutes ahead of the client's.
    let client_clock = ManualClock::new();
    let mock_clock =
        ManualClock::starting_at(client_clock.system_time() + Duration::from_secs(1800));
    let key = new_key();
    let mock = mock_for(&key)
        .clock(shared(&mock_clock))
        .start()
        .await
        .unwrap();
    let client = client_for(&mock, key)
        .clock(shared(&client_clock))
        .build()
        .unwrap();
    assert!(client.send(&alert(DEVICE)).await.unwrap().is_accepted());

    // 35 minutes later the client's token is 35 minutes old (reused), but
    // the mock sees 65: ExpiredProviderToken.
    client_clock.advance(Duration::from_secs(35 * 60));
    mock_clock.advance(Duration::from_secs(35 * 60));
    let r = client.send(&alert(DEVICE)).await.unwrap();
    assert!(r.is_accepted(), "{}", r.describe());
    assert_eq!(client.stats().tokens_minted, 2, "exactly one re-mint");
    let stats = mock.stats();
    assert_eq!(stats.connections, 2, "retried on a new connection");
    assert_eq!(stats.rejected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_expiry_is_reported_not_looped() {
    let client_clock = ManualClock::new();
    // The mock is two hours ahead: every token looks expired.
    let mock_clock =
        ManualClock::starting_at(client_clock.system_time() + Duration::from_secs(7200));
    let key = new_key();
    let mock = mock_for(&key)
        .clock(shared(&mock_clock))
        .start()
        .await
        .unwrap();
    let client = client_for(&mock, key)
        .clock(shared(&client_clock))
        .build()
        .unwrap();
    let e = client.send(&alert(DEVICE)).await.unwrap_err();
    assert!(
        matches!(&e, Error::TokenExpiredAgain(r) if r.reason() == Some(&Reason::ExpiredProviderToken)),
        "{e:?}"
    );
    assert!(e.to_string().contains("clock"), "{e}");
    assert_eq!(mock.stats().requests, 2, "one retry, no loop");
    assert_eq!(client.stats().tokens_minted, 2);
}

/// Headers of a valid request with `token`.
fn valid_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("bearer {token}")),
        ("apns-topic", BUNDLE.to_string()),
    ]
}

async fn raw(
    conn: &RawConn,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Response {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    conn.send(method, path, &h, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_rejection_reason() {
    let key = new_key();
    let mock = mock_for(&key).start().await.unwrap();
    let client = client_for(&mock, key).build().unwrap();
    let token = client.provider_token().unwrap().expose_secret().to_string();
    let conn = RawConn::open(&mock).await;
    let path = format!("/3/device/{DEVICE}");
    let body = br#"{"aps":{"alert":"hi"}}"#;
    let ok = valid_headers(&token);
    let with = |extra: &[(&'static str, &str)]| {
        let mut h = ok.clone();
        h.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        h
    };
    // A VoIP push: its push type, and its topic with `.voip`.
    let voip: Vec<(&str, String)> = ok
        .iter()
        .map(|(k, v)| match *k {
            "apns-topic" => (*k, PushType::Voip.topic_for(v)),
            _ => (*k, v.clone()),
        })
        .chain([("apns-push-type", "voip".to_string())])
        .collect();

    // (method, path, headers, body, expected status, expected reason)
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, String)>,
        Vec<u8>,
        u16,
        Reason,
    );
    let cases: Vec<Case> = vec![
        (
            "GET",
            path.clone(),
            ok.clone(),
            vec![],
            405,
            Reason::MethodNotAllowed,
        ),
        (
            "POST",
            format!("/2/device/{DEVICE}"),
            ok.clone(),
            body.to_vec(),
            404,
            Reason::BadPath,
        ),
        (
            "POST",
            "/3/device/".into(),
            ok.clone(),
            body.to_vec(),
            400,
            Reason::MissingDeviceToken,
        ),
        (
            "POST",
            "/3/device/xyz".into(),
            ok.clone(),
            body.to_vec(),
            400,
            Reason::BadDeviceToken,
        ),
        (
            "POST",
            "/3/device/abc".into(),
            ok.clone(),
            body.to_vec(),
            400,
            Reason::BadDeviceToken,
        ),
        (
            "POST",
            path.clone(),
            with(&[("apns-topic", BUNDLE)]),
            body.to_vec(),
            400,
            Reason::DuplicateHeaders,
        ),
        (
            "POST",
            path.clone(),
            with(&[("apns-id", "not-a-uuid")]),
            body.to_vec(),
            400,
            Reason::BadMessageId,
        ),
        (
            "POST",
            path.clone(),
            with(&[("apns-expiration", "tomorrow")]),
            body.to_vec(),
            400,
            Reason::BadExpirationDate,
        ),
        (
            "POST",
            path.clone(),
            with(&[("apns-priority", "7")]),
            body.to_vec(),
            400,
            Reason::BadPriority,
        ),
        (
            "POST",
            path.clone(),
            with(&[("apns-push-type", "loud")]),
            body.to_vec(),
            400,
            Reason::InvalidPushType,
        ),
        (
            "POST",
            path.clone(),
            with(&[("apns-collapse-id", &"c".repeat(65))]),
            body.to_vec(),
            400,
            Reason::BadCollapseId,
        ),
        (
            "POST",
            path.clone(),
            vec![("apns-topic", BUNDLE.into())],
            body.to_vec(),
            403,
            Reason::MissingProviderToken,
        ),
        (
            "POST",
            path.clone(),
            vec![
                ("authorization", "bearer x.y.z".into()),
                ("apns-topic", BUNDLE.into()),
            ],
            body.to_vec(),
            403,
            Reason::InvalidProviderToken,
        ),
        (
            "POST",
            path.clone(),
            vec![("authorization", format!("bearer {token}"))],
            body.to_vec(),
            400,
            Reason::MissingTopic,
        ),
        (
            "POST",
            path.clone(),
            with(&[])
                .into_iter()
                .map(|(k, v)| {
                    if k == "apns-topic" {
                        (k, "com.evil.app".to_string())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            body.to_vec(),
            400,
            Reason::TopicDisallowed,
        ),
        (
            "POST",
            path.clone(),
            ok.clone(),
            vec![],
            400,
            Reason::PayloadEmpty,
        ),
        (
            "POST",
            path.clone(),
            ok.clone(),
            vec![b' '; 4097],
            413,
            Reason::PayloadTooLarge,
        ),
        (
            "POST",
            path.clone(),
            voip.clone(),
            vec![b' '; 5121],
            413,
            Reason::PayloadTooLarge,
        ),
        // A push type whose topic lacks its suffix:
        // `docs/apns-facts.md`, "Topic suffixes".
        (
            "POST",
            path.clone(),
            with(&[("apns-push-type", "voip")]),
            body.to_vec(),
            400,
            Reason::TopicDisallowed,
        ),
        (
            "POST",
            path.clone(),
            with(&[("apns-push-type", "liveactivity")]),
            body.to_vec(),
            400,
            Reason::TopicDisallowed,
        ),
    ];
    for (method, path, headers, body, status, reason) in cases {
        let r = raw(&conn, method, &path, &headers, &body).await;
        assert_eq!(
            (r.status(), r.reason()),
            (status, Some(&reason)),
            "{method} {path} {headers:?}"
        );
        assert!(r.apns_id().is_some(), "every answer has an apns-id");
    }
    // The boundaries themselves are accepted.
    let mut padded = br#"{"aps":{"alert":"hi"}}"#.to_vec();
    padded.resize(4096, b' ');
    assert!(raw(&conn, "POST", &path, &ok, &padded).await.is_accepted());
    padded.resize(5120, b' ');
    assert!(raw(&conn, "POST", &path, &voip, &padded)
        .await
        .is_accepted());
    let upper = with(&[("apns-id", "123E4567-E89B-12D3-A456-4266554400A0")]);
    assert_eq!(
        raw(&conn, "POST", &path, &upper, body).await.apns_id(),
        Some("123e4567-e89b-12d3-a456-4266554400a0")
    );
}

/// Signs a JWT with ring, in any encoding, to test what the mock tolerates.
fn ring_token(pkcs8_pem: &str, iat: u64, padded: bool, der: bool) -> String {
    use ring::signature::{
        EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    let der_key = rustls_pki_types::PrivatePkcs8KeyDer::from(
        base64::engine::general_purpose::STANDARD
            .decode(
                pkcs8_pem
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap(),
    );
    let alg = if der {
        &ECDSA_P256_SHA256_ASN1_SIGNING
    } else {
        &ECDSA_P256_SHA256_FIXED_SIGNING
    };
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(alg, der_key.secret_pkcs8_der(), &rng).unwrap();
    let enc = |b: &[u8]| {
        if padded {
            URL_SAFE.encode(b)
        } else {
            URL_SAFE_NO_PAD.encode(b)
        }
    };
    let input = format!(
        "{}.{}",
        enc(format!(r#"{{"alg":"ES256","kid":"{KEY_ID}"}}"#).as_bytes()),
        enc(format!(r#"{{"iss":"{TEAM_ID}","iat":{iat}}}"#).as_bytes())
    );
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", enc(sig.as_ref()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lenient_like_apns_and_strict_on_request() {
    let pem = new_key_pem();
    let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
    let lenient = mock_for(&key).start().await.unwrap();
    let strict = mock_for(&key).strict_tokens(true).start().await.unwrap();
    let path = format!("/3/device/{DEVICE}");
    let body = br#"{"aps":{"alert":"hi"}}"#;
    let variants = [
        (
            "padded base64",
            ring_token(&pem, now(), true, false),
            "bearer",
        ),
        (
            "DER signature",
            ring_token(&pem, now(), false, true),
            "bearer",
        ),
        (
            "capital Bearer",
            ring_token(&pem, now(), false, false),
            "Bearer",
        ),
    ];
    for (what, token, scheme) in variants {
        let headers = vec![
            ("authorization", format!("{scheme} {token}")),
            ("apns-topic", BUNDLE.to_string()),
        ];
        // A fresh connection each, so token changes are not rate limited.
        let r = raw(
            &RawConn::open(&lenient).await,
            "POST",
            &path,
            &headers,
            body,
        )
        .await;
        assert!(
            r.is_accepted(),
            "lenient mock refused {what}: {}",
            r.describe()
        );
        let r = raw(&RawConn::open(&strict).await, "POST", &path, &headers, body).await;
        assert!(!r.is_accepted(), "strict mock accepted {what}");
    }
    // Our own signer's tokens pass the strict mock.
    let client = client_for(&strict, key).build().unwrap();
    assert!(client.send(&alert(DEVICE)).await.unwrap().is_accepted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rules_per_connection() {
    let pem = new_key_pem();
    let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
    let other_pem = new_key_pem();
    let other = SigningKey::from_pem(other_pem.as_bytes()).unwrap();
    let mock = mock_for(&key)
        .trust_key(TrustedKey::new("OTHERKEY01", "OTHERTEAM1", other.public_key()).unwrap())
        .start()
        .await
        .unwrap();
    let path = format!("/3/device/{DEVICE}");
    let body = br#"{"aps":{"alert":"hi"}}"#;
    let conn = RawConn::open(&mock).await;

    let first = ring_token(&pem, now(), false, false);
    assert!(raw(&conn, "POST", &path, &valid_headers(&first), body)
        .await
        .is_accepted());
    // A different valid token on the same connection within 20 minutes.
    let second = ring_token(&pem, now() - 1, false, false);
    let r = raw(&conn, "POST", &path, &valid_headers(&second), body).await;
    assert_eq!(
        (r.status(), r.reason()),
        (429, Some(&Reason::TooManyProviderTokenUpdates))
    );
    // The first token still works there.
    assert!(raw(&conn, "POST", &path, &valid_headers(&first), body)
        .await
        .is_accepted());

    // Another team's token on the same connection.
    let other_token = apns_provider::TokenSigner::new(
        other,
        apns_provider::KeyId::new("OTHERKEY01").unwrap(),
        apns_provider::TeamId::new("OTHERTEAM1").unwrap(),
    )
    .sign_jwt(now());
    let r = raw(&conn, "POST", &path, &valid_headers(&other_token), body).await;
    assert_eq!(
        (r.status(), r.reason()),
        (403, Some(&Reason::UnrelatedKeyIdInToken))
    );

    // A token older than an hour.
    let old = ring_token(&pem, now() - 3601, false, false);
    let r = raw(
        &RawConn::open(&mock).await,
        "POST",
        &path,
        &valid_headers(&old),
        body,
    )
    .await;
    assert_eq!(
        (r.status(), r.reason()),
        (403, Some(&Reason::ExpiredProviderToken))
    );
    // A token from the future (a provider clock far ahead).
    let future = ring_token(&pem, now() + 3600, false, false);
    let r = raw(
        &RawConn::open(&mock).await,
        "POST",
        &path,
        &valid_headers(&future),
        body,
    )
    .await;
    assert_eq!(
        (r.status(), r.reason()),
        (403, Some(&Reason::InvalidProviderToken))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failures_are_typed_errors() {
    // Nothing listens: connect error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let client = Client::builder()
        .no_proxy()
        .endpoint(apns_provider::Endpoint::new("127.0.0.1", port).unwrap())
        .token_auth(new_key(), KEY_ID, TEAM_ID)
        .build()
        .unwrap();
    let e = client.send(&alert(DEVICE)).await.unwrap_err();
    assert!(
        matches!(e.root(), Error::Connect { .. })
            && e.is_connection()
            && !e.may_have_been_delivered(),
        "{e}"
    );

    // The mock's CA not trusted: TLS error that says what to do.
    let (mock, _) = mock_and_client().await;
    let untrusting = Client::builder()
        .no_proxy()
        .endpoint(mock.endpoint())
        .token_auth(new_key(), KEY_ID, TEAM_ID)
        .build()
        .unwrap();
    let e = untrusting.send(&alert(DEVICE)).await.unwrap_err();
    assert!(matches!(e.root(), Error::Tls { .. }), "{e:?}");
    assert_eq!(
        e.tls_problem(),
        Some(apns_provider::TlsProblem::UntrustedCertificate),
        "{e}"
    );

    // A server that accepts TCP and never speaks TLS: handshake timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (s, _) = silent.accept().await.unwrap();
            held.push(s);
        }
    });
    let client = Client::builder()
        .no_proxy()
        .endpoint(apns_provider::Endpoint::new("127.0.0.1", addr.port()).unwrap())
        .token_auth(new_key(), KEY_ID, TEAM_ID)
        .tls_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let e = client.send(&alert(DEVICE)).await.unwrap_err();
    assert!(
        e.is_timeout() && e.to_string().contains("TLS handshake"),
        "{e}"
    );
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_h2_is_refused() {
    // One server refuses our ALPN outright; the other ignores ALPN.
    for alpn in [vec![b"http/1.1".to_vec()], vec![]] {
        server_without_h2(alpn).await;
    }
}

async fn server_without_h2(alpn: Vec<Vec<u8>>) {
    // A TLS server offering only http/1.1, with the mock's generated identity.
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.cert.der().clone()],
        rustls_pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap(),
    )
    .unwrap();
    config.alpn_protocols = alpn;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let _tls = acceptor.accept(s).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let client = Client::builder()
        .no_proxy()
        .endpoint(apns_provider::Endpoint::new("127.0.0.1", addr.port()).unwrap())
        .webpki_roots(false)
        .add_root_certificates_pem(cert.cert.pem().as_bytes())
        .token_auth(new_key(), KEY_ID, TEAM_ID)
        .build()
        .unwrap();
    let e = client.send(&alert(DEVICE)).await.unwrap_err();
    assert!(e.to_string().contains("HTTP/2"), "{e}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_serves_a_given_identity() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let key = new_key();
    let mock = mock_for(&key)
        .tls_identity_pem(leaf.pem().as_bytes(), leaf_key.serialize_pem().as_bytes())
        .start()
        .await
        .unwrap();
    assert!(mock.ca_pem().is_none());
    let client = Client::builder()
        .no_proxy()
        .endpoint(mock.endpoint())
        .add_root_certificates_pem(ca.pem().as_bytes())
        .token_auth(key, KEY_ID, TEAM_ID)
        .build()
        .unwrap();
    assert!(client.send(&alert(DEVICE)).await.unwrap().is_accepted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_clock_does_not_block_sending_until_the_next_refresh() {
    let client_clock = ManualClock::new();
    let mock_clock =
        ManualClock::starting_at(client_clock.system_time() + Duration::from_secs(7200));
    let key = new_key();
    let mock = mock_for(&key)
        .clock(shared(&mock_clock))
        .start()
        .await
        .unwrap();
    let client = client_for(&mock, key)
        .clock(shared(&client_clock))
        .build()
        .unwrap();
    assert!(matches!(
        client.send(&alert(DEVICE)).await,
        Err(Error::TokenExpiredAgain(_))
    ));
    assert_eq!(client.stats().tokens_minted, 2);
    // Within 20 minutes the replacement is not re-minted (no loop, no churn).
    client_clock.advance(Duration::from_secs(10 * 60));
    mock_clock.advance(Duration::from_secs(10 * 60));
    assert!(matches!(
        client.send(&alert(DEVICE)).await,
        Err(Error::TokenExpiredAgain(_))
    ));
    assert_eq!(client.stats().tokens_minted, 2);
    // Past 20 minutes a new token may be tried again.
    client_clock.advance(Duration::from_secs(11 * 60));
    mock_clock.advance(Duration::from_secs(11 * 60));
    assert!(client.send(&alert(DEVICE)).await.is_err());
    assert_eq!(client.stats().tokens_minted, 3);
}

/// Apple asks that `:path` and `authorization` travel as HPACK literals that
/// are never indexed. The mock reads how each request encoded them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_authorization_are_never_indexed() {
    let (mock, client) = mock_and_client().await;
    for _ in 0..20 {
        assert!(client.send(&alert(DEVICE)).await.unwrap().is_accepted());
    }
    let s = mock.stats();
    assert_eq!((s.paths_never_indexed, s.paths_indexable), (20, 0), "{s:?}");
    assert_eq!(
        (s.authorizations_never_indexed, s.authorizations_indexable),
        (20, 0),
        "{s:?}"
    );

    // A plain h2 client, for contrast: the mock tells the difference.
    let token = client.provider_token().unwrap().expose_secret().to_string();
    let conn = RawConn::open(&mock).await;
    let r = raw(
        &conn,
        "POST",
        &format!("/3/device/{DEVICE}"),
        &valid_headers(&token),
        br#"{"aps":{}}"#,
    )
    .await;
    assert!(r.is_accepted());
    let s = mock.stats();
    assert_eq!(
        (s.paths_indexable, s.authorizations_indexable),
        (1, 1),
        "{s:?}"
    );
}

/// The never-indexed encoding of `:path` and `authorization`, read by an
/// HPACK decoder that is not ours (the mock's counts and the client's shim
/// share our parser, so they could agree on the same mistake).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_hpack_decoder_sees_path_and_authorization_never_indexed() {
    let key = new_key();
    let mock = mock_for(&key)
        .capture_header_blocks(100)
        .start()
        .await
        .unwrap();
    let client = client_for(&mock, key).build().unwrap();
    for _ in 0..20 {
        assert!(client.send(&alert(DEVICE)).await.unwrap().is_accepted());
    }
    let blocks = mock.header_blocks();
    assert_eq!(blocks.len(), 20);
    let mut decoder = httlib_hpack::Decoder::default();
    let (mut paths, mut auths) = (0, 0);
    for (_, block) in blocks {
        let mut buf = block;
        let mut fields = Vec::new();
        decoder
            .decode(&mut buf, &mut fields)
            .expect("a valid HPACK block");
        for (name, value, flags) in fields {
            let never = flags & httlib_hpack::Decoder::NEVER_INDEXED != 0;
            match name.as_slice() {
                b":path" => {
                    assert_eq!(value, format!("/3/device/{DEVICE}").into_bytes());
                    assert!(never, ":path is not never-indexed");
                    paths += 1;
                }
                b"authorization" => {
                    assert!(value.starts_with(b"bearer "));
                    assert!(never, "authorization is not never-indexed");
                    auths += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!((paths, auths), (20, 20));
}

/// The client reuses its token for 50 minutes and then mints one, and APNs
/// (the mock, on the same injected clock) accepts the new one on the same
/// connection: 50 minutes is past the 20-minute rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refreshes_its_token_at_fifty_minutes_on_the_same_connection() {
    use apns_provider::clock::ManualClock;
    let clock = ManualClock::new();
    let key = new_key();
    let mock = mock_for(&key).clock(shared(&clock)).start().await.unwrap();
    let client = client_for(&mock, key)
        .clock(shared(&clock))
        .no_keepalive()
        .build()
        .unwrap();
    let send = || async { client.send(&alert(DEVICE)).await.unwrap().is_accepted() };
    assert!(send().await);
    for minutes in [10u64, 20, 19] {
        clock.advance(std::time::Duration::from_secs(minutes * 60));
        assert!(send().await, "at {minutes} more minutes");
        assert_eq!(client.stats().tokens_minted, 1, "reused until 50 minutes");
    }
    clock.advance(std::time::Duration::from_secs(2 * 60)); // 51 minutes
    assert!(send().await);
    let stats = client.stats();
    assert_eq!(stats.tokens_minted, 2, "a new token at 50 minutes");
    assert_eq!(stats.connections_opened, 1, "on the same connection");
    assert_eq!(mock.stats().tokens_verified, 2);
    assert_eq!(
        mock.stats().rejected,
        0,
        "no TooManyProviderTokenUpdates, no expiry"
    );
}
