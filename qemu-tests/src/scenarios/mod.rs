//! The QEMU scenarios: each builds its media, boots the real image and
//! asserts on the report `report-init` prints after switch_root and on the
//! console lines.

mod aarch64;
mod alpine_mkinitfs;
mod assemble;
mod boot_media;
mod checks;
mod consoles;
mod explain;
mod hostile;
mod luks;
mod luks_roots;
mod net_faults;
mod network;
mod nlplug_matrix;
mod nlplug_matrix_disks;
mod no_media;
mod other_fs;
mod packages;
mod real_apk;
mod rollback;
mod root_mode;
mod shell_init;
mod waits;

use assemble::*;
use boot_media::*;
use consoles::*;
use explain::*;
pub use hostile::REJECTED_INSPECT;
use hostile::*;
pub use network::MACTAB;
use network::*;
use no_media::*;
use other_fs::*;
use packages::*;
pub use rollback::{signed_image_key, SIGNED_KEY_IN_IMAGE};
use root_mode::*;
use waits::*;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::media::{self, FileSpec, Filesystem};
use crate::qemu::{self, Accel, Arch, Outcome, Vm};
use crate::report::Report;

/// Which initramfs a scenario boots; the caller builds each kind once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImageKind {
    /// The default image (all features, busybox).
    Standard,
    /// The default image plus the recording `/sbin/apk`.
    FakeApk,
    /// `FakeApk` whose apk also installs report-init and [`REJECTED_INSPECT`]
    /// into the new root: for boots whose overlay is rejected.
    FakeApkInit,
    /// The init built with `--features https` and the harness's test CA
    /// as `/etc/ssl/certs/ca-certificates.crt`.
    Https,
    /// The default image plus an `/etc/mactab` ([`MACTAB`]).
    Mactab,
    /// The default image plus Alpine's real `apk` with its libraries and
    /// the test key (`crate::alpine_repo::image_files`).
    RealApk,
    /// The default image plus the features `lvm` and `raid` (Debian's lvm
    /// and mdadm with their libraries).
    Assemble,
    /// Built by Alpine's own mkinitfs from the Alpine mini root, alpinit as
    /// `-i` (Alpine's busybox and apk, no nlplug-findfs).
    Mkinitfs,
    /// The default image plus a public key in `/etc/alpinit/keys`
    /// ([`signed_image_key`]): only signed overlays are accepted.
    Signed,
    /// Alpine's shell `initramfs-init` (mkinitfs 3.13.0) as `/init`, our
    /// init binary as its `/sbin/nlplug-findfs`, otherwise the default
    /// image (`xtask/src/alpine_init.rs`, scenarios in `shell_init.rs`).
    ShellInit,
}

/// Everything the scenarios need from the build.
#[derive(Debug, Clone)]
pub struct Assets {
    /// The machine every boot of these assets emulates.
    pub arch: Arch,
    /// What `-kernel` gets (the ELF vmlinux when available).
    pub kernel: PathBuf,
    /// The bzImage, for media that boot through a boot loader.
    pub vmlinuz: PathBuf,
    pub images: BTreeMap<ImageKind, PathBuf>,
    pub report_init: PathBuf,
    pub accel: Accel,
    /// `target/qemu-tests`: one sub-directory per scenario.
    pub out_dir: PathBuf,
}

impl Assets {
    fn image(&self, kind: ImageKind) -> Result<&Path> {
        self.images
            .get(&kind)
            .map(PathBuf::as_path)
            .with_context(|| format!("no {kind:?} image was built"))
    }
}

type StopFn = Box<dyn Fn(&str) -> bool>;

/// A prepared boot: the machine, when to stop it early, and the time limit.
pub struct Setup {
    pub vm: Vm,
    pub stop: Option<StopFn>,
    pub timeout: Duration,
}

pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub image: ImageKind,
    setup: fn(&Assets, &Path) -> Result<Setup>,
    check: fn(&Outcome, Option<&Report>) -> Vec<String>,
}

#[derive(Debug)]
pub enum Verdict {
    Pass,
    Fail(Vec<String>),
}

#[derive(Debug)]
pub struct ScenarioResult {
    pub name: &'static str,
    pub verdict: Verdict,
    pub elapsed: Duration,
    pub log_path: PathBuf,
    pub log: String,
    pub report: Option<Report>,
}

