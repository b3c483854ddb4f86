//! Test keys made with `openssl` at test time (no private key is committed),
//! and signatures made the way the README tells users to make them.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rsa,
    Ed25519,
}

/// A private key in a temp dir and its public half in PEM.
pub struct TestKey {
    _dir: tempfile::TempDir,
    private: PathBuf,
    kind: Kind,
    pub public_pem: Vec<u8>,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed to run the signature tests");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl TestKey {
    pub fn new(kind: Kind) -> TestKey {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("key.pem");
        let p = private.to_str().unwrap();
        match kind {
            Kind::Rsa => openssl(&[
                "genpkey",
                "-algorithm",
                "rsa",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                p,
            ]),
            Kind::Ed25519 => openssl(&["genpkey", "-algorithm", "ed25519", "-out", p]),
        };
        let public_pem = openssl(&["pkey", "-in", p, "-pubout"]);
        TestKey {
            _dir: dir,
            private,
            kind,
            public_pem,
        }
    }

    /// The private key file.
    pub fn private(&self) -> &Path {
        &self.private
    }

    /// The signature of `data` as `openssl dgst -sha256 -sign` (RSA) or
    /// `openssl pkeyutl -sign -rawin` (Ed25519) makes it.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        std::fs::write(&file, data).unwrap();
        self.sign_file(&file)
    }

    pub fn sign_file(&self, file: &Path) -> Vec<u8> {
        let (k, f) = (self.private.to_str().unwrap(), file.to_str().unwrap());
        match self.kind {
            Kind::Rsa => openssl(&["dgst", "-sha256", "-sign", k, f]),
            Kind::Ed25519 => openssl(&["pkeyutl", "-sign", "-rawin", "-inkey", k, "-in", f]),
        }
    }
}
