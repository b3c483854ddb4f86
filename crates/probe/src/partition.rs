//! MBR (`dos`) and GPT partition tables: the table type, disk identifier and the
//! PARTUUID of one partition, numbered the way the kernel numbers them.

use crate::bytes::{field, guid, le32, le64, u8_at};
use crate::checksum::crc32;
use crate::filesystem::{fat, ntfs};
use crate::medium::{Medium, MAX_READ};
use crate::ProbeError;

const MBR_TABLE: usize = 446;
const MBR_ENTRY: usize = 16;
const TYPE_GPT_PROTECTIVE: u8 = 0xEE;
/// Logical sector sizes a GPT may be written with; images are always 512.
const GPT_SECTOR_SIZES: [u64; 2] = [512, 4096];
const GPT_HEADER_MIN: usize = 92;
const GPT_ENTRY_MIN: usize = 128;
/// EBR links followed before giving up on a looping or absurdly long chain.
const MAX_EBR_LINKS: u32 = 256;

pub(crate) enum Table {
    Dos { mbr: Vec<u8> },
    Gpt { header: Vec<u8>, entries: Vec<u8> },
}

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Table>, ProbeError> {
    let Some(mbr) = m.read(0, 512)? else {
        return Ok(None);
    };
    if field(&mbr, 510, 2) != [0x55, 0xAA] {
        return Ok(None);
    }
    let entries: Vec<&[u8]> = (0..4)
        .map(|i| field(&mbr, MBR_TABLE + i * MBR_ENTRY, MBR_ENTRY))
        .collect();
    if entries.iter().any(|e| u8_at(e, 4) == TYPE_GPT_PROTECTIVE) {
        return gpt(m);
    }
    // AIX disks carry their own magic and no MBR table.
    if field(&mbr, 0, 4) == [0xC9, 0xC2, 0xD4, 0xC1] {
        return Ok(None);
    }
    if entries.iter().any(|e| !matches!(u8_at(e, 0), 0 | 0x80)) {
        return Ok(None);
    }
    // 55 AA also ends every FAT and NTFS boot sector.
    if fat::is_boot_sector(&mbr) || ntfs::probe(m)?.is_some() {
        return Ok(None);
    }
    // Some install an LVM PV on the whole disk and keep an empty MBR to boot from.
    let empty = entries.iter().all(|e| e.iter().all(|&b| b == 0));
    if empty && lvm_label(m)? {
        return Ok(None);
    }
    Ok(Some(Table::Dos { mbr }))
}

