//! `apns enqueue` and `apns worker` on a real Redis (started by the tests)
//! against the mock: many workers share a stream and every job gets
//! exactly one result; a worker killed midway loses nothing, with
//! duplicates bounded (at-least-once) or none (at-most-once); a Redis
//! restart loses nothing; poison jobs end in the dead letter; two apps'
//! keys in one stream; graceful and abandoning stops; the library's
//! `Worker` embedded in Rust code.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use apns_provider::mock::{Fault, MockServer, TrustedKey};
use apns_provider::worker::{App, Job, JobResult, Worker};

use crate::support::bulk::token;
use crate::support::redis::{self as rs, accepted_by_token, one_result_each, setup, stop};
use crate::support::redis::{Redis, Setup, WorkerProcess};
use crate::support::{
    apns, new_key_pem, run, stderr, stdout, temp_dir, wait_until_async, write_file,
};
use crate::support::{apns_against, program, At, Prerequisite, BUNDLE, TEAM_ID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn three_workers_share_20000_jobs_and_each_gets_exactly_one_result() {
    const N: u64 = 20_000;
    let s = setup(false, |m| m).await;
    let enqueued = s.enqueue(N, &["--topic", BUNDLE]).await;
    assert!(enqueued["first_id"].is_string() && enqueued["last_id"].is_string());
    let workers: Vec<WorkerProcess> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| s.worker(name, &["--concurrency", "300", "--claim-idle", "60s"]))
        .collect();
    rs::wait_for_len(&s.redis, "apns:results", N, Duration::from_secs(120)).await;
    let mut progress = false;
    for w in workers {
        progress |= w.stderr().contains(" jobs/s; in flight ");
        stop(w).await;
    }
    assert!(progress, "a progress line every --stats-interval");

    let mut c = s.redis.conn().await;
    let results = rs::results(&mut c).await;
    let by_token = one_result_each(&results, N);
    assert!(by_token.values().all(|r| r.status == Some(200)));
    let by_worker: HashSet<&str> = results.iter().map(|r| r.worker.as_str()).collect();
    assert_eq!(by_worker.len(), 3, "all three workers took jobs");
    assert_eq!(s.mock.stats().accepted, N, "each job sent once");
    assert_eq!(rs::pending(&mut c).await, 0, "nothing left pending");
    assert_eq!(
        rs::len(&mut c, "apns:jobs").await,
        0,
        "done jobs are deleted"
    );
    assert_eq!(rs::len(&mut c, "apns:dead").await, 0);
}

