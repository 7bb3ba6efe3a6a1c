//! The soak run (issue 19): `apns serve --redis` and two `apns worker`s
//! against `apns mock` processes, with steady traffic and faults on a
//! cycle (a 503 storm, GOAWAY and a dropped connection, a Redis restart, a
//! worker SIGKILLed and replaced, a black hole, hostile clients: silent
//! sockets above `--max-connections`, slowloris, bodies far over
//! `--max-body`, bad tokens). At the end every accepted batch's jobs have
//! exactly one result each, nothing is pending, the RSS of every process is
//! flat after warm-up (slopes printed), and nothing died but what the test
//! killed. `APNS_SOAK_SECS` sets the length (default 150 s; at least 120):
//! `APNS_SOAK_SECS=1800 cargo test --release --test tests soak -- --nocapture`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::bulk::token;
use crate::support::redis::{self as rs, Redis};
use crate::support::soak::{self, Proc, Relay};
use crate::support::{apns, new_key_pem, temp_dir, write_file, BUNDLE, KEY_ID, TEAM_ID};

const TOKEN: &str = "soak-token-0123456789abcdef";
/// Notifications per batch, and a batch every TICK.
const BATCH: u64 = 20;
const TICK: Duration = Duration::from_millis(100);
/// Batches waiting for an answer at once; a tick beyond that is skipped.
const MAX_WAITING: u64 = 32;
/// How long a request may wait for its answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// Attempts per batch (503 and no answer are retried a second later).
const ATTEMPTS: u32 = 5;
/// The good clients' address, and the hostile ones' (so that a per-address
/// limit can tell them apart).
const GOOD: [u8; 4] = [127, 0, 0, 1];
const SILENT: [u8; 4] = [127, 0, 0, 2];
const SLOW: [u8; 4] = [127, 0, 0, 3];
const HOSTILE: [u8; 4] = [127, 0, 0, 4];
/// The gateway's limits under test.
const MAX_CONNECTIONS: usize = 64;
const HUGE: usize = 8 << 20; // with --max-body 64KiB
/// The deadline the issue sets for a connection that sends no request.
const FIRST_REQUEST_DEADLINE: f64 = 10.0;
/// HTTP/2 connections that never open a stream, and slowloris ones.
const H2_IDLE: usize = 8;
const SLOWLORIS: usize = 4;
/// The attackers let go this long before their phase ends.
const HOSTILE_EARLY: f64 = 0.5;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Calm,
    Storm,
    RedisRestart,
    GoAway,
    WorkerKill,
    BlackHole,
    Hostile,
}

const CYCLE: [Kind; 8] = [
    Kind::Calm,
    Kind::Storm,
    Kind::RedisRestart,
    Kind::GoAway,
    Kind::WorkerKill,
    Kind::BlackHole,
    Kind::Hostile,
    Kind::Calm,
];

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Calm => "calm",
            Kind::Storm => "503 storm (mock --storm 503:50)",
            Kind::RedisRestart => "Redis restart",
            Kind::GoAway => "GOAWAY + dropped connection",
            Kind::WorkerKill => "worker SIGKILL + new worker",
            Kind::BlackHole => "black hole (5 s)",
            Kind::Hostile => "hostile: 80 silent, 8 HTTP/2 idle, slowloris",
        }
    }
}

/// One phase of the run, in seconds from its start.
struct Phase {
    kind: Kind,
    start: f64,
    end: f64,
}

/// What happened during one phase (a request counts in the phase it
/// started in).
#[derive(Default, Clone)]
struct Counts {
    batches: u64,
    accepted: u64,
    answered_503: u64,
    no_answer: u64,
    other: u64,
    skipped: u64,
    given_up: u64,
    health_ok: u64,
    health_fail: u64,
    bad_token: u64,
    bad_token_wrong: u64,
    huge: u64,
    huge_413: u64,
    huge_cut: u64,
    huge_wrong: u64,
}

