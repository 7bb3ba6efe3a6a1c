//! Broadcast push and channel management (iOS 18 Live Activities), over
//! real TLS and HTTP/2 against the mock: the whole channel lifecycle, the
//! rules APNs enforces (storage policy and expiration, payload size, the
//! 10,000-channel limit, push type, bundle id), what reaches the mock, the
//! retry policy and faults on channel requests, certificate mode, and the
//! Live Activity lints.

use std::time::Duration;

use apns_provider::mock::{Fault, MockServer, TrustedKey};
use apns_provider::payload::LiveActivityEvent;
use apns_provider::{
    Broadcast, ChannelId, Client, Endpoint, Environment, Error, Expiration, KeyId, Notification,
    Payload, Priority, PushType, Reason, RetryPolicy, StoragePolicy, TeamId, TokenSigner,
};
use futures_util::StreamExt;

use crate::support::raw::RawConn;
use crate::support::*;

fn update(score: &str) -> Payload {
    Payload::builder()
        .event(LiveActivityEvent::Update)
        .timestamp(1_750_000_000)
        .content_state(serde_json::json!({ "score": score }))
        .build()
}

/// A raw request and the answer APNs gives it: method, path, one header
/// changed (or removed), body, status, reason.
type Case = (
    &'static str,
    String,
    Option<(&'static str, Option<&'static str>)>,
    &'static [u8],
    u16,
    Reason,
);

/// A new channel without message storage, for BUNDLE.
async fn no_storage_channel(client: &Client) -> ChannelId {
    no_storage_channel_of(client, BUNDLE).await
}

async fn no_storage_channel_of(client: &Client, bundle_id: &str) -> ChannelId {
    client
        .channels()
        .create(bundle_id, StoragePolicy::NoStorage)
        .await
        .unwrap()
}

