//! Trust material and architecture of the new root, as `initramfs-init` sets
//! them up before `apk add` (Alpine §3.6): the image's apk keys, the modloop
//! signing keys, and `/etc/apk/arch`. Every write resolves inside the new
//! root ([`NewRoot`]); the image itself is trusted, so its symlinks are
//! followed when reading.

use crate::in_root::{NewRoot, NewRootError};
use crate::layout::Layout;
use crate::log;
use std::path::{Path, PathBuf};

/// A key or signature file of the image is a few KiB; a larger one is not a
/// key and is not copied (PID 1 never reads an unbounded file).
const KEY_LIMIT: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{path}: {source}")]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is too large for a key (at most {KEY_LIMIT})")]
    TooLarge { path: PathBuf, size: u64 },
    #[error(transparent)]
    NewRoot(#[from] NewRootError),
}

/// The regular files of `dir` (symlinks followed, so a key linked into
/// `/usr/share/apk/keys` counts), sorted by name. A dangling link or a
/// directory is skipped.
fn key_files(dir: &Path, matches: impl Fn(&str) -> bool) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            (matches(&name) && std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
                .then(|| (name, e.path()))
        })
        .collect();
    alpinit_sort::sort(&mut found);
    found
}

/// Copies `files` into the directory `rel_dir` of the new root as regular
/// files with the content their links point at.
fn copy_in(root: &NewRoot, rel_dir: &str, files: &[(String, PathBuf)]) -> Result<(), KeysError> {
    root.create_dir_all(rel_dir)?;
    for (name, path) in files {
        let size = std::fs::metadata(path)
            .map_err(|source| KeysError::Stat {
                path: path.clone(),
                source,
            })?
            .len();
        if size > KEY_LIMIT {
            return Err(KeysError::TooLarge {
                path: path.clone(),
                size,
            });
        }
        root.copy_file_in(path, &format!("{rel_dir}/{name}"))?;
    }
    Ok(())
}

/// `mkdir -p $sysroot/etc/apk/keys; cp -a /etc/apk/keys $sysroot/etc/apk`,
/// except that a key which is a symlink in the image (alpine-keys links
/// `/etc/apk/keys/*` into `/usr/share/apk/keys`) arrives as a real file: the
/// link's target does not exist in the new root before apk runs, and apk
/// reads the keys there.
pub fn install_apk_keys(layout: &Layout) {
    let keys = key_files(&layout.path("/etc/apk/keys"), |_| true);
    let copied = NewRoot::open(&layout.sysroot())
        .map_err(KeysError::from)
        .and_then(|root| copy_in(&root, "etc/apk/keys", &keys));
    if let Err(e) = copied {
        log::warn(&format!(
            "copying apk keys into the new root: {}",
            crate::failure::chain(&e)
        ));
    }
}

/// Whether `name` is a modloop signing key (`*modloop*.SIGN.RSA.*.pub`).
fn is_modloop_key(name: &str) -> bool {
    let Some(at) = name.find("modloop") else {
        return false;
    };
    let rest = &name[at + "modloop".len()..];
    rest.find(".SIGN.RSA.")
        .is_some_and(|i| rest[i + ".SIGN.RSA.".len()..].ends_with(".pub"))
}

/// Whether the image carries a modloop signing key.
pub fn has_modloop_keys(layout: &Layout) -> bool {
    !key_files(&layout.path("/var/cache/misc"), is_modloop_key).is_empty()
}

/// Alpine's "enable support for modloop verification": the image's
/// `/var/cache/misc/*modloop*.SIGN.RSA.*.pub` are copied to the new root's
/// `/var/cache/misc` (where the modloop service verifies the modloop with
/// openssl, which [`crate::install::packages`] adds).
pub fn install_modloop_keys(layout: &Layout) {
    let keys = key_files(&layout.path("/var/cache/misc"), is_modloop_key);
    if keys.is_empty() {
        return;
    }
    let copied = NewRoot::open(&layout.sysroot())
        .map_err(KeysError::from)
        .and_then(|root| copy_in(&root, "var/cache/misc", &keys));
    if let Err(e) = copied {
        log::warn(&format!(
            "copying modloop signing keys into the new root: {}",
            crate::failure::chain(&e)
        ));
    }
}

