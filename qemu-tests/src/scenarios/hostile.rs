//! Encrypted and hostile overlays (issue 4): a password typed on the serial
//! console, and overlays the init must reject whole (traversal, symlink
//! escape, truncation, a gzip bomb) or accept with device nodes skipped.
//!
//! After a rejection the harness types `exit` in the recovery shell and the
//! boot goes on without the overlay; the `FakeApkInit` image's recording
//! `/sbin/apk` then gives the new root report-init and the inspect list
//! [`REJECTED_INSPECT`], so the report shows what (nothing) was applied.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::checks::*;
use super::*;
use crate::ustar::{self, Kind, Member};

/// The inspect list the `FakeApkInit` image installs: every path a
/// rejected overlay of these scenarios would have created, in the new
/// root or (through `/dev`, which is moved into it) outside the sysroot.
pub const REJECTED_INSPECT: &[&str] = &[
    "/etc/hostile-marker",
    "/etc/passwd",
    "/evil",
    "/etc/evil-null",
    "/dev/escaped-traversal",
    "/dev/escaped-symlink",
    "/etc/truncated-marker",
    "/etc/bomb-marker",
    "/var/bomb",
    "/etc/enospc-marker",
    "/var/many",
    "/sbin/init",
    FAKE_APK_ARGV,
];

/// What each rejected overlay would have created (all in the list above).
const HOSTILE_MISSING: &[&str] = &[
    "/etc/hostile-marker",
    "/etc/passwd",
    "/evil",
    "/etc/evil-null",
    "/dev/escaped-traversal",
    "/dev/escaped-symlink",
];
const SYMLINK_MISSING: &[&str] = &[
    "/etc/hostile-marker",
    "/etc/passwd",
    "/evil",
    "/etc/evil-null",
    "/dev/escaped-symlink",
];
const TRUNCATED_MISSING: &[&str] = &["/etc/truncated-marker"];
const BOMB_MISSING: &[&str] = &["/etc/bomb-marker", "/var/bomb"];
const ENOSPC_MISSING: &[&str] = &["/etc/enospc-marker", "/var/many"];

const RIGHT_PASSWORD: &str = "alpinit-Secret-42";
const WRONG_PASSWORD: &str = "not-the-password";
const PROMPT: &str = "Enter password for ";
const WRONG: &str = "Wrong password, try again.";
pub(super) const SHELL_PROMPT: &str = "~ # ";
pub(super) const REJECTED: &str =
    "was rejected; nothing of it was applied. Type exit to boot without it.";
pub(super) const RECOVERY: &str = "Launching initramfs emergency recovery shell.";

fn typing_timeout(assets: &Assets) -> Duration {
    assets.accel.boot_timeout() + Duration::from_secs(90)
}

pub(super) fn interactive(assets: &Assets, vm: Vm) -> Setup {
    Setup {
        vm,
        stop: stops_on_panic(),
        timeout: typing_timeout(assets),
    }
}

// ---------------------------------------------------------------- encrypted

pub(super) fn setup_encrypted_usb(assets: &Assets, dir: &Path) -> Result<Setup> {
    let plain = overlay(
        assets,
        "alpinit-encrypted",
        &["/etc/encrypted-marker"],
        vec![FileSpec::new("etc/encrypted-marker", 0o644, "decrypted\n")],
    )?;
    let encrypted = openssl_encrypt(dir, &plain, RIGHT_PASSWORD)?;
    let usb = disk(
        dir,
        "usb",
        Filesystem::Fat32,
        &[FileSpec::new(
            "host.apkovl.tar.gz.aes-256-cbc",
            0o644,
            encrypted,
        )],
    )?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.usb_stick(&usb)
        .type_after(PROMPT, &format!("{WRONG_PASSWORD}\n"))
        .type_after(PROMPT, &format!("{RIGHT_PASSWORD}\n"));
    Ok(interactive(assets, vm))
}

