//! Unlocking containers made by cryptsetup, compared with what cryptsetup dumps.
//!
//! The containers are built at test time by `make-fixtures.sh` (they are megabytes of
//! random key material, too big to commit); without `cryptsetup` these tests print a
//! note and pass without checking.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use alpinit_luks::{dm, Header, Limits, LuksError};
use sha2::{Digest, Sha256};

fn fixtures() -> Option<&'static Path> {
    static DIR: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    DIR.get_or_init(|| {
        if Command::new("cryptsetup")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("note: `cryptsetup` not found, LUKS fixture tests skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/make-fixtures.sh");
        let out = Command::new("sh")
            .arg(&script)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make-fixtures.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(dir)
    })
    .as_ref()
    .map(|d| d.path())
}

struct Fixture {
    name: String,
    header: Vec<u8>,
    secret: Vec<u8>,
    key: String,
    slot: String,
    size: u64,
    table: String,
}

fn load(dir: &Path, name: &str) -> Fixture {
    let p = |ext: &str| dir.join(format!("{name}.{ext}"));
    let hdr = if p("hdr").exists() {
        p("hdr")
    } else {
        p("img")
    };
    let oracle = fs::read_to_string(p("oracle")).unwrap();
    let get = |k: &str| {
        oracle
            .lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name}.oracle has no {k}"))
            .to_string()
    };
    Fixture {
        name: name.to_string(),
        header: fs::read(hdr).unwrap(),
        secret: fs::read(p("secret")).unwrap(),
        key: get("key"),
        slot: get("slot"),
        size: get("size").parse().unwrap(),
        table: get("table"),
    }
}

fn all(dir: &Path) -> Vec<Fixture> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".oracle")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 11, "make-fixtures.sh made only {names:?}");
    names.iter().map(|n| load(dir, n)).collect()
}

