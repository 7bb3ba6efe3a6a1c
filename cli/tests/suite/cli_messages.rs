//! What the CLI tells its user: help and completions that teach, one error
//! up front instead of one per line, hints that name the right flag,
//! warnings said once, no colour codes in pipes, verbose logs without a
//! secret, and nothing left behind.

use crate::support::bulk::{send, setup_with, token, Setup};
use crate::support::certs::{self, Spec};
use crate::support::*;

async fn setup() -> Setup {
    setup_with(|m| m).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_teaches_the_environment_and_certificates() {
    let mut cmd = apns();
    cmd.arg("--help");
    let help = stdout(&run(cmd).await);
    for needle in [
        "APNS_PROFILE",
        "APNS_CONFIG",
        "XDG_CONFIG_HOME",
        "NO_COLOR",
        "certificate",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from apns --help:\n{help}"
        );
    }
    let mut cmd = apns();
    cmd.args(["send", "--help"]);
    let help = stdout(&run(cmd).await);
    // The password flags sit under the certificate heading, with --cert.
    let mut heading = "";
    let mut under = std::collections::HashMap::new();
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            heading = line;
        }
        if let Some(flag) = line.trim_start().strip_prefix("--") {
            let name = flag.split([' ', '=', '<']).next().unwrap_or_default();
            under.insert(name.to_string(), heading);
        }
    }
    for flag in [
        "cert",
        "cert-key",
        "cert-password-env",
        "cert-password-file",
    ] {
        assert_eq!(
            under.get(flag).copied(),
            Some("Certificate authentication:"),
            "--{flag}:\n{help}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_completion_offers_push_types_and_environments() {
    let mut cmd = apns();
    cmd.args(["completions", "bash"]);
    let script = stdout(&run(cmd).await);
    assert!(
        script.contains("alert background location voip complication"),
        "push types are not offered"
    );
    assert!(
        script.contains("sandbox production"),
        "environments are not offered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_given_to_key_says_to_use_key_file() {
    let dir = temp_dir();
    let mut cmd = apns();
    cmd.env("APNS_CONFIG", dir.path().join("keys.toml")).args([
        "send",
        "--key",
        "AuthKey_ABCDE12345.p8",
        "--topic",
        BUNDLE,
        "--alert",
        "hi",
        DEVICE,
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("use --key-file AuthKey_ABCDE12345.p8"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_with_a_device_token_and_no_topic_is_a_usage_error() {
    let dir = temp_dir();
    let key = write_file(
        dir.path(),
        "AuthKey_ABCDE12345.p8",
        new_key_pem().as_bytes(),
    );
    let mut cmd = apns();
    cmd.args(["doctor", "--team-id", TEAM_ID, "--device-token", DEVICE])
        .arg("--key-file")
        .arg(&key)
        // Nothing listens here: a network check would fail with exit 3.
        .args(["--endpoint", "https://127.0.0.1:1"]);
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("--topic"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_file_without_any_payload_fails_once_before_sending() {
    let s = setup().await;
    let file = s.dir.path().join("tokens.txt");
    std::fs::write(&file, (1..=50).map(|i| token(i) + "\n").collect::<String>()).unwrap();
    let mut cmd = send(&s);
    cmd.arg("--tokens-file").arg(&file);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.lines().count(),
        1,
        "one error, not one per line:\n{err}"
    );
    assert!(
        err.contains("no payload") && err.contains("--alert"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
    assert_eq!(s.mock.stats().requests, 0, "nothing was sent");
    assert_eq!(s.mock.stats().connections, 0, "nothing connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_no_colour_codes_in_a_pipe() {
    let s = setup().await;
    let mut cmd = send(&s);
    cmd.args(["-vv", "--alert", "hi", DEVICE]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("DEBUG"), "-vv logs at debug: {err}");
    assert!(!err.contains('\x1b'), "escape codes in a pipe: {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn warnings_are_said_once_and_apns_id_reuse_is_flagged() {
    let s = setup().await;
    let mut cmd = send(&s);
    cmd.args([
        "--alert",
        "hi",
        "--apns-id",
        "123e4567-e89b-12d3-a456-426655440000",
        "0badc0de",
        DEVICE,
    ]);
    let out = run(cmd).await;
    let err = stderr(&out);
    assert_eq!(err.matches("[device-token-short]").count(), 1, "{err}");
    assert!(err.contains("--apns-id is reused"), "{err}");

    // A certificate expiring soon: one warning line, not two.
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let soon = certs::push_cert(
        dir.path(),
        &ca,
        Spec {
            name: "soon",
            not_after_days: 10,
            ..Spec::default()
        },
    );
    let mock = apns_provider::mock::MockServer::builder()
        .client_ca_pem(&std::fs::read(&ca.pem_path).unwrap())
        .start()
        .await
        .unwrap();
    let ca_file = dir.path().join("mock-ca.pem");
    mock.write_ca_file(&ca_file).unwrap();
    let mut cmd = apns_against(&["send"], &At::new(mock.endpoint(), &ca_file));
    cmd.args(["--alert", "hi", "--topic", "com.example.app"])
        .arg("--cert")
        .arg(&soon.combined_pem)
        .arg(DEVICE);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("expires on").count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn missing_provider_token_after_a_certificate_says_the_server_did_not_ask() {
    // A mock that does not ask for client certificates: the certificate is
    // never sent, and the request carries no token.
    let s = setup().await;
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let cert = certs::push_cert(dir.path(), &ca, Spec::default());
    let mut cmd = apns_against(&["send"], &s);
    cmd.args(["--topic", "com.example.app", "--alert", "hi"])
        .arg("--cert")
        .arg(&cert.combined_pem)
        .arg(DEVICE);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(
        line.contains("MissingProviderToken")
            && line.contains("did not ask for the client certificate"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_cut_short_by_a_closed_pipe_leaves_nothing_behind() {
    let tmp = temp_dir();
    let mut cmd = std::process::Command::new("sh");
    crate::support::hermetic(&mut cmd);
    cmd.arg("-c")
        .arg(format!("{} demo | head -1", env!("CARGO_BIN_EXE_apns")))
        .env("TMPDIR", tmp.path());
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Issue 20: on a laptop with HTTPS_PROXY set, `apns demo` still works: its
/// mock runs in the same process, on loopback, and is never proxied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_works_with_a_proxy_in_the_environment() {
    let mut cmd = apns();
    cmd.arg("demo")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("ALL_PROXY", "http://127.0.0.1:9");
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out).matches("200 accepted").count(), 4);
    assert!(!stderr(&out).contains("--no-proxy"), "{}", stderr(&out));
}

/// Issue 20: what a certificate cannot send is refused before sending with
/// exit 2 (usage or configuration), naming the flag; never exit 3 ("APNs
/// could not be reached"), which scripts retry. The endpoint is a closed
/// port: any attempt to connect would be exit 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_openssl, ignore = "needs openssl: apt install openssl")]
async fn certificate_refusals_before_sending_exit_2() {
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let cert = certs::push_cert(dir.path(), &ca, Spec::default());
    let send = |extra: &[&str]| {
        let mut cmd = apns();
        cmd.args(["send", "--endpoint", "https://127.0.0.1:9", "--cert"])
            .arg(&cert.combined_pem)
            .args(["--alert", "hi"])
            .args(extra);
        cmd
    };
    let cases: [(&[&str], &str); 3] = [
        (&["--topic", "com.other.app", DEVICE], "--topic"),
        (
            &[
                "--topic",
                "com.example.app",
                "--push-type",
                "liveactivity",
                DEVICE,
            ],
            "--key",
        ),
        (&["--push-type", "location", DEVICE], "--key"),
    ];
    for (extra, flag) in cases {
        let out = run(send(extra)).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(flag), "{extra:?} names {flag}: {err}");
    }
    // A line of a tokens file with a topic the certificate does not allow:
    // an invalid line (exit 2), not a failed delivery.
    let tokens = write_file(
        dir.path(),
        "tokens.jsonl",
        format!(
            "{{\"device_token\":\"{DEVICE}\",\"topic\":\"com.other.app\",\"payload\":{{\"aps\":{{\"alert\":\"hi\"}}}}}}\n"
        )
        .as_bytes(),
    );
    let mut cmd = apns();
    cmd.args(["send", "--endpoint", "https://127.0.0.1:9", "--cert"])
        .arg(&cert.combined_pem)
        .arg("--tokens-file")
        .arg(&tokens);
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Issue 20: `apns token --decode JWT` needs no key; without one the
/// signature is said to be unchecked. `apns token` without a key names
/// only flags `token` takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_decode_needs_no_key() {
    let dir = temp_dir();
    let key = write_file(
        dir.path(),
        &format!("AuthKey_{KEY_ID}.p8"),
        new_key_pem().as_bytes(),
    );
    let mut cmd = apns();
    cmd.args(["token", "--team-id", TEAM_ID, "--key-file"])
        .arg(&key);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let jwt = stdout(&out).trim().to_string();

    let mut cmd = apns();
    cmd.args(["token", "--decode", &jwt]);
    let out = run(cmd).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains(KEY_ID) && text.contains(TEAM_ID), "{text}");
    assert!(text.contains("not checked"), "{text}");

    // With the key, the signature is checked.
    let mut cmd = apns();
    cmd.args([
        "token",
        "--decode",
        &jwt,
        "--team-id",
        TEAM_ID,
        "--key-file",
    ])
    .arg(&key);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("valid for this key"),
        "{}",
        stdout(&out)
    );

    let out = run({
        let mut cmd = apns();
        cmd.arg("token");
        cmd
    })
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--key-file") && !err.contains("--cert"),
        "{err}"
    );
}

/// Issue 20: `send --dry-run` shows the request line and headers, as
/// `broadcast --dry-run` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_dry_run_shows_the_headers() {
    let s = setup().await;
    let mut cmd = send(&s);
    cmd.args([
        "--alert",
        "hi",
        "--priority",
        "5",
        "--collapse-id",
        "c1",
        "--dry-run",
        DEVICE,
    ]);
    let out = run(cmd).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for needle in [
        format!("POST /3/device/{DEVICE}"),
        "apns-push-type: alert".into(),
        format!("apns-topic: {BUNDLE}"),
        "apns-priority: 5".into(),
        "apns-collapse-id: c1".into(),
    ] {
        assert!(text.contains(&needle), "{needle}: {text}");
    }
    let mut cmd = send(&s);
    cmd.args(["--alert", "hi", "--dry-run", "--output", "json", DEVICE]);
    let v: serde_json::Value = serde_json::from_str(stdout(&run(cmd).await).trim()).unwrap();
    assert_eq!(v["headers"]["apns-topic"], BUNDLE, "{v}");
    assert!(s.mock.accepted().is_empty(), "a dry run sends nothing");
}

/// Issue 20: `-v` says which credentials, which endpoint, whether a proxy
/// is used, and when the connection is made; never key material or a
/// token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_logs_the_steps_and_no_secret() {
    let s = setup().await;
    let mut cmd = send(&s);
    cmd.args(["-v", "--alert", "hi", DEVICE]);
    let out = run(cmd).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for needle in [
        format!("endpoint {}", s.mock.endpoint()),
        format!("token key {KEY_ID} of team {TEAM_ID}"),
        "no proxy".to_string(),
        "connection established".to_string(),
    ] {
        assert!(err.contains(&needle), "{needle}: {err}");
    }
    let pem = std::fs::read_to_string(&s.key_path).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    for secret in [&body[..20], "eyJ", "PRIVATE KEY", "bearer"] {
        assert!(!err.contains(secret), "{secret} in: {err}");
    }
}
