//! Assembled storage in root mode: a root file system over two disks
//! (btrfs RAID0 data, RAID1 metadata), which mounts only once the init has
//! registered both members with the kernel (`BTRFS_IOC_SCAN_DEV`), and
//! which `root=UUID=` names although both disks carry that UUID.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::checks::*;
use super::*;

pub(super) const HOST_BTRFS2: &str = "alpinit-btrfs2";
pub(super) const BTRFS2_UUID: &str = "0b7f5a00-0000-4000-8000-0000000000b2";

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

/// The helper boot's `/helper`: copy the ext4 source disk (vdc1) into the
/// two-device btrfs (vda + vdb; `device=` names the second member, no
/// btrfs tool needed), then say so. mkfs.btrfs cannot populate a
/// multi-device file system (`--rootdir` takes one device) and this host
/// mounts nothing.
const HELPER: &str = "#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /m /s
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox modprobe -a virtio_pci virtio_blk crc32c_generic btrfs ext4
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vdc1 ] && break; /bin/busybox sleep 1; done
/bin/busybox mount -t ext4 -o ro /dev/vdc1 /s &&
/bin/busybox mount -t btrfs -o device=/dev/vdb /dev/vda /m &&
/bin/busybox cp -a /s/. /m/ &&
/bin/busybox umount /m && /bin/busybox sync && echo ALPINIT-HELPER-DONE
/bin/busybox poweroff -f
";

/// `image` with `/helper` appended as a second cpio archive (the kernel
/// unpacks concatenated archives in order, later files replacing earlier).
fn helper_initrd(assets: &Assets, dir: &Path, image: ImageKind, script: &str) -> Result<PathBuf> {
    let tree = dir.join("helper.tree");
    fs::create_dir_all(&tree)?;
    fs::write(tree.join("helper"), script)?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(tree.join("helper"), fs::Permissions::from_mode(0o755))?;
    let extra = dir.join("helper.cpio");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && echo helper | cpio -o -H newc --quiet > '{}'",
            tree.display(),
            extra.display()
        ))
        .output()
        .context("running cpio")?;
    if !out.status.success() {
        bail!(
            "cpio failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // Zero padding to a 4-byte boundary, then the archive gzipped: what
    // the kernel's unpacker accepts after a compressed archive.
    let mut initrd = fs::read(assets.image(image)?)?;
    initrd.resize(initrd.len().next_multiple_of(4), 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &fs::read(&extra)?)?;
    initrd.extend(gz.finish()?);
    let path = dir.join("helper-initrd");
    fs::write(&path, initrd)?;
    Ok(path)
}

/// Two 160 MiB disks holding one btrfs with the report init as /sbin/init.
fn btrfs_pair(assets: &Assets, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    let source = disk(
        dir,
        "source",
        Filesystem::Ext4,
        &[
            FileSpec::new("etc/hostname", 0o644, format!("{HOST_BTRFS2}\n")),
            FileSpec::new("sbin/init", 0o755, init),
            FileSpec::new("etc/alpinit-test/inspect", 0o644, "/sbin/init\n"),
            FileSpec::new("proc/.keep", 0o644, ""),
            FileSpec::new("sys/.keep", 0o644, ""),
            FileSpec::new("dev/.keep", 0o644, ""),
        ],
    )?;
    let (a, b) = (dir.join("btrfs-a.img"), dir.join("btrfs-b.img"));
    for img in [&a, &b] {
        fs::File::create(img)?.set_len(160 << 20)?;
    }
    run(Command::new("mkfs.btrfs")
        .args([
            "-q",
            "-f",
            "-L",
            "BROOT",
            "-U",
            BTRFS2_UUID,
            "-d",
            "raid0",
            "-m",
            "raid1",
        ])
        .arg(&a)
        .arg(&b))?;
    helper_boot(assets, dir, ImageKind::Standard, HELPER, &[&a, &b, &source])?;
    Ok((a, b))
}

/// Boots `script` as `/helper` of `image` with `disks` (vda, vdb, ...) and
/// waits for it to say it is done.
fn helper_boot(
    assets: &Assets,
    dir: &Path,
    image: ImageKind,
    script: &str,
    disks: &[&Path],
) -> Result<()> {
    let initrd = helper_initrd(assets, dir, image, script)?;
    let mut vm = Vm::new(assets.accel);
    vm.kernel_boot(
        &assets.kernel,
        &initrd,
        "console=ttyS0 panic=-1 rdinit=/helper",
    );
    // Writable drives: `Vm::virtio_disk` attaches images with snapshot=on.
    for (i, d) in disks.iter().enumerate() {
        vm.arg("-drive")
            .arg(format!("file={},if=none,id=h{i},format=raw", d.display()))
            .args(["-device", &format!("virtio-blk-pci,drive=h{i}")]);
    }
    let log = dir.join("helper.log");
    let stop = |log: &str| log.contains("ALPINIT-HELPER-DONE") || log.contains("Kernel panic");
    let outcome = qemu::run(&vm, &log, Duration::from_secs(300), Some(&stop))?;
    if !outcome.log.contains("ALPINIT-HELPER-DONE") {
        bail!("the helper boot did not finish (see {})", log.display());
    }
    Ok(())
}

pub(super) fn setup_btrfs_two_disks(assets: &Assets, dir: &Path) -> Result<Setup> {
    let (a, b) = btrfs_pair(assets, dir)?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        &format!("root=UUID={BTRFS2_UUID} rootfstype=btrfs"),
    )?;
    vm.virtio_disk(&a).virtio_disk(&b);
    Ok(reported(assets, vm))
}

