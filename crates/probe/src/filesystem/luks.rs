//! LUKS1 and LUKS2 headers. The UUID is stored as text; LUKS2 also has a label.
//!
//! A LUKS2 volume whose primary header is damaged still carries a secondary header;
//! blkid looks for it at every offset LUKS2 allows (up to 4 MiB). Only the offsets
//! inside the first 64 KiB, which are read anyway, are checked here so that probing an
//! unrelated device costs no extra reads.

use crate::bytes::{be16, be64, field, label};
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

const PRIMARY: &[u8] = b"LUKS\xba\xbe";
const SECONDARY: &[u8] = b"SKUL\xba\xbe";
const SECONDARY_OFFSETS: [u64; 2] = [0x4000, 0x8000];
const HEADER_LEN: usize = 512;

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    if let Some(hdr) = m.read(0, HEADER_LEN)? {
        if valid(&hdr, PRIMARY, 0) {
            return Ok(Some(attributes(&hdr)));
        }
    }
    for off in SECONDARY_OFFSETS {
        if let Some(hdr) = m.read(off, HEADER_LEN)? {
            if valid(&hdr, SECONDARY, off) {
                return Ok(Some(attributes(&hdr)));
            }
        }
    }
    Ok(None)
}

fn valid(hdr: &[u8], magic: &[u8], offset: u64) -> bool {
    if field(hdr, 0, 6) != magic {
        return false;
    }
    // A LUKS2 header records where it sits; a mismatch means a stale copy.
    let v2 = be16(hdr, 6) == 2;
    !v2 || be64(hdr, 256) == offset
}

fn attributes(hdr: &[u8]) -> Superblock {
    let mut sb = Superblock::new("crypto_LUKS");
    sb.uuid = label(field(hdr, 168, 40));
    if be16(hdr, 6) == 2 {
        sb.label = label(field(hdr, 24, 48));
    }
    sb
}
