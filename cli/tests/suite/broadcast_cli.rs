//! `apns channel create|list|show|delete` and `apns broadcast`: JSON and
//! human outputs, exit codes as `apns send`'s, `--dry-run`, `--curl`,
//! `--channels-endpoint`, and `apns mock` playing the management host.

use std::process::Command;

use serde_json::Value;

use crate::support::*;

struct Setup {
    dir: tempfile::TempDir,
    key_path: std::path::PathBuf,
    ca_path: std::path::PathBuf,
    mock: apns_provider::mock::MockServer,
}

async fn setup() -> Setup {
    let dir = temp_dir();
    let pem = new_key_pem();
    let key_path = write_file(dir.path(), &format!("AuthKey_{KEY_ID}.p8"), pem.as_bytes());
    let key = apns_provider::SigningKey::from_pem(pem.as_bytes()).unwrap();
    let mock = mock_for(&key).start().await.unwrap();
    let ca_path = dir.path().join("ca.pem");
    mock.write_ca_file(&ca_path).unwrap();
    Setup {
        dir,
        key_path,
        ca_path,
        mock,
    }
}

/// `apns <words...>` with the key, the mock and the bundle id.
fn apns_for(s: &Setup, words: &[&str]) -> Command {
    apns_trusting(s, &s.ca_path, words)
}

/// Like [`apns_for`], trusting the CAs in `ca`.
fn apns_trusting(s: &Setup, ca: &std::path::Path, words: &[&str]) -> Command {
    let mut cmd = apns_against(words, &At::new(s.mock.endpoint(), ca));
    cmd.arg("--key-file")
        .arg(&s.key_path)
        .args(["--team-id", TEAM_ID, "--bundle-id", BUNDLE]);
    cmd
}

