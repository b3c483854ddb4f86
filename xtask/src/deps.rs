//! `cargo xtask deps`: the host packages and the musl target the image
//! build and the QEMU scenarios need, and a cheap check of them.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::paths::MUSL_TARGET;
use crate::process::run;

/// Installed on their own first: with everything in one apt-get call, the
/// resolver can pick qemu-utils from backports and report held packages.
const QEMU_PACKAGE: &str = "qemu-system-x86";
/// `qemu-system-aarch64` for the aarch64 scenarios, in the same call.
const QEMU_ARM_PACKAGE: &str = "qemu-system-arm";
const QEMU_PACKAGES: &[&str] = &[QEMU_PACKAGE, QEMU_ARM_PACKAGE];

/// The foreign dpkg architecture whose packages (the arm64 kernel,
/// busybox-static:arm64) are fetched with `apt-get download`, never installed.
const FOREIGN_ARCH: &str = "arm64";
/// The aarch64 init and test programs are cross-built for this target.
const AARCH64_MUSL_TARGET: &str = "aarch64-unknown-linux-musl";

/// (Debian package, a command or file it provides)
const PACKAGES: &[(&str, &str)] = &[
    ("busybox-static", "/bin/busybox"),
    ("ca-certificates", "/etc/ssl/certs/ca-certificates.crt"),
    ("cpio", "cpio"),
    ("xorriso", "xorriso"),
    ("isolinux", "/usr/lib/ISOLINUX/isolinux.bin"),
    (
        "syslinux-common",
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
    ),
    ("e2fsprogs", "mkfs.ext4"),
    ("dosfstools", "mkfs.vfat"),
    ("mtools", "mcopy"),
    ("kmod", "depmod"),
    ("fdisk", "sfdisk"),
    ("xz-utils", "xz"),
    ("musl-tools", "musl-gcc"),
    // The C and assembly of ring in the aarch64 cross build (`cross.rs`).
    (crate::cross::CROSS_GCC_PACKAGE, crate::cross::CROSS_CC),
    // Its C library headers: a recommendation of the compiler, which
    // `--no-install-recommends` leaves out (ring's `stdint.h` then fails).
    (
        "libc6-dev-arm64-cross",
        "/usr/aarch64-linux-gnu/include/stdint.h",
    ),
    ("pxelinux", "/usr/lib/PXELINUX/pxelinux.0"),
    ("openssl", "openssl"),
    // Boot media of other file systems (QEMU btrfs-xfs) and the prober's
    // blkid comparisons in the unit tests, which skip what is missing.
    ("btrfs-progs", "mkfs.btrfs"),
    ("xfsprogs", "mkfs.xfs"),
    ("exfatprogs", "mkfs.exfat"),
    ("squashfs-tools", "mksquashfs"),
    // `wg` for the wireguard feature (QEMU wireguard-tunnel).
    ("wireguard-tools", "wg"),
    // The NBD server of QEMU nbd-root.
    ("qemu-utils", "qemu-nbd"),
    ("f2fs-tools", "mkfs.f2fs"),
    ("ntfs-3g", "mkntfs"),
    ("cryptsetup-bin", "cryptsetup"),
    // QEMU luks-oracle compares our dm-crypt tables with dmsetup's view of cryptsetup's.
    ("dmsetup", "dmsetup"),
    // The image features lvm and raid (Debian's tools and their libraries)
    // and the QEMU LVM and RAID roots' disk layouts.
    ("lvm2", "lvm"),
    ("mdadm", "mdadm"),
    // Alpine's real mkinitfs (QEMU alpine-mkinitfs-*): lddtree and scanelf,
    // and the ELF parser lddtree runs on with Debian's python3.
    ("pax-utils", "scanelf"),
    (
        "python3-pyelftools",
        "/usr/lib/python3/dist-packages/elftools",
    ),
    // Alpine's nlplug-findfs, built for `bench vs-alpine` (xtask/src/alpine_init.rs).
    ("make", "make"),
    ("pkg-config", "pkg-config"),
    ("libkmod-dev", "/usr/include/libkmod.h"),
    ("libblkid-dev", "/usr/include/blkid/blkid.h"),
    ("libcryptsetup-dev", "/usr/include/libcryptsetup.h"),
    // The man pages' rendering test (xtask/tests/man.rs).
    ("man-db", "man"),
    ("groff-base", "groff"),
];

