//! Programs an image feature carries, as mkinitfs' `features.d/*.files`
//! (`lvm.files`: `/sbin/lvm`; `raid.files`: `/sbin/mdadm`,
//! `/etc/mdadm.conf`; `cryptsetup.files`: `/sbin/cryptsetup`;
//! `zfs.files`: `/usr/sbin/zfs`, `/usr/sbin/zpool`; `wireguard.files`:
//! `/usr/bin/wg`, `/etc/wireguard/initrd.conf`), taken from the host's
//! Debian packages with their shared-library closure as `ldd` lists it.
//! The init runs them at the paths mkinitfs uses (`crates/init/src/assemble`).
//! `btrfs` carries no program: the init registers members in process.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

use crate::cpio::Archive;

/// One file of a feature: where it goes in the image, where it may be on
/// the host, the Debian package that has it, and whether it may be absent.
pub struct FeatureFile {
    pub dest: &'static str,
    pub host: &'static [&'static str],
    pub package: &'static str,
    pub optional: bool,
}

const fn file(
    dest: &'static str,
    host: &'static [&'static str],
    package: &'static str,
) -> FeatureFile {
    FeatureFile {
        dest,
        host,
        package,
        optional: false,
    }
}

pub const FEATURE_FILES: &[(&str, &[FeatureFile])] = &[
    (
        "lvm",
        &[file("sbin/lvm", &["/usr/sbin/lvm", "/sbin/lvm"], "lvm2")],
    ),
    (
        "raid",
        &[
            file("sbin/mdadm", &["/usr/sbin/mdadm", "/sbin/mdadm"], "mdadm"),
            FeatureFile {
                dest: "etc/mdadm.conf",
                host: &["/etc/mdadm.conf"],
                package: "mdadm",
                optional: true,
            },
        ],
    ),
    (
        "cryptsetup",
        &[file(
            "sbin/cryptsetup",
            &["/usr/sbin/cryptsetup", "/sbin/cryptsetup"],
            "cryptsetup-bin",
        )],
    ),
    (
        "zfs",
        &[
            file(
                "usr/sbin/zfs",
                &["/usr/sbin/zfs", "/sbin/zfs"],
                "zfsutils-linux",
            ),
            file(
                "usr/sbin/zpool",
                &["/usr/sbin/zpool", "/sbin/zpool"],
                "zfsutils-linux",
            ),
        ],
    ),
    (
        "wireguard",
        &[
            file("usr/bin/wg", &["/usr/bin/wg"], "wireguard-tools"),
            // The tunnel's keys and peers: the host's own, if it has one.
            FeatureFile {
                dest: "etc/wireguard/initrd.conf",
                host: &["/etc/wireguard/initrd.conf"],
                package: "wireguard-tools",
                optional: true,
            },
        ],
    ),
];

/// Features in an image only when named in `--features`, not in the
/// default set: those whose programs (and glibc) come from the host, and
/// `aoe` and `nbd` (mkinitfs' default features have none of them).
pub const OPT_IN: &[&str] = &[
    "lvm",
    "raid",
    "cryptsetup",
    "zfs",
    "wireguard",
    "aoe",
    "nbd",
];

/// The shared libraries `ldd` lists for `program` (none for a static one).
pub fn libraries(program: &Path) -> Result<Vec<String>> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .with_context(|| format!("running ldd {}", program.display()))?;
    Ok(alpinit_qemu_tests::ldd::parse(&String::from_utf8_lossy(
        &out.stdout,
    )))
}

/// Adds the files of the selected features and their libraries; returns
/// how many files were added.
pub fn add(archive: &mut Archive, features: &[String]) -> Result<usize> {
    let mut added = 0;
    for (name, files) in FEATURE_FILES {
        if !features.iter().any(|f| f == name) {
            continue;
        }
        for f in *files {
            let Some(src) = f.host.iter().map(Path::new).find(|p| p.is_file()) else {
                if f.optional {
                    continue;
                }
                bail!(
                    "feature {name} needs {} from Debian's {} (cargo xtask deps installs it)",
                    f.host[0],
                    f.package
                );
            };
            let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
            let mode = if f.dest.starts_with("etc/") {
                0o644
            } else {
                0o755
            };
            archive.add_file(f.dest, mode, data);
            added += 1;
            for lib in libraries(src)? {
                let data = std::fs::read(&lib).with_context(|| format!("reading {lib}"))?;
                archive.add_file(lib.trim_start_matches('/'), 0o755, data);
                added += 1;
            }
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_features_have_module_lists_and_are_opt_in() {
        for (name, _) in FEATURE_FILES {
            assert!(OPT_IN.contains(name), "{name}");
            assert!(
                crate::features::entries(&[name.to_string()]).is_ok(),
                "{name}"
            );
        }
    }

    /// The programs sit where the init and mkinitfs look for them.
    #[test]
    fn destinations_are_mkinitfs_paths() {
        let dests: Vec<&str> = FEATURE_FILES
            .iter()
            .flat_map(|(_, f)| f.iter().map(|f| f.dest))
            .collect();
        for d in [
            "sbin/lvm",
            "sbin/mdadm",
            "sbin/cryptsetup",
            "usr/sbin/zpool",
            "usr/sbin/zfs",
            "usr/bin/wg",
        ] {
            assert!(dests.contains(&d), "{d}");
        }
    }
}
