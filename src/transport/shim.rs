//! The byte shim between `h2` and TLS. Writes: `:path` goes out as a
//! never-indexed literal, as Apple asks (see [`super::hpack`]). Reads pass
//! through untouched; the shim records in [`Inbound`] when the server last
//! sent bytes (the connection's liveness check) and its GOAWAY, whose JSON
//! reason `h2` does not expose.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frames::{
    FrameReader, Piece, FLAG_END_HEADERS, FLAG_PADDED, FLAG_PRIORITY, FRAME_GOAWAY, FRAME_HEADERS,
    PREFACE_LEN,
};
use super::inbound::{GoAway, Inbound};
use super::{buffered, hpack};

/// The most of a GOAWAY's payload kept: ids, code, and a short JSON reason.
const MAX_GOAWAY: usize = 1024;

pub(crate) struct Shim<IO> {
    io: IO,
    // Bytes accepted from h2 and not yet written.
    out: Vec<u8>,
    frames: FrameReader,
    // The payload of a HEADERS frame being collected, to rewrite whole.
    headers: Option<Vec<u8>>,
    inbound: Arc<Inbound>,
    // The server's frames, read only to catch a GOAWAY and its reason.
    in_frames: FrameReader,
    in_goaway: Option<Vec<u8>>,
}

impl<IO> Shim<IO> {
    pub(crate) fn new(io: IO, inbound: Arc<Inbound>) -> Self {
        Shim {
            io,
            inbound,
            in_frames: FrameReader::new(0),
            in_goaway: None,
            out: Vec::with_capacity(16 * 1024),
            frames: FrameReader::new(PREFACE_LEN),
            headers: None,
        }
    }

    /// Follows the server's frames for a GOAWAY (only its payload is kept).
    fn watch(&mut self, bytes: &[u8]) {
        let (goaway, inbound) = (&mut self.in_goaway, &self.inbound);
        self.in_frames.feed(bytes, |piece| match piece {
            Piece::Header(h) if h.kind == FRAME_GOAWAY => {
                *goaway = Some(Vec::with_capacity(h.len.min(MAX_GOAWAY)));
            }
            Piece::Payload(p) => {
                if let Some(g) = goaway {
                    let room = MAX_GOAWAY.saturating_sub(g.len());
                    g.extend_from_slice(&p[..p.len().min(room)]);
                }
            }
            Piece::End => {
                if let Some(payload) = goaway.take() {
                    if let Some(g) = GoAway::parse(&payload) {
                        inbound.goaway(g);
                    }
                }
            }
            _ => {}
        });
    }

    fn queue(&mut self, buf: &[u8]) {
        let (out, headers) = (&mut self.out, &mut self.headers);
        self.frames.feed(buf, |piece| match piece {
            Piece::Preface(bytes) => out.extend_from_slice(bytes),
            Piece::Header(h) => {
                out.extend_from_slice(&h.raw);
                // Only whole, unpadded blocks are rewritten; anything else
                // (never sent by h2 for APNs) passes as it is.
                let simple =
                    h.flags & (FLAG_PADDED | FLAG_PRIORITY) == 0 && h.flags & FLAG_END_HEADERS != 0;
                if h.kind == FRAME_HEADERS && simple && h.len > 0 {
                    *headers = Some(Vec::with_capacity(h.len));
                }
            }
            Piece::Payload(bytes) => match headers {
                Some(block) => block.extend_from_slice(bytes),
                None => out.extend_from_slice(bytes),
            },
            Piece::End => {
                if let Some(mut block) = headers.take() {
                    hpack::never_index_path(&mut block);
                    out.extend_from_slice(&block);
                }
            }
        });
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Shim<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.inbound.stamp();
            this.watch(&buf.filled()[before..]);
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Shim<IO> {
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
        let reads = Arc::new(Inbound::new(tokio::time::Instant::now()));
        let mut shim = Shim::new((), reads);
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

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn shim() -> Shim<()> {
            Shim::new((), Arc::new(Inbound::new(tokio::time::Instant::now())))
        }

        proptest! {
            #[test]
            fn the_rewrite_does_not_depend_on_how_h2_cuts_its_writes(
                bytes in proptest::collection::vec(any::<u8>(), 0..3000),
                cut in 1usize..200,
            ) {
                let mut whole = shim();
                whole.queue(&bytes);
                let mut pieces = shim();
                for chunk in bytes.chunks(cut) {
                    pieces.queue(chunk);
                }
                prop_assert_eq!(whole.out, pieces.out);
            }
        }
    }
}