fn have_command(name: &str) -> bool {
    if name.starts_with('/') {
        return Path::new(name).exists();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(Into::into))
        .any(|dir| dir.join(name).is_file())
}

fn have_musl_target() -> bool {
    have_target(MUSL_TARGET)
}

fn have_target(triple: &str) -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == triple)
        })
        // Without rustup, let cargo report a missing target itself.
        .unwrap_or(true)
}

fn have_foreign_arch() -> bool {
    Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == FOREIGN_ARCH)
        })
        // Without dpkg there is no apt-get download either; apt says so.
        .unwrap_or(true)
}

/// Packages whose marker command or file is missing.
pub fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !have_command(alpinit_qemu_tests::qemu::QEMU) {
        missing.push(QEMU_PACKAGE);
    }
    if !have_command(alpinit_qemu_tests::qemu::Arch::Aarch64.qemu()) {
        missing.push(QEMU_ARM_PACKAGE);
    }
    missing.extend(
        PACKAGES
            .iter()
            .filter(|(_, probe)| !have_command(probe))
            .map(|(pkg, _)| *pkg),
    );
    missing
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn install_commands(missing: &[&str]) -> Vec<Vec<String>> {
    let mut cmds = vec![vec!["apt-get".to_string(), "update".to_string()]];
    let install = |pkgs: &[&str]| {
        let mut cmd: Vec<String> = ["apt-get", "install", "-y", "--no-install-recommends"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        cmd.extend(pkgs.iter().map(|s| s.to_string()));
        cmd
    };
    let qemu: Vec<&str> = QEMU_PACKAGES
        .iter()
        .copied()
        .filter(|p| missing.contains(p))
        .collect();
    if !qemu.is_empty() {
        cmds.push(install(&qemu));
    }
    let rest: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|p| !QEMU_PACKAGES.contains(p))
        .collect();
    if !rest.is_empty() {
        cmds.push(install(&rest));
    }
    cmds
}

/// What the host looks like and how commands are run on it: the seam the
/// install decision is tested through (the tests never run apt-get).
pub trait Host {
    fn missing_packages(&self) -> Vec<&'static str>;
    fn has_musl_target(&self) -> bool;
    /// `aarch64-unknown-linux-musl` is installed (rustup).
    fn has_aarch64_target(&self) -> bool;
    /// dpkg knows the arm64 architecture (apt can download its packages).
    fn has_foreign_arch(&self) -> bool;
    fn is_root(&self) -> bool;
    fn has_apt_get(&self) -> bool;
    fn run(&mut self, cmd: &[String]) -> Result<()>;
    fn say(&mut self, line: &str);
}

/// This machine.
struct RealHost;

impl Host for RealHost {
    fn missing_packages(&self) -> Vec<&'static str> {
        missing_packages()
    }
    fn has_musl_target(&self) -> bool {
        have_musl_target()
    }
    fn has_aarch64_target(&self) -> bool {
        have_target(AARCH64_MUSL_TARGET)
    }
    fn has_foreign_arch(&self) -> bool {
        have_foreign_arch()
    }
    fn is_root(&self) -> bool {
        is_root()
    }
    fn has_apt_get(&self) -> bool {
        have_command("apt-get")
    }
    fn run(&mut self, cmd: &[String]) -> Result<()> {
        let mut command = Command::new(&cmd[0]);
        command
            .args(&cmd[1..])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command)
    }
    fn say(&mut self, line: &str) {
        println!("{line}");
    }
}

/// What [`ensure`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    /// Nothing was missing.
    Present,
    /// Something was missing and is installed now.
    Installed,
}

/// The commands that install what is missing: apt-get (needs root) and
/// rustup (does not).
fn plan(missing: &[&str], has_musl: bool) -> Vec<Vec<String>> {
    let mut cmds = if missing.is_empty() {
        Vec::new()
    } else {
        install_commands(missing)
    };
    if !has_musl {
        cmds.push(
            ["rustup", "target", "add", MUSL_TARGET]
                .map(String::from)
                .to_vec(),
        );
    }
    cmds
}

