//! Encrypted roots as Alpine's installer lays them out, booted by the init:
//! a LUKS1 root opened with the image's `/crypto_keyfile.bin` (mkinitfs feature
//! `cryptkey`), and `setup-disk -e -L`'s LVM on LUKS2 (`vg0/lv_root`, `vg0/lv_swap` in
//! a LUKS2 partition mapped as `lvmcrypt`) with the passphrase typed on the console.
//! And the other way round in diskless mode: the boot medium in LUKS2 on an LVM
//! volume, its header detached on a disk of its own, the key from a program. The
//! containers are written by Debian's cryptsetup and lvm in a helper boot of the
//! same kernel (the host has no device-mapper).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::checks::want_hostname;
use super::luks::{module_closure, modules_dir, sh, with_libraries};
use super::*;

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "luks1-keyfile-root",
            about: "LUKS1 root opened by /crypto_keyfile.bin in the image (bare cryptkey), cryptroot=UUID=, no prompt",
            image: ImageKind::Standard,
            setup: setup_luks1_keyfile,
            check: check_luks1_keyfile,
        },
        Scenario {
            name: "lvm-on-luks-root",
            about: "setup-disk -e -L: vg0/lv_root in LUKS2 on vda2 (cryptdm=lvmcrypt), passphrase typed",
            image: ImageKind::Assemble,
            setup: setup_lvm_on_luks,
            check: check_lvm_on_luks,
        },
        Scenario {
            name: "luks-on-lvm-media",
            about: "diskless: apkovl in LUKS2 on vg1/lv_crypt, header on vdb (cryptheader=/dev/vdb), key from cryptkey=EXEC=",
            image: ImageKind::Assemble,
            setup: setup_luks_on_lvm_media,
            check: check_luks_on_lvm_media,
        },
    ]
}

/// Modules the helper's cryptsetup needs beyond the image's: AF_ALG, through which it
/// encrypts and decrypts key slots.
const HELPER_MODULES: &[&str] = &["algif_skcipher", "algif_hash"];

/// The helper boot's start: the usual mounts, the image's dm modules, AF_ALG from
/// `/helper.d/modules`, and a wait for the last disk `$LAST`.
const HELPER_HEAD: &str = "B=/bin/busybox
$B mkdir -p /proc /sys /dev /run/cryptsetup /run/lock/lvm /run/lvm /etc/lvm
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
$B modprobe -a virtio_pci virtio_blk dm_mod dm_crypt xts ecb sha512_generic
for m in $($B cat /helper.d/modules); do $B insmod $m; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b $LAST ] && break; $B sleep 1; done
export DM_DISABLE_UDEV=1
CS='/usr/sbin/cryptsetup --disable-keyring'
C='--config=activation{udev_sync=0 udev_rules=0} devices{obtain_device_list_from_udev=0}'
L=/sbin/lvm
# /dev/dm-N of the mapping named $1.
dm() { for d in /sys/block/dm-*; do [ \"$($B cat $d/dm/name)\" = \"$1\" ] && echo /dev/${d##*/}; done; }
";

/// `base` with `files` appended as a second gzip cpio archive (the kernel unpacks
/// concatenated archives in order, later files replacing earlier).
fn initrd_with(base: &Path, dir: &Path, name: &str, files: &[FileSpec]) -> Result<PathBuf> {
    let tree = dir.join(format!("{name}.tree"));
    let _ = fs::remove_dir_all(&tree);
    media::write_tree(&tree, files)?;
    let cpio = dir.join(format!("{name}.cpio"));
    sh(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . | cpio -o -H newc --quiet > '{}'",
        tree.display(),
        cpio.display()
    )))?;
    // Zero padding to a 4-byte boundary, then the archive gzipped: what the kernel's
    // unpacker accepts after a compressed archive.
    let mut initrd = fs::read(base).with_context(|| format!("reading {}", base.display()))?;
    initrd.resize(initrd.len().next_multiple_of(4), 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &fs::read(&cpio)?)?;
    initrd.extend(gz.finish()?);
    let path = dir.join(name);
    fs::write(&path, initrd)?;
    Ok(path)
}

