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
use crate::support::{wait_until_async, BUNDLE};

/// The worker's peak RSS so far (VmHWM), in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A job's fields, as the tests write them.
type JobFields = Vec<(String, Vec<u8>)>;

fn good_job(i: u64) -> JobFields {
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
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn oversized_entries_are_dead_lettered_as_placeholders_and_never_held() {
    const BIG: usize = 32 * 1024 * 1024;
    let s = setup(false, |m| m).await;
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
    wait_until_async(
        "apns:results holds 44 results",
        Duration::from_secs(90),
        async || {
            peak = peak.max(peak_rss(pid).unwrap_or(0));
            rs::len(&mut c, "apns:results").await >= 44
        },
    )
    .await;
    peak = peak.max(peak_rss(pid).unwrap_or(0));
    eprintln!("oversized entries: worker peak RSS {} KiB", peak / 1024);
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
    assert!(peak > 0, "the worker's VmHWM was read");
    assert!(peak < limit, "peak RSS {peak} bytes, over {limit}");
}

/// A worker process that must exit by itself: its exit code and stderr.
async fn exits(cmd: std::process::Command, name: &str) -> (Option<i32>, String) {
    rs::WorkerProcess::spawn(cmd, name)
        .wait(Duration::from_secs(30))
        .await
}

/// A Redis started with `--requirepass`: `enqueue`, `worker` and
/// `serve --redis` given no password or a wrong one stop at start-up with
/// exit 2 and Redis's own words (NOAUTH, WRONGPASS), never the password,
/// never a protocol error or an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn a_redis_wanting_a_password_is_a_configuration_error_at_start_up() {
    let redis = rs::Redis::start_with(false, &["--requirepass", "the-right-pw-1"]);
    let dir = crate::support::temp_dir();
    let key = crate::support::write_file(
        dir.path(),
        &format!("AuthKey_{}.p8", crate::support::KEY_ID),
        crate::support::new_key_pem().as_bytes(),
    );
    let tokens =
        crate::support::write_file(dir.path(), "api-tokens", b"gw-token-0123456789abcdef\n");
    let cases = [
        (format!("redis://127.0.0.1:{}", redis.port), "NOAUTH"),
        (
            format!("redis://:a-wrong-pw-2@127.0.0.1:{}", redis.port),
            "WRONGPASS",
        ),
    ];
    for (url, words) in &cases {
        let mut enqueue = crate::support::apns();
        enqueue
            .args([
                "enqueue", "--redis", url, "--alert", "hi", "--topic", BUNDLE,
            ])
            .arg(token(1));
        let mut worker = crate::support::apns();
        worker
            .args([
                "worker",
                "--redis",
                url,
                "--team-id",
                crate::support::TEAM_ID,
            ])
            .arg("--key-file")
            .arg(&key);
        let mut serve = crate::support::apns();
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--redis", url])
            .arg("--api-token-file")
            .arg(&tokens)
            .arg("--key-file")
            .arg(&key)
            .args(["--team-id", crate::support::TEAM_ID, "--topic", BUNDLE]);
        for (what, cmd) in [("enqueue", enqueue), ("worker", worker), ("serve", serve)] {
            let (code, err) = exits(cmd, what).await;
            assert_eq!(code, Some(2), "{what} {words}: {err}");
            assert!(err.contains(words), "{what}: Redis's words: {err}");
            assert!(err.contains("configuration error"), "{what}: {err}");
            assert!(!err.contains("a-wrong-pw"), "{what}: {err}");
            assert!(!err.contains("Protocol error"), "{what}: {err}");
        }
    }
    // With the right password, enqueue works.
    let mut ok = crate::support::apns();
    ok.args(["enqueue", "--alert", "hi", "--topic", BUNDLE])
        .arg(token(1))
        .env(
            "APNS_REDIS_URL",
            format!("redis://:the-right-pw-1@127.0.0.1:{}", redis.port),
        );
    let out = crate::support::run(ok).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::stderr(&out)
    );
}

