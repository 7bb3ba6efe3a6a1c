//! The parts of the soak run (`tests/suite/soak.rs`): processes watched
//! for their memory and their death, a loopback relay that stands for the
//! mock's fixed port, a one-shot HTTP/1.1 client that reports instead of
//! panicking, hostile clients, and the least-squares slope.
//!
//! Why a relay: `apns mock` makes a new CA at every start, and `apns serve`
//! and `apns worker` read `--ca-file` once. So the soak starts every mock
//! it will need up front (their CAs in one bundle) and points the relay at
//! one after the other; a switch cuts every relayed connection, as a
//! restart of the mock on that port would.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apns_provider::worker::JobResult;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::redis::{self as rs, Redis};

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

/// A TCP relay on a fixed loopback port to one backend at a time.
pub struct Relay {
    pub port: u16,
    target: tokio::sync::watch::Sender<(u64, SocketAddr)>,
    accept: tokio::task::JoinHandle<()>,
    /// Per backend: connections relayed to it, and bytes the clients sent
    /// it (requests reached a black hole if that grows past the handshakes).
    pub traffic: Arc<Mutex<HashMap<SocketAddr, (u64, u64)>>>,
    /// Connections cut by a switch.
    pub cut: Arc<AtomicU64>,
}

impl Relay {
    pub async fn start(backend: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (target, rx) = tokio::sync::watch::channel((0u64, backend));
        let traffic: Arc<Mutex<HashMap<SocketAddr, (u64, u64)>>> = Arc::default();
        let cut = Arc::new(AtomicU64::new(0));
        let (traffic2, cut2) = (traffic.clone(), cut.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut rx = rx.clone();
                let (traffic, cut) = (traffic2.clone(), cut2.clone());
                tokio::spawn(async move {
                    let (generation, addr) = *rx.borrow_and_update();
                    let connect = TcpStream::connect(addr);
                    let Ok(Ok(outbound)) =
                        tokio::time::timeout(Duration::from_secs(5), connect).await
                    else {
                        return;
                    };
                    traffic.lock().unwrap().entry(addr).or_default().0 += 1;
                    let (mut in_read, mut in_write) = inbound.into_split();
                    let (mut out_read, mut out_write) = outbound.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n @ 1..) = in_read.read(&mut buf).await {
                            traffic.lock().unwrap().entry(addr).or_default().1 += n as u64;
                            if out_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = tokio::io::copy(&mut out_read, &mut in_write);
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = async {
                            while rx.changed().await.is_ok() {
                                if rx.borrow().0 != generation {
                                    break;
                                }
                            }
                        } => {
                            cut.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        Relay {
            port,
            target,
            accept,
            traffic,
            cut,
        }
    }

    /// Points new connections at `backend` and cuts every open one.
    pub fn switch(&self, backend: SocketAddr) {
        self.target.send_modify(|(generation, addr)| {
            *generation += 1;
            *addr = backend;
        });
    }

    /// The backend new connections go to.
    pub fn backend(&self) -> SocketAddr {
        self.target.borrow().1
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        // Cuts the relayed connections too.
        self.target.send_modify(|(generation, _)| *generation += 1);
    }
}

/// An HTTP answer, or why there was none.
pub type Reply = Result<(u16, Vec<u8>), String>;

/// One request on a new connection from `from` (a loopback address of
/// 127.0.0.0/8, so that hostile clients can come from another address
/// than the good ones), answered within `limit` or not at all.
pub async fn request(
    from: [u8; 4],
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
    limit: Duration,
) -> Reply {
    let exchange = async {
        let mut stream = connect_from(from, addr).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("writing the head: {e}"))?;
        // A server may answer (413) before reading the whole body.
        let _ = stream.write_all(body).await;
        let mut raw = Vec::new();
        let read = stream.read_to_end(&mut raw).await;
        parse(&raw).ok_or_else(|| match read {
            Err(e) => format!("closed without an answer: {e}"),
            Ok(_) => format!("closed without an answer ({} bytes)", raw.len()),
        })
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(reply) => reply,
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// A TCP connection to `addr` from the loopback address `from`.
pub async fn connect_from(from: [u8; 4], addr: SocketAddr) -> Result<TcpStream, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::from((from, 0)))
        .map_err(|e| format!("bind {from:?}: {e}"))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// Status and body of an HTTP/1.1 answer (chunked or not).
fn parse(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head.lines().next()?.split(' ').nth(1)?.parse().ok()?;
    let mut body = raw[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?, 16).ok()?;
            rest = rest.get(line_end + 2..)?;
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body = out;
    }
    Some((status, body))
}

/// What a set of hostile connections saw.
#[derive(Default, Debug)]
pub struct Held {
    /// Connections opened.
    pub opened: AtomicU64,
    /// Connections the server closed before the attacker let go.
    pub closed_by_server: AtomicU64,
    /// The longest the server held one before closing it, in ms.
    pub longest_ms: AtomicU64,
}

impl Held {
    /// "12 opened, 11 closed by serve (longest held 10.0 s)".
    pub fn describe(&self) -> String {
        format!(
            "{} opened, {} closed by serve (longest held {:.1} s)",
            self.opened.load(Ordering::Relaxed),
            self.closed_by_server.load(Ordering::Relaxed),
            self.longest_ms.load(Ordering::Relaxed) as f64 / 1000.0
        )
    }

    fn closed(&self, held: Duration) {
        self.closed_by_server.fetch_add(1, Ordering::Relaxed);
        self.longest_ms
            .fetch_max(held.as_millis() as u64, Ordering::Relaxed);
    }
}

/// `n` connections from `from`, each held by `hold` until `until`; each
/// one the server closes first (`hold` returns true) is opened again, as a
/// persistent attacker would.
async fn persist<F, Fut>(
    from: [u8; 4],
    addr: SocketAddr,
    n: usize,
    until: Instant,
    hold: F,
) -> Arc<Held>
where
    F: Fn(TcpStream, Instant) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let held = Arc::new(Held::default());
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let held = held.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    let left = until.saturating_duration_since(Instant::now());
                    let Ok(Ok(s)) = tokio::time::timeout(left, connect_from(from, addr)).await
                    else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    held.opened.fetch_add(1, Ordering::Relaxed);
                    let opened = Instant::now();
                    if hold(s, until).await {
                        held.closed(opened.elapsed());
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    held
}

/// `n` connections from `from` that send nothing until `until`.
pub async fn silent_sockets(
    from: [u8; 4],
    addr: SocketAddr,
    n: usize,
    until: Instant,
) -> Arc<Held> {
    persist(from, addr, n, until, |mut s, until| async move {
        let mut buf = [0u8; 512];
        let left = until.saturating_duration_since(Instant::now());
        // Anything read, or the end: the server let go of it.
        tokio::time::timeout(left, s.read(&mut buf)).await.is_ok()
    })
    .await
}

/// `n` slowloris connections from `from`: a request head at one byte a
/// second, until `until`.
pub async fn slowloris(from: [u8; 4], addr: SocketAddr, n: usize, until: Instant) -> Arc<Held> {
    const HEAD: &[u8] = b"POST /v1/notifications HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer slow-slow-slow-slow\r\nContent-Length: 2\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    persist(from, addr, n, until, |mut s, until| async move {
        let mut buf = [0u8; 512];
        for i in 0.. {
            if Instant::now() >= until {
                return false;
            }
            if s.write_all(&HEAD[i % HEAD.len()..][..1]).await.is_err() {
                return true;
            }
            let tick = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                _ = tick => {}
                _ = s.read(&mut buf) => return true,
            }
        }
        false
    })
    .await
}

