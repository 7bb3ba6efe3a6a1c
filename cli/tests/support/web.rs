//! A small HTTP/1.1 client over a real socket (plain or TLS), and `apns
//! serve` as a process, for the gateway tests.

use std::process::Command;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::bulk::{self, Setup};
use super::*;

/// An answer: status, headers (names in lower case), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a new connection (`Connection: close`).
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Answer {
    let addr = base
        .strip_prefix("http://")
        .expect("a plain http:// base URL");
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to apns serve");
    exchange(stream, addr, method, path, token, body).await
}

/// One request over any stream (plain or TLS).
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Answer {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) before reading the whole body, and close.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Answer {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                    .unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// `apns serve` running as a process.
pub struct ServeProcess {
    child: Option<std::process::Child>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// `http://127.0.0.1:PORT` (or https).
    pub base: String,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Starts `cmd` (an `apns serve ...` command) and waits for its ready line.
pub fn spawn_serve(mut cmd: Command) -> ServeProcess {
    use std::io::{BufRead, Read};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start apns serve");
    // Collected as it comes, so a full pipe never blocks the server.
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.is_empty() {
        let status = child.wait().unwrap();
        panic!(
            "apns serve did not start ({status}): {}",
            stderr.lock().unwrap()
        );
    }
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("apns serve's ready line {line:?}: {e}"));
    ServeProcess {
        child: Some(child),
        reader: Some(reader),
        base: ready["listen"].as_str().unwrap().to_string(),
        stderr,
    }
}

impl ServeProcess {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        self.base.split("://").nth(1).unwrap().to_string()
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and
    /// stderr.
    pub async fn stop(mut self) -> (Option<i32>, String) {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        let mut child = self.child.take().unwrap();
        let reader = self.reader.take().unwrap();
        let status = tokio::task::spawn_blocking(move || {
            let status = child.wait().unwrap();
            // The reader ends when the process's stderr closes.
            let _ = reader.join();
            status
        })
        .await
        .unwrap();
        let err = self.stderr.lock().unwrap().clone();
        (status.code(), err)
    }
}

impl ServeProcess {
    /// Sends SIGTERM and polls for the exit for at most `limit` (a bound,
    /// not a benchmark); `None` if it is still running then (it is killed
    /// when dropped). Returns the exit code and stderr.
    pub async fn stop_within(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<(Option<i32>, String)> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        let deadline = std::time::Instant::now() + limit;
        loop {
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                self.child.take();
                if let Some(reader) = self.reader.take() {
                    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
                }
                let err = self.stderr.lock().unwrap().clone();
                return Some((status.code(), err));
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// What the gateway tests share: `apns serve` against the in-process mock.

pub const TOKEN: &str = "gw-token-0123456789abcdef";

pub fn serve_cmd(s: &Setup, extra: &[&str]) -> Command {
    let tokens = write_file(
        s.dir.path(),
        "api-tokens",
        format!("# ops\n{TOKEN}\n").as_bytes(),
    );
    serve_cmd_with(s, "127.0.0.1:0", &tokens, extra)
}

pub fn serve_cmd_with(
    s: &Setup,
    listen: &str,
    tokens: &std::path::Path,
    extra: &[&str],
) -> Command {
    let mut cmd = apns_with_key(&["serve", "--listen", listen], s, &s.key_path);
    cmd.arg("--api-token-file").arg(tokens).args(extra);
    cmd
}

pub async fn start(extra: &[&str]) -> (Setup, ServeProcess) {
    let s = bulk::setup_with(|m| m.unregistered("dead0000", 1_700_000_000_000)).await;
    let serve = spawn_serve(serve_cmd(&s, extra));
    (s, serve)
}

pub async fn post(serve: &ServeProcess, token: Option<&str>, body: &Value) -> Answer {
    request(
        &serve.base,
        "POST",
        "/v1/notifications",
        token,
        body.to_string().as_bytes(),
    )
    .await
}

pub fn alert(token: &str) -> Value {
    json!({"device_token": token, "payload": {"aps": {"alert": "hi"}}})
}

/// The value of the sample starting with `prefix` (name and labels).
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub async fn scrape(serve: &ServeProcess) -> String {
    let a = request(&serve.base, "GET", "/metrics", Some(TOKEN), b"").await;
    assert_eq!(a.status, 200, "{}", a.text());
    a.text()
}

pub const ACCEPTED: &str =
    r#"apns_notifications_total{outcome="accepted",reason="",push_type="alert",app="default"}"#;
