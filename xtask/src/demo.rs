//! `cargo xtask run`: boots the demo media with the console on this
//! terminal. The ISO carries the kernel, the image and a boot repository;
//! the USB stick carries an apkovl whose `/sbin/init` starts a busybox shell
//! in the new root (so there is something to look around with).

use std::fs;

use alpinit_qemu_tests::media::{self, FileSpec, Filesystem};
use alpinit_qemu_tests::qemu::{self, Vm};
use anyhow::{Context, Result};

use crate::initramfs::{self, Options};
use crate::kernel::KernelSpec;
use crate::{deps, paths, suite};

const DEMO_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
[ -e /proc/self ] || mount -t proc proc /proc
echo
echo "alpinit demo: this is the new root's /sbin/init (pid $$), from the apkovl."
echo "hostname: $(cat /etc/hostname)"
echo "mounts:"; cat /proc/mounts
echo "media:"; ls -l /media
echo
echo "Type 'poweroff -f' to stop (or Ctrl-A X)."
setsid cttyhack sh -l
poweroff -f
"#;

pub fn run(kernel: KernelSpec) -> Result<()> {
    deps::check()?;
    let image = initramfs::build(&Options {
        kernel,
        ..Options::default()
    })?;
    let dir = paths::image_dir().join("demo");
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cleaning {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let busybox = fs::read("/bin/busybox").context("reading /bin/busybox (busybox-static)")?;
    let ovl = media::apkovl(&[
        FileSpec::new("bin/busybox", 0o755, busybox),
        FileSpec::new("sbin/init", 0o755, DEMO_INIT),
        FileSpec::new("etc/hostname", 0o644, "alpinit-demo\n"),
    ])?;
    let stick_tree = dir.join("usb.tree");
    media::write_tree(
        &stick_tree,
        &[FileSpec::new("demo.apkovl.tar.gz", 0o644, ovl)],
    )?;
    let stick = dir.join("usb.img");
    media::disk_image(&stick, Filesystem::Fat32, "ALPINIT", 64, &stick_tree)?;
    let iso_tree = dir.join("iso.tree");
    media::write_tree(
        &iso_tree,
        &[FileSpec::new("apks/.boot_repository", 0o644, "")],
    )?;
    let iso = dir.join("boot.iso");
    media::iso_image(
        &iso,
        &iso_tree,
        &image.kernel.vmlinuz,
        &image.path,
        "console=ttyS0",
    )?;
    let accel = suite::accel(&image.kernel, &dir);
    let mut vm = Vm::new(accel);
    vm.cdrom_boot(&iso).usb_stick(&stick);
    println!("media: {} + {}", iso.display(), stick.display());
    println!("booting ({}); Ctrl-A X quits", accel.name());
    qemu::run_interactive(&vm)?;
    Ok(())
}