fn limits() -> Limits {
    Limits::for_mem_available(256 << 20)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn right_secret_gives_the_dumped_volume_key_and_cryptsetups_table() {
    let Some(dir) = fixtures() else { return };
    for f in all(dir) {
        let h =
            Header::read(&mut Cursor::new(&f.header)).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let want_version = if f.name.starts_with("luks1") { 1 } else { 2 };
        assert_eq!(h.version(), want_version, "{}", f.name);
        let u = h
            .unlock(&mut Cursor::new(&f.header), &f.secret, &limits())
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(hex(&u.volume_key), f.key, "{}", f.name);
        assert_eq!(u.keyslot, f.slot, "{}", f.name);
        let t = dm::crypt_table(&u.segment, &u.volume_key, 253, 7, f.size, false).unwrap();
        let ours = format!("0 {} crypt {}", t.sectors, &*t.params);
        assert_eq!(ours, f.table.replace("DEV", "253:7"), "{}", f.name);
    }
}

#[test]
fn wrong_passphrase_matches_no_key_slot() {
    let Some(dir) = fixtures() else { return };
    for f in all(dir) {
        let h = Header::read(&mut Cursor::new(&f.header)).unwrap();
        match h.unlock(
            &mut Cursor::new(&f.header),
            b"not the passphrase",
            &limits(),
        ) {
            Err(e @ LuksError::NoKeyslotMatched { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("no key slot matches the passphrase (tried 0"),
                    "{}: {msg}",
                    f.name
                );
            }
            other => panic!("{}: {other:?}", f.name),
        }
    }
}

const BOTH_SLOTS: &str = "luks2-second-slot";

fn unlocks(img: &[u8], secret: &[u8]) -> Result<String, LuksError> {
    let h = Header::read(&mut Cursor::new(img))?;
    h.unlock(&mut Cursor::new(img), secret, &limits())
        .map(|u| hex(&u.volume_key))
}

#[test]
fn corrupted_primary_header_falls_back_to_the_secondary() {
    let Some(dir) = fixtures() else { return };
    let f = load(dir, BOTH_SLOTS);
    // A flipped byte in the primary's JSON area: its checksum fails.
    let mut img = f.header.clone();
    img[4096 + 20] ^= 1;
    assert_eq!(unlocks(&img, &f.secret).unwrap(), f.key);
    // The primary's magic destroyed: the secondary is found at its offset.
    let mut img = f.header.clone();
    img[..6].fill(0);
    assert_eq!(unlocks(&img, &f.secret).unwrap(), f.key);
    // A damaged secondary beside a good primary changes nothing.
    let mut img = f.header.clone();
    img[0x4000 + 4096 + 20] ^= 1;
    assert_eq!(unlocks(&img, &f.secret).unwrap(), f.key);
    // Both damaged: an error naming both causes.
    let mut img = f.header.clone();
    img[4096 + 20] ^= 1;
    img[0x4000 + 4096 + 20] ^= 1;
    let e = unlocks(&img, &f.secret).unwrap_err().to_string();
    assert_eq!(
        e,
        "no valid LUKS2 header: primary: checksum mismatch; secondary: checksum mismatch"
    );
}

#[test]
fn not_luks_is_said() {
    let e = Header::read(&mut Cursor::new(vec![0u8; 1 << 20])).unwrap_err();
    assert!(matches!(e, LuksError::NotLuks), "{e:?}");
}

/// Replace `from` by `to` in both JSON copies and recompute their SHA-256 checksums,
/// as a header written by another LUKS2 implementation would look.
fn edit_json(img: &[u8], from: &str, to: &str) -> Vec<u8> {
    let mut img = img.to_vec();
    let size = u64::from_be_bytes(img[8..16].try_into().unwrap()) as usize;
    for at in [0, size] {
        let area = &mut img[at..at + size];
        let text = &area[4096..];
        let end = text.iter().position(|&c| c == 0).unwrap();
        let json = String::from_utf8(text[..end].to_vec()).unwrap();
        assert!(json.contains(from), "{from} not in {json}");
        let json = json.replacen(from, to, 1);
        assert!(json.len() < size - 4096);
        area[4096..].fill(0);
        area[4096..4096 + json.len()].copy_from_slice(json.as_bytes());
        area[448..512].fill(0);
        let sum = Sha256::digest(&*area);
        area[448..480].copy_from_slice(&sum);
    }
    img
}

#[test]
fn json_edit_without_change_still_unlocks() {
    // The checksum rewrite used by the feature table below is itself right.
    let Some(dir) = fixtures() else { return };
    let f = load(dir, BOTH_SLOTS);
    let img = edit_json(&f.header, "\"tokens\":{}", "\"tokens\":{}");
    assert_eq!(unlocks(&img, &f.secret).unwrap(), f.key);
}

#[test]
fn unsupported_features_are_named() {
    let Some(dir) = fixtures() else { return };
    let f = load(dir, BOTH_SLOTS);
    let seg = r#""encryption":"aes-xts-plain64","sector_size":512}"#;
    let cases: &[(&str, &str, &str)] = &[
        (
            seg,
            r#""encryption":"aes-xts-plain64","sector_size":512,"integrity":{"type":"hmac(sha256)","journal_encryption":"none","journal_integrity":"none"}}"#,
            "unsupported LUKS feature: integrity protection (hmac(sha256))",
        ),
        (
            seg,
            r#""encryption":"serpent-xts-plain64","sector_size":512}"#,
            "unsupported LUKS feature: cipher serpent-xts-plain64",
        ),
        (
            r#""keyslots_size":"1048576"}"#,
            r#""keyslots_size":"1048576","requirements":{"mandatory":["online-reencrypt-v2"]}}"#,
            "unsupported LUKS feature: reencryption in progress (requirement online-reencrypt-v2)",
        ),
        (
            r#""type":"crypt""#,
            r#""type":"linear""#,
            "unsupported LUKS feature: segment type linear",
        ),
        (
            r#""digests":{"0":{"type":"pbkdf2""#,
            r#""digests":{"0":{"type":"blake3""#,
            "unsupported LUKS feature: digest type blake3",
        ),
    ];
    for (from, to, want) in cases {
        let img = edit_json(&f.header, from, to);
        let h = Header::read(&mut Cursor::new(&img)).unwrap();
        let e = h
            .unlock(&mut Cursor::new(&img), &f.secret, &limits())
            .unwrap_err();
        assert!(matches!(e, LuksError::Unsupported { .. }), "{to}: {e:?}");
        assert_eq!(e.to_string(), *want);
        if !want.contains("digest") {
            // Checked before any key derivation, so a caller can hand the volume on.
            assert_eq!(h.segment().unwrap_err().to_string(), *want);
        }
    }
}

#[test]
fn key_slot_problems_are_named_when_no_slot_matches() {
    let Some(dir) = fixtures() else { return };
    let f = load(dir, BOTH_SLOTS);
    let cases: &[(&str, &str, &str)] = &[
        (
            r#""tokens":{}"#,
            r#""tokens":{"0":{"type":"systemd-tpm2","keyslots":["1"]}}"#,
            "no key slot matches the passphrase (tried 0, 1); key slot 1 bound to token 0 (systemd-tpm2), which is not supported",
        ),
        (
            r#""kdf":{"type":"argon2id","time":4,"memory":32"#,
            r#""kdf":{"type":"argon2id","time":4,"memory":4194304"#,
            "no key slot matches the passphrase (tried 0); key slot 1 argon2id: the memory cost is 4194304, above what this machine allows (196608 KiB); three quarters of MemAvailable",
        ),
        (
            r#""kdf":{"type":"argon2id""#,
            r#""kdf":{"type":"scrypt""#,
            "no key slot matches the passphrase (tried 0); key slot 1 uses key derivation scrypt, which is not supported",
        ),
    ];
    for (from, to, want) in cases {
        let img = edit_json(&f.header, from, to);
        let e = unlocks(&img, b"wrong").unwrap_err();
        assert_eq!(e.to_string(), *want);
    }
    // The passphrase of slot 0 still opens the volume beside an unusable slot 1.
    let img = edit_json(
        &f.header,
        r#""kdf":{"type":"argon2id""#,
        r#""kdf":{"type":"scrypt""#,
    );
    let slot0 = b"passphrase of luks2-second-slot";
    assert_eq!(unlocks(&img, slot0).unwrap(), f.key);
}

#[test]
fn luks1_unsupported_cipher_is_named() {
    let Some(dir) = fixtures() else { return };
    let mut img = load(dir, "luks1-xts256").header;
    img[8..40].fill(0);
    img[8..15].copy_from_slice(b"twofish");
    let h = Header::read(&mut Cursor::new(&img)).unwrap();
    assert_eq!(
        h.segment().unwrap_err().to_string(),
        "unsupported LUKS feature: cipher twofish-xts-plain64"
    );
}

#[test]
fn dumped_fixture_paths_exist() {
    // The script's output names are what the QEMU scenario opens.
    let Some(dir) = fixtures() else { return };
    for name in [
        "luks2-detached.hdr",
        "luks2-detached.img",
        "luks1-keyfile.secret",
    ] {
        assert!(PathBuf::from(dir).join(name).exists(), "{name}");
    }
}
