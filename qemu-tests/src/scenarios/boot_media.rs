//! Scenarios that boot through to the new root from disks, sticks and CDs.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::checks::*;
use super::*;

/// [`common`]'s failures, then what `more` finds in the new root's report;
/// without a report there is nothing more to look at.
pub(super) fn booted(
    outcome: &Outcome,
    report: Option<&Report>,
    more: impl FnOnce(&mut Vec<String>, &Report),
) -> Vec<String> {
    let (mut failures, report) = common(outcome, report);
    if !failures.iter().any(|f| f.starts_with("no report")) {
        more(&mut failures, &report);
    }
    failures
}

/// `host.apkovl.tar.gz` at a medium's top level, where the scan looks.
pub(super) fn top_apkovl(ovl: Vec<u8>) -> FileSpec {
    FileSpec::new("host.apkovl.tar.gz", 0o644, ovl)
}

/// The file that makes a medium's `apks` directory a boot repository.
pub(super) fn boot_repository() -> FileSpec {
    FileSpec::new("apks/.boot_repository", 0o644, "")
}

/// A disk image `name` whose top level holds the overlay of HOSTNAME.
pub(super) fn overlay_disk(
    assets: &Assets,
    dir: &Path,
    name: &str,
    fs_kind: Filesystem,
    hostname: &str,
) -> Result<PathBuf> {
    let ovl = overlay(assets, hostname, &[], Vec::new())?;
    disk(dir, name, fs_kind, &[top_apkovl(ovl)])
}

/// Boots IMAGE with CMDLINE from a virtio disk whose apkovl names HOSTNAME
/// and asks the report for INSPECT, with a NIC on QEMU's user network.
pub(super) fn disk_and_nic(
    assets: &Assets,
    dir: &Path,
    image: ImageKind,
    cmdline: &str,
    hostname: &str,
    inspect: &[&str],
) -> Result<Setup> {
    let ovl = overlay(assets, hostname, inspect, Vec::new())?;
    let img = disk(dir, "vda", Filesystem::Ext4, &[top_apkovl(ovl)])?;
    let mut vm = kernel_vm(assets, image, cmdline)?;
    vm.virtio_disk(&img)
        .user_nic("n0", &crate::netboot::qemu_mac(0x30));
    Ok(reported(assets, vm))
}

/// The USB stick's FAT partition read-only in the new root, at
/// `/media/sda1` or Alpine's `/media/usb`.
pub(super) fn want_stick_media(failures: &mut Vec<String>, report: &Report) {
    want_media(
        failures,
        report,
        "/dev/sda1",
        &["/media/sda1", "/media/usb"],
        "vfat",
    );
}

/// The scenarios both architectures boot the same way.
pub(super) fn virtio_ext4() -> Scenario {
    Scenario {
        name: "virtio-ext4",
        about: "virtio disk, ext4 partition with the apkovl at top level",
        image: ImageKind::Standard,
        setup: setup_virtio_ext4,
        check: check_virtio_ext4,
    }
}

/// See [`virtio_ext4`].
pub(super) fn usb_fat32() -> Scenario {
    Scenario {
        name: "usb-fat32",
        about: "USB stick on xhci, FAT32 partition with the apkovl",
        image: ImageKind::Standard,
        setup: setup_usb_fat32,
        check: check_usb_fat32,
    }
}

pub(super) const HOST_VIRTIO: &str = "alpinit-virtio";

pub(super) fn setup_virtio_ext4(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = overlay_disk(assets, dir, "vda", Filesystem::Ext4, HOST_VIRTIO)?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&img);
    Ok(reported(assets, vm))
}

pub(super) fn check_virtio_ext4(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_VIRTIO);
        want_media(failures, report, "/dev/vda1", &["/media/vda1"], "ext4");
        want_initramfs_freed(failures, report);
    })
}

pub(super) const HOST_USB: &str = "alpinit-usb";

pub(super) fn setup_usb_fat32(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = overlay_disk(assets, dir, "usb", Filesystem::Fat32, HOST_USB)?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.usb_stick(&img);
    Ok(reported(assets, vm))
}

pub(super) fn check_usb_fat32(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_USB);
        want_stick_media(failures, report);
    })
}

pub(super) const HOST_ISO: &str = "alpinit-iso";