pub const CMDLINE: &str = "console=ttyS0 panic=-1";

pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "virtio-ext4",
            about: "virtio disk, ext4 partition with the apkovl at top level",
            image: ImageKind::Standard,
            setup: setup_virtio_ext4,
            check: check_virtio_ext4,
        },
        Scenario {
            name: "explain",
            about: "the booted guest runs `alpinit explain`: options, boot medium, chosen apkovl, exit status 0",
            image: ImageKind::Standard,
            setup: setup_explain,
            check: check_explain,
        },
        Scenario {
            name: "usb-fat32",
            about: "USB stick on xhci, FAT32 partition with the apkovl",
            image: ImageKind::Standard,
            setup: setup_usb_fat32,
            check: check_usb_fat32,
        },
        Scenario {
            name: "iso-usb",
            about: "isolinux ISO with a boot repository plus a USB stick with the apkovl",
            image: ImageKind::Standard,
            setup: setup_iso_usb,
            check: check_iso_usb,
        },
        Scenario {
            name: "serial-console",
            about: "console=ttyS0: the new root's inittab gets Alpine's getty line, securetty gets ttyS0",
            image: ImageKind::Standard,
            setup: setup_serial_console,
            check: check_serial_console,
        },
        Scenario {
            name: "precedence",
            about: "two disks with apkovls; the one beside a boot repository wins",
            image: ImageKind::Standard,
            setup: setup_precedence,
            check: check_precedence,
        },
        Scenario {
            name: "btrfs-xfs",
            about: "apkovl on a btrfs disk, boot repository on an xfs disk: both mounted (Alpine bug #11589)",
            image: ImageKind::Standard,
            setup: setup_btrfs_xfs,
            check: check_btrfs_xfs,
        },
        Scenario {
            name: "usr-merged",
            about: "bootstrap_usr_merged: bin/foo lands in /usr/bin, /bin is a symlink",
            image: ImageKind::Standard,
            setup: setup_usr_merged,
            check: check_usr_merged,
        },
        Scenario {
            name: "apkovl-dev-fstype-path",
            about: "apkovl=/dev/vda1:ext4:deep/dir/custom.apkovl.tar.gz",
            image: ImageKind::Standard,
            setup: setup_dev_fstype_path,
            check: check_dev_fstype_path,
        },
        Scenario {
            name: "no-media",
            about: "no disks: boot media fail, recovery shell, no panic",
            image: ImageKind::Standard,
            setup: setup_no_media,
            check: check_no_media,
        },
        Scenario {
            name: "no-media-panic",
            about: "no disks with panic=10: the init gives up and the kernel reboots",
            image: ImageKind::Standard,
            setup: setup_no_media_panic,
            check: check_no_media_panic,
        },
        Scenario {
            name: "root-label",
            about: "root=LABEL=ROOT: the installed root is mounted read-only, no media scan",
            image: ImageKind::Standard,
            setup: setup_root_label,
            check: check_root_label,
        },
        Scenario {
            name: "btrfs-two-disks",
            about: "root=UUID= of a btrfs over two virtio disks (RAID0 data): both members registered, mounted read-only",
            image: ImageKind::Standard,
            setup: setup_btrfs_two_disks,
            check: check_btrfs_two_disks,
        },
        Scenario {
            name: "lvm-root",
            about: "root=/dev/vg0/lv_root: lvm vgchange from the image, /dev/VG/LV linked, the LV mounted read-only",
            image: ImageKind::Assemble,
            setup: setup_lvm_root,
            check: check_lvm_root,
        },
        Scenario {
            name: "raid1-root",
            about: "root=LABEL= on a RAID1 over two virtio disks: mdadm --incremental per member, the array complete, mounted read-only",
            image: ImageKind::Assemble,
            setup: setup_raid1_root,
            check: check_raid1_root,
        },
        Scenario {
            name: "raid1-degraded",
            about: "the RAID1 root with one member missing: started degraded when the wait for the root ends, then mounted",
            image: ImageKind::Assemble,
            setup: setup_raid1_degraded,
            check: check_raid1_degraded,
        },
        Scenario {
            name: "fake-apk",
            about: "the recording /sbin/apk sees Alpine's flags and the overlay list",
            image: ImageKind::FakeApk,
            setup: setup_fake_apk,
            check: check_fake_apk,
        },
        Scenario {
            name: "encrypted-usb",
            about: "aes-256-cbc apkovl on a USB stick: a wrong, then the right password on the console",
            image: ImageKind::Standard,
            setup: setup_encrypted_usb,
            check: check_encrypted_usb,
        },
        Scenario {
            name: "hostile-overlay",
            about: "`..` member, symlink escape and device node: rejected whole, exit boots without it",
            image: ImageKind::FakeApkInit,
            setup: setup_hostile_overlay,
            check: check_hostile_overlay,
        },
        Scenario {
            name: "hostile-overlay-panic",
            about: "the hostile overlay with panic=: no shell, the init gives up and the kernel panics",
            image: ImageKind::Standard,
            setup: setup_hostile_panic,
            check: check_hostile_panic,
        },
        Scenario {
            name: "hostile-symlink",
            about: "symlink `evil -> /` then `evil/etc/passwd`: rejected whole, exit boots without it",
            image: ImageKind::FakeApkInit,
            setup: setup_hostile_symlink,
            check: check_hostile_symlink,
        },
        Scenario {
            name: "device-nodes",
            about: "an overlay with a char device and a FIFO: both skipped with a warning, the rest applied",
            image: ImageKind::Standard,
            setup: setup_device_nodes,
            check: check_device_nodes,
        },
        Scenario {
            name: "truncated-overlay",
            about: "the apkovl cut in half: rejected as truncated, nothing applied",
            image: ImageKind::FakeApkInit,
            setup: setup_truncated,
            check: check_truncated,
        },
        Scenario {
            name: "gzip-bomb",
            about: "rootflags=size=16M and an overlay inflating to 200 MiB: rejected by the size limit",
            image: ImageKind::FakeApkInit,
            setup: setup_gzip_bomb,
            check: check_gzip_bomb,
        },
        Scenario {
            name: "enospc-inodes",
            about: "rootflags=nr_inodes=64 and a 120-file overlay: ENOSPC names the member, nothing applied",
            image: ImageKind::FakeApkInit,
            setup: setup_enospc_inodes,
            check: check_enospc_inodes,
        },
        Scenario {
            name: "pxe-mac",
            about: "pxelinux over QEMU's TFTP, ip=dhcp, apkovl by {MAC} over HTTP, BOOTIF",
            image: ImageKind::Standard,
            setup: setup_pxe_mac,
            check: check_pxe_mac,
        },
        Scenario {
            name: "uuid-token",
            about: "-uuid and apkovl=http://.../{UUID}.apkovl.tar.gz?token=x",
            image: ImageKind::Standard,
            setup: setup_uuid_token,
            check: check_uuid_token,
        },
        Scenario {
            name: "https-ok",
            about: "apkovl over HTTPS, verified against the test CA in the image",
            image: ImageKind::Https,
            setup: setup_https_ok,
            check: check_https_ok,
        },
        Scenario {
            name: "https-wrong-ca",
            about: "HTTPS with a certificate from an untrusted CA fails closed; the local overlay boots",
            image: ImageKind::Https,
            setup: setup_https_wrong_ca,
            check: check_https_wrong_ca,
        },
        Scenario {
            name: "static-ip",
            about: "static ip= without DHCP, apkovl over HTTP",
            image: ImageKind::Standard,
            setup: setup_static_ip,
            check: check_static_ip,
        },
        Scenario {
            name: "no-dhcp",
            about: "no DHCP server: bounded failure, no panic, the local overlay boots",
            image: ImageKind::Standard,
            setup: setup_no_dhcp,
            check: check_no_dhcp,
        },
        Scenario {
            name: "mactab",
            about: "/etc/mactab renames the second NIC to lan; ip=:::::lan:dhcp uses it",
            image: ImageKind::Mactab,
            setup: setup_mactab,
            check: check_mactab,
        },
        Scenario {
            name: "bootif-second-nic",
            about: "two NICs, BOOTIF picks the second; its MAC names the apkovl",
            image: ImageKind::Standard,
            setup: setup_bootif_second_nic,
            check: check_bootif_second_nic,
        },
        Scenario {
            name: "wait-ide-cd",
            about: "apkovl on a virtio disk, boot repository only on a PIIX IDE CD: both used",
            image: ImageKind::Standard,
            setup: setup_wait_ide_cd,
            check: check_wait_cd,
        },
        Scenario {
            name: "wait-ahci-cd",
            about: "apkovl on a virtio disk, boot repository only on a q35 AHCI CD: both used",
            image: ImageKind::Standard,
            setup: setup_wait_ahci_cd,
            check: check_wait_cd,
        },
        Scenario {
            name: "wait-nvme",
            about: "apkovl on a virtio disk, boot repository only on an NVMe disk: both used",
            image: ImageKind::Standard,
            setup: setup_wait_nvme,
            check: check_wait_nvme,
        },
        Scenario {
            name: "usbdelay-late-stick",
            about: "usbdelay=8, repository on a virtio disk, the apkovl stick plugged in 3 s later: used",
            image: ImageKind::Standard,
            setup: setup_usbdelay_late_stick,
            check: check_usbdelay_late_stick,
        },
        Scenario {
            name: "unplug-during-unpack",
            about: "the overlay's stick removed while it is read: I/O error named, nothing applied",
            image: ImageKind::FakeApkInit,
            setup: setup_unplug_during_unpack,
            check: check_unplug_during_unpack,
        },
    ]
    .into_iter()
    .chain(net_faults::scenarios())
    .chain(real_apk::scenarios())
    .chain(alpine_mkinitfs::scenarios())
    .chain(root_mode::scenarios())
    .chain(luks::scenarios())
    .chain(luks_roots::scenarios())
    .chain(rollback::scenarios())
    .chain(shell_init::scenarios())
    .chain(nlplug_matrix::scenarios())
    .collect()
}

