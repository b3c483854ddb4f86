use super::testkeys::{Kind, TestKey};
use super::*;

fn keys_dir(keys: &[&TestKey]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, k) in keys.iter().enumerate() {
        std::fs::write(dir.path().join(format!("k{i}.pem")), &k.public_pem).unwrap();
    }
    dir
}

#[test]
fn openssl_rsa_and_ed25519_signatures_verify_and_name_the_key() {
    let rsa = TestKey::new(Kind::Rsa);
    let ed = TestKey::new(Kind::Ed25519);
    let dir = keys_dir(&[&rsa, &ed]);
    let keys = Keys::load(dir.path()).unwrap().unwrap();
    let data = b"an overlay".repeat(1000);
    let p = Path::new("x.apkovl.tar.gz");
    assert_eq!(
        keys.verify(p, &data, "x.sig", &rsa.sign(&data)).unwrap(),
        "k0.pem"
    );
    assert_eq!(
        keys.verify(p, &data, "x.sig", &ed.sign(&data)).unwrap(),
        "k1.pem"
    );
}

#[test]
fn a_changed_file_or_an_unknown_key_is_invalid() {
    let known = TestKey::new(Kind::Ed25519);
    let unknown = TestKey::new(Kind::Rsa);
    let dir = keys_dir(&[&known]);
    let keys = Keys::load(dir.path()).unwrap().unwrap();
    let data = b"payload".to_vec();
    let mut changed = data.clone();
    changed[0] ^= 1;
    let p = Path::new("/media/sda1/h.apkovl.tar.gz");
    let err = keys
        .verify(p, &changed, "h.apkovl.tar.gz.sig", &known.sign(&data))
        .unwrap_err();
    assert!(
        matches!(err, SignatureError::Invalid { keys: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("/media/sda1/h.apkovl.tar.gz"),
        "{err}"
    );
    assert!(keys.verify(p, &data, "s", &unknown.sign(&data)).is_err());
    assert!(keys.verify(p, &data, "s", &[]).is_err());
}

#[test]
fn no_key_directory_or_no_pem_means_no_check() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Keys::load(&dir.path().join("missing")).unwrap().is_none());
    std::fs::write(dir.path().join("README"), "x").unwrap();
    assert!(Keys::load(dir.path()).unwrap().is_none());
}

#[test]
fn a_broken_key_file_keeps_the_check_on_and_accepts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.pem"), "not a key").unwrap();
    let keys = Keys::load(dir.path()).unwrap().unwrap();
    let err = keys.verify(Path::new("x"), b"d", "s", b"sig").unwrap_err();
    assert!(matches!(err, SignatureError::NoUsableKey), "{err}");
}

#[test]
fn verify_file_reads_the_file_as_stored_including_an_empty_one() {
    let rsa = TestKey::new(Kind::Rsa);
    let dir = keys_dir(&[&rsa]);
    let keys = Keys::load(dir.path()).unwrap().unwrap();
    let f = dir.path().join("h.apkovl.tar.gz");
    for data in [&b""[..], &b"bytes as stored"[..]] {
        std::fs::write(&f, data).unwrap();
        let sig = rsa.sign_file(&f);
        assert_eq!(keys.verify_file(&f, &f, "sig", &sig).unwrap(), "k0.pem");
    }
    let err = keys
        .verify_file(&f, Path::new("/media/x/h"), "sig", &[0; 256])
        .unwrap_err();
    assert!(
        err.to_string().contains("does not match /media/x/h "),
        "{err}"
    );
}

#[test]
fn the_signature_beside_is_read_capped_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("h.apkovl.tar.gz");
    let err = read_sig_beside(&f, Path::new("/media/sda1/h.apkovl.tar.gz")).unwrap_err();
    assert!(matches!(err, SignatureError::SigMissing { .. }));
    assert_eq!(
        err.to_string(),
        "the signature /media/sda1/h.apkovl.tar.gz.sig is missing"
    );
    std::fs::write(dir.path().join("h.apkovl.tar.gz.sig"), vec![0u8; 5000]).unwrap();
    assert!(matches!(
        read_sig_beside(&f, &f).unwrap_err(),
        SignatureError::SigTooLarge { .. }
    ));
    std::fs::write(dir.path().join("h.apkovl.tar.gz.sig"), [1u8; 64]).unwrap();
    assert_eq!(read_sig_beside(&f, &f).unwrap().1, [1u8; 64]);
}

#[test]
fn the_hidden_signature_is_used_when_the_plain_one_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("h.apkovl.tar.gz");
    let shown = Path::new("/media/sda1/h.apkovl.tar.gz");
    std::fs::write(dir.path().join(".h.apkovl.tar.gz.sig"), [2u8; 64]).unwrap();
    let (name, sig) = read_sig_beside(&f, shown).unwrap();
    assert_eq!(name, Path::new("/media/sda1/.h.apkovl.tar.gz.sig"));
    assert_eq!(sig, [2u8; 64]);
    // Both present: the plain name wins.
    std::fs::write(dir.path().join("h.apkovl.tar.gz.sig"), [3u8; 64]).unwrap();
    assert_eq!(read_sig_beside(&f, shown).unwrap().1, [3u8; 64]);
}

#[test]
fn a_pkcs1_rsa_key_and_a_key_that_is_a_symlink_are_used() {
    let rsa = TestKey::new(Kind::Rsa);
    let dir = tempfile::tempdir().unwrap();
    let spki = dir.path().join("spki");
    std::fs::write(&spki, &rsa.public_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["rsa", "-pubin", "-RSAPublicKey_out", "-in"])
        .arg(&spki)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.starts_with(b"-----BEGIN RSA PUBLIC KEY-----"));
    let keys_dir = dir.path().join("keys");
    std::fs::create_dir(&keys_dir).unwrap();
    std::fs::write(dir.path().join("pkcs1"), &out.stdout).unwrap();
    std::os::unix::fs::symlink(dir.path().join("pkcs1"), keys_dir.join("a.pem")).unwrap();
    let keys = Keys::load(&keys_dir).unwrap().unwrap();
    let data = b"overlay";
    assert_eq!(
        keys.verify(Path::new("x"), data, "s", &rsa.sign(data))
            .unwrap(),
        "a.pem"
    );
}
