//! Signed overlays: with keys in the image's `/etc/alpinit/keys`, an overlay
//! is applied only with a valid detached signature, checked before it is
//! decrypted or unpacked; without keys nothing changes.

use super::machine::{apkovl_fixture, overlay, Machine};
use crate::platform::fake::Ev;
use crate::signature::testkeys::{Kind, TestKey};

fn with_keys(m: &Machine, keys: &[&TestKey]) {
    for (i, k) in keys.iter().enumerate() {
        m.write(&format!("/etc/alpinit/keys/k{i}.pem"), &k.public_pem);
    }
}

fn hostname_ovl(name: &str) -> Vec<u8> {
    overlay(&[("etc/hostname", format!("{name}\n").as_bytes())])
}

#[test]
fn keys_and_a_valid_rsa_signature_apply_the_overlay() {
    let key = TestKey::new(Kind::Rsa);
    let m = Machine::new();
    with_keys(&m, &[&key]);
    let ovl = hostname_ovl("signed");
    let sig = key.sign(&ovl);
    m.stick(
        "sda1",
        "A",
        &[("h.apkovl.tar.gz", &ovl), ("h.apkovl.tar.gz.sig", &sig)],
    );
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(m.read("/sysroot/etc/hostname"), "signed\n");
    boot.assert_kmsg("signature /media/sda1/h.apkovl.tar.gz.sig good (key k0.pem)");
}

#[test]
fn keys_and_no_signature_reject_the_overlay_naming_the_missing_file() {
    let key = TestKey::new(Kind::Ed25519);
    let m = Machine::new();
    with_keys(&m, &[&key]);
    m.stick(
        "sda1",
        "A",
        &[("h.apkovl.tar.gz", &hostname_ovl("unsigned"))],
    );
    let boot = m.boot();
    boot.assert_console(
        " * Loading user settings from /media/sda1/h.apkovl.tar.gz: failed. the signature /media/sda1/h.apkovl.tar.gz.sig is missing",
    );
    assert!(!m.exists("/sysroot/etc/hostname"));
    assert_eq!(boot.shells(), 1);
}

#[test]
fn a_signature_by_an_unknown_key_is_rejected() {
    let known = TestKey::new(Kind::Ed25519);
    let stranger = TestKey::new(Kind::Ed25519);
    let m = Machine::new();
    with_keys(&m, &[&known]);
    let ovl = hostname_ovl("stranger");
    let sig = stranger.sign(&ovl);
    m.stick(
        "sda1",
        "A",
        &[("h.apkovl.tar.gz", &ovl), ("h.apkovl.tar.gz.sig", &sig)],
    );
    let boot = m.boot();
    boot.assert_console("the signature /media/sda1/h.apkovl.tar.gz.sig does not match /media/sda1/h.apkovl.tar.gz with any of the 1 keys in /etc/alpinit/keys");
    assert!(!m.exists("/sysroot/etc/hostname"));
    assert_eq!(boot.shells(), 1);
}

#[test]
fn a_valid_signature_over_a_modified_file_is_rejected() {
    let key = TestKey::new(Kind::Rsa);
    let m = Machine::new();
    with_keys(&m, &[&key]);
    let ovl = hostname_ovl("original");
    let sig = key.sign(&ovl);
    let forged = hostname_ovl("forged");
    m.stick(
        "sda1",
        "A",
        &[("h.apkovl.tar.gz", &forged), ("h.apkovl.tar.gz.sig", &sig)],
    );
    let boot = m.boot();
    boot.assert_console("does not match /media/sda1/h.apkovl.tar.gz");
    assert!(!m.exists("/sysroot/etc/hostname"));
}

#[test]
fn the_signature_is_checked_before_the_password_is_asked() {
    let key = TestKey::new(Kind::Ed25519);
    let m = Machine::new();
    with_keys(&m, &[&key]);
    let enc = apkovl_fixture("tiny-sha256.apkovl.tar.gz.aes-256-cbc");
    m.stick("sda1", "A", &[("h.apkovl.tar.gz.aes-256-cbc", &enc)]);
    m.fake.type_passwords(&["alpinit"]);
    let boot = m.boot();
    assert!(
        !boot.events.iter().any(|e| matches!(e, Ev::Prompt(_))),
        "{:?}",
        boot.events
    );
    boot.assert_console("h.apkovl.tar.gz.aes-256-cbc.sig is missing");
    assert!(!m.exists("/sysroot/etc/hostname"));
}