/// Two workers; one is killed (SIGKILL) while it has jobs in flight; the
/// other claims them.
async fn kill_one_worker_midway(delivery: &str) -> (Setup, Vec<JobResult>, usize) {
    const N: u64 = 6_000;
    let s = setup(false, |m| {
        m.keep(2 * N as usize).fault(Fault::Latency {
            delay: Duration::from_millis(20),
        })
    })
    .await;
    s.enqueue(N, &["--topic", BUNDLE]).await;
    let args = ["--concurrency", "200", "--delivery", delivery];
    let victim = s.worker("victim", &args);
    let survivor = s.worker("survivor", &args);
    rs::wait_for_len(&s.redis, "apns:results", N / 4, Duration::from_secs(60)).await;
    victim.signal("KILL");
    let (code, _) = victim.wait(Duration::from_secs(10)).await;
    assert_eq!(code, None, "killed by a signal");
    let mut c = s.redis.conn().await;
    // What it held when it died: read, result not written.
    let held = rs::pending_with(&mut c, "victim").await.len();
    assert!(held > 0, "the victim died with jobs in flight");
    rs::wait_for_len(&s.redis, "apns:results", N, Duration::from_secs(120)).await;
    let err = stop(survivor).await;
    assert!(err.contains("stopped:"), "{err}");
    let results = rs::results(&mut c).await;
    one_result_each(&results, N);
    assert_eq!(
        rs::pending(&mut c).await,
        0,
        "the victim's jobs were claimed"
    );
    (s, results, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn a_killed_worker_loses_nothing_at_least_once() {
    let (s, results, held) = kill_one_worker_midway("at-least-once").await;
    let accepted = accepted_by_token(&s.mock);
    for r in &results {
        assert_eq!(r.status, Some(200), "{r:?}");
        assert!(accepted.get(&r.device_token).copied().unwrap_or(0) >= 1);
    }
    let duplicates: u64 = accepted.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= held as u64,
        "{duplicates} duplicates, more than the {held} jobs the killed worker held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn a_killed_worker_sends_nothing_twice_at_most_once() {
    let (s, results, held) = kill_one_worker_midway("at-most-once").await;
    let accepted = accepted_by_token(&s.mock);
    assert!(
        accepted.values().all(|n| *n == 1),
        "no notification sent twice"
    );
    let mut unknown = 0;
    for r in &results {
        if r.status == Some(200) {
            assert_eq!(accepted.get(&r.device_token), Some(&1));
        } else {
            assert!(r.may_have_been_delivered, "{r:?}");
            assert!(
                r.error.as_deref().unwrap_or("").contains("at-most-once"),
                "{r:?}"
            );
            unknown += 1;
        }
    }
    assert!(
        unknown <= held,
        "{unknown} unknown outcomes, more than the {held} the killed worker held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn a_redis_restart_midway_loses_no_job() {
    const N: u64 = 6_000;
    let mut s = setup(true, |m| {
        m.keep(2 * N as usize).fault(Fault::Latency {
            delay: Duration::from_millis(10),
        })
    })
    .await;
    s.enqueue(N, &["--topic", BUNDLE]).await;
    let args = ["--concurrency", "200"];
    let workers = [s.worker("r1", &args), s.worker("r2", &args)];
    rs::wait_for_len(&s.redis, "apns:results", N / 4, Duration::from_secs(60)).await;
    s.redis.stop();
    s.redis.start_again();
    rs::wait_for_len(&s.redis, "apns:results", N, Duration::from_secs(120)).await;
    let mut saw_outage = false;
    for w in workers {
        let err = stop(w).await;
        saw_outage |= err.contains("retrying until it answers");
    }
    assert!(saw_outage, "the workers saw Redis go away");
    let mut c = s.redis.conn().await;
    let results = rs::results(&mut c).await;
    one_result_each(&results, N);
    let accepted = accepted_by_token(&s.mock);
    for r in &results {
        assert_eq!(r.status, Some(200), "{r:?}");
        assert!(accepted.contains_key(&r.device_token));
    }
    assert_eq!(rs::pending(&mut c).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn poison_jobs_end_in_the_dead_letter() {
    let s = setup(false, |m| m).await;
    let mut c = s.redis.conn().await;
    let good = |i: u64| -> Vec<(String, String)> {
        vec![
            ("v".into(), "1".into()),
            ("job".into(), format!("good-{i}")),
            ("device_token".into(), token(i)),
            ("payload".into(), r#"{"aps":{"alert":"hi"}}"#.into()),
        ]
    };
    let poison = |i: u64| -> (Vec<(String, String)>, &'static str) {
        let mut f = good(1000 + i);
        f[1].1 = format!("poison-{i}");
        match i % 5 {
            0 => f[2].1 = "not-hex".into(),
            1 => f[3].1 = "{not json".into(),
            2 => f.push(("app".into(), "no-such-app".into())),
            3 => {
                f.remove(0);
            }
            _ => f.push(("device-token".into(), "typo".into())),
        }
        let why = [
            "device_token",
            "not valid JSON",
            "no-such-app",
            "no \"v\" field",
            "unknown field \"device-token\"",
        ][(i % 5) as usize];
        (f, why)
    };
    // Five good jobs a crashed consumer took, delivered 7 times since.
    let mut pipe = ::redis::pipe();
    for i in 0..5u64 {
        let mut f = good(2000 + i);
        f[1].1 = format!("ghost-{i}");
        pipe.cmd("XADD").arg("apns:jobs").arg("*").arg(f).ignore();
    }
    pipe.cmd("XGROUP")
        .arg("CREATE")
        .arg("apns:jobs")
        .arg("apns")
        .arg("0")
        .ignore();
    pipe.query_async::<()>(&mut c).await.unwrap();
    let _: ::redis::Value = ::redis::cmd("XREADGROUP")
        .arg(&[
            "GROUP",
            "apns",
            "ghost",
            "COUNT",
            "5",
            "STREAMS",
            "apns:jobs",
            ">",
        ])
        .query_async(&mut c)
        .await
        .unwrap();
    let ghost = rs::pending_with(&mut c, "ghost").await;
    assert_eq!(ghost.len(), 5);
    for _ in 0..6 {
        // Each XCLAIM counts one more delivery.
        let _: ::redis::Value = ::redis::cmd("XCLAIM")
            .arg(&["apns:jobs", "apns", "ghost", "0"])
            .arg(&ghost)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    // Then 100 poison jobs among 200 good ones.
    let mut expected = HashMap::new();
    let mut pipe = ::redis::pipe();
    for i in 0..300u64 {
        let fields = if i % 3 == 0 {
            let (f, why) = poison(i / 3);
            expected.insert(format!("poison-{}", i / 3), why);
            f
        } else {
            good(i)
        };
        pipe.cmd("XADD")
            .arg("apns:jobs")
            .arg("*")
            .arg(fields)
            .ignore();
    }
    pipe.query_async::<()>(&mut c).await.unwrap();
    let worker = s.worker("p1", &["--claim-idle", "500ms"]);
    rs::wait_for_len(&s.redis, "apns:results", 305, Duration::from_secs(60)).await;
    stop(worker).await;

    let dead = rs::entries(&mut c, "apns:dead").await;
    assert_eq!(dead.len(), 105, "100 poison jobs and 5 delivered too often");
    let field = |f: &[(String, String)], k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut over = 0;
    for (_, f) in &dead {
        let error = field(f, "dead_error");
        let job = field(f, "job");
        if let Some(why) = expected.get(&job) {
            assert!(error.contains(why), "{job}: {error}");
        } else {
            assert!(
                error.contains("delivered 8 times, more than the 5 allowed"),
                "{job}: {error}"
            );
            assert!(ghost.contains(&field(f, "dead_entry_id")));
            over += 1;
        }
        assert_eq!(field(f, "dead_worker"), "p1");
    }
    assert_eq!(over, 5);
    let results = rs::results(&mut c).await;
    assert_eq!(results.len(), 305);
    let errors = results.iter().filter(|r| r.error.is_some()).count();
    assert_eq!(errors, 105, "each dead job has a result with its error");
    assert_eq!(
        results.iter().filter(|r| r.status == Some(200)).count(),
        200
    );
    assert_eq!(rs::pending(&mut c).await, 0, "nothing redelivered forever");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn two_apps_with_their_own_keys_share_one_stream_and_one_worker() {
    let redis = Redis::start(false);
    let dir = temp_dir();
    let (pem_a, pem_b) = (new_key_pem(), new_key_pem());
    let path_a = write_file(dir.path(), "a.p8", pem_a.as_bytes());
    let path_b = write_file(dir.path(), "b.p8", pem_b.as_bytes());
    let public = |pem: &str| {
        apns_provider::SigningKey::from_pem(pem.as_bytes())
            .unwrap()
            .public_key()
    };
    let mock = MockServer::builder()
        .trust_key(
            TrustedKey::new("KEYAAAAAAA", "TEAMAAAAAA", public(&pem_a))
                .unwrap()
                .topics(["com.example.a"]),
        )
        .trust_key(
            TrustedKey::new("KEYBBBBBBB", "TEAMBBBBBB", public(&pem_b))
                .unwrap()
                .topics(["com.example.b"]),
        )
        .start()
        .await
        .unwrap();
    let ca = dir.path().join("ca.pem");
    mock.write_ca_file(&ca).unwrap();
    let config = dir.path().join("keys.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.app-a]\nteam_id = \"TEAMAAAAAA\"\nkey_id = \"KEYAAAAAAA\"\ntopic = \"com.example.a\"\nkey = \"file:{}\"\n\n\
             [profiles.app-b]\nteam_id = \"TEAMBBBBBB\"\nkey_id = \"KEYBBBBBBB\"\ntopic = \"com.example.b\"\nkey = \"file:{}\"\n",
            path_a.display(),
            path_b.display()
        ),
    )
    .unwrap();
    // Jobs for both apps, interleaved, from two enqueue runs each.
    for (app, first) in [("app-a", 1), ("app-b", 101), ("app-a", 201), ("app-b", 301)] {
        let text: String = (first..first + 50).map(|i| token(i) + "\n").collect();
        let file = write_file(dir.path(), "tokens.txt", text.as_bytes());
        let mut cmd = apns();
        cmd.args([
            "enqueue",
            "--redis",
            &redis.url(),
            "--app",
            app,
            "--alert",
            "hi",
        ])
        .arg("--tokens-file")
        .arg(&file);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let mut c = redis.conn().await;
    let unknown = Job::from_fields(&[
        ("v", "1"),
        ("job", "lost"),
        ("app", "app-c"),
        ("device_token", "00aa"),
        ("payload", "{}"),
    ])
    .unwrap();
    let _: String = ::redis::cmd("XADD")
        .arg("apns:jobs")
        .arg("*")
        .arg(unknown.to_fields())
        .query_async(&mut c)
        .await
        .unwrap();

    let url = redis.url();
    let mut cmd = apns_against(
        &["worker", "--redis", &url, "--consumer", "multi"],
        &At::new(mock.endpoint(), &ca),
    );
    cmd.env("APNS_CONFIG", &config)
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env_remove("APNS_PROFILE");
    let worker = WorkerProcess::spawn(cmd, "multi");
    rs::wait_for_len(&redis, "apns:results", 201, Duration::from_secs(60)).await;
    stop(worker).await;

    let records = mock.accepted();
    assert_eq!(records.len(), 200);
    for r in &records {
        let i = u64::from_str_radix(&r.device_token, 16).unwrap();
        let (kid, team, topic) = if (i - 1) / 100 % 2 == 0 {
            ("KEYAAAAAAA", "TEAMAAAAAA", "com.example.a")
        } else {
            ("KEYBBBBBBB", "TEAMBBBBBB", "com.example.b")
        };
        assert_eq!(
            (r.key_id.as_str(), r.team_id.as_str(), r.topic.as_str()),
            (kid, team, topic),
            "token {i}"
        );
    }
    let connections: HashSet<u64> = records.iter().map(|r| r.connection).collect();
    assert_eq!(connections.len(), 2, "one connection per key");
    let dead = rs::entries(&mut c, "apns:dead").await;
    assert_eq!(dead.len(), 1);
    let error = &dead[0].1.iter().find(|(k, _)| k == "dead_error").unwrap().1;
    assert!(error.contains("app \"app-c\""), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn sigterm_finishes_in_flight_jobs_and_a_second_signal_abandons_them() {
    const N: u64 = 3_000;
    let s = setup(false, |m| {
        m.fault(Fault::Latency {
            delay: Duration::from_millis(200),
        })
    })
    .await;
    s.enqueue(N, &["--topic", BUNDLE]).await;
    let mut c = s.redis.conn().await;

    // One SIGTERM: what was read gets its result, nothing stays pending.
    let graceful = s.worker("graceful", &["--concurrency", "500"]);
    rs::wait_for_len(&s.redis, "apns:results", 1, Duration::from_secs(60)).await;
    let err = stop(graceful).await;
    assert!(err.contains("stopping: no new jobs"), "{err}");
    assert!(rs::pending_with(&mut c, "graceful").await.is_empty());
    let done = rs::len(&mut c, "apns:results").await;
    assert!(done < N, "it stopped reading: {done}");
    assert_eq!(
        s.mock.stats().accepted,
        done,
        "every job sent has its result"
    );

    // Two: the jobs in flight are abandoned at once and stay pending.
    s.mock.inject(Fault::BlackHole);
    let abandoning = s.worker("abandoning", &["--concurrency", "50"]);
    wait_until_async(
        "the worker holds 50 jobs pending",
        Duration::from_secs(30),
        async || rs::pending_with(&mut c, "abandoning").await.len() >= 50,
    )
    .await;
    abandoning.signal("TERM");
    wait_until_async(
        "the worker says it takes no new jobs",
        Duration::from_secs(30),
        async || abandoning.stderr().contains("stopping: no new jobs"),
    )
    .await;
    abandoning.signal("TERM");
    let (code, err) = abandoning.wait(Duration::from_secs(10)).await;
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("abandoning 50 job(s) in flight"), "{err}");
    assert_eq!(rs::pending_with(&mut c, "abandoning").await.len(), 50);
    assert_eq!(rs::len(&mut c, "apns:results").await, done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn a_worker_embedded_in_rust_code() {
    let s = setup(false, |m| m).await;
    let mut c = s.redis.conn().await;
    let mut pipe = ::redis::pipe();
    for i in 1..=500u64 {
        let mut spec = apns_provider::wire::NotificationSpec::for_token(token(i));
        spec.payload = Some(serde_json::json!({"aps": {"alert": "hi"}}));
        let job = Job::new(format!("order-{i}"), spec);
        pipe.cmd("XADD")
            .arg("apns:jobs")
            .arg("*")
            .arg(job.to_fields())
            .ignore();
    }
    pipe.query_async::<()>(&mut c).await.unwrap();
    let key = apns_provider::SigningKey::from_file(&s.key_path).unwrap();
    let client = crate::support::client_for(&s.mock, key).build().unwrap();
    let app = App::new(client).with_defaults(
        apns_provider::wire::SpecDefaults::builder()
            .topic(BUNDLE)
            .build()
            .unwrap(),
    );
    let worker = Worker::builder(s.redis.url(), move |name: Option<&str>| match name {
        None => Ok(app.clone()),
        Some(other) => Err(apns_provider::Error::Config(format!("no app {other}"))),
    })
    .consumer("embedded")
    .concurrency(100)
    .build()
    .unwrap();
    assert!(!format!("{worker:?}").contains("redis://"), "{worker:?}");
    let handle = worker.handle();
    let running = tokio::spawn(worker.run());
    rs::wait_for_len(&s.redis, "apns:results", 500, Duration::from_secs(60)).await;
    handle.stop();
    let stats = running.await.unwrap().unwrap();
    assert_eq!(stats.accepted, 500, "{stats:?}");
    assert_eq!(stats.in_flight, 0);
    let results = rs::results(&mut c).await;
    let ids: HashSet<String> = s.mock.accepted().into_iter().map(|a| a.apns_id).collect();
    for r in &results {
        // The apns-id is derived from the job id, the same on every delivery.
        let spec = apns_provider::wire::NotificationSpec::for_token("00");
        let expected = Job::new(r.job.clone(), spec).apns_id().unwrap().to_string();
        assert_eq!(r.apns_id.as_deref(), Some(expected.as_str()));
        assert!(ids.contains(&expected));
    }
}

/// Two live workers that claim each other's jobs all the time (a claim
/// time shorter than a send): every job still gets exactly one result, and
/// at-most-once never sends one twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn workers_claiming_each_others_jobs_still_write_one_result_each() {
    const N: u64 = 1_000;
    let s = setup(false, |m| {
        m.fault(Fault::Latency {
            delay: Duration::from_millis(300),
        })
    })
    .await;
    s.enqueue(N, &["--topic", BUNDLE]).await;
    let args = [
        "--concurrency",
        "100",
        "--claim-idle",
        "100ms",
        "--max-deliveries",
        "1000",
        "--delivery",
        "at-most-once",
    ];
    let workers = [s.worker("x1", &args), s.worker("x2", &args)];
    rs::wait_for_len(&s.redis, "apns:results", N, Duration::from_secs(120)).await;
    let mut claimed = 0;
    for w in workers {
        let err = stop(w).await;
        // "apns worker: stopped: ..., 12 claimed, ..."
        claimed += err
            .lines()
            .filter(|l| l.contains("stopped:"))
            .flat_map(|l| l.split(", "))
            .find_map(|part| part.strip_suffix(" claimed")?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert!(claimed > 0, "the workers claimed each other's jobs");
    let mut c = s.redis.conn().await;
    let results = rs::results(&mut c).await;
    one_result_each(&results, N);
    let accepted = accepted_by_token(&s.mock);
    assert!(accepted.values().all(|n| *n == 1), "nothing sent twice");
    for r in &results {
        assert!(r.status == Some(200) || r.may_have_been_delivered, "{r:?}");
    }
    assert_eq!(rs::pending(&mut c).await, 0);
}

/// A password in the Redis URL is never printed: messages name the
/// address only. A refused password stops the worker (exit 2): waiting
/// cannot fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn a_password_in_the_redis_url_is_never_printed() {
    let redis = Redis::start(false);
    // This Redis has no password: AUTH with one is refused.
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}", redis.port);
    let address = format!("127.0.0.1:{}", redis.port);
    let dir = temp_dir();
    let key = write_file(
        dir.path(),
        "AuthKey_ABCDE12345.p8",
        new_key_pem().as_bytes(),
    );
    let mut worker = apns();
    worker
        .args([
            "worker",
            "--redis",
            &url,
            "--team-id",
            TEAM_ID,
            "--key-file",
        ])
        .arg(&key);
    let mut enqueue = apns();
    enqueue
        .args(["enqueue", "--alert", "hi", "00aa"])
        .env("APNS_REDIS_URL", &url);
    let mut help = apns();
    help.args(["worker", "--help"]).env("APNS_REDIS_URL", &url);
    for (cmd, code) in [(worker, 2), (enqueue, 2), (help, 0)] {
        let out = run(cmd).await;
        let (out_text, err) = (stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(
            code == 0 || err.contains(&address),
            "names the address: {err}"
        );
        assert!(
            !err.contains("s3cret") && !out_text.contains("s3cret"),
            "{out_text}{err}"
        );
    }
}

/// `apns enqueue` writes one versioned job per valid line, with the flags'
/// fields and each JSON line's own; invalid lines are named and left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn enqueue_writes_one_versioned_job_per_valid_line() {
    let redis = Redis::start(false);
    let dir = temp_dir();
    let lines = format!(
        "{}\nnot-a-token\n{{\"device_token\":\"{}\",\"priority\":5,\"push_type\":\"background\",\"payload\":{{\"aps\":{{\"content-available\":1}}}}}}\n{{\"device_token\":\"{}\",\"colour\":\"red\"}}\n",
        token(1),
        token(2),
        token(3)
    );
    let file = write_file(dir.path(), "tokens.txt", lines.as_bytes());
    let mut cmd = apns();
    cmd.args(["enqueue", "--redis", &redis.url(), "--app", "myapp"])
        .args(["--topic", BUNDLE, "--title", "Hi", "--expiration", "+1h"])
        .arg("--tokens-file")
        .arg(&file);
    let out = run(cmd).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 2: invalid: invalid device_token"),
        "{err}"
    );
    assert!(
        err.contains("line 4: invalid") && err.contains("colour"),
        "{err}"
    );
    let line = stdout(&out);
    assert!(
        line.starts_with("{\"enqueued\":2,\"first_id\":\""),
        "{line}"
    );
    assert!(line.trim_end().ends_with(",\"invalid\":2}"), "{line}");

    let mut c = redis.conn().await;
    let entries = rs::entries(&mut c, "apns:jobs").await;
    assert_eq!(entries.len(), 2);
    let jobs: Vec<Job> = entries
        .iter()
        .map(|(_, f)| Job::from_fields(f).unwrap())
        .collect();
    for (job, (_, fields)) in jobs.iter().zip(&entries) {
        assert_eq!(fields[0], ("v".to_string(), "1".to_string()), "v first");
        assert!(uuid::Uuid::parse_str(&job.id).is_ok(), "a UUID job id");
        assert_eq!(job.apns_id().unwrap().to_string(), job.id);
        assert_eq!(job.app.as_deref(), Some("myapp"));
        assert_eq!(job.spec.topic.as_deref(), Some(BUNDLE));
        let expiration: u64 = job
            .spec
            .expiration
            .as_ref()
            .unwrap()
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let now = apns_provider::clock::now_unix_seconds();
        assert!(
            (now + 3500..=now + 3700).contains(&expiration),
            "absolute: {expiration}"
        );
    }
    assert_eq!(
        jobs[0].spec.device_token.as_deref(),
        Some(token(1).as_str())
    );
    assert_eq!(
        jobs[0].spec.payload,
        Some(serde_json::Value::String(
            r#"{"aps":{"alert":{"title":"Hi"}}}"#.into()
        ))
    );
    assert_eq!(jobs[1].spec.push_type.as_deref(), Some("background"));
    assert_eq!(jobs[1].spec.priority, Some("5".into()));
    assert_eq!(
        jobs[1].spec.payload,
        Some(serde_json::Value::String(
            r#"{"aps":{"content-available":1}}"#.into()
        ))
    );
}

/// `apns enqueue` draws a progress bar on a terminal, and none in a pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
#[cfg_attr(missing_script, ignore = "needs script(1): apt install util-linux")]
async fn enqueue_shows_progress_on_a_terminal_only() {
    let redis = Redis::start(false);
    let dir = temp_dir();
    let text: String = (1..=3000u64).map(|i| token(i) + "\n").collect();
    let file = write_file(dir.path(), "tokens.txt", text.as_bytes());
    let cmdline = format!(
        "{} enqueue --redis {} --topic {BUNDLE} --alert hi --tokens-file {}",
        env!("CARGO_BIN_EXE_apns"),
        redis.url(),
        file.display()
    );
    // Under a pseudo-terminal (script(1) allocates one).
    let mut tty = program(Prerequisite::Script);
    tty.args(["-qefc", &cmdline, "/dev/null"]);
    let out = run(tty).await;
    let screen = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("3000/3000 100%"), "{screen:?}");
    assert!(screen.contains("{\"enqueued\":3000,"), "{screen:?}");

    let mut piped = std::process::Command::new("sh");
    crate::support::hermetic(&mut piped);
    piped.args(["-c", &cmdline]);
    let out = run(piped).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).is_empty(), "{:?}", stderr(&out));
    let mut c = redis.conn().await;
    assert_eq!(rs::len(&mut c, "apns:jobs").await, 6000);
}

/// `apns worker --metrics-listen`: outcomes per app, the worker's
/// connection, and the queue's depth, scraped over a real socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn a_worker_serves_metrics_of_its_jobs_and_its_queue() {
    use crate::support::web::{self, sample, ACCEPTED};
    const N: u64 = 500;
    let s = setup(false, |m| m.unregistered(&token(7), 1_700_000_000_000)).await;
    s.enqueue(N, &["--topic", BUNDLE]).await;
    let w = s.worker("m1", &["--metrics-listen", "127.0.0.1:0"]);
    rs::wait_for_len(&s.redis, "apns:results", N, Duration::from_secs(60)).await;
    let said = w.stderr();
    let base = said
        .lines()
        .find_map(|l| l.strip_prefix("apns worker: metrics at "))
        .and_then(|l| l.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address on stderr: {said}"))
        .to_string();
    // The queue gauge follows the group's state (read every second or so).
    let mut text = String::new();
    wait_until_async(
        "the apns_queue_pending gauge reads 0",
        Duration::from_secs(30),
        async || {
            let a = web::request(&base, "GET", "/metrics", None, b"").await;
            assert_eq!(a.status, 200, "{}", a.text());
            text = a.text();
            sample(&text, "apns_queue_pending") == Some(0.0)
        },
    )
    .await;
    stop(w).await;
    assert_eq!(sample(&text, "apns_queue_pending"), Some(0.0), "{text}");
    assert_eq!(sample(&text, ACCEPTED), Some((N - 1) as f64), "{text}");
    let gone = r#"apns_notifications_total{outcome="rejected",reason="Unregistered",push_type="alert",app="default"}"#;
    assert_eq!(sample(&text, gone), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, r#"apns_connections{app="default",state="open"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"apns_request_duration_seconds_count{app="default"}"#
        ),
        Some(N as f64),
        "{text}"
    );
}

/// `--proxy` takes the worker's connections through a CONNECT tunnel, as it
/// does for `apns send`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn a_worker_reaches_apns_through_the_proxy() {
    use crate::support::proxy::{self, Mode};
    const N: u64 = 200;
    let s = setup(false, |m| m).await;
    let open = proxy::start(Mode::Open).await;
    s.enqueue(N, &["--topic", BUNDLE]).await;
    let w = s.worker("w1", &["--proxy", &open.url(None)]);
    rs::wait_for_len(&s.redis, "apns:results", N, Duration::from_secs(60)).await;
    stop(w).await;
    let mut c = s.redis.conn().await;
    let by_token = one_result_each(&rs::results(&mut c).await, N);
    assert!(by_token.values().all(|r| r.status == Some(200)));
    let e = s.mock.endpoint();
    let seen = open.seen();
    assert_eq!(seen.len(), 1, "one connection, one tunnel: {seen:?}");
    assert_eq!(
        seen[0].request_line,
        format!("CONNECT {}:{} HTTP/1.1", e.host(), e.port())
    );
}

/// A proxy that cannot be reached: the worker says so on stderr (without
/// the proxy's password) while the jobs stay pending, not only in counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing_redis, ignore = "needs redis-server: apt install redis-server")]
async fn a_worker_says_why_its_sends_fail() {
    let s = setup(false, |m| m).await;
    s.enqueue(3, &["--topic", BUNDLE]).await;
    // Nothing listens on a port just released.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let proxy = format!("http://bob:pw-secret@127.0.0.1:{port}");
    let w = s.worker("w1", &["--proxy", &proxy, "--timeout", "2"]);
    let mut said = String::new();
    wait_until_async(
        "the worker says sends are failing",
        Duration::from_secs(30),
        async || {
            said = w.stderr();
            said.contains("sends are failing")
        },
    )
    .await;
    let all = stop(w).await;
    assert!(said.contains("sends are failing"), "{all}");
    assert!(said.contains("cannot reach the proxy"), "{all}");
    assert!(!all.contains("pw-secret"), "{all}");
    let mut c = s.redis.conn().await;
    assert_eq!(rs::pending(&mut c).await, 3, "the jobs stay pending: {all}");
}