/// The scenarios that boot an ARCH guest: every one of [`all`] on x86_64;
/// on aarch64 the `virt` board's set (`aarch64.rs`), which shares their
/// setup and checks where the media are the same.
pub fn for_arch(arch: Arch) -> Vec<Scenario> {
    match arch {
        Arch::X86_64 => all(),
        Arch::Aarch64 => aarch64::scenarios(),
    }
}

/// x86_64 scenarios by name (see [`select_for`]).
pub fn select(names: &[String]) -> Result<Vec<Scenario>> {
    select_for(Arch::X86_64, names)
}

/// ARCH's scenarios by name, in the order given; unknown names are an error.
pub fn select_for(arch: Arch, names: &[String]) -> Result<Vec<Scenario>> {
    if names.is_empty() {
        return Ok(for_arch(arch));
    }
    let mut chosen = Vec::new();
    for name in names {
        let found = for_arch(arch)
            .into_iter()
            .find(|s| s.name == name)
            .with_context(|| {
                let known: Vec<&str> = for_arch(arch).iter().map(|s| s.name).collect();
                format!(
                    "unknown {arch} scenario {name:?}; known: {}",
                    known.join(", ")
                )
            })?;
        chosen.push(found);
    }
    Ok(chosen)
}

/// Builds the media, boots, and judges one scenario.
pub fn run(scenario: &Scenario, assets: &Assets) -> ScenarioResult {
    let dir = assets.out_dir.join(scenario.name);
    let log_path = dir.join("serial.log");
    let started = Instant::now();
    let outcome = prepare_dir(&dir)
        .and_then(|()| (scenario.setup)(assets, &dir))
        .and_then(|setup| {
            let line = format!(
                "{} -serial file:{}\n",
                setup.vm.shell_line(),
                log_path.display()
            );
            fs::write(dir.join("qemu.cmdline"), line).context("writing qemu.cmdline")?;
            qemu::run(&setup.vm, &log_path, setup.timeout, setup.stop.as_deref())
        });
    match outcome {
        Ok(outcome) => {
            let report = Report::parse(&outcome.log);
            let failures = (scenario.check)(&outcome, report.as_ref());
            ScenarioResult {
                name: scenario.name,
                verdict: if failures.is_empty() {
                    Verdict::Pass
                } else {
                    Verdict::Fail(failures)
                },
                elapsed: started.elapsed(),
                log_path,
                log: outcome.log,
                report,
            }
        }
        Err(err) => ScenarioResult {
            name: scenario.name,
            verdict: Verdict::Fail(vec![format!("setup: {err:#}")]),
            elapsed: started.elapsed(),
            log: fs::read_to_string(&log_path).unwrap_or_default(),
            log_path,
            report: None,
        },
    }
}

fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cleaning {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// The overlay every scenario boots into: report-init as /sbin/init, a
/// hostname, and the list of paths for it to inspect.
fn overlay(
    assets: &Assets,
    hostname: &str,
    inspect: &[&str],
    extra: Vec<FileSpec>,
) -> Result<Vec<u8>> {
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    let mut files = vec![
        FileSpec::new("etc/hostname", 0o644, format!("{hostname}\n")),
        FileSpec::new("sbin/init", 0o755, init),
        FileSpec::new("etc/alpinit-test/inspect", 0o644, inspect.join("\n") + "\n"),
    ];
    files.extend(extra);
    media::apkovl(&files)
}

/// A disk with one partition whose filesystem holds FILES.
fn disk(dir: &Path, name: &str, fs_kind: Filesystem, files: &[FileSpec]) -> Result<PathBuf> {
    let tree = dir.join(format!("{name}.tree"));
    fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;
    media::write_tree(&tree, files)?;
    let image = dir.join(format!("{name}.img"));
    let size = match fs_kind {
        Filesystem::Ext4 => 32,
        Filesystem::Fat32 => 64,
    };
    media::disk_image(&image, fs_kind, &name.to_uppercase(), size, &tree)?;
    Ok(image)
}

fn kernel_vm(assets: &Assets, image: ImageKind, extra_cmdline: &str) -> Result<Vm> {
    kernel_vm_with(assets, image, &format!("{CMDLINE} {extra_cmdline}"))
}

/// Without the usual `panic=-1`, for the scenarios about what the init
/// does when there is nothing to boot. The serial console is the
/// machine's own: `console=ttyS0` becomes `ttyAMA0` on aarch64.
fn kernel_vm_with(assets: &Assets, image: ImageKind, append: &str) -> Result<Vm> {
    let mut vm = Vm::for_arch(assets.arch, assets.accel);
    vm.kernel_boot(
        &assets.kernel,
        assets.image(image)?,
        &for_console(assets.arch, append.trim()),
    );
    Ok(vm)
}

/// APPEND with its `console=ttyS0` words naming ARCH's serial console.
fn for_console(arch: Arch, append: &str) -> String {
    let want = format!("console={}", arch.serial_console());
    append
        .split(' ')
        .map(|word| {
            if word == "console=ttyS0" {
                want.as_str()
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn stops_on_panic() -> Option<StopFn> {
    Some(Box::new(|log: &str| log.contains("Kernel panic")))
}

fn reported(assets: &Assets, vm: Vm) -> Setup {
    Setup {
        vm,
        stop: stops_on_panic(),
        timeout: assets.accel.boot_timeout(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_unique_and_selectable() {
        let names: Vec<&str> = all().iter().map(|s| s.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        let picked = select(&["usb-fat32".to_string(), "virtio-ext4".to_string()]).expect("select");
        let picked: Vec<&str> = picked.iter().map(|s| s.name).collect();
        assert_eq!(picked, ["usb-fat32", "virtio-ext4"]);
        assert!(select(&["nope".to_string()]).is_err());
        assert_eq!(select(&[]).expect("all").len(), names.len());
    }

    #[test]
    fn each_architecture_has_its_own_names() {
        for arch in Arch::ALL {
            let names: Vec<&str> = for_arch(arch).iter().map(|s| s.name).collect();
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{arch}");
            assert!(!names.is_empty(), "{arch}");
        }
        // The same name picks the same media on the other machine...
        let arm = select_for(Arch::Aarch64, &["virtio-ext4".to_string()]).expect("aarch64");
        assert_eq!(arm.len(), 1);
        // ...and x86-only scenarios are not offered for aarch64.
        match select_for(Arch::Aarch64, &["pxe-mac".to_string()]) {
            Ok(_) => panic!("pxe-mac was offered for aarch64"),
            Err(err) => assert!(
                err.to_string().contains("unknown aarch64 scenario"),
                "{err}"
            ),
        }
    }

    #[test]
    fn the_serial_console_follows_the_machine() {
        assert_eq!(
            for_console(Arch::Aarch64, "console=ttyS0 panic=-1 console=tty0"),
            "console=ttyAMA0 panic=-1 console=tty0"
        );
        assert_eq!(
            for_console(Arch::X86_64, "console=ttyS0 panic=-1"),
            "console=ttyS0 panic=-1"
        );
    }
}