/// Boots `script` (after [`HELPER_HEAD`]) as `/helper` of `image`, with Debian's
/// cryptsetup and its libraries, AF_ALG modules and `extra` files added, and `disks`
/// attached writable (vda, vdb, ...); waits for it to say it is done.
fn helper_boot(
    assets: &Assets,
    dir: &Path,
    image: ImageKind,
    script: &str,
    extra: Vec<FileSpec>,
    disks: &[&Path],
) -> Result<()> {
    let mut files = extra;
    let last = format!("/dev/vd{}", (b'a' + disks.len() as u8 - 1) as char);
    files.push(FileSpec::new(
        "helper",
        0o755,
        format!("#!/bin/busybox sh\nLAST={last}\n{HELPER_HEAD}{script}"),
    ));
    with_libraries("/usr/sbin/cryptsetup", &mut files)?;
    // glibc loads libgcc_s when a thread exits (libargon2's lanes), so ldd misses it.
    if let Some(gcc_s) = [
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file())
    {
        files.push(FileSpec::new(
            "lib/x86_64-linux-gnu/libgcc_s.so.1",
            0o755,
            fs::read(gcc_s)?,
        ));
    }
    let modules = modules_dir(assets)?;
    let mut load = String::new();
    for m in module_closure(&modules, HELPER_MODULES)? {
        let at = format!("helper.d/{}", m.rsplit('/').next().unwrap_or(&m));
        load.push_str(&format!("/{at}\n"));
        let data = fs::read(modules.join(&m)).with_context(|| format!("reading module {m}"))?;
        files.push(FileSpec::new(&at, 0o644, data));
    }
    files.push(FileSpec::new("helper.d/modules", 0o644, load));
    let initrd = initrd_with(assets.image(image)?, dir, "helper-initrd", &files)?;
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

/// A raw ext4 of `size` with the report init as /sbin/init and `host` as hostname.
fn root_fs(assets: &Assets, dir: &Path, host: &str, label: &str, size: &str) -> Result<PathBuf> {
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    let tree = dir.join(format!("{label}.tree"));
    let _ = fs::remove_dir_all(&tree);
    media::write_tree(
        &tree,
        &[
            FileSpec::new("etc/hostname", 0o644, format!("{host}\n")),
            FileSpec::new("sbin/init", 0o755, init),
            FileSpec::new("etc/alpinit-test/inspect", 0o644, "/sbin/init\n"),
            FileSpec::new("proc/.keep", 0o644, ""),
            FileSpec::new("sys/.keep", 0o644, ""),
            FileSpec::new("dev/.keep", 0o644, ""),
        ],
    )?;
    let raw = dir.join(format!("{label}.ext4"));
    let _ = fs::remove_file(&raw);
    sh(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-d"])
        .arg(&tree)
        .arg(&raw)
        .arg(size))?;
    Ok(raw)
}

/// A fresh sparse file of `mib` MiB.
fn blank(path: &Path, mib: u64) -> Result<()> {
    let _ = fs::remove_file(path);
    fs::File::create(path)?.set_len(mib << 20)?;
    Ok(())
}

fn common_failures(outcome: &Outcome, report: Option<&Report>, host: &str) -> Vec<String> {
    let mut failures = Vec::new();
    if outcome.log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    if outcome.log.contains("not supported by this version") {
        failures.push("a crypt option was reported as not supported".to_string());
    }
    match report {
        Some(report) => {
            want_hostname(&mut failures, report, host);
            match report.mount_at("/") {
                Some(m) if m.source.starts_with("/dev/dm-") && m.fstype == "ext4" => {}
                other => failures.push(format!("/ is {other:?}, want a /dev/dm-N ext4")),
            }
        }
        None => failures.push("no report from the new root's init".to_string()),
    }
    failures
}

// ------------------------------------------------------------ LUKS1, key file

const LUKS1_HOST: &str = "alpinit-luks1-keyfile";
const LUKS1_UUID: &str = "5a1b1e55-0000-4000-8000-00000000c001";
/// The key file's bytes: binary, with a newline inside (a key file is not a line).
const LUKS1_KEY: &[u8] = b"\x00\x01key file\nwith binary \xff\xfe bytes\x7f";

/// The helper: open the host-formatted LUKS1 container vda with the key, copy the raw
/// ext4 of vdb into the mapping.
const LUKS1_HELPER: &str = "$CS open --type luks1 --key-file /helper.d/key /dev/vda r &&
$B dd if=/dev/vdb of=$(dm r) bs=1M 2>/dev/null && $B sync &&
$CS close r && echo ALPINIT-HELPER-DONE
$B poweroff -f
";

fn setup_luks1_keyfile(assets: &Assets, dir: &Path) -> Result<Setup> {
    let raw = root_fs(assets, dir, LUKS1_HOST, "L1ROOT", "24M")?;
    let img = dir.join("luks1.img");
    blank(&img, 32)?;
    let key = dir.join("key");
    fs::write(&key, LUKS1_KEY)?;
    // LUKS1's key slots are written without device-mapper (AF_ALG), so on the host.
    sh(Command::new("cryptsetup")
        .args(["luksFormat", "--type", "luks1", "--batch-mode"])
        .args(["--cipher", "aes-xts-plain64", "--key-size", "512"])
        .args(["--hash", "sha256", "--pbkdf-force-iterations", "1000"])
        .args(["--uuid", LUKS1_UUID, "--key-file"])
        .arg(&key)
        .arg(&img))?;
    helper_boot(
        assets,
        dir,
        ImageKind::Standard,
        LUKS1_HELPER,
        vec![FileSpec::new("helper.d/key", 0o600, LUKS1_KEY)],
        &[&img, &raw],
    )?;
    // mkinitfs' `cryptkey` feature puts the key file at /crypto_keyfile.bin.
    let initrd = initrd_with(
        assets.image(ImageKind::Standard)?,
        dir,
        "initrd-keyfile",
        &[FileSpec::new("crypto_keyfile.bin", 0o600, LUKS1_KEY)],
    )?;
    let mut vm = Vm::new(assets.accel);
    vm.kernel_boot(
        &assets.kernel,
        &initrd,
        &format!(
            "{CMDLINE} root=/dev/mapper/root cryptroot=UUID={LUKS1_UUID} cryptdm=root cryptkey"
        ),
    );
    vm.virtio_disk(&img);
    Ok(Setup {
        vm,
        stop: Some(Box::new(|log: &str| {
            log.contains("Kernel panic") || log.contains("Enter passphrase")
        })),
        timeout: assets.accel.boot_timeout(),
    })
}

fn check_luks1_keyfile(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = common_failures(outcome, report, LUKS1_HOST);
    if outcome.log.contains("Enter passphrase") {
        failures.push("a passphrase was asked although the key file opens the volume".into());
    }
    if !outcome
        .log
        .contains("/dev/vda unlocked (key slot 0), mapped as /dev/mapper/root")
    {
        failures.push("no `/dev/vda unlocked (key slot 0)` line".to_string());
    }
    failures
}

// ------------------------------------------------------------ LVM on LUKS2

const LVM_LUKS_HOST: &str = "alpinit-lvm-on-luks";
const LVM_LUKS_PASS: &str = "lvm on luks";
const LVM_LUKS_PROMPT: &str = "Enter passphrase for /dev/vda2: ";

/// The helper: LUKS2 on vda2, mapped as lvmcrypt; in it the PV of vg0 with lv_swap
/// and lv_root (setup-disk -e -L's names); the raw ext4 of vdb copied into lv_root;
/// then everything closed again.
const LVM_LUKS_HELPER: &str = "$CS luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 \
--pbkdf-force-iterations 1000 --key-file /helper.d/pass /dev/vda2 &&
$CS open --key-file /helper.d/pass /dev/vda2 lvmcrypt &&
P=$(dm lvmcrypt) &&
$L pvcreate -ff -y \"$C\" $P &&
$L vgcreate \"$C\" vg0 $P &&
$L lvcreate -y -Z n \"$C\" -n lv_swap -L 8M vg0 &&
$L lvcreate -y -Z n \"$C\" -n lv_root -L 40M vg0 &&
$B mkswap $(dm vg0-lv_swap) >/dev/null &&
$B dd if=/dev/vdb of=$(dm vg0-lv_root) bs=1M 2>/dev/null && $B sync &&
$L vgchange -an \"$C\" vg0 && $CS close lvmcrypt && echo ALPINIT-HELPER-DONE
$B poweroff -f
";

fn setup_lvm_on_luks(assets: &Assets, dir: &Path) -> Result<Setup> {
    let raw = root_fs(assets, dir, LVM_LUKS_HOST, "LVROOT", "40M")?;
    // vda1: /boot (ext4, unused here), vda2: the rest, as setup-disk -e -L.
    let disk = dir.join("disk.img");
    blank(&disk, 96)?;
    let mut sfdisk = Command::new("sfdisk");
    sfdisk
        .args(["--quiet", "--label", "dos"])
        .arg(&disk)
        .stdin(std::process::Stdio::piped());
    let mut child = sfdisk.spawn().context("starting sfdisk")?;
    std::io::Write::write_all(
        child.stdin.as_mut().context("sfdisk stdin")?,
        b"start=2048, size=16MiB, type=83\nstart=34816, type=83\n",
    )?;
    if !child.wait()?.success() {
        bail!("sfdisk {} failed", disk.display());
    }
    helper_boot(
        assets,
        dir,
        ImageKind::Assemble,
        LVM_LUKS_HELPER,
        vec![FileSpec::new("helper.d/pass", 0o600, LVM_LUKS_PASS)],
        &[&disk, &raw],
    )?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Assemble,
        "root=/dev/vg0/lv_root cryptroot=/dev/vda2 cryptdm=lvmcrypt",
    )?;
    vm.virtio_disk(&disk)
        .type_after(LVM_LUKS_PROMPT, &format!("{LVM_LUKS_PASS}\n"));
    Ok(interactive(assets, vm))
}