/// Bad jobs among good ones: a job id with control characters is refused
/// and shown escaped in its result (never raw); errors carry one
/// "invalid ..." prefix, exactly; payloads with a repeated JSON key, at
/// the top or deeper, are refused like other invalid jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn bad_job_ids_are_escaped_duplicate_keys_refused_and_errors_said_once() {
    let s = setup(false, |m| m).await;
    let mut c = s.redis.conn().await;
    let with = |i: u64, change: &dyn Fn(&mut JobFields)| {
        let mut f = good_job(i);
        change(&mut f);
        f
    };
    let jobs = [
        with(1, &|f| f[1].1 = b"evil\n\x1b[31mid\r".to_vec()),
        with(2, &|f| f.push(("colour".into(), b"red".to_vec()))),
        with(3, &|f| {
            f[1].1 = b"dup-top".to_vec();
            f[3].1 = br#"{"aps":{"alert":"a"},"aps":{"alert":"b"}}"#.to_vec()
        }),
        with(4, &|f| {
            f[1].1 = b"dup-deep".to_vec();
            f[3].1 = br#"{"aps":{"alert":{"title":"a","title":"b"}}}"#.to_vec()
        }),
        good_job(5),
    ];
    for fields in &jobs {
        let _: String = ::redis::cmd("XADD")
            .arg("apns:jobs")
            .arg("*")
            .arg(fields)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let worker = s.worker("texts", &[]);
    rs::wait_for_len(&s.redis, "apns:results", 5, Duration::from_secs(60)).await;
    stop(worker).await;

    let raw = rs::entries(&mut c, "apns:results").await;
    for (_, f) in &raw {
        for (k, v) in f {
            assert!(
                !v.chars().any(char::is_control),
                "raw control characters in {k}: {v:?}"
            );
        }
    }
    let results = rs::results(&mut c).await;
    let by_job: HashMap<&str, &str> = results
        .iter()
        .map(|r| (r.job.as_str(), r.error.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        by_job.get("evil\\n\\u{1b}[31mid\\r").copied(),
        Some("invalid job: contains control characters"),
        "{by_job:?}"
    );
    assert_eq!(
        by_job.get("good-2").copied(),
        Some("invalid job: unknown field \"colour\" (format version 1 has v, job, app, device_token, payload, topic, push_type, priority, expiration, collapse_id, apns_id)")
    );
    for (job, place) in [
        ("dup-top", "in the top-level object"),
        ("dup-deep", "at depth 2"),
    ] {
        let e = by_job.get(job).copied().unwrap_or("");
        assert!(
            e.starts_with("invalid payload: duplicate key "),
            "{job}: {e}"
        );
        assert!(e.contains(place), "{job}: {e}");
    }
    for e in by_job.values() {
        assert!(e.matches("invalid ").count() <= 1, "one prefix: {e}");
    }
    assert_eq!(by_job.get("good-5").copied(), Some(""));
    assert_eq!(s.mock.stats().accepted, 1);
    assert_eq!(rs::len(&mut c, "apns:dead").await, 4);
    assert_eq!(rs::pending(&mut c).await, 0);
}

/// A number after `label` in the stop summary, e.g. "12 left pending".
fn summary_count(stderr: &str, label: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("apns worker: stopped:"))
        .unwrap_or_else(|| panic!("no stop summary: {stderr}"));
    line.split([':', ',', '(', ')'])
        .find_map(|part| part.trim().strip_suffix(label)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in {line}"))
}

async fn pending_in(c: &mut ::redis::aio::MultiplexedConnection, stream: &str) -> u64 {
    let v: (u64, ::redis::Value, ::redis::Value, ::redis::Value) = ::redis::cmd("XPENDING")
        .arg(stream)
        .arg("apns")
        .query_async(c)
        .await
        .unwrap();
    v.0
}

/// The stop summary agrees with Redis: after a SIGTERM mid-way, its
/// results are the results stream's length; after sends that keep failing
/// (a job tried again and again), its "left pending" is `XPENDING`, each
/// job once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn the_stop_summary_agrees_with_xpending_and_the_results_stream() {
    let s = setup(false, |m| {
        m.fault(apns_provider::mock::Fault::Latency {
            delay: Duration::from_millis(50),
        })
    })
    .await;
    s.enqueue(2000, &["--topic", BUNDLE]).await;
    let mut c = s.redis.conn().await;
    let w = s.worker("mid", &["--concurrency", "50"]);
    rs::wait_for_len(&s.redis, "apns:results", 200, Duration::from_secs(60)).await;
    let err = stop(w).await;
    let results = rs::len(&mut c, "apns:results").await;
    assert!(results < 2000, "stopped mid-way");
    assert_eq!(summary_count(&err, "results"), results, "{err}");
    assert_eq!(
        summary_count(&err, "left pending to retry") + summary_count(&err, "abandoned in flight"),
        rs::pending(&mut c).await,
        "{err}"
    );

    // One job whose sends fail (an unreachable proxy), tried again and
    // again: it is left pending once.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://127.0.0.1:{}", dead.local_addr().unwrap().port());
    drop(dead);
    let _: String = ::redis::cmd("XADD")
        .arg("failing:jobs")
        .arg("*")
        .arg(good_job(9))
        .query_async(&mut c)
        .await
        .unwrap();
    let args = [
        "--stream",
        "failing:jobs",
        "--results-stream",
        "failing:results",
        "--proxy",
        &proxy,
        "--timeout",
        "1",
        "--claim-idle",
        "300ms",
        "--max-deliveries",
        "100",
    ];
    let w = s.worker("retrier", &args);
    // The progress line counts tries: wait for a third.
    wait_until_async(
        "the progress line counts a third try",
        Duration::from_secs(60),
        async || {
            w.stderr().lines().any(|l| {
                l.split("; ").any(|p| {
                    p.strip_prefix("retried ")
                        .and_then(|n| n.parse::<u64>().ok())
                        >= Some(3)
                })
            })
        },
    )
    .await;
    let err = stop(w).await;
    let pending = pending_in(&mut c, "failing:jobs").await;
    assert_eq!(pending, 1);
    assert_eq!(
        summary_count(&err, "left pending to retry"),
        pending,
        "{err}"
    );
    assert_eq!(summary_count(&err, "results"), 0, "{err}");
}