fn rejection(e: Error) -> Reason {
    match e {
        Error::Rejected(r) => r.reason().cloned().expect("a reason"),
        other => panic!("expected a rejection, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_show_broadcast_delete_then_channel_not_registered() {
    let (mock, client) = mock_and_client().await;
    let channels = client.channels();
    assert_eq!(
        client.channels_endpoint(),
        &mock.endpoint(),
        "a mock serves both"
    );

    let id = channels
        .create(BUNDLE, StoragePolicy::MostRecentMessage)
        .await
        .unwrap();
    assert!(channels.list(BUNDLE).await.unwrap().contains(&id));
    let info = channels.get(BUNDLE, &id).await.unwrap();
    assert_eq!(info.storage_policy, StoragePolicy::MostRecentMessage);
    assert_eq!(info.push_type, "LiveActivity");
    assert_eq!(info.channel_id, id);

    let request_id = "6e0f5d77-0b3a-4fd1-9a45-3a4e2d7b4f10";
    let expires = 1_900_000_000;
    let b = Broadcast::builder(BUNDLE, id.as_str(), update("1-0"))
        .priority(Priority::Normal)
        .expiration(Expiration::At(expires))
        .request_id_str(request_id)
        .build()
        .unwrap();
    let r = client.broadcast(&b).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.describe());
    assert_eq!(r.apns_request_id(), Some(request_id), "echoed");
    let unique = r.apns_unique_id().expect("apns-unique-id").to_string();

    // What reached the mock: the path's bundle id, every header, the body.
    let seen = mock.broadcasts();
    assert_eq!(seen.len(), 1);
    let a = &seen[0];
    assert_eq!(a.bundle_id, BUNDLE);
    assert_eq!(a.channel_id, id.as_str());
    assert_eq!(a.push_type, "liveactivity");
    assert_eq!((a.priority, a.expiration), (5, expires));
    assert_eq!(a.request_id, request_id);
    assert_eq!(a.unique_id, unique);
    assert_eq!(a.payload, *b.payload());
    assert_eq!((a.key_id.as_str(), a.team_id.as_str()), (KEY_ID, TEAM_ID));

    channels.delete(BUNDLE, &id).await.unwrap();
    assert!(!channels.list(BUNDLE).await.unwrap().contains(&id));
    assert!(mock.channels().is_empty());
    let r = client.broadcast(&b).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.reason(), Some(&Reason::ChannelNotRegistered));
    assert_eq!(r.apns_request_id(), Some(request_id));
    assert_eq!(
        rejection(channels.get(BUNDLE, &id).await.unwrap_err()),
        Reason::ChannelNotRegistered
    );
    assert_eq!(
        rejection(channels.delete(BUNDLE, &id).await.unwrap_err()),
        Reason::ChannelNotRegistered,
        "deleting twice"
    );

    // Broadcasts count as notifications; channel requests do not.
    let s = client.stats();
    assert_eq!((s.sent, s.accepted, s.rejected, s.failed), (2, 1, 1, 0));
    // One connection for pushes and broadcasts, one for channel management.
    assert_eq!(s.connections_opened, 2);
    let m = mock.stats();
    assert_eq!(m.connections, 2);
    assert_eq!((m.broadcasts_accepted, m.broadcasts_rejected), (1, 1));
    assert_eq!((m.channels_created, m.channels_deleted), (1, 1));
    assert_eq!(m.channel_requests, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_storage_channel_takes_only_expiration_zero() {
    let (mock, client) = mock_and_client().await;
    let id = no_storage_channel(&client).await;
    let later = Broadcast::builder(BUNDLE, id.as_str(), update("0-0"))
        .expiration(Expiration::At(1_900_000_000))
        .build()
        .unwrap();
    let r = client.broadcast(&later).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.reason(), Some(&Reason::BadExpirationDate));
    // The default expiration is 0: right for every channel.
    let now = Broadcast::builder(BUNDLE, id.as_str(), update("0-0"))
        .build()
        .unwrap();
    assert_eq!(now.expiration(), Expiration::DoNotStore);
    assert!(client.broadcast(&now).await.unwrap().is_accepted());
    assert_eq!(mock.broadcasts()[0].expiration, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_over_5120_bytes_is_refused_before_sending() {
    let (mock, client) = mock_and_client().await;
    let id = no_storage_channel(&client).await;
    let sized = |n: usize| {
        let base = r#"{"aps":{"event":"update","timestamp":1,"content-state":{}},"x":""}"#.len();
        let json = format!(
            r#"{{"aps":{{"event":"update","timestamp":1,"content-state":{{}}}},"x":"{}"}}"#,
            "a".repeat(n - base)
        );
        assert_eq!(json.len(), n);
        Broadcast::builder(BUNDLE, id.as_str(), Payload::raw(json).unwrap()).build()
    };
    let requests_before = mock.stats().requests;
    match sized(5121) {
        Err(Error::PayloadTooLarge { size, limit, .. }) => assert_eq!((size, limit), (5121, 5120)),
        other => panic!("{other:?}"),
    }
    assert_eq!(mock.stats().requests, requests_before, "nothing was sent");
    let r = client.broadcast(&sized(5120).unwrap()).await.unwrap();
    assert!(r.is_accepted(), "{}", r.describe());
    assert_eq!(mock.broadcasts()[0].payload.len(), 5120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_10001st_channel_of_an_app_is_refused() {
    let key = new_key();
    // A key for every app of the team.
    let mock = MockServer::builder()
        .trust_key(TrustedKey::new(KEY_ID, TEAM_ID, key.public_key()).unwrap())
        .start()
        .await
        .unwrap();
    let client = client_for(&mock, key).build().unwrap();
    // 9,900 channels through the mock's test hook, the last 100 through the
    // library, 20 at a time over the one channel connection.
    let filled = mock.add_channels(BUNDLE, StoragePolicy::NoStorage, 9_900);
    assert_eq!(filled.len(), 9_900);
    let created: Vec<ChannelId> = futures_util::stream::iter(0..100)
        .map(|_| {
            let channels = client.channels();
            async move { channels.create(BUNDLE, StoragePolicy::NoStorage).await }
        })
        .buffer_unordered(20)
        .map(|r| r.unwrap())
        .collect()
        .await;
    let e = client
        .channels()
        .create(BUNDLE, StoragePolicy::NoStorage)
        .await
        .unwrap_err();
    assert_eq!(rejection(e), Reason::CannotCreateChannelConfig);
    assert!(mock
        .add_channels(BUNDLE, StoragePolicy::NoStorage, 1)
        .is_empty());
    // Every id is distinct and listed (a body of hundreds of kilobytes).
    let listed = client.channels().list(BUNDLE).await.unwrap();
    assert_eq!(listed.len(), 10_000);
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10_000);
    assert_eq!(listed[..9_900], filled[..], "in creation order");
    assert!(created.iter().all(|id| listed[9_900..].contains(id)));
    // The limit is per app; a deleted channel frees a place.
    no_storage_channel_of(&client, "com.example.other").await;
    client.channels().delete(BUNDLE, &created[0]).await.unwrap();
    no_storage_channel(&client).await;
    assert_eq!(mock.stats().connections, 1, "one channel connection");
    assert_eq!(mock.stats().channels_created, 102);
}

/// A provider token for raw requests.
fn bearer(key: &apns_provider::SigningKey) -> String {
    let signer = TokenSigner::new(
        key.clone(),
        KeyId::new(KEY_ID).unwrap(),
        TeamId::new(TEAM_ID).unwrap(),
    );
    format!(
        "bearer {}",
        signer.sign_jwt(apns_provider::clock::now_unix_seconds())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_checks_paths_headers_and_bodies_as_apns_does() {
    let key = new_key();
    let mock = mock_for(&key).start().await.unwrap();
    let auth = bearer(&key);
    let raw = RawConn::open(&mock).await;
    let create = |body: &'static str| {
        let auth = auth.clone();
        let raw = &raw;
        async move {
            raw.send_api(
                "POST",
                &format!("/1/apps/{BUNDLE}/channels"),
                &[("authorization", &auth)],
                body.as_bytes(),
            )
            .await
        }
    };

    // Create: 201 with the id in apns-channel-id, and a request id made up.
    let r = create(r#"{"message-storage-policy":0,"push-type":"LiveActivity"}"#).await;
    assert_eq!(r.status(), 201, "{}", r.describe());
    let id = ChannelId::new(r.apns_channel_id().unwrap()).unwrap();
    assert!(apns_provider::ApnsId::parse(r.apns_request_id().unwrap()).is_ok());
    for (body, reason) in [
        (
            r#"{"message-storage-policy":0,"push-type":"Alert"}"#,
            Reason::InvalidPushType,
        ),
        (r#"{"message-storage-policy":0}"#, Reason::MissingPushType),
        (
            r#"{"message-storage-policy":3,"push-type":"LiveActivity"}"#,
            Reason::BadRequestParams,
        ),
        ("not json", Reason::BadRequestPayload),
    ] {
        assert_eq!(create(body).await.reason(), Some(&reason), "{body}");
    }

    let broadcast_path = format!("/4/broadcasts/apps/{BUNDLE}");
    let payload = br#"{"aps":{"event":"update","timestamp":1,"content-state":{}}}"#;
    let good: Vec<(&str, String)> = vec![
        ("authorization", auth.clone()),
        ("apns-channel-id", id.as_str().to_string()),
        ("apns-push-type", "liveactivity".into()),
        ("apns-priority", "10".into()),
        ("apns-expiration", "0".into()),
        (
            "apns-request-id",
            "6E0F5D77-0B3A-4FD1-9A45-3A4E2D7B4F10".into(),
        ),
    ];
    let send = |method: &'static str,
                path: String,
                change: Option<(&'static str, Option<&'static str>)>,
                body: &'static [u8]| {
        let mut headers = good.clone();
        if let Some((name, value)) = change {
            headers.retain(|(n, _)| *n != name);
            if let Some(v) = value {
                headers.push((name, v.to_string()));
            }
        }
        let raw = &raw;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            raw.send_api(method, &path, &h, body).await
        }
    };
    let r = send("POST", broadcast_path.clone(), None, payload).await;
    assert_eq!(r.status(), 200, "{}", r.describe());
    assert_eq!(
        r.apns_request_id(),
        Some("6e0f5d77-0b3a-4fd1-9a45-3a4e2d7b4f10"),
        "echoed in canonical form"
    );
    assert!(r.apns_unique_id().is_some());

    // One header changed (or removed) on a good broadcast.
    #[rustfmt::skip]
    let header_cases = [
        (("authorization", None), 403, Reason::MissingProviderToken),
        (("apns-channel-id", None), 400, Reason::MissingChannelId),
        (("apns-channel-id", Some("no base64!")), 400, Reason::BadChannelId),
        (("apns-channel-id", Some("QUJDREVGR0g=")), 400, Reason::ChannelNotRegistered),
        (("apns-push-type", None), 400, Reason::MissingPushType),
        (("apns-push-type", Some("alert")), 400, Reason::InvalidPushType),
        (("apns-priority", Some("7")), 400, Reason::BadPriority),
        (("apns-expiration", None), 400, Reason::BadExpirationDate),
        (("apns-expiration", Some("1900000000")), 400, Reason::BadExpirationDate),
        (("apns-request-id", Some("nope")), 400, Reason::BadMessageId),
    ];
    let mut cases: Vec<Case> = header_cases
        .into_iter()
        .map(|(change, status, reason)| {
            let path = broadcast_path.clone();
            ("POST", path, Some(change), &payload[..], status, reason)
        })
        .collect();
    // Methods, paths and bodies.
    let big: &'static [u8] = Box::leak(vec![b' '; 5121].into_boxed_slice());
    let (bp, cp) = (broadcast_path.clone(), format!("/1/apps/{BUNDLE}/channels"));
    #[rustfmt::skip]
    let more: [Case; 12] = [
        ("GET", bp.clone(), None, b"", 405, Reason::MethodNotAllowed),
        ("POST", "/4/broadcasts/apps/".into(), None, payload, 404, Reason::BadPath),
        ("POST", format!("{bp}.push-type.liveactivity"), None, payload, 400, Reason::TopicDisallowed),
        ("POST", "/4/broadcasts/apps/com.other.app".into(), None, payload, 400, Reason::TopicDisallowed),
        ("POST", bp.clone(), None, b"", 400, Reason::PayloadEmpty),
        ("POST", bp.clone(), None, big, 413, Reason::PayloadTooLarge),
        ("PUT", cp.clone(), None, b"", 405, Reason::MethodNotAllowed),
        ("POST", format!("/1/apps/{BUNDLE}/all-channels"), None, b"", 405, Reason::MethodNotAllowed),
        ("GET", format!("/1/apps/{BUNDLE}.voip/all-channels"), None, b"", 400, Reason::TopicDisallowed),
        ("GET", cp.clone(), Some(("apns-channel-id", None)), b"", 400, Reason::MissingChannelId),
        ("GET", cp.clone(), Some(("apns-channel-id", Some("QUJDREVGR0g="))), b"", 400, Reason::ChannelNotRegistered),
        ("DELETE", cp.clone(), Some(("apns-channel-id", Some("%%"))), b"", 400, Reason::BadChannelId),
    ];
    cases.extend(more);
    for (method, path, change, body, status, reason) in cases {
        let r = send(method, path.clone(), change, body).await;
        assert_eq!(
            (r.status(), r.reason()),
            (status, Some(&reason)),
            "{method} {path} {change:?}"
        );
        assert!(
            r.apns_request_id().is_some() && r.apns_id().is_none(),
            "answers on these routes carry apns-request-id: {method} {path}"
        );
    }
    // A repeated header.
    let h = [
        ("authorization", auth.as_str()),
        ("apns-channel-id", id.as_str()),
        ("apns-channel-id", id.as_str()),
    ];
    let r = raw
        .send_api("GET", &format!("/1/apps/{BUNDLE}/channels"), &h, b"")
        .await;
    assert_eq!(r.reason(), Some(&Reason::DuplicateHeaders));
    // Read and list answer JSON as Apple documents it.
    let h = [
        ("authorization", auth.as_str()),
        ("apns-channel-id", id.as_str()),
    ];
    let r = raw
        .send_api("GET", &format!("/1/apps/{BUNDLE}/channels"), &h, b"")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.reason(), None);
    let h = [("authorization", auth.as_str())];
    let r = raw
        .send_api("GET", &format!("/1/apps/{BUNDLE}/all-channels"), &h, b"")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        mock.broadcasts().len(),
        1,
        "only the valid broadcast is recorded"
    );
    let s = mock.stats();
    assert_eq!(s.requests, s.accepted + s.rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_requests_follow_the_retry_policy_and_fault_flags() {
    // Transient 503s are retried (a new connection each time), as for pushes.
    let (mock, client) = crate::support::sends::setup(&[Fault::ErrorStorm {
        reason: Reason::ServiceUnavailable,
        count: 2,
    }])
    .await;
    let id = no_storage_channel(&client).await;
    assert_eq!(client.stats().retries, 2);
    assert_eq!(mock.channels().len(), 1);
    assert_eq!(mock.channels()[0].channel_id, id);

    // Without retries, the rejection is the error.
    let key = new_key();
    let mock = mock_for(&key)
        .fault(Fault::ErrorStorm {
            reason: Reason::Shutdown,
            count: 1,
        })
        .start()
        .await
        .unwrap();
    let client = client_for(&mock, key)
        .retry_policy(RetryPolicy::never())
        .build()
        .unwrap();
    let e = client.channels().list(BUNDLE).await.unwrap_err();
    assert_eq!(rejection(e), Reason::Shutdown);
    assert!(client.channels().list(BUNDLE).await.unwrap().is_empty());

    // A black hole ends at the deadline with a typed timeout.
    let (_mock, client) = crate::support::sends::setup_with(&[Fault::BlackHole], |b| {
        b.request_timeout(Duration::from_millis(600))
    })
    .await;
    let e = client.channels().list(BUNDLE).await.unwrap_err();
    assert!(e.is_timeout() || e.is_connection(), "{e}");

    // ExpiredProviderToken: one re-mint, then the answer.
    let (mock, client) = crate::support::sends::setup(&[]).await;
    mock.inject(Fault::ErrorStorm {
        reason: Reason::ExpiredProviderToken,
        count: 1,
    });
    client
        .channels()
        .create(BUNDLE, StoragePolicy::MostRecentMessage)
        .await
        .unwrap();
    assert_eq!(client.stats().tokens_minted, 2);

    // After shutdown, channel requests are refused like sends.
    client.shutdown(Duration::from_secs(1)).await;
    assert!(matches!(
        client.channels().list(BUNDLE).await,
        Err(Error::Shutdown { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_endpoints_default_by_environment_and_can_be_separate() {
    let key = new_key();
    let apple = |env| {
        Client::builder()
            .no_proxy()
            .environment(env)
            .token_auth(key.clone(), KEY_ID, TEAM_ID)
            .build()
            .unwrap()
    };
    assert_eq!(
        apple(Environment::Sandbox).channels_endpoint().to_string(),
        "https://api-manage-broadcast.sandbox.push.apple.com:2195"
    );
    assert_eq!(
        apple(Environment::Production).channels_endpoint(),
        &Endpoint::channels_for_environment(Environment::Production)
    );
    assert_eq!(
        Endpoint::channels_for_environment(Environment::Production).to_string(),
        "https://api-manage-broadcast.push.apple.com:2196"
    );

    // Pushes to one mock, channel management to another: the registries
    // are apart, as a sandbox's and a production's are.
    let pushes = mock_for(&key).start().await.unwrap();
    let manager = mock_for(&key).start().await.unwrap();
    let client = client_for(&pushes, key.clone())
        .add_root_certificates_pem(manager.ca_pem().unwrap().as_bytes())
        .channels_endpoint(manager.endpoint())
        .build()
        .unwrap();
    let id = no_storage_channel(&client).await;
    assert_eq!(manager.channels().len(), 1);
    assert!(pushes.channels().is_empty());
    let b = Broadcast::builder(BUNDLE, id.as_str(), update("1-1"))
        .build()
        .unwrap();
    let r = client.broadcast(&b).await.unwrap();
    assert_eq!(r.reason(), Some(&Reason::ChannelNotRegistered));
    assert_eq!(pushes.stats().channel_requests, 0);
    assert_eq!(manager.stats().broadcasts_rejected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn certificate_mode_manages_channels_and_broadcasts() {
    use crate::support::certs::{self, Spec};
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let cert = certs::push_cert(dir.path(), &ca, Spec::default());
    let mock = MockServer::builder()
        .client_ca_pem(&std::fs::read(&ca.pem_path).unwrap())
        .start()
        .await
        .unwrap();
    let client = Client::builder()
        .no_proxy()
        .endpoint(mock.endpoint())
        .add_root_certificates_pem(mock.ca_pem().unwrap().as_bytes())
        .certificate(
            apns_provider::ClientCertificate::from_file(&cert.combined_pem, None, None).unwrap(),
        )
        .build()
        .unwrap();
    let id = no_storage_channel(&client).await;
    let b = Broadcast::builder(BUNDLE, id.as_str(), update("2-2"))
        .build()
        .unwrap();
    assert!(client.broadcast(&b).await.unwrap().is_accepted());
    let a = &mock.broadcasts()[0];
    assert!(a.certificate_subject.as_deref().unwrap().contains(BUNDLE));
    assert_eq!(a.key_id, "", "no provider token on certificate connections");
    // A bundle id the certificate does not cover is refused before sending.
    let e = client
        .channels()
        .create("com.example.other", StoragePolicy::NoStorage)
        .await
        .unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    assert_eq!(mock.stats().channel_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_resends_keep_the_request_id() {
    let key = new_key();
    // The mock keeps every HEADERS block it reads, the dropped copy's too:
    // the fault reads that request before it closes the socket.
    let mock = mock_for(&key)
        .capture_header_blocks(100)
        .start()
        .await
        .unwrap();
    let client = crate::support::sends::fast(client_for(&mock, key))
        .retry_policy(RetryPolicy::default().with_resend_unknown(true))
        .build()
        .unwrap();
    let id = no_storage_channel(&client).await;
    let b = Broadcast::builder(BUNDLE, id.as_str(), update("3-3"))
        .build()
        .unwrap();
    // The broadcast connection is dropped mid-flight once: resent with the
    // same apns-request-id.
    mock.inject(Fault::DropConnectionAfter { requests: 0 });
    let r = client.broadcast(&b).await.unwrap();
    assert!(r.is_accepted(), "{}", r.describe());
    assert_eq!(mock.stats().connections_dropped, 1, "{:?}", mock.stats());
    assert!(client.stats().resends >= 1);

    // Every copy of the broadcast that reached the mock: (connection,
    // apns-request-id), decoding each connection's blocks in order.
    let path = format!("/4/broadcasts/apps/{BUNDLE}");
    let mut decoders = std::collections::HashMap::new();
    let mut copies = Vec::new();
    for (conn, mut block) in mock.header_blocks() {
        let decoder = decoders
            .entry(conn)
            .or_insert_with(httlib_hpack::Decoder::default);
        let mut fields = Vec::new();
        decoder
            .decode(&mut block, &mut fields)
            .expect("a valid HPACK block");
        let value = |name: &[u8]| {
            fields
                .iter()
                .find(|(n, _, _)| n.as_slice() == name)
                .map(|(_, v, _)| String::from_utf8_lossy(v).into_owned())
        };
        if value(b":path").as_deref() == Some(path.as_str()) {
            copies.push((conn, value(b"apns-request-id")));
        }
    }
    assert_eq!(
        copies.len(),
        2,
        "the dropped copy and its resend: {copies:?}"
    );
    assert_ne!(
        copies[0].0, copies[1].0,
        "the resend goes on a new connection"
    );
    let answered = r.apns_request_id().unwrap();
    for (_, request_id) in &copies {
        assert_eq!(request_id.as_deref(), Some(answered), "{copies:?}");
    }
    let seen = mock.broadcasts();
    assert_eq!(seen.len(), 1, "the dropped copy was never processed");
    assert_eq!(seen[0].request_id, answered);
}

#[test]
fn live_activity_lints_for_notifications_and_broadcasts() {
    let codes = |n: &Notification| n.lints().iter().map(|l| l.code).collect::<Vec<_>>();
    let la = |payload: Payload| {
        Notification::builder(DEVICE, payload)
            .topic(PushType::Liveactivity.topic_for(BUNDLE))
            .push_type(PushType::Liveactivity)
            .build()
            .unwrap()
    };
    assert!(
        codes(&la(update("1-0"))).is_empty(),
        "{:?}",
        codes(&la(update("1-0")))
    );
    let start = Payload::builder()
        .event(LiveActivityEvent::Start)
        .timestamp(1)
        .content_state(serde_json::json!({}))
        .input_push_channel("QUJD")
        .build();
    assert_eq!(codes(&la(start)), vec!["live-activity-start-attributes"]);
    let update_with_start_keys = Payload::builder()
        .event(LiveActivityEvent::Update)
        .content_state(serde_json::json!({}))
        .attributes_type("Match")
        .input_push_token()
        .dismissal_date(5)
        .build();
    assert_eq!(
        codes(&la(update_with_start_keys)),
        vec![
            "live-activity-input-push",
            "live-activity-attributes",
            "live-activity-dismissal-date",
            "live-activity-timestamp"
        ]
    );
    let raw = Payload::raw(r#"{"aps":{"event":"pause","timestamp":1}}"#).unwrap();
    assert_eq!(codes(&la(raw)), vec!["live-activity-event"]);
    assert_eq!(
        codes(&la(Payload::alert("hi"))),
        vec!["live-activity-event", "live-activity-timestamp"]
    );
    // Live Activity keys on another push type.
    let alert = Notification::builder(DEVICE, update("1-0"))
        .topic(BUNDLE)
        .build()
        .unwrap();
    assert_eq!(codes(&alert), vec!["live-activity-push-type"]);

    let b = |bundle: &str, payload: Payload| {
        Broadcast::builder(bundle, "QUJD", payload)
            .expiration(Expiration::At(300))
            .build()
            .unwrap()
            .lints()
            .iter()
            .map(|l| l.code)
            .collect::<Vec<_>>()
    };
    let start = Payload::builder()
        .event(LiveActivityEvent::Start)
        .timestamp(1)
        .content_state(serde_json::json!({}))
        .attributes_type("Match")
        .attributes(serde_json::json!({}))
        .build();
    assert_eq!(
        b("com.example.app.push-type.liveactivity", start),
        vec![
            "broadcast-bundle-id",
            "broadcast-start",
            "expiration-duration"
        ]
    );
}
