//! The `real-apk` scenario of `bench vs-alpine`: both inits install a real
//! signed boot repository into the new root with the Alpine mini root's
//! own `apk`, as the QEMU suite's `real-apk` scenario does for ours
//! (`qemu-tests/src/scenarios/real_apk.rs`).
//!
//! Our side is the suite's real-apk image (the mini root's apk, the musl
//! loader and libraries apk links, the trusted test key); Alpine's side
//! is `crate::alpine_init` built on top of that image, so its
//! `initramfs-init` finds the same `/sbin/apk` and keys. apk's busybox
//! package owns `/sbin/init`, so the overlay carries the report init as
//! `/sbin/report-init` and both boots are given `init=/sbin/report-init`.

use std::path::{Path, PathBuf};

use alpinit_qemu_tests::alpine_repo::{self, Built};
use alpinit_qemu_tests::media::{self, FileSpec, Filesystem};
use alpinit_qemu_tests::qemu::Arch;
use anyhow::Result;

use crate::alpine_init;
use crate::initramfs::{self, Options};

/// Where the overlay puts the report init, and the option naming it.
pub const INIT_OPTION: &str = "init=/sbin/report-init";

/// Our real-apk image and Alpine's init built on it.
pub fn images(images_dir: &Path, release: &str) -> Result<[PathBuf; 2]> {
    let extras = alpine_repo::image_files(images_dir, Arch::X86_64)?;
    let ours = initramfs::build(&Options {
        output: Some(images_dir.join("initramfs-real-apk.gz")),
        extras,
        ..Options::default()
    })?;
    let alpine = alpine_init::build(
        &ours.path,
        release,
        &images_dir.join("initramfs-alpine-init-real-apk.gz"),
    )?;
    println!(
        "real-apk images: {} ({} bytes), {} ({} bytes)",
        ours.path.display(),
        ours.size,
        alpine.path.display(),
        alpine.size
    );
    Ok([ours.path, alpine.path])
}

/// An ext4 disk with the signed boot repository (`apks/x86_64`) of the
/// suite's real-apk scenario and an overlay whose world is `alpine-base`.
pub fn disk(
    dir: &Path,
    images_dir: &Path,
    hostname: &str,
    report_init: Vec<u8>,
) -> Result<PathBuf> {
    let root = alpine_repo::miniroot(images_dir, Arch::X86_64)?;
    let key = alpine_repo::cached_key(alpine_repo::TRUSTED_KEY)?;
    let built =
        alpine_repo::build_packages(&root, alpine_repo::BOOT_PACKAGES, &key, true, Arch::X86_64)?;
    let refs: Vec<&Built> = built.iter().collect();
    let tree = dir.join("disk.tree");
    alpine_repo::write_repository(&tree.join("apks"), &refs, &key, Arch::X86_64)?;
    let overlay = media::apkovl(&[
        FileSpec::new("etc/hostname", 0o644, format!("{hostname}\n")),
        FileSpec::new("etc/apk/world", 0o644, "alpine-base\n"),
        FileSpec::new("etc/apk/repositories", 0o644, "/media/vda1/apks\n"),
        FileSpec::new("sbin/report-init", 0o755, report_init),
    ])?;
    media::write_tree(
        &tree,
        &[FileSpec::new("host.apkovl.tar.gz", 0o644, overlay)],
    )?;
    let disk = dir.join("disk.img");
    media::disk_image(&disk, Filesystem::Ext4, "VDA", 32, &tree)?;
    Ok(disk)
}
