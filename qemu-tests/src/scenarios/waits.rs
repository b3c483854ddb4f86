//! The wait rules: a first finding must not end discovery while storage is
//! still being probed (a CD behind IDE or AHCI), and `usbdelay=` keeps
//! Alpine's meaning as a floor for a late USB stick.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::checks::*;
use super::*;
use crate::report;
use crate::ustar::{self, Kind, Member};

pub(super) const HOST_WAIT_CD: &str = "alpinit-wait-cd";

/// The apkovl on a virtio disk, the boot repository only on a data CD.
fn overlay_disk_and_repo_cd(assets: &Assets, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let vda = overlay_disk(assets, dir, "vda", Filesystem::Ext4, HOST_WAIT_CD)?;
    let tree = dir.join("cd.tree");
    media::write_tree(&tree, &[boot_repository()])?;
    let iso = dir.join("repo.iso");
    media::data_iso(&iso, &tree)?;
    Ok((vda, iso))
}

pub(super) fn setup_wait_ide_cd(assets: &Assets, dir: &Path) -> Result<Setup> {
    let (vda, iso) = overlay_disk_and_repo_cd(assets, dir)?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&vda).ide_cdrom(&iso);
    Ok(reported(assets, vm))
}

pub(super) fn setup_wait_ahci_cd(assets: &Assets, dir: &Path) -> Result<Setup> {
    let (vda, iso) = overlay_disk_and_repo_cd(assets, dir)?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&vda).ahci_cdrom(&iso);
    Ok(reported(assets, vm))
}

/// Both media are used: the overlay from the disk, the repository from
/// the CD (listed on the console and mounted in the new root).
pub(super) fn check_wait_cd(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let cd = ("/dev/sr0", &["/media/sr0", "/media/cdrom"][..], "iso9660");
    let mut failures = check_both_media(outcome, report, cd);
    // Like the rest, looked at only once the new root reported.
    if report.is_some()
        && !outcome
            .log
            .contains("found boot repository /media/sr0/apks")
    {
        failures.push("the CD's boot repository is not listed on the console".to_string());
    }
    failures
}

/// The overlay's host name from vda1, REPO (source, mount points, type)
/// mounted too, and the wait ended well before its bound.
fn check_both_media(
    outcome: &Outcome,
    report: Option<&Report>,
    (source, targets, fstype): (&str, &[&str], &str),
) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_WAIT_CD);
        want_media(failures, report, "/dev/vda1", &["/media/vda1"], "ext4");
        want_media(failures, report, source, targets, fstype);
        want_no_settle_bound(failures, &outcome.log);
    })
}

/// Evidence that never clears would hold every boot until the settle
/// bound (10 s after the first finding): the wait must end well before.
fn want_no_settle_bound(failures: &mut Vec<String>, log: &str) {
    let phases = report::phases(log);
    let at = |name: &str| phases.iter().find(|p| p.0 == name).map(|p| p.1);
    match (at("coldplug-done"), at("media-found")) {
        (Some(coldplug), Some(found)) if found - coldplug < 5.0 => {}
        (Some(coldplug), Some(found)) => failures.push(format!(
            "media-found {:.2} s after coldplug-done: the wait ran into its bound",
            found - coldplug
        )),
        _ => failures.push("no coldplug-done/media-found phase lines".to_string()),
    }
}

/// The apkovl on a virtio disk, the boot repository only on an NVMe disk.
pub(super) fn setup_wait_nvme(assets: &Assets, dir: &Path) -> Result<Setup> {
    let vda = overlay_disk(assets, dir, "vda", Filesystem::Ext4, HOST_WAIT_CD)?;
    let nvme = disk(dir, "nvme", Filesystem::Ext4, &[boot_repository()])?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&vda).nvme_disk(&nvme);
    Ok(reported(assets, vm))
}

pub(super) fn check_wait_nvme(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let nvme = ("/dev/nvme0n1p1", &["/media/nvme0n1p1"][..], "ext4");
    check_both_media(outcome, report, nvme)
}

pub(super) const HOST_LATE_USB: &str = "alpinit-late-usb";

