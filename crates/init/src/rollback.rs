//! Rollback to the last good overlay (README "When something fails"): when
//! the chosen overlay is damaged, the backups `lbu commit` left beside it
//! (`HOST.YYYYmmddHHMMSS.tar.gz[.cipher]`, alpine-initramfs.md §5.4 in the
//! shared reference) are tried newest first, and the first good one is used.

use crate::overlay::OverlayError;
use alpinit_apkovl::enc::EncError;
use alpinit_apkovl::{ArchiveError, GzipError, UnpackError};
use std::path::{Path, PathBuf};

/// Where the booted system reads what happened to its overlay. Under
/// `/var/log`, not `/run` (OpenRC mounts a fresh tmpfs there, hiding the
/// file) nor `/etc` (`lbu commit` would save it into the next overlay).
pub const RECORD: &str = "var/log/alpinit-overlay";

/// Directory entries read at most when looking for backups: a medium with
/// a huge top level must not stall the boot.
const MAX_DIR_ENTRIES: usize = 4096;

/// One backup of the failed overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    /// `YYYYmmddHHMMSS`, UTC, from the name.
    pub stamp: String,
}

impl Backup {
    /// `2026-11-30 19:46:43 UTC`.
    pub fn date(&self) -> String {
        let s = &self.stamp;
        format!(
            "{}-{}-{} {}:{}:{} UTC",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[8..10],
            &s[10..12],
            &s[12..14]
        )
    }
}

/// The backups of `failed` (`HOST.apkovl.tar.gz[.cipher]`) in its directory,
/// newest first by the timestamp in the name (then by name, so the order
/// never depends on the directory's). Regular files only.
pub fn backups(failed: &Path) -> Vec<Backup> {
    let Some(name) = failed.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let Some(host) = alpinit_apkovl::overlay_host(name) else {
        return Vec::new();
    };
    let Some(dir) = failed.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Backup> = entries
        .take(MAX_DIR_ENTRIES)
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stamp = alpinit_apkovl::backup_stamp(host, &name)?.to_owned();
            Some(Backup {
                path: dir.join(name),
                stamp,
            })
        })
        .collect();
    alpinit_sort::sort_by(&mut found, |a, b| {
        b.stamp.cmp(&a.stamp).then_with(|| a.path.cmp(&b.path))
    });
    found
}

/// Whether a backup may stand in for an overlay that failed with `e`: the
/// file is damaged (gzip, tar or cipher structure, a read error) or its
/// signature is missing or wrong. Not for what the user or the policy
/// decided: a wrong or missing password, an unsupported cipher, a limit, a
/// path escape or any other rule of the unpack.
pub fn is_damage(e: &OverlayError) -> bool {
    match e {
        OverlayError::Signature(_) => true,
        OverlayError::Unpack(u) => unpack_damage(u),
        OverlayError::Encrypted(e) => enc_damage(e),
        OverlayError::NoPassword(_) => false,
    }
}

fn unpack_damage(e: &UnpackError) -> bool {
    match e {
        UnpackError::Open { .. } | UnpackError::Source(_) => true,
        UnpackError::Archive(a) => match a {
            ArchiveError::Gzip(g) => !matches!(g, GzipError::TooLarge { .. }),
            ArchiveError::Checksum { .. }
            | ArchiveError::Truncated { .. }
            | ArchiveError::Number { .. }
            | ArchiveError::Pax { .. } => true,
            _ => false,
        },
        _ => false,
    }
}

fn enc_damage(e: &EncError) -> bool {
    matches!(
        e,
        EncError::Open { .. }
            | EncError::Read(_)
            | EncError::NotSalted
            | EncError::Truncated
            | EncError::BadPadding
            | EncError::TruncatedFile { .. }
            | EncError::Damaged { .. }
    )
}

/// What happened to each overlay tried, one line each, for [`RECORD`].
#[derive(Debug, Default)]
pub struct Record {
    lines: Vec<String>,
}

impl Record {
    pub fn applied(&mut self, shown: &str) {
        self.lines.push(format!("applied {shown}"));
    }

