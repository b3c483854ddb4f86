//! exFAT: validated boot sector (including the boot-region checksum), the volume serial
//! as UUID and the label from the root directory's volume-label entry.

use crate::bytes::{field, le16, le32, le64, u8_at};
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

const ENTRY: u64 = 32;
const ENTRY_EOD: u8 = 0x00;
const ENTRY_LABEL: u8 = 0x83;
/// blkid gives up after this many directory entries.
const MAX_ENTRIES: u64 = 10_000;
const FIRST_DATA_CLUSTER: u32 = 2;
const LAST_DATA_CLUSTER: u32 = 0x0FFF_FFF6;
/// Directory bytes fetched per read while scanning for the label.
const DIR_CHUNK: u64 = 4096;

struct Layout {
    sector_shift: u32,
    cluster_shift: u32,
    fat_offset: u64,
    heap_offset: u64,
}

impl Layout {
    /// `None` on arithmetic overflow, which only a hostile image can cause.
    fn cluster_offset(&self, cluster: u32) -> Option<u64> {
        let index = u64::from(cluster.checked_sub(FIRST_DATA_CLUSTER)?);
        let sector = index
            .checked_mul(1u64 << self.cluster_shift)?
            .checked_add(self.heap_offset)?;
        sector.checked_mul(1u64 << self.sector_shift)
    }

    fn cluster_bytes(&self) -> u64 {
        1u64 << (self.sector_shift + self.cluster_shift)
    }
}

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    let Some(bs) = m.read(0, 512)? else {
        return Ok(None);
    };
    if field(&bs, 3, 8) != b"EXFAT   " || !valid(&bs) || !checksum_ok(m, &bs)? {
        return Ok(None);
    }
    let layout = Layout {
        sector_shift: u32::from(u8_at(&bs, 108)),
        cluster_shift: u32::from(u8_at(&bs, 109)),
        fat_offset: u64::from(le32(&bs, 80)),
        heap_offset: u64::from(le32(&bs, 88)),
    };
    let mut sb = Superblock::new("exfat");
    sb.label = find_label(m, &layout, le32(&bs, 96))?;
    let s = field(&bs, 100, 4);
    if s.len() == 4 {
        sb.uuid = Some(format!("{:02X}{:02X}-{:02X}{:02X}", s[3], s[2], s[1], s[0]));
    }
    Ok(Some(sb))
}

fn valid(bs: &[u8]) -> bool {
    let sector_shift = u8_at(bs, 108);
    let cluster_shift = u8_at(bs, 109);
    let fats = u8_at(bs, 110);
    let fat_offset = u64::from(le32(bs, 80));
    let fat_length = u64::from(le32(bs, 84));
    let heap = u64::from(le32(bs, 88));
    let clusters = u64::from(le32(bs, 92));
    let root = u64::from(le32(bs, 96));
    le16(bs, 510) == 0xAA55
        && field(bs, 0, 3) == [0xEB, 0x76, 0x90]
        && field(bs, 11, 53).iter().all(|&b| b == 0)
        && (fats == 1 || fats == 2)
        && (9..=12).contains(&sector_shift)
        && cluster_shift <= 25 - sector_shift
        && fat_offset >= 24
        && fat_offset + fat_length * u64::from(fats) <= heap
        && heap + (clusters << cluster_shift) <= le64(bs, 72)
        && root >= 2
        && root < clusters + 2
}

/// The boot region (sectors 0-10) is protected by a checksum repeated over sector 11.
fn checksum_ok(m: &mut Medium<'_>, bs: &[u8]) -> Result<bool, ProbeError> {
    let sector = 1usize << u8_at(bs, 108);
    let Some(region) = m.read(0, sector * 12)? else {
        return Ok(false);
    };
    let mut sum: u32 = 0;
    for (i, &b) in region[..sector * 11].iter().enumerate() {
        // VolumeFlags and PercentInUse change at run time and are excluded.
        if matches!(i, 106 | 107 | 112) {
            continue;
        }
        sum = sum.rotate_right(1).wrapping_add(u32::from(b));
    }
    Ok(region[sector * 11..]
        .chunks_exact(4)
        .all(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) == sum))
}

fn find_label(
    m: &mut Medium<'_>,
    layout: &Layout,
    root: u32,
) -> Result<Option<String>, ProbeError> {
    let mut cluster = root;
    let mut in_cluster = 0u64;
    let chunk = layout.cluster_bytes().min(DIR_CHUNK);
    let mut seen = 0u64;
    while seen < MAX_ENTRIES {
        let Some(offset) = layout.cluster_offset(cluster) else {
            return Ok(None);
        };
        let Some(buf) = m.read(offset + in_cluster, chunk as usize)? else {
            return Ok(None);
        };
        for entry in buf.chunks_exact(ENTRY as usize) {
            match entry[0] {
                ENTRY_EOD => return Ok(None),
                ENTRY_LABEL => {
                    let chars = usize::from(entry[1]).min(11);
                    return Ok(crate::bytes::label_utf16(&entry[2..2 + chars * 2], true));
                }
                _ => {}
            }
            seen += 1;
        }
        in_cluster += chunk;
        if in_cluster >= layout.cluster_bytes() {
            in_cluster = 0;
            let fat_entry = (layout.fat_offset << layout.sector_shift) + u64::from(cluster) * 4;
            let Some(next) = m.read(fat_entry, 4)? else {
                return Ok(None);
            };
            cluster = le32(&next, 0);
            if !(FIRST_DATA_CLUSTER..=LAST_DATA_CLUSTER).contains(&cluster) {
                return Ok(None);
            }
        }
    }
    Ok(None)
}