/// How long after the boot repository is found the stick is plugged in.
const LATE_PLUG: Duration = Duration::from_secs(3);

/// The boot repository on a virtio disk; the stick with the apkovl is
/// plugged in 3 s after the repository was found, with `usbdelay=8`.
pub(super) fn setup_usbdelay_late_stick(assets: &Assets, dir: &Path) -> Result<Setup> {
    let vda = disk(dir, "vda", Filesystem::Ext4, &[boot_repository()])?;
    let stick = overlay_disk(assets, dir, "usb", Filesystem::Fat32, HOST_LATE_USB)?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "usbdelay=8")?;
    vm.virtio_disk(&vda)
        .xhci()
        .spare_drive(&stick, "late")
        .monitor_after(
            "found boot repository /media/vda1/apks",
            LATE_PLUG,
            "device_add usb-storage,bus=hc.0,drive=late,id=late,removable=on",
        );
    Ok(reported(assets, vm))
}

pub(super) fn check_usbdelay_late_stick(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_LATE_USB);
        want_stick_media(failures, report);
        want_media(failures, report, "/dev/vda1", &["/media/vda1"], "ext4");
    })
}

const UNPLUG_HOST: &str = "alpinit-unplugged";
/// The overlay's bulk: a directory the `FakeApkInit` inspect list covers,
/// so a partly applied overlay shows in the report.
const UNPLUG_MISSING: &[&str] = &["/var/many"];
const UNPLUG_FILES: usize = 1500;
/// The unplug comes this long after the console line: the file is open by
/// then (an unplug before the open fails it with ENOENT instead, seen in
/// one run) and, 24 MB taking about 4 s to read and apply under TCG, its
/// reading is still going on.
const UNPLUG_AFTER: Duration = Duration::from_millis(500);
const UNPLUG_FILE_BYTES: usize = 16 << 10;

/// Incompressible bytes (xorshift64), so the overlay is as big on the
/// stick as unpacked and reading it takes a while under TCG.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A ~24 MB overlay on a USB stick; the stick is unplugged (`device_del`)
/// [`UNPLUG_AFTER`] after the console shows ` * Loading user settings from`.
pub(super) fn setup_unplug_during_unpack(assets: &Assets, dir: &Path) -> Result<Setup> {
    let mut members = vec![
        Member::new("etc/", 0o755, Kind::Dir),
        Member::file("etc/hostname", 0o644, format!("{UNPLUG_HOST}\n")),
        Member::new("var/", 0o755, Kind::Dir),
        Member::new("var/many/", 0o755, Kind::Dir),
    ];
    for i in 0..UNPLUG_FILES {
        members.push(Member::file(
            &format!("var/many/f{i:04}"),
            0o644,
            noise(i as u64 + 1, UNPLUG_FILE_BYTES),
        ));
    }
    let ovl = ustar::tar_gz(&members)?;
    let stick = disk(dir, "usb", Filesystem::Fat32, &[top_apkovl(ovl)])?;
    // No panic=: the failure policy then offers the recovery shell.
    let mut vm = kernel_vm_with(assets, ImageKind::FakeApkInit, "console=ttyS0")?;
    vm.xhci()
        .spare_drive(&stick, "ovl")
        .args([
            "-device",
            "usb-storage,bus=hc.0,drive=ovl,id=ovl,removable=on",
        ])
        .monitor_after(
            " * Loading user settings from",
            UNPLUG_AFTER,
            "device_del ovl",
        )
        .type_after(REJECTED, "")
        .type_after(SHELL_PROMPT, "exit\n");
    Ok(interactive(assets, vm))
}

pub(super) fn check_unplug_during_unpack(
    outcome: &Outcome,
    report: Option<&Report>,
) -> Vec<String> {
    let mut failures = check_rejected(outcome, report, UNPLUG_HOST, &[], UNPLUG_MISSING);
    if let Some(reason) = rejection_reason(&outcome.log) {
        let lower = reason.to_lowercase();
        if !["i/o error", "input/output error"]
            .iter()
            .any(|w| lower.contains(w))
        {
            failures.push(format!("the reason {reason:?} does not name an I/O error"));
        }
    }
    failures
}
