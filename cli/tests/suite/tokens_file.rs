//! Tokens files as they come: a byte order mark, Latin-1 comments, bytes
//! that are not UTF-8, a line of 80,000 hex digits. Each bad line is an
//! error of its own, every other line is sent, and every line gets exactly
//! one result line. Outputs never overwrite the tokens file.

use std::collections::BTreeMap;

use crate::support::bulk::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_lines_are_errors_of_their_own_and_every_line_gets_one_result() {
    let s = setup_with(|m| m).await;
    const LINES: u64 = 3000;
    const HUGE: u64 = 1500;
    const NOT_UTF8: u64 = 2000;
    let mut bytes = b"\xEF\xBB\xBF".to_vec(); // a BOM before line 1
    for i in 1..=LINES {
        match i {
            2 => bytes.extend(b"# caf\xe9 (a Latin-1 comment)"),
            HUGE => bytes.extend("ab".repeat(40_000).as_bytes()),
            NOT_UTF8 => bytes.extend(b"00fc13ad\xff"),
            _ => bytes.extend(token(i).as_bytes()),
        }
        bytes.push(b'\n');
    }
    let file = write_file(s.dir.path(), "tokens.txt", &bytes);
    let results = s.dir.path().join("results.jsonl");
    let mut cmd = send(&s);
    cmd.args(["--alert", "hi", "--output", "json", "--tokens-file"])
        .arg(&file)
        .arg("--results")
        .arg(&results);
    let out = run(cmd).await;
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(
        out.status.code(),
        Some(2),
        "invalid lines: {}",
        stderr(&out)
    );

    let text = std::fs::read_to_string(&results).unwrap();
    let mut by_line = BTreeMap::new();
    for raw in text.lines() {
        assert!(
            raw.len() < 1024,
            "a result line echoes at most an excerpt: {} bytes",
            raw.len()
        );
        let r: serde_json::Value = serde_json::from_str(raw).unwrap();
        let line = r["line"].as_u64().unwrap();
        assert!(
            by_line.insert(line, r).is_none(),
            "one result for line {line}"
        );
    }
    let expected: Vec<u64> = (1..=LINES).filter(|i| *i != 2).collect();
    assert_eq!(
        by_line.keys().copied().collect::<Vec<_>>(),
        expected,
        "every line but the comment"
    );
    let error = |line: u64| {
        by_line[&line]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        error(HUGE).contains("device token too long"),
        "{}",
        by_line[&HUGE]
    );
    assert!(
        error(NOT_UTF8).contains("not UTF-8") && error(NOT_UTF8).contains("0xff"),
        "{}",
        by_line[&NOT_UTF8]
    );
    for (line, r) in &by_line {
        if *line != HUGE && *line != NOT_UTF8 {
            assert_eq!(
                r["status"], 200,
                "line {line} (line 1 despite its BOM): {r}"
            );
            assert_eq!(r["device_token"], token(*line));
        }
    }
    let sum = summary(&stderr(&out));
    assert_eq!(
        (sum["accepted"].as_u64(), sum["invalid"].as_u64()),
        (Some(LINES - 3), Some(2))
    );
    assert_eq!(
        s.mock.stats().requests,
        LINES - 3,
        "the bad lines never reached the server"
    );
}

