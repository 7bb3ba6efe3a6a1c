//! How a bulk send stops: an output that cannot be written (a full disk, a
//! closed pipe) stops intake at once and is named; the first Ctrl-C says
//! so at once, and after the second no request goes on the wire.

use std::io::{BufRead, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use apns_provider::mock::Fault;

use crate::support::bulk::*;
use crate::support::*;

/// More lines than a debug build sends in the time these tests allow.
const LINES: u64 = 30_000;

fn tokens_file(s: &Setup, lines: u64) -> std::path::PathBuf {
    let text: String = (1..=lines).map(|i| token(i) + "\n").collect();
    write_file(s.dir.path(), "tokens.txt", text.as_bytes())
}

/// Every line the summary counts, and that what it says was accepted is
/// what the mock accepted.
fn check_summary(s: &Setup, err: &str) -> serde_json::Value {
    let sum = summary(err);
    let n = |k: &str| sum[k].as_u64().unwrap();
    assert_eq!(
        n("total"),
        n("accepted") + n("rejected") + n("failed") + n("invalid") + n("not_sent"),
        "{sum}"
    );
    let stats = s.mock.stats();
    assert_eq!(n("accepted"), stats.requests - stats.rejected, "{sum}");
    assert!(
        n("not_sent") > 0,
        "lines read but not sent are counted: {sum}"
    );
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_intake_at_once_and_is_named() {
    let s = setup_with(|m| m).await;
    let file = tokens_file(&s, LINES);
    let mut cmd = send(&s);
    cmd.args([
        "--alert",
        "hi",
        "--output",
        "json",
        "--results",
        "/dev/full",
        "--tokens-file",
    ])
    .arg(&file);
    let out = run(cmd).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("cannot write --results /dev/full: disk full"),
        "names the file and the cause: {err}"
    );
    check_summary(&s, &err);
    assert!(
        s.mock.stats().requests < LINES / 3,
        "intake stopped: {} sent",
        s.mock.stats().requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_stops_intake_at_once_and_is_named() {
    // `apns send ... --output json | head -1`
    let s = setup_with(|m| m).await;
    let file = tokens_file(&s, LINES);
    let mut cmd = send(&s);
    cmd.args(["--alert", "hi", "--output", "json", "--tokens-file"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (out, first, closed_for) = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        drop(stdout);
        let closed = Instant::now();
        let out = child.wait_with_output().unwrap();
        (out, first, closed.elapsed())
    })
    .await
    .unwrap();
    assert!(first.contains("\"status\":200"), "{first}");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("cannot write the results to stdout: output closed"),
        "{err}"
    );
    check_summary(&s, &err);
    assert!(
        s.mock.stats().requests < LINES / 3,
        "intake stopped: {} sent after stdout closed",
        s.mock.stats().requests
    );
    assert!(closed_for < Duration::from_secs(10), "{closed_for:?}");
}

fn interrupt(pid: u32) {
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_ctrl_c_says_so_at_once_and_after_the_second_nothing_goes_on_the_wire() {
    let s = setup_with(|m| m.fault(Fault::BlackHole)).await;
    let file = tokens_file(&s, 3000);
    let results = s.dir.path().join("results.jsonl");
    let mut cmd = send(&s);
    cmd.args([
        "--alert",
        "hi",
        "--timeout",
        "60",
        "--output",
        "json",
        "--tokens-file",
    ])
    .arg(&file)
    .arg("--results")
    .arg(&results)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let _guard = KillOnPanic(pid);
    // stderr, line by line, as it comes.
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        let mut pending = String::new();
        while let Ok(n) = stderr_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            pending.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(i) = pending.find('\n') {
                let line: String = pending.drain(..=i).collect();
                all.push_str(&line);
                let _ = tx.send(line);
            }
        }
        all + &pending
    });
    // Requests are on the wire (and stuck in the black hole).
    wait_until_async(
        "a request is in the black hole",
        Duration::from_secs(20),
        async || s.mock.stats().black_holed >= 1,
    )
    .await;
    interrupt(pid);
    let said = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(line) = lines.recv().await {
            if line.contains("interrupted") {
                return line;
            }
        }
        String::new()
    })
    .await
    .expect("the first Ctrl-C is answered at once, not after the 60-s timeout");
    // The count is what was in flight at that moment: at most the
    // concurrency (500), at least the one stuck in the black hole.
    let in_flight: u64 = said
        .split("waiting up to 60s for ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!((1..=500).contains(&in_flight), "{said}");
    assert!(
        said.starts_with("apns: interrupted: no new sends; waiting up to 60s for ")
            && said
                .trim_end()
                .ends_with(" in flight (Ctrl-C again to abandon)"),
        "{said}"
    );
    interrupt(pid);
    // Once the second press is answered, whatever was written before it has
    // reached the mock within a moment; nothing may follow.
    tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(line) = lines.recv().await {
            if line.contains("abandoning") {
                return;
            }
        }
    })
    .await
    .expect("the second Ctrl-C is answered at once");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let on_the_wire = s.mock.stats().black_holed;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not wait for the black hole"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.mock.stats().black_holed,
        on_the_wire,
        "no request went on the wire after the second Ctrl-C"
    );
    // Every line read has exactly one result line.
    let results = read_json_lines(&results);
    let mut numbers: Vec<u64> = results
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    numbers.sort();
    let k = numbers.len() as u64;
    assert_eq!(numbers, (1..=k).collect::<Vec<_>>());
    assert_eq!(summary(&err)["total"].as_u64(), Some(k));
}
