//! Rollback to the last good overlay and signed overlays (issue 14).
//!
//! Rollback: a damaged `host.apkovl.tar.gz` beside `lbu commit`'s backups
//! (`host.YYYYmmddHHMMSS.tar.gz`) boots the newest good backup and names
//! it; all backups bad is today's rejection; a wrong password never falls
//! back. Signed: the `Signed` image carries one public key in
//! `/etc/alpinit/keys`; its private half is made with `openssl` when the
//! image is built ([`signed_image_key`]) and signs the overlays here.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::checks::*;
use super::hostile::{rejection_reason, REJECTED, SHELL_PROMPT};
use super::network::{failed_progress, serve, url, with_server};
use super::*;
use crate::netboot::qemu_mac;

const NEWER: &str = "host.20261130120000.tar.gz";
const OLDER: &str = "host.20261129120000.tar.gz";
const NEWER_DATE: &str = "2026-11-30 12:00:00 UTC";
const OLDER_DATE: &str = "2026-11-29 12:00:00 UTC";
const RECORD: &str = "/var/log/alpinit-overlay";
/// In `REJECTED_INSPECT`, so the `FakeApkInit` report shows it absent.
const MARKER: &str = "/etc/truncated-marker";
const HOST_NEWER: &str = "alpinit-backup-newer";
const HOST_OLDER: &str = "alpinit-backup-older";
const HOST_DAMAGED: &str = "alpinit-damaged";

/// Where the image's key pair lives, under the images directory.
const KEY_PRIVATE: &str = "overlay-signing-key.pem";
const KEY_PUBLIC: &str = "overlay-signing-key.pub.pem";
/// Where the `Signed` image carries the public key.
pub const SIGNED_KEY_IN_IMAGE: &str = "/etc/alpinit/keys/test.pem";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "rollback-newer-backup",
            about: "truncated current overlay, two good backups: the newer one is applied and named",
            image: ImageKind::Standard,
            setup: setup_newer_backup,
            check: check_newer_backup,
        },
        Scenario {
            name: "rollback-all-bad",
            about: "truncated current overlay, both backups damaged: rejected as before, exit boots without it",
            image: ImageKind::FakeApkInit,
            setup: setup_all_bad,
            check: check_all_bad,
        },
        Scenario {
            name: "rollback-wrong-password",
            about: "encrypted overlay, three wrong passwords: rejected, the good backup is not used",
            image: ImageKind::FakeApkInit,
            setup: setup_wrong_password,
            check: check_wrong_password,
        },
        Scenario {
            name: "signed-http",
            about: "image with a key, RSA-signed overlay and URL.sig over HTTP: accepted",
            image: ImageKind::Signed,
            setup: setup_signed_http,
            check: check_signed_http,
        },
        Scenario {
            name: "unsigned-http",
            about: "image with a key, overlay over HTTP without URL.sig: rejected, panic=",
            image: ImageKind::Signed,
            setup: setup_unsigned_http,
            check: check_unsigned_http,
        },
        Scenario {
            name: "signed-usb-rollback",
            about: "stick: overlay signed by an unknown key, newer backup with a valid signature over a modified file, older signed backup: both rejected, the older one boots",
            image: ImageKind::Signed,
            setup: setup_signed_usb,
            check: check_signed_usb,
        },
    ]
}

/// The public key for the `Signed` image, made (with its private half)
/// by `openssl genpkey` in `images` on first use.
pub fn signed_image_key(images: &Path) -> Result<std::path::PathBuf> {
    let (private, public) = (images.join(KEY_PRIVATE), images.join(KEY_PUBLIC));
    if !private.is_file() || !public.is_file() {
        fs::create_dir_all(images).with_context(|| format!("creating {}", images.display()))?;
        openssl(&[
            "genpkey",
            "-algorithm",
            "rsa",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path_str(&private)?,
        ])?;
        openssl(&[
            "pkey",
            "-in",
            path_str(&private)?,
            "-pubout",
            "-out",
            path_str(&public)?,
        ])?;
    }
    Ok(public)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

fn openssl(args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (install the openssl package)")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// `openssl dgst -sha256 -sign KEY -out X.sig X`, as the README tells users.
fn sign(dir: &Path, key: &Path, data: &[u8], name: &str) -> Result<Vec<u8>> {
    let file = dir.join(name);
    let sig = dir.join(format!("{name}.sig"));
    fs::write(&file, data).with_context(|| format!("writing {}", file.display()))?;
    openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        path_str(key)?,
        "-out",
        path_str(&sig)?,
        path_str(&file)?,
    ])?;
    fs::read(&sig).with_context(|| format!("reading {}", sig.display()))
}

