//! The one HTTP/2 frame reader of the byte-level shims (the client's
//! never-indexed `:path`, the mock's SETTINGS/GOAWAY/PING control): it cuts
//! a byte stream, fed in pieces of any size, into the connection preface
//! and frames, without copying or buffering anything itself.

/// The client connection preface (RFC 9113 section 3.4) is 24 bytes.
pub(crate) const PREFACE_LEN: usize = 24;

pub(crate) const FRAME_HEADERS: u8 = 0x1;
#[cfg_attr(not(feature = "mock"), allow(dead_code))]
pub(crate) const FRAME_SETTINGS: u8 = 0x4;
#[cfg_attr(not(feature = "mock"), allow(dead_code))]
pub(crate) const FRAME_PING: u8 = 0x6;
#[cfg_attr(not(feature = "mock"), allow(dead_code))]
pub(crate) const FRAME_GOAWAY: u8 = 0x7;
#[cfg_attr(not(feature = "mock"), allow(dead_code))]
pub(crate) const FLAG_ACK: u8 = 0x1;
pub(crate) const FLAG_END_HEADERS: u8 = 0x4;
pub(crate) const FLAG_PADDED: u8 = 0x8;
pub(crate) const FLAG_PRIORITY: u8 = 0x20;

/// A frame's 9-byte header, and its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub raw: [u8; 9],
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream_id: u32,
}

impl FrameHeader {
    fn parse(raw: [u8; 9]) -> Self {
        FrameHeader {
            raw,
            len: u32::from_be_bytes([0, raw[0], raw[1], raw[2]]) as usize,
            kind: raw[3],
            flags: raw[4],
            stream_id: u32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]]) & 0x7fff_ffff,
        }
    }
}

/// One piece of the stream, in order: the preface (in pieces), then for
/// each frame its header, its payload (in pieces, possibly none) and its
/// end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Preface(&'a [u8]),
    Header(FrameHeader),
    Payload(&'a [u8]),
    End,
}

/// Where the reader is in the stream.
#[derive(Debug)]
pub(crate) struct FrameReader {
    preface_left: usize,
    hdr: [u8; 9],
    hdr_len: usize,
    // Payload bytes left in the current frame, once its header is read.
    left: Option<usize>,
}

impl FrameReader {
    /// A reader for a stream that starts with `preface` bytes of preface
    /// (24 for what a client sends, 0 for a server).
    pub(crate) fn new(preface: usize) -> Self {
        FrameReader {
            preface_left: preface,
            hdr: [0; 9],
            hdr_len: 0,
            left: None,
        }
    }

    /// Whether the reader is between two frames (after the preface): the
    /// place where a shim may insert a frame of its own.
    #[cfg_attr(not(feature = "mock"), allow(dead_code))]
    pub(crate) fn at_boundary(&self) -> bool {
        self.preface_left == 0 && self.hdr_len == 0 && self.left.is_none()
    }