pub(super) fn check_btrfs_two_disks(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = Vec::new();
    if outcome.log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    if outcome.log.contains("ambiguous") {
        failures.push("the two members were taken for a cloned disk".to_string());
    }
    let Some(report) = report else {
        failures.push("no report from the new root's init".to_string());
        return failures;
    };
    want_hostname(&mut failures, report, HOST_BTRFS2);
    match report.mount_at("/") {
        Some(m)
            if ["/dev/vda", "/dev/vdb"].contains(&m.source.as_str())
                && m.fstype == "btrfs"
                && m.is_read_only() => {}
        other => failures.push(format!(
            "/ is {other:?}, want btrfs from /dev/vda or /dev/vdb, read-only"
        )),
    }
    if !outcome.log.contains("Mounting root: ok.") {
        failures.push("no `Mounting root: ok.` in the kernel log".to_string());
    }
    failures
}

pub(super) const HOST_LVM: &str = "alpinit-lvm";

/// The LVM helper: `vg0/lv_root` on vda (whole disk PV), the raw ext4 of
/// vdb copied into it, the VG deactivated. lvm runs from the image
/// (feature `lvm`) without udev, locking under /run.
const LVM_HELPER: &str = "#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /run/lock/lvm /run/lvm /etc/lvm
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox modprobe -a virtio_pci virtio_blk dm_mod
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vdb ] && break; /bin/busybox sleep 1; done
export DM_DISABLE_UDEV=1
L=/sbin/lvm
C='--config=activation{udev_sync=0 udev_rules=0} devices{obtain_device_list_from_udev=0}'
$L pvcreate -ff -y \"$C\" /dev/vda &&
$L vgcreate \"$C\" vg0 /dev/vda &&
$L lvcreate -y -Z n \"$C\" -n lv_root -L 40M vg0 &&
/bin/busybox dd if=/dev/vdb of=/dev/dm-0 bs=1M 2>/dev/null &&
$L vgchange -an \"$C\" vg0 && /bin/busybox sync && echo ALPINIT-HELPER-DONE
/bin/busybox poweroff -f
";

/// A 64 MiB LVM physical volume holding vg0/lv_root, an ext4 with the
/// report init as /sbin/init.
fn lvm_disk(assets: &Assets, dir: &Path) -> Result<PathBuf> {
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    let tree = dir.join("lvroot.tree");
    fs::create_dir_all(&tree)?;
    media::write_tree(
        &tree,
        &[
            FileSpec::new("etc/hostname", 0o644, format!("{HOST_LVM}\n")),
            FileSpec::new("sbin/init", 0o755, init),
            FileSpec::new("etc/alpinit-test/inspect", 0o644, "/sbin/init\n"),
            FileSpec::new("proc/.keep", 0o644, ""),
            FileSpec::new("sys/.keep", 0o644, ""),
            FileSpec::new("dev/.keep", 0o644, ""),
        ],
    )?;
    let raw = dir.join("lvroot.ext4");
    let _ = fs::remove_file(&raw);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "LVROOT", "-d"])
        .arg(&tree)
        .arg(&raw)
        .arg("40M"))?;
    let pv = dir.join("pv.img");
    fs::File::create(&pv)?.set_len(64 << 20)?;
    helper_boot(assets, dir, ImageKind::Assemble, LVM_HELPER, &[&pv, &raw])?;
    Ok(pv)
}

pub(super) fn setup_lvm_root(assets: &Assets, dir: &Path) -> Result<Setup> {
    let pv = lvm_disk(assets, dir)?;
    let mut vm = kernel_vm(assets, ImageKind::Assemble, "root=/dev/vg0/lv_root")?;
    vm.virtio_disk(&pv);
    Ok(reported(assets, vm))
}

pub(super) fn check_lvm_root(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = Vec::new();
    if outcome.log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    if !outcome
        .log
        .contains("running /sbin/lvm vgchange --activate ay --noudevsync --sysinit -q -q")
    {
        failures.push("lvm vgchange was not run with nlplug-findfs' arguments".to_string());
    }
    let Some(report) = report else {
        failures.push("no report from the new root's init".to_string());
        return failures;
    };
    want_hostname(&mut failures, report, HOST_LVM);
    match report.mount_at("/") {
        Some(m) if m.source.starts_with("/dev/dm-") && m.fstype == "ext4" && m.is_read_only() => {}
        other => failures.push(format!(
            "/ is {other:?}, want ext4 from /dev/dm-N, read-only"
        )),
    }
    failures
}

