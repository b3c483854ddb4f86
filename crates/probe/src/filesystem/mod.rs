//! Superblock probers, one module per on-disk format.

mod btrfs;
mod exfat;
mod ext;
mod f2fs;
pub(crate) mod fat;
mod iso9660;
mod luks;
mod lvm;
pub(crate) mod ntfs;
mod raid;
mod squashfs;
mod swap;
mod xfs;

use crate::medium::Medium;
use crate::ProbeError;

/// One recognised superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub(crate) fstype: &'static str,
    pub(crate) uuid: Option<String>,
    pub(crate) label: Option<String>,
}

impl Superblock {
    pub(crate) fn new(fstype: &'static str) -> Self {
        Superblock {
            fstype,
            uuid: None,
            label: None,
        }
    }
}

#[cfg(test)]
pub(crate) use raid::checksum as md_checksum;

type Prober = fn(&mut Medium<'_>) -> Result<Option<Superblock>, ProbeError>;

/// blkid treats devices up to floppy size as floppies and never looks for RAID or LVM
/// metadata on them.
const TINY: u64 = 1440 * 1024;

/// blkid's order: RAID members first (their metadata lives at the end or beside a
/// filesystem that must not win), then volume managers and encryption, then filesystems.
/// The flag marks volume-manager formats, which blkid skips on floppy-sized devices.
const PROBERS: [(Prober, bool); 13] = [
    (raid::probe, true),
    (lvm::probe, true),
    (luks::probe, false),
    (fat::probe, false),
    (swap::probe, false),
    (xfs::probe, false),
    (ext::probe, false),
    (iso9660::probe, false),
    (ntfs::probe, false),
    (squashfs::probe, false),
    (btrfs::probe, false),
    (exfat::probe, false),
    (f2fs::probe, false),
];

/// The first matching superblock, or `None`.
pub(crate) fn probe(medium: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    let tiny = medium.size() <= TINY;
    for (prober, volume_manager) in PROBERS {
        if tiny && volume_manager {
            continue;
        }
        if let Some(sb) = prober(medium)? {
            return Ok(Some(sb));
        }
    }
    Ok(None)
}