/// What `lbu commit -e` runs (OpenSSL >= 1.1 defaults, spelled out).
fn openssl_encrypt(dir: &Path, plain: &[u8], password: &str) -> Result<Vec<u8>> {
    let input = dir.join("plain.apkovl.tar.gz");
    let output = dir.join("host.apkovl.tar.gz.aes-256-cbc");
    fs::write(&input, plain).with_context(|| format!("writing {}", input.display()))?;
    let out = Command::new("openssl")
        .args(["enc", "-aes-256-cbc", "-salt", "-md", "sha256", "-pass"])
        .arg(format!("pass:{password}"))
        .arg("-in")
        .arg(&input)
        .arg("-out")
        .arg(&output)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (install the openssl package)")?;
    // stderr is only OpenSSL's nag about the legacy key derivation that
    // `lbu commit -e` relies on, unless the command failed.
    if !out.status.success() {
        bail!(
            "openssl enc failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::read(&output).with_context(|| format!("reading {}", output.display()))
}

pub(super) fn check_encrypted_usb(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let log = &outcome.log;
    let mut failures = Vec::new();
    let prompts = log.matches(PROMPT).count();
    if prompts != 2 {
        failures.push(format!("{prompts} password prompts on the console, want 2"));
    }
    if !log.contains(".apkovl.tar.gz.aes-256-cbc: ") {
        failures.push("the password prompt does not name the encrypted overlay".to_string());
    }
    let wrong = log.matches(WRONG).count();
    if wrong != 1 {
        failures.push(format!("{WRONG:?} printed {wrong} times, want once"));
    }
    if !log.contains('\u{7}') {
        failures.push("no bell before the password prompt".to_string());
    }
    for pw in [RIGHT_PASSWORD, WRONG_PASSWORD] {
        if log.contains(pw) {
            failures.push(format!("the password {pw:?} was echoed on the console"));
        }
    }
    if log.contains(RECOVERY) {
        failures.push("the recovery shell was launched".to_string());
    }
    let (more, report) = common(outcome, report);
    failures.extend(more);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, "alpinit-encrypted");
    if report.content("/etc/encrypted-marker") != Some("decrypted\n") {
        failures.push(format!(
            "/etc/encrypted-marker is {:?}, want \"decrypted\\n\"",
            report.content("/etc/encrypted-marker")
        ));
    }
    failures
}

// ---------------------------------------------------------------- rejected

/// An overlay on a virtio disk booted with the `FakeApkInit` image; after
/// the rejection the harness leaves the recovery shell with `exit`.
fn rejected_setup(assets: &Assets, dir: &Path, ovl: Vec<u8>, cmdline: &str) -> Result<Setup> {
    let vda = disk(dir, "vda", Filesystem::Ext4, &[top_apkovl(ovl)])?;
    // No panic=: with it the init gives up instead of offering the shell
    // (see hostile-overlay-panic).
    let append = format!("console=ttyS0 {cmdline}");
    let mut vm = kernel_vm_with(assets, ImageKind::FakeApkInit, &append)?;
    vm.virtio_disk(&vda)
        .type_after(REJECTED, "")
        .type_after(SHELL_PROMPT, "exit\n");
    Ok(interactive(assets, vm))
}

fn hostile_members(with_traversal: bool, hostname: &str) -> Vec<Member> {
    let mut members = vec![
        Member::new("etc/", 0o755, Kind::Dir),
        Member::file("etc/hostname", 0o644, format!("{hostname}\n")),
        Member::file("etc/hostile-marker", 0o644, "applied\n"),
    ];
    if with_traversal {
        members.push(Member::file("../dev/escaped-traversal", 0o644, "escaped\n"));
    }
    members.extend([
        Member::new("evil", 0o777, Kind::Symlink("/".into())),
        Member::file("evil/etc/passwd", 0o644, "root::0:0::/root:/bin/sh\n"),
        Member::file("evil/dev/escaped-symlink", 0o644, "escaped\n"),
        Member::new(
            "etc/evil-null",
            0o666,
            Kind::CharDevice { major: 1, minor: 3 },
        ),
    ]);
    members
}

pub(super) fn setup_hostile_overlay(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = ustar::tar_gz(&hostile_members(true, "alpinit-hostile"))?;
    rejected_setup(assets, dir, ovl, "")
}

pub(super) fn check_hostile_overlay(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    check_rejected(
        outcome,
        report,
        "alpinit-hostile",
        &["'..'", "escaped-traversal"],
        HOSTILE_MISSING,
    )
}

/// With `panic=` the same rejection ends the boot: the init exits, the
/// kernel panics and (`-no-reboot`) QEMU quits.
pub(super) fn setup_hostile_panic(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = ustar::tar_gz(&hostile_members(true, "alpinit-hostile"))?;
    let vda = disk(dir, "vda", Filesystem::Ext4, &[top_apkovl(ovl)])?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&vda);
    Ok(Setup {
        vm,
        stop: None,
        timeout: assets.accel.boot_timeout(),
    })
}

