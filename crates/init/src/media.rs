//! Boot media: mount a probed file system read-only at `/media/<dev>`, look
//! at its top level for apkovls and boot repositories, let go of it when it
//! holds neither (nlplug's `scandev`).

use crate::layout::Layout;
use alpinit_sys::{MountFlags, Sys};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("creating mount point {path}: {source}")]
    MountPoint {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mounting /dev/{dev} ({fstype}) on {path}: {source}")]
    Mount {
        dev: String,
        fstype: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Scan {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A mounted medium that holds something the boot needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Medium {
    pub devname: String,
    pub major: u32,
    pub minor: u32,
    pub fstype: String,
    pub mountpoint: PathBuf,
    pub usb: bool,
    /// Top-level `*.apkovl.tar.gz*` regular files, sorted by name.
    pub apkovls: Vec<PathBuf>,
    /// Boot repositories ([`boot_repositories`]), sorted.
    pub repos: Vec<PathBuf>,
}

/// Findings at the top level of a mounted file system.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub apkovls: Vec<PathBuf>,
    pub repos: Vec<PathBuf>,
    /// Names that matched but were skipped (symlinks, devices), for the log.
    pub skipped: Vec<String>,
}

/// The apkovl to use among those found on `media`: every candidate and
/// the choice are logged (the rules: `alpinit_apkovl::choose`).
pub fn choose_apkovl(media: &[Medium]) -> Option<PathBuf> {
    let cands = apkovl_candidates(media);
    alpinit_apkovl::choose_logged(&cands, &mut |l| crate::log::info(l)).map(|c| c.path.clone())
}

/// The apkovls of `media` as candidates of `alpinit_apkovl::choose`.
pub fn apkovl_candidates(media: &[Medium]) -> Vec<alpinit_apkovl::Candidate> {
    media
        .iter()
        .flat_map(|m| {
            m.apkovls.iter().map(move |p| alpinit_apkovl::Candidate {
                path: p.clone(),
                device: m.devname.clone(),
                device_has_boot_repo: !m.repos.is_empty(),
                removable: m.usb,
            })
        })
        .collect()
}

/// Directories read at most per medium by [`boot_repositories`]: the
/// search is three levels deep and a large data disk must not stall the
/// boot reading all of them.
const REPO_SEARCH_DIRS: usize = 4096;

/// The one definition of a boot repository, Alpine's (§3.6 step 12 of
/// `/work/shared/reference/alpine-initramfs.md`): a directory holding a
/// regular file `.boot_repository`, found up to three levels down from the
/// medium's root (`find MNT -maxdepth 3 -name .boot_repository -type f`),
/// the root itself included. Symlinks are not followed. Sorted.
pub fn boot_repositories(medium: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![(medium.to_owned(), 1u32)];
    let mut read = 0;
    while let Some((dir, depth)) = todo.pop() {
        if read == REPO_SEARCH_DIRS {
            crate::log::warn(&format!(
                "boot repository search stopped after {REPO_SEARCH_DIRS} directories of {}",
                medium.display()
            ));
            break;
        }
        read += 1;
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_file() && e.file_name() == ".boot_repository" {
                found.push(dir.clone());
            } else if ft.is_dir() && depth < 3 {
                todo.push((e.path(), depth + 1));
            }
        }
    }
    alpinit_sort::sort(&mut found);
    found
}

/// Apkovls are looked for at the top level only, like nlplug; boot
/// repositories by [`boot_repositories`]. Candidates must be regular
/// files: a symlink named `x.apkovl.tar.gz` is skipped rather than followed
/// (it could point anywhere once the medium is mounted). Results are sorted
/// so the order never depends on `readdir`.
pub fn scan(dir: &Path) -> Result<Scan, MediaError> {
    let mut out = Scan::default();
    let entries = std::fs::read_dir(dir).map_err(|source| MediaError::Scan {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_dir() {
            continue;
        } else if alpinit_apkovl::is_apkovl_name(name) {
            if ft.is_file() {
                out.apkovls.push(path);
            } else {
                out.skipped.push(name.to_owned());
            }
        }
    }
    alpinit_sort::sort(&mut out.apkovls);
    out.repos = boot_repositories(dir);
    Ok(out)
}

pub const MEDIA_FLAGS: MountFlags = MountFlags(
    MountFlags::RDONLY.0 | MountFlags::NOSUID.0 | MountFlags::NODEV.0 | MountFlags::NOEXEC.0,
);

/// Mounts `/dev/<devname>` at `/media/<devname>` read-only.
pub fn mount(
    sys: &dyn Sys,
    layout: &Layout,
    devname: &str,
    fstype: &str,
) -> Result<PathBuf, MediaError> {
    let leaf = devname.rsplit('/').next().unwrap_or(devname);
    let mnt = layout.media().join(leaf);
    std::fs::create_dir_all(&mnt).map_err(|source| MediaError::MountPoint {
        path: mnt.clone(),
        source,
    })?;
    let src = format!("/dev/{devname}");
    sys.mount(&src, &mnt, Some(fstype), MEDIA_FLAGS, None)
        .map_err(|source| MediaError::Mount {
            dev: devname.to_owned(),
            fstype: fstype.to_owned(),
            path: mnt.clone(),
            source,
        })?;
    Ok(mnt)
}

/// The mount(2) file system type of `/dev/<devname>`, read from its superblock.
pub fn fstype_of(layout: &Layout, devname: &str) -> Option<String> {
    alpinit_probe::probe_path(&layout.dev().join(devname))
        .ok()
        .and_then(|p| p.fstype)
        .and_then(|t| alpinit_probe::mount_fstype(&t).map(str::to_owned))
}

/// Loads what mounting `fstype` needs (the module, its softdeps, nls), since
/// there is no /sbin/modprobe for the kernel to call. Built-in file systems
/// and unknown names are fine: the mount then says what is missing.
pub fn load_fs_modules(loader: &alpinit_kmod::Loader, layout: &Layout, fstype: &str) {
    for m in alpinit_kmod::fs_modules(fstype) {
        match loader.load_now(m) {
            Ok(()) => {}
            // Not in the image: say which feature brings it (the mount then fails).
            Err(alpinit_kmod::LoadError::Plan(alpinit_kmod::PlanError::Unknown { .. }))
                if !kernel_has_fs(layout, fstype) =>
            {
                crate::log::error(&format!(
                    "{fstype} file systems cannot be mounted: {}",
                    crate::modules::not_in_image(m)
                ));
            }
            Err(e) => crate::log::debug(&format!("module {m} for {fstype}: {e}")),
        }
    }
}

/// `fstype` is in the kernel's `/proc/filesystems` (built in, or loaded
/// already): a module missing from the image then does not matter.
fn kernel_has_fs(layout: &Layout, fstype: &str) -> bool {
    std::fs::read_to_string(layout.proc().join("filesystems")).is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().last() == Some(fstype))
    })
}

