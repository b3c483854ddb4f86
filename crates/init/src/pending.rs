//! What the kernel tells us about storage that is still being probed, read
//! from sysfs. The wait rules ([`crate::wait`]) keep discovery going while
//! any of this evidence is present, so a fast first finding does not end
//! the wait while a CD behind IDE/AHCI or a USB stick is still on its way.
//!
//! Each check looks for a step of the storage chain that has started but
//! not finished; an absent or unreadable file means "nothing pending"
//! (the evidence can only extend a wait that is bounded elsewhere):
//!
//! * a usb-storage/uas interface bound with no disk behind it yet (the
//!   stick is in usb-storage's settle delay or its SCSI scan);
//! * an ATA port with more ATA/ATAPI devices than SCSI devices (the SCSI
//!   scan of a probed port has not added them all yet). A slot's class
//!   `unknown` is no evidence: empty PATA channels and SATA ports with the
//!   link down keep it for good (seen on QEMU's PIIX and ICH9 AHCI), and
//!   the port probe itself ends before the driver's module load returns
//!   (the loader is busy meanwhile);
//! * a SCSI disk/CD/MO/RBC device with no upper driver bound (sd/sr still
//!   loading) or with its driver bound and no block device yet;
//! * a virtio-blk device bound to its driver with no block device yet;
//! * an NVMe controller not `live` yet, or live with no namespace block
//!   device yet (the driver scans namespaces in a work item after its
//!   probe returned, so the module load does not cover it);
//! * a block device in `/sys/class/block` that discovery has not handled
//!   (its uevent is still queued);
//! * an AoE target named by `aoe=` without its `/dev/etherd` node yet
//!   (checked by discovery itself, [`crate::aoe`]).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The first piece of evidence found, naming the sysfs object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    UsbStorageWithoutDisk(PathBuf),
    AtaScanUnfinished(PathBuf),
    ScsiWithoutDriver(PathBuf),
    ScsiWithoutBlock(PathBuf),
    VirtioBlkWithoutDisk(PathBuf),
    NvmeNotLive(PathBuf, String),
    NvmeWithoutNamespace(PathBuf),
    BlockNotHandled(String),
    AoeTargetMissing(PathBuf),
}

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UsbStorageWithoutDisk(p) => {
                write!(f, "usb-storage interface {} has no disk yet", p.display())
            }
            Self::AtaScanUnfinished(p) => {
                write!(f, "ATA port {} has devices not yet on SCSI", p.display())
            }
            Self::ScsiWithoutDriver(p) => {
                write!(f, "SCSI device {} has no driver yet", p.display())
            }
            Self::ScsiWithoutBlock(p) => {
                write!(f, "SCSI device {} has no block device yet", p.display())
            }
            Self::VirtioBlkWithoutDisk(p) => {
                write!(f, "virtio-blk device {} has no disk yet", p.display())
            }
            Self::NvmeNotLive(p, state) => {
                write!(f, "NVMe controller {} is {state}", p.display())
            }
            Self::NvmeWithoutNamespace(p) => {
                write!(f, "NVMe controller {} has no namespace yet", p.display())
            }
            Self::BlockNotHandled(name) => write!(f, "block device {name} not handled yet"),
            Self::AoeTargetMissing(node) => {
                write!(f, "AoE target {} not discovered yet", node.display())
            }
        }
    }
}

/// Bounds every directory listing: a sysfs tree never has this many
/// storage objects, and a hostile or broken one must not stall PID 1.
const MAX_ENTRIES: usize = 4096;

/// Storage evidence from SYS (the sysfs mount point), the first found.
pub fn storage(sys: &Path) -> Option<Pending> {
    usb_storage_without_disk(sys)
        .or_else(|| ata(sys))
        .or_else(|| scsi(sys))
        .or_else(|| virtio_blk(sys))
        .or_else(|| nvme(sys))
}

/// A block device of `/sys/class/block` that HANDLED does not know and
/// that discovery would handle (not ram/loop/zram, not empty).
pub fn unhandled_block(sys: &Path, handled: &dyn Fn(&str) -> bool) -> Option<Pending> {
    for name in list(&sys.join("class/block")) {
        if name.starts_with("ram") || name.starts_with("loop") || name.starts_with("zram") {
            continue;
        }
        if handled(&name) {
            continue;
        }
        let size = read(&sys.join("class/block").join(&name).join("size"));
        if size.as_deref().is_none_or(|s| s == "0") {
            continue;
        }
        return Some(Pending::BlockNotHandled(name));
    }
    None
}

/// A usb-storage or uas interface is bound but no disk sits behind it yet.
pub fn usb_storage_without_disk(sys: &Path) -> Option<Pending> {
    for driver in ["usb-storage", "uas"] {
        let dir = sys.join("bus/usb/drivers").join(driver);
        for name in list(&dir) {
            if !name.contains(':') {
                continue;
            }
            let intf = dir.join(&name);
            if !has_block_below(&intf, 6) {
                return Some(Pending::UsbStorageWithoutDisk(intf));
            }
        }
    }
    None
}

