//! An HTTP CONNECT proxy on loopback, in process: open, with Basic
//! authentication, answering 407 to everything, or a black hole (accepts
//! TCP, reads the CONNECT, never answers). It tunnels only to
//! loopback addresses (tests never reach anything else) and records what
//! it was asked.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the proxy treats requests.
#[derive(Clone)]
pub enum Mode {
    /// Tunnels every CONNECT.
    Open,
    /// Tunnels only with `Proxy-Authorization: Basic` for this user and
    /// password; 407 otherwise.
    Basic(&'static str, &'static str),
    /// Answers 407 to everything.
    AlwaysDenied,
    /// Accepts the TCP connection, reads what comes, and never answers
    /// (a proxy that hangs).
    BlackHole,
}

/// What the proxy saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `CONNECT host:port HTTP/1.1`.
    pub request_line: String,
    /// The `Proxy-Authorization` value, if any.
    pub authorization: Option<String>,
    /// The answer's status.
    pub status: u16,
}

pub struct TestProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProxy {
    /// `http://127.0.0.1:PORT`, with `user:password@` when given.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((u, p)) => format!("http://{u}:{p}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub async fn start(mode: Mode) -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let (mode, log) = (mode.clone(), log.clone());
            tokio::spawn(async move {
                let _ = serve(client, mode, log).await;
            });
        }
    });
    TestProxy { addr, seen, task }
}

async fn serve(
    mut client: TcpStream,
    mode: Mode,
    log: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    if matches!(mode, Mode::BlackHole) {
        // Read (and drop) until the client gives up; the task ends with it
        // or when the proxy is dropped... the runtime's end.
        let mut sink = [0u8; 1024];
        while client.read(&mut sink).await? > 0 {}
        return Ok(());
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: nothing past the head may be swallowed.
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let authorization = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("proxy-authorization")
            .then(|| v.trim().to_string())
    });
    let target = request_line
        .strip_prefix("CONNECT ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_default()
        .to_string();
    let allowed = match &mode {
        Mode::Open => true,
        Mode::Basic(user, password) => {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            authorization.as_deref() == Some(expected.as_str())
        }
        Mode::AlwaysDenied | Mode::BlackHole => false,
    };
    // Loopback only: a test must never reach the outside world.
    let loopback = target.starts_with("127.0.0.1:")
        || target.starts_with("localhost:")
        || target.starts_with("[::1]:");
    let status = if !request_line.starts_with("CONNECT ") {
        405
    } else if !allowed {
        407
    } else if !loopback {
        403
    } else {
        200
    };
    log.lock().unwrap().push(Seen {
        request_line,
        authorization,
        status,
    });
    match status {
        200 => {
            let mut upstream = TcpStream::connect(&target).await?;
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?;
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        }
        407 => {
            client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
                .await?;
        }
        other => {
            client
                .write_all(
                    format!("HTTP/1.1 {other} Refused\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                )
                .await?;
        }
    }
    Ok(())
}
