//! Operators' CLI: bulk sends from a tokens file, results, summary and the
//! prune list, dry runs, curl export, token decoding, doctor, completions,
//! Ctrl-C, and the progress bar on a terminal only.

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::process::Stdio;

use crate::support::bulk::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_lines_with_unregistered_and_rejected_tokens() {
    // Lines i % 100 == 1 are unregistered; every 250th line asks for another
    // app's topic (TopicDisallowed); every 7th carries its own payload.
    let s = setup_with(|mut m| {
        for i in (1..=10_000u64).filter(|i| i % 100 == 1) {
            m = m.unregistered(&token(i), 1_700_000_000_000 + i);
        }
        m
    })
    .await;
    let file = s.dir.path().join("tokens.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    writeln!(f, "# exported from the device table").unwrap();
    for i in 1..=10_000u64 {
        if i % 250 == 0 {
            writeln!(
                f,
                r#"{{"device_token":"{}","topic":"com.other.app"}}"#,
                token(i)
            )
            .unwrap();
        } else if i % 7 == 0 {
            writeln!(f, r#"{{"device_token":"{}","payload":{{"aps":{{"alert":"line {i}"}}}},"priority":5}}"#, token(i)).unwrap();
        } else {
            writeln!(f, "{}", token(i)).unwrap();
        }
    }
    drop(f);
    let results = s.dir.path().join("results.jsonl");
    let prune = s.dir.path().join("prune.txt");
    let mut cmd = send(&s);
    cmd.args([
        "--alert",
        "hello",
        "--output",
        "json",
        "--concurrency",
        "200",
        "--tokens-file",
    ])
    .arg(&file)
    .arg("--results")
    .arg(&results)
    .arg("--unregistered-out")
    .arg(&prune);
    let out = run(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejections exit 1: {}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "results went to the file");

    let lines = read_json_lines(&results);
    assert_eq!(lines.len(), 10_000);
    let mut seen = BTreeSet::new();
    for r in &lines {
        // The comment is line 1, so token i is on line i + 1.
        let line = r["line"].as_u64().unwrap();
        let i = line - 1;
        assert!(seen.insert(line), "one result per line");
        assert_eq!(r["device_token"], token(i));
        if i % 100 == 1 {
            assert_eq!(
                (r["status"].as_u64(), r["reason"].as_str()),
                (Some(410), Some("Unregistered")),
                "{r}"
            );
            assert_eq!(r["timestamp"].as_u64(), Some(1_700_000_000_000 + i));
        } else if i % 250 == 0 {
            assert_eq!(
                (r["status"].as_u64(), r["reason"].as_str()),
                (Some(400), Some("TopicDisallowed")),
                "{r}"
            );
        } else {
            assert_eq!(r["status"].as_u64(), Some(200), "{r}");
            assert!(r["apns_id"].is_string());
        }
    }
    let sum = summary(&stderr(&out));
    assert_eq!(sum["total"], 10_000);
    assert_eq!(sum["accepted"], 9_860);
    assert_eq!(sum["rejected"], 140);
    assert_eq!(sum["rejected_by_reason"]["Unregistered"], 100);
    assert_eq!(sum["rejected_by_reason"]["TopicDisallowed"], 40);
    assert_eq!(sum["failed"], 0);
    assert_eq!(sum["unregistered"], 100);
    assert_eq!(sum["unregistered_tokens"].as_array().unwrap().len(), 100);

    let pruned: HashSet<String> = std::fs::read_to_string(&prune)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let expected: HashSet<String> = (1..=10_000u64)
        .filter(|i| i % 100 == 1)
        .map(token)
        .collect();
    assert_eq!(pruned, expected);

    // What the mock got: per-line payloads and priorities included.
    let accepted = s.mock.accepted();
    assert_eq!(accepted.len(), 9_860);
    let seven = accepted
        .iter()
        .find(|a| a.device_token == token(7))
        .unwrap();
    assert_eq!(seven.payload.as_ref(), br#"{"aps":{"alert":"line 7"}}"#);
    assert_eq!(seven.priority, Some(5));
    let eight = accepted
        .iter()
        .find(|a| a.device_token == token(8))
        .unwrap();
    assert_eq!(eight.payload.as_ref(), br#"{"aps":{"alert":"hello"}}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_bad_lines_with_their_numbers_and_sends_nothing() {
    let s = setup_with(|m| m).await;
    let file = write_file(
        s.dir.path(),
        "tokens.txt",
        format!(
            "{}\nxyz\n\n{}\n{{\"device_token\":\"abcd\",\"paylod\":{{}}}}\n{{\"device_token\":\"abcd\",\"payload\":{{\"aps\":{{\"alert\":\"{}\"}}}}}}\nabc\n{{\"device_token\":\"abcd\",\"priority\":10,\"push_type\":\"background\",\"payload\":{{\"aps\":{{\"content-available\":1}}}}}}\n",
            token(1),
            token(2),
            "a".repeat(5000)
        )
        .as_bytes(),
    );
    let mut cmd = apns();
    // An endpoint nothing listens on: a dry run never connects.
    cmd.arg("send")
        .arg("--key-file")
        .arg(&s.key_path)
        .args([
            "--team-id",
            TEAM_ID,
            "--topic",
            BUNDLE,
            "--endpoint",
            "https://127.0.0.1:1",
            "--alert",
            "hi",
            "--dry-run",
            "--tokens-file",
        ])
        .arg(&file);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    let expect = [
        ("line 1: ", "ok"),
        ("line 2: xyz", "invalid: invalid device_token"),
        ("line 4: ", "ok"),
        ("line 5: abcd", "unknown field `paylod`"),
        ("line 6: abcd", "4096-byte limit"),
        ("line 7: abc", "odd number"),
        ("line 8: abcd", "ok"),
    ];
    for (prefix, what) in expect {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} missing in {text}"));
        assert!(line.contains(what), "{line}");
    }
    assert!(
        text.contains("line 8:   warning: background pushes must use priority 5"),
        "{text}"
    );
    assert!(!text.contains("line 3:"), "blank lines are skipped");
    assert!(
        stderr(&out).contains("3 valid, 4 invalid; nothing was sent"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_export_hides_the_token_unless_revealed_and_works() {
    let s = setup_with(|m| m).await;
    let mut cmd = send(&s);
    cmd.args(["--alert", "it's here", "--priority", "5", "--curl", DEVICE]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("$(apns token --key-file")
            && text.contains(&format!("--key-id {KEY_ID} --team-id {TEAM_ID})")),
        "{text}"
    );
    assert!(
        text.contains("-H 'apns-priority: 5'")
            && text.contains(r#"-d '{"aps":{"alert":"it'\''s here"}}'"#),
        "{text}"
    );
    assert!(!text.contains("eyJ"), "no JWT without --reveal: {text}");
    assert!(s.mock.accepted().is_empty(), "--curl sends nothing");

    let mut cmd = send(&s);
    cmd.args(["--alert", "it's here", "--curl", "--reveal", DEVICE]);
    let revealed = stdout(&run(cmd).await);
    assert!(revealed.contains("bearer eyJ"), "{revealed}");
    let mut sh = std::process::Command::new("sh");
    crate::support::hermetic(&mut sh);
    sh.args([
        "-c",
        &format!("{} -sS -o /dev/null -w '%{{http_code}}'", revealed.trim()),
    ]);
    let out = run(sh).await;
    assert_eq!(stdout(&out), "200", "{}", stderr(&out));
    assert_eq!(
        s.mock.accepted()[0].payload.as_ref(),
        br#"{"aps":{"alert":"it's here"}}"#
    );
}

/// Sends `lines` tokens to a black-holed mock with `--timeout`, presses
/// Ctrl-C `presses` times (once a request is in the black hole, then every
/// 300 ms), and returns the
/// output, the result lines, and the line numbers that got one (checked to
/// be exactly 1..=k: every line read, none skipped).
async fn interrupted_send(
    lines: u64,
    timeout: &str,
    presses: u32,
) -> (std::process::Output, Vec<serde_json::Value>, u64) {
    let s = setup_with(|m| m.fault(apns_provider::mock::Fault::BlackHole)).await;
    let file = s.dir.path().join("tokens.txt");
    std::fs::write(
        &file,
        (1..=lines).map(|i| token(i) + "\n").collect::<String>(),
    )
    .unwrap();
    let results = s.dir.path().join("results.jsonl");
    let mut cmd = send(&s);
    cmd.args([
        "--alert",
        "hi",
        "--timeout",
        timeout,
        "--output",
        "json",
        "--tokens-file",
    ])
    .arg(&file)
    .arg("--results")
    .arg(&results)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id().to_string();
    // Once a request is stuck in the black hole, the Ctrl-C handler is in
    // place and sends are under way.
    wait_until_async(
        "a request is stuck in the black hole",
        std::time::Duration::from_secs(20),
        async || s.mock.stats().black_holed > 0,
    )
    .await;
    for press in 0..presses {
        if press > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let results = read_json_lines(&results);
    let numbers: BTreeSet<u64> = results
        .iter()
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers.len(), results.len(), "one result per line");
    let k = *numbers.iter().max().unwrap();
    assert_eq!(
        numbers,
        (1..=k).collect(),
        "every line read has a result, none skipped"
    );
    (out, results, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_intake_and_every_line_read_gets_a_result() {
    let (out, lines, k) = interrupted_send(5000, "1", 1).await;
    assert!(k < 5000, "intake stopped");
    for l in &lines {
        assert!(l["status"].is_null());
        let e = l["error"].as_str().unwrap();
        assert!(
            e.contains("timed out") || e.contains("not sent: interrupted"),
            "{e}\n{}",
            stderr(&out)
        );
    }
    let sum = summary(&stderr(&out));
    assert_eq!(sum["interrupted"], true);
    assert_eq!(sum["total"].as_u64(), Some(k));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_script, ignore = "needs script(1): apt install util-linux")]
async fn progress_bar_on_a_terminal_only() {
    let s = setup_with(|m| m).await;
    let file = s.dir.path().join("tokens.txt");
    std::fs::write(
        &file,
        (1..=3000u64).map(|i| token(i) + "\n").collect::<String>(),
    )
    .unwrap();
    let results = s.dir.path().join("results.jsonl");
    let cmdline = format!(
        "{} send --key-file {} --team-id {TEAM_ID} --topic {BUNDLE} --endpoint {} --ca-file {} --alert hi --tokens-file {} --results {}",
        env!("CARGO_BIN_EXE_apns"),
        s.key_path.display(),
        s.mock.endpoint(),
        s.ca_path.display(),
        file.display(),
        results.display()
    );
    // Under a pseudo-terminal (script(1) allocates one).
    let mut tty = program(Prerequisite::Script);
    tty.args(["-qefc", &cmdline, "/dev/null"]);
    let out = run(tty).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let screen = stdout(&out);
    assert!(screen.contains("\r\x1b[2K"), "redrawn in place: {screen:?}");
    assert!(
        screen.contains("3000/3000 100%") && screen.contains("errors 0"),
        "{screen:?}"
    );

    // In a pipe: no progress bar at all.
    let mut piped = std::process::Command::new("sh");
    crate::support::hermetic(&mut piped);
    piped.args(["-c", &cmdline]);
    let out = run(piped).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !stderr(&out).contains('\r') && !stderr(&out).contains("/s"),
        "{:?}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("3000 notification(s): 3000 accepted"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_decode_shows_claims_and_age_and_catches_a_wrong_key() {
    let s = setup_with(|m| m).await;
    let mut cmd = apns();
    cmd.arg("token")
        .arg("--key-file")
        .arg(&s.key_path)
        .args(["--team-id", TEAM_ID, "--decode"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(r#"{{"alg":"ES256","kid":"{KEY_ID}"}}"#)),
        "{text}"
    );
    assert!(
        text.contains(&format!(r#""iss":"{TEAM_ID}""#))
            && text.contains("0 s ago")
            && text.contains("valid for this key"),
        "{text}"
    );

    // A token from another key, through stdin, as JSON.
    let other = apns_provider::TokenSigner::new(
        new_key(),
        apns_provider::KeyId::new(KEY_ID).unwrap(),
        apns_provider::TeamId::new(TEAM_ID).unwrap(),
    )
    .sign_jwt(1_700_000_000);
    let mut cmd = apns();
    cmd.arg("token").arg("--key-file").arg(&s.key_path).args([
        "--team-id",
        TEAM_ID,
        "--decode",
        "--output",
        "json",
        "-",
    ]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(other.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["signature_valid"], false);
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("InvalidProviderToken") && problems.contains("ExpiredProviderToken"),
        "{problems}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_against_the_mock_and_explains_failures() {
    let s = setup_with(|m| m).await;
    let mut cmd = apns_with_key(&["doctor"], &s, &s.key_path);
    cmd.args(["--device-token", DEVICE]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    for check in ["clock", "key", "dns", "tcp", "tls", "alpn", "chain", "send"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("PASS") && l.contains(check)),
            "{check}: {text}"
        );
    }
    assert!(!text.contains("FAIL"));

    // A closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let mut cmd = apns();
    cmd.args(["doctor", "--endpoint", &url]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL  tcp") && text.contains("fix: is the server running?"),
        "{text}"
    );

    // The mock's certificate without its CA: untrusted.
    let mut cmd = apns();
    cmd.args([
        "doctor",
        "--output",
        "json",
        "--endpoint",
        &s.mock.endpoint().to_string(),
    ]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["ok"], false);
    let tls = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "tls")
        .unwrap();
    assert_eq!(tls["status"], "fail");
    assert!(tls["detail"]
        .as_str()
        .unwrap()
        .contains("not signed by a trusted root"));
    assert!(tls["fix"].as_str().unwrap().contains("--ca-file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_help_with_examples() {
    for shell in ["bash", "zsh", "fish"] {
        let mut cmd = apns();
        cmd.args(["completions", shell]);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stdout(&out).contains("apns") && stdout(&out).contains("tokens-file"),
            "{shell}"
        );
    }
    for sub in ["send", "token", "mock", "doctor", "bench"] {
        let mut cmd = apns();
        cmd.args([sub, "--help"]);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stdout(&out).contains("EXAMPLE"),
            "{sub} --help has examples"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_abandons_what_is_in_flight_with_a_result_each() {
    // Without the second Ctrl-C this would wait 60 s for the black hole.
    let started = std::time::Instant::now();
    let (_, lines, _) = interrupted_send(3000, "60", 2).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "it did not wait for the black hole"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["error"].as_str().unwrap().contains("shut down")),
        "abandoned sends are reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_that_cannot_be_written_fail_the_command() {
    let s = setup_with(|m| m).await;
    let mut cmd = send(&s);
    cmd.args(["--alert", "hi", "--results", "/dev/full", DEVICE, "abcd"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot write --results /dev/full: disk full"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_numbers_are_usage_errors_not_panics() {
    let s = setup_with(|m| m).await;
    for args in [
        vec![
            "--alert",
            "hi",
            "--expiration",
            "+99999999999999999d",
            DEVICE,
        ],
        vec!["--alert", "hi", "--timeout", "1e20", DEVICE],
        vec!["--alert", "hi", "--timeout", "NaN", DEVICE],
        vec![
            "--alert",
            "hi",
            "--connections",
            &u64::MAX.to_string(),
            DEVICE,
        ],
    ] {
        let mut cmd = send(&s);
        cmd.args(&args);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    for flag in ["--connections", "--payload-bytes"] {
        let mut cmd = apns();
        cmd.args(["bench", "--count", "10", flag, &u64::MAX.to_string()]);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", stderr(&out));
    }
    let mut cmd = apns();
    cmd.arg("token").arg("--key-file").arg(&s.key_path).args(["--team-id", TEAM_ID, "--decode", "eyJhbGciOiJFUzI1NiIsImtpZCI6IkFCQ0RFMTIzNDUifQ.eyJpc3MiOiJURUFNMTIzNDU2IiwiaWF0IjoxODQ0Njc0NDA3MzcwOTU1MTYxNX0.AAAA"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).contains("future"), "{}", stdout(&out));
}
