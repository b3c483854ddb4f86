//! Consoles: a headless VM booted with `console=ttyS0` gets Alpine's getty
//! line for ttyS0 in the new root's inittab, and ttyS0 in its securetty.

use std::path::Path;

use anyhow::Result;

use super::checks::*;
use super::*;

pub(super) const HOST_SERIAL: &str = "alpinit-serial";

pub(super) fn setup_serial_console(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(
        assets,
        HOST_SERIAL,
        &["/etc/inittab", "/etc/securetty"],
        vec![FileSpec::new("etc/securetty", 0o644, "console\ntty1\n")],
    )?;
    let img = disk(
        dir,
        "vda",
        Filesystem::Ext4,
        &[FileSpec::new("host.apkovl.tar.gz", 0o644, ovl)],
    )?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&img);
    Ok(reported(assets, vm))
}

pub(super) fn check_serial_console(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let (mut failures, report) = common(outcome, report);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, HOST_SERIAL);
    let getty =
        "# enable login on alternative console\nttyS0::respawn:/sbin/getty -L 0 ttyS0 vt100\n";
    match report.content("/etc/inittab") {
        Some(text) if text == getty => {}
        other => failures.push(format!("/etc/inittab is {other:?}, want {getty:?}")),
    }
    match report.content("/etc/securetty") {
        Some("console\ntty1\nttyS0\n") => {}
        other => failures.push(format!("/etc/securetty is {other:?}, want ttyS0 added")),
    }
    failures
}