fn image_private_key(assets: &Assets) -> std::path::PathBuf {
    assets.out_dir.join("images").join(KEY_PRIVATE)
}

fn backup_overlay(assets: &Assets, hostname: &str) -> Result<Vec<u8>> {
    overlay(assets, hostname, &[RECORD, MARKER], Vec::new())
}

/// The progress line ` * MSG` ended with `ok.` (kernel messages may come
/// between the two).
fn ok_progress(log: &str, msg: &str) -> bool {
    let Some(start) = log.find(&format!(" * {msg}")) else {
        return false;
    };
    let rest = &log[start..];
    match (rest.find("ok."), rest.find("failed.")) {
        (Some(ok), Some(failed)) => ok < failed,
        (Some(_), None) => true,
        _ => false,
    }
}

fn damaged_overlay(assets: &Assets) -> Result<Vec<u8>> {
    let whole = overlay(
        assets,
        HOST_DAMAGED,
        &[RECORD],
        vec![FileSpec::new("etc/truncated-marker", 0o644, "applied\n")],
    )?;
    Ok(whole[..whole.len() / 2].to_vec())
}

// ---------------------------------------------------------------- rollback

fn setup_newer_backup(assets: &Assets, dir: &Path) -> Result<Setup> {
    let vda = disk(
        dir,
        "vda",
        Filesystem::Ext4,
        &[
            top_apkovl(damaged_overlay(assets)?),
            FileSpec::new(OLDER, 0o644, backup_overlay(assets, HOST_OLDER)?),
            FileSpec::new(NEWER, 0o644, backup_overlay(assets, HOST_NEWER)?),
        ],
    )?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "")?;
    vm.virtio_disk(&vda);
    Ok(reported(assets, vm))
}

fn check_newer_backup(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_NEWER);
        let log = &outcome.log;
        match rejection_reason(log) {
            Some(r) if r.contains("truncated") || r.contains("corrupt") => {}
            other => failures.push(format!(
                "the console does not say the current overlay is damaged: {other:?}"
            )),
        }
        let newer = format!("Loading backup /media/vda1/{NEWER} from {NEWER_DATE}: ");
        if !ok_progress(log, &newer) {
            failures.push(format!("no \" * {newer}ok.\" on the console"));
        }
        let used = format!(
            "The overlay /media/vda1/host.apkovl.tar.gz is damaged; booted its backup /media/vda1/{NEWER} from {NEWER_DATE} instead."
        );
        if !log.contains(&used) {
            failures.push(format!("no {used:?} on the console"));
        }
        if log.contains(&format!("Loading backup /media/vda1/{OLDER}")) {
            failures.push("the older backup was tried although the newer one is good".into());
        }
        if log.contains(super::hostile::RECOVERY) {
            failures.push("the recovery shell was launched".into());
        }
        let record = report.content(RECORD).unwrap_or_default();
        let applied = format!("applied /media/vda1/{NEWER} (backup from {NEWER_DATE}");
        if !record.contains("failed /media/vda1/host.apkovl.tar.gz: ") || !record.contains(&applied)
        {
            failures.push(format!(
                "{RECORD} is {record:?}, want the failure and {applied:?}"
            ));
        }
        if report.inspect(MARKER).is_some() {
            failures.push(format!(
                "{MARKER} of the damaged overlay is in the new root"
            ));
        }
    })
}

