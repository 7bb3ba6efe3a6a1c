//! `apns worker` (and `enqueue`, `serve --redis`) against hostile jobs and
//! careless set-ups, on a real Redis and the mock: oversized entries are
//! dead-lettered as placeholders without the worker ever holding them; a
//! Redis that wants a password is a configuration error at start-up; job
//! ids with control characters, duplicate JSON keys, exact error texts and
//! an exact stop summary.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::bulk::token;
use crate::support::redis::{self as rs, setup, stop};

/// The worker's peak RSS so far (VmHWM), in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn good_job(i: u64) -> Vec<(String, Vec<u8>)> {
    vec![
        ("v".into(), b"1".to_vec()),
        ("job".into(), format!("good-{i}").into_bytes()),
        ("device_token".into(), token(i).into_bytes()),
        ("payload".into(), br#"{"aps":{"alert":"hi"}}"#.to_vec()),
    ]
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> &'a str {
    f.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn sha1_hex(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Four 32 MB entries (one with a 1 MB field name, one already delivered
/// six times to a consumer that died) among 40 good jobs: the good jobs are
/// sent, each big one is dead-lettered once as a small entry whose
/// placeholders hold the length and SHA-1, nothing stays pending, and the
/// worker's peak RSS stays far below one entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_entries_are_dead_lettered_as_placeholders_and_never_held() {
    const BIG: usize = 32 * 1024 * 1024;
    let Some(s) = setup("oversized_entries", false, |m| m).await else {
        return;
    };
    let mut c = s.redis.conn().await;
    let _: () = ::redis::cmd("XGROUP")
        .arg(&["CREATE", "apns:jobs", "apns", "0", "MKSTREAM"])
        .query_async(&mut c)
        .await
        .unwrap();
    let big_payload = vec![b'x'; BIG];
    let mut expected_sha = HashMap::new();
    let mut ids = Vec::new();
    for i in 0..44u64 {
        let mut fields = good_job(i);
        if i % 11 == 5 {
            let k = i / 11;
            fields[1].1 = format!("big-{k}").into_bytes();
            if k == 1 {
                // A huge field name as well.
                fields.push(("n".repeat(1024 * 1024), b"1".to_vec()));
            }
            let mut payload = big_payload.clone();
            payload[0] = b'0' + k as u8;
            expected_sha.insert(format!("big-{k}"), sha1_hex(&payload));
            fields[3].1 = payload;
        }
        let id: String = ::redis::cmd("XADD")
            .arg("apns:jobs")
            .arg("*")
            .arg(&fields)
            .query_async(&mut c)
            .await
            .unwrap();
        ids.push(id);
    }
    drop(big_payload);
    // big-3 was delivered 6 times to a consumer that died: it is claimed
    // and dead-lettered for that (the placeholder still stands in).
    let _: ::redis::Value = ::redis::cmd("XCLAIM")
        .arg(&["apns:jobs", "apns", "ghost", "0", &ids[38]])
        .arg(&["FORCE", "RETRYCOUNT", "6", "JUSTID"])
        .query_async(&mut c)
        .await
        .unwrap();

    let worker = s.worker("big", &["--claim-idle", "500ms", "--concurrency", "64"]);
    let pid = worker.pid();
    let mut peak = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while rs::len(&mut c, "apns:results").await < 44 {
        assert!(
            std::time::Instant::now() < deadline,
            "results: {}; {}",
            rs::len(&mut c, "apns:results").await,
            worker.stderr()
        );
        peak = peak.max(peak_rss(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    peak = peak.max(peak_rss(pid).unwrap_or(0));
    let err = stop(worker).await;

    let results = rs::results(&mut c).await;
    assert_eq!(results.len(), 44, "{err}");
    for r in &results {
        if r.job.starts_with("good-") {
            assert_eq!(r.status, Some(200), "{r:?}");
        } else {
            let e = r.error.as_deref().unwrap_or("");
            assert!(r.job.starts_with("big-"), "{r:?}");
            if r.job == "big-3" {
                assert!(
                    e.contains("over the 65536-byte limit")
                        || e.contains("delivered 7 times, more than the 5 allowed"),
                    "{e}"
                );
            } else {
                assert!(
                    e.starts_with("invalid job: the field \"payload\" is 33554432 bytes long, over the 65536-byte limit"),
                    "{e}"
                );
            }
        }
    }
    assert_eq!(s.mock.stats().accepted, 40);
    let dead = rs::entries(&mut c, "apns:dead").await;
    assert_eq!(dead.len(), 4, "each big entry dead-lettered once");
    for (_, f) in &dead {
        let size: usize = f.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(size < 4096, "a small dead-letter entry: {size} bytes");
        let job = field(f, "job");
        let placeholder = format!(
            "oversized: {BIG} bytes, sha1 {}",
            expected_sha.get(job).expect("a big job")
        );
        assert_eq!(field(f, "payload"), placeholder, "{job}");
        if job == "big-1" {
            let name = format!(
                "oversized: {} bytes, sha1 {}",
                1024 * 1024,
                sha1_hex("n".repeat(1024 * 1024).as_bytes())
            );
            assert!(f.iter().any(|(k, _)| *k == name), "{f:?}");
        }
    }
    assert_eq!(rs::pending(&mut c).await, 0, "nothing left pending");
    // A base of 48 MB (a debug build's code, TLS, runtime) plus 8 times
    // the field limit: far below one 32 MB entry on top of the base.
    let limit = 48 * 1024 * 1024 + 8 * apns_provider::worker::MAX_FIELD_BYTES as u64;
    eprintln!("oversized entries: worker peak RSS {} KiB", peak / 1024);
    assert!(peak > 0, "the worker's VmHWM was read");
    assert!(peak < limit, "peak RSS {peak} bytes, over {limit}");
}