#[test]
fn a_signed_encrypted_overlay_is_checked_as_stored_then_decrypted() {
    let key = TestKey::new(Kind::Rsa);
    let m = Machine::new();
    with_keys(&m, &[&key]);
    let enc = apkovl_fixture("tiny-sha256.apkovl.tar.gz.aes-256-cbc");
    let sig = key.sign(&enc);
    m.stick(
        "sda1",
        "A",
        &[
            ("h.apkovl.tar.gz.aes-256-cbc", &enc),
            ("h.apkovl.tar.gz.aes-256-cbc.sig", &sig),
        ],
    );
    m.fake.type_passwords(&["alpinit"]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(m.exists("/sysroot/etc/hostname"));
    boot.assert_kmsg("signature /media/sda1/h.apkovl.tar.gz.aes-256-cbc.sig good (key k0.pem)");
    let asked = boot.index(|e| matches!(e, Ev::Prompt(_)));
    assert!(
        asked.is_some(),
        "the password is asked once the signature is good"
    );
}

#[test]
fn ed25519_signed_overlay_over_http_is_accepted_and_unsigned_is_rejected() {
    let key = TestKey::new(Kind::Ed25519);
    for signed in [true, false] {
        let m = Machine::new();
        with_keys(&m, &[&key]);
        m.cmdline("ip=dhcp apkovl=http://10.0.2.2/{MAC}.apkovl.tar.gz");
        m.dhcp_nic("eth0", 2);
        let ovl = hostname_ovl("net");
        let sig = key.sign(&ovl);
        m.fake.on_fetch(move |url| {
            if url.ends_with(".apkovl.tar.gz") {
                Ok(ovl.clone())
            } else if url.ends_with(".apkovl.tar.gz.sig") && signed {
                Ok(sig.clone())
            } else {
                Err(alpinit_net::FetchError::Status {
                    url: url.to_owned(),
                    status: 404,
                    reason: "Not Found".into(),
                })
            }
        });
        let boot = m.boot();
        assert!(boot.has(&Ev::Fetch(
            "http://10.0.2.2/02:00:00:00:00:02.apkovl.tar.gz.sig".into()
        )));
        if signed {
            boot.assert_clean_switch();
            assert_eq!(m.read("/sysroot/etc/hostname"), "net\n");
        } else {
            boot.assert_console("failed. cannot download the signature: http://10.0.2.2/02:00:00:00:00:02.apkovl.tar.gz.sig: server answered HTTP 404 Not Found");
            assert!(!m.exists("/sysroot/etc/hostname"));
            assert_eq!(boot.shells(), 1);
        }
    }
}

#[test]
fn an_unsigned_overlay_rolls_back_to_a_signed_backup_never_an_unsigned_one() {
    let key = TestKey::new(Kind::Ed25519);
    let m = Machine::new();
    with_keys(&m, &[&key]);
    let (cur, newer, older) = (
        hostname_ovl("cur"),
        hostname_ovl("newer"),
        hostname_ovl("older"),
    );
    let older_sig = key.sign(&older);
    m.stick(
        "sda1",
        "A",
        &[
            ("h.apkovl.tar.gz", &cur),
            ("h.20261130120000.tar.gz", &newer),
            ("h.20261129120000.tar.gz", &older),
            ("h.20261129120000.tar.gz.sig", &older_sig),
        ],
    );
    let boot = m.boot();
    assert_eq!(m.read("/sysroot/etc/hostname"), "older\n");
    boot.assert_console("h.20261130120000.tar.gz.sig is missing");
    boot.assert_console(
        "booted its backup /media/sda1/h.20261129120000.tar.gz from 2026-11-29 12:00:00 UTC",
    );
    assert_eq!(boot.shells(), 0);
}

#[test]
fn without_keys_a_signature_file_changes_nothing_and_is_no_candidate() {
    let m = Machine::new();
    let ovl = hostname_ovl("plain");
    // A stray signature beside a boot repository would outrank the overlay
    // if it were a candidate.
    let (repo, marker) = super::machine::BOOT_REPOSITORY;
    m.stick(
        "sda1",
        "A",
        &[("a.apkovl.tar.gz.sig", b"sig"), (repo, marker)],
    );
    m.stick("sdb1", "B", &[("h.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(m.read("/sysroot/etc/hostname"), "plain\n");
}

/// The lbu hook of the README's "Signed overlays", run as lbu runs it:
/// after a commit renamed the previous overlay to its backup and wrote the
/// new one. Each file then has a valid hidden signature, lbu's
/// `*.apkovl.tar.gz*` glob sees only the overlay, and the signature of a
/// pruned backup goes away.
#[test]
fn readme_lbu_hook_signs_each_commit_and_hands_the_old_signature_to_the_backup() {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme
        .find("#!/bin/sh\n# /etc/lbu/post-package.d/50-alpinit-sign")
        .expect("the hook in the README");
    let hook_text = &readme[start..start + readme[start..].find("```").unwrap()];
    let key = TestKey::new(Kind::Rsa);
    let tmp = tempfile::tempdir().unwrap();
    let (media, bin) = (tmp.path().join("media"), tmp.path().join("bin"));
    std::fs::create_dir_all(&media).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let hook = tmp.path().join("50-alpinit-sign");
    std::fs::write(&hook, hook_text).unwrap();
    std::fs::write(bin.join("hostname"), "#!/bin/sh\necho h\n").unwrap();
    std::fs::set_permissions(bin.join("hostname"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = tmp.path().join("lbu.conf");
    std::fs::write(&conf, format!("LBU_BACKUPDIR={}\n", media.display())).unwrap();
    let run = |shell: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(shell)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("LBU_CONF", &conf)
            .env("ALPINIT_SIGNING_KEY", key.private())
            .current_dir(&media)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let hook_cmd = format!("sh {}", hook.display());
    let keys_dir = tempfile::tempdir().unwrap();
    std::fs::write(keys_dir.path().join("k.pem"), &key.public_pem).unwrap();
    let keys = crate::signature::Keys::load(keys_dir.path())
        .unwrap()
        .unwrap();
    let verifies = |name: &str| {
        let f = media.join(name);
        let (_, sig) = crate::signature::read_sig_beside(&f, &f).unwrap();
        keys.verify_file(&f, &f, "sig", &sig).is_ok()
    };
    // First commit.
    std::fs::write(media.join("h.apkovl.tar.gz"), hostname_ovl("one")).unwrap();
    run(&hook_cmd);
    assert!(verifies("h.apkovl.tar.gz"));
    // Second commit: lbu's backup_apkovl, then the new overlay, then the hook.
    std::fs::rename(
        media.join("h.apkovl.tar.gz"),
        media.join("h.20261129120000.tar.gz"),
    )
    .unwrap();
    std::fs::write(media.join("h.apkovl.tar.gz"), hostname_ovl("two")).unwrap();
    run(&hook_cmd);
    assert!(verifies("h.apkovl.tar.gz"));
    assert!(
        verifies("h.20261129120000.tar.gz"),
        "the backup keeps its signature"
    );
    assert_eq!(run("ls -1 *.apkovl.tar.gz*"), "h.apkovl.tar.gz\n");
    assert_eq!(
        run("ls -1 h.[0-9][0-9][0-9][0-9]*[0-9].tar.gz*"),
        "h.20261129120000.tar.gz\n"
    );
    // lbu prunes the backup; the next commit drops its signature.
    std::fs::remove_file(media.join("h.20261129120000.tar.gz")).unwrap();
    std::fs::rename(
        media.join("h.apkovl.tar.gz"),
        media.join("h.20261130120000.tar.gz"),
    )
    .unwrap();
    std::fs::write(media.join("h.apkovl.tar.gz"), hostname_ovl("three")).unwrap();
    run(&hook_cmd);
    assert!(!media.join(".h.20261129120000.tar.gz.sig").exists());
    assert!(verifies("h.20261130120000.tar.gz"));
    assert!(verifies("h.apkovl.tar.gz"));
}