fn check_lvm_on_luks(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let log = &outcome.log;
    let mut failures = common_failures(outcome, report, LVM_LUKS_HOST);
    let prompts = log.matches(LVM_LUKS_PROMPT).count();
    if prompts != 1 {
        failures.push(format!("{prompts} passphrase prompts, want 1"));
    }
    if log.contains(LVM_LUKS_PASS) {
        failures.push("the passphrase was echoed on the console".to_string());
    }
    if !log.contains("/dev/vda2 unlocked (key slot 0), mapped as /dev/mapper/lvmcrypt") {
        failures.push("no `/dev/vda2 unlocked ... /dev/mapper/lvmcrypt` line".to_string());
    }
    // lvm runs on the mapping's PV, after the unlock.
    let unlocked = log.find("mapped as /dev/mapper/lvmcrypt");
    let vgchange = log.find("running /sbin/lvm vgchange --activate ay");
    match (unlocked, vgchange) {
        (Some(u), Some(v)) if u < v => {}
        other => failures.push(format!(
            "want the unlock, then lvm vgchange on the mapping; got {other:?}"
        )),
    }
    failures
}

// ------------------------------------------------ diskless: LUKS on LVM, detached header

const MEDIA_HOST: &str = "alpinit-luks-on-lvm";
const MEDIA_KEY: &str = "printed by a key program";