/// A rejection on a virtio disk holding FILES, booted with the `FakeApkInit`
/// image; the harness types `exit` in the recovery shell.
fn rejected(assets: &Assets, dir: &Path, files: &[FileSpec]) -> Result<Vm> {
    let vda = disk(dir, "vda", Filesystem::Ext4, files)?;
    let mut vm = kernel_vm_with(assets, ImageKind::FakeApkInit, "console=ttyS0")?;
    vm.virtio_disk(&vda);
    Ok(vm)
}

fn setup_all_bad(assets: &Assets, dir: &Path) -> Result<Setup> {
    let newer = damaged_overlay(assets)?;
    let mut vm = rejected(
        assets,
        dir,
        &[
            top_apkovl(damaged_overlay(assets)?),
            FileSpec::new(NEWER, 0o644, newer),
            FileSpec::new(OLDER, 0o644, b"not gzip at all".to_vec()),
        ],
    )?;
    vm.type_after(REJECTED, "")
        .type_after(SHELL_PROMPT, "exit\n");
    Ok(super::hostile::interactive(assets, vm))
}

fn check_all_bad(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures =
        super::hostile::check_rejected(outcome, report, HOST_DAMAGED, &[], &[MARKER]);
    for (name, date) in [(NEWER, NEWER_DATE), (OLDER, OLDER_DATE)] {
        let msg = format!("Loading backup /media/vda1/{name} from {date}: ");
        if failed_progress(&outcome.log, &msg).is_none() {
            failures.push(format!("no \" * {msg}failed.\" on the console"));
        }
    }
    failures
}

const RIGHT_PASSWORD: &str = "alpinit-Secret-42";
const PROMPT: &str = "Enter password for ";

fn setup_wrong_password(assets: &Assets, dir: &Path) -> Result<Setup> {
    let plain = overlay(
        assets,
        HOST_DAMAGED,
        &[],
        vec![FileSpec::new("etc/truncated-marker", 0o644, "applied\n")],
    )?;
    let enc = dir.join("enc");
    fs::write(&enc, &plain).context("writing the plain overlay")?;
    let encrypted = openssl(&[
        "enc",
        "-aes-256-cbc",
        "-salt",
        "-md",
        "sha256",
        "-pass",
        &format!("pass:{RIGHT_PASSWORD}"),
        "-in",
        path_str(&enc)?,
    ])?;
    let mut vm = rejected(
        assets,
        dir,
        &[
            FileSpec::new("host.apkovl.tar.gz.aes-256-cbc", 0o644, encrypted),
            FileSpec::new(NEWER, 0o644, backup_overlay(assets, HOST_NEWER)?),
        ],
    )?;
    for _ in 0..3 {
        vm.type_after(PROMPT, "wrong\n");
    }
    vm.type_after(REJECTED, "")
        .type_after(SHELL_PROMPT, "exit\n");
    Ok(super::hostile::interactive(assets, vm))
}

fn check_wrong_password(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures =
        super::hostile::check_rejected(outcome, report, HOST_NEWER, &["wrong password"], &[MARKER]);
    if outcome.log.contains("Loading backup") {
        failures.push("a backup was tried after a wrong password".into());
    }
    let prompts = outcome.log.matches(PROMPT).count();
    if prompts != 3 {
        failures.push(format!("{prompts} password prompts, want 3"));
    }
    failures
}

// ---------------------------------------------------------------- signed

const HOST_SIGNED: &str = "alpinit-signed-http";

fn http_boot(assets: &Assets, dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<Setup> {
    let server = serve(dir, files, None)?;
    let apkovl = url("http", server.port(), "host.apkovl.tar.gz");
    let mut vm = kernel_vm(
        assets,
        ImageKind::Signed,
        &format!("ip=dhcp apkovl={apkovl}"),
    )?;
    vm.user_nic("n0", &qemu_mac(0x5a));
    Ok(with_server(vm, server, assets.accel.boot_timeout()))
}

fn setup_signed_http(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_SIGNED, &[], Vec::new())?;
    let sig = sign(dir, &image_private_key(assets), &ovl, "host.apkovl.tar.gz")?;
    http_boot(
        assets,
        dir,
        &[("host.apkovl.tar.gz", ovl), ("host.apkovl.tar.gz.sig", sig)],
    )
}

