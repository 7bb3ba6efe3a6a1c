//! `apns serve`'s request input over real sockets: a huge array is counted
//! while it is parsed (peak memory bounded, read from /proc), duplicate
//! JSON keys are refused in every body, and the API token file is read off
//! the request path (a FIFO or a deleted file never freezes or opens the
//! gateway; BOM, comments, inner spaces).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::bulk::{self, until};
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
async fn a_64_mib_array_is_refused_at_max_items_plus_one_within_a_small_multiple_of_max_body() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("NOT RUN: no /proc to read peak memory from");
        return;
    }
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