/// Runs `apns send` over a tokens file with `outputs` (flag, path) and
/// checks it is refused before anything is read or written.
async fn refused(
    s: &Setup,
    tokens: &std::path::Path,
    outputs: &[(&str, std::path::PathBuf)],
    flags: [&str; 2],
) {
    let before = std::fs::read(tokens).unwrap();
    let mut cmd = send(s);
    cmd.args(["--alert", "hi", "--tokens-file"]).arg(tokens);
    for (flag, path) in outputs {
        cmd.arg(flag).arg(path);
    }
    let out = run(cmd).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{outputs:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(flags[0]) && err.contains(flags[1]) && err.contains("is the same file as"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(tokens).unwrap(),
        before,
        "the tokens file is intact"
    );
    assert_eq!(s.mock.stats().requests, 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_that_are_the_tokens_file_or_each_other_are_refused_before_anything_happens() {
    let s = setup_with(|m| m).await;
    let dir = s.dir.path();
    let tokens = write_file(
        dir,
        "tokens.txt",
        (1..=50)
            .map(|i| token(i) + "\n")
            .collect::<String>()
            .as_bytes(),
    );
    let link = dir.join("link.txt");
    std::os::unix::fs::symlink(&tokens, &link).unwrap();
    let hard = dir.join("hard.txt");
    std::fs::hard_link(&tokens, &hard).unwrap();
    let dotted = dir.join(".").join("tokens.txt");
    refused(
        &s,
        &tokens,
        &[("--results", tokens.clone())],
        ["--results", "--tokens-file"],
    )
    .await;
    refused(
        &s,
        &tokens,
        &[("--results", dotted)],
        ["--results", "--tokens-file"],
    )
    .await;
    refused(
        &s,
        &tokens,
        &[("--results", link)],
        ["--results", "--tokens-file"],
    )
    .await;
    refused(
        &s,
        &tokens,
        &[
            ("--results", dir.join("r.jsonl")),
            ("--unregistered-out", hard),
        ],
        ["--unregistered-out", "--tokens-file"],
    )
    .await;
    // Two outputs naming one file, which did not exist before: refused,
    // and not left behind.
    let out = dir.join("out.txt");
    refused(
        &s,
        &tokens,
        &[
            ("--results", out.clone()),
            ("--unregistered-out", dir.join(".").join("out.txt")),
        ],
        ["--unregistered-out", "--results"],
    )
    .await;
    assert!(!out.exists());
    // Devices are not files: both outputs may be /dev/null.
    let mut cmd = send(&s);
    cmd.args([
        "--alert",
        "hi",
        "--results",
        "/dev/null",
        "--unregistered-out",
        "/dev/null",
        "--tokens-file",
    ])
    .arg(&tokens);
    let ok = run(cmd).await;
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(s.mock.stats().requests, 50);
}

/// A FIFO can be read only once: the tokens file is read once (its lines
/// are counted in a first pass only for a progress bar, and not here, where
/// stderr is no terminal), so every line is sent.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_mkfifo, ignore = "needs mkfifo: apt install coreutils")]
async fn a_fifo_as_the_tokens_file_is_read_once_and_every_line_is_sent() {
    let s = setup_with(|m| m).await;
    const LINES: u64 = 300;
    let fifo = s.dir.path().join("tokens.fifo");
    let made = program(Prerequisite::Mkfifo).arg(&fifo).status().unwrap();
    assert!(made.success());
    // Written once, as a producer piping into apns would: opening blocks
    // until apns opens the other end.
    let writer = std::thread::spawn({
        let fifo = fifo.clone();
        move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            for i in 1..=LINES {
                if i % 2 == 0 {
                    writeln!(f, "{{\"device_token\":\"{}\"}}", token(i)).unwrap();
                } else {
                    writeln!(f, "{}", token(i)).unwrap();
                }
            }
        }
    });
    let results = s.dir.path().join("results.jsonl");
    let mut cmd = send(&s);
    cmd.args(["--alert", "hi", "--output", "json", "--tokens-file"])
        .arg(&fifo)
        .arg("--results")
        .arg(&results);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    writer.join().unwrap();
    let lines = read_json_lines(&results);
    assert_eq!(lines.len() as u64, LINES, "one result per line");
    // Results come as sends complete: matched by line number.
    let mut numbers = Vec::new();
    for r in &lines {
        let i = r["line"].as_u64().unwrap();
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["device_token"], token(i), "{r}");
        numbers.push(i);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=LINES).collect::<Vec<_>>());
    assert_eq!(s.mock.stats().requests, LINES);
}