/// Installs whatever is missing. As root every command runs; otherwise the
/// rustup step runs (it needs no root), the apt-get commands are printed
/// with `sudo` and this fails saying so. What is still missing afterwards
/// fails by name, so a package that installed but did not provide its
/// marker is not mistaken for success.
pub fn ensure(host: &mut dyn Host) -> Result<Ensured> {
    let missing = host.missing_packages();
    let foreign = !host.has_foreign_arch();
    let mut cmds = Vec::new();
    if foreign {
        // Before `apt-get update`, so the arm64 lists are fetched with it.
        cmds.push(
            ["dpkg", "--add-architecture", FOREIGN_ARCH]
                .map(String::from)
                .to_vec(),
        );
        if missing.is_empty() {
            cmds.push(["apt-get", "update"].map(String::from).to_vec());
        }
    }
    cmds.extend(plan(&missing, host.has_musl_target()));
    if !host.has_aarch64_target() {
        cmds.push(
            ["rustup", "target", "add", AARCH64_MUSL_TARGET]
                .map(String::from)
                .to_vec(),
        );
    }
    if cmds.is_empty() {
        return Ok(Ensured::Present);
    }
    let needs_apt = !missing.is_empty() || foreign;
    if needs_apt && !host.has_apt_get() {
        bail!(
            "missing host packages: {} (Debian package names), and this host has no apt-get: \
             install their equivalents, then try again",
            missing.join(" ")
        );
    }
    let root = host.is_root();
    if needs_apt && !root {
        host.say(&format!(
            "missing host packages: {}; not root, so run:",
            missing.join(" ")
        ));
    }
    for cmd in &cmds {
        if (cmd[0] == "apt-get" || cmd[0] == "dpkg") && !root {
            host.say(&format!("sudo {}", cmd.join(" ")));
            continue;
        }
        host.say(&format!("+ {}", cmd.join(" ")));
        host.run(cmd)?;
    }
    if needs_apt && !root {
        bail!("not root: run the apt-get commands above as root, then try again");
    }
    let still = host.missing_packages();
    if !still.is_empty() {
        bail!(
            "still missing after installing: {} (their marker files are absent)",
            still.join(" ")
        );
    }
    if !host.has_musl_target() {
        bail!("the {MUSL_TARGET} target is still missing after `rustup target add`");
    }
    if !host.has_aarch64_target() {
        bail!("the {AARCH64_MUSL_TARGET} target is still missing after `rustup target add`");
    }
    if !host.has_foreign_arch() {
        bail!("dpkg still lacks the {FOREIGN_ARCH} architecture after `dpkg --add-architecture`");
    }
    Ok(Ensured::Installed)
}

/// What `cargo xtask run` and `cargo xtask test` do first: install what is
/// missing (the same steps as `cargo xtask deps`).
pub fn ensure_host() -> Result<()> {
    if ensure(&mut RealHost)? == Ensured::Installed {
        nightly_size_build();
    }
    Ok(())
}

/// `cargo xtask deps`: install what is missing, then the optional nightly
/// pieces of the size build.
pub fn install() -> Result<()> {
    if ensure(&mut RealHost)? == Ensured::Present {
        println!("all dependencies are present");
    }
    nightly_size_build();
    Ok(())
}

/// Optional: where a nightly toolchain is installed, its rust-src and musl
/// target let the image builder rebuild std for size (see `build::init`).
/// Failing here only means the stable, larger init is built.
fn nightly_size_build() {
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_nightly {
        return;
    }
    for args in [
        ["component", "add", "rust-src", "--toolchain", "nightly"],
        ["target", "add", MUSL_TARGET, "--toolchain", "nightly"],
    ] {
        println!("+ rustup {}", args.join(" "));
        match Command::new("rustup").args(args).status() {
            Ok(s) if s.success() => {}
            _ => println!(
                "note: rustup {} failed; the init is built with stable",
                args.join(" ")
            ),
        }
    }
}

/// The cheap check `test` and `run` do first.
pub fn check() -> Result<()> {
    let missing = missing_packages();
    if !missing.is_empty() {
        bail!(
            "missing host packages: {} (run `cargo xtask deps`)",
            missing.join(" ")
        );
    }
    if !have_musl_target() {
        bail!("the {MUSL_TARGET} target is missing (run `cargo xtask deps`)");
    }
    Ok(())
}

#[cfg(test)]
#[path = "deps_tests.rs"]
mod tests;
