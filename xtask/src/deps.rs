//! `cargo xtask deps`: the host packages and the musl target the image
//! build and the QEMU scenarios need, and a cheap check of them.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::paths::MUSL_TARGET;
use crate::process::run;

/// Installed on its own first: with everything in one apt-get call, the
/// resolver can pick qemu-utils from backports and report held packages.
const QEMU_PACKAGE: &str = "qemu-system-x86";

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
    ("pxelinux", "/usr/lib/PXELINUX/pxelinux.0"),
    ("openssl", "openssl"),
    // Boot media of other file systems (QEMU btrfs-xfs) and the prober's
    // blkid comparisons in the unit tests, which skip what is missing.
    ("btrfs-progs", "mkfs.btrfs"),
    ("xfsprogs", "mkfs.xfs"),
    ("exfatprogs", "mkfs.exfat"),
    ("squashfs-tools", "mksquashfs"),
    ("f2fs-tools", "mkfs.f2fs"),
    ("ntfs-3g", "mkntfs"),
    ("cryptsetup-bin", "cryptsetup"),
    // Alpine's real mkinitfs (QEMU alpine-mkinitfs-*): lddtree and scanelf,
    // and the ELF parser lddtree runs on with Debian's python3.
    ("pax-utils", "scanelf"),
    (
        "python3-pyelftools",
        "/usr/lib/python3/dist-packages/elftools",
    ),
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
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == MUSL_TARGET)
        })
        // Without rustup, let cargo report a missing target itself.
        .unwrap_or(true)
}

/// Packages whose marker command or file is missing.
pub fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !have_command(alpinit_qemu_tests::qemu::QEMU) {
        missing.push(QEMU_PACKAGE);
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
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
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
    if missing.contains(&QEMU_PACKAGE) {
        cmds.push(install(&[QEMU_PACKAGE]));
    }
    let rest: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|p| *p != QEMU_PACKAGE)
        .collect();
    if !rest.is_empty() {
        cmds.push(install(&rest));
    }
    cmds
}

/// Installs what is missing (as root) or prints the commands.
pub fn install() -> Result<()> {
    let missing = missing_packages();
    let mut cmds = if missing.is_empty() {
        Vec::new()
    } else {
        install_commands(&missing)
    };
    if !have_musl_target() {
        cmds.push(vec![
            "rustup".into(),
            "target".into(),
            "add".into(),
            MUSL_TARGET.into(),
        ]);
    }
    if cmds.is_empty() {
        println!("all dependencies are present");
        nightly_size_build();
        return Ok(());
    }
    let root = is_root();
    for cmd in &cmds {
        let needs_root = cmd[0] == "apt-get";
        if needs_root && !root {
            println!("sudo {}", cmd.join(" "));
            continue;
        }
        println!("+ {}", cmd.join(" "));
        let mut command = Command::new(&cmd[0]);
        command
            .args(&cmd[1..])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command)?;
    }
    if !root && cmds.iter().any(|c| c[0] == "apt-get") {
        bail!("not root: run the commands above, then try again");
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
mod tests {
    use super::*;

    #[test]
    fn qemu_is_installed_in_its_own_call() {
        let cmds = install_commands(&["qemu-system-x86", "cpio", "mtools"]);
        assert_eq!(cmds[0], ["apt-get", "update"]);
        assert_eq!(cmds[1].last().map(String::as_str), Some("qemu-system-x86"));
        assert!(cmds[2].ends_with(&["cpio".to_string(), "mtools".to_string()]));
        assert!(!cmds.iter().flatten().any(|a| a == "qemu-utils"));
        let only_rest = install_commands(&["cpio"]);
        assert_eq!(only_rest.len(), 2);
    }
}
