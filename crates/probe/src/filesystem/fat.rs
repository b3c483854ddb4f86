//! FAT12/16/32 (`vfat`).
//!
//! Like blkid, LABEL comes from the volume-label entry in the root directory (what DOS,
//! Windows and `fatlabel` treat as authoritative); the boot-sector copy is ignored. The
//! UUID is the volume serial as `XXXX-XXXX`. The same boot-sector validation decides
//! whether a sector with `55 AA` is a FAT boot sector rather than an MBR.

use crate::bytes::{field, le16, le32, u8_at};
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

const FAT12_MAX: u64 = 0xFF4;
const FAT16_MAX: u64 = 0xFFF4;
const FAT32_MAX: u64 = 0x0FFF_FFF6;
const DIR_ENTRY: usize = 32;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const ATTR_LONG_NAME: u8 = 0x0F;
const ATTR_MASK: u8 = 0x3F;
/// blkid follows at most this many clusters of the FAT32 root directory.
const MAX_ROOT_CLUSTERS: u32 = 99;
/// Root-directory bytes read per request while looking for the label.
const DIR_CHUNK: usize = 16 * 1024;

/// Geometry of a boot sector that passed validation.
struct Geometry {
    sector_size: u64,
    reserved: u64,
    fat_size: u64,
}

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    let Some(bs) = m.read(0, 512)? else {
        return Ok(None);
    };
    let Some(geo) = valid_boot_sector(&bs) else {
        return Ok(None);
    };
    let mut sb = Superblock::new("vfat");
    let serial_at;
    if le16(&bs, 22) != 0 {
        let root_start = (geo.reserved + geo.fat_size) * geo.sector_size;
        let entries = u64::from(le16(&bs, 17)) * DIR_ENTRY as u64;
        sb.label = search_label(m, root_start, entries)?.flatten();
        serial_at = (u8_at(&bs, 38) == 0x29).then_some(39);
    } else if le32(&bs, 36) != 0 {
        if !fsinfo_ok(m, &bs, &geo)? {
            return Ok(None);
        }
        sb.label = fat32_root_label(m, &bs, &geo)?;
        serial_at = (u8_at(&bs, 66) == 0x29).then_some(67);
    } else {
        serial_at = None;
    }
    if let Some(at) = serial_at {
        let s = field(&bs, at, 4);
        if s.len() == 4 {
            sb.uuid = Some(format!("{:02X}{:02X}-{:02X}{:02X}", s[3], s[2], s[1], s[0]));
        }
    }
    Ok(Some(sb))
}

/// Whether the first sector is a FAT boot sector (used to tell FAT from an MBR).
pub(crate) fn is_boot_sector(sector: &[u8]) -> bool {
    valid_boot_sector(sector).is_some()
}

fn valid_boot_sector(bs: &[u8]) -> Option<Geometry> {
    let strong_magic = [
        (0x52, &b"MSWIN"[..]),
        (0x52, b"FAT32   "),
        (0x36, b"MSDOS"),
        (0x36, b"FAT16   "),
        (0x36, b"FAT12   "),
        (0x36, b"FAT     "),
    ]
    .iter()
    .any(|(at, magic)| field(bs, *at, magic.len()) == *magic);
    let boot_sig = field(bs, 0x1FE, 2) == [0x55, 0xAA];
    if !strong_magic {
        let jump = matches!(u8_at(bs, 0), 0xEB | 0xE9);
        if !jump && !boot_sig {
            return None;
        }
        // Without a FAT magic only an old floppy with a boot signature qualifies, and
        // OS/2 leaves FAT-like pseudo headers on JFS and HPFS volumes.
        let fake = matches!(field(bs, 0x36, 8), b"JFS     " | b"HPFS    ");
        if !boot_sig || fake {
            return None;
        }
    }
    let fats = u64::from(u8_at(bs, 16));
    let reserved = u64::from(le16(bs, 14));
    let media = u8_at(bs, 21);
    let cluster_size = u64::from(u8_at(bs, 13));
    let sector_size = u64::from(le16(bs, 11));
    if fats == 0 || reserved == 0 || !(media >= 0xF8 || media == 0xF0) {
        return None;
    }
    if !cluster_size.is_power_of_two()
        || !sector_size.is_power_of_two()
        || !(512..=4096).contains(&sector_size)
    {
        return None;
    }
    let dir_entries = u64::from(le16(bs, 17));
    let mut sectors = u64::from(le16(bs, 19));
    if sectors == 0 {
        sectors = u64::from(le32(bs, 32));
    }
    let fat16_length = u64::from(le16(bs, 22));
    let fat32_length = u64::from(le32(bs, 36));
    let fat_length = if fat16_length == 0 {
        fat32_length
    } else {
        fat16_length
    };
    let fat_size = fat_length * fats;
    let dir_size = (dir_entries * DIR_ENTRY as u64).div_ceil(sector_size);
    let data = sectors.checked_sub(reserved + fat_size + dir_size)?;
    let clusters = data / cluster_size;
    let max = if fat16_length == 0 && fat32_length != 0 {
        FAT32_MAX
    } else if clusters > FAT12_MAX {
        FAT16_MAX
    } else {
        FAT12_MAX
    };
    (clusters <= max).then_some(Geometry {
        sector_size,
        reserved,
        fat_size,
    })
}

