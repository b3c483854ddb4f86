//! NTFS: boot sector checks, then the `$Volume` MFT record for the label. The UUID is the
//! 64-bit volume serial in upper-case hex.

use crate::bytes::{field, le16, le32, le64, u8_at};
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

const MAX_CLUSTER_SIZE: u64 = 2 * 1024 * 1024;
const MFT_RECORD_VOLUME: u64 = 3;
const ATTR_VOLUME_NAME: u32 = 0x60;
const ATTR_END: u32 = 0xFFFF_FFFF;
/// An attribute header up to its value offset field.
const ATTR_HEADER: usize = 24;

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    let Some(bs) = m.read(0, 512)? else {
        return Ok(None);
    };
    if field(&bs, 3, 8) != b"NTFS    " {
        return Ok(None);
    }
    let Some(record_size) = geometry(&bs) else {
        return Ok(None);
    };
    let sector_size = u64::from(le16(&bs, 11));
    let cluster = sector_size * sectors_per_cluster(u8_at(&bs, 13)).unwrap_or(0);
    let Some(mft) = le64(&bs, 0x30).checked_mul(cluster) else {
        return Ok(None);
    };
    let record_len = record_size as usize;
    match m.read(mft, record_len)? {
        Some(rec) if rec.starts_with(b"FILE") => {}
        _ => return Ok(None),
    }
    let Some(volume) = mft.checked_add(MFT_RECORD_VOLUME * record_size) else {
        return Ok(None);
    };
    let Some(rec) = m.read(volume, record_len)? else {
        return Ok(None);
    };
    if !rec.starts_with(b"FILE") {
        return Ok(None);
    }
    let mut sb = Superblock::new("ntfs");
    sb.label = volume_name(&rec);
    sb.uuid = Some(format!("{:016X}", le64(&bs, 0x48)));
    Ok(Some(sb))
}

fn sectors_per_cluster(raw: u8) -> Option<u64> {
    match raw {
        1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 => Some(u64::from(raw)),
        // Larger clusters are stored as a negative power of two.
        240..=249 => Some(1u64 << (256 - u32::from(raw))),
        _ => None,
    }
}

/// MFT record size when the boot sector is consistent.
fn geometry(bs: &[u8]) -> Option<u64> {
    let sector_size = u64::from(le16(bs, 11));
    if !(256..=4096).contains(&sector_size) {
        return None;
    }
    let spc = sectors_per_cluster(u8_at(bs, 13))?;
    let cluster = sector_size * spc;
    if cluster > MAX_CLUSTER_SIZE {
        return None;
    }
    // Fields FAT uses must be zero on NTFS.
    let unused_zero = le16(bs, 14) == 0
        && u8_at(bs, 16) == 0
        && le16(bs, 17) == 0
        && le16(bs, 19) == 0
        && le16(bs, 22) == 0
        && le32(bs, 32) == 0;
    if !unused_zero {
        return None;
    }
    let per_record = u8_at(bs, 0x40);
    let record_size = match per_record {
        1 | 2 | 4 | 8 | 16 | 32 | 64 => u64::from(per_record) * cluster,
        0xE1..=0xF7 => 1u64 << (256 - u32::from(per_record)),
        _ => return None,
    };
    let clusters = le64(bs, 0x28) / spc;
    if le64(bs, 0x30) > clusters || le64(bs, 0x38) > clusters {
        return None;
    }
    Some(record_size)
}

fn volume_name(rec: &[u8]) -> Option<String> {
    let allocated = le32(rec, 0x1C) as usize;
    let mut off = usize::from(le16(rec, 0x14));
    // Each step advances by a non-zero length, so the walk ends within the record.
    while off + ATTR_HEADER <= rec.len() && off <= allocated {
        let kind = le32(rec, off);
        let len = le32(rec, off + 4) as usize;
        if len == 0 || kind == ATTR_END {
            return None;
        }
        if kind == ATTR_VOLUME_NAME {
            let value_len = le32(rec, off + 0x10) as usize;
            let value_off = usize::from(le16(rec, off + 0x14));
            let start = off + value_off;
            return crate::bytes::label_utf16(field(rec, start, value_len), true);
        }
        off = off.checked_add(len)?;
    }
    None
}
