//! The QEMU scenarios: each builds its media, boots the real image and
//! asserts on the report `report-init` prints after switch_root and on the
//! console lines.

mod aarch64;
mod alpine_mkinitfs;
mod aoe;
mod assemble;
mod boot_media;
mod catalog;
mod checks;
mod consoles;
mod explain;
mod hostile;
mod luks;
mod luks_roots;
mod nbd;
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
mod wireguard;

use assemble::*;
use boot_media::*;
pub use catalog::all;
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
pub use wireguard::WIREGUARD_CONF;

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
    /// and mdadm with their libraries), `aoe` (the module) and `wireguard`
    /// (Debian's `wg`, and [`WIREGUARD_CONF`] as Alpine's
    /// `/etc/wireguard/initrd.conf`).
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
