//! The `apns` binary: send, token, mock and demo, with their exit codes.

use std::process::Stdio;

use apns_provider::auth::decode_unverified;

use crate::support::bulk;
use crate::support::*;

async fn setup() -> bulk::Setup {
    bulk::setup_with(|m| m.unregistered("dead0000", 1_700_000_000_000)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_prints_a_json_line_per_token_and_exits_by_outcome() {
    let s = setup().await;
    let mut cmd = send_cmd(&s, &s.key_path);
    cmd.args([
        "--output", "json", "--title", "T", "--body", "B", "--badge", "3", "--sound", "default",
    ])
    .args([
        "--custom",
        "order_id=1234",
        "--custom",
        "ref=abc",
        DEVICE,
        "abcd",
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["device_token"], DEVICE);
    assert_eq!(lines[1]["device_token"], "abcd");
    for l in &lines {
        assert_eq!(l["status"], 200);
        assert!(l["apns_id"].is_string());
        assert!(l["reason"].is_null() && l["timestamp"].is_null());
    }
    let sent: serde_json::Value = serde_json::from_slice(&s.mock.accepted()[0].payload).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"aps": {"alert": {"title": "T", "body": "B"}, "badge": 3, "sound": "default"}, "order_id": 1234, "ref": "abc"})
    );

    // One rejected token: exit 1, reason and timestamp in JSON.
    let mut cmd = send_cmd(&s, &s.key_path);
    cmd.args(["--output", "json", "--alert", "hi", DEVICE, "dead0000"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let last: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().nth(1).unwrap()).unwrap();
    assert_eq!(last["status"], 410);
    assert_eq!(last["reason"], "Unregistered");
    assert_eq!(last["timestamp"], 1_700_000_000_000u64);

    // Human output names the reason and a hint.
    let mut cmd = send_cmd(&s, &s.key_path);
    cmd.args(["--alert", "hi", "dead0000"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("410 Unregistered") && stdout(&out).contains("stop sending"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_payload_from_stdin_and_lints_on_stderr() {
    let s = setup().await;
    let mut cmd = send_cmd(&s, &s.key_path);
    cmd.args(["--push-type", "background", "--payload-file", "-", DEVICE])
        .stdin(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(br#"{"aps":{"content-available":1}}"#)
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("priority 5"),
        "lint expected: {}",
        stderr(&out)
    );
    assert_eq!(s.mock.accepted()[0].push_type, "background");
    assert_eq!(
        s.mock.accepted()[0].payload.as_ref(),
        br#"{"aps":{"content-available":1}}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_connection_errors_have_their_exit_codes() {
    let s = setup().await;
    let long_id = "c".repeat(65);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--alert", "hi", "not-hex"], "device_token"),
        (vec!["--alert", "hi", "--priority", "7", DEVICE], "priority"),
        (vec!["--payload", "{oops", DEVICE], "payload"),
        (vec![DEVICE], "no payload"),
        (
            vec!["--alert", "hi", "--collapse-id", &long_id, DEVICE],
            "collapse_id",
        ),
    ];
    for (args, expect) in cases {
        let mut cmd = send_cmd(&s, &s.key_path);
        cmd.args(&args);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "one line: {}",
            stderr(&out)
        );
    }
    // A push type is checked by clap where the flag is read (issue 20).
    let mut cmd = send_cmd(&s, &s.key_path);
    cmd.args(["--alert", "hi", "--push-type", "loud", DEVICE]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid value 'loud' for '--push-type"),
        "{}",
        stderr(&out)
    );
    let big = format!(r#"{{"aps":{{"alert":"{}"}}}}"#, "a".repeat(5000));
    let mut cmd = send_cmd(&s, &s.key_path);
    cmd.args(["--payload", &big, DEVICE]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("4096-byte limit"), "{}", stderr(&out));

    // Wrong team id format and a key file that is not a key.
    let mut cmd = apns();
    cmd.args(["send", "--key-file"]).arg(&s.ca_path).args([
        "--key-id",
        KEY_ID,
        "--team-id",
        TEAM_ID,
        "--topic",
        BUNDLE,
        "--alert",
        "x",
        DEVICE,
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("certificate") && stderr(&out).contains("expected"),
        "{}",
        stderr(&out)
    );

    // Nothing listening: exit 3.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let mut cmd = apns();
    cmd.arg("send").arg("--key-file").arg(&s.key_path).args([
        "--team-id",
        TEAM_ID,
        "--topic",
        BUNDLE,
        "--endpoint",
        &url,
        "--alert",
        "hi",
        DEVICE,
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("could not connect"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_one_jwt_and_infers_the_key_id() {
    let s = setup().await;
    let mut cmd = apns();
    cmd.arg("token")
        .arg("--key-file")
        .arg(&s.key_path)
        .args(["--team-id", TEAM_ID]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1);
    let claims = decode_unverified(text.trim()).unwrap();
    assert_eq!(
        (claims.kid.as_str(), claims.iss.as_str()),
        (KEY_ID, TEAM_ID)
    );
    assert!(stderr(&out).is_empty());

    // Swapped ids are caught.
    let mut cmd = apns();
    cmd.arg("token").arg("--key-file").arg(&s.key_path).args([
        "--team-id",
        KEY_ID,
        "--key-id",
        TEAM_ID,
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("swapped"), "{}", stderr(&out));
}

/// `apns mock` as a process, `apns token` for the JWT, and curl as the client,
/// as Apple documents for its real service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_curl_http2,
    ignore = "needs curl with HTTP/2: apt install curl"
)]
async fn curl_with_apns_token_against_apns_mock_gets_200() {
    let dir = temp_dir();
    let (key_path, ca_out, mut mock_cmd) = mock_command_trusting_a_new_key(dir.path());
    mock_cmd.args(["--unregistered", "dead0000"]);
    let mock = spawn_mock(mock_cmd);
    let endpoint = mock.endpoint.clone();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    assert_eq!(
        mock.ca_file.as_str(),
        std::fs::canonicalize(&ca_out).unwrap().to_str().unwrap()
    );

    let mut tok = apns();
    tok.arg("token")
        .arg("--key-file")
        .arg(&key_path)
        .args(["--team-id", TEAM_ID]);
    let token = stdout(&run(tok).await).trim().to_string();

    let curl = |device: &str| {
        let mut c = program(Prerequisite::CurlHttp2);
        c.args([
            "-sS",
            "--http2",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{http_version}",
            "--cacert",
        ])
        .arg(&ca_out)
        .args([
            "-H",
            &format!("authorization: bearer {token}"),
            "-H",
            &format!("apns-topic: {BUNDLE}"),
        ])
        .args([
            "-d",
            r#"{"aps":{"alert":"hi"}}"#,
            &format!("{endpoint}/3/device/{device}"),
        ]);
        c
    };
    let out = run(curl(DEVICE)).await;
    assert!(out.status.success(), "curl failed: {}", stderr(&out));
    assert!(stdout(&out).trim().ends_with("200 2"), "{}", stdout(&out));
    let out = run(curl("dead0000")).await;
    assert!(
        stdout(&out).contains(r#""reason":"Unregistered""#)
            && stdout(&out).trim().ends_with("410 2"),
        "{}",
        stdout(&out)
    );

    // SIGTERM stops it cleanly.
    let status = mock.stop().await.status;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_end_to_end() {
    let mut cmd = apns();
    cmd.arg("demo");
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert_eq!(text.matches("200 accepted").count(), 4, "{text}");
    assert!(text.contains("410 Unregistered"), "{text}");
    assert!(text.contains("curl --http2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_fault_flags_and_send_recovers() {
    let dir = temp_dir();
    let (key_path, _, mut mock_cmd) = mock_command_trusting_a_new_key(dir.path());
    mock_cmd.args(["--refuse-streams", "1", "--storm", "500:1"]);
    let mock = spawn_mock(mock_cmd);

    // A refused stream is resent, a 500 retried: the send still succeeds.
    let mut cmd = send_cmd(&mock, &key_path);
    cmd.args(["--alert", "hi", DEVICE]);
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let out = mock.stop().await;
    let err = stderr(&out);
    assert!(
        err.contains("2 request(s)") && err.contains("1 accepted, 1 rejected"),
        "{err}"
    );

    let mut bad = apns();
    bad.args(["mock", "--storm", "418:3"]);
    let out = run(bad).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--storm"), "{}", stderr(&out));
}

/// The benchmark runs end to end and accounts for every notification (its
/// figures are measured, never asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_accounts_for_every_notification() {
    let mut cmd = apns();
    cmd.args([
        "bench",
        "--count",
        "3000",
        "--concurrency",
        "200",
        "--connections",
        "2",
        // 200 in flight over a 50-stream limit: the pool must open both.
        "--max-streams",
        "50",
        "--output",
        "json",
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["accepted"], 3000);
    assert_eq!(v["failed"], 0);
    assert_eq!(v["connections_opened"], 2);
    for key in [
        "notifications_per_second",
        "client_cpu_us_per_notification",
        "peak_rss_kib",
    ] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
}

/// `--latency` makes the bench's mock answer late, and the report gives
/// the physical limit at that distance (in flight ÷ round trip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_at_a_distance_reports_its_physical_limit() {
    let mut cmd = apns();
    cmd.args(["bench", "--latency", "100ms..120ms", "--count", "1000"])
        .args(["--concurrency", "300", "--connections", "2"])
        .args(["--max-streams", "100", "--output", "json"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["accepted"], 1000, "{v}");
    let limit = &v["physical_limit"];
    // 300 wanted, 2 connections × 100 streams allowed: 200 in flight.
    assert_eq!(limit["in_flight"], 200, "{v}");
    assert_eq!(limit["latency_ms"]["min"], 100.0, "{v}");
    let per_second = limit["notifications_per_second"].as_f64().unwrap();
    assert!((per_second - 200.0 / 0.110).abs() < 1.0, "{v}");
    // Every answer waited at least the shortest delay.
    assert!(v["latency_ms"]["p50"].as_f64().unwrap() >= 100.0, "{v}");
    // Without --latency there is no limit to report.
    let mut cmd = apns();
    cmd.args(["bench", "--count", "200", "--output", "json"]);
    let out = run(cmd).await;
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(v["physical_limit"].is_null(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_cli_mode_runs_the_bulk_send_and_checks_every_result_line() {
    let mut cmd = apns();
    cmd.args(["bench", "--cli", "--count", "2000", "--output", "json"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["result_lines"], 2000);
    assert_eq!(v["exit_code"], 0);
    assert!(v["peak_rss_kib"].as_u64().unwrap() > 0);
}

/// `--validating` runs the mock with every check on (trusting the bench's
/// key): each notification must pass them, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_against_the_validating_mock_passes_every_check() {
    let mut cmd = apns();
    cmd.args([
        "bench",
        "--validating",
        "--count",
        "2000",
        "--output",
        "json",
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["validating_mock"], true);
    assert_eq!(v["accepted"], 2000, "{v}");

    let mut cmd = apns();
    cmd.args([
        "bench",
        "--cli",
        "--validating",
        "--no-h2load",
        "--count",
        "1000",
    ])
    .args(["--output", "json"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["validating_mock"], true);
    assert_eq!(v["result_lines"], 1000, "{v}");
    assert!(
        v["mock_cpu_us_per_notification"].as_f64().unwrap() > 0.0,
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_speaks_json_too() {
    let mut cmd = apns();
    cmd.args(["demo", "--output", "json"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines.iter().filter(|l| l["status"] == 200).count(), 4);
    assert_eq!(lines[4]["reason"], "Unregistered");
    assert_eq!(lines[5]["summary"]["unexpected"], 0);
}

/// `apns doctor` with no credentials at all still checks the road to
/// APNs, and its last check is a push without credentials, which APNs and
/// the mock answer 403 MissingProviderToken. A server that answers
/// otherwise (the mock in accept-all mode) is named, as a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_without_credentials_probes_with_a_push_that_has_none() {
    for (accept_all, status, says) in [
        (false, "pass", "403 MissingProviderToken"),
        (true, "warn", "got 200"),
    ] {
        let dir = temp_dir();
        let ca = dir.path().join("mock-ca.pem");
        let mut cmd = apns();
        cmd.arg("mock").arg("--ca-out").arg(&ca);
        if accept_all {
            cmd.arg("--accept-all");
        }
        let mock = spawn_mock(cmd);
        let mut doctor = apns_against(&["doctor"], &mock);
        doctor.env_remove("APNS_PROFILE").args(["--output", "json"]);
        let out = run(doctor).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        let checks = v["checks"].as_array().unwrap();
        let probe = checks
            .iter()
            .find(|c| c["name"] == "probe")
            .expect("a probe check");
        assert_eq!(probe["status"], status, "{probe}");
        assert!(probe["detail"].as_str().unwrap().contains(says), "{probe}");
        let key = checks.iter().find(|c| c["name"] == "key").unwrap();
        assert_eq!(key["status"], "warn", "no key given: {key}");
        let out = mock.stop().await;
        assert!(stderr(&out).contains("1 request(s)"), "{}", stderr(&out));
    }
}