/// The helper: vg1/lv_crypt on vda; LUKS2 on it with its header on vdb; the raw ext4
/// of vdc (the boot medium) copied into the mapping; everything closed again.
const MEDIA_HELPER: &str = "$L pvcreate -ff -y \"$C\" /dev/vda &&
$L vgcreate \"$C\" vg1 /dev/vda &&
$L lvcreate -y -Z n \"$C\" -n lv_crypt -L 24M vg1 &&
V=$(dm vg1-lv_crypt) &&
$CS luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
--luks2-metadata-size 16k --luks2-keyslots-size 1m --header /dev/vdb \
--key-file /helper.d/key $V &&
$CS open --header /dev/vdb --key-file /helper.d/key $V m &&
$B dd if=/dev/vdc of=$(dm m) bs=1M 2>/dev/null && $B sync &&
$CS close m && $L vgchange -an \"$C\" vg1 && echo ALPINIT-HELPER-DONE
$B poweroff -f
";

fn setup_luks_on_lvm_media(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, MEDIA_HOST, &[], Vec::new())?;
    let tree = dir.join("medium.tree");
    let _ = fs::remove_dir_all(&tree);
    media::write_tree(&tree, &[FileSpec::new("sealed.apkovl.tar.gz", 0o644, ovl)])?;
    let raw = dir.join("medium.ext4");
    let _ = fs::remove_file(&raw);
    sh(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "SEALED", "-d"])
        .arg(&tree)
        .arg(&raw)
        .arg("16M"))?;
    let (pv, header) = (dir.join("pv.img"), dir.join("header.img"));
    blank(&pv, 48)?;
    blank(&header, 4)?;
    helper_boot(
        assets,
        dir,
        ImageKind::Assemble,
        MEDIA_HELPER,
        vec![FileSpec::new("helper.d/key", 0o600, MEDIA_KEY)],
        &[&pv, &header, &raw],
    )?;
    let initrd = initrd_with(
        assets.image(ImageKind::Assemble)?,
        dir,
        "initrd-getkey",
        &[FileSpec::new(
            "sbin/getkey",
            0o755,
            format!("#!/bin/busybox sh\n/bin/busybox printf %s '{MEDIA_KEY}'\n"),
        )],
    )?;
    let mut vm = Vm::new(assets.accel);
    vm.kernel_boot(
        &assets.kernel,
        &initrd,
        &format!(
            "{CMDLINE} cryptroot=/dev/vg1/lv_crypt cryptheader=/dev/vdb \
             cryptkey=EXEC=/sbin/getkey cryptdm=media"
        ),
    );
    vm.virtio_disk(&pv).virtio_disk(&header);
    Ok(Setup {
        vm,
        stop: Some(Box::new(|log: &str| {
            log.contains("Kernel panic") || log.contains("Enter passphrase")
        })),
        timeout: assets.accel.boot_timeout(),
    })
}

