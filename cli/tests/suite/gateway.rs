//! `apns serve` over real sockets, against the in-process mock: bearer
//! authentication, per-item results in order, validation before anything
//! is sent, the body / array / concurrency limits, `/metrics` that moves,
//! many apps from profiles, TLS with HTTP/2, and a graceful stop.

use std::time::Duration;

use apns_provider::mock::{Fault, MockServer, TrustedKey};
use serde_json::{json, Value};

use crate::support::bulk;
use crate::support::web::{self, *};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_curl_http2,
    ignore = "needs curl with HTTP/2: apt install curl"
)]
async fn a_token_is_required_and_results_come_in_order() {
    // At TRACE: the API token must not show in any log line.
    let (s, serve) = start(&["-vvv"]).await;

    // No token, a wrong one: 401 with a JSON error; nothing sent.
    let a = post(&serve, None, &alert(DEVICE)).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    assert!(a.json()["error"].as_str().unwrap().contains("Bearer"));
    let a = post(&serve, Some("gw-token-0123456789abcdeX"), &alert(DEVICE)).await;
    assert_eq!(a.status, 401);
    assert!(a.json()["error"].as_str().unwrap().contains("not valid"));
    let a = web::request(&serve.base, "GET", "/metrics", None, b"").await;
    assert_eq!(a.status, 401);
    assert!(s.mock.accepted().is_empty());
    // Liveness needs none.
    let a = web::request(&serve.base, "GET", "/healthz", None, b"").await;
    assert_eq!((a.status, a.json()["status"].clone()), (200, json!("ok")));

    // An array: one result per item, in order.
    let body = json!([
        alert(DEVICE),
        alert("dead0000"),
        {"device_token": "abcd", "push_type": "background", "priority": 5,
         "payload": {"aps": {"content-available": 1}}},
    ]);
    let a = post(&serve, Some(TOKEN), &body).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        (
            v["accepted"].clone(),
            v["rejected"].clone(),
            v["failed"].clone()
        ),
        (json!(2), json!(1), json!(0))
    );
    assert_eq!(results[0]["device_token"], DEVICE);
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[1]["device_token"], "dead0000");
    assert_eq!(results[1]["status"], 410);
    assert_eq!(results[1]["reason"], "Unregistered");
    assert_eq!(results[1]["timestamp"], 1_700_000_000_000u64);
    assert_eq!(results[2]["device_token"], "abcd");
    assert_eq!(results[2]["status"], 200);
    let sent = s.mock.accepted();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().any(|n| n.push_type == "background"));

    // The same fields as `apns send`'s result lines (less their line number).
    let mut cmd = bulk::send(&s);
    cmd.args(["--output", "json", "--alert", "hi", DEVICE]);
    let out = run(cmd).await;
    let line: Value = serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&results[0]), keys(&line));

    // One object: one result.
    let a = post(&serve, Some(TOKEN), &alert(DEVICE)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["results"].as_array().unwrap().len(), 1);
    // Over HTTP/2 as well (h2's own tracing sees the headers).
    let out = run({
        let mut c = program(Prerequisite::CurlHttp2);
        c.args(["-sS", "--http2-prior-knowledge", "-H"])
            .arg(format!("Authorization: Bearer {TOKEN}"))
            .args(["-d", &alert(DEVICE).to_string()])
            .arg(format!("{}/v1/notifications", serve.base));
        c
    })
    .await;
    assert!(stdout(&out).contains("\"status\":200"), "{}", stdout(&out));
    let (code, err) = serve.stop().await;
    assert!(
        err.contains("TRACE") || err.contains("DEBUG"),
        "logs at TRACE: {err}"
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains(TOKEN), "a token in the logs: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_item_gets_422_naming_index_and_field_and_nothing_is_sent() {
    let (s, serve) = start(&[]).await;
    let cases: Vec<(Value, usize, Option<&str>, &str)> = vec![
        (
            json!([alert(DEVICE), alert(DEVICE), alert("xyz")]),
            2,
            Some("device_token"),
            "hex",
        ),
        (
            json!([alert(DEVICE), {"device_token": DEVICE, "payload": {"aps": {}}, "prio": 5}]),
            1,
            Some("prio"),
            "unknown field",
        ),
        (
            json!([{"device_token": DEVICE}]),
            0,
            Some("payload"),
            "missing",
        ),
        (
            json!([alert(DEVICE), {"device_token": DEVICE, "priority": 7, "payload": {"aps": {"alert": "x"}}}]),
            1,
            Some("priority"),
            "",
        ),
        (
            json!([{"device_token": DEVICE, "priority": [1], "payload": {"aps": {"alert": "x"}}}]),
            0,
            Some("priority"),
            "",
        ),
        (
            json!([{"app": "other", "device_token": DEVICE, "payload": {"aps": {"alert": "x"}}}]),
            0,
            Some("app"),
            "unknown app",
        ),
        (
            json!([{"device_token": DEVICE, "payload": {"aps": {"alert": "x".repeat(5000)}}}]),
            0,
            Some("payload"),
            "4096",
        ),
        (json!([alert(DEVICE), 17]), 1, None, "object"),
    ];
    for (body, index, field, text) in cases {
        let a = post(&serve, Some(TOKEN), &body).await;
        assert_eq!(a.status, 422, "{body}: {}", a.text());
        let v = a.json();
        let e = &v["errors"][0];
        assert_eq!(e["index"], index, "{v}");
        assert_eq!(e["field"].as_str(), field, "{v}");
        assert!(e["message"].as_str().unwrap().contains(text), "{v}");
        assert!(
            v["error"].as_str().unwrap().contains("nothing was sent"),
            "{v}"
        );
    }
    // Every invalid item is listed.
    let a = post(
        &serve,
        Some(TOKEN),
        &json!([alert("x1"), alert(DEVICE), alert("x2")]),
    )
    .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.json()["invalid"], 2);
    assert_eq!(a.json()["errors"][1]["index"], 2);
    // Not JSON, an empty array, a bare number.
    let a = web::request(
        &serve.base,
        "POST",
        "/v1/notifications",
        Some(TOKEN),
        b"{nope",
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(a.json()["error"].as_str().unwrap().contains("not JSON"));
    assert_eq!(post(&serve, Some(TOKEN), &json!([])).await.status, 422);
    assert_eq!(post(&serve, Some(TOKEN), &json!(5)).await.status, 422);
    assert!(s.mock.accepted().is_empty(), "nothing was sent");
    assert_eq!(s.mock.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_large_bodies_long_arrays_and_overload() {
    let (s, serve) = start(&[
        "--max-body",
        "2KiB",
        "--max-items",
        "3",
        "--max-concurrent-requests",
        "1",
        "--timeout",
        "10",
    ])
    .await;
    // A body over the limit: 413, whatever it holds.
    let big = json!([{"device_token": DEVICE, "payload": {"aps": {"alert": "x".repeat(3000)}}}]);
    let a = post(&serve, Some(TOKEN), &big).await;
    assert_eq!(a.status, 413, "{}", a.text());
    assert!(a.json()["error"].as_str().unwrap().contains("2048 bytes"));
    // More items than allowed: 413.
    let four = json!([alert(DEVICE), alert(DEVICE), alert(DEVICE), alert(DEVICE)]);
    let a = post(&serve, Some(TOKEN), &four).await;
    assert_eq!(a.status, 413);
    assert!(
        a.json()["error"].as_str().unwrap().contains("at most 3"),
        "{}",
        a.text()
    );
    assert!(s.mock.accepted().is_empty());

    // Overload: one request in progress (APNs answers slowly), the next is
    // refused at once with Retry-After, never queued.
    s.mock.inject(Fault::Latency {
        delay: Duration::from_millis(1500),
    });
    let base = serve.base.clone();
    let first = tokio::spawn(async move {
        web::request(
            &base,
            "POST",
            "/v1/notifications",
            Some(TOKEN),
            alert(DEVICE).to_string().as_bytes(),
        )
        .await
    });
    let in_flight = r#"apns_in_flight{app="default"} 1"#;
    wait_until_async(
        "the first request is in flight",
        Duration::from_secs(10),
        async || scrape(&serve).await.contains(in_flight),
    )
    .await;
    let a = post(&serve, Some(TOKEN), &alert(DEVICE)).await;
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(a.header("retry-after"), Some("1"));
    assert!(a.json()["error"].as_str().unwrap().contains("overloaded"));
    let a = first.await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["results"][0]["status"], 200);
    s.mock.clear_faults();
    assert_eq!(
        s.mock.accepted().len(),
        1,
        "only the first request was sent"
    );
    // The slot is free again.
    assert_eq!(post(&serve, Some(TOKEN), &alert(DEVICE)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_profiles_and_requests_pick_one() {
    let dir = temp_dir();
    let (shop_pem, news_pem) = (new_key_pem(), new_key_pem());
    let shop_key = write_file(dir.path(), "shop.p8", shop_pem.as_bytes());
    let news_key = write_file(dir.path(), "news.p8", news_pem.as_bytes());
    let public = |pem: &str| {
        apns_provider::SigningKey::from_pem(pem.as_bytes())
            .unwrap()
            .public_key()
    };
    let mock = MockServer::builder()
        .trust_key(
            TrustedKey::new("SHOPKEY001", TEAM_ID, public(&shop_pem))
                .unwrap()
                .topics(["com.example.shop"]),
        )
        .trust_key(
            TrustedKey::new("NEWSKEY001", TEAM_ID, public(&news_pem))
                .unwrap()
                .topics(["com.example.news"]),
        )
        .start()
        .await
        .unwrap();
    let ca = dir.path().join("ca.pem");
    mock.write_ca_file(&ca).unwrap();
    let profiles = write_file(
        dir.path(),
        "keys.toml",
        format!(
            "[profiles.shop]\nteam_id = \"{TEAM_ID}\"\nkey_id = \"SHOPKEY001\"\ntopic = \"com.example.shop\"\nkey = \"file:{}\"\n\n[profiles.news]\nteam_id = \"{TEAM_ID}\"\nkey_id = \"NEWSKEY001\"\ntopic = \"com.example.news\"\nkey = \"file:{}\"\n",
            shop_key.display(),
            news_key.display()
        )
        .as_bytes(),
    );
    let tokens = write_file(dir.path(), "api-tokens", TOKEN.as_bytes());
    let mut cmd = apns_against(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--app",
            "shop",
            "--app",
            "news",
        ],
        &At::new(mock.endpoint(), &ca),
    );
    cmd.env("APNS_CONFIG", &profiles)
        .arg("--api-token-file")
        .arg(&tokens);
    let serve = spawn_serve(cmd);
    let item =
        |app: &str| json!({"app": app, "device_token": DEVICE, "payload": {"aps": {"alert": app}}});
    let a = post(&serve, Some(TOKEN), &json!([item("news"), item("shop")])).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["accepted"], 2, "{}", a.text());
    let topics: Vec<String> = mock.accepted().iter().map(|n| n.topic.clone()).collect();
    assert!(
        topics.contains(&"com.example.news".into()) && topics.contains(&"com.example.shop".into()),
        "{topics:?}"
    );
    // Two apps and no default: a request must name one.
    let a = post(&serve, Some(TOKEN), &alert(DEVICE)).await;
    assert_eq!(a.status, 422);
    assert_eq!(a.json()["errors"][0]["field"], "app");
    assert!(a.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("news, shop"));
    let text = scrape(&serve).await;
    for app in ["news", "shop"] {
        let line = format!(
            r#"apns_notifications_total{{outcome="accepted",reason="",push_type="alert",app="{app}"}}"#
        );
        assert_eq!(sample(&text, &line), Some(1.0), "{text}");
    }
    // Readiness checks every app's connection.
    let a = web::request(&serve.base, "GET", "/readyz", None, b"").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["apps"]["news"]["ready"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_setups_are_refused_and_readiness_reports_a_dead_endpoint() {
    let s = bulk::setup_with(|m| m).await;
    // Plain HTTP off loopback.
    let tokens = write_file(s.dir.path(), "api-tokens", TOKEN.as_bytes());
    let out = run(serve_cmd_with(&s, "0.0.0.0:0", &tokens, &[])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refusing plain HTTP on 0.0.0.0:0"),
        "{}",
        stderr(&out)
    );
    // No token at all.
    let mut cmd = apns();
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--key-file")
        .arg(&s.key_path)
        .args(["--team-id", TEAM_ID]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no anonymous mode"),
        "{}",
        stderr(&out)
    );
    // A token file others may read.
    let loose = s.dir.path().join("loose-tokens");
    std::fs::write(&loose, TOKEN).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = run(serve_cmd_with(&s, "127.0.0.1:0", &loose, &[])).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
        assert!(!stderr(&out).contains(TOKEN));
    }
    // APNS_API_TOKEN stands in for the file.
    let mut cmd = apns();
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("APNS_API_TOKEN", TOKEN)
        .arg("--key-file")
        .arg(&s.key_path)
        .args(["--team-id", TEAM_ID, "--topic", BUNDLE])
        // The mock's CA is not given: no connection can be made.
        .args([
            "--endpoint",
            &s.mock.endpoint().to_string(),
            "--timeout",
            "2",
        ]);
    let serve = spawn_serve(cmd);
    assert_eq!(post(&serve, Some(TOKEN), &json!([])).await.status, 422);
    // The endpoint's CA is not trusted here: not ready, and why.
    let a = web::request(&serve.base, "GET", "/readyz", None, b"").await;
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(a.json()["ready"], false);
    assert!(
        a.json()["apps"]["default"]["error"]
            .as_str()
            .unwrap()
            .contains("TLS"),
        "{}",
        a.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_curl_http2,
    ignore = "needs curl with HTTP/2: apt install curl"
)]
async fn tls_serves_http2_and_http1() {
    let s = bulk::setup_with(|m| m).await;
    // A certificate for localhost from a CA of the test's own.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gateway test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gateway test server");
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let cert = write_file(s.dir.path(), "gw.pem", leaf.pem().as_bytes());
    let key = write_file(
        s.dir.path(),
        "gw-key.pem",
        leaf_key.serialize_pem().as_bytes(),
    );
    let ca_file = write_file(s.dir.path(), "gw-ca.pem", ca.pem().as_bytes());
    let mut cmd = serve_cmd(&s, &[]);
    cmd.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key);
    let serve = spawn_serve(cmd);
    assert!(
        serve.base.starts_with("https://127.0.0.1:"),
        "{}",
        serve.base
    );
    let port = serve.addr().rsplit(':').next().unwrap().to_string();
    let url = format!("https://localhost:{port}/v1/notifications");
    for version in ["--http2", "--http1.1"] {
        let out = run({
            let mut c = program(Prerequisite::CurlHttp2);
            c.args(["-sS", version, "--cacert"])
                .arg(&ca_file)
                .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
                .args([
                    "-d",
                    &alert(DEVICE).to_string(),
                    "-w",
                    "\n%{http_version} %{http_code}",
                    &url,
                ]);
            c
        })
        .await;
        let text = stdout(&out);
        let (body, status) = text.rsplit_once('\n').unwrap();
        let expected = if version == "--http2" {
            "2 200"
        } else {
            "1.1 200"
        };
        assert_eq!(status, expected, "{text} {}", stderr(&out));
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["results"][0]["status"], 200);
    }
    assert_eq!(s.mock.accepted().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_requests_in_progress() {
    let (s, serve) = start(&[]).await;
    let _guard = bulk::KillOnPanic(serve.pid());
    s.mock.inject(Fault::Latency {
        delay: Duration::from_millis(1000),
    });
    let base = serve.base.clone();
    let request = tokio::spawn(async move {
        web::request(
            &base,
            "POST",
            "/v1/notifications",
            Some(TOKEN),
            json!([alert(DEVICE), alert(DEVICE)]).to_string().as_bytes(),
        )
        .await
    });
    let in_flight = r#"apns_in_flight{app="default"} 2"#;
    wait_until_async(
        "the request is in flight",
        Duration::from_secs(10),
        async || scrape(&serve).await.contains(in_flight),
    )
    .await;
    let (code, err) = serve.stop().await;
    let a = request.await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["accepted"], 2, "{}", a.text());
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("stopping") && err.contains("stopped"), "{err}");
    wait_until_async(
        "both notifications reached APNs",
        Duration::from_secs(5),
        async || s.mock.accepted().len() == 2,
    )
    .await;
}

/// `apns serve --redis`: valid batches are enqueued (202 with the job ids,
/// nothing sent by the gateway), an invalid one adds nothing, readiness
/// covers Redis, an `apns worker` sends the jobs, and with Redis gone the
/// answer is 503 with Retry-After. Real redis-server, real sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn with_redis_batches_are_enqueued_for_workers() {
    use crate::support::redis::{self as rs, Redis, WorkerProcess};
    let mut redis = Redis::start(false);
    let (s, serve) = start(&["--redis", &redis.url()]).await;
    let tokens: Vec<String> = (1..=3).map(bulk::token).collect();
    let batch = Value::Array(tokens.iter().map(|t| alert(t)).collect());
    let a = post(&serve, Some(TOKEN), &batch).await;
    assert_eq!(a.status, 202, "{}", a.text());
    let body = a.json();
    assert_eq!(body["enqueued"], 3, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    let mut c = redis.conn().await;
    let entries = rs::entries(&mut c, "apns:jobs").await;
    assert_eq!(entries.len(), 3);
    for ((entry, fields), (job, token)) in entries.iter().zip(jobs.iter().zip(&tokens)) {
        assert_eq!(job["entry"].as_str(), Some(entry.as_str()));
        let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(field("job"), job["job"].as_str());
        assert_eq!(field("device_token"), Some(token.as_str()));
        // The app's defaults travel with the job; the flags' app is
        // named by none (the workers send it with their own key).
        assert_eq!(field("topic"), Some(BUNDLE));
        assert_eq!(field("app"), None, "{fields:?}");
    }
    assert_eq!(s.mock.stats().requests, 0, "the gateway sent nothing");

    // One bad item: 422, nothing added.
    let bad = json!([alert(&tokens[0]), {"device_token": "zz", "payload": {"aps": {}}}]);
    let a = post(&serve, Some(TOKEN), &bad).await;
    assert_eq!(a.status, 422, "{}", a.text());
    assert_eq!(rs::len(&mut c, "apns:jobs").await, 3);

    let a = web::request(&serve.base, "GET", "/readyz", None, b"").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["dispatch"]["name"], "enqueue");
    assert_eq!(a.json()["dispatch"]["ready"], true);

    // A worker sends them.
    // (No --topic: each job names its own.)
    let url = redis.url();
    let mut cmd = apns_against(&["worker", "--redis", &url, "--consumer", "gw"], &s);
    cmd.arg("--key-file")
        .arg(&s.key_path)
        .args(["--team-id", TEAM_ID]);
    let worker = WorkerProcess::spawn(cmd, "gw");
    rs::wait_for_len(&redis, "apns:results", 3, Duration::from_secs(30)).await;
    rs::stop(worker).await;
    let mut sent: Vec<String> = s
        .mock
        .accepted()
        .iter()
        .map(|r| r.device_token.clone())
        .collect();
    sent.sort();
    assert_eq!(sent, tokens);

    // Redis gone: 503 with Retry-After, and not ready.
    drop(c);
    redis.stop();
    let a = post(&serve, Some(TOKEN), &json!(alert(&tokens[0]))).await;
    assert_eq!(a.status, 503, "{}", a.text());
    assert!(a.header("retry-after").is_some());
    assert!(
        a.json()["error"].as_str().unwrap().contains("Redis"),
        "{}",
        a.text()
    );
    let a = web::request(&serve.base, "GET", "/readyz", None, b"").await;
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(a.json()["dispatch"]["ready"], false);
}