/// apk's name for the architecture this init runs on (`apk --print-arch`
/// of an apk built for the same machine). None where the compiler's
/// architecture does not tell apk's apart (32-bit ARM: armhf or armv7).
pub fn apk_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("x86_64"),
        "x86" => Some("x86"),
        "aarch64" => Some("aarch64"),
        "riscv64" => Some("riscv64"),
        "s390x" => Some("s390x"),
        "loongarch64" => Some("loongarch64"),
        "powerpc64" if cfg!(target_endian = "little") => Some("ppc64le"),
        _ => None,
    }
}

/// "Silently fix apk arch in case the apkovl does not match": when the new
/// root has `/etc/apk/arch` (an overlay made on another machine), it is
/// rewritten with this machine's architecture; when it has none, none is
/// written.
pub fn fix_apk_arch(layout: &Layout, arch: Option<&str>) {
    let Some(arch) = arch else {
        return;
    };
    let fixed = NewRoot::open(&layout.sysroot()).and_then(|root| {
        if !root.present("etc/apk/arch") {
            return Ok(());
        }
        root.write_file("etc/apk/arch", format!("{arch}\n").as_bytes(), 0o644)
    });
    if let Err(e) = fixed {
        log::warn(&format!(
            "correcting the new root's /etc/apk/arch: {}",
            crate::failure::chain(&e)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modloop_key_names_follow_alpines_glob() {
        for yes in [
            "modloop.SIGN.RSA.ncopa-4d1b7620.rsa.pub",
            "lts-modloop.SIGN.RSA.x.pub",
            "modloop-lts.SIGN.RSA.a.b.pub",
        ] {
            assert!(is_modloop_key(yes), "{yes}");
        }
        for no in [
            "modloop.SIGN.RSA.pub.bak",
            "modloop.pub",
            "kernel.SIGN.RSA.x.pub",
            "modloop.SIGN.RSA.",
        ] {
            assert!(!is_modloop_key(no), "{no}");
        }
    }

    /// Regression: keys that were symlinks in the image were skipped, so the
    /// new root had no keys and apk refused every package.
    #[test]
    fn apk_keys_linked_into_usr_share_arrive_as_files() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let share = tmp.path().join("usr/share/apk/keys");
        std::fs::create_dir_all(&share).unwrap();
        std::fs::write(share.join("alpine-devel.rsa.pub"), "KEY\n").unwrap();
        let keys = tmp.path().join("etc/apk/keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::os::unix::fs::symlink(
            "../../../usr/share/apk/keys/alpine-devel.rsa.pub",
            keys.join("alpine-devel.rsa.pub"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/nowhere", keys.join("dangling.rsa.pub")).unwrap();
        std::fs::create_dir_all(layout.sysroot()).unwrap();
        install_apk_keys(&layout);
        let copied = layout.in_sysroot("etc/apk/keys/alpine-devel.rsa.pub");
        assert!(std::fs::symlink_metadata(&copied).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(copied).unwrap(), "KEY\n");
        assert!(!layout.in_sysroot("etc/apk/keys/dangling.rsa.pub").exists());
    }

    #[test]
    fn an_oversized_key_is_not_copied() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let misc = tmp.path().join("var/cache/misc");
        std::fs::create_dir_all(&misc).unwrap();
        let big = misc.join("modloop.SIGN.RSA.big.pub");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(KEY_LIMIT + 1)
            .unwrap();
        std::fs::create_dir_all(layout.sysroot()).unwrap();
        assert!(has_modloop_keys(&layout));
        install_modloop_keys(&layout);
        assert!(!layout
            .in_sysroot("var/cache/misc/modloop.SIGN.RSA.big.pub")
            .exists());
    }

    #[test]
    fn apk_arch_is_rewritten_only_when_present() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        std::fs::create_dir_all(layout.in_sysroot("etc/apk")).unwrap();
        fix_apk_arch(&layout, Some("x86_64"));
        assert!(!layout.in_sysroot("etc/apk/arch").exists());
        std::fs::write(layout.in_sysroot("etc/apk/arch"), "aarch64\n").unwrap();
        fix_apk_arch(&layout, Some("x86_64"));
        assert_eq!(
            std::fs::read_to_string(layout.in_sysroot("etc/apk/arch")).unwrap(),
            "x86_64\n"
        );
    }

    #[test]
    fn apk_arch_of_this_build_is_known() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(apk_arch(), Some("x86_64"));
        }
    }
}