/// `n` HTTP/2 connections (prior knowledge) from `from` that send the
/// preface and SETTINGS, acknowledge the server's SETTINGS and answer its
/// PINGs, and never open a stream, until `until`.
pub async fn h2_idle(from: [u8; 4], addr: SocketAddr, n: usize, until: Instant) -> Arc<Held> {
    persist(from, addr, n, until, |mut s, until| async move {
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
        if s.write_all(&hello).await.is_err() {
            return true;
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, s.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(k)) => buf.extend_from_slice(&chunk[..k]),
            }
            // Whole frames: 3 bytes of length, type, flags, stream id.
            while buf.len() >= 9 {
                let len =
                    (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, ack) = (buf[3], buf[4] & 1 == 1);
                let reply = match kind {
                    4 if !ack => vec![0, 0, 0, 4, 1, 0, 0, 0, 0],
                    6 if !ack => [&[0, 0, 8, 6, 1, 0, 0, 0, 0], &buf[9..9 + len]].concat(),
                    7 => return true, // GOAWAY: the server lets go
                    _ => Vec::new(),
                };
                if !reply.is_empty() && s.write_all(&reply).await.is_err() {
                    return true;
                }
                buf.drain(..9 + len);
            }
        }
    })
    .await
}

/// A POST of `size` bytes, declared (`Content-Length`) or chunked, with a
/// valid token: the answer the gateway gave, or why there was none.
pub async fn huge_body(
    from: [u8; 4],
    addr: SocketAddr,
    token: &str,
    size: usize,
    chunked: bool,
    limit: Duration,
) -> Reply {
    let exchange = async {
        let mut s = connect_from(from, addr).await?;
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_string()
        } else {
            format!("Content-Length: {size}")
        };
        let head = format!(
            "POST /v1/notifications HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nConnection: close\r\n{framing}\r\n\r\n"
        );
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| format!("writing the head: {e}"))?;
        // `[0,0,0,...`: valid JSON as far as it goes.
        let mut chunk = b"[0".to_vec();
        while chunk.len() < 64 * 1024 {
            chunk.extend_from_slice(b",0");
        }
        let mut sent = 0;
        while sent < size {
            let part = &chunk[..chunk.len().min(size - sent)];
            let ok = if chunked {
                let mut framed = format!("{:x}\r\n", part.len()).into_bytes();
                framed.extend_from_slice(part);
                framed.extend_from_slice(b"\r\n");
                s.write_all(&framed).await.is_ok()
            } else {
                s.write_all(part).await.is_ok()
            };
            if !ok {
                break; // refused midway: read what it said
            }
            sent += part.len();
        }
        if chunked && sent >= size {
            let _ = s.write_all(b"0\r\n\r\n").await;
        }
        let mut raw = Vec::new();
        let read = s.read_to_end(&mut raw).await;
        parse(&raw).ok_or_else(|| match read {
            Err(e) => format!("closed without an answer after {sent} bytes: {e}"),
            Ok(_) => format!("closed without an answer after {sent} bytes"),
        })
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(reply) => reply,
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// The least-squares slope of `samples` (seconds, KiB), in KiB per minute.
pub fn slope_kib_per_min(samples: &[(f64, u64)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, r) in samples {
        num += (t - mean_t) * (*r as f64 - mean_r);
        den += (t - mean_t) * (t - mean_t);
    }
    if den == 0.0 {
        0.0
    } else {
        num / den * 60.0
    }
}

