//! What a newcomer trips over (issue 11): help and completions that teach,
//! one error up front instead of one per line, hints that name the right
//! flag, warnings said once, no colour codes in pipes, nothing left behind.

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
    let mut cmd = apns();
    cmd.args([
        "send",
        "--endpoint",
        &mock.endpoint().to_string(),
        "--alert",
        "hi",
    ])
    .args(["--topic", "com.example.app"])
    .arg("--ca-file")
    .arg(&ca_file)
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
async fn missing_provider_token_after_a_certificate_says_the_server_did_not_ask() {
    // A mock that does not ask for client certificates: the certificate is
    // never sent, and the request carries no token.
    let s = setup().await;
    let dir = temp_dir();
    let ca = certs::ca(dir.path());
    let cert = certs::push_cert(dir.path(), &ca, Spec::default());
    let mut cmd = apns();
    cmd.args([
        "send",
        "--endpoint",
        &s.mock.endpoint().to_string(),
        "--topic",
        "com.example.app",
        "--alert",
        "hi",
    ])
    .arg("--ca-file")
    .arg(&s.ca_path)
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
