//! The soak's child processes: started, watched for their death, sampled for RSS, stopped.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{apns, apns_with_key, At, KEY_ID, TEAM_ID};

/// How much of a process's stderr is kept (its tail).
const TAIL: usize = 32 * 1024;

/// A child process of the soak, sampled for RSS and checked for death.
pub struct Proc {
    pub name: String,
    pid: u32,
    child: Mutex<Option<Child>>,
    tail: Arc<Mutex<String>>,
    /// Its JSON ready line on stdout, when it prints one.
    pub ready: serde_json::Value,
    /// Whether its RSS is sampled.
    pub sampled: bool,
    /// (seconds since the start of the run, VmRSS in KiB).
    pub samples: Mutex<Vec<(f64, u64)>>,
    killed: AtomicBool,
}

impl Proc {
    /// Starts `cmd`; with `ready_line`, waits for its one JSON line on
    /// stdout (`apns serve`, `apns mock`), else for its first stderr line
    /// (`apns worker` says what it reads).
    pub fn spawn(name: &str, mut cmd: Command, ready_line: bool, sampled: bool) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(if ready_line {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let tail = Arc::new(Mutex::new(String::new()));
        let (first_tx, first_rx) = std::sync::mpsc::channel::<()>();
        let pipe = child.stderr.take().expect("piped");
        let sink = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
                if s.len() > 2 * TAIL {
                    let cut = s.len() - TAIL;
                    let cut = (cut..s.len()).find(|i| s.is_char_boundary(*i)).unwrap();
                    s.drain(..cut);
                }
                drop(s);
                let _ = first_tx.send(());
            }
        });
        let mut ready = serde_json::Value::Null;
        if ready_line {
            let mut out = BufReader::new(child.stdout.take().expect("piped"));
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            if line.trim().is_empty() {
                let status = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "{name} did not start ({status:?}): {}",
                    tail.lock().unwrap()
                );
            }
            ready = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{name}'s ready line {line:?}: {e}"));
            // Drained, so that a full pipe never blocks it.
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = out.read_to_end(&mut sink);
            });
        } else if first_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!("{name} said nothing within 60 s of starting");
        }
        Proc {
            name: name.to_string(),
            pid: child.id(),
            child: Mutex::new(Some(child)),
            tail,
            ready,
            sampled,
            samples: Mutex::new(Vec::new()),
            killed: AtomicBool::new(false),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The last lines it wrote on stderr.
    pub fn stderr_tail(&self, max: usize) -> String {
        let s = self.tail.lock().unwrap();
        let start = s.len().saturating_sub(max);
        let start = (start..=s.len()).find(|i| s.is_char_boundary(*i)).unwrap();
        s[start..].to_string()
    }

    /// Everything kept of its stderr.
    pub fn stderr(&self) -> String {
        self.tail.lock().unwrap().clone()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap();
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Whether the test killed it on purpose.
    pub fn killed_on_purpose(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Its resident set size now, in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Records one RSS sample at `t` seconds.
    pub fn sample(&self, t: f64) {
        if let Some(kib) = self.rss_kib() {
            self.samples.lock().unwrap().push((t, kib));
        }
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }

    /// SIGKILL, on purpose: its death is not a failure.
    pub async fn kill_on_purpose(&self) -> Option<ExitStatus> {
        self.killed.store(true, Ordering::Relaxed);
        self.signal("KILL");
        self.wait(Duration::from_secs(10)).await
    }

    /// SIGTERM, then waits at most `limit`: its exit status, or `None`
    /// (and a SIGKILL) when it did not exit in time.
    pub async fn terminate(&self, limit: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        let status = self.wait(limit).await;
        if status.is_none() {
            self.signal("KILL");
        }
        status
    }

    async fn wait(&self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What every process of the soak is started with.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub key_path: PathBuf,
    pub bundle: PathBuf,
    pub redis_url: String,
    pub endpoint: String,
}

impl Setup {
    pub fn mock(&self, name: &str, extra: &[&str], sampled: bool) -> (Arc<Proc>, SocketAddr) {
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

    pub fn worker(&self, name: &str) -> Arc<Proc> {
        let words = ["worker", "--redis", &self.redis_url, "--consumer", name];
        let at = At::new(&self.endpoint, &self.bundle);
        let mut cmd = apns_with_key(&words, &at, &self.key_path);
        cmd.args(["--timeout", "10", "--claim-idle", "15s"])
            .args(["--max-deliveries", "50", "--concurrency", "200"])
            .args(["--stats-interval", "5s"]);
        Arc::new(Proc::spawn(name, cmd, false, true))
    }
}
