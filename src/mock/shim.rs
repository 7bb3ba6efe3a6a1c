//! A byte-level shim between TLS and the `h2` server that lets the mock do
//! what APNs does and `h2`'s server API cannot:
//!
//! - change `SETTINGS_MAX_CONCURRENT_STREAMS` during a connection (one
//!   stream until the first valid token, then hundreds; back to one after
//!   rejections): the shim rewrites the value in the server's first SETTINGS
//!   frame, injects new SETTINGS frames between two frames, and drops the
//!   client's ACKs to them, which `h2` did not send and would refuse;
//! - send a GOAWAY with a chosen last-stream-id and JSON debug data;
//! - ignore PINGs (a fault): the client's PING frames are dropped before `h2`
//!   can answer them;
//! - count how clients encoded `:path` and `authorization` (Apple asks for
//!   never-indexed literals).
//!
//! Both directions are cut into frames by the crate's one frame reader
//! ([`crate::transport::frames`]).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::transport::buffered;
use crate::transport::frames::{
    FrameReader, Piece, FLAG_ACK, FLAG_END_HEADERS, FRAME_GOAWAY, FRAME_HEADERS, FRAME_PING,
    FRAME_SETTINGS, PREFACE_LEN,
};

const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;

/// Shared control of one connection: its advertised stream limit and
/// frames to inject.
#[derive(Debug)]
pub(crate) struct ConnControl {
    /// The connection's id (1, 2, ... in accept order).
    pub connection: u64,
    current: AtomicU32,
    // What the client is bound by: a raise counts at once, a drop only once
    // the client ACKs it (RFC 9113 section 6.5.3).
    enforced: AtomicU32,
    unacked: Mutex<std::collections::VecDeque<u32>>,
    // The enforced limit at the point of each HEADERS frame in the byte
    // stream: what the client was bound by when it opened the stream.
    at_open: Mutex<std::collections::HashMap<u32, u32>>,
    pending: Mutex<Vec<Injected>>,
    acks_to_drop: AtomicUsize,
    pings: Arc<PingFault>,
    hpack: Arc<HpackCounts>,
}

/// The `IgnorePings` fault, shared by every connection of a mock.
#[derive(Debug, Default)]
pub(crate) struct PingFault {
    pub ignore: AtomicBool,
    pub dropped: AtomicU64,
}

/// How clients encoded `:path` and `authorization` (Apple asks for
/// never-indexed literals), counted over every connection of a mock.
#[derive(Debug)]
pub(crate) struct HpackCounts {
    pub path_never: AtomicU64,
    pub path_other: AtomicU64,
    pub auth_never: AtomicU64,
    pub auth_other: AtomicU64,
    /// The raw blocks kept for [`crate::mock::MockServer::header_blocks`]:
    /// (connection, block), the last `capture` of them.
    pub blocks: Mutex<std::collections::VecDeque<(u64, Vec<u8>)>>,
    pub capture: usize,
}

impl HpackCounts {
    pub(crate) fn new(capture: usize) -> Self {
        HpackCounts {
            path_never: AtomicU64::new(0),
            path_other: AtomicU64::new(0),
            auth_never: AtomicU64::new(0),
            auth_other: AtomicU64::new(0),
            blocks: Mutex::new(Default::default()),
            capture,
        }
    }

