//! ISO 9660 with the Joliet extension.
//!
//! blkid's UUID is the volume modification date (or the creation date when that is
//! unset) printed as `YYYY-MM-DD-HH-MM-SS-CC`. Its LABEL prefers Joliet: the 16-character
//! Joliet name is merged with the 32-character primary name when they agree, so a long
//! mixed-case label survives in full.

use crate::bytes::{field, label, label_utf16, u8_at};
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

const FIRST_DESCRIPTOR: u64 = 32 * 1024;
const SECTOR: u64 = 2048;
/// blkid looks at no more than this many descriptors, terminated or not.
const MAX_DESCRIPTORS: u64 = 16;
const VD_PRIMARY: u8 = 1;
const VD_SUPPLEMENTARY: u8 = 2;
const VD_END: u8 = 255;
const LABEL_AT: usize = 40;
const LABEL_LEN: usize = 32;
const CREATED_AT: usize = 813;
const MODIFIED_AT: usize = 830;

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    match m.read(FIRST_DESCRIPTOR + 1, 5)? {
        Some(magic) if magic == b"CD001" => {}
        _ => return Ok(None),
    }
    let mut pvd: Option<Vec<u8>> = None;
    let mut joliet: Option<Vec<u8>> = None;
    for i in 0..MAX_DESCRIPTORS {
        let Some(desc) = m.read(FIRST_DESCRIPTOR + i * SECTOR, SECTOR as usize)? else {
            break;
        };
        match u8_at(&desc, 0) {
            VD_END => break,
            VD_PRIMARY if pvd.is_none() => pvd = Some(desc),
            VD_SUPPLEMENTARY if joliet.is_none() && is_joliet(&desc) => joliet = Some(desc),
            _ => {}
        }
    }
    let Some(pvd) = pvd else {
        return Ok(None);
    };
    let mut sb = Superblock::new("iso9660");
    sb.uuid =
        date_uuid(field(&pvd, MODIFIED_AT, 17)).or_else(|| date_uuid(field(&pvd, CREATED_AT, 17)));
    let ascii = field(&pvd, LABEL_AT, LABEL_LEN);
    sb.label = match &joliet {
        Some(svd) => {
            let utf16 = field(svd, LABEL_AT, LABEL_LEN);
            match merge_joliet(utf16, ascii) {
                Some(merged) => label_utf16(&merged, false),
                None => label_utf16(utf16, false),
            }
        }
        None => label(ascii),
    };
    Ok(Some(sb))
}

fn is_joliet(svd: &[u8]) -> bool {
    matches!(field(svd, 88, 3), b"%/@" | b"%/C" | b"%/E")
}

/// `YYYY-MM-DD-HH-MM-SS-CC` from a 17-byte ISO date, `None` when the date is unset.
fn date_uuid(date: &[u8]) -> Option<String> {
    if date.len() != 17 {
        return None;
    }
    let digits = &date[..16];
    let unset = digits.iter().all(|&b| b == b'0' || b == 0) && date[16] == 0;
    if unset {
        return None;
    }
    let mut out = String::with_capacity(22);
    for (i, &b) in digits.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10 | 12 | 14) {
            out.push('-');
        }
        // A NUL ends the C string blkid builds; anything else is kept as a Latin-1 char.
        if b == 0 {
            break;
        }
        out.push(char::from(b));
    }
    Some(out)
}

/// Joliet holds at most 16 UTF-16 characters while the primary descriptor holds 32
/// d-characters; where the two agree (case-insensitively, `_` standing for what ISO 9660
/// cannot store) blkid combines them into one UTF-16BE label. `None` when they disagree.
fn merge_joliet(utf16: &[u8], ascii: &[u8]) -> Option<Vec<u8>> {
    let len = utf16.len().min(ascii.len());
    let mut out = Vec::with_capacity(len * 2);
    let (mut u, mut a) = (0usize, 0usize);
    while u + 1 < len && a < len {
        let high = utf16[u];
        if (0xD8..=0xDB).contains(&high) && u + 3 < len && (0xDC..=0xDF).contains(&utf16[u + 2]) {
            out.extend_from_slice(&utf16[u..u + 2]);
            u += 2;
        }
        let (hi, lo, c) = (utf16[u], utf16[u + 1], ascii[a]);
        if c == b'_' && (hi != 0 || lo >= 0x80) {
            out.extend_from_slice(&[hi, lo]);
        } else if hi == 0 && lo == b'_' {
            out.extend_from_slice(&[0, c]);
        } else if hi == 0 && c.eq_ignore_ascii_case(&lo) {
            out.extend_from_slice(&[0, if c.is_ascii_uppercase() { lo } else { c }]);
        } else {
            return None;
        }
        u += 2;
        a += 1;
    }
    for &c in &ascii[a..] {
        out.extend_from_slice(&[0, c]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be16(s: &str, units: usize) -> Vec<u8> {
        let mut v: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
        while v.len() < units * 2 {
            v.extend_from_slice(&[0, b' ']);
        }
        v
    }

    fn padded(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.resize(32, b' ');
        v
    }

    #[test]
    fn joliet_and_primary_labels_merge() {
        let cases = [
            // Long mixed-case label: Joliet keeps case for 16 chars, primary the rest.
            (
                "Alpine Std x86_6",
                "ALPINE STD X86_64 LOWERCASE",
                Some("Alpine Std x86_64 LOWERCASE"),
            ),
            ("Grüße", "GR__E", Some("Grüße")),
            ("abc", "XYZ", None),
        ];
        for (j, p, want) in cases {
            let merged = merge_joliet(&be16(j, 16), &padded(p));
            let got = merged.and_then(|m| label_utf16(&m, false));
            assert_eq!(got.as_deref(), want, "{j} / {p}");
        }
    }

    #[test]
    fn dates_format_like_blkid() {
        assert_eq!(
            date_uuid(b"2021111213141516\x00").as_deref(),
            Some("2021-11-12-13-14-15-16")
        );
        assert_eq!(date_uuid(b"0000000000000000\x00"), None);
        assert_eq!(date_uuid(&[0u8; 17]), None);
        assert!(date_uuid(b"0000000000000000\x04").is_some());
        assert_eq!(date_uuid(b"short"), None);
    }
}
