//! Linux MD RAID members: v0.90 and v1.0 superblocks near the end of the device, v1.1 at
//! the start and v1.2 at 4 KiB, tried in blkid's order.

use crate::bytes::{be32, field, label, le32, le64, uuid};
use crate::filesystem::Superblock;
use crate::medium::{Medium, MAX_READ};
use crate::ProbeError;

const MAGIC: u32 = 0xA92B_4EFC;
/// v0.90 reserves the last 64 KiB-aligned 64 KiB of the device.
const V0_RESERVED: u64 = 0x10000;
const V1_HEADER: usize = 256;

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    let size = m.size();
    if size > V0_RESERVED {
        let off = (size & !(V0_RESERVED - 1)) - V0_RESERVED;
        if let Some(sb) = v0(m, off)? {
            return Ok(Some(sb));
        }
        if let Some(off) = (size & !0xFFF).checked_sub(0x2000) {
            if let Some(sb) = v1(m, off)? {
                return Ok(Some(sb));
            }
        }
    }
    for off in [0, 0x1000] {
        if let Some(sb) = v1(m, off)? {
            return Ok(Some(sb));
        }
    }
    Ok(None)
}

fn v0(m: &mut Medium<'_>, off: u64) -> Result<Option<Superblock>, ProbeError> {
    let Some(sb) = m.read(off, 64)? else {
        return Ok(None);
    };
    // The superblock is written in host byte order; blkid shows each 32-bit UUID word
    // most significant byte first either way.
    let words = [20, 52, 56, 60];
    let little = le32(&sb, 0) == MAGIC;
    if !little && be32(&sb, 0) != MAGIC {
        return Ok(None);
    }
    let minor = if little { le32(&sb, 8) } else { be32(&sb, 8) };
    let used = if minor >= 90 { 4 } else { 1 };
    let mut raw = [0u8; 16];
    for (i, at) in words.iter().take(used).enumerate() {
        let word = if little {
            le32(&sb, *at)
        } else {
            be32(&sb, *at)
        };
        raw[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    let mut found = Superblock::new("linux_raid_member");
    found.uuid = uuid(&raw);
    Ok(Some(found))
}

fn v1(m: &mut Medium<'_>, off: u64) -> Result<Option<Superblock>, ProbeError> {
    let Some(head) = m.read(off, V1_HEADER)? else {
        return Ok(None);
    };
    if le32(&head, 0) != MAGIC || le32(&head, 4) != 1 || le64(&head, 144) != off >> 9 {
        return Ok(None);
    }
    let csummed = V1_HEADER as u64 + u64::from(le32(&head, 220)) * 2;
    if csummed > MAX_READ as u64 {
        return Ok(None);
    }
    let Some(full) = m.read(off, csummed as usize)? else {
        return Ok(None);
    };
    if checksum(&full) != le32(&head, 216) {
        return Ok(None);
    }
    let mut sb = Superblock::new("linux_raid_member");
    sb.uuid = uuid(field(&head, 16, 16));
    sb.label = label(field(&head, 32, 32));
    Ok(Some(sb))
}

/// The md v1 checksum: a 64-bit sum of little-endian words (with the checksum field
/// taken as zero), folded to 32 bits.
pub(crate) fn checksum(sb: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    let mut words = sb.chunks_exact(4);
    for (i, w) in words.by_ref().enumerate() {
        if i == 216 / 4 {
            continue;
        }
        sum += u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    if rest.len() >= 2 {
        sum += u64::from(u16::from_le_bytes([rest[0], rest[1]]));
    }
    ((sum & 0xFFFF_FFFF) + (sum >> 32)) as u32
}