/// Every entry of `stream`, read in pages (results streams grow long).
pub async fn all_entries(
    c: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Result<Vec<(String, Vec<(String, String)>)>, redis::RedisError> {
    let mut all = Vec::new();
    let mut start = "-".to_string();
    loop {
        let page: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(5000)
            .query_async(c)
            .await?;
        let Some((last, _)) = page.last() else {
            return Ok(all);
        };
        start = format!("({last}");
        all.extend(page);
    }
}

/// Waits until nothing is pending and the jobs stream is empty.
pub async fn drain(redis: &Redis, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("Redis did not answer");
    while Instant::now() < deadline {
        if let Ok(mut c) = tokio::time::timeout(Duration::from_secs(5), redis.conn()).await {
            let pending = rs::pending(&mut c).await;
            let queued = rs::len(&mut c, "apns:jobs").await;
            if pending == 0 && queued == 0 {
                return Ok(());
            }
            last = format!("{pending} jobs still pending, {queued} in apns:jobs");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("after {limit:?} without traffic: {last}"))
}

/// Every job of a 202 has exactly one result; any other result is for a
/// batch that was not answered 202 (part of it may have landed).
/// `jobs`: the ids of 202 answers; `unsure`: device tokens of attempts not
/// answered 202. Adds what is wrong to `failures`, the figures to `report`.
pub fn check_results(
    jobs: &HashSet<String>,
    unsure: &HashSet<String>,
    results: &[(String, Vec<(String, String)>)],
    dead: u64,
    failures: &mut Vec<String>,
    report: &mut String,
) {
    let mut by_job: HashMap<&str, u32> = HashMap::new();
    let mut statuses: HashMap<String, u64> = HashMap::new();
    let (mut unreadable, mut strays, mut unknown) = (Vec::new(), 0u64, Vec::new());
    let parsed: Vec<JobResult> = results
        .iter()
        .filter_map(|(id, f)| match JobResult::from_fields(f) {
            Ok(r) => Some(r),
            Err(e) => {
                unreadable.push(format!("{id}: {e}"));
                None
            }
        })
        .collect();
    for r in &parsed {
        *by_job.entry(r.job.as_str()).or_default() += 1;
        if !jobs.contains(&r.job) {
            if unsure.contains(&r.device_token) {
                strays += 1;
            } else {
                unknown.push(format!("{} ({})", r.job, r.device_token));
            }
            continue;
        }
        let key = match (&r.status, &r.error) {
            (Some(s), _) => format!("status {s}"),
            (None, Some(e)) => format!("error: {}", e.chars().take(60).collect::<String>()),
            _ => "neither status nor error".into(),
        };
        *statuses.entry(key).or_default() += 1;
    }
    let twice: Vec<String> = by_job
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(j, n)| format!("{j} ×{n}"))
        .collect();
    let missing: Vec<&String> = jobs
        .iter()
        .filter(|j| !by_job.contains_key(j.as_str()))
        .collect();
    let examples = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if !twice.is_empty() {
        failures.push(format!(
            "{} jobs have more than one result: {}",
            twice.len(),
            examples(&twice)
        ));
    }
    if !missing.is_empty() {
        let m: Vec<String> = missing.iter().map(|s| s.to_string()).collect();
        failures.push(format!(
            "{} of the {} accepted jobs have no result: {}",
            m.len(),
            jobs.len(),
            examples(&m)
        ));
    }
    if !unknown.is_empty() {
        failures.push(format!(
            "{} results for jobs no answer named, from batches answered 202: {}",
            unknown.len(),
            examples(&unknown)
        ));
    }
    if !unreadable.is_empty() {
        failures.push(format!(
            "{} unreadable result entries: {}",
            unreadable.len(),
            examples(&unreadable)
        ));
    }
    let ok = statuses.get("status 200").copied().unwrap_or(0);
    if (ok as f64) < 0.9 * jobs.len() as f64 {
        failures.push(format!(
            "only {ok} of {} accepted jobs were accepted by the mock (200): {statuses:?}",
            jobs.len()
        ));
    }
    let mut by_status: Vec<_> = statuses.into_iter().collect();
    by_status.sort();
    let _ = writeln!(
        report,
        "jobs: {} accepted by serve (202), {} results; by outcome {by_status:?}; {strays} results for jobs of batches not answered 202 (part enqueued before a 503 or a cut); dead letter {dead}",
        jobs.len(),
        results.len()
    );
}

/// Start and end RSS and the slope after warm-up (the first quarter of each
/// process's sampled life skipped), with a bound on the growth it implies.
pub fn rss_table(all: &[Arc<Proc>], failures: &mut Vec<String>, report: &mut String) {
    let _ = writeln!(report, "process           samples  start RSS   end RSS   slope after warm-up  growth over the window");
    for p in all.iter().filter(|p| p.sampled) {
        let samples = p.samples.lock().unwrap().clone();
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            continue;
        };
        let from = first.0 + (last.0 - first.0) / 4.0;
        let after: Vec<(f64, u64)> = samples.iter().copied().filter(|s| s.0 >= from).collect();
        let slope = slope_kib_per_min(&after);
        let window_min = (last.0 - from) / 60.0;
        let growth = slope * window_min;
        let base = after.first().map(|s| s.1).unwrap_or(first.1) as f64;
        let _ =
            writeln!(
            report,
            "{:<17} {:>7} {:>7.1} MiB {:>7.1} MiB {:>+9.1} KiB/min {:>+14.1} MiB over {:.1} min{}",
            p.name,
            samples.len(),
            first.1 as f64 / 1024.0,
            last.1 as f64 / 1024.0,
            slope,
            growth / 1024.0,
            window_min,
            if p.killed_on_purpose() { " (SIGKILLed on purpose)" } else { "" }
        );
        let bound = 20.0 * 1024.0 + 0.25 * base;
        if after.len() >= 10 && window_min >= 0.5 && growth > bound {
            failures.push(format!(
                "RSS of {} grows: {slope:+.0} KiB/min after warm-up, {:+.1} MiB over {window_min:.1} min, over the bound of 20 MiB + 25% of {:.1} MiB",
                p.name,
                growth / 1024.0,
                base / 1024.0
            ));
        }
    }
}
