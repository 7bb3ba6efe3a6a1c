//! Just enough HPACK (RFC 7541) to find how each header field of a block is
//! represented, without decoding names or values.
//!
//! Apple asks that `:path` and `authorization` be sent as literals that are
//! *never indexed*. `h2` marks `authorization` so (it is a sensitive
//! value), but always encodes `:path` as a literal *without indexing*, with
//! no way to ask for more. Both forms have the same layout and differ only in
//! one bit of their first byte (`0000xxxx` vs `0001xxxx`), and neither
//! touches the dynamic table, so flipping that bit changes nothing else.

/// How a header field is represented in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repr {
    /// An entry of the static or dynamic table.
    Indexed,
    /// A literal added to the dynamic table.
    Incremental,
    /// A literal without indexing (`0000xxxx`).
    WithoutIndexing,
    /// A literal never indexed (`0001xxxx`).
    NeverIndexed,
}

/// One field: where its first byte is, how it is represented, and its name's
/// index (0 for a literal name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    pub at: usize,
    pub repr: Repr,
    pub name_index: u64,
}

/// Static-table indexes of the names that matter here.
pub(crate) const PATH: [u64; 2] = [4, 5];
#[cfg_attr(not(feature = "mock"), allow(dead_code))]
pub(crate) const AUTHORIZATION: u64 = 23;

/// The fields of a header block, or `None` if it does not parse.
pub(crate) fn fields(block: &[u8]) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < block.len() {
        let b = block[pos];
        let at = pos;
        if b & 0x80 != 0 {
            let (index, next) = integer(block, pos, 7)?;
            pos = next;
            out.push(Field {
                at,
                repr: Repr::Indexed,
                name_index: index,
            });
            continue;
        }
        if b & 0xe0 == 0x20 {
            // Dynamic table size update: not a field.
            pos = integer(block, pos, 5)?.1;
            continue;
        }
        let (repr, prefix) = match b & 0xf0 {
            0x40..=0x70 => (Repr::Incremental, 6),
            0x10 => (Repr::NeverIndexed, 4),
            _ => (Repr::WithoutIndexing, 4),
        };
        let (name_index, next) = integer(block, pos, prefix)?;
        pos = next;
        if name_index == 0 {
            pos = skip_string(block, pos)?;
        }
        pos = skip_string(block, pos)?;
        out.push(Field {
            at,
            repr,
            name_index,
        });
    }
    Some(out)
}

/// Turns every `:path` sent as a literal without indexing into a
/// never-indexed literal. Returns whether the block changed.
pub(crate) fn never_index_path(block: &mut [u8]) -> bool {
    let Some(fields) = fields(block) else {
        return false;
    };
    let mut changed = false;
    for f in fields {
        if f.repr == Repr::WithoutIndexing && PATH.contains(&f.name_index) {
            block[f.at] |= 0x10;
            changed = true;
        }
    }
    changed
}

/// An HPACK integer with an `n`-bit prefix starting at `pos`: its value and
/// the position after it.
fn integer(block: &[u8], pos: usize, n: u32) -> Option<(u64, usize)> {
    let mask = (1u64 << n) - 1;
    let mut value = u64::from(*block.get(pos)?) & mask;
    let mut pos = pos + 1;
    if value < mask {
        return Some((value, pos));
    }
    let mut shift = 0;
    loop {
        let b = *block.get(pos)?;
        pos += 1;
        value = value.checked_add(u64::from(b & 0x7f).checked_shl(shift)?)?;
        if b & 0x80 == 0 {
            return Some((value, pos));
        }
        shift += 7;
        if shift > 56 {
            return None;
        }
    }
}

/// Skips a string literal (Huffman-coded or not: only its length matters).
fn skip_string(block: &[u8], pos: usize) -> Option<usize> {
    let (len, start) = integer(block, pos, 7)?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= block.len()).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_only_path_literals_without_indexing() {
        // :method POST (indexed 3), :path literal w/o indexing, name index 4,
        // value "/3/device/ab"; authorization never indexed (name 23), value
        // "bearer x"; a literal with a new name, incremental.
        let mut block = vec![0x83, 0x04, 12];
        block.extend_from_slice(b"/3/device/ab");
        block.extend_from_slice(&[0x1f, 0x08, 8]); // 0001 1111 + 8 => index 23
        block.extend_from_slice(b"bearer x");
        block.extend_from_slice(&[0x40, 3]);
        block.extend_from_slice(b"foo");
        block.push(3);
        block.extend_from_slice(b"bar");
        let before = fields(&block).unwrap();
        assert_eq!(
            before
                .iter()
                .map(|f| (f.repr, f.name_index))
                .collect::<Vec<_>>(),
            [
                (Repr::Indexed, 3),
                (Repr::WithoutIndexing, 4),
                (Repr::NeverIndexed, 23),
                (Repr::Incremental, 0)
            ]
        );
        assert!(never_index_path(&mut block));
        let after = fields(&block).unwrap();
        assert_eq!(after[1].repr, Repr::NeverIndexed);
        assert_eq!(after[1].name_index, 4);
        assert!(!never_index_path(&mut block), "already never indexed");
        // Damaged blocks are left alone.
        let mut bad = vec![0x04, 50, b'/'];
        assert!(!never_index_path(&mut bad));
        assert_eq!(bad, [0x04, 50, b'/']);
    }
}