/// Device names that appear as mount sources in `/proc/mounts`.
pub fn mounted_sources(proc_mounts: &str) -> Vec<String> {
    crate::fstab::proc_mounts(proc_mounts)
        .into_iter()
        .map(|m| m.source)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpinit_sys::Recorder;

    #[test]
    fn scan_finds_top_level_apkovls_and_repos_only() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("host.apkovl.tar.gz"), b"x").unwrap();
        std::fs::write(d.join("old.apkovl.tar.gz.bak"), b"x").unwrap();
        std::fs::write(d.join("notes.txt"), b"x").unwrap();
        std::fs::create_dir_all(d.join("apks/x86_64")).unwrap();
        std::fs::write(d.join("apks/.boot_repository"), b"").unwrap();
        std::fs::create_dir_all(d.join("deep")).unwrap();
        std::fs::write(d.join("deep/x.apkovl.tar.gz"), b"x").unwrap();
        std::fs::create_dir_all(d.join("empty")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", d.join("evil.apkovl.tar.gz")).unwrap();
        let s = scan(d).unwrap();
        assert_eq!(
            s.apkovls,
            [
                d.join("host.apkovl.tar.gz"),
                d.join("old.apkovl.tar.gz.bak")
            ]
        );
        assert_eq!(s.repos, [d.join("apks")]);
        assert_eq!(s.skipped, ["evil.apkovl.tar.gz"]);
    }

    /// Regression: the media scan looked one level deep and the repository
    /// list three; both now use Alpine's rule, and agree.
    #[test]
    fn boot_repository_is_one_rule_for_media_and_repositories() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let m = layout.media().join("sda1");
        for (dir, marker) in [
            ("a/b", "file"),
            ("a/b/c/d", "file"),
            ("x", "dir"),
            ("y", "link"),
            ("", "file"),
        ] {
            let d = m.join(dir);
            std::fs::create_dir_all(&d).unwrap();
            let f = d.join(".boot_repository");
            match marker {
                "file" => std::fs::write(f, b"").unwrap(),
                "dir" => std::fs::create_dir(f).unwrap(),
                _ => std::os::unix::fs::symlink("/etc/hostname", f).unwrap(),
            }
        }
        // Depth 3 at most (a/b/.boot_repository is the third level), the
        // root counts, the marker must be a regular file.
        let want = [m.clone(), m.join("a/b")];
        assert_eq!(boot_repositories(&m), want);
        assert_eq!(scan(&m).unwrap().repos, want);
        assert_eq!(
            crate::packages::find_repositories(&layout, &[]),
            ["/media/sda1", "/media/sda1/a/b"]
        );
    }

    /// security.md M6/M7: a FIFO or directory named like an apkovl is never
    /// opened, and a newline in a name cannot split a log record.
    #[test]
    fn m6_m7_fifo_dir_and_newline_names() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        nix::unistd::mkfifo(
            &d.join("fifo.apkovl.tar.gz"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        std::fs::create_dir(d.join("dir.apkovl.tar.gz")).unwrap();
        std::fs::write(d.join("new\nline.apkovl.tar.gz"), b"x").unwrap();
        let s = scan(d).unwrap();
        assert_eq!(s.apkovls, [d.join("new\nline.apkovl.tar.gz")]);
        assert_eq!(s.skipped, ["fifo.apkovl.tar.gz"]);
        let rec = crate::log::record(
            crate::log::Level::Info,
            &format!("found apkovl {}", s.apkovls[0].display()),
        );
        assert_eq!(rec.matches('\n').count(), 1);
    }

    #[test]
    fn mount_is_read_only_nosuid_nodev_noexec_at_media_devname() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        let layout = Layout::new(tmp.path());
        let mnt = mount(&rec, &layout, "sda1", "vfat").unwrap();
        assert_eq!(mnt, tmp.path().join("media/sda1"));
        let calls = rec.calls();
        let alpinit_sys::Call::Mount {
            source,
            flags,
            fstype,
            ..
        } = &calls[0]
        else {
            panic!("{calls:?}")
        };
        assert_eq!(source, "/dev/sda1");
        assert_eq!(fstype.as_deref(), Some("vfat"));
        assert_eq!(*flags, MEDIA_FLAGS);
    }

    #[test]
    fn mount_failure_names_device_and_type() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        rec.fail_when("/dev/sdb1", libc::EINVAL);
        let err = mount(&rec, &Layout::new(tmp.path()), "sdb1", "exfat").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/dev/sdb1") && msg.contains("exfat"), "{msg}");
    }

    #[test]
    fn candidates_carry_the_boot_repository_flag() {
        let mk = |dev: &str, repo: bool| Medium {
            devname: dev.into(),
            major: 0,
            minor: 0,
            fstype: "ext4".into(),
            mountpoint: PathBuf::from("/media").join(dev),
            usb: false,
            apkovls: vec![PathBuf::from("/media").join(dev).join("h.apkovl.tar.gz")],
            repos: if repo {
                vec![PathBuf::from("/media").join(dev).join("apks")]
            } else {
                vec![]
            },
        };
        let media = [mk("vda1", false), mk("vdb1", true)];
        assert_eq!(
            choose_apkovl(&media),
            Some(PathBuf::from("/media/vdb1/h.apkovl.tar.gz"))
        );
    }
}
