//! Key management: the file, keychain and environment stores, profiles and
//! their precedence, permission checks, and a redaction scan of a whole
//! scenario logged at TRACE.

use crate::support::*;

/// An isolated home for profiles and the file store.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home { dir: temp_dir() }
    }
    fn apns(&self) -> std::process::Command {
        let mut cmd = apns();
        cmd.env("APNS_CONFIG", self.dir.path().join("config/keys.toml"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env_remove("APNS_PROFILE");
        cmd
    }
    fn key(&self, kid: &str) -> std::path::PathBuf {
        write_file(
            self.dir.path(),
            &format!("AuthKey_{kid}.p8"),
            new_key_pem().as_bytes(),
        )
    }
    fn profiles(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("config/keys.toml")).unwrap_or_default()
    }
}

async fn ok(mut cmd: std::process::Command, args: &[&str]) -> String {
    cmd.args(args);
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

async fn fails(mut cmd: std::process::Command, args: &[&str]) -> String {
    cmd.args(args);
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

fn fingerprint(path: &std::path::Path) -> String {
    apns_provider::SigningKey::from_file(path)
        .unwrap()
        .public_key()
        .fingerprint()
}

/// add, list, show, rotate and remove for one store.
async fn round_trip(home: &Home, name: &str, store: &str) {
    let first = home.key("KEYONE0001");
    let p = first.to_str().unwrap();
    ok(
        home.apns(),
        &[
            "key",
            "add",
            name,
            "--key-file",
            p,
            "--team-id",
            TEAM_ID,
            "--topic",
            BUNDLE,
            "--store",
            store,
        ],
    )
    .await;
    assert!(home.profiles().contains(&format!("[profiles.{name}]")));
    assert!(
        !home.profiles().contains("PRIVATE KEY"),
        "no secret in the profile file"
    );

    let list = ok(home.apns(), &["key", "list", "--output", "json"]).await;
    let row: serde_json::Value = list
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["name"] == name)
        .unwrap();
    assert_eq!(row["key_id"], "KEYONE0001");
    assert_eq!(row["team_id"], TEAM_ID);
    assert_eq!(row["fingerprint"], fingerprint(&first));

    let show = ok(home.apns(), &["key", "show", name]).await;
    let public = apns_provider::SigningKey::from_file(&first)
        .unwrap()
        .public_key()
        .to_pem();
    assert!(show.contains(&public), "{show}");
    assert!(!show.contains("PRIVATE"));

    // The stored key signs: its token decodes and verifies.
    let decoded = ok(
        home.apns(),
        &["token", "--key", name, "--decode", "--output", "json"],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(decoded.trim()).unwrap();
    assert_eq!(v["signature_valid"], true);
    assert_eq!(v["header"]["kid"], "KEYONE0001");

    let second = home.key("KEYTWO0002");
    let old = ok(
        home.apns(),
        &[
            "key",
            "rotate",
            name,
            "--key-file",
            second.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        old.trim(),
        "KEYONE0001",
        "the old key id is shown so it can be revoked"
    );
    let list = ok(home.apns(), &["key", "list", "--output", "json"]).await;
    assert!(
        list.contains("KEYTWO0002") && list.contains(&fingerprint(&second)),
        "{list}"
    );
    let decoded = ok(
        home.apns(),
        &["token", "--key", name, "--decode", "--output", "json"],
    )
    .await;
    assert!(
        decoded.contains("KEYTWO0002") && decoded.contains("\"signature_valid\":true"),
        "{decoded}"
    );

    let refused = fails(home.apns(), &["key", "remove", name]).await;
    assert!(refused.contains("--yes"), "{refused}");
    ok(home.apns(), &["key", "remove", name, "--yes"]).await;
    assert!(!home.profiles().contains(&format!("[profiles.{name}]")));
    let gone = fails(home.apns(), &["token", "--key", name]).await;
    assert!(gone.contains("no profile named"), "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_round_trip_with_private_permissions() {
    let home = Home::new();
    round_trip(&home, "filed", "file").await;
    // The store directory stays private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = home.dir.path().join("data/apns/keys");
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let key = home.key("KEYTHREE03");
        ok(
            home.apns(),
            &[
                "key",
                "add",
                "other",
                "--key-file",
                key.to_str().unwrap(),
                "--team-id",
                TEAM_ID,
                "--store",
                "file",
            ],
        )
        .await;
        let stored = dir.join("other.p8");
        assert_eq!(
            std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

/// Against a real Secret Service: `.ci/run` starts gnome-keyring inside a
/// dbus-run-session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_secret_service,
    ignore = "needs a Secret Service: run inside dbus-run-session with gnome-keyring unlocked (see .ci/run)"
)]
async fn keychain_store_round_trip_on_the_secret_service() {
    require(Prerequisite::SecretService);
    let home = Home::new();
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    round_trip(&home, &name, "keychain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_keychain_service_names_the_alternatives() {
    let home = Home::new();
    let key = home.key("KEYONE0001");
    let mut cmd = home.apns();
    cmd.env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("XDG_RUNTIME_DIR");
    let err = fails(
        cmd,
        &[
            "key",
            "add",
            "app",
            "--key-file",
            key.to_str().unwrap(),
            "--team-id",
            TEAM_ID,
        ],
    )
    .await;
    assert!(err.contains("no keychain service is reachable"), "{err}");
    assert!(
        err.contains("--store file") && err.contains("env:VAR"),
        "{err}"
    );
    assert!(
        home.profiles().is_empty(),
        "no profile written without its key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_permissions_are_refused_with_the_fix() {
    let home = Home::new();
    let key = home.key("KEYONE0001");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let p = key.to_str().unwrap();
    let err = fails(
        home.apns(),
        &[
            "key",
            "add",
            "app",
            "--key-file",
            p,
            "--team-id",
            TEAM_ID,
            "--store",
            "file",
        ],
    )
    .await;
    assert!(
        err.contains("chmod 600") && err.contains("mode 644"),
        "{err}"
    );
    let err = fails(
        home.apns(),
        &["token", "--key-file", p, "--team-id", TEAM_ID],
    )
    .await;
    assert!(err.contains("chmod 600"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_store_and_trusting_a_stored_key_in_the_mock() {
    let home = Home::new();
    let pem = new_key_pem();
    std::fs::create_dir_all(home.dir.path().join("config")).unwrap();
    std::fs::write(
        home.dir.path().join("config/keys.toml"),
        format!("[profiles.ci]\nteam_id = \"{TEAM_ID}\"\nkey_id = \"{KEY_ID}\"\nenvironment = \"sandbox\"\ntopic = \"{BUNDLE}\"\nkey = \"env:APNS_TEST_KEY_PEM\"\n"),
    )
    .unwrap();
    // `apns mock --trust-key ci` trusts the stored key's public half.
    let mut mock = home.apns();
    mock.args(["mock", "--trust-key", "ci", "--ca-out"])
        .arg(home.dir.path().join("ca.pem"))
        .env("APNS_TEST_KEY_PEM", &pem);
    let mock = spawn_mock(mock);
    let endpoint = mock.endpoint.clone();

    let mut send = home.apns();
    send.env("APNS_TEST_KEY_PEM", &pem);
    let out = ok(
        send,
        &[
            "send",
            "--key",
            "ci",
            "--endpoint",
            &endpoint,
            "--ca-file",
            &mock.ca_file,
            "--alert",
            "hi",
            "--output",
            "json",
            DEVICE,
        ],
    )
    .await;
    assert!(out.contains("\"status\":200"), "{out}");

    let err = fails(home.apns(), &["token", "--key", "ci"]).await;
    assert!(
        err.contains("APNS_TEST_KEY_PEM") && err.contains("not set"),
        "{err}"
    );
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precedence_is_flags_then_environment_then_profile_then_defaults() {
    let home = Home::new();
    let key = home.key(KEY_ID);
    ok(
        home.apns(),
        &[
            "key",
            "add",
            "app",
            "--key-file",
            key.to_str().unwrap(),
            "--team-id",
            TEAM_ID,
            "--topic",
            "com.profile.app",
            "--env",
            "sandbox",
            "--store",
            "file",
        ],
    )
    .await;
    let topic_of = |out: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        v["topic"].as_str().unwrap().to_string()
    };
    let base = [
        "send",
        "--alert",
        "hi",
        "--dry-run",
        "--output",
        "json",
        DEVICE,
    ];
    // The profile, chosen by APNS_PROFILE.
    let mut cmd = home.apns();
    cmd.env("APNS_PROFILE", "app");
    assert_eq!(topic_of(&ok(cmd, &base).await), "com.profile.app");
    // An environment variable beats the profile.
    let mut cmd = home.apns();
    cmd.env("APNS_PROFILE", "app")
        .env("APNS_TOPIC", "com.env.app");
    assert_eq!(topic_of(&ok(cmd, &base).await), "com.env.app");
    // A flag beats both.
    let mut cmd = home.apns();
    cmd.env("APNS_PROFILE", "app")
        .env("APNS_TOPIC", "com.env.app");
    let mut args = base.to_vec();
    args.extend(["--topic", "com.flag.app"]);
    assert_eq!(topic_of(&ok(cmd, &args).await), "com.flag.app");
    // --key beats APNS_PROFILE.
    let other = home.key("OTHERKEY01");
    ok(
        home.apns(),
        &[
            "key",
            "add",
            "other",
            "--key-file",
            other.to_str().unwrap(),
            "--team-id",
            TEAM_ID,
            "--topic",
            "com.other.app",
            "--store",
            "file",
        ],
    )
    .await;
    let mut cmd = home.apns();
    cmd.env("APNS_PROFILE", "app");
    let mut args = base.to_vec();
    args.extend(["--key", "other"]);
    assert_eq!(topic_of(&ok(cmd, &args).await), "com.other.app");

    // The environment: the profile's (sandbox) unless overridden; a key
    // limited to sandbox is not used with production.
    let curl = ok(
        home.apns(),
        &["send", "--key", "app", "--alert", "hi", "--curl", DEVICE],
    )
    .await;
    assert!(
        curl.contains("https://api.sandbox.push.apple.com:443/3/device/"),
        "{curl}"
    );
    let err = fails(
        home.apns(),
        &[
            "send",
            "--key",
            "app",
            "--env",
            "production",
            "--alert",
            "hi",
            "--curl",
            DEVICE,
        ],
    )
    .await;
    assert!(err.contains("limited to sandbox"), "{err}");
    let mut cmd = home.apns();
    cmd.env("APNS_ENV", "production");
    let err = fails(
        cmd,
        &["send", "--key", "app", "--alert", "hi", "--curl", DEVICE],
    )
    .await;
    assert!(err.contains("limited to sandbox"), "{err}");
    // Defaults: a profile for both environments sends to production.
    let curl = ok(
        home.apns(),
        &["send", "--key", "other", "--alert", "hi", "--curl", DEVICE],
    )
    .await;
    assert!(curl.contains("https://api.push.apple.com:443/"), "{curl}");
    // Flags override the profile's key id and team too.
    let decoded = ok(
        home.apns(),
        &[
            "token",
            "--key",
            "app",
            "--team-id",
            "FLAGTEAM01",
            "--decode",
            "--output",
            "json",
        ],
    )
    .await;
    assert!(decoded.contains("\"iss\":\"FLAGTEAM01\""), "{decoded}");
}

/// A whole scenario at TRACE: no private key, JWT or bearer value may reach
/// the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_never_hold_secrets() {
    let home = Home::new();
    let first = home.key(KEY_ID);
    let second = home.key("ROTATED001");
    let pem_lines: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let key = apns_provider::SigningKey::from_file(&first).unwrap();
    let rotated = apns_provider::SigningKey::from_file(&second).unwrap();
    let mock = mock_for(&key)
        .trust_key(
            apns_provider::mock::TrustedKey::new("ROTATED001", TEAM_ID, rotated.public_key())
                .unwrap(),
        )
        .start()
        .await
        .unwrap();
    let ca = home.dir.path().join("ca.pem");
    mock.write_ca_file(&ca).unwrap();
    let endpoint = mock.endpoint().to_string();
    let traced = |args: &[&str]| {
        let mut cmd = home.apns();
        cmd.env("RUST_LOG", "trace").arg("-vvv").args(args);
        cmd
    };
    let plain = write_file(home.dir.path(), "plain.p8", &std::fs::read(&first).unwrap());
    let send_args = [
        "send",
        "--key",
        "app",
        "--endpoint",
        &endpoint,
        "--ca-file",
        ca.to_str().unwrap(),
        "--alert",
        "hi",
        DEVICE,
    ];
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "key",
            "add",
            "app",
            "--key-file",
            first.to_str().unwrap(),
            "--team-id",
            TEAM_ID,
            "--topic",
            BUNDLE,
            "--store",
            "file",
        ],
        send_args.to_vec(),
        vec![
            "key",
            "rotate",
            "app",
            "--key-file",
            second.to_str().unwrap(),
        ],
        send_args.to_vec(),
        // An error path: a key the mock does not know.
        vec![
            "send",
            "--key-file",
            plain.to_str().unwrap(),
            "--key-id",
            "UNKNOWN001",
            "--team-id",
            TEAM_ID,
            "--topic",
            BUNDLE,
            "--endpoint",
            &endpoint,
            "--ca-file",
            ca.to_str().unwrap(),
            "--alert",
            "hi",
            DEVICE,
        ],
        vec!["key", "show", "app"],
    ];
    let mut all = String::new();
    for (i, args) in steps.iter().enumerate() {
        let out = run(traced(args)).await;
        let expected = if i == 4 { 1 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        all.push_str(&stdout(&out));
        all.push_str(&stderr(&out));
    }
    assert!(
        all.contains("TRACE") || all.contains("trace"),
        "logging really was at TRACE"
    );
    assert!(all.contains("InvalidProviderToken"), "the error path ran");
    assert_eq!(mock.accepted().len(), 2);
    for line in &pem_lines {
        assert!(
            !all.contains(line.as_str()),
            "private key material in the output"
        );
    }
    assert!(
        !all.contains("PRIVATE KEY"),
        "a private key PEM in the output"
    );
    assert!(!all.contains("eyJhbGciOiJFUzI1NiIs"), "a JWT in the output");
    assert!(
        !all.to_ascii_lowercase().contains("bearer ey"),
        "a bearer value in the output"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_and_remove_never_touch_a_key_file_outside_the_store() {
    let home = Home::new();
    let own = home.key(KEY_ID);
    let original = std::fs::read(&own).unwrap();
    std::fs::create_dir_all(home.dir.path().join("config")).unwrap();
    std::fs::write(
        home.dir.path().join("config/keys.toml"),
        format!(
            "[profiles.mine]\nteam_id = \"{TEAM_ID}\"\nkey_id = \"{KEY_ID}\"\nkey = \"file:{}\"\n",
            own.display()
        ),
    )
    .unwrap();
    let next = home.key("NEWKEY0001");
    ok(
        home.apns(),
        &[
            "key",
            "rotate",
            "mine",
            "--key-file",
            next.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        std::fs::read(&own).unwrap(),
        original,
        "the downloaded .p8 was not overwritten"
    );
    assert!(
        home.profiles().contains("data/apns/keys/mine.p8"),
        "{}",
        home.profiles()
    );
    ok(home.apns(), &["key", "remove", "mine", "--yes"]).await;
    assert!(own.exists(), "the user's own file is left in place");
    assert!(
        !home.dir.path().join("data/apns/keys/mine.p8").exists(),
        "the stored copy is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_list_columns_fit_their_longest_value() {
    let home = Home::new();
    let key = home.key("KEYLIST001");
    let key_arg = key.display().to_string();
    ok(
        home.apns(),
        &[
            "key",
            "add",
            "a-rather-long-profile-name",
            "--key-file",
            &key_arg,
            "--team-id",
            TEAM_ID,
            "--store",
            "file",
        ],
    )
    .await;
    let key2 = home.key("KEYLIST002");
    let key2_arg = key2.display().to_string();
    ok(
        home.apns(),
        &[
            "key",
            "add",
            "b",
            "--key-file",
            &key2_arg,
            "--team-id",
            TEAM_ID,
            "--store",
            "file",
        ],
    )
    .await;
    let table = ok(home.apns(), &["key", "list"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    // Every column starts at the same place on every line, whatever the
    // length of the file store's path.
    let at = |line: &str, what: &str| {
        line.find(what)
            .unwrap_or_else(|| panic!("{what} in {line}"))
    };
    let fingerprint_col = at(lines[0], "FINGERPRINT");
    for line in &lines[1..] {
        assert_eq!(at(line, "SHA256:"), fingerprint_col, "{table}");
        assert!(line.contains("file:"), "{table}");
    }
}
