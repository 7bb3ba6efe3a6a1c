//! A key or a password written into the profile file itself is refused
//! and never printed, by any command that reads the profile.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_passwords_inlined_in_profiles_are_never_printed() {
    let dir = temp_dir();
    let pem = new_key_pem();
    let password = "hunter2-Zq9-not-for-printing";
    let one_line = pem.trim_end().replace('\n', "\\n");
    let profiles = format!(
        "[profiles.inline]\nteam_id = \"{TEAM_ID}\"\nkey_id = \"{KEY_ID}\"\ntopic = \"{BUNDLE}\"\nkey = \"\"\"\n{pem}\"\"\"\n\n\
         [profiles.oneline]\nteam_id = \"{TEAM_ID}\"\nkey_id = \"{KEY_ID}\"\nkey = \"{one_line}\"\n\n\
         [profiles.cert]\nenvironment = \"sandbox\"\ncertificate = \"file:/nonexistent/push.p12\"\npassword = \"{password}\"\n\n\
         [profiles.certkey]\nenvironment = \"sandbox\"\ncertificate = \"file:/nonexistent/push.pem\"\ncertificate_key = \"\"\"\n{pem}\"\"\"\n"
    );
    let config = write_file(dir.path(), "keys.toml", profiles.as_bytes());
    let new_key = write_file(
        dir.path(),
        "AuthKey_NEWKEY0001.p8",
        new_key_pem().as_bytes(),
    );
    // Any line of the key's body, or the password, is a leak.
    let secrets: Vec<&str> = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .chain([password])
        .collect();
    let apns_with = |args: &[&str]| {
        let mut cmd = apns();
        cmd.env("APNS_CONFIG", &config)
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env_remove("APNS_PROFILE")
            .arg("-vvv")
            .args(args);
        cmd
    };
    let refused = |profile: &str| format!("the key inlined in profile \"{profile}\"");
    let send = |profile: &'static str| {
        vec![
            "send",
            "--key",
            profile,
            "--endpoint",
            "https://127.0.0.1:1",
            "--alert",
            "hi",
            DEVICE,
        ]
    };
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (vec!["key", "list"], 0, "inline".into()),
        (
            vec!["key", "list", "--output", "json"],
            0,
            "\"store\":\"inline\"".into(),
        ),
        (vec!["key", "show", "inline"], 2, refused("inline")),
        (send("inline"), 2, refused("inline")),
        (send("oneline"), 2, refused("oneline")),
        (send("certkey"), 2, refused("certkey")),
        (
            send("cert"),
            2,
            "the password inlined in profile \"cert\"".into(),
        ),
        (vec!["token", "--key", "inline"], 2, refused("inline")),
        (vec!["mock", "--trust-key", "inline"], 2, refused("inline")),
        (
            vec!["mock", "--trust-key", "oneline"],
            2,
            refused("oneline"),
        ),
        (
            vec![
                "doctor",
                "--key",
                "inline",
                "--endpoint",
                "https://127.0.0.1:1",
            ],
            2,
            refused("inline"),
        ),
        (
            vec![
                "key",
                "rotate",
                "inline",
                "--key-file",
                new_key.to_str().unwrap(),
            ],
            2,
            refused("inline"),
        ),
    ];
    for (args, code, says) in cases {
        let out = run(apns_with(&args)).await;
        let text = stdout(&out) + &stderr(&out);
        for secret in &secrets {
            assert!(!text.contains(secret), "{args:?} printed a secret: {text}");
        }
        assert_eq!(out.status.code(), Some(code), "{args:?}: {text}");
        assert!(text.contains(&says), "{args:?} should say {says:?}: {text}");
    }
    // The profile file itself was left as it was.
    assert_eq!(std::fs::read_to_string(&config).unwrap(), profiles);
}