async fn json_of(cmd: Command, code: i32) -> Value {
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {:?}", stdout(&out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_and_broadcast_commands_print_json_and_exit_like_send() {
    let s = setup().await;
    let mut create = apns_for(&s, &["channel", "create"]);
    create.args(["--storage", "most-recent", "--output", "json"]);
    let created = json_of(create, 0).await;
    let id = created["channel_id"].as_str().unwrap().to_string();
    assert_eq!(
        created,
        serde_json::json!({"channel_id": id, "storage": "most-recent"})
    );

    let mut list = apns_for(&s, &["channel", "list"]);
    list.args(["--output", "json"]);
    let listed = json_of(list, 0).await;
    assert_eq!(listed["bundle_id"], BUNDLE);
    assert_eq!(listed["channels"], serde_json::json!([id]));
    let out = run(apns_for(&s, &["channel", "list"])).await;
    assert_eq!(stdout(&out).trim(), id, "human: one id per line");

    let mut show = apns_for(&s, &["channel", "show", &id]);
    show.args(["--output", "json"]);
    let shown = json_of(show, 0).await;
    assert_eq!(shown["storage"], "most-recent");
    assert_eq!(shown["push_type"], "LiveActivity");

    let request_id = "0b0c61e3-8d9e-4c1f-a35b-3f9e1e0c2d7a";
    let broadcast = |extra: &[&str]| {
        let mut cmd = apns_for(&s, &["broadcast"]);
        cmd.args(["--channel-id", &id])
            .args(["--event", "update", "--content-state", r#"{"score":"1-0"}"#])
            .args(extra);
        cmd
    };
    let sent = json_of(
        broadcast(&[
            "--stale-date",
            "+15m",
            "--priority",
            "5",
            "--expiration",
            "+1h",
            "--request-id",
            request_id,
            "--title",
            "Goal",
            "--output",
            "json",
        ]),
        0,
    )
    .await;
    assert_eq!(sent["channel_id"], id.as_str());
    assert_eq!(sent["status"], 200);
    assert_eq!(sent["request_id"], request_id);
    assert!(
        sent["apns_unique_id"].is_string() && sent["reason"].is_null(),
        "{sent}"
    );
    let now = apns_provider::clock::now_unix_seconds();
    let a = &s.mock.broadcasts()[0];
    assert_eq!(a.priority, 5);
    assert!(
        (now + 3500..now + 3700).contains(&a.expiration),
        "{}",
        a.expiration
    );
    let payload: Value = serde_json::from_slice(&a.payload).unwrap();
    let aps = &payload["aps"];
    assert_eq!(aps["event"], "update");
    assert_eq!(aps["content-state"], serde_json::json!({"score": "1-0"}));
    assert_eq!(aps["alert"], serde_json::json!({"title": "Goal"}));
    assert!(aps["timestamp"].as_u64().unwrap() >= now - 60);
    assert!(aps["stale-date"].as_u64().unwrap() >= now + 800);

    // --dry-run validates and shows; nothing reaches the mock.
    let shown = json_of(broadcast(&["--dry-run", "--output", "json"]), 0).await;
    assert_eq!(shown["path"], format!("/4/broadcasts/apps/{BUNDLE}"));
    assert_eq!(shown["headers"]["apns-push-type"], "liveactivity");
    assert_eq!(shown["headers"]["apns-expiration"], "0");
    assert_eq!(shown["lints"], serde_json::json!([]));
    assert_eq!(s.mock.broadcasts().len(), 1);

    // --curl: the token stays hidden unless revealed; the command works.
    let out = run(broadcast(&["--curl"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("$(apns token --key-file") && !text.contains("eyJ"),
        "{text}"
    );
    assert!(
        text.contains(&format!("-H 'apns-channel-id: {id}'")),
        "{text}"
    );
    let revealed = stdout(&run(broadcast(&["--curl", "--reveal"])).await);
    let mut sh = Command::new("sh");
    crate::support::hermetic(&mut sh);
    sh.args([
        "-c",
        &format!("{} -sS -o /dev/null -w '%{{http_code}}'", revealed.trim()),
    ]);
    let out = run(sh).await;
    assert_eq!(stdout(&out), "200", "{}", stderr(&out));
    assert_eq!(s.mock.broadcasts().len(), 2);

    let out = run(apns_for(&s, &["channel", "delete", &id])).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("deleted {id}"));

    // Rejections exit 1 with the reason (and a hint for people).
    let gone = json_of(broadcast(&["--output", "json"]), 1).await;
    assert_eq!(
        (gone["status"].as_u64(), gone["reason"].as_str()),
        (Some(400), Some("ChannelNotRegistered"))
    );
    let out = run(broadcast(&[])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("400 ChannelNotRegistered")
            && stdout(&out).contains("apns channel list"),
        "{}",
        stdout(&out)
    );
    let out = run(apns_for(&s, &["channel", "show", &id])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ChannelNotRegistered"),
        "{}",
        stderr(&out)
    );
    let mut show = apns_for(&s, &["channel", "show", &id]);
    show.args(["--output", "json"]);
    assert_eq!(json_of(show, 1).await["reason"], "ChannelNotRegistered");

    // Usage errors exit 2, before anything is sent.
    let requests = s.mock.stats().requests;
    let out = run(apns_for(&s, &["channel", "show", "not base64!"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("channel_id"), "{}", stderr(&out));
    let big = write_file(
        s.dir.path(),
        "big.json",
        format!(
            r#"{{"aps":{{"event":"update"}},"x":"{}"}}"#,
            "a".repeat(5100)
        )
        .as_bytes(),
    );
    let mut cmd = apns_for(&s, &["broadcast", "--channel-id", &id]);
    cmd.arg("--payload-file").arg(&big);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("5120-byte limit"), "{}", stderr(&out));
    let out = run(apns_for(&s, &["broadcast", "--channel-id", &id])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no payload"), "{}", stderr(&out));
    let mut cmd = apns_for(&s, &["broadcast", "--channel-id", &id, "--event", "update"]);
    cmd.args(["--expiration", "tomorrow"]);
    assert_eq!(run(cmd).await.status.code(), Some(2));
    assert_eq!(s.mock.stats().requests, requests);
}

/// `apns mock` (a process) as the management host through
/// `--channels-endpoint`, its `--max-channels` limit, and broadcasts going
/// to `--endpoint` meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_endpoint_and_apns_mock_max_channels() {
    let s = setup().await;
    let ca_out = s.dir.path().join("manager-ca.pem");
    let mut mock_cmd = apns();
    mock_cmd
        .arg("mock")
        .arg("--ca-out")
        .arg(&ca_out)
        .arg("--trust-key")
        .arg(format!("{KEY_ID}={TEAM_ID}:{}", s.key_path.display()))
        .args(["--max-channels", "1"]);
    let manager = spawn_mock(mock_cmd);
    // One CA file trusting both servers.
    let both = s.dir.path().join("both.pem");
    let pems = [
        std::fs::read_to_string(&s.ca_path).unwrap(),
        std::fs::read_to_string(&ca_out).unwrap(),
    ];
    std::fs::write(&both, pems.concat()).unwrap();
    let create = || {
        let mut cmd = apns_trusting(&s, &both, &["channel", "create", "--output", "json"]);
        cmd.args(["--channels-endpoint", &manager.endpoint]);
        cmd
    };
    let first = json_of(create(), 0).await;
    let refused = json_of(create(), 1).await;
    assert_eq!(refused["reason"], "CannotCreateChannelConfig");
    assert!(
        s.mock.channels().is_empty(),
        "channel requests went to --channels-endpoint"
    );
    assert_eq!(s.mock.stats().requests, 0);

    // The channel lives on the manager only: a broadcast to --endpoint finds none.
    let mut cmd = apns_trusting(&s, &both, &["broadcast", "--output", "json"]);
    cmd.args(["--channel-id", first["channel_id"].as_str().unwrap()])
        .args(["--payload", r#"{"aps":{"event":"end","timestamp":1}}"#]);
    assert_eq!(json_of(cmd, 1).await["reason"], "ChannelNotRegistered");

    let out = manager.stop().await;
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        stderr(&out).contains("2 request(s) on 2 connection(s): 1 accepted, 1 rejected"),
        "{}",
        stderr(&out)
    );
}
