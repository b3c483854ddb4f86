//! Boot media on file systems Alpine's init could not use (bug #11589):
//! btrfs and xfs, whole-disk (no partition table), each holding something
//! the boot needs so it stays mounted in the new root.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::checks::*;
use super::*;

pub(super) const HOST_BTRFS: &str = "alpinit-btrfs";

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A sparse image of `size_mib` holding a btrfs made from `tree`.
fn btrfs_image(dir: &Path, tree: &Path, size_mib: u64) -> Result<PathBuf> {
    let img = dir.join("btrfs.img");
    fs::File::create(&img)?.set_len(size_mib << 20)?;
    run(Command::new("mkfs.btrfs")
        .args(["-q", "-L", "BTR", "--rootdir"])
        .arg(tree)
        .arg(&img))?;
    Ok(img)
}

/// A sparse image holding an xfs populated from a mkfs.xfs proto file:
/// a top-level directory `apks` with a `.boot_repository` file.
fn xfs_image(dir: &Path) -> Result<PathBuf> {
    let marker = dir.join("boot_repository.empty");
    fs::write(&marker, "")?;
    let proto = dir.join("xfs.proto");
    fs::write(
        &proto,
        format!(
            "/dev/null\n0 0\nd--755 0 0\napks d--755 0 0\n.boot_repository ---644 0 0 {}\n$\n$\n",
            marker.display()
        ),
    )?;
    let img = dir.join("xfs.img");
    // mkfs.xfs wants at least 300 MiB; the file stays sparse.
    fs::File::create(&img)?.set_len(320 << 20)?;
    run(Command::new("mkfs.xfs")
        .args(["-q", "-L", "XFS", "-p"])
        .arg(&proto)
        .arg(&img))?;
    Ok(img)
}

pub(super) fn setup_btrfs_xfs(assets: &Assets, dir: &Path) -> Result<Setup> {
    let tree = dir.join("btrfs.tree");
    media::write_tree(
        &tree,
        &[FileSpec::new(
            "host.apkovl.tar.gz",
            0o644,
            overlay(assets, HOST_BTRFS, &[], Vec::new())?,
        )],
    )?;
    let btrfs = btrfs_image(dir, &tree, 128)?;
    let xfs = xfs_image(dir)?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&btrfs).virtio_disk(&xfs);
    Ok(reported(assets, vm))
}

pub(super) fn check_btrfs_xfs(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let (mut failures, report) = common(outcome, report);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, HOST_BTRFS);
    want_media(&mut failures, &report, "/dev/vda", &["/media/vda"], "btrfs");
    want_media(&mut failures, &report, "/dev/vdb", &["/media/vdb"], "xfs");
    failures
}
