//! Encrypted overlays end to end: committed fixtures, and fresh ones made by `openssl`.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use alpinit_apkovl::enc::{cipher_from_suffix, decrypt_reader, detect_digest, Digest, EncError};
use alpinit_apkovl::{unpack, Limits, UnpackError, UnpackReport};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// What the init does with an encrypted overlay.
fn unpack_encrypted(path: &Path, password: &[u8], sysroot: &Path) -> Result<UnpackReport, String> {
    let name = path.file_name().unwrap().to_str().unwrap();
    let cipher = cipher_from_suffix(name)
        .map_err(|e| e.to_string())?
        .unwrap();
    let digest = detect_digest(path, cipher, password).map_err(|e| e.to_string())?;
    unpack(
        || Ok(decrypt_reader(File::open(path)?, cipher, digest, password)?),
        sysroot,
        &Limits::default(),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn committed_fixtures_decrypt_and_unpack() {
    for (name, want) in [
        ("tiny-sha256.apkovl.tar.gz.aes-256-cbc", Digest::Sha256),
        ("tiny-md5.apkovl.tar.gz.aes-256-cbc", Digest::Md5),
    ] {
        let path = fixture(name);
        let cipher = cipher_from_suffix(name).unwrap().unwrap();
        assert_eq!(
            detect_digest(&path, cipher, b"alpinit").unwrap(),
            want,
            "{name}"
        );
        let tmp = tempfile::tempdir().unwrap();
        let report = unpack_encrypted(&path, b"alpinit", tmp.path()).unwrap();
        assert_eq!(report.members, ["etc/", "etc/hostname"], "{name}");
        assert_eq!(fs::read(tmp.path().join("etc/hostname")).unwrap(), b"box\n");
    }
}

#[test]
fn wrong_password_writes_nothing() {
    let path = fixture("tiny-sha256.apkovl.tar.gz.aes-256-cbc");
    let tmp = tempfile::tempdir().unwrap();
    let cipher = cipher_from_suffix("x.aes-256-cbc").unwrap().unwrap();
    let err = detect_digest(&path, cipher, b"not-it").unwrap_err();
    assert!(matches!(err, EncError::WrongPassword), "{err}");
    // Even forcing a digest, the verify pass stops it before anything is written.
    let res = unpack(
        || {
            Ok(decrypt_reader(
                File::open(&path)?,
                cipher,
                Digest::Sha256,
                b"not-it",
            )?)
        },
        tmp.path(),
        &Limits::default(),
    );
    assert!(res.is_err());
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn unsupported_ciphers_are_named() {
    for (name, msg) in [
        ("h.apkovl.tar.gz.des3", "Cipher des3 is not supported"),
        (
            "h.apkovl.tar.gz.chacha20",
            "Cipher chacha20 is not supported",
        ),
    ] {
        assert_eq!(cipher_from_suffix(name).unwrap_err().to_string(), msg);
    }
}

fn have_tools() -> bool {
    let ok = ["openssl", "tar"].iter().all(|t| {
        Command::new(t).arg("--version").output().is_ok()
            || Command::new(t).arg("version").output().is_ok()
    });
    if !ok {
        eprintln!("note: `openssl` or `tar` not found, test skipped");
    }
    ok
}

fn openssl_enc(plain: &Path, out: &Path, cipher: &str, md: &str, pass: &str) {
    let status = Command::new("openssl")
        .args([
            "enc",
            &format!("-{cipher}"),
            "-salt",
            "-md",
            md,
            "-pass",
            &format!("pass:{pass}"),
        ])
        .arg("-in")
        .arg(plain)
        .arg("-out")
        .arg(out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A larger overlay so that the stream crosses many 64 KiB buffers.
fn make_overlay(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(src.join("etc/big")).unwrap();
    fs::write(src.join("etc/hostname"), b"box\n").unwrap();
    let mut f = File::create(src.join("etc/big/data")).unwrap();
    let mut x: u32 = 3;
    let data: Vec<u8> = (0..300_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect();
    f.write_all(&data).unwrap();
    let tgz = dir.join("plain.tar.gz");
    let ok = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&src)
        .arg("etc")
        .status()
        .unwrap();
    assert!(ok.success());
    tgz
}

#[test]
fn fresh_openssl_files_for_each_cipher_and_digest() {
    if !have_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tgz = make_overlay(tmp.path());
    for cipher in ["aes-128-cbc", "aes-192-cbc", "aes-256-cbc"] {
        for (md, want) in [("sha256", Digest::Sha256), ("md5", Digest::Md5)] {
            let enc = tmp.path().join(format!("h-{md}.apkovl.tar.gz.{cipher}"));
            openssl_enc(&tgz, &enc, cipher, md, "pw");
            let c = cipher_from_suffix(enc.file_name().unwrap().to_str().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(
                detect_digest(&enc, c, b"pw").unwrap(),
                want,
                "{cipher} {md}"
            );
            let root = tmp.path().join(format!("root-{cipher}-{md}"));
            fs::create_dir(&root).unwrap();
            unpack_encrypted(&enc, b"pw", &root).unwrap();
            assert_eq!(
                fs::read(root.join("etc/big/data")).unwrap(),
                fs::read(tmp.path().join("src/etc/big/data")).unwrap(),
                "{cipher} {md}"
            );
        }
    }
}

#[test]
fn truncated_ciphertext_fails_in_the_verify_pass() {
    if !have_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tgz = make_overlay(tmp.path());
    let enc = tmp.path().join("h.apkovl.tar.gz.aes-256-cbc");
    openssl_enc(&tgz, &enc, "aes-256-cbc", "sha256", "pw");
    let full = fs::read(&enc).unwrap();
    // Cut mid-block, and cut a whole block (the padding check then fails).
    for cut in [5, 16, 4096] {
        let data = &full[..full.len() - cut];
        let root = tmp.path().join(format!("root-{cut}"));
        fs::create_dir(&root).unwrap();
        let res = unpack(
            || {
                Ok(decrypt_reader(
                    data,
                    alpinit_apkovl::enc::Cipher::Aes256Cbc,
                    Digest::Sha256,
                    b"pw",
                )?)
            },
            &root,
            &Limits::default(),
        );
        let err = res.unwrap_err();
        assert!(matches!(err, UnpackError::Archive(_)), "cut {cut}: {err}");
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "cut {cut}");
    }
}

/// Issue 8c: a file cut short by whole 16-byte blocks decrypts with the right password to
/// a gzip start but fails the padding check; it must be reported as damaged (so the init
/// does not ask for the password again), never as a wrong password.
#[test]
fn right_password_on_a_file_cut_by_whole_blocks_is_damaged_not_wrong_password() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "tiny-sha256.apkovl.tar.gz.aes-256-cbc",
        "tiny-md5.apkovl.tar.gz.aes-256-cbc",
    ] {
        let full = fs::read(fixture(name)).unwrap();
        let blocks = (full.len() - 16) / 16;
        assert!(blocks >= 2, "{name}: fixture too small");
        let cipher = cipher_from_suffix(name).unwrap().unwrap();
        for cut in 1..blocks {
            let path = tmp.path().join(format!("cut{cut}-{name}"));
            fs::write(&path, &full[..full.len() - 16 * cut]).unwrap();
            let err = detect_digest(&path, cipher, b"alpinit").unwrap_err();
            assert!(
                matches!(&err, EncError::Damaged { path: p } if *p == path),
                "{name} cut by {cut} blocks: {err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("is damaged: truncated") && msg.contains(&*path.to_string_lossy()),
                "{msg}"
            );
            // The evidence is the password: a wrong one is still a wrong password.
            let err = detect_digest(&path, cipher, b"not-it").unwrap_err();
            assert!(
                matches!(err, EncError::WrongPassword),
                "{name} cut {cut}: {err:?}"
            );
        }
    }
}

/// A file cut inside a block, or down to the header, is damaged whatever the password.
#[test]
fn file_cut_inside_a_block_or_to_the_header_is_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "tiny-sha256.apkovl.tar.gz.aes-256-cbc";
    let full = fs::read(fixture(name)).unwrap();
    let cipher = cipher_from_suffix(name).unwrap().unwrap();
    for (keep, body) in [(full.len() - 5, full.len() as u64 - 21), (16, 0), (20, 4)] {
        let path = tmp.path().join(format!("keep{keep}-{name}"));
        fs::write(&path, &full[..keep]).unwrap();
        for pw in [&b"alpinit"[..], b"not-it"] {
            let err = detect_digest(&path, cipher, pw).unwrap_err();
            assert!(
                matches!(&err, EncError::TruncatedFile { path: p, len } if *p == path && *len == body),
                "keep {keep}: {err:?}"
            );
            assert!(err.to_string().contains("is damaged: truncated"), "{err}");
        }
    }
}