    pub fn failed(&mut self, shown: &str, reason: &str) {
        self.lines.push(format!("failed {shown}: {reason}"));
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Writes the record into the new root (resolved inside it, as every
    /// write after the overlay).
    pub fn write(&self, sysroot: &Path) {
        let mut text = self.lines.join("\n");
        text.push('\n');
        let result = crate::in_root::NewRoot::open(sysroot).and_then(|root| {
            root.create_dir_all("var/log")?;
            root.write_file(RECORD, text.as_bytes(), 0o644)
        });
        if let Err(e) = result {
            crate::log::warn(&format!("writing /{RECORD}: {}", crate::failure::chain(&e)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_newest_first_by_the_stamp_only_of_the_same_host() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for n in [
            "h.apkovl.tar.gz",
            "h.20240101000000.tar.gz",
            "h.20251231235959.tar.gz.aes-256-cbc",
            "h.20250601120000.tar.gz",
            "h.20250601120000.tar.gz.sig",
            "other.20261231000000.tar.gz",
            "h.2026.tar.gz",
        ] {
            std::fs::write(d.join(n), "x").unwrap();
        }
        std::fs::create_dir(d.join("h.20261111111111.tar.gz")).unwrap();
        std::os::unix::fs::symlink("h.apkovl.tar.gz", d.join("h.20261212121212.tar.gz")).unwrap();
        let got: Vec<String> = backups(&d.join("h.apkovl.tar.gz"))
            .iter()
            .map(|b| b.path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            got,
            [
                "h.20251231235959.tar.gz.aes-256-cbc",
                "h.20250601120000.tar.gz",
                "h.20240101000000.tar.gz"
            ]
        );
        assert!(backups(&d.join("x.apkovl.tar.gz.bak")).is_empty());
    }

    #[test]
    fn backup_date_is_read_from_the_name() {
        let b = Backup {
            path: PathBuf::from("h.20261130194643.tar.gz"),
            stamp: "20261130194643".into(),
        };
        assert_eq!(b.date(), "2026-11-30 19:46:43 UTC");
    }

    #[test]
    fn damage_rolls_back_but_a_password_or_a_policy_does_not() {
        let io = || std::io::Error::other("x");
        let damage = [
            OverlayError::Unpack(UnpackError::Archive(ArchiveError::Gzip(
                GzipError::Corrupt(io()),
            ))),
            OverlayError::Unpack(UnpackError::Archive(ArchiveError::Gzip(GzipError::NotGzip))),
            OverlayError::Unpack(UnpackError::Archive(ArchiveError::Truncated {
                what: "member data",
                offset: 0,
            })),
            OverlayError::Unpack(UnpackError::Archive(ArchiveError::Checksum { offset: 0 })),
            OverlayError::Encrypted(EncError::Damaged { path: "x".into() }),
            OverlayError::Encrypted(EncError::TruncatedFile {
                path: "x".into(),
                len: 3,
            }),
            OverlayError::Signature(crate::signature::SignatureError::SigMissing {
                path: "x.sig".into(),
            }),
        ];
        for e in &damage {
            assert!(is_damage(e), "{e:?}");
        }
        let not = [
            OverlayError::Encrypted(EncError::WrongPassword),
            OverlayError::Encrypted(EncError::Unsupported("bf".into())),
            OverlayError::NoPassword("x".into()),
            OverlayError::Unpack(UnpackError::Name {
                member: "../x".into(),
                reason: alpinit_apkovl::NameError::DotDot,
            }),
            OverlayError::Unpack(UnpackError::TooManyEntries { limit: 1 }),
            OverlayError::Unpack(UnpackError::Archive(ArchiveError::TotalBytes { limit: 1 })),
            OverlayError::Unpack(UnpackError::Archive(ArchiveError::Gzip(
                GzipError::TooLarge { limit: 1 },
            ))),
            OverlayError::Unpack(UnpackError::NoSpace { member: "x".into() }),
        ];
        for e in &not {
            assert!(!is_damage(e), "{e:?}");
        }
    }
}