pub(super) fn check_hostile_panic(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let log = &outcome.log;
    let mut failures = Vec::new();
    match rejection_reason(log) {
        Some(reason) if reason.contains("'..'") => {}
        other => failures.push(format!(
            "the console does not show the overlay rejected for its '..' member: {other:?}"
        )),
    }
    if log.contains(RECOVERY) {
        failures.push("the recovery shell was launched although panic= was given".into());
    }
    if !log.contains("Kernel panic") {
        failures.push("no kernel panic although panic= was given".into());
    }
    if outcome.status.is_none() {
        failures.push("QEMU did not exit (the kernel did not reboot after the panic)".into());
    }
    if report.is_some() {
        failures.push("a new root booted after the rejection".into());
    }
    failures
}

pub(super) fn setup_hostile_symlink(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = ustar::tar_gz(&hostile_members(false, "alpinit-symlink"))?;
    rejected_setup(assets, dir, ovl, "")
}

pub(super) fn check_hostile_symlink(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    check_rejected(
        outcome,
        report,
        "alpinit-symlink",
        &["through the symlink", "evil"],
        SYMLINK_MISSING,
    )
}

pub(super) fn setup_truncated(assets: &Assets, dir: &Path) -> Result<Setup> {
    let whole = overlay(
        assets,
        "alpinit-truncated",
        &[],
        vec![FileSpec::new("etc/truncated-marker", 0o644, "applied\n")],
    )?;
    let half = whole[..whole.len() / 2].to_vec();
    rejected_setup(assets, dir, half, "")
}

pub(super) fn check_truncated(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = check_rejected(outcome, report, "alpinit-truncated", &[], TRUNCATED_MISSING);
    if let Some(reason) = rejection_reason(&outcome.log) {
        let lower = reason.to_lowercase();
        if !["truncated", "corrupt", "unexpected end"]
            .iter()
            .any(|w| lower.contains(w))
        {
            failures.push(format!(
                "the reason {reason:?} names neither truncation nor corrupt input"
            ));
        }
    }
    failures
}

/// Inflates to this much; the sysroot gets 16 MiB.
const BOMB_BYTES: u64 = 200 << 20;

pub(super) fn setup_gzip_bomb(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = ustar::tar_gz(&[
        Member::new("etc/", 0o755, Kind::Dir),
        Member::file("etc/hostname", 0o644, "alpinit-bomb\n"),
        Member::file("etc/bomb-marker", 0o644, "applied\n"),
        Member::new("var/", 0o755, Kind::Dir),
        Member::new("var/bomb/", 0o755, Kind::Dir),
        Member::new("var/bomb/zeros", 0o644, Kind::Zeros(BOMB_BYTES)),
    ])?;
    fs::write(dir.join("bomb.size"), format!("{} bytes\n", ovl.len()))
        .context("writing bomb.size")?;
    rejected_setup(assets, dir, ovl, "rootflags=size=16M")
}

