//! The sysfs evidence reader against fake sysfs trees laid out as the
//! kernel does (devices under `devices/`, links from `class/` and `bus/`).

use super::*;
use std::os::unix::fs::symlink;

struct FakeSys {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl FakeSys {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        Self { _tmp: tmp, root }
    }

    fn dir(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        fs::create_dir_all(&p).expect("mkdir");
        p
    }

    fn file(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }

    fn link(&self, target_rel: &str, at_rel: &str) {
        let at = self.root.join(at_rel);
        fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
        // Re-linking replaces, as a re-added device does.
        let _ = fs::remove_file(&at);
        symlink(self.root.join(target_rel), at).expect("symlink");
    }

    /// Binds the device at DEV to DRIVER (`bus/BUS/drivers/NAME`).
    fn bind(&self, dev: &str, driver: &str) {
        self.dir(driver);
        self.link(driver, &format!("{dev}/driver"));
    }

    fn rm(&self, rel: &str) {
        fs::remove_dir_all(self.root.join(rel)).expect("rm");
    }
}

const PIIX: &str = "devices/pci0000:00/0000:00:01.1";

/// ata_piix's secondary channel (ata2) with slot dev2.0 in CLASS.
fn ata_port(s: &FakeSys, class: &str) {
    let dev = format!("{PIIX}/ata2/link2/dev2.0/ata_device/dev2.0");
    s.file(&format!("{dev}/class"), &format!("{class}\n"));
    s.link(&dev, "class/ata_device/dev2.0");
    s.dir(&format!("{PIIX}/ata2/ata_port/ata2"));
    s.link(&format!("{PIIX}/ata2/ata_port/ata2"), "class/ata_port/ata2");
    s.dir(&format!("{PIIX}/ata2/host1/scsi_host/host1"));
}

/// The CD's SCSI device under ata2's host: `type` 5, optionally bound.
fn scsi_cd(s: &FakeSys, bound: bool, block: bool) -> String {
    let dev = format!("{PIIX}/ata2/host1/target1:0:0/1:0:0:0");
    s.file(&format!("{dev}/type"), "5\n");
    s.link(&dev, "bus/scsi/devices/1:0:0:0");
    s.dir(&format!("{PIIX}/ata2/host1/target1:0:0"));
    s.link(&format!("{PIIX}/ata2/host1"), "bus/scsi/devices/host1");
    s.link(
        &format!("{PIIX}/ata2/host1/target1:0:0"),
        "bus/scsi/devices/target1:0:0",
    );
    if bound {
        s.bind(&dev, "bus/scsi/drivers/sr");
    }
    if block {
        s.dir(&format!("{dev}/block/sr0"));
    }
    dev
}

#[test]
fn empty_sysfs_has_nothing_pending() {
    let s = FakeSys::new();
    assert_eq!(storage(&s.root), None);
    assert_eq!(unhandled_block(&s.root, &|_| false), None);
}

#[test]
fn empty_ata_slots_are_not_pending() {
    // Regression: an empty PIIX channel and an AHCI port with the link
    // down keep class `unknown` for good; taking it as "still probing"
    // held every boot for the whole settle limit.
    for class in ["unknown", "none"] {
        let s = FakeSys::new();
        ata_port(&s, class);
        assert_eq!(storage(&s.root), None, "{class}");
    }
}

#[test]
fn atapi_found_but_not_on_scsi_yet_is_pending() {
    // Regression: an apkovl on a fast disk ended the wait while the CD
    // holding the boot repository was still between libata and SCSI.
    let s = FakeSys::new();
    ata_port(&s, "atapi");
    assert!(matches!(storage(&s.root), Some(Pending::AtaScanUnfinished(p)) if p.ends_with("ata2")));
    let dev = scsi_cd(&s, false, false);
    assert!(
        matches!(storage(&s.root), Some(Pending::ScsiWithoutDriver(p)) if p.ends_with("1:0:0:0"))
    );
    s.rm(&dev);
    let dev = scsi_cd(&s, true, false);
    assert!(matches!(
        storage(&s.root),
        Some(Pending::ScsiWithoutBlock(_))
    ));
    s.rm(&dev);
    scsi_cd(&s, true, true);
    assert_eq!(storage(&s.root), None);
}

#[test]
fn scsi_devices_that_carry_no_media_are_ignored() {
    // An enclosure (type 13) never gets sd/sr: it must not hold the wait.
    let s = FakeSys::new();
    let dev = "devices/pci0000:00/0000:00:05.0/virtio1/host0/target0:0:0/0:0:0:0";
    s.file(&format!("{dev}/type"), "13\n");
    s.link(dev, "bus/scsi/devices/0:0:0:0");
    assert_eq!(storage(&s.root), None);
}

