//! Test signing keys made with `openssl genrsa` and signatures made as
//! abuild-sign makes them (`openssl dgst -sha1 -sign`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A test signing key named as abuild names them (`NAME-HEX.rsa`).
#[derive(Debug, Clone)]
pub struct Key {
    pub private: PathBuf,
    pub public: PathBuf,
    /// `alpinit-test-XXXXXXXX.rsa.pub`: the file name under /etc/apk/keys
    /// and in the `.SIGN.RSA.` member.
    pub name: String,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The key the real-apk image trusts: made once with `openssl genrsa` in
/// `target/alpinit-cache/apk-keys/PREFIX/` and reused after.
pub fn cached_key(prefix: &str) -> Result<Key> {
    key_in(
        &workspace()
            .join("target/alpinit-cache/apk-keys")
            .join(prefix),
        prefix,
    )
}

/// The key in DIR, generated there when DIR has none.
pub fn key_in(dir: &Path, prefix: &str) -> Result<Key> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let existing = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(prefix) && n.ends_with(".rsa.pub"));
    if let Some(name) = existing {
        let private = dir.join(name.trim_end_matches(".pub"));
        return Ok(Key {
            public: dir.join(&name),
            private,
            name,
        });
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = format!("{prefix}-{stamp:08x}.rsa.pub");
    let private = dir.join(name.trim_end_matches(".pub"));
    let public = dir.join(&name);
    openssl(
        Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&private)
            .arg("2048"),
    )?;
    openssl(
        Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public),
    )?;
    Ok(Key {
        private,
        public,
        name,
    })
}

fn openssl(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// `openssl dgst -sha1 -sign`: what abuild-sign does.
pub(super) fn sign(key: &Key, data: &[u8]) -> Result<Vec<u8>> {
    let tmp = tempfile_path("alpinit-sign");
    fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    let sig = openssl(
        Command::new("openssl")
            .args(["dgst", "-sha1", "-sign"])
            .arg(&key.private)
            .arg(&tmp),
    );
    let _ = fs::remove_file(&tmp);
    sig
}

fn tempfile_path(stem: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("{stem}-{}-{n}", std::process::id()))
}
