//! A blkid-equivalent prober for block devices and images.
//!
//! [`probe`] answers what `blkid -p` would: the filesystem (or RAID/LVM/LUKS container)
//! TYPE with its UUID and LABEL, and for a whole disk the partition table type and disk
//! identifier. [`partition_uuid`] gives a partition's PARTUUID from its parent disk.
//!
//! Everything read comes from a medium an attacker may have crafted, so each prober
//! bounds-checks every offset and length it takes from disk, caps loops and allocations,
//! and treats anything inconsistent as "no match" rather than an error. Only I/O failures
//! are errors. Reads are few and small: the first 64 KiB are read once and far areas only
//! when a prober needs them.
//!
//! Detection follows util-linux blkid: superblocks are tried in blkid's order (RAID and
//! other containers first, since their metadata can sit beside a filesystem), the first
//! match wins, and the partition table is probed independently, so an ISO-hybrid image
//! reports both `iso9660` and its `dos` table, as blkid does.

mod bytes;
mod checksum;
mod filesystem;
mod medium;
mod partition;

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use medium::Medium;

/// What blkid would report for one block device or image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// blkid `TYPE`, e.g. `ext4`, `vfat`, `iso9660`, `crypto_LUKS`.
    pub fstype: Option<String>,
    /// blkid `UUID`, formatted the way blkid prints it for that type.
    pub uuid: Option<String>,
    /// blkid `LABEL` (iso9660: the Joliet label when present).
    pub label: Option<String>,
    /// blkid `PTTYPE`: `dos` or `gpt`.
    pub pttype: Option<String>,
    /// blkid `PTUUID`: the dos disk signature as 8 hex digits or the GPT disk GUID.
    pub ptuuid: Option<String>,
}

/// Failures reading the device; malformed content is never an error, only "no match".
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("size of {path}: {source}")]
    Size { path: PathBuf, source: io::Error },
    #[error("seek to {offset}: {source}")]
    Seek { offset: u64, source: io::Error },
    #[error("read at {offset}: {source}")]
    Read { offset: u64, source: io::Error },
}

/// Probe the block device or image at `path`.
pub fn probe_path(path: &Path) -> Result<Probe, ProbeError> {
    let (mut file, size) = open(path)?;
    probe(&mut file, size)
}

/// Probe `dev`, which holds `size` bytes.
pub fn probe<R: Read + Seek>(dev: &mut R, size: u64) -> Result<Probe, ProbeError> {
    let mut medium = Medium::new(dev, size)?;
    let mut result = Probe::default();
    if let Some(sb) = filesystem::probe(&mut medium)? {
        result.fstype = Some(sb.fstype.to_string());
        result.uuid = sb.uuid;
        result.label = sb.label;
    }
    if let Some(table) = partition::probe(&mut medium)? {
        result.pttype = Some(table.pttype().to_string());
        result.ptuuid = table.ptuuid();
    }
    Ok(result)
}

/// Probe an in-memory image; the entry point for fuzzing.
pub fn probe_bytes(data: &[u8]) -> Result<Probe, ProbeError> {
    probe(&mut Cursor::new(data), data.len() as u64)
}

/// PARTUUID of partition number `partn` (1-based, the kernel's PARTN) of the whole disk
/// `disk`: dos `"<signature>-<partn>"` in lower-case hex, gpt the entry's unique GUID.
/// `None` when there is no partition table or no such partition.
pub fn partition_uuid<R: Read + Seek>(
    disk: &mut R,
    size: u64,
    partn: u32,
) -> Result<Option<String>, ProbeError> {
    let mut medium = Medium::new(disk, size)?;
    match partition::probe(&mut medium)? {
        Some(table) => table.partition_uuid(&mut medium, partn),
        None => Ok(None),
    }
}

/// [`partition_uuid`] for the whole disk at `disk`.
pub fn partition_uuid_path(disk: &Path, partn: u32) -> Result<Option<String>, ProbeError> {
    let (mut file, size) = open(disk)?;
    partition_uuid(&mut file, size, partn)
}

/// The kernel filesystem name to give mount(2) for a blkid TYPE, or `None` when the type
/// is not a mountable filesystem (swap, containers) or unknown.
pub fn mount_fstype(fstype: &str) -> Option<&'static str> {
    Some(match fstype {
        "ext2" => "ext2",
        "ext3" => "ext3",
        "ext4" => "ext4",
        "vfat" => "vfat",
        "iso9660" => "iso9660",
        "btrfs" => "btrfs",
        "xfs" => "xfs",
        "squashfs" => "squashfs",
        "exfat" => "exfat",
        "f2fs" => "f2fs",
        // The in-kernel NTFS driver since 5.15; the old read-only `ntfs` is gone.
        "ntfs" => "ntfs3",
        _ => return None,
    })
}

fn open(path: &Path) -> Result<(File, u64), ProbeError> {
    // std opens with O_CLOEXEC, so helpers the init forks never inherit the device.
    let mut file = File::open(path).map_err(|source| ProbeError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    // Block devices report size 0 in metadata; seeking to the end works for both.
    let size = file
        .seek(SeekFrom::End(0))
        .map_err(|source| ProbeError::Size {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((file, size))
}

#[cfg(test)]
mod tests;
