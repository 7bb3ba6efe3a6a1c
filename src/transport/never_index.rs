//! A write-side shim between `h2` and TLS that sends `:path` as a
//! never-indexed literal, as Apple asks (see [`super::hpack`]). Reads pass
//! through untouched; they only stamp when the server last sent bytes, for
//! the connection's liveness check.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connection::ReadClock;
use super::{buffered, hpack};

const PREFACE_LEN: usize = 24;
const FRAME_HEADERS: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

pub(crate) struct NeverIndexPath<IO> {
    io: IO,
    // Bytes accepted from h2 and not yet written.
    out: Vec<u8>,
    preface_left: usize,
    hdr: [u8; 9],
    hdr_len: usize,
    left: usize,
    // The payload of a HEADERS frame being collected, to rewrite whole.
    headers: Option<Vec<u8>>,
    reads: Arc<ReadClock>,
}

impl<IO> NeverIndexPath<IO> {
    pub(crate) fn new(io: IO, reads: Arc<ReadClock>) -> Self {
        NeverIndexPath {
            io,
            reads,
            out: Vec::with_capacity(16 * 1024),
            preface_left: PREFACE_LEN,
            hdr: [0; 9],
            hdr_len: 0,
            left: 0,
            headers: None,
        }
    }

    fn queue(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(buf.len());
                self.out.extend_from_slice(&buf[..n]);
                self.preface_left -= n;
                buf = &buf[n..];
                continue;
            }
            if self.hdr_len < 9 {
                let n = (9 - self.hdr_len).min(buf.len());
                self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&buf[..n]);
                self.hdr_len += n;
                buf = &buf[n..];
                if self.hdr_len == 9 {
                    let h = self.hdr;
                    self.out.extend_from_slice(&h);
                    self.left = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                    // Only whole, unpadded blocks are rewritten; anything
                    // else (never sent by h2 for APNs) passes as it is.
                    let simple =
                        h[4] & (FLAG_PADDED | FLAG_PRIORITY) == 0 && h[4] & FLAG_END_HEADERS != 0;
                    if h[3] == FRAME_HEADERS && simple && self.left > 0 {
                        self.headers = Some(Vec::with_capacity(self.left));
                    }
                    if self.left == 0 {
                        self.hdr_len = 0;
                    }
                }
                continue;
            }
            let n = self.left.min(buf.len());
            match &mut self.headers {
                Some(block) => block.extend_from_slice(&buf[..n]),
                None => self.out.extend_from_slice(&buf[..n]),
            }
            self.left -= n;
            buf = &buf[n..];
            if self.left == 0 {
                if let Some(mut block) = self.headers.take() {
                    hpack::never_index_path(&mut block);
                    self.out.extend_from_slice(&block);
                }
                self.hdr_len = 0;
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for NeverIndexPath<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.reads.stamp();
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for NeverIndexPath<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() > buffered::MAX_BUFFERED {
            std::task::ready!(buffered::poll_drain(&mut this.io, &mut this.out, cx))?;
        }
        this.queue(buf);
        buffered::poll_start(&mut this.io, &mut this.out, cx, buf.len())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        buffered::poll_flush(&mut this.io, &mut this.out, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        buffered::poll_shutdown(&mut this.io, &mut this.out, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_path_in_headers_frames_fed_in_pieces() {
        let reads = Arc::new(ReadClock::new(tokio::time::Instant::now()));
        let mut shim = NeverIndexPath::new((), reads);
        let mut wire = vec![b'P'; PREFACE_LEN];
        // A SETTINGS frame, passed through.
        wire.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
        // HEADERS (END_HEADERS | END_STREAM) with :method POST and :path.
        let mut block = vec![0x83, 0x04, 3];
        block.extend_from_slice(b"/ab");
        wire.extend_from_slice(&[0, 0, block.len() as u8, 0x1, 0x5, 0, 0, 0, 1]);
        wire.extend_from_slice(&block);
        for b in &wire {
            shim.queue(std::slice::from_ref(b));
        }
        let mut expected = wire.clone();
        let at = expected.len() - block.len() + 1;
        expected[at] = 0x14;
        assert_eq!(shim.out, expected);
    }
}
