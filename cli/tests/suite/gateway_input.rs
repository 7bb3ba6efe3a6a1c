//! `apns serve`'s request input over real sockets: a huge array is counted
//! while it is parsed (peak memory bounded, read from /proc), duplicate
//! JSON keys are refused in every body, and the API token file is read off
//! the request path (a FIFO or a deleted file never freezes or opens the
//! gateway; BOM, comments, inner spaces).

use std::time::Duration;

use serde_json::json;

use crate::support::bulk::{self, KillOnPanic};
use crate::support::web::{self, *};
use crate::support::*;

/// The peak resident memory (VmHWM) of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs Linux's /proc to read peak memory from"
)]
async fn a_64_mib_array_is_refused_at_max_items_plus_one_within_a_small_multiple_of_max_body() {
    assert!(
        std::path::Path::new("/proc/self/status").exists(),
        "no /proc to read peak memory from"
    );
    let (_s, serve) = start(&["--max-body", "64MiB", "--max-items", "10000"]).await;
    // Warm up: one small request, so the baseline holds the process's own
    // working set.
    let a = post(&serve, Some(TOKEN), &json!([0])).await;
    assert_eq!(a.status, 422, "{}", a.text());
    let before = peak_rss(serve.pid());
    // `[0,0,...,0]`: 64 MiB, 32 million items.
    let max = 64 * MIB as usize;
    let mut body = Vec::with_capacity(max);
    body.push(b'[');
    while body.len() + 4 <= max {
        body.extend_from_slice(b"0,");
    }
    body.push(b'0');
    body.push(b']');
    assert!(body.len() <= max);
    let a = web::request(&serve.base, "POST", "/v1/notifications", Some(TOKEN), &body).await;
    let after = peak_rss(serve.pid());
    assert_eq!(a.status, 413, "{}", a.text());
    let error = a.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("notifications in one request; at most 10000"),
        "{error}"
    );
    let grew = after.saturating_sub(before);
    eprintln!(
        "gateway peak RSS: {} MiB before, {} MiB after a {} MiB body (+{} MiB, {:.2} x max-body)",
        before / MIB,
        after / MIB,
        body.len() as u64 / MIB,
        grew / MIB,
        grew as f64 / (64 * MIB) as f64
    );
    // A small multiple of --max-body (the body itself, read once).
    assert!(
        grew < 3 * 64 * MIB,
        "the peak grew by {} MiB for one 64 MiB body",
        grew / MIB
    );
    let (code, err) = serve.stop().await;
    assert_eq!(code, Some(0), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_given_twice_is_refused_in_every_body_naming_it() {
    let (s, serve) = start(&[]).await;
    let post_raw = |path: &'static str, body: String| {
        let base = serve.base.clone();
        async move { web::request(&base, "POST", path, Some(TOKEN), body.as_bytes()).await }
    };
    let payload = r#"{"aps":{"alert":"hi"}}"#;
    // At the top of a single object: serde_json alone keeps the last copy.
    let a = post_raw(
        "/v1/notifications",
        format!(r#"{{"device_token":"{DEVICE}","device_token":"dead0000","payload":{payload}}}"#),
    )
    .await;
    assert_eq!(a.status, 422, "{}", a.text());
    let e = &a.json()["errors"][0];
    assert_eq!(
        (e["index"].clone(), e["field"].clone()),
        (json!(0), json!("device_token"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(r#"duplicate key "device_token""#),
        "{e}"
    );
    // Deep in an item's payload, in an array: that item, that field.
    let a = post_raw(
        "/v1/notifications",
        format!(
            r#"[{{"device_token":"{DEVICE}","payload":{payload}}},{{"device_token":"{DEVICE}","payload":{{"aps":{{"alert":{{"title":"a","title":"b"}}}}}}}}]"#
        ),
    )
    .await;
    assert_eq!(a.status, 422, "{}", a.text());
    let v = a.json();
    assert_eq!(v["invalid"], 1, "{v}");
    let e = &v["errors"][0];
    assert_eq!(
        (e["index"].clone(), e["field"].clone()),
        (json!(1), json!("payload"))
    );
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(r#"duplicate key "title" in an object at depth 3"#),
        "{message}"
    );
    // A broadcast's fields, and its payload.
    let channel = "dHN0LWNoYW5uZWwtaWQ=";
    for (body, field, key) in [
        (
            format!(
                r#"{{"channel_id":"{channel}","payload":{payload},"priority":5,"priority":10}}"#
            ),
            "priority",
            "priority",
        ),
        (
            format!(
                r#"{{"channel_id":"{channel}","payload":{{"aps":{{"event":"update","event":"end"}}}}}}"#
            ),
            "payload",
            "event",
        ),
    ] {
        let a = post_raw("/v1/broadcasts", body).await;
        assert_eq!(a.status, 422, "{}", a.text());
        assert_eq!(a.json()["field"], field, "{}", a.text());
        let error = a.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains(&format!("duplicate key \"{key}\"")),
            "{error}"
        );
    }
    assert!(s.mock.accepted().is_empty(), "nothing was sent");
    assert!(s.mock.broadcasts().is_empty(), "nothing was broadcast");
    // Equal keys in different objects are fine.
    let a = post_raw(
        "/v1/notifications",
        format!(r#"[{{"device_token":"{DEVICE}","payload":{payload}}},{{"device_token":"{DEVICE}","payload":{payload}}}]"#),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let (code, err) = serve.stop().await;
    assert_eq!(code, Some(0), "{err}");
}

/// Writes `text` beside `path` and renames it in (as rotation tools do),
/// private.
fn replace(path: &std::path::Path, text: &str) {
    let dir = path.parent().unwrap();
    let tmp = write_file(dir, "api-tokens.new", text.as_bytes());
    std::fs::rename(tmp, path).unwrap();
}

/// `request`, or `None` when no answer comes within `limit` (on a gateway
/// that waits for its token file).
async fn within(
    limit: Duration,
    answer: impl std::future::Future<Output = Answer>,
) -> Option<Answer> {
    tokio::time::timeout(limit, answer).await.ok()
}

/// Stops `serve` with SIGTERM; panics (after killing it) when it has not
/// exited within `limit`.
async fn stop_within(serve: ServeProcess, limit: Duration) -> (Option<i32>, String) {
    let pid = serve.pid();
    match tokio::time::timeout(limit, serve.stop()).await {
        Ok(done) => done,
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("apns serve did not exit within {limit:?} of SIGTERM");
        }
    }
}

fn mkfifo(path: &std::path::Path) -> bool {
    program(Prerequisite::Mkfifo)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_mkfifo, ignore = "needs mkfifo: apt install coreutils")]
async fn a_token_file_replaced_by_a_fifo_never_delays_a_request_nor_the_exit() {
    let (s, serve) = start(&[]).await;
    let file = s.dir.path().join("api-tokens");
    assert!(file.is_file(), "serve_cmd's token file");
    let ten = Duration::from_secs(10);
    let a = within(ten, post(&serve, Some(TOKEN), &alert(DEVICE)))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    // The file becomes a FIFO nobody writes to: opening it never returns.
    std::fs::remove_file(&file).unwrap();
    assert!(mkfifo(&file));
    // The reader notices its read is stuck (after 5 s), and says so.
    wait_until_async(
        "serve WARNs about the stuck read",
        Duration::from_secs(30),
        async || serve.stderr.lock().unwrap().contains("has not finished"),
    )
    .await;
    // Every request is still answered, with the tokens read last.
    for _ in 0..3 {
        let a = within(ten, web::request(&serve.base, "GET", "/healthz", None, b""))
            .await
            .expect("/healthz answers while the token file's read is stuck");
        assert_eq!(a.status, 200);
        let a = within(ten, post(&serve, Some(TOKEN), &alert(DEVICE)))
            .await
            .expect("an authenticated request answers while the read is stuck");
        assert_eq!(a.status, 200, "{}", a.text());
        let a = within(
            ten,
            post(&serve, Some("gw-token-0123456789abcdeX"), &alert(DEVICE)),
        )
        .await
        .expect("a refused request answers too");
        assert_eq!(a.status, 401);
    }
    let err = serve.stderr.lock().unwrap().clone();
    assert_eq!(
        err.matches("has not finished").count(),
        1,
        "warned once: {err}"
    );
    assert!(!err.contains(TOKEN), "the token never shows: {err}");
    // SIGTERM: the stuck read does not hold the exit.
    let (code, err) = stop_within(serve, Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s.mock.accepted().len(), 4);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_mkfifo, ignore = "needs mkfifo: apt install coreutils")]
async fn a_fifo_as_the_token_file_is_refused_at_start() {
    let s = bulk::setup_with(|m| m).await;
    let fifo = s.dir.path().join("api-tokens");
    assert!(mkfifo(&fifo));
    let mut child = serve_cmd_with(&s, "127.0.0.1:0", &fifo, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = KillOnPanic(child.id());
    let mut status = None;
    wait_until_async(
        "apns serve exits rather than wait on a FIFO for its token file",
        Duration::from_secs(30),
        async || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    )
    .await;
    let status = status.unwrap();
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_file_fails_closed_once_and_recovers() {
    let s = bulk::setup_with(|m| m).await;
    let second = "abc#def-0123456789abcdef";
    // A BOM; a comment after a token; a '#' inside one; inner spaces.
    let text =
        format!("\u{feff}{TOKEN}  # CI deploys\n# ops\n{second}\nsecret part-one-0123456789\n");
    let file = write_file(s.dir.path(), "api-tokens", text.as_bytes());
    let serve = spawn_serve(serve_cmd_with(&s, "127.0.0.1:0", &file, &[]));
    for t in [TOKEN, second] {
        let a = post(&serve, Some(t), &alert(DEVICE)).await;
        assert_eq!(a.status, 200, "{t}: {}", a.text());
    }
    for t in [
        format!("{TOKEN}  # CI deploys"),
        "abc".into(),
        "secret part-one-0123456789".into(),
        "part-one-0123456789".into(),
    ] {
        let a = post(&serve, Some(&t), &alert(DEVICE)).await;
        assert_eq!(a.status, 401, "{t}: {}", a.text());
    }
    {
        let err = serve.stderr.lock().unwrap();
        assert!(
            err.contains("line 4 ignored: it holds a space or a tab inside"),
            "{err}"
        );
        assert!(
            !err.contains("secret") && !err.contains("part-one"),
            "never quoted: {err}"
        );
    }

    // Deleted: every request is refused, after one WARN.
    std::fs::remove_file(&file).unwrap();
    let refused = "every request is refused (401)";
    wait_until_async(
        "serve WARNs that every request is refused",
        Duration::from_secs(30),
        async || serve.stderr.lock().unwrap().contains(refused),
    )
    .await;
    let a = post(&serve, Some(TOKEN), &alert(DEVICE)).await;
    assert_eq!(a.status, 401, "{}", a.text());
    assert_eq!(
        web::request(&serve.base, "GET", "/healthz", None, b"")
            .await
            .status,
        200
    );
    // Several rechecks later, still one WARN, still closed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(post(&serve, Some(TOKEN), &alert(DEVICE)).await.status, 401);
    assert_eq!(
        serve.stderr.lock().unwrap().matches(refused).count(),
        1,
        "{}",
        serve.stderr.lock().unwrap()
    );

    // Back: accepted again, and said so.
    replace(&file, &format!("{TOKEN}\n"));
    wait_until_async(
        "a request is accepted again",
        Duration::from_secs(30),
        async || post(&serve, Some(TOKEN), &alert(DEVICE)).await.status == 200,
    )
    .await;
    assert!(serve.stderr.lock().unwrap().contains("readable again"));
    let (code, err) = serve.stop().await;
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_file_line_with_a_key_twice_is_an_invalid_line_sent_or_dry_run() {
    let s = bulk::setup_with(|m| m).await;
    let file = write_file(
        s.dir.path(),
        "tokens.jsonl",
        format!(
            "{{\"device_token\":\"{DEVICE}\"}}\n{{\"device_token\":\"{DEVICE}\",\"device_token\":\"dead0000\"}}\n{{\"device_token\":\"{DEVICE}\",\"payload\":{{\"aps\":{{\"alert\":\"a\",\"alert\":\"b\"}}}}}}\n"
        )
        .as_bytes(),
    );
    for dry_run in [true, false] {
        let mut cmd = bulk::send(&s);
        cmd.args(["--alert", "hi", "--output", "json", "--tokens-file"])
            .arg(&file);
        if dry_run {
            cmd.arg("--dry-run");
        }
        let out = run(cmd).await;
        let lines: Vec<serde_json::Value> = stdout(&out)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let of = |n: u64| {
            lines
                .iter()
                .find(|l| l["line"] == n)
                .unwrap_or_else(|| panic!("line {n} in {}", stdout(&out)))
                .clone()
        };
        let error = |v: &serde_json::Value| v["error"].as_str().unwrap_or_default().to_string();
        assert!(error(&of(1)).is_empty(), "{}", of(1));
        assert!(
            error(&of(2)).contains(r#"duplicate key "device_token""#),
            "dry run {dry_run}: {}",
            of(2)
        );
        // No one token to echo for a line that gives two.
        assert_eq!(of(2)["device_token"], "", "{}", of(2));
        assert!(
            error(&of(3)).contains(r#"duplicate key "alert""#),
            "{}",
            of(3)
        );
        assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(s.mock.accepted().len(), 1, "only the valid line was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_with_a_bom_comments_and_inner_spaces_is_read_as_documented() {
    let s = bulk::setup_with(|m| m).await;
    let other = "other-token-0123456789abc";
    let tokens = write_file(
        s.dir.path(),
        "api-tokens",
        format!("\u{feff}{TOKEN}  # CI deploys\nwith space-0123456789abc\n{other}\t# ops\n")
            .as_bytes(),
    );
    let serve = spawn_serve(serve_cmd_with(&s, "127.0.0.1:0", &tokens, &[]));
    // The BOM is not part of the first token; a trailing " #" is a comment.
    for token in [TOKEN, other] {
        let a = post(&serve, Some(token), &alert(DEVICE)).await;
        assert_eq!(a.status, 200, "{token}: {}", a.text());
    }
    let a = post(&serve, Some("with space-0123456789abc"), &alert(DEVICE)).await;
    assert_eq!(a.status, 401);
    let (_, err) = serve.stop().await;
    assert!(
        err.contains("line 2 ignored: it holds a space or a tab inside"),
        "{err}"
    );
    assert!(!err.contains("shorter than"), "{err}");
    assert!(
        !err.contains("with space"),
        "the line's text is never quoted: {err}"
    );
}
