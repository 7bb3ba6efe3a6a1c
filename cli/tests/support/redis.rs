//! A real `redis-server` for the worker tests: started on a free loopback
//! port in a temporary directory, restarted on the same port and data
//! (for the outage test), stopped when dropped. Also what the worker tests
//! share: reading streams, `apns worker` processes, and a setup of Redis,
//! mock, key and CA.
//!
//! Where `redis-server` is not installed these tests are ignored (see
//! [`super::prerequisites`]); under `CI=true` they fail.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use apns_provider::mock::{MockServer, MockServerBuilder};
use apns_provider::worker::JobResult;

use super::bulk::token;
use super::KEY_ID;
use super::{apns, mock_for, new_key_pem, run, stderr, stdout, temp_dir, write_file};
use super::{wait_until, wait_until_async};

/// A running Redis, with its data directory.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    appendonly: bool,
    /// More `redis-server` arguments (`--requirepass PW`), kept for restarts.
    extra: Vec<String>,
}

impl Redis {
    /// Starts a Redis; `appendonly` makes it keep its data across
    /// restarts. Fails the test when `redis-server` is missing.
    pub fn start(appendonly: bool) -> Redis {
        Redis::start_with(appendonly, &[])
    }

    /// [`start`](Redis::start) with more `redis-server` arguments, such as
    /// `--requirepass PW`.
    pub fn start_with(appendonly: bool, extra: &[&str]) -> Redis {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        super::require(super::Prerequisite::Redis);
        let dir = tempfile::tempdir().expect("temp dir");
        // A random port, tried for real: another one if it is taken.
        for attempt in 0..50u32 {
            let port = 20_000 + (uuid::Uuid::new_v4().as_u128() % 40_000) as u16;
            match spawn(dir.path(), port, appendonly, &extra) {
                Ok(child) => {
                    return Redis {
                        child: Some(child),
                        port,
                        dir,
                        appendonly,
                        extra,
                    }
                }
                Err(log) if log.contains("in use") && attempt < 49 => continue,
                Err(log) => panic!("redis-server did not start: {log}"),
            }
        }
        unreachable!()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A connection for the test's own commands.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        // Reading 20,000 results takes longer than the default 500 ms.
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect to the test Redis")
    }

    /// Stops Redis as an operator would (SIGTERM: with appendonly it
    /// writes its data out), and waits until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        // The port was just freed; the restart retries a moment if the
        // kernel has not released it yet.
        let what = format!("redis-server starts again on port {}", self.port);
        wait_until(&what, Duration::from_secs(10), || {
            match spawn(self.dir.path(), self.port, self.appendonly, &self.extra) {
                Ok(child) => {
                    self.child = Some(child);
                    true
                }
                Err(log) if log.contains("in use") => false,
                Err(log) => panic!("redis-server did not start again: {log}"),
            }
        });
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `redis-server` in the foreground and waits for its "Ready to accept
/// connections" line; `Err` with its log when it exits instead.
fn spawn(
    dir: &std::path::Path,
    port: u16,
    appendonly: bool,
    extra: &[String],
) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
        .args(["--appendonly", if appendonly { "yes" } else { "no" }])
        .args(["--logfile", ""])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-server: {e}"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut log = String::new();
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        log.push_str(&line);
        log.push('\n');
        if line.contains("Ready to accept connections") {
            // Keep reading its log, so that it never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Ok(child);
        }
    }
    let _ = child.wait();
    Err(log)
}

/// Every entry of a stream: its id and fields.
pub async fn entries(
    c: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Vec<(String, Vec<(String, String)>)> {
    redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(c)
        .await
        .expect("XRANGE")
}

/// Every result entry.
pub async fn results(
    c: &mut redis::aio::MultiplexedConnection,
) -> Vec<apns_provider::worker::JobResult> {
    entries(c, "apns:results")
        .await
        .into_iter()
        .map(|(_, f)| apns_provider::worker::JobResult::from_fields(&f).unwrap())
        .collect()
}

pub async fn len(c: &mut redis::aio::MultiplexedConnection, stream: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(c)
        .await
        .expect("XLEN")
}

/// Entries pending in the group `apns` of `apns:jobs`, all consumers.
pub async fn pending(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let v: redis::Value = redis::cmd("XPENDING")
        .arg("apns:jobs")
        .arg("apns")
        .query_async(c)
        .await
        .expect("XPENDING");
    match v {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            _ => 0,
        },
        _ => 0,
    }
}

/// The entries pending with one consumer.
pub async fn pending_with(
    c: &mut redis::aio::MultiplexedConnection,
    consumer: &str,
) -> Vec<String> {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg("apns:jobs")
        .arg("apns")
        .arg("-")
        .arg("+")
        .arg(1_000_000)
        .arg(consumer)
        .query_async(c)
        .await
        .expect("XPENDING");
    rows.into_iter().map(|r| r.0).collect()
}