/// State shared by the soak's tasks.
struct Shared {
    start: Instant,
    phase: AtomicUsize,
    counts: Mutex<Vec<Counts>>,
    /// Job ids from 202 answers.
    jobs: Mutex<HashSet<String>>,
    /// Device tokens of attempts answered otherwise or not at all: part of
    /// such a batch may have been enqueued.
    unsure: Mutex<HashSet<String>>,
    /// When 202s and healthy /healthz answers came (seconds).
    accepted_at: Mutex<Vec<f64>>,
    healthy_at: Mutex<Vec<f64>>,
    /// The first unexpected answers, said as they were.
    surprises: Mutex<Vec<String>>,
    next_token: AtomicU64,
    waiting: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
    fn phase(&self) -> usize {
        self.phase.load(Ordering::Relaxed)
    }
    fn count(&self, phase: usize, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap()[phase]);
    }
    fn surprise(&self, what: String) {
        let mut s = self.surprises.lock().unwrap();
        if s.len() < 20 {
            s.push(what);
        }
    }
}

/// What every process of the soak is started with.
struct Setup {
    dir: tempfile::TempDir,
    key_path: PathBuf,
    bundle: PathBuf,
    redis_url: String,
    endpoint: String,
}

impl Setup {
    fn mock(&self, name: &str, extra: &[&str], sampled: bool) -> (Arc<Proc>, SocketAddr) {
        let mut cmd = apns();
        cmd.args(["mock", "--listen", "127.0.0.1:0", "--keep", "1000"])
            .arg("--ca-out")
            .arg(self.dir.path().join(format!("{name}-ca.pem")))
            .arg("--trust-key")
            .arg(format!("{KEY_ID}={TEAM_ID}:{}", self.key_path.display()))
            .args(extra);
        let p = Proc::spawn(name, cmd, true, sampled);
        let addr = p.ready["endpoint"]
            .as_str()
            .and_then(|e| e.strip_prefix("https://"))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{name}'s ready line: {}", p.ready));
        (Arc::new(p), addr)
    }

