//! Field access and string conversion for on-disk structures.
//!
//! The accessors return 0 for a field outside the buffer instead of panicking: every
//! prober reads a buffer at least as large as its structure, so this only matters for
//! code paths that would otherwise be a panic in PID 1.

pub(crate) fn le16(buf: &[u8], off: usize) -> u16 {
    array(buf, off).map_or(0, u16::from_le_bytes)
}

pub(crate) fn le32(buf: &[u8], off: usize) -> u32 {
    array(buf, off).map_or(0, u32::from_le_bytes)
}

pub(crate) fn le64(buf: &[u8], off: usize) -> u64 {
    array(buf, off).map_or(0, u64::from_le_bytes)
}

pub(crate) fn be16(buf: &[u8], off: usize) -> u16 {
    array(buf, off).map_or(0, u16::from_be_bytes)
}

pub(crate) fn be32(buf: &[u8], off: usize) -> u32 {
    array(buf, off).map_or(0, u32::from_be_bytes)
}

pub(crate) fn be64(buf: &[u8], off: usize) -> u64 {
    array(buf, off).map_or(0, u64::from_be_bytes)
}

pub(crate) fn u8_at(buf: &[u8], off: usize) -> u8 {
    buf.get(off).copied().unwrap_or(0)
}

/// `len` bytes at `off`, empty when out of range.
pub(crate) fn field(buf: &[u8], off: usize, len: usize) -> &[u8] {
    off.checked_add(len)
        .and_then(|end| buf.get(off..end))
        .unwrap_or(&[])
}

pub(crate) fn array<const N: usize>(buf: &[u8], off: usize) -> Option<[u8; N]> {
    field(buf, off, N).try_into().ok()
}

/// The 16 bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, or `None` when all zero, which
/// blkid treats as "no UUID".
pub(crate) fn uuid(raw: &[u8]) -> Option<String> {
    let bytes: [u8; 16] = raw.try_into().ok()?;
    if bytes.iter().all(|&b| b == 0) {
        return None;
    }
    Some(uuid_bytes(&bytes))
}

fn uuid_bytes(b: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// A GUID stored mixed-endian (GPT): the first three fields little-endian.
pub(crate) fn guid(raw: &[u8]) -> Option<String> {
    let b: [u8; 16] = raw.try_into().ok()?;
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let swapped = [
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
        b[14], b[15],
    ];
    Some(uuid_bytes(&swapped))
}

/// blkid's treatment of a fixed-size 8-bit label: cut at the first NUL, strip trailing
/// whitespace, and drop it entirely when nothing is left.
pub(crate) fn label(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]);
    trimmed(&text)
}

/// A UTF-16 label (`little` selects the byte order), cut at the first NUL character.
pub(crate) fn label_utf16(raw: &[u8], little: bool) -> Option<String> {
    let units = raw.chunks_exact(2).map(|c| {
        if little {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    let text: String = char::decode_utf16(units.take_while(|&u| u != 0))
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    trimmed(&text)
}

fn trimmed(text: &str) -> Option<String> {
    // C isspace(): blkid trims these and nothing else (not e.g. U+00A0).
    let t = text.trim_end_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_formats() {
        let raw: Vec<u8> = (0x10..0x20).collect();
        assert_eq!(
            uuid(&raw).as_deref(),
            Some("10111213-1415-1617-1819-1a1b1c1d1e1f")
        );
        assert_eq!(
            guid(&raw).as_deref(),
            Some("13121110-1514-1716-1819-1a1b1c1d1e1f")
        );
        assert_eq!(uuid(&[0; 16]), None);
        assert_eq!(guid(&[0; 16]), None);
        assert_eq!(uuid(&raw[..15]), None);
    }

    #[test]
    fn labels_follow_blkid_trimming() {
        let cases: [(&[u8], Option<&str>); 5] = [
            (b"ROOT       ", Some("ROOT")),
            (b"a b\0garbage", Some("a b")),
            (b"\0ABC", None),
            (b"   \t ", None),
            (b" lead", Some(" lead")),
        ];
        for (raw, want) in cases {
            assert_eq!(label(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn utf16_labels() {
        let le: Vec<u8> = "Grüße 😀"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .chain([0, 0, b'x', 0])
            .collect();
        assert_eq!(label_utf16(&le, true).as_deref(), Some("Grüße 😀"));
        let be: Vec<u8> = "CD ".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(label_utf16(&be, false).as_deref(), Some("CD"));
        // A lone surrogate must not panic.
        assert_eq!(
            label_utf16(&[0x00, 0xd8, b'A', 0], true).as_deref(),
            Some("\u{fffd}A")
        );
    }

    #[test]
    fn fields_out_of_range_read_as_zero() {
        let buf = [1u8, 2, 3];
        assert_eq!(le32(&buf, 0), 0);
        assert_eq!(le16(&buf, 1), 0x0302);
        assert_eq!(field(&buf, usize::MAX, 2), &[] as &[u8]);
        assert_eq!(u8_at(&buf, 9), 0);
    }
}
