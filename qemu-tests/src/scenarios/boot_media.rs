//! Scenarios that boot through to the new root from disks, sticks and CDs.

use std::path::Path;

use anyhow::Result;

use super::checks::*;
use super::*;

pub(super) const HOST_VIRTIO: &str = "alpinit-virtio";

pub(super) fn setup_virtio_ext4(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_VIRTIO, &[], Vec::new())?;
    let img = disk(
        dir,
        "vda",
        Filesystem::Ext4,
        &[FileSpec::new("host.apkovl.tar.gz", 0o644, ovl)],
    )?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&img);
    Ok(reported(assets, vm))
}

pub(super) fn check_virtio_ext4(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let (mut failures, report) = common(outcome, report);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, HOST_VIRTIO);
    want_media(
        &mut failures,
        &report,
        "/dev/vda1",
        &["/media/vda1"],
        "ext4",
    );
    failures
}

pub(super) const HOST_USB: &str = "alpinit-usb";

pub(super) fn setup_usb_fat32(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_USB, &[], Vec::new())?;
    let img = disk(
        dir,
        "usb",
        Filesystem::Fat32,
        &[FileSpec::new("host.apkovl.tar.gz", 0o644, ovl)],
    )?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.usb_stick(&img);
    Ok(reported(assets, vm))
}

pub(super) fn check_usb_fat32(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let (mut failures, report) = common(outcome, report);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, HOST_USB);
    want_media(
        &mut failures,
        &report,
        "/dev/sda1",
        &["/media/sda1", "/media/usb"],
        "vfat",
    );
    failures
}

pub(super) const HOST_ISO: &str = "alpinit-iso";

pub(super) fn setup_iso_usb(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_ISO, &[], Vec::new())?;
    let stick = disk(
        dir,
        "usb",
        Filesystem::Fat32,
        &[FileSpec::new("host.apkovl.tar.gz", 0o644, ovl)],
    )?;
    let root = dir.join("iso.tree");
    media::write_tree(&root, &[FileSpec::new("apks/.boot_repository", 0o644, "")])?;
    let iso = dir.join("boot.iso");
    media::iso_image(
        &iso,
        &root,
        &assets.vmlinuz,
        assets.image(ImageKind::Standard)?,
        CMDLINE,
    )?;
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
    let (mut failures, report) = common(outcome, report);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, HOST_ISO);
    want_media(
        &mut failures,
        &report,
        "/dev/sr0",
        &["/media/cdrom"],
        "iso9660",
    );
    want_media(
        &mut failures,
        &report,
        "/dev/sda1",
        &["/media/sda1", "/media/usb"],
        "vfat",
    );
    failures
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
            FileSpec::new("apks/.boot_repository", 0o644, ""),
        ],
    )?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&vda).virtio_disk(&vdb);
    Ok(reported(assets, vm))
}

pub(super) fn check_precedence(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let (mut failures, report) = common(outcome, report);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, "second");
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
    failures
}

pub(super) fn setup_usr_merged(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(
        assets,
        "alpinit-merged",
        &["/usr/bin/foo", "/bin", "/sbin", "/lib"],
        vec![FileSpec::new("bin/foo", 0o755, "#!/bin/sh\necho foo\n")],
    )?;
    let img = disk(
        dir,
        "vda",
        Filesystem::Ext4,
        &[FileSpec::new("host.apkovl.tar.gz", 0o644, ovl)],
    )?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "bootstrap_usr_merged")?;
    vm.virtio_disk(&img);
    Ok(reported(assets, vm))
}

pub(super) fn check_usr_merged(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let (mut failures, report) = common(outcome, report);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, "alpinit-merged");
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
    failures
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
    let vdb = disk(
        dir,
        "vdb",
        Filesystem::Ext4,
        &[FileSpec::new("apks/.boot_repository", 0o644, "")],
    )?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        "apkovl=/dev/vda1:ext4:deep/dir/custom.apkovl.tar.gz",
    )?;
    vm.virtio_disk(&vda).virtio_disk(&vdb);
    Ok(reported(assets, vm))
}

pub(super) fn check_dev_fstype_path(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let (mut failures, report) = common(outcome, report);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, HOST_CUSTOM);
    failures
}