// The job decoder, fed anything.

use proptest::collection::vec;
use proptest::prelude::*;

/// Field names: mostly the real ones (so that decoding goes deep), some
/// arbitrary bytes.
fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            "v", "job", "app", "device_token", "payload", "topic", "push_type",
            "priority", "expiration", "collapse_id", "apns_id",
        ])
        .prop_map(|n| n.as_bytes().to_vec()),
        1 => vec(any::<u8>(), 0..24),
    ]
}

/// Values: arbitrary bytes, JSON-looking text (with repeated keys now and
/// then), or the version.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..64),
        Just(b"1".to_vec()),
        "[{}\\[\\]\":,a-c0-9 ]{0,80}".prop_map(|s| s.into_bytes()),
        (".{0,8}", ".{0,8}").prop_map(|(k, v)| {
            format!("{{\"aps\":{{\"{k}\":1,\"{k}\":\"{v}\"}}}}").into_bytes()
        }),
    ]
}

fn decoder_config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 2000;
    }
    config
}

proptest! {
    #![proptest_config(decoder_config())]

    /// Any set of fields: a job or a typed error (an invalid field), never
    /// a panic; a job holds no more than the entry did (bounded memory),
    /// and has a clean id.
    #[test]
    fn the_job_decoder_takes_any_fields(fields in vec((name(), value()), 0..14)) {
        let input: usize = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
        match apns_provider::worker::Job::from_fields(&fields) {
            Ok(job) => {
                prop_assert!(!job.id.is_empty() && !job.id.chars().any(char::is_control));
                let kept: usize = job.to_fields().iter().map(|(k, v)| k.len() + v.len()).sum();
                prop_assert!(kept <= input + 8, "{kept} bytes from {input}");
            }
            Err(apns_provider::Error::InvalidField { field, message }) => {
                prop_assert!(!message.is_empty());
                prop_assert!(!message.starts_with("invalid "), "doubled prefix: {field}: {message}");
            }
            Err(other) => prop_assert!(false, "an untyped error: {other:?}"),
        }
    }

    /// A payload repeating a key, at any depth, is an invalid payload.
    #[test]
    fn repeated_payload_keys_are_refused(k in "[a-z]{1,8}", v in "[a-z]{0,8}", depth in 0usize..5) {
        let mut json = format!("{{\"{k}\":1,\"{k}\":\"{v}\"}}");
        for _ in 0..depth {
            json = format!("{{\"x\":[{json}]}}");
        }
        let fields = [("v", "1"), ("job", "j"), ("device_token", "aa"), ("payload", json.as_str())];
        let e = apns_provider::worker::Job::from_fields(&fields).unwrap_err().to_string();
        prop_assert!(e.starts_with("invalid payload: duplicate key"), "{e}");
    }

    /// Values far over the limit are refused by their length, without
    /// being read further.
    #[test]
    fn oversized_values_are_refused_by_length(extra in 1usize..4096, which in 0usize..4) {
        let big = vec![b'{'; apns_provider::worker::MAX_FIELD_BYTES + extra];
        let names = ["payload", "job", "device_token", "topic"];
        let fields = vec![("v".as_bytes().to_vec(), b"1".to_vec()), (names[which].as_bytes().to_vec(), big)];
        let e = apns_provider::worker::Job::from_fields(&fields).unwrap_err().to_string();
        prop_assert!(e.contains("over the 65536-byte limit"), "{e}");
    }
}