    fn worker(&self, name: &str) -> Arc<Proc> {
        let mut cmd = apns();
        cmd.args(["worker", "--redis", &self.redis_url, "--consumer", name])
            .arg("--key-file")
            .arg(&self.key_path)
            .args(["--team-id", TEAM_ID, "--topic", BUNDLE])
            .args(["--endpoint", &self.endpoint])
            .arg("--ca-file")
            .arg(&self.bundle)
            .args(["--timeout", "10", "--claim-idle", "15s"])
            .args(["--max-deliveries", "50", "--concurrency", "200"])
            .args(["--stats-interval", "5s"]);
        Arc::new(Proc::spawn(name, cmd, false, true))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_two_workers_hold_through_cycling_faults() {
    let asked: f64 = std::env::var("APNS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite())
        .unwrap_or(150.0);
    // Phases of 18 to 30 s: the hostile phase must outlast the 10 s
    // first-request deadline by a few seconds.
    let phase_len = (asked / 8.0).clamp(18.0, 30.0);
    let n_phases = ((asked / phase_len).round() as usize).max(CYCLE.len());
    let cycles = n_phases.div_ceil(CYCLE.len());
    let phases: Vec<Phase> = (0..n_phases)
        .map(|i| Phase {
            kind: CYCLE[i % CYCLE.len()],
            start: i as f64 * phase_len,
            end: (i + 1) as f64 * phase_len,
        })
        .collect();
    let run_secs = n_phases as f64 * phase_len;

    let Some(mut redis) = Redis::start("serve_and_two_workers_hold_through_cycling_faults", true)
    else {
        return;
    };
    let dir = temp_dir();
    let key_path = write_file(
        dir.path(),
        &format!("AuthKey_{KEY_ID}.p8"),
        new_key_pem().as_bytes(),
    );
    let tokens_file = write_file(dir.path(), "api-tokens", format!("{TOKEN}\n").as_bytes());
    let mut setup = Setup {
        bundle: dir.path().join("mock-cas.pem"),
        dir,
        key_path,
        redis_url: redis.url(),
        endpoint: String::new(),
    };

    // Every mock the run needs, started now: their CAs go in one bundle.
    let fleet: Arc<Mutex<Vec<Arc<Proc>>>> = Arc::default();
    let add = |p: &Arc<Proc>| fleet.lock().unwrap().push(p.clone());
    let (normal, normal_addr) = setup.mock("mock", &[], true);
    let (hole, hole_addr) = setup.mock("mock-black-hole", &["--black-hole"], true);
    add(&normal);
    add(&hole);
    let mut storms = Vec::new();
    let mut goaways = Vec::new();
    for c in 0..cycles {
        let one = ["--threads", "1"];
        let (p, a) = setup.mock(
            &format!("mock-storm-{c}"),
            &[&one[..], &["--storm", "503:50"]].concat(),
            false,
        );
        add(&p);
        storms.push(a);
        let faults = ["--goaway-after", "100", "--drop-after", "400"];
        let (p, a) = setup.mock(
            &format!("mock-goaway-{c}"),
            &[&one[..], &faults[..]].concat(),
            false,
        );
        add(&p);
        goaways.push(a);
    }
    let mut bundle = String::new();
    for p in fleet.lock().unwrap().iter() {
        let path = setup.dir.path().join(format!("{}-ca.pem", p.name));
        bundle.push_str(&std::fs::read_to_string(path).unwrap());
    }
    std::fs::write(&setup.bundle, bundle).unwrap();
    let relay = Relay::start(normal_addr).await;
    setup.endpoint = format!("https://127.0.0.1:{}", relay.port);

    let mut cmd = apns();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--redis", &redis.url()])
        .arg("--api-token-file")
        .arg(&tokens_file)
        .arg("--key-file")
        .arg(&setup.key_path)
        .args(["--team-id", TEAM_ID, "--topic", BUNDLE])
        .args(["--endpoint", &setup.endpoint])
        .arg("--ca-file")
        .arg(&setup.bundle)
        .args(["--max-connections", &MAX_CONNECTIONS.to_string()])
        .args(["--max-body", "64KiB", "--shutdown-grace", "5"]);
    let serve = Arc::new(Proc::spawn("serve", cmd, true, true));
    add(&serve);
    let gateway: SocketAddr = serve.ready["listen"]
        .as_str()
        .and_then(|l| l.strip_prefix("http://"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("serve's ready line: {}", serve.ready));
    let mut workers = vec![setup.worker("w1"), setup.worker("w2")];
    workers.iter().for_each(&add);

    let shared = Arc::new(Shared {
        start: Instant::now(),
        phase: AtomicUsize::new(0),
        counts: Mutex::new(vec![Counts::default(); n_phases]),
        jobs: Mutex::default(),
        unsure: Mutex::default(),
        accepted_at: Mutex::default(),
        healthy_at: Mutex::default(),
        surprises: Mutex::default(),
        next_token: AtomicU64::new(1),
        waiting: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let deaths: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sampler = tokio::spawn(sample(
        shared.clone(),
        fleet.clone(),
        deaths.clone(),
        phases_kinds(&phases),
    ));
    let traffic = tokio::spawn(traffic(shared.clone(), gateway));
    let probes = tokio::spawn(probes(shared.clone(), gateway));
    let mut hostiles = Vec::new();
    let mut held_reports = Vec::new();

    // The faults, phase by phase.
    let mut next_worker = 3;
    // The fault mocks switched to: each must have had traffic.
    let mut used: Vec<(SocketAddr, String)> = vec![(normal_addr, "mock".into())];
    for (i, phase) in phases.iter().enumerate() {
        shared.phase.store(i, Ordering::Relaxed);
        let cycle = i / CYCLE.len();
        let until = shared.start + Duration::from_secs_f64(phase.end);
        if relay.backend() != normal_addr {
            relay.switch(normal_addr);
        }
        match phase.kind {
            Kind::Calm => {}
            Kind::Storm => {
                relay.switch(storms[cycle]);
                used.push((storms[cycle], format!("mock-storm-{cycle}")));
            }
            Kind::GoAway => {
                relay.switch(goaways[cycle]);
                used.push((goaways[cycle], format!("mock-goaway-{cycle}")));
            }
            Kind::RedisRestart => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tokio::task::block_in_place(|| redis.stop());
                tokio::time::sleep(Duration::from_secs(2)).await;
                tokio::task::block_in_place(|| redis.start_again());
            }
            Kind::WorkerKill => {
                // w1 lives through the run; the second slot is replaced.
                let victim = workers.pop().unwrap();
                victim.kill_on_purpose().await;
                let fresh = setup.worker(&format!("w{next_worker}"));
                next_worker += 1;
                add(&fresh);
                workers.push(fresh);
            }
            Kind::BlackHole => {
                relay.switch(hole_addr);
                used.push((hole_addr, "mock-black-hole".into()));
                tokio::time::sleep(Duration::from_secs(5)).await;
                relay.switch(normal_addr);
            }
            Kind::Hostile => {
                let until = shared.start + Duration::from_secs_f64(phase.end - HOSTILE_EARLY);
                hostiles.push(tokio::spawn(async move {
                    let silent = soak::silent_sockets(SILENT, gateway, MAX_CONNECTIONS + 16, until);
                    let h2 = soak::h2_idle(SILENT, gateway, H2_IDLE, until);
                    let slow = soak::slowloris(SLOW, gateway, SLOWLORIS, until);
                    let (silent, h2, slow) = tokio::join!(silent, h2, slow);
                    format!(
                        "phase {i}: silent sockets: {}; HTTP/2 preface only: {}; slowloris: {}",
                        silent.describe(),
                        h2.describe(),
                        slow.describe()
                    )
                }));
                for _ in 0..2 {
                    hostiles_burst(shared.clone(), gateway, i, until);
                }
            }
        }
        tokio::time::sleep_until(until.into()).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    relay.switch(normal_addr);
    let _ = traffic.await;
    let _ = probes.await;
    for h in hostiles {
        held_reports.extend(h.await.ok());
    }
    let ran = shared.now();

    let mut failures: Vec<String> = Vec::new();
    // Drain: the workers finish every job.
    let drain = soak::drain(&redis, Duration::from_secs(180)).await;
    let drained_in = shared.now() - ran;
    if let Err(e) = &drain {
        failures.push(format!("drain: {e}"));
    }
    let mut c = redis.conn().await;
    let results = soak::all_entries(&mut c, "apns:results")
        .await
        .expect("XRANGE results");
    let dead = rs::len(&mut c, "apns:dead").await;
    let mut report = String::new();
    soak::check_results(
        &shared.jobs.lock().unwrap(),
        &shared.unsure.lock().unwrap(),
        &results,
        dead,
        &mut failures,
        &mut report,
    );

    // Nothing died but what was killed; then everything stops cleanly.
    let _ = sampler.await;
    for (_, what) in deaths.lock().unwrap().iter() {
        failures.push(what.clone());
    }
    let died: HashSet<String> = deaths.lock().unwrap().iter().map(|d| d.0.clone()).collect();
    let all: Vec<Arc<Proc>> = fleet.lock().unwrap().clone();
    let mut stop_lines = Vec::new();
    for p in all
        .iter()
        .filter(|p| !p.killed_on_purpose() && !died.contains(&p.name))
    {
        if let Some(status) = p.exited() {
            failures.push(format!(
                "{} exited ({status}) before the end: {}",
                p.name,
                p.stderr_tail(2000)
            ));
            continue;
        }
        match p.terminate(Duration::from_secs(60)).await {
            Some(s) if s.success() => {}
            Some(s) => failures.push(format!(
                "{} exited with {s} after SIGTERM: {}",
                p.name,
                p.stderr_tail(2000)
            )),
            None => failures.push(format!(
                "{} did not exit within 60 s of SIGTERM: {}",
                p.name,
                p.stderr_tail(2000)
            )),
        }
        let said = p.stderr();
        let stop_line = |l: &&str| l.contains("stopped:") || l.contains("stopping after");
        if let Some(line) = said.lines().rev().find(stop_line) {
            stop_lines.push(format!("{}: {line}", p.name));
        }
    }

    // The figures.
    let counts = shared.counts.lock().unwrap().clone();
    let accepted_at = shared.accepted_at.lock().unwrap().clone();
    let healthy_at = shared.healthy_at.lock().unwrap().clone();
    let _ = writeln!(
        report,
        "soak: {run_secs:.0} s asked {asked:.0} s ({n_phases} phases of {phase_len:.1} s), ran {ran:.0} s, drained in {drained_in:.0} s; relay: {} connections cut by switches",
        relay.cut.load(Ordering::Relaxed)
    );
    used.dedup();
    let traffic = relay.traffic.lock().unwrap().clone();
    for (addr, name) in &used {
        let (conns, bytes) = traffic.get(addr).copied().unwrap_or_default();
        let _ = writeln!(
            report,
            "relay to {name}: {conns} connections, {:.0} KiB sent to it",
            bytes as f64 / 1024.0
        );
        // A black hole gets one request per connection (the mock allows
        // one stream until a token is answered); the client waits on it.
        if conns == 0 || bytes == 0 {
            failures.push(format!(
                "{name} got {bytes} bytes on {conns} connections: its fault was not exercised"
            ));
        }
    }
    let _ = writeln!(report, "phase  t (s)      kind                                    batches  202   503  no-answer other skipped gave-up healthz ok/fail  bad-token (wrong)  huge 413+503/cut/wrong");
    for (i, (p, n)) in phases.iter().zip(&counts).enumerate() {
        let _ = writeln!(
            report,
            "{i:>5}  {:>4.0}-{:<4.0}  {:<40} {:>7} {:>5} {:>5} {:>9} {:>5} {:>7} {:>7} {:>7}/{:<7} {:>6} ({})  {:>5} {}/{}/{}",
            p.start, p.end, p.kind.describe(), n.batches, n.accepted, n.answered_503, n.no_answer,
            n.other, n.skipped, n.given_up, n.health_ok, n.health_fail, n.bad_token,
            n.bad_token_wrong, n.huge, n.huge_413, n.huge_cut, n.huge_wrong
        );
        let window = |from: f64, v: &[f64]| v.iter().filter(|t| **t >= from && **t < p.end).count();
        if window(p.start, &accepted_at) == 0 {
            failures.push(format!("phase {i} '{}' ({:.0}-{:.0} s): no batch was answered 202 during it ({} started, {} no answer, {} answered 503)", p.kind.describe(), p.start, p.end, n.batches, n.no_answer, n.answered_503));
        }
        if p.kind == Kind::Hostile {
            // Once the first-request deadline has passed, the gateway
            // serves good clients and /healthz again, attackers or not.
            // Answers after the attackers let go do not count.
            let (from, to) = (
                p.start + FIRST_REQUEST_DEADLINE + 2.0,
                p.end - HOSTILE_EARLY,
            );
            let within = |v: &[f64]| v.iter().filter(|t| **t >= from && **t < to).count();
            let (served, healthy) = (within(&accepted_at), within(&healthy_at));
            if served == 0 || healthy == 0 {
                failures.push(format!("phase {i} '{}': from {from:.1} s (its start + the {FIRST_REQUEST_DEADLINE} s first-request deadline + 2 s) to {to:.1} s, while {} silent sockets and {H2_IDLE} idle HTTP/2 ones (from 127.0.0.2, reopened when closed) and {SLOWLORIS} slowloris were open against --max-connections {MAX_CONNECTIONS}: {served} batches answered 202 and {healthy} /healthz answered 200: unauthenticated clients starve the gateway", p.kind.describe(), MAX_CONNECTIONS + 16));
            }
        }
        let problems = [
            (
                n.no_answer,
                "attempts without an HTTP answer within 30 s (or cut)",
            ),
            (n.other, "good batches answered neither 202 nor 503"),
            (n.given_up, "batches given up after 5 attempts"),
            (
                n.bad_token_wrong,
                "bad-token requests answered other than 401/431",
            ),
            (
                n.huge_wrong,
                "huge bodies answered other than 413 or 503 (or left unanswered)",
            ),
        ];
        for (k, what) in problems {
            if k > 0 {
                failures.push(format!(
                    "phase {i} '{}' ({:.0}-{:.0} s): {k} {what}",
                    p.kind.describe(),
                    p.start,
                    p.end
                ));
            }
        }
    }
    for line in &held_reports {
        let _ = writeln!(report, "{line}");
    }
    soak::rss_table(&all, &mut failures, &mut report);
    for line in &stop_lines {
        let _ = writeln!(report, "{line}");
    }
    let surprises = shared.surprises.lock().unwrap().clone();
    for s in &surprises {
        let _ = writeln!(report, "unexpected: {s}");
    }
    println!("{report}");
    assert!(
        failures.is_empty(),
        "the soak found {} problem(s):\n- {}\n\n{report}",
        failures.len(),
        failures.join("\n- ")
    );
}

fn phases_kinds(phases: &[Phase]) -> Vec<&'static str> {
    phases.iter().map(|p| p.kind.describe()).collect()
}

/// Every 2 s: each process's RSS, and whether one died unasked.
async fn sample(
    shared: Arc<Shared>,
    fleet: Arc<Mutex<Vec<Arc<Proc>>>>,
    deaths: Arc<Mutex<Vec<(String, String)>>>,
    kinds: Vec<&'static str>,
) {
    while !shared.stop.load(Ordering::Relaxed) {
        let t = shared.now();
        let procs: Vec<Arc<Proc>> = fleet.lock().unwrap().clone();
        for p in procs {
            if let Some(status) = p.exited() {
                // Killed on purpose is flagged before the signal.
                let mut d = deaths.lock().unwrap();
                if !p.killed_on_purpose() && !d.iter().any(|(n, _)| *n == p.name) {
                    let i = shared.phase();
                    d.push((p.name.clone(), format!(
                        "{} (pid {}) died unasked ({status}) during phase {i} '{}' at {t:.0} s; its stderr ends: {}",
                        p.name, p.pid(), kinds[i], p.stderr_tail(1500)
                    )));
                }
            } else if p.sampled {
                p.sample(t);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A batch every TICK until the stop, each retried on 503 or no answer.
async fn traffic(shared: Arc<Shared>, gateway: SocketAddr) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut batches = tokio::task::JoinSet::new();
    while !shared.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        while batches.try_join_next().is_some() {}
        if shared.waiting.load(Ordering::Relaxed) >= MAX_WAITING {
            shared.count(shared.phase(), |c| c.skipped += 1);
            continue;
        }
        shared.waiting.fetch_add(1, Ordering::Relaxed);
        batches.spawn(batch(shared.clone(), gateway));
    }
    while batches.join_next().await.is_some() {}
}

async fn batch(shared: Arc<Shared>, gateway: SocketAddr) {
    let first = shared.next_token.fetch_add(BATCH, Ordering::Relaxed);
    let tokens: Vec<String> = (first..first + BATCH).map(token).collect();
    let body = serde_json::Value::Array(
        tokens
            .iter()
            .map(|t| serde_json::json!({"device_token": t, "payload": {"aps": {"alert": "soak"}}}))
            .collect(),
    )
    .to_string();
    let phase = shared.phase();
    shared.count(phase, |c| c.batches += 1);
    let auth = format!("Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n");
    let mut done = false;
    for _ in 0..ATTEMPTS {
        let reply = soak::request(
            GOOD,
            gateway,
            "POST",
            "/v1/notifications",
            &auth,
            body.as_bytes(),
            ANSWER_LIMIT,
        )
        .await;
        match reply {
            Ok((202, answer)) => {
                let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
                let ids: Vec<String> = v["jobs"]
                    .as_array()
                    .map(|jobs| {
                        jobs.iter()
                            .filter_map(|j| j["job"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                if ids.len() as u64 != BATCH {
                    shared.surprise(format!(
                        "a 202 without {BATCH} job ids: {}",
                        String::from_utf8_lossy(&answer)
                    ));
                    shared.count(phase, |c| c.other += 1);
                }
                shared.jobs.lock().unwrap().extend(ids);
                shared.accepted_at.lock().unwrap().push(shared.now());
                shared.count(phase, |c| c.accepted += 1);
                done = true;
                break;
            }
            Ok((503, _)) => shared.count(phase, |c| c.answered_503 += 1),
            Ok((status, answer)) => {
                shared.surprise(format!(
                    "phase {phase}: a good batch answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                ));
                shared.count(phase, |c| c.other += 1);
                shared.unsure.lock().unwrap().extend(tokens.iter().cloned());
                done = true;
                break;
            }
            Err(e) => {
                shared.surprise(format!(
                    "phase {phase} at {:.0} s: a good batch: {e}",
                    shared.now()
                ));
                shared.count(phase, |c| c.no_answer += 1);
            }
        }
        // Part of it may have been enqueued.
        shared.unsure.lock().unwrap().extend(tokens.iter().cloned());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if !done {
        shared.count(phase, |c| c.given_up += 1);
    }
    shared.waiting.fetch_sub(1, Ordering::Relaxed);
}

/// Every second: /healthz, a request with a bad token, and every third
/// second a body far over --max-body, until the stop.
async fn probes(shared: Arc<Shared>, gateway: SocketAddr) {
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let phase = shared.phase();
        let s = shared.clone();
        tokio::spawn(async move {
            let reply = soak::request(
                GOOD,
                gateway,
                "GET",
                "/healthz",
                "",
                b"",
                Duration::from_secs(5),
            )
            .await;
            if matches!(reply, Ok((200, _))) {
                s.healthy_at.lock().unwrap().push(s.now());
                s.count(phase, |c| c.health_ok += 1);
            } else {
                s.count(phase, |c| c.health_fail += 1);
            }
        });
        tokio::spawn(bad_token(shared.clone(), gateway, phase, n));
        if n.is_multiple_of(3) {
            tokio::spawn(huge(shared.clone(), gateway, phase, n.is_multiple_of(2)));
        }
        n += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// More bad tokens and huge bodies, back to back, until `until`.
fn hostiles_burst(shared: Arc<Shared>, gateway: SocketAddr, phase: usize, until: Instant) {
    tokio::spawn(async move {
        let mut n = 0u64;
        while Instant::now() < until {
            tokio::join!(
                bad_token(shared.clone(), gateway, phase, n),
                huge(shared.clone(), gateway, phase, n % 2 == 1)
            );
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

async fn bad_token(shared: Arc<Shared>, gateway: SocketAddr, phase: usize, n: u64) {
    let long = format!("Authorization: Bearer {}\r\n", "x".repeat(16 * 1024));
    let header = match n % 3 {
        0 => "Authorization: Bearer soak-token-0123456789abcdeX\r\n".to_string(),
        1 => String::new(),
        _ => long,
    };
    let body = br#"{"device_token":"00aa","payload":{"aps":{"alert":"x"}}}"#;
    let reply = soak::request(
        HOSTILE,
        gateway,
        "POST",
        "/v1/notifications",
        &header,
        body,
        ANSWER_LIMIT,
    )
    .await;
    shared.count(phase, |c| c.bad_token += 1);
    match reply {
        Ok((401, _)) => {}
        Ok((431, _)) if n % 3 == 2 => {}
        Ok((status, answer)) => {
            shared.surprise(format!(
                "phase {phase}: a bad token (variant {}) answered {status}: {}",
                n % 3,
                String::from_utf8_lossy(&answer)
            ));
            shared.count(phase, |c| c.bad_token_wrong += 1);
        }
        // The long header may be refused by closing; silence is not fine.
        Err(e) if e.starts_with("closed") && n % 3 == 2 => {}
        Err(e) => {
            shared.surprise(format!(
                "phase {phase}: a bad token (variant {}): {e}",
                n % 3
            ));
            shared.count(phase, |c| c.bad_token_wrong += 1);
        }
    }
}

async fn huge(shared: Arc<Shared>, gateway: SocketAddr, phase: usize, chunked: bool) {
    let reply = soak::huge_body(HOSTILE, gateway, TOKEN, HUGE, chunked, ANSWER_LIMIT).await;
    shared.count(phase, |c| c.huge += 1);
    match reply {
        // 503: refused as overload before its body was read.
        Ok((413 | 503, _)) => shared.count(phase, |c| c.huge_413 += 1),
        // Refused by closing midway (the answer may be lost to the reset).
        Err(e) if e.starts_with("closed") => shared.count(phase, |c| c.huge_cut += 1),
        other => {
            let said = match other {
                Ok((s, b)) => format!("{s} {}", String::from_utf8_lossy(&b[..b.len().min(300)])),
                Err(e) => e,
            };
            shared.surprise(format!(
                "phase {phase}: an {HUGE}-byte body (chunked: {chunked}): {said}"
            ));
            shared.count(phase, |c| c.huge_wrong += 1);
        }
    }
}