/// Broadcast push through the gateway, against the mock: a channel's whole
/// life, a broadcast the mock records, APNs' rejection answered with APNs'
/// status, and our own checks answered 422 before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_and_channels_through_the_gateway() {
    let (s, serve) = start(&[]).await;
    let call = |method: &'static str, path: String, body: Value| {
        let base = serve.base.clone();
        async move {
            let bytes = if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            };
            web::request(&base, method, &path, Some(TOKEN), &bytes).await
        }
    };
    // In a path, a base64 id is percent-encoded (it may hold / + =).
    let in_path = |id: &str| {
        id.replace('%', "%25")
            .replace('/', "%2F")
            .replace('+', "%2B")
            .replace('=', "%3D")
    };

    let a = call(
        "POST",
        "/v1/channels".into(),
        json!({"storage": "most-recent"}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(a.json()["storage"], "most-recent");
    let id = a.json()["channel_id"].as_str().unwrap().to_string();
    let a = call("GET", "/v1/channels".into(), Value::Null).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json(), json!({"bundle_id": BUNDLE, "channels": [id]}));
    let a = call("GET", format!("/v1/channels/{}", in_path(&id)), Value::Null).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["storage"], "most-recent");
    assert_eq!(a.json()["channel_id"], id.as_str());

    let payload = json!({"aps": {"event": "update", "content-state": {"score": "2-1"}, "timestamp": 1_700_000_000}});
    let a = call(
        "POST",
        "/v1/broadcasts".into(),
        json!({"channel_id": id, "payload": payload, "priority": 5, "expiration": "+1h"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["status"], 200);
    assert!(a.json()["request_id"].is_string());
    let sent = s.mock.broadcasts();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].bundle_id.as_str(),
            sent[0].channel_id.as_str(),
            sent[0].priority
        ),
        (BUNDLE, id.as_str(), 5)
    );

    // Our checks: 422 naming the field, nothing sent.
    for (body, field) in [
        (
            json!({"channel_id": id, "payload": payload, "sound": "x"}),
            "sound",
        ),
        (
            json!({"channel_id": "not base64!", "payload": payload}),
            "channel_id",
        ),
        (json!({"channel_id": id}), "payload"),
        (
            json!({"channel_id": id, "payload": payload, "app": "nope"}),
            "app",
        ),
        (
            json!({"channel_id": id, "payload": payload, "priority": 7}),
            "priority",
        ),
    ] {
        let a = call("POST", "/v1/broadcasts".into(), body).await;
        assert_eq!(a.status, 422, "{}", a.text());
        assert_eq!(a.json()["field"], field, "{}", a.text());
    }
    assert_eq!(s.mock.broadcasts().len(), 1);
    let a = web::request(&serve.base, "POST", "/v1/channels", None, b"{}").await;
    assert_eq!(a.status, 401);

    // Deleted: APNs' answer, with APNs' status.
    let a = call(
        "DELETE",
        format!("/v1/channels/{}", in_path(&id)),
        Value::Null,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["deleted"], true);
    let a = call(
        "POST",
        "/v1/broadcasts".into(),
        json!({"channel_id": id, "payload": payload}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(a.json()["reason"], "ChannelNotRegistered");
    assert!(a.json()["request_id"].is_string());
    let a = call("GET", "/v1/channels".into(), Value::Null).await;
    assert_eq!(a.json()["channels"], json!([]));
}