#[test]
fn virtio_blk_bound_without_disk_is_pending() {
    let s = FakeSys::new();
    let dev = "devices/pci0000:00/0000:00:04.0/virtio0";
    s.file(&format!("{dev}/device"), "0x0002\n");
    s.link(dev, "bus/virtio/devices/virtio0");
    // Not bound: nothing the kernel is working on (a missing module is
    // the loader's business).
    assert_eq!(storage(&s.root), None);
    s.bind(dev, "bus/virtio/drivers/virtio_blk");
    assert!(matches!(
        storage(&s.root),
        Some(Pending::VirtioBlkWithoutDisk(_))
    ));
    s.dir(&format!("{dev}/block/vda"));
    assert_eq!(storage(&s.root), None);
}

#[test]
fn virtio_devices_other_than_block_are_ignored() {
    let s = FakeSys::new();
    let dev = "devices/pci0000:00/0000:00:03.0/virtio0";
    s.file(&format!("{dev}/device"), "0x0001\n");
    s.bind(dev, "bus/virtio/drivers/virtio_net");
    s.link(dev, "bus/virtio/devices/virtio0");
    assert_eq!(storage(&s.root), None);
}

#[test]
fn nvme_namespaces_scanned_after_probe_are_waited_for() {
    let s = FakeSys::new();
    let ctrl = "devices/pci0000:00/0000:00:03.0/nvme/nvme0";
    s.file(&format!("{ctrl}/state"), "connecting\n");
    s.link(ctrl, "class/nvme/nvme0");
    assert_eq!(
        storage(&s.root),
        Some(Pending::NvmeNotLive(
            s.root.join("class/nvme/nvme0"),
            "connecting".into()
        ))
    );
    s.file(&format!("{ctrl}/state"), "live\n");
    assert!(matches!(
        storage(&s.root),
        Some(Pending::NvmeWithoutNamespace(_))
    ));
    s.dir(&format!("{ctrl}/nvme0n1"));
    assert_eq!(storage(&s.root), None);
}

#[test]
fn dead_nvme_controller_is_not_pending() {
    let s = FakeSys::new();
    let ctrl = "devices/pci0000:00/0000:00:03.0/nvme/nvme0";
    s.file(&format!("{ctrl}/state"), "dead\n");
    s.link(ctrl, "class/nvme/nvme0");
    assert_eq!(storage(&s.root), None);
}

#[test]
fn usb_storage_settling_is_seen_in_sysfs() {
    let s = FakeSys::new();
    let intf = "devices/pci0000:00/usb1/1-1/1-1:1.0";
    s.dir(intf);
    s.link(intf, "bus/usb/drivers/usb-storage/1-1:1.0");
    assert!(matches!(
        storage(&s.root),
        Some(Pending::UsbStorageWithoutDisk(_))
    ));
    s.dir(&format!("{intf}/host0/target0:0:0/0:0:0:0/block/sda"));
    assert_eq!(usb_storage_without_disk(&s.root), None);
}

#[test]
fn usb_storage_driver_link_is_not_an_interface() {
    // bus/usb/drivers/usb-storage also holds `module`, `bind`, `new_id`.
    let s = FakeSys::new();
    s.file("bus/usb/drivers/usb-storage/bind", "");
    s.dir("module/usb_storage");
    s.link("module/usb_storage", "bus/usb/drivers/usb-storage/module");
    assert_eq!(storage(&s.root), None);
}

#[test]
fn block_device_announced_but_not_handled_is_pending() {
    let s = FakeSys::new();
    for (name, size) in [("sr0", "1404"), ("loop0", "100"), ("fd0", "0")] {
        let dev = format!("devices/virtual/block/{name}");
        s.file(&format!("{dev}/size"), size);
        s.link(&dev, &format!("class/block/{name}"));
    }
    assert_eq!(
        unhandled_block(&s.root, &|_| false),
        Some(Pending::BlockNotHandled("sr0".into()))
    );
    assert_eq!(unhandled_block(&s.root, &|n| n == "sr0"), None);
}

#[test]
fn evidence_names_the_sysfs_object() {
    let p = Pending::ScsiWithoutDriver(PathBuf::from("/sys/bus/scsi/devices/1:0:0:0"));
    assert_eq!(
        p.to_string(),
        "SCSI device /sys/bus/scsi/devices/1:0:0:0 has no driver yet"
    );
}
