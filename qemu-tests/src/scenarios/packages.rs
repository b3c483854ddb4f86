//! The package install call, seen through the recording /sbin/apk.

use std::path::Path;

use anyhow::Result;

use super::checks::*;
use super::*;

pub(super) const FAKE_APK_ARGV: &str = "/var/log/fake-apk.argv";
pub(super) const FAKE_APK_STDIN: &str = "/var/log/fake-apk.stdin";

pub(super) fn setup_fake_apk(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(
        assets,
        "alpinit-apk",
        &[FAKE_APK_ARGV, FAKE_APK_STDIN],
        vec![FileSpec::new("etc/apk/world", 0o644, "alpine-base\n")],
    )?;
    let vda = disk(
        dir,
        "vda",
        Filesystem::Ext4,
        &[
            FileSpec::new("host.apkovl.tar.gz", 0o644, ovl),
            FileSpec::new("apks/.boot_repository", 0o644, ""),
        ],
    )?;
    let mut vm = kernel_vm(assets, ImageKind::FakeApk, "")?;
    vm.virtio_disk(&vda);
    Ok(reported(assets, vm))
}

/// The flags Alpine's init passes to the package install call.
pub const APK_FLAGS: &[&str] = &[
    "add",
    "--root",
    "/sysroot",
    "--initramfs-diskless-boot",
    "--progress",
    "--no-network",
    "--clean-protected",
    "--overlay-from-stdin",
];

pub(super) fn check_fake_apk(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let (mut failures, report) = common(outcome, report);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    let Some(argv) = report.content(FAKE_APK_ARGV) else {
        failures.push(format!("{FAKE_APK_ARGV} is missing from the new root"));
        return failures;
    };
    // The call that carries the overlay list is the package install.
    let install = argv
        .split("--\n")
        .find(|call| call.lines().any(|a| a == "--overlay-from-stdin"));
    match install {
        None => failures.push(format!("no apk call with --overlay-from-stdin in {argv:?}")),
        Some(call) => {
            let args: Vec<&str> = call.lines().collect();
            for flag in APK_FLAGS {
                if !args.contains(flag) {
                    failures.push(format!("apk was not given {flag}: {args:?}"));
                }
            }
            if !args.windows(2).any(|w| w == ["--root", "/sysroot"]) {
                failures.push(format!("apk was not given `--root /sysroot`: {args:?}"));
            }
            if !args.contains(&"--repository") {
                failures.push(format!("apk was given no --repository: {args:?}"));
            }
            if !args.contains(&"alpine-base") {
                failures.push(format!("apk was not asked for alpine-base: {args:?}"));
            }
        }
    }
    match report.content(FAKE_APK_STDIN) {
        None => failures.push(format!("{FAKE_APK_STDIN} is missing from the new root")),
        Some(stdin) => {
            for member in ["etc/hostname", "sbin/init", "etc/apk/world"] {
                if !stdin.lines().any(|l| l == member) {
                    failures.push(format!("overlay list lacks {member}: {stdin:?}"));
                }
            }
        }
    }
    failures
}