/// Waits until `stream` holds at least `n` entries, failing after `limit`.
/// The connection is reopened after an error (Redis may be restarting).
pub async fn wait_for_len(redis: &Redis, stream: &str, n: u64, limit: Duration) {
    let mut conn = None;
    wait_until_async(&format!("{stream} holds {n} entries"), limit, async || {
        if conn.is_none() {
            if let Ok(client) = redis::Client::open(redis.url()) {
                conn = client.get_multiplexed_async_connection().await.ok();
            }
        }
        let Some(c) = conn.as_mut() else { return false };
        match redis::cmd("XLEN").arg(stream).query_async::<u64>(c).await {
            Ok(len) => len >= n,
            Err(_) => {
                // Reopened next time: Redis may be restarting.
                conn = None;
                false
            }
        }
    })
    .await;
}

/// An `apns worker` process, its stderr collected as it goes.
pub struct WorkerProcess {
    child: Option<Child>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub name: String,
}

impl WorkerProcess {
    pub fn spawn(mut cmd: Command, name: &str) -> WorkerProcess {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start apns worker");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        WorkerProcess {
            child: Some(child),
            stderr,
            reader: Some(reader),
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends `signal` (TERM, INT, KILL).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for it to exit (at most `limit`): its exit code and stderr.
    pub async fn wait(mut self, limit: Duration) -> (Option<i32>, String) {
        let mut child = self.child.take().unwrap();
        let pid = child.id();
        let reader = self.reader.take().unwrap();
        let stderr = self.stderr.clone();
        let name = self.name.clone();
        let waited = tokio::time::timeout(
            limit,
            tokio::task::spawn_blocking(move || {
                let status = child.wait().unwrap();
                reader.join().unwrap();
                status
            }),
        )
        .await;
        let text = stderr.lock().unwrap().clone();
        match waited {
            Ok(status) => (status.unwrap().code(), text),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("worker {name} did not exit within {limit:?}: {text}")
            }
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// The worker tests' common setup.

/// A Redis, a mock, a key and the mock's CA.
pub struct Setup {
    pub redis: Redis,
    pub mock: MockServer,
    pub dir: tempfile::TempDir,
    pub key_path: std::path::PathBuf,
    pub ca_path: std::path::PathBuf,
}

/// Fails the test when `redis-server` is missing.
pub async fn setup(
    appendonly: bool,
    tweak: impl FnOnce(MockServerBuilder) -> MockServerBuilder,
) -> Setup {
    let redis = Redis::start(appendonly);
    let dir = temp_dir();
    let pem = new_key_pem();
    let key_path = write_file(dir.path(), &format!("AuthKey_{KEY_ID}.p8"), pem.as_bytes());
    let key = apns_provider::SigningKey::from_pem(pem.as_bytes()).unwrap();
    let mock = tweak(mock_for(&key)).start().await.unwrap();
    let ca_path = dir.path().join("ca.pem");
    mock.write_ca_file(&ca_path).unwrap();
    Setup {
        redis,
        mock,
        dir,
        key_path,
        ca_path,
    }
}

impl Setup {
    /// `apns worker` with the key, topic, mock and a short claim time.
    pub fn worker(&self, name: &str, extra: &[&str]) -> WorkerProcess {
        let url = self.redis.url();
        let words = ["worker", "--redis", &url, "--consumer", name];
        let mut cmd = super::apns_with_key(&words, self, &self.key_path);
        cmd.args(["--stats-interval", "1s"]).args(extra);
        if !extra.contains(&"--claim-idle") {
            cmd.args(["--claim-idle", "2s"]);
        }
        WorkerProcess::spawn(cmd, name)
    }

    /// `apns enqueue` of `n` tokens; returns its JSON line.
    pub async fn enqueue(&self, n: u64, extra: &[&str]) -> serde_json::Value {
        let text: String = (1..=n).map(|i| token(i) + "\n").collect();
        let file = write_file(self.dir.path(), "tokens.txt", text.as_bytes());
        let mut cmd = apns();
        cmd.args(["enqueue", "--redis", &self.redis.url(), "--alert", "hi"])
            .args(extra)
            .arg("--tokens-file")
            .arg(&file);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert_eq!(line["enqueued"], n, "{line}");
        line
    }
}

/// Each of `n` tokens has exactly one result; returns them by token.
pub fn one_result_each(results: &[JobResult], n: u64) -> HashMap<String, JobResult> {
    let mut by_token: HashMap<String, JobResult> = HashMap::new();
    for r in results {
        let earlier = by_token.insert(r.device_token.clone(), r.clone());
        assert!(
            earlier.is_none(),
            "two results for {}: {r:?}",
            r.device_token
        );
    }
    let jobs: HashSet<&str> = results.iter().map(|r| r.job.as_str()).collect();
    assert_eq!(jobs.len(), results.len(), "one result per job id");
    for i in 1..=n {
        assert!(by_token.contains_key(&token(i)), "no result for job {i}");
    }
    assert_eq!(results.len() as u64, n);
    by_token
}

/// How often the mock accepted each device token.
pub fn accepted_by_token(mock: &MockServer) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for a in mock.accepted() {
        *counts.entry(a.device_token).or_default() += 1;
    }
    counts
}

pub async fn stop(worker: WorkerProcess) -> String {
    worker.signal("TERM");
    let name = worker.name.clone();
    let (code, err) = worker.wait(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "worker {name} after SIGTERM: {err}");
    err
}
