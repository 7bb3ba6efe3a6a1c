//! Hostile clients: silent sockets, slowloris, idle HTTP/2, bodies far over the limit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::{connect_from, parse, Reply};

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
