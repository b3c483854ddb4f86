//! Rollback to the last good overlay: a damaged overlay is replaced by the
//! newest good backup `lbu commit` left beside it; a password or a policy
//! rejection never is.

use super::machine::{apkovl_fixture, overlay, Machine};
use crate::failure::End;
use crate::platform::fake::Ev;

const NEWER: &str = "h.20261130120000.tar.gz";
const OLDER: &str = "h.20261129120000.tar.gz";

fn truncated(host: &[u8]) -> Vec<u8> {
    let mut ovl = overlay(&[("etc/hostname", host)]);
    ovl.truncate(ovl.len() / 2);
    ovl
}

/// `openssl enc -aes-256-cbc -salt`, as `lbu commit -e` writes.
fn encrypt(plain: &[u8], password: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["enc", "-aes-256-cbc", "-salt", "-pass"])
        .arg(format!("pass:{password}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl must be installed");
    child.stdin.take().unwrap().write_all(plain).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// `/var/log/alpinit-overlay` in the new root: one `failed PATH: REASON`
/// line for the only overlay tried, whose reason has `why`.
fn assert_only_failure_recorded(m: &Machine, path: &str, why: &str) {
    let record = m.read("/sysroot/var/log/alpinit-overlay");
    let lines: Vec<&str> = record.lines().collect();
    assert_eq!(lines.len(), 1, "{record}");
    assert!(
        lines[0].starts_with(&format!("failed {path}: ")),
        "{record}"
    );
    assert!(lines[0].contains(why), "{record}");
}

#[test]
fn truncated_overlay_boots_the_newest_good_backup_and_says_which() {
    let m = Machine::new();
    let (cur, newer, older) = (
        truncated(b"current\n"),
        overlay(&[("etc/hostname", b"newer\n")]),
        overlay(&[("etc/hostname", b"older\n")]),
    );
    m.disk(
        "vda1",
        "A",
        &[("h.apkovl.tar.gz", &cur), (OLDER, &older), (NEWER, &newer)],
    );
    let boot = m.boot();
    assert_eq!(m.read("/sysroot/etc/hostname"), "newer\n");
    boot.assert_console(" * Loading user settings from /media/vda1/h.apkovl.tar.gz: failed. ");
    boot.assert_console(&format!(
        " * Loading backup /media/vda1/{NEWER} from 2026-11-30 12:00:00 UTC: ok."
    ));
    boot.assert_console(&format!(
        "The overlay /media/vda1/h.apkovl.tar.gz is damaged; booted its backup /media/vda1/{NEWER} from 2026-11-30 12:00:00 UTC instead."
    ));
    // A good backup is no failure: no shell, a clean hand-over.
    assert_eq!(boot.shells(), 0);
    assert_eq!(boot.end, End::SwitchedRoot);
    let record = m.read("/sysroot/var/log/alpinit-overlay");
    let lines: Vec<&str> = record.lines().collect();
    assert_eq!(lines.len(), 2, "{record}");
    assert!(
        lines[0].starts_with("failed /media/vda1/h.apkovl.tar.gz: "),
        "{record}"
    );
    assert_eq!(
        lines[1],
        format!("applied /media/vda1/{NEWER} (backup from 2026-11-30 12:00:00 UTC, instead of /media/vda1/h.apkovl.tar.gz)")
    );
}

#[test]
fn damaged_newest_backup_is_skipped_for_the_next_older_one() {
    let m = Machine::new();
    let (cur, newer, older) = (
        truncated(b"current\n"),
        truncated(b"newer\n"),
        overlay(&[("etc/hostname", b"older\n")]),
    );
    m.disk(
        "vda1",
        "A",
        &[("h.apkovl.tar.gz", &cur), (NEWER, &newer), (OLDER, &older)],
    );
    let boot = m.boot();
    assert_eq!(m.read("/sysroot/etc/hostname"), "older\n");
    boot.assert_console(&format!(
        " * Loading backup /media/vda1/{NEWER} from 2026-11-30 12:00:00 UTC: failed."
    ));
    boot.assert_console(&format!(
        "booted its backup /media/vda1/{OLDER} from 2026-11-29 12:00:00 UTC"
    ));
    assert_eq!(boot.shells(), 0);
}

#[test]
fn all_backups_damaged_boots_without_an_overlay_as_before() {
    let m = Machine::new();
    let (cur, newer, older) = (truncated(b"c\n"), truncated(b"n\n"), b"junk".to_vec());
    m.disk(
        "vda1",
        "A",
        &[("h.apkovl.tar.gz", &cur), (NEWER, &newer), (OLDER, &older)],
    );
    let boot = m.boot();
    boot.assert_console(
        "The overlay /media/vda1/h.apkovl.tar.gz was rejected; nothing of it was applied. Type exit to boot without it.",
    );
    assert_eq!(boot.shells(), 1);
    assert!(!m.exists("/sysroot/etc/hostname"));
    assert!(m.exists("/sysroot/etc/runlevels/sysinit/devfs"));
    let record = m.read("/sysroot/var/log/alpinit-overlay");
    assert_eq!(record.lines().count(), 3, "{record}");
    assert!(record.lines().all(|l| l.starts_with("failed ")), "{record}");
}

#[test]
fn apkovl_fallback_no_keeps_the_damaged_overlay_failure() {
    let m = Machine::new();
    m.cmdline("apkovl_fallback=no");
    let (cur, newer) = (truncated(b"c\n"), overlay(&[("etc/hostname", b"n\n")]));
    m.disk("vda1", "A", &[("h.apkovl.tar.gz", &cur), (NEWER, &newer)]);
    let boot = m.boot();
    assert!(!boot.console.contains("Loading backup"), "{}", boot.console);
    assert!(!m.exists("/sysroot/etc/hostname"));
    assert_eq!(boot.shells(), 1);
    assert_only_failure_recorded(&m, "/media/vda1/h.apkovl.tar.gz", "corrupt gzip data");
}

#[test]
fn wrong_password_does_not_fall_back_to_a_backup() {
    let m = Machine::new();
    let enc = apkovl_fixture("tiny-sha256.apkovl.tar.gz.aes-256-cbc");
    let newer = overlay(&[("etc/hostname", b"newer\n")]);
    m.disk(
        "vda1",
        "A",
        &[("h.apkovl.tar.gz.aes-256-cbc", &enc), (NEWER, &newer)],
    );
    m.fake.type_passwords(&["a", "b", "c"]);
    let boot = m.boot();
    assert!(!boot.console.contains("Loading backup"), "{}", boot.console);
    assert!(!m.exists("/sysroot/etc/hostname"));
    assert_eq!(boot.shells(), 1);
    assert_only_failure_recorded(
        &m,
        "/media/vda1/h.apkovl.tar.gz.aes-256-cbc",
        "wrong password",
    );
}

#[test]
fn hostile_overlay_is_a_policy_rejection_without_fallback() {
    let m = Machine::new();
    let cur = overlay(&[("../escape", b"x")]);
    let newer = overlay(&[("etc/hostname", b"newer\n")]);
    m.disk("vda1", "A", &[("h.apkovl.tar.gz", &cur), (NEWER, &newer)]);
    let boot = m.boot();
    assert!(!boot.console.contains("Loading backup"), "{}", boot.console);
    assert!(!m.exists("/sysroot/etc/hostname"));
    assert_eq!(boot.shells(), 1);
    assert_only_failure_recorded(&m, "/media/vda1/h.apkovl.tar.gz", "'..'");
}

#[test]
fn encrypted_backup_reuses_the_password_typed_for_the_damaged_overlay() {
    let m = Machine::new();
    let full = apkovl_fixture("tiny-sha256.apkovl.tar.gz.aes-256-cbc");
    // Cut by two whole blocks: the password is right, the end is damaged.
    let cut = full[..full.len() - 32].to_vec();
    let backup = encrypt(&overlay(&[("etc/motd", b"from the backup\n")]), "alpinit");
    m.stick(
        "sda1",
        "A",
        &[
            ("h.apkovl.tar.gz.aes-256-cbc", &cut),
            ("h.20261130120000.tar.gz.aes-256-cbc", &backup),
        ],
    );
    m.fake.type_passwords(&["alpinit"]);
    let boot = m.boot();
    assert_eq!(m.read("/sysroot/etc/motd"), "from the backup\n");
    let prompts = boot
        .events
        .iter()
        .filter(|e| matches!(e, Ev::Prompt(_)))
        .count();
    assert_eq!(prompts, 1, "{:?}", boot.events);
    boot.assert_console("booted its backup /media/sda1/h.20261130120000.tar.gz.aes-256-cbc");
    assert_eq!(boot.shells(), 0);
}

#[test]
fn a_damaged_network_overlay_has_no_backups_to_fall_back_to() {
    let m = Machine::new();
    m.cmdline("ip=dhcp apkovl=http://10.0.2.2/h.apkovl.tar.gz");
    m.dhcp_nic("eth0", 2);
    let cur = truncated(b"c\n");
    m.fake.on_fetch(move |_| Ok(cur.clone()));
    // A backup in the download directory is not the server's: never used.
    m.write(
        &format!("/tmp/{NEWER}"),
        overlay(&[("etc/hostname", b"n\n")]),
    );
    let boot = m.boot();
    assert!(!boot.console.contains("Loading backup"), "{}", boot.console);
    assert!(!m.exists("/sysroot/etc/hostname"));
    assert_eq!(boot.shells(), 1);
    assert_only_failure_recorded(&m, "/tmp/h.apkovl.tar.gz", "corrupt gzip data");
}