fn check_signed_http(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_SIGNED);
        if !outcome.log.contains("signature http://")
            || !outcome.log.contains(" good (key test.pem)")
        {
            failures.push("no `signature URL.sig good (key test.pem)` in the log".into());
        }
    })
}

fn setup_unsigned_http(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_SIGNED, &[], Vec::new())?;
    http_boot(assets, dir, &[("host.apkovl.tar.gz", ovl)])
}

fn check_unsigned_http(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = Vec::new();
    match rejection_reason(&outcome.log) {
        Some(r)
            if r.contains("cannot download the signature")
                && r.contains("host.apkovl.tar.gz.sig")
                && r.contains("404") => {}
        other => failures.push(format!(
            "the console does not reject the overlay for its missing URL.sig: {other:?}"
        )),
    }
    if !outcome.log.contains("Kernel panic") {
        failures.push("no kernel panic although panic= was given".into());
    }
    if report.is_some() {
        failures.push("a new root booted with the unsigned overlay".into());
    }
    failures
}

const HOST_SIGNED_USB: &str = "alpinit-signed-backup";

fn setup_signed_usb(assets: &Assets, dir: &Path) -> Result<Setup> {
    let key = image_private_key(assets);
    let stranger = dir.join("stranger.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        path_str(&stranger)?,
    ])?;
    let unknown = overlay(assets, "alpinit-unknown-key", &[], Vec::new())?;
    let unknown_sig = {
        let f = dir.join("unknown");
        fs::write(&f, &unknown).context("writing the overlay")?;
        openssl(&[
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            path_str(&stranger)?,
            "-in",
            path_str(&f)?,
        ])?
    };
    let original = backup_overlay(assets, HOST_NEWER)?;
    let newer_sig = sign(dir, &key, &original, NEWER)?;
    let modified = backup_overlay(assets, "alpinit-modified")?;
    let older = backup_overlay(assets, HOST_SIGNED_USB)?;
    let older_sig = sign(dir, &key, &older, OLDER)?;
    let usb = disk(
        dir,
        "usb",
        Filesystem::Fat32,
        &[
            top_apkovl(unknown),
            FileSpec::new("host.apkovl.tar.gz.sig", 0o644, unknown_sig),
            FileSpec::new(NEWER, 0o644, modified),
            FileSpec::new(&format!("{NEWER}.sig"), 0o644, newer_sig),
            FileSpec::new(OLDER, 0o644, older),
            FileSpec::new(&format!("{OLDER}.sig"), 0o644, older_sig),
        ],
    )?;
    let mut vm = kernel_vm(assets, ImageKind::Signed, "")?;
    vm.usb_stick(&usb);
    Ok(reported(assets, vm))
}

fn check_signed_usb(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_SIGNED_USB);
        let log = &outcome.log;
        let invalid = "does not match /media/sda1/";
        match rejection_reason(log) {
            Some(r) if r.contains(invalid) && r.contains("host.apkovl.tar.gz.sig") => {}
            other => failures.push(format!(
                "the overlay signed by an unknown key is not rejected for its signature: {other:?}"
            )),
        }
        let newer = format!("Loading backup /media/sda1/{NEWER} from {NEWER_DATE}: ");
        match failed_progress(log, &newer) {
            Some(reason) if reason.contains(invalid) => {}
            other => failures.push(format!(
                "\" * {newer}\" does not fail for its signature (a valid signature over a modified file): {other:?}"
            )),
        }
        let used = format!("booted its backup /media/sda1/{OLDER} from {OLDER_DATE} instead.");
        if !log.contains(&used) {
            failures.push(format!("no {used:?} on the console"));
        }
    })
}
