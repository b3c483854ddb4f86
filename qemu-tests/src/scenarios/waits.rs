//! The wait rules: a first finding must not end discovery while storage is
//! still being probed (a CD behind IDE or AHCI), and `usbdelay=` keeps
//! Alpine's meaning as a floor for a late USB stick.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::checks::*;
use super::*;

pub(super) const HOST_WAIT_CD: &str = "alpinit-wait-cd";

/// The apkovl on a virtio disk, the boot repository only on a data CD.
fn overlay_disk_and_repo_cd(assets: &Assets, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let ovl = overlay(assets, HOST_WAIT_CD, &[], Vec::new())?;
    let vda = disk(
        dir,
        "vda",
        Filesystem::Ext4,
        &[FileSpec::new("host.apkovl.tar.gz", 0o644, ovl)],
    )?;
    let tree = dir.join("cd.tree");
    media::write_tree(&tree, &[FileSpec::new("apks/.boot_repository", 0o644, "")])?;
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
    let (mut failures, report) = common(outcome, report);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, HOST_WAIT_CD);
    want_media(
        &mut failures,
        &report,
        "/dev/vda1",
        &["/media/vda1"],
        "ext4",
    );
    want_media(
        &mut failures,
        &report,
        "/dev/sr0",
        &["/media/sr0", "/media/cdrom"],
        "iso9660",
    );
    if !outcome
        .log
        .contains("found boot repository /media/sr0/apks")
    {
        failures.push("the CD's boot repository is not listed on the console".to_string());
    }
    failures
}