fn check_luks_on_lvm_media(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let log = &outcome.log;
    let mut failures = Vec::new();
    if log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    if log.contains("Enter passphrase") {
        failures.push("a passphrase was asked although the key program opens it".into());
    }
    if log.contains("not supported by this version") {
        failures.push("a crypt option was reported as not supported".to_string());
    }
    // lvm made the LV first, then the LV was unlocked with the header of vdb.
    let vgchange = log.find("running /sbin/lvm vgchange --activate ay");
    let unlocked = log.find("/dev/vg1/lv_crypt unlocked (key slot 0), mapped as /dev/mapper/media");
    match (vgchange, unlocked) {
        (Some(v), Some(u)) if v < u => {}
        other => failures.push(format!(
            "want lvm vgchange, then /dev/vg1/lv_crypt unlocked as /dev/mapper/media; got {other:?}"
        )),
    }
    let Some(report) = report else {
        failures.push("no report from the new root's init".to_string());
        return failures;
    };
    want_hostname(&mut failures, report, MEDIA_HOST);
    if !report
        .mounts()
        .iter()
        .any(|m| m.source.starts_with("/dev/dm-") && m.target.starts_with("/media/dm-"))
    {
        failures.push(format!(
            "no boot medium from /dev/dm-N at /media/dm-N in the new root: {:?}",
            report.mounts()
        ));
    }
    failures
}