pub(super) fn check_gzip_bomb(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = check_rejected(
        outcome,
        report,
        "alpinit-bomb",
        &["max_total_bytes"],
        BOMB_MISSING,
    );
    if let Some(report) = report {
        match report.mount_at("/") {
            Some(root) if root.options.iter().any(|o| o == "size=16384k") => {}
            other => failures.push(format!(
                "the new root is not the 16 MiB tmpfs rootflags= asked for: {other:?}"
            )),
        }
    }
    failures
}

/// security.md C7: the tmpfs runs out of inodes in the middle of the apply
/// pass (the byte budget cannot see that coming): the error names the
/// member, what was written is rolled back, the boot goes on without it.
pub(super) fn setup_enospc_inodes(assets: &Assets, dir: &Path) -> Result<Setup> {
    let mut members = vec![
        Member::new("etc/", 0o755, Kind::Dir),
        Member::file("etc/hostname", 0o644, "alpinit-enospc\n"),
        Member::file("etc/enospc-marker", 0o644, "applied\n"),
        Member::new("var/", 0o755, Kind::Dir),
        Member::new("var/many/", 0o755, Kind::Dir),
    ];
    let names: Vec<String> = (0..120).map(|i| format!("var/many/f{i:03}")).collect();
    for name in &names {
        members.push(Member::file(name, 0o644, "x\n"));
    }
    let ovl = ustar::tar_gz(&members)?;
    rejected_setup(assets, dir, ovl, "rootflags=nr_inodes=64")
}

pub(super) fn check_enospc_inodes(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    check_rejected(
        outcome,
        report,
        "alpinit-enospc",
        &["no space left", "var/many/f"],
        ENOSPC_MISSING,
    )
}

/// The text after `failed. ` on the line that ends the
/// ` * Loading user settings from ...: ` progress line.
pub fn rejection_reason(log: &str) -> Option<String> {
    const MARK: &str = " * Loading user settings from ";
    let start = log.rfind(MARK)?;
    let rest = &log[start + MARK.len()..];
    let failed = rest.find("failed.")?;
    let line = rest[failed + "failed.".len()..].lines().next()?;
    Some(line.trim().to_string())
}

pub(super) fn check_rejected(
    outcome: &Outcome,
    report: Option<&Report>,
    hostname: &str,
    reason_has: &[&str],
    missing: &[&str],
) -> Vec<String> {
    let log = &outcome.log;
    let mut failures = Vec::new();
    match rejection_reason(log) {
        None => failures.push(
            "no ` * Loading user settings from ...: failed. <reason>` on the console".to_string(),
        ),
        Some(reason) => {
            if reason.is_empty() {
                failures.push("the rejection gives no reason".to_string());
            }
            for want in reason_has {
                if !reason.contains(want) {
                    failures.push(format!("the reason {reason:?} does not name {want:?}"));
                }
            }
        }
    }
    for line in [RECOVERY, REJECTED] {
        if !log.contains(line) {
            failures.push(format!("no {line:?} on the console"));
        }
    }
    let (more, report) = common(outcome, report);
    failures.extend(more);
    if failures.iter().any(|f| f.starts_with("no report")) {
        failures.push("the boot did not continue after `exit` in the recovery shell".into());
        return failures;
    }
    if report.get("hostname") == Some(hostname) {
        failures.push(format!(
            "the rejected overlay's hostname {hostname:?} was applied"
        ));
    }
    for path in missing {
        if let Some(found) = report.inspect(path) {
            failures.push(format!(
                "{path} exists in the new root ({} mode {:o}): part of the rejected overlay was applied",
                found.kind, found.mode
            ));
        }
        if !report
            .all("inspect")
            .iter()
            .any(|l| l.starts_with(&format!("{path} ")))
        {
            failures.push(format!("the report does not inspect {path}"));
        }
    }
    if report.inspect("/sbin/init").is_none() {
        failures.push("no /sbin/init in the new root: fake-apk did not install one".into());
    }
    for line in report.all("media") {
        if line.contains("escaped") || line.contains("evil") {
            failures.push(format!("the boot media changed: {line}"));
        }
    }
    failures
}

