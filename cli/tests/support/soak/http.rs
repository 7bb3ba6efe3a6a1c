//! A one-shot HTTP/1.1 client that reports instead of panicking, from a chosen loopback address.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

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
pub(super) fn parse(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
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