/// `boot.iso` in DIR: isolinux booting the kernel with the image of KIND
/// and [`CMDLINE`], and a boot repository.
pub(super) fn iso_with_repository(assets: &Assets, dir: &Path, kind: ImageKind) -> Result<PathBuf> {
    let root = dir.join("iso.tree");
    media::write_tree(&root, &[boot_repository()])?;
    let iso = dir.join("boot.iso");
    media::iso_image(&iso, &root, &assets.vmlinuz, assets.image(kind)?, CMDLINE)?;
    Ok(iso)
}

pub(super) fn setup_iso_usb(assets: &Assets, dir: &Path) -> Result<Setup> {
    let stick = overlay_disk(assets, dir, "usb", Filesystem::Fat32, HOST_ISO)?;
    let iso = iso_with_repository(assets, dir, ImageKind::Standard)?;
    let mut vm = Vm::new(assets.accel);
    vm.cdrom_boot(&iso).usb_stick(&stick);
    Ok(Setup {
        vm,
        stop: stops_on_panic(),
        // The bzImage decompresses under TCG and isolinux loads it slowly.
        timeout: assets.accel.boot_timeout() + Duration::from_secs(60),
    })
}

pub(super) fn check_iso_usb(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_ISO);
        want_media(failures, report, "/dev/sr0", &["/media/cdrom"], "iso9660");
        want_stick_media(failures, report);
    })
}

pub(super) fn setup_precedence(assets: &Assets, dir: &Path) -> Result<Setup> {
    let first = overlay(assets, "first", &[], Vec::new())?;
    let second = overlay(assets, "second", &[], Vec::new())?;
    let vda = disk(
        dir,
        "vda",
        Filesystem::Ext4,
        &[FileSpec::new("first.apkovl.tar.gz", 0o644, first)],
    )?;
    let vdb = disk(
        dir,
        "vdb",
        Filesystem::Ext4,
        &[
            FileSpec::new("second.apkovl.tar.gz", 0o644, second),
            boot_repository(),
        ],
    )?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&vda).virtio_disk(&vdb);
    Ok(reported(assets, vm))
}

pub(super) fn check_precedence(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, "second");
        for candidate in [
            "/media/vda1/first.apkovl.tar.gz",
            "/media/vdb1/second.apkovl.tar.gz",
        ] {
            if !outcome.log.contains(candidate) {
                failures.push(format!(
                    "candidate {candidate} is not listed on the console"
                ));
            }
        }
    })
}

pub(super) fn setup_usr_merged(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(
        assets,
        "alpinit-merged",
        &["/usr/bin/foo", "/bin", "/sbin", "/lib"],
        vec![FileSpec::new("bin/foo", 0o755, "#!/bin/sh\necho foo\n")],
    )?;
    let img = disk(dir, "vda", Filesystem::Ext4, &[top_apkovl(ovl)])?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "bootstrap_usr_merged")?;
    vm.virtio_disk(&img);
    Ok(reported(assets, vm))
}

pub(super) fn check_usr_merged(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, "alpinit-merged");
        match report.inspect("/usr/bin/foo") {
            Some(file) if file.kind == "file" => {}
            other => failures.push(format!("/usr/bin/foo is {other:?}, want a regular file")),
        }
        for (link, target) in [
            ("/bin", "usr/bin"),
            ("/sbin", "usr/sbin"),
            ("/lib", "usr/lib"),
        ] {
            match report.inspect(link) {
                Some(i) if i.kind == "symlink" && i.target.as_deref() == Some(target) => {}
                other => failures.push(format!("{link} is {other:?}, want a symlink to {target}")),
            }
        }
    })
}

pub(super) const HOST_CUSTOM: &str = "alpinit-custom";

pub(super) fn setup_dev_fstype_path(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_CUSTOM, &[], Vec::new())?;
    // Not at top level, so only the apkovl= option can find it; the second
    // disk's boot repository keeps the media scan itself successful.
    let vda = disk(
        dir,
        "vda",
        Filesystem::Ext4,
        &[FileSpec::new("deep/dir/custom.apkovl.tar.gz", 0o644, ovl)],
    )?;
    let vdb = disk(dir, "vdb", Filesystem::Ext4, &[boot_repository()])?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        "apkovl=/dev/vda1:ext4:deep/dir/custom.apkovl.tar.gz",
    )?;
    vm.virtio_disk(&vda).virtio_disk(&vdb);
    Ok(reported(assets, vm))
}

pub(super) fn check_dev_fstype_path(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_CUSTOM);
    })
}