// ---------------------------------------------------------------- devices

pub(super) fn setup_device_nodes(assets: &Assets, dir: &Path) -> Result<Setup> {
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    let inspect = ["/etc/device-marker", "/etc/evil-null", "/etc/evil-fifo"].join("\n") + "\n";
    let ovl = ustar::tar_gz(&[
        Member::new("etc/", 0o755, Kind::Dir),
        Member::file("etc/hostname", 0o644, "alpinit-devices\n"),
        Member::new("etc/alpinit-test/", 0o755, Kind::Dir),
        Member::file("etc/alpinit-test/inspect", 0o644, inspect),
        Member::new(
            "etc/evil-null",
            0o666,
            Kind::CharDevice { major: 1, minor: 3 },
        ),
        Member::new("etc/evil-fifo", 0o600, Kind::Fifo),
        Member::file("etc/device-marker", 0o644, "applied\n"),
        Member::new("sbin/", 0o755, Kind::Dir),
        Member::file("sbin/init", 0o755, init),
    ])?;
    let vda = disk(dir, "vda", Filesystem::Ext4, &[top_apkovl(ovl)])?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&vda);
    Ok(reported(assets, vm))
}

pub(super) fn check_device_nodes(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let log = &outcome.log;
    let (mut failures, report) = common(outcome, report);
    for warning in [
        "skipped character device etc/evil-null",
        "skipped FIFO etc/evil-fifo",
    ] {
        if !log.contains(warning) {
            failures.push(format!("no warning {warning:?} on the console"));
        }
    }
    if log.contains(RECOVERY) {
        failures.push("the recovery shell was launched".to_string());
    }
    if let Some(reason) = rejection_reason(log) {
        failures.push(format!("the overlay was rejected: {reason}"));
    }
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, "alpinit-devices");
    if report.content("/etc/device-marker") != Some("applied\n") {
        failures.push("/etc/device-marker was not applied".to_string());
    }
    for path in ["/etc/evil-null", "/etc/evil-fifo"] {
        if let Some(found) = report.inspect(path) {
            failures.push(format!("{path} was created as a {}", found.kind));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_reasons_are_read_from_the_console() {
        let cases = [
            (
                " * Loading user settings from /media/vda1/h.apkovl.tar.gz: failed. member ../x: the name contains a '..' component\r\nLaunching",
                Some("member ../x: the name contains a '..' component"),
            ),
            (
                " * Loading user settings from /m/h: [    4.1] sd 0:0: attached\nfailed. corrupt gzip data\n",
                Some("corrupt gzip data"),
            ),
            (" * Loading user settings from /m/h: ok.\n", None),
            ("nothing here\n", None),
        ];
        for (log, want) in cases {
            assert_eq!(rejection_reason(log).as_deref(), want, "{log:?}");
        }
    }

    #[test]
    fn the_inspect_list_covers_every_path_a_check_wants_missing() {
        for list in [
            HOSTILE_MISSING,
            SYMLINK_MISSING,
            TRUNCATED_MISSING,
            BOMB_MISSING,
        ] {
            for path in list {
                assert!(REJECTED_INSPECT.contains(path), "{path}");
            }
        }
    }

    #[test]
    fn hostile_members_put_the_traversal_first_when_asked() {
        let with = hostile_members(true, "h");
        let names: Vec<&str> = with.iter().map(|m| m.name.as_str()).collect();
        let traversal = names.iter().position(|n| n.starts_with("../"));
        let symlink = names.iter().position(|n| *n == "evil");
        assert!(traversal.is_some() && traversal < symlink, "{names:?}");
        let without = hostile_members(false, "h");
        assert!(without.iter().all(|m| !m.name.contains("..")));
        assert!(without
            .iter()
            .any(|m| matches!(m.kind, Kind::CharDevice { .. })));
    }
}
