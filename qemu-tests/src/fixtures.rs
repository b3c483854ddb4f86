//! Real Alpine material for tests: the Alpine 3.20.3 mini roots and the
//! mkinitfs 3.13.0 source. The project never commits them; it pins their
//! SHA-512 here and reads them from a fixtures directory:
//!
//! 1. `$ALPINIT_FIXTURES` when set (CI: `../shared/alpine`);
//! 2. else `../shared/alpine` beside the checkout, when it exists;
//! 3. else `target/alpinit-cache/alpine`, where a missing file is downloaded
//!    from Alpine's release URL (machines with internet only).
//!
//! A file whose digest differs from the pin is refused, whichever directory
//! it came from.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One pinned upstream file.
#[derive(Debug, Clone, Copy)]
pub struct Fixture {
    pub name: &'static str,
    /// Lower-case hex SHA-512 of the file as published.
    pub sha512: &'static str,
    pub url: &'static str,
}

pub const MINIROOT_X86_64: Fixture = Fixture {
    name: "alpine-minirootfs-3.20.3-x86_64.tar.gz",
    sha512: "9d5405f61f8a6ebc02461ba75346fbf1a63a4eab8510a0158dd321cee0c4dafe28c2a3d2cb7c3d75e2a8130dae0c3c92382f5b6adeea309eafc97621c5bf6400",
    url: "https://dl-cdn.alpinelinux.org/alpine/v3.20/releases/x86_64/alpine-minirootfs-3.20.3-x86_64.tar.gz",
};

pub const MINIROOT_AARCH64: Fixture = Fixture {
    name: "alpine-minirootfs-3.20.3-aarch64.tar.gz",
    sha512: "cb3ba1d3ac8b90cb85a4fe2a0e26a42af542f64ea86598d0409bc35493c4e561229f8d3142a23013c98b1a037495a8bf123ff977066230ab36a3a13dc92da9c4",
    url: "https://dl-cdn.alpinelinux.org/alpine/v3.20/releases/aarch64/alpine-minirootfs-3.20.3-aarch64.tar.gz",
};

/// A `git archive` of the tag; GitLab's own archive of it may differ byte
/// for byte, so the download is only a fallback for machines without the
/// shared copy.
pub const MKINITFS: Fixture = Fixture {
    name: "mkinitfs-3.13.0.tar.gz",
    sha512: "6aff9d9865b3079ecffc730c2a4924c558a54514f76ffb5dae343031b36a50990514b91a39983b7265908d0dd0fc63c359ef8bf7cfb68826934c2d416ec34c52",
    url: "https://gitlab.alpinelinux.org/alpine/mkinitfs/-/archive/3.13.0/mkinitfs-3.13.0.tar.gz",
};

pub const ALL: [Fixture; 3] = [MINIROOT_X86_64, MINIROOT_AARCH64, MKINITFS];

/// The workspace root (this crate's parent).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Where fixtures are looked up, in order (see the module docs).
pub fn search_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("ALPINIT_FIXTURES") {
        return vec![PathBuf::from(dir)];
    }
    let mut dirs = Vec::new();
    let shared = workspace().join("../shared/alpine");
    if shared.is_dir() {
        dirs.push(shared);
    }
    dirs.push(cache_dir());
    dirs
}

fn cache_dir() -> PathBuf {
    workspace().join("target/alpinit-cache/alpine")
}

/// The verified path of `f`: found in a fixtures directory, or downloaded
/// into the cache when no directory has it and `$ALPINIT_FIXTURES` is unset.
pub fn path(f: &Fixture) -> Result<PathBuf> {
    for dir in search_dirs() {
        let p = dir.join(f.name);
        if p.is_file() {
            verify(&p, f.sha512)?;
            return Ok(p);
        }
    }
    if std::env::var_os("ALPINIT_FIXTURES").is_some() {
        bail!(
            "{} not found in $ALPINIT_FIXTURES ({})",
            f.name,
            search_dirs()[0].display()
        );
    }
    download(f)
}

fn download(f: &Fixture) -> Result<PathBuf> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dest = dir.join(f.name);
    let part = dir.join(format!("{}.part", f.name));
    let status = Command::new("curl")
        .args(["-fsSL", "--max-time", "300", "-o"])
        .arg(&part)
        .arg(f.url)
        .status()
        .with_context(|| format!("running curl for {}", f.url))?;
    if !status.success() {
        let _ = std::fs::remove_file(&part);
        bail!(
            "{} is not in {:?} and downloading {} failed ({status}); set ALPINIT_FIXTURES to a directory holding it",
            f.name,
            search_dirs(),
            f.url
        );
    }
    verify(&part, f.sha512)?;
    std::fs::rename(&part, &dest).with_context(|| format!("renaming to {}", dest.display()))?;
    Ok(dest)
}

/// Refuses a file whose SHA-512 is not `expected`.
pub fn verify(p: &Path, expected: &str) -> Result<()> {
    let actual = sha512_hex(p)?;
    if actual != expected {
        bail!(
            "{}: SHA-512 {actual} does not match the pinned {expected}",
            p.display()
        );
    }
    Ok(())
}

fn sha512_hex(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", p.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Unpacks the tarball `f` into `dest` (created) with the host's `tar`,
/// keeping ownership and modes as root does (the mini roots hold setuid
/// busybox and root-owned files).
pub fn unpack(f: &Fixture, dest: &Path) -> Result<()> {
    let src = path(f)?;
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&src)
        .arg("-C")
        .arg(dest)
        .arg("--numeric-owner")
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!(
            "unpacking {} into {}: {status}",
            src.display(),
            dest.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_differs_from_the_pin_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        // SHA-512("abc") from FIPS 180-2, appendix C.1.
        let abc = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
        verify(&p, abc).unwrap();
        let err = verify(&p, &abc.replace('d', "e")).unwrap_err().to_string();
        assert!(err.contains("does not match the pinned"), "{err}");
    }

    #[test]
    fn pins_are_sha512_hex() {
        for f in ALL {
            assert_eq!(f.sha512.len(), 128, "{}", f.name);
            assert!(f
                .sha512
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(f.url.ends_with(f.name), "{}", f.url);
        }
    }
}