pub(super) const HOST_RAID: &str = "alpinit-raid1";

/// The RAID helper: a two-member RAID1 (metadata 1.2) on vda and vdb, the
/// raw ext4 of vdc copied into it, the array stopped. mdadm runs from
/// the image (feature `raid`).
const RAID_HELPER: &str = "#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /run
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox modprobe -a virtio_pci virtio_blk md_mod raid1
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vdc ] && break; /bin/busybox sleep 1; done
/sbin/mdadm --create /dev/md0 --run --quiet --level=1 --raid-devices=2 --metadata=1.2 --assume-clean /dev/vda /dev/vdb &&
/bin/busybox dd if=/dev/vdc of=/dev/md0 bs=1M 2>/dev/null &&
/bin/busybox sync && /sbin/mdadm --stop /dev/md0 && echo ALPINIT-HELPER-DONE
/bin/busybox poweroff -f
";

/// Two 48 MiB RAID1 members holding an ext4 labelled MDROOT with the
/// report init as /sbin/init.
fn raid_disks(assets: &Assets, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    let tree = dir.join("mdroot.tree");
    fs::create_dir_all(&tree)?;
    media::write_tree(
        &tree,
        &[
            FileSpec::new("etc/hostname", 0o644, format!("{HOST_RAID}\n")),
            FileSpec::new("sbin/init", 0o755, init),
            FileSpec::new("etc/alpinit-test/inspect", 0o644, "/sbin/init\n"),
            FileSpec::new("proc/.keep", 0o644, ""),
            FileSpec::new("sys/.keep", 0o644, ""),
            FileSpec::new("dev/.keep", 0o644, ""),
        ],
    )?;
    let raw = dir.join("mdroot.ext4");
    let _ = fs::remove_file(&raw);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "MDROOT", "-d"])
        .arg(&tree)
        .arg(&raw)
        .arg("40M"))?;
    let (a, b) = (dir.join("md-a.img"), dir.join("md-b.img"));
    for img in [&a, &b] {
        let _ = fs::remove_file(img);
        fs::File::create(img)?.set_len(48 << 20)?;
    }
    helper_boot(
        assets,
        dir,
        ImageKind::Assemble,
        RAID_HELPER,
        &[&a, &b, &raw],
    )?;
    Ok((a, b))
}

pub(super) fn setup_raid1_root(assets: &Assets, dir: &Path) -> Result<Setup> {
    let (a, b) = raid_disks(assets, dir)?;
    let mut vm = kernel_vm(assets, ImageKind::Assemble, "root=LABEL=MDROOT")?;
    vm.virtio_disk(&a).virtio_disk(&b);
    Ok(reported(assets, vm))
}

pub(super) fn check_raid1_root(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = Vec::new();
    if outcome.log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    for d in ["/dev/vda", "/dev/vdb"] {
        if !outcome
            .log
            .contains(&format!("running /sbin/mdadm --incremental --quiet {d}"))
        {
            failures.push(format!("no mdadm --incremental for {d}"));
        }
    }
    if outcome.log.contains("starting them degraded") {
        failures.push("a complete array was started degraded".to_string());
    }
    let Some(report) = report else {
        failures.push("no report from the new root's init".to_string());
        return failures;
    };
    want_hostname(&mut failures, report, HOST_RAID);
    match report.mount_at("/") {
        Some(m) if m.source.starts_with("/dev/md") && m.fstype == "ext4" && m.is_read_only() => {}
        other => failures.push(format!(
            "/ is {other:?}, want ext4 from /dev/mdN, read-only"
        )),
    }
    failures
}

pub(super) fn setup_raid1_degraded(assets: &Assets, dir: &Path) -> Result<Setup> {
    let (a, _) = raid_disks(assets, dir)?;
    let mut vm = kernel_vm(assets, ImageKind::Assemble, "root=LABEL=MDROOT")?;
    vm.virtio_disk(&a);
    Ok(reported(assets, vm))
}

pub(super) fn check_raid1_degraded(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = Vec::new();
    if outcome.log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    let log = &outcome.log;
    let member = log.find("running /sbin/mdadm --incremental --quiet /dev/vda");
    let degraded = log.find("running /sbin/mdadm --incremental --run --scan --quiet");
    match (member, degraded) {
        (Some(m), Some(d)) if m < d => {}
        other => failures.push(format!(
            "want mdadm --incremental for vda, then the degraded start; got {other:?}"
        )),
    }
    let Some(report) = report else {
        failures.push("no report from the new root's init".to_string());
        return failures;
    };
    want_hostname(&mut failures, report, HOST_RAID);
    match report.mount_at("/") {
        Some(m) if m.source.starts_with("/dev/md") && m.fstype == "ext4" && m.is_read_only() => {}
        other => failures.push(format!(
            "/ is {other:?}, want ext4 from /dev/mdN, read-only"
        )),
    }
    failures
}