fn lvm_label(m: &mut Medium<'_>) -> Result<bool, ProbeError> {
    for sector in 0..4u64 {
        if let Some(s) = m.read(sector * 512, 32)? {
            if field(&s, 0, 8) == b"LABELONE" && field(&s, 24, 8) == b"LVM2 001" {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn gpt(m: &mut Medium<'_>) -> Result<Option<Table>, ProbeError> {
    for sector in GPT_SECTOR_SIZES {
        let last_lba = (m.size() / sector).saturating_sub(1);
        for lba in [1, last_lba] {
            if let Some(table) = gpt_at(m, sector, lba, last_lba)? {
                return Ok(Some(table));
            }
        }
    }
    Ok(None)
}

/// A GPT header at `lba`, accepted only if it and its entry array pass their CRCs.
fn gpt_at(
    m: &mut Medium<'_>,
    sector: u64,
    lba: u64,
    last_lba: u64,
) -> Result<Option<Table>, ProbeError> {
    if lba < 1 {
        return Ok(None);
    }
    let Some(mut header) = m.read(lba * sector, sector as usize)? else {
        return Ok(None);
    };
    let header_size = le32(&header, 12) as usize;
    if field(&header, 0, 8) != b"EFI PART"
        || !(GPT_HEADER_MIN..=sector as usize).contains(&header_size)
    {
        return Ok(None);
    }
    let stored_crc = le32(&header, 16);
    header[16..20].fill(0);
    if crc32(&header[..header_size]) != stored_crc {
        return Ok(None);
    }
    header[16..20].copy_from_slice(&stored_crc.to_le_bytes());
    let first_usable = le64(&header, 40);
    let last_usable = le64(&header, 48);
    if le64(&header, 24) != lba || first_usable > last_usable || last_usable > last_lba {
        return Ok(None);
    }
    let count = le32(&header, 80) as usize;
    let size = le32(&header, 84) as usize;
    if count == 0 || size < GPT_ENTRY_MIN || size & 7 != 0 {
        return Ok(None);
    }
    let Some(total) = count.checked_mul(size).filter(|&t| t <= MAX_READ) else {
        return Ok(None);
    };
    let Some(offset) = le64(&header, 72).checked_mul(sector) else {
        return Ok(None);
    };
    let Some(entries) = m.read(offset, total)? else {
        return Ok(None);
    };
    if crc32(&entries) != le32(&header, 88) {
        return Ok(None);
    }
    Ok(Some(Table::Gpt { header, entries }))
}

impl Table {
    pub(crate) fn pttype(&self) -> &'static str {
        match self {
            Table::Dos { .. } => "dos",
            Table::Gpt { .. } => "gpt",
        }
    }

    pub(crate) fn ptuuid(&self) -> Option<String> {
        match self {
            Table::Dos { mbr } => dos_id(mbr).map(|id| format!("{id:08x}")),
            Table::Gpt { header, .. } => guid(field(header, 56, 16)),
        }
    }

    pub(crate) fn partition_uuid(
        &self,
        m: &mut Medium<'_>,
        partn: u32,
    ) -> Result<Option<String>, ProbeError> {
        if partn == 0 {
            return Ok(None);
        }
        match self {
            Table::Dos { mbr } => {
                let Some(id) = dos_id(mbr) else {
                    return Ok(None);
                };
                let exists = dos_partition_exists(m, mbr, partn)?;
                Ok(exists.then(|| format!("{id:08x}-{partn:02x}")))
            }
            Table::Gpt { header, entries } => Ok(gpt_partition_uuid(header, entries, partn)),
        }
    }
}

fn dos_id(mbr: &[u8]) -> Option<u32> {
    Some(le32(mbr, 440)).filter(|&id| id != 0)
}

struct DosEntry {
    kind: u8,
    start: u64,
    size: u64,
}

fn dos_entries(sector: &[u8]) -> [DosEntry; 4] {
    std::array::from_fn(|i| {
        let e = field(sector, MBR_TABLE + i * MBR_ENTRY, MBR_ENTRY);
        DosEntry {
            kind: u8_at(e, 4),
            start: u64::from(le32(e, 8)),
            size: u64::from(le32(e, 12)),
        }
    })
}

fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0F | 0x85)
}

/// Whether partition `partn` exists: primaries 1-4 are the non-empty MBR slots, logical
/// partitions are numbered from 5 along the EBR chain of each extended partition.
fn dos_partition_exists(m: &mut Medium<'_>, mbr: &[u8], partn: u32) -> Result<bool, ProbeError> {
    let primaries = dos_entries(mbr);
    if partn <= 4 {
        return Ok(primaries[partn as usize - 1].size != 0);
    }
    let mut next = 5u32;
    let mut seen_starts: Vec<u64> = Vec::new();
    for ext in primaries
        .iter()
        .filter(|e| e.size != 0 && is_extended(e.kind))
    {
        let (ex_start, ex_size) = (ext.start, ext.size);
        let (mut cur_start, mut cur_size) = (ex_start, ex_size);
        for _ in 0..MAX_EBR_LINKS {
            let Some(ebr) = m.read(cur_start * 512, 512)? else {
                break;
            };
            if field(&ebr, 510, 2) != [0x55, 0xAA] {
                break;
            }
            let entries = dos_entries(&ebr);
            for (i, e) in entries.iter().enumerate() {
                if e.size == 0 || is_extended(e.kind) {
                    continue;
                }
                let abs = cur_start + e.start;
                // The 3rd and 4th slots are rarely real; require them to fit the chain.
                if i >= 2
                    && (e.start + e.size > cur_size
                        || abs < ex_start
                        || abs + e.size > ex_start + ex_size)
                {
                    continue;
                }
                if seen_starts.contains(&abs) {
                    continue;
                }
                if next == partn {
                    return Ok(true);
                }
                seen_starts.push(abs);
                next += 1;
            }
            let Some(link) = entries.iter().find(|e| e.size != 0 && is_extended(e.kind)) else {
                break;
            };
            if link.start == 0 {
                break;
            }
            cur_start = ex_start + link.start;
            cur_size = link.size;
        }
    }
    Ok(false)
}

fn gpt_partition_uuid(header: &[u8], entries: &[u8], partn: u32) -> Option<String> {
    let size = le32(header, 84) as usize;
    let index = partn as usize - 1;
    let entry = field(entries, index.checked_mul(size)?, size);
    if entry.len() < GPT_ENTRY_MIN || field(entry, 0, 16).iter().all(|&b| b == 0) {
        return None;
    }
    let (start, end) = (le64(entry, 32), le64(entry, 40));
    if start < le64(header, 40) || end > le64(header, 48) || end < start {
        return None;
    }
    guid(field(entry, 16, 16))
}
