//! Shared plumbing of the byte-level shims (the client's never-indexed
//! `:path`, the mock's SETTINGS/GOAWAY/PING control): bytes accepted from
//! `h2` wait in a buffer until the socket takes them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// Past this many buffered bytes, a shim waits for the socket before
/// accepting more.
pub(crate) const MAX_BUFFERED: usize = 256 * 1024;

/// Writes `out` to `io` until it is empty.
pub(crate) fn poll_drain<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !out.is_empty() {
        let n = std::task::ready!(Pin::new(&mut *io).poll_write(cx, out))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        out.drain(..n);
    }
    Poll::Ready(Ok(()))
}

/// Starts writing after new bytes were queued: only an error stops the
/// caller; the rest goes out on the next write or flush.
pub(crate) fn poll_start<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    cx: &mut Context<'_>,
    accepted: usize,
) -> Poll<io::Result<usize>> {
    match poll_drain(io, out, cx) {
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        _ => Poll::Ready(Ok(accepted)),
    }
}

/// Drains the buffer, then flushes `io`.
pub(crate) fn poll_flush<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    std::task::ready!(poll_drain(io, out, cx))?;
    Pin::new(io).poll_flush(cx)
}

/// Drains the buffer, then shuts `io` down.
pub(crate) fn poll_shutdown<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    std::task::ready!(poll_drain(io, out, cx))?;
    Pin::new(io).poll_shutdown(cx)
}