/// Per port: the ATA/ATAPI devices libata found must all show up as SCSI
/// devices under the port's SCSI host.
fn ata(sys: &Path) -> Option<Pending> {
    let ports = sys.join("class/ata_port");
    for name in list(&ports) {
        let Ok(port) = fs::canonicalize(ports.join(&name)) else {
            continue;
        };
        // class/ata_port/ataN resolves to .../ataN/ata_port/ataN.
        let Some(port_dir) = port.parent().and_then(Path::parent) else {
            continue;
        };
        let found = count_ata_devices(port_dir);
        if found > 0 && count_scsi_devices(port_dir) < found {
            return Some(Pending::AtaScanUnfinished(port_dir.to_path_buf()));
        }
    }
    None
}

/// ATA/ATAPI/ZAC devices of a port: `linkN/devN.M/ata_device/devN.M/class`
/// (and the same one level deeper behind a port multiplier).
fn count_ata_devices(port_dir: &Path) -> usize {
    let mut n = 0;
    for link in list(port_dir).into_iter().filter(|l| l.starts_with("link")) {
        let link_dir = port_dir.join(&link);
        for dev in list(&link_dir).into_iter().filter(|d| d.starts_with("dev")) {
            let class = read(
                &link_dir
                    .join(&dev)
                    .join("ata_device")
                    .join(&dev)
                    .join("class"),
            );
            if matches!(class.as_deref(), Some("ata" | "atapi" | "zac")) {
                n += 1;
            }
        }
    }
    n
}

/// SCSI devices (`H:C:T:L`) under the port's `hostN/targetH:C:T/`.
fn count_scsi_devices(port_dir: &Path) -> usize {
    let mut n = 0;
    for host in list(port_dir).into_iter().filter(|h| h.starts_with("host")) {
        let host_dir = port_dir.join(&host);
        for target in list(&host_dir)
            .into_iter()
            .filter(|t| t.starts_with("target"))
        {
            n += list(&host_dir.join(&target))
                .iter()
                .filter(|d| is_scsi_device_name(d))
                .count();
        }
    }
    n
}

fn is_scsi_device_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split(':').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// SCSI peripheral types that carry media discovery mounts: disk, CD/DVD,
/// optical memory, simplified direct-access.
const SCSI_MEDIA_TYPES: [&str; 4] = ["0", "5", "7", "14"];

fn scsi(sys: &Path) -> Option<Pending> {
    let devices = sys.join("bus/scsi/devices");
    for name in list(&devices) {
        if !is_scsi_device_name(&name) {
            continue;
        }
        let dev = devices.join(&name);
        let Some(kind) = read(&dev.join("type")) else {
            continue;
        };
        if !SCSI_MEDIA_TYPES.contains(&kind.as_str()) {
            continue;
        }
        if !dev.join("driver").exists() {
            return Some(Pending::ScsiWithoutDriver(dev));
        }
        if list(&dev.join("block")).is_empty() {
            return Some(Pending::ScsiWithoutBlock(dev));
        }
    }
    None
}

/// virtio device id of a block device (`device` reads `0x0002`).
const VIRTIO_ID_BLOCK: &str = "0x0002";

fn virtio_blk(sys: &Path) -> Option<Pending> {
    let devices = sys.join("bus/virtio/devices");
    for name in list(&devices) {
        let dev = devices.join(&name);
        if read(&dev.join("device")).as_deref() != Some(VIRTIO_ID_BLOCK) {
            continue;
        }
        if dev.join("driver").exists() && list(&dev.join("block")).is_empty() {
            return Some(Pending::VirtioBlkWithoutDisk(dev));
        }
    }
    None
}

/// Controller states (the kernel's names in `state`) on the way to
/// `live`; `deleting` and `dead` controllers bring nothing more.
const NVME_COMING: [&str; 3] = ["new", "resetting", "connecting"];

fn nvme(sys: &Path) -> Option<Pending> {
    let class = sys.join("class/nvme");
    for name in list(&class) {
        let ctrl = class.join(&name);
        let Some(state) = read(&ctrl.join("state")) else {
            continue;
        };
        if NVME_COMING.contains(&state.as_str()) {
            return Some(Pending::NvmeNotLive(ctrl, state));
        }
        // Namespaces sit below the controller as nvmeXnY (nvmeXcYnZ with
        // multipath).
        let has_ns = list(&ctrl)
            .iter()
            .any(|n| n.starts_with(name.as_str()) && n.len() > name.len());
        if state == "live" && !has_ns {
            return Some(Pending::NvmeWithoutNamespace(ctrl));
        }
    }
    None
}

fn has_block_below(dir: &Path, depth: u32) -> bool {
    if depth == 0 {
        return false;
    }
    for name in list(dir) {
        let path = dir.join(&name);
        // Only real sub-directories: sysfs links (driver, subsystem, port)
        // lead out of the device and could loop.
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if !is_dir {
            continue;
        }
        if name == "block" {
            return true;
        }
        if (name.starts_with("host") || name.starts_with("target") || name.contains(':'))
            && has_block_below(&path, depth - 1)
        {
            return true;
        }
    }
    false
}

/// Entry names of DIR, sorted, at most [`MAX_ENTRIES`]; none if unreadable.
fn list(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .take(MAX_ENTRIES)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    alpinit_sort::sort(&mut names);
    names
}

/// A small sysfs attribute, trimmed.
fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

#[cfg(test)]
#[path = "pending_tests.rs"]
mod tests;