    /// Cuts `buf`, the next bytes of the stream, into pieces, in order.
    pub(crate) fn feed<'a>(&mut self, mut buf: &'a [u8], mut piece: impl FnMut(Piece<'a>)) {
        while !buf.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(buf.len());
                self.preface_left -= n;
                piece(Piece::Preface(&buf[..n]));
                buf = &buf[n..];
                continue;
            }
            if let Some(left) = self.left {
                let n = left.min(buf.len());
                self.left = Some(left - n);
                piece(Piece::Payload(&buf[..n]));
                buf = &buf[n..];
                if left == n {
                    self.end(&mut piece);
                }
                continue;
            }
            let n = (9 - self.hdr_len).min(buf.len());
            self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&buf[..n]);
            self.hdr_len += n;
            buf = &buf[n..];
            if self.hdr_len == 9 {
                let header = FrameHeader::parse(self.hdr);
                piece(Piece::Header(header));
                self.left = Some(header.len);
                if header.len == 0 {
                    self.end(&mut piece);
                }
            }
        }
    }

    fn end<'a>(&mut self, piece: &mut impl FnMut(Piece<'a>)) {
        self.left = None;
        self.hdr_len = 0;
        piece(Piece::End);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the frames of `chunks` as (header, payload) pairs, and the
    /// preface.
    fn read_all(preface: usize, chunks: &[&[u8]]) -> (Vec<u8>, Vec<(FrameHeader, Vec<u8>)>) {
        let mut reader = FrameReader::new(preface);
        let mut pre = Vec::new();
        let mut frames: Vec<(FrameHeader, Vec<u8>)> = Vec::new();
        let mut open = false;
        for chunk in chunks {
            reader.feed(chunk, |piece| match piece {
                Piece::Preface(p) => pre.extend_from_slice(p),
                Piece::Header(h) => {
                    assert!(!open);
                    open = true;
                    frames.push((h, Vec::new()));
                }
                Piece::Payload(p) => frames.last_mut().unwrap().1.extend_from_slice(p),
                Piece::End => {
                    assert!(open);
                    open = false;
                }
            });
        }
        (pre, frames)
    }

    #[test]
    fn frames_come_out_the_same_however_the_bytes_are_cut() {
        let mut wire = vec![b'P'; PREFACE_LEN];
        wire.extend_from_slice(&[0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]);
        wire.extend_from_slice(&[0, 0, 3, FRAME_HEADERS, 5, 0, 0, 0, 1, 0x82, 0x84, 0x87]);
        wire.extend_from_slice(&[0, 0, 8, FRAME_PING, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        let (pre, whole) = read_all(PREFACE_LEN, &[&wire]);
        assert_eq!(pre, vec![b'P'; PREFACE_LEN]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[1].0.stream_id, 1);
        assert_eq!(whole[1].1, [0x82, 0x84, 0x87]);
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(read_all(PREFACE_LEN, &bytes), (pre, whole));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn frame() -> impl Strategy<Value = (u8, u8, u32, Vec<u8>)> {
            (
                any::<u8>(),
                any::<u8>(),
                any::<u32>(),
                proptest::collection::vec(any::<u8>(), 0..300),
            )
        }

        proptest! {
            #[test]
            fn any_cut_of_any_frames_reads_back_the_same(
                frames in proptest::collection::vec(frame(), 0..12),
                cuts in proptest::collection::vec(1usize..64, 1..40),
            ) {
                let mut wire = vec![b'P'; PREFACE_LEN];
                for (kind, flags, id, payload) in &frames {
                    wire.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
                    wire.extend_from_slice(&[*kind, *flags]);
                    wire.extend_from_slice(&id.to_be_bytes());
                    wire.extend_from_slice(payload);
                }
                let mut chunks = Vec::new();
                let mut rest = &wire[..];
                for n in cuts.iter().cycle() {
                    if rest.is_empty() { break; }
                    let n = (*n).min(rest.len());
                    chunks.push(&rest[..n]);
                    rest = &rest[n..];
                }
                let (pre, read) = read_all(PREFACE_LEN, &chunks);
                prop_assert_eq!(pre, vec![b'P'; PREFACE_LEN]);
                prop_assert_eq!(read.len(), frames.len());
                for ((h, payload), (kind, flags, id, sent)) in read.iter().zip(&frames) {
                    prop_assert_eq!(h.kind, *kind);
                    prop_assert_eq!(h.flags, *flags);
                    prop_assert_eq!(h.stream_id, id & 0x7fff_ffff);
                    prop_assert_eq!(payload, sent);
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), preface in 0usize..30) {
                let mut reader = FrameReader::new(preface);
                let mut total = 0;
                reader.feed(&bytes, |piece| match piece {
                    Piece::Preface(p) | Piece::Payload(p) => total += p.len(),
                    Piece::Header(_) => total += 9,
                    Piece::End => {}
                });
                // Every byte is reported, except a trailing partial header.
                prop_assert!(bytes.len() - total < 9);
            }
        }
    }
}