    /// Counts the representations in one HEADERS frame's payload (and keeps
    /// the block when asked to).
    fn count(&self, connection: u64, flags: u8, payload: &[u8]) {
        let mut block = payload;
        if flags & 0x8 != 0 {
            // PADDED: a pad length byte, then padding at the end.
            let Some((&pad, rest)) = block.split_first() else {
                return;
            };
            let Some(end) = rest.len().checked_sub(pad as usize) else {
                return;
            };
            block = &rest[..end];
        }
        if flags & 0x20 != 0 {
            // PRIORITY: five bytes of dependency and weight.
            let Some(rest) = block.get(5..) else { return };
            block = rest;
        }
        if self.capture > 0 {
            let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            if blocks.len() == self.capture {
                blocks.pop_front();
            }
            blocks.push_back((connection, block.to_vec()));
        }
        let Some(fields) = crate::transport::hpack::fields(block) else {
            return;
        };
        for f in fields {
            let never = f.repr == crate::transport::hpack::Repr::NeverIndexed;
            let (yes, no) = if crate::transport::hpack::PATH.contains(&f.name_index) {
                (&self.path_never, &self.path_other)
            } else if f.name_index == crate::transport::hpack::AUTHORIZATION {
                (&self.auth_never, &self.auth_other)
            } else {
                continue;
            };
            if never { yes } else { no }.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
enum Injected {
    Settings(u32),
    Frame(Vec<u8>),
}

impl ConnControl {
    pub(crate) fn new(
        connection: u64,
        initial: u32,
        pings: Arc<PingFault>,
        hpack: Arc<HpackCounts>,
    ) -> Arc<Self> {
        Arc::new(ConnControl {
            connection,
            current: AtomicU32::new(initial),
            enforced: AtomicU32::new(initial),
            unacked: Mutex::new(Default::default()),
            at_open: Mutex::new(Default::default()),
            pending: Mutex::new(Vec::new()),
            acks_to_drop: AtomicUsize::new(0),
            pings,
            hpack,
        })
    }

    /// The limit advertised (or about to be) to the client.
    pub(crate) fn current(&self) -> u32 {
        self.current.load(Ordering::Acquire)
    }

    /// The limit the client must respect now.
    pub(crate) fn enforced(&self) -> u32 {
        self.enforced.load(Ordering::Acquire)
    }

    /// Advertises `limit` with the next frame the server writes.
    pub(crate) fn set(&self, limit: u32) {
        if self.current.swap(limit, Ordering::AcqRel) != limit {
            self.enforced.fetch_max(limit, Ordering::AcqRel);
            self.lock().push(Injected::Settings(limit));
        }
    }

    /// The limit the client was bound by when it opened `stream_id`.
    pub(crate) fn limit_at_open(&self, stream_id: u32) -> u32 {
        self.at_open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&stream_id)
            .unwrap_or_else(|| self.enforced())
    }

    fn acked(&self) {
        let value = self
            .unacked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        if let Some(v) = value {
            self.enforced.store(v, Ordering::Release);
        }
    }

    /// Sends a GOAWAY frame with the next frame the server writes.
    pub(crate) fn go_away(&self, last_stream_id: u32, error_code: u32, debug_data: &[u8]) {
        let len = 8 + debug_data.len();
        let mut frame = Vec::with_capacity(9 + len);
        frame.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(&[FRAME_GOAWAY, 0, 0, 0, 0, 0]);
        frame.extend_from_slice(&(last_stream_id & 0x7fff_ffff).to_be_bytes());
        frame.extend_from_slice(&error_code.to_be_bytes());
        frame.extend_from_slice(debug_data);
        self.lock().push(Injected::Frame(frame));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Injected>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The shim itself: frames pass through, read by one [`FrameReader`] per
/// direction.
pub(crate) struct ControlShim<IO> {
    io: IO,
    limit: Arc<ConnControl>,
    initial: u32,
    // Server -> client.
    out_buf: Vec<u8>,
    out_frames: FrameReader,
    rewriting: Option<Vec<u8>>,
    first_settings_seen: bool,
    // Client -> server.
    in_raw: Vec<u8>,
    in_frames: FrameReader,
    in_ready: Vec<u8>,
    in_pos: usize,
    in_dropping: bool,
    // A HEADERS frame's flags and payload, collected to count how `:path`
    // and `authorization` were encoded.
    in_headers: Option<(u8, Vec<u8>)>,
    acks_seen: usize,
}

impl<IO> ControlShim<IO> {
    pub(crate) fn new(io: IO, limit: Arc<ConnControl>) -> Self {
        let initial = limit.current();
        ControlShim {
            io,
            limit,
            initial,
            out_buf: Vec::with_capacity(16 * 1024),
            out_frames: FrameReader::new(0),
            rewriting: None,
            first_settings_seen: false,
            in_raw: Vec::new(),
            in_frames: FrameReader::new(PREFACE_LEN),
            in_ready: Vec::new(),
            in_pos: 0,
            in_dropping: false,
            in_headers: None,
            acks_seen: 0,
        }
    }

    /// Queues server bytes: injected frames go in between two frames, and
    /// the first SETTINGS is rewritten to advertise the initial limit.
    fn queue_outgoing(&mut self, buf: &[u8]) {
        let control = &self.limit;
        let initial = self.initial;
        let (out, rewriting, first_seen) = (
            &mut self.out_buf,
            &mut self.rewriting,
            &mut self.first_settings_seen,
        );
        self.out_frames.feed(buf, |piece| match piece {
            // A server sends no preface of its own.
            Piece::Preface(bytes) => out.extend_from_slice(bytes),
            Piece::Header(h) => {
                inject_pending(control, out, *first_seen);
                out.extend_from_slice(&h.raw);
                if h.kind == FRAME_SETTINGS && h.flags & FLAG_ACK == 0 && !*first_seen {
                    *first_seen = true;
                    *rewriting = Some(Vec::with_capacity(h.len));
                }
            }
            Piece::Payload(bytes) => match rewriting {
                Some(settings) => settings.extend_from_slice(bytes),
                None => out.extend_from_slice(bytes),
            },
            Piece::End => {
                if let Some(mut settings) = rewriting.take() {
                    for param in settings.chunks_mut(6) {
                        if param.len() == 6
                            && param[..2] == SETTINGS_MAX_CONCURRENT_STREAMS.to_be_bytes()
                        {
                            param[2..].copy_from_slice(&initial.to_be_bytes());
                        }
                    }
                    out.extend_from_slice(&settings);
                }
            }
        });
    }

    /// Filters client bytes: drops ACKs of injected SETTINGS (and PINGs
    /// under the `IgnorePings` fault), records the limit each stream was
    /// opened under, and counts HPACK representations.
    fn filter_incoming(&mut self, buf: &[u8]) {
        let control = &self.limit;
        let (ready, dropping, headers, acks_seen) = (
            &mut self.in_ready,
            &mut self.in_dropping,
            &mut self.in_headers,
            &mut self.acks_seen,
        );
        self.in_frames.feed(buf, |piece| match piece {
            Piece::Preface(bytes) => ready.extend_from_slice(bytes),
            Piece::Header(h) => {
                let is_ack = h.kind == FRAME_SETTINGS && h.flags & FLAG_ACK != 0;
                let is_ping = h.kind == FRAME_PING && h.flags & FLAG_ACK == 0;
                if h.kind == FRAME_HEADERS {
                    if h.flags & FLAG_END_HEADERS != 0 {
                        *headers = Some((h.flags, Vec::with_capacity(h.len)));
                    }
                    control
                        .at_open
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(h.stream_id, control.enforced());
                }
                let mut drop = is_ping && control.pings.ignore.load(Ordering::Acquire);
                if drop {
                    control.pings.dropped.fetch_add(1, Ordering::Relaxed);
                }
                if is_ack {
                    *acks_seen += 1;
                    // The first ACK answers h2's own SETTINGS.
                    if *acks_seen > 1 {
                        drop = control
                            .acks_to_drop
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                            .is_ok();
                        if drop {
                            control.acked();
                        }
                    }
                }
                if !drop {
                    ready.extend_from_slice(&h.raw);
                }
                *dropping = drop;
            }
            Piece::Payload(bytes) => {
                if !*dropping {
                    ready.extend_from_slice(bytes);
                }
                if let Some((_, block)) = headers {
                    block.extend_from_slice(bytes);
                }
            }
            Piece::End => {
                if let Some((flags, block)) = headers.take() {
                    control.hpack.count(control.connection, flags, &block);
                }
            }
        });
    }
}

/// Writes requested frames; only between frames, and never before the
/// server's first SETTINGS (the HTTP/2 preface).
fn inject_pending(control: &ConnControl, out: &mut Vec<u8>, first_settings_seen: bool) {
    if !first_settings_seen {
        return;
    }
    let pending = std::mem::take(&mut *control.lock());
    for item in pending {
        match item {
            Injected::Settings(limit) => {
                control.acks_to_drop.fetch_add(1, Ordering::AcqRel);
                control
                    .unacked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_back(limit);
                out.extend_from_slice(&[0, 0, 6, FRAME_SETTINGS, 0, 0, 0, 0, 0]);
                out.extend_from_slice(&SETTINGS_MAX_CONCURRENT_STREAMS.to_be_bytes());
                out.extend_from_slice(&limit.to_be_bytes());
            }
            Injected::Frame(frame) => out.extend_from_slice(&frame),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ControlShim<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.in_pos < this.in_ready.len() {
                let n = (this.in_ready.len() - this.in_pos).min(buf.remaining());
                buf.put_slice(&this.in_ready[this.in_pos..this.in_pos + n]);
                this.in_pos += n;
                if this.in_pos == this.in_ready.len() {
                    this.in_ready.clear();
                    this.in_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            // Read into a buffer kept (and zeroed) once, not one made per
            // read: the mock reads thousands of times a second.
            let mut raw = std::mem::take(&mut this.in_raw);
            if raw.is_empty() {
                raw = vec![0u8; 64 * 1024];
            }
            let mut read = ReadBuf::new(&mut raw);
            let polled = Pin::new(&mut this.io).poll_read(cx, &mut read);
            let n = read.filled().len();
            if let Poll::Ready(Ok(())) = polled {
                if n > 0 {
                    this.filter_incoming(&raw[..n]);
                }
            }
            this.in_raw = raw;
            std::task::ready!(polled)?;
            if n == 0 {
                return Poll::Ready(Ok(())); // EOF
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ControlShim<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out_buf.len() > buffered::MAX_BUFFERED {
            std::task::ready!(buffered::poll_drain(&mut this.io, &mut this.out_buf, cx))?;
        }
        this.queue_outgoing(buf);
        buffered::poll_start(&mut this.io, &mut this.out_buf, cx, buf.len())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.out_frames.at_boundary() {
            inject_pending(&this.limit, &mut this.out_buf, this.first_settings_seen);
        }
        buffered::poll_flush(&mut this.io, &mut this.out_buf, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        buffered::poll_shutdown(&mut this.io, &mut this.out_buf, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_frame(params: &[(u16, u32)]) -> Vec<u8> {
        let len = params.len() * 6;
        let mut f = vec![0, 0, len as u8, FRAME_SETTINGS, 0, 0, 0, 0, 0];
        for (id, v) in params {
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(&v.to_be_bytes());
        }
        f
    }

    #[test]
    fn rewrites_first_settings_and_injects_at_frame_boundary() {
        let limit = ConnControl::new(
            1,
            1,
            Arc::new(PingFault::default()),
            Arc::new(HpackCounts::new(0)),
        );
        let mut shim = ControlShim::new((), limit.clone());
        let first = settings_frame(&[(0x4, 65535), (0x3, 1000)]);
        // Fed one byte at a time to exercise partial headers.
        for b in &first {
            shim.queue_outgoing(std::slice::from_ref(b));
        }
        assert_eq!(shim.out_buf, settings_frame(&[(0x4, 65535), (0x3, 1)]));
        shim.out_buf.clear();

        limit.set(500);
        let data = [0u8, 0, 2, 0x0, 0x1, 0, 0, 0, 1, 0xAA, 0xBB];
        shim.queue_outgoing(&data[..5]); // injection happens before this frame
        shim.queue_outgoing(&data[5..]);
        let mut expected = settings_frame(&[(0x3, 500)]);
        expected.extend_from_slice(&data);
        assert_eq!(shim.out_buf, expected);

        // The client's ACKs: the first answers h2, the second is dropped.
        let ack = [0u8, 0, 0, FRAME_SETTINGS, FLAG_ACK, 0, 0, 0, 0];
        let mut incoming = vec![b'P'; PREFACE_LEN];
        incoming.extend_from_slice(&ack);
        incoming.extend_from_slice(&ack);
        incoming.extend_from_slice(&data);
        shim.filter_incoming(&incoming);
        let mut want = vec![b'P'; PREFACE_LEN];
        want.extend_from_slice(&ack);
        want.extend_from_slice(&data);
        assert_eq!(shim.in_ready, want);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn shim() -> ControlShim<()> {
            let control = ConnControl::new(
                1,
                1,
                Arc::new(PingFault::default()),
                Arc::new(HpackCounts::new(0)),
            );
            ControlShim::new((), control)
        }

        proptest! {
            #[test]
            fn both_directions_take_any_bytes_cut_anywhere(
                bytes in proptest::collection::vec(any::<u8>(), 0..3000),
                cut in 1usize..200,
            ) {
                let mut whole = shim();
                whole.filter_incoming(&bytes);
                whole.queue_outgoing(&bytes);
                let mut pieces = shim();
                for chunk in bytes.chunks(cut) {
                    pieces.filter_incoming(chunk);
                }
                for chunk in bytes.chunks(cut) {
                    pieces.queue_outgoing(chunk);
                }
                prop_assert_eq!(whole.in_ready, pieces.in_ready);
                prop_assert_eq!(whole.out_buf, pieces.out_buf);
            }
        }
    }
}
