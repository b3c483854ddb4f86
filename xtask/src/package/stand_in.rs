//! A stand-in for Alpine's `mkinitfs` package, made from the mkinitfs
//! 3.13.0 source fixture: the files its Makefile's `install` target puts in
//! place (the `mkinitfs` script, `initramfs-init`, `fstab`, `passwd`,
//! `group`, `features.d`, `mkinitfs.conf`), so that `alpinit-mkinitfs`'s
//! dependency resolves and its scripts edit a real `mkinitfs.conf`. The Alpine
//! mini root used by the tests has no mkinitfs package, and the real one
//! cannot be fetched here. Left out: `nlplug-findfs` and `bootchartd` (C
//! and scripts for Alpine's own init, which alpinit replaces) and the man
//! pages.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use alpinit_qemu_tests::alpine_repo::{self, Installed, Key};
use anyhow::{Context, Result};

use super::{installed_size, walk, Package};
use crate::mkinitfs;

/// The version the fixture's Makefile declares.
pub const VERSION: &str = "3.13.0";

/// Writes `mkinitfs-3.13.0-r0.apk` into OUT, signed with KEY; FEATURES
/// become its `mkinitfs.conf`.
pub fn mkinitfs_package(out: &Path, key: &Key, features: &str) -> Result<Package> {
    let work = out.join("mkinitfs-src");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let src = mkinitfs::unpack_source(&work)?;
    let root = out.join("pkg/mkinitfs");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    // The Makefile's SED_REPLACE with its default directories.
    let fill = |text: &str| mkinitfs::substitute(text, "/usr/share/mkinitfs");
    let script = fs::read_to_string(src.join("mkinitfs.in")).context("reading mkinitfs.in")?;
    put(&root, "sbin/mkinitfs", fill(&script).as_bytes(), 0o755)?;
    let init =
        fs::read_to_string(src.join("initramfs-init.in")).context("reading initramfs-init.in")?;
    put(
        &root,
        "usr/share/mkinitfs/initramfs-init",
        fill(&init).as_bytes(),
        0o755,
    )?;
    for name in ["fstab", "passwd", "group"] {
        let data = fs::read(src.join(name)).with_context(|| format!("reading {name}"))?;
        put(&root, &format!("usr/share/mkinitfs/{name}"), &data, 0o644)?;
    }
    let features_dir = src.join("features.d");
    for entry in fs::read_dir(&features_dir)
        .with_context(|| format!("reading {}", features_dir.display()))?
    {
        let entry = entry.with_context(|| format!("reading {}", features_dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let data = fs::read(entry.path()).with_context(|| format!("reading {name}"))?;
        put(
            &root,
            &format!("etc/mkinitfs/features.d/{name}"),
            &data,
            0o644,
        )?;
    }
    put(
        &root,
        "etc/mkinitfs/mkinitfs.conf",
        conf(features).as_bytes(),
        0o644,
    )?;
    let entries = walk(&root)?;
    let version = format!("{VERSION}-r0");
    let installed = Installed {
        header: vec![
            ('P', "mkinitfs".into()),
            ('V', version.clone()),
            ('A', "x86_64".into()),
            ('I', installed_size(&root)?.to_string()),
            (
                'T',
                "Alpine's mkinitfs 3.13.0 scripts (stand-in built from its source for tests)"
                    .into(),
            ),
            ('U', "https://gitlab.alpinelinux.org/alpine/mkinitfs".into()),
            ('L', "GPL-2.0-only".into()),
            ('o', "mkinitfs".into()),
            ('t', "0".into()),
        ],
        entries,
        scripts: Vec::new(),
    };
    let built = alpine_repo::build_package(&installed, &root, key)?;
    let path = out.join(built.file_name());
    fs::write(&path, &built.bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(Package {
        name: "mkinitfs".into(),
        version,
        path,
    })
}

/// The stand-in's `mkinitfs.conf`, as the package installs it.
pub fn conf(features: &str) -> String {
    format!("features=\"{features}\"\n")
}

fn put(root: &Path, rel: &str, data: &[u8], mode: u32) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}
