//! `apns send --resume`: a bulk send cut short (killed, interrupted, an
//! outage) is finished from its results file without sending anything
//! twice; what counts as finished; and the usage errors.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use apns_provider::mock::Fault;

use crate::support::bulk::*;
use crate::support::*;

fn tokens_file(s: &Setup, lines: u64) -> std::path::PathBuf {
    let text: String = (1..=lines).map(|i| token(i) + "\n").collect();
    write_file(s.dir.path(), "tokens.txt", text.as_bytes())
}

/// Complete lines in a file being written.
fn complete_lines(path: &std::path::Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_is_finished_by_resume_without_sending_anything_twice() {
    const LINES: u64 = 3000;
    let s = setup_with(|m| m).await;
    let file = tokens_file(&s, LINES);
    let results = s.dir.path().join("results.jsonl");
    let args = |cmd: &mut std::process::Command| {
        cmd.args([
            "--alert",
            "hi",
            "--timeout",
            "60",
            "--concurrency",
            "100",
            "--tokens-file",
        ])
        .arg(&file)
        .arg("--results")
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    };
    let mut cmd = send(&s);
    args(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let _guard = KillOnPanic(child.id());
    // Part way through, the server stops answering: sends hang on the
    // wire, as in an outage.
    wait_until_async(
        "500 requests reached the mock",
        Duration::from_secs(30),
        async || s.mock.stats().requests >= 500,
    )
    .await;
    s.mock.inject(Fault::BlackHole);
    // Once every answer is in the results file (flushed within a second),
    // the process dies without a chance to write anything more.
    let answered = || s.mock.accepted().len() as u64;
    wait_until_async(
        "a request is in the black hole and every answer has its result line",
        Duration::from_secs(10),
        async || s.mock.stats().black_holed > 0 && complete_lines(&results) == answered(),
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let first_run = s.mock.accepted().len() as u64;
    assert!((500..LINES).contains(&first_run), "{first_run}");
    // ... and a crash mid-write left half a line.
    let mut damaged = std::fs::read(&results).unwrap();
    damaged.extend(br#"{"line":2999,"device_token":"0000"#);
    std::fs::write(&results, damaged).unwrap();

    s.mock.clear_faults();
    let mut cmd = send(&s);
    args(&mut cmd);
    cmd.arg("--resume")
        .arg("--output")
        .arg("json")
        .stderr(Stdio::piped());
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("removed the damaged last line"),
        "{}",
        stderr(&out)
    );
    let sum = summary(&stderr(&out));
    assert_eq!(sum["skipped"].as_u64(), Some(first_run), "{sum}");
    assert_eq!(sum["accepted"].as_u64(), Some(LINES - first_run), "{sum}");

    // At the server: every token accepted exactly once over both runs.
    let mut times: BTreeMap<String, u32> = BTreeMap::new();
    for a in s.mock.accepted() {
        *times.entry(a.device_token.to_string()).or_default() += 1;
    }
    assert_eq!(times.len() as u64, LINES);
    assert!(
        times.values().all(|n| *n == 1),
        "a notification was sent twice"
    );
    // In the results: valid JSON lines only, one acceptance per line.
    let mut accepted_lines: Vec<u64> = read_json_lines(&results)
        .iter()
        .filter(|r| r["status"] == 200)
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    accepted_lines.sort();
    assert_eq!(accepted_lines, (1..=LINES).collect::<Vec<_>>());
}

/// A result line as `apns send` writes it.
fn result(
    line: u64,
    status: Option<u16>,
    reason: Option<&str>,
    error: Option<(&str, bool)>,
) -> String {
    let mut v = serde_json::json!({
        "line": line,
        "device_token": token(line),
        "status": status,
        "apns_id": status.map(|_| "6e0f5d77-0000-4000-8000-000000000000"),
        "reason": reason,
        "timestamp": null,
    });
    if let Some((e, maybe)) = error {
        v["error"] = e.into();
        v["may_have_been_delivered"] = maybe.into();
    }
    v.to_string() + "\n"
}

fn accepted_tokens(s: &Setup) -> Vec<String> {
    let mut t: Vec<String> = s
        .mock
        .accepted()
        .iter()
        .map(|a| a.device_token.to_string())
        .collect();
    t.sort();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_skips_finished_lines_and_may_have_been_delivered_ones_unless_asked() {
    let s = setup_with(|m| m.unregistered(&token(7), 1_700_000_000_000)).await;
    let file = tokens_file(&s, 8);
    let earlier = [
        result(1, Some(200), None, None),
        result(2, Some(410), Some("Unregistered"), None),
        result(3, Some(503), Some("ServiceUnavailable"), None),
        result(4, None, None, Some(("request timed out after 30s", true))),
        result(5, None, None, Some(("not sent: interrupted", false))),
        result(
            6,
            None,
            None,
            Some(("invalid device_token: odd number of digits", false)),
        ),
        result(8, Some(403), Some("InvalidProviderToken"), None),
    ]
    .concat();
    let results = write_file(s.dir.path(), "results.jsonl", earlier.as_bytes());
    let prune = write_file(
        s.dir.path(),
        "prune.txt",
        format!("{}\n", token(2)).as_bytes(),
    );
    let resume = |extra: &[&str]| {
        let mut cmd = send(&s);
        cmd.args([
            "--alert",
            "hi",
            "--output",
            "json",
            "--resume",
            "--tokens-file",
        ])
        .arg(&file)
        .arg("--results")
        .arg(&results)
        .arg("--unregistered-out")
        .arg(&prune)
        .args(extra);
        cmd
    };
    let out = run(resume(&[])).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "line 7 is unregistered: {}",
        stderr(&out)
    );
    let sum = summary(&stderr(&out));
    assert_eq!(sum["skipped"], 2, "lines 1 and 2: {sum}");
    assert_eq!(sum["skipped_may_have_been_delivered"], 1, "line 4: {sum}");
    assert_eq!(sum["total"], 5, "{sum}");
    // A transient rejection, an interruption, an invalid line since fixed
    // and a credentials error are sent again; line 7 for the first time.
    assert_eq!(accepted_tokens(&s), [3, 5, 6, 8].map(token));
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(text.starts_with(&earlier), "appended, not rewritten");
    assert_eq!(text.lines().count(), 7 + 5);
    assert_eq!(
        std::fs::read_to_string(&prune).unwrap(),
        format!("{}\n{}\n", token(2), token(7)),
        "the prune list is appended to"
    );

    // At-least-once: the line that may have been delivered, and nothing else.
    let out = run(resume(&["--resend-unknown"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sum = summary(&stderr(&out));
    assert_eq!(
        (sum["skipped"].as_u64(), sum["total"].as_u64()),
        (Some(7), Some(1)),
        "{sum}"
    );
    assert_eq!(accepted_tokens(&s), [3, 4, 5, 6, 8].map(token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_without_a_results_file_of_json_lines_is_a_usage_error() {
    let s = setup_with(|m| m).await;
    let file = tokens_file(&s, 20);
    let not_results = write_file(s.dir.path(), "copy.txt", &std::fs::read(&file).unwrap());
    let cases: [(Vec<&std::ffi::OsStr>, &str); 4] = [
        (vec![], "--resume needs --tokens-file and --results"),
        (
            vec!["--results".as_ref(), not_results.as_os_str()],
            "is not a results file",
        ),
        (
            vec![
                "--results".as_ref(),
                not_results.as_os_str(),
                DEVICE.as_ref(),
            ],
            "no line numbers",
        ),
        (
            vec!["--results".as_ref(), "/dev/zero".as_ref()],
            "not a regular file",
        ),
    ];
    for (extra, says) in cases {
        let mut cmd = send(&s);
        cmd.args(["--alert", "hi", "--resume", "--tokens-file"])
            .arg(&file)
            .args(&extra);
        let out = run(cmd).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(says) && err.lines().count() == 1, "{err}");
    }
    assert_eq!(
        std::fs::read(&not_results).unwrap(),
        std::fs::read(&file).unwrap(),
        "left intact"
    );
    assert_eq!(s.mock.stats().requests, 0);
}