/// blkid rejects FAT32 whose FSINFO sector carries foreign signatures.
fn fsinfo_ok(m: &mut Medium<'_>, bs: &[u8], geo: &Geometry) -> Result<bool, ProbeError> {
    let sector = u64::from(le16(bs, 48));
    if sector == 0 {
        return Ok(true);
    }
    let Some(info) = m.read(sector * geo.sector_size, 512)? else {
        return Ok(false);
    };
    let sig1 = field(&info, 0, 4);
    let sig2 = field(&info, 484, 4);
    Ok(matches!(sig1, b"RRaA" | b"RRdA" | [0, 0, 0, 0]) && matches!(sig2, b"rrAa" | [0, 0, 0, 0]))
}

fn fat32_root_label(
    m: &mut Medium<'_>,
    bs: &[u8],
    geo: &Geometry,
) -> Result<Option<String>, ProbeError> {
    let cluster_bytes = u64::from(u8_at(bs, 13)) * geo.sector_size;
    let data_start = geo.reserved + geo.fat_size;
    let fat_entries = u64::from(le32(bs, 36)) * geo.sector_size / 4;
    let mut next = u64::from(le32(bs, 44));
    for _ in 0..MAX_ROOT_CLUSTERS {
        if next < 2 || next >= fat_entries {
            break;
        }
        let sector = data_start + (next - 2) * u64::from(u8_at(bs, 13));
        if let Some(found) = search_label(m, sector * geo.sector_size, cluster_bytes)? {
            return Ok(found);
        }
        let Some(entry) = m.read(geo.reserved * geo.sector_size + next * 4, 4)? else {
            break;
        };
        next = u64::from(le32(&entry, 0) & 0x0FFF_FFFF);
    }
    Ok(None)
}

/// Scan `len` bytes of directory at `offset`. `Some(label)` when the scan ended (label
/// found, end-of-directory marker, or unreadable), `None` when the area had no verdict.
fn search_label(
    m: &mut Medium<'_>,
    offset: u64,
    len: u64,
) -> Result<Option<Option<String>>, ProbeError> {
    let mut done = 0u64;
    while done < len {
        let chunk = (len - done).min(DIR_CHUNK as u64) as usize;
        let Some(buf) = m.read(offset + done, chunk)? else {
            return Ok(Some(None));
        };
        for ent in buf.chunks_exact(DIR_ENTRY) {
            let attr = ent[11];
            if ent[0] == 0 {
                return Ok(Some(None));
            }
            let in_use = ent[0] != 0xE5 && le16(ent, 20) == 0 && le16(ent, 26) == 0;
            if !in_use || attr & ATTR_MASK == ATTR_LONG_NAME {
                continue;
            }
            if attr & (ATTR_VOLUME_ID | ATTR_DIR) == ATTR_VOLUME_ID {
                let mut name = [0u8; 11];
                name.copy_from_slice(&ent[..11]);
                // 0x05 stands for a real leading 0xE5 (the "deleted" marker).
                if name[0] == 0x05 {
                    name[0] = 0xE5;
                }
                let label = if &name == b"NO NAME    " {
                    None
                } else {
                    crate::bytes::label(&name)
                };
                return Ok(Some(label));
            }
        }
        done += chunk as u64;
    }
    Ok(None)
}
