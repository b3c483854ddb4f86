//! The new root: a tmpfs, optionally /usr-merged, with the chosen apkovl
//! unpacked into it (Alpine §3.6 steps 6-7, §3.7).

use crate::layout::Layout;
use alpinit_sys::{MountFlags, Sys};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SysrootError {
    #[error("mounting tmpfs on {path} with {options}: {source}")]
    Tmpfs {
        path: PathBuf,
        options: String,
        source: std::io::Error,
    },
    #[error("creating {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn mount_tmpfs(sys: &dyn Sys, layout: &Layout, options: &str) -> Result<(), SysrootError> {
    let root = layout.sysroot();
    std::fs::create_dir_all(&root).map_err(|source| SysrootError::Create {
        path: root.clone(),
        source,
    })?;
    sys.mount(
        "tmpfs",
        &root,
        Some("tmpfs"),
        MountFlags::NONE,
        Some(options),
    )
    .map_err(|source| SysrootError::Tmpfs {
        path: root,
        options: options.to_owned(),
        source,
    })
}

/// `bootstrap_usr_merged`: `/usr/{bin,sbin,lib}` with `/bin`, `/sbin`,
/// `/lib` symlinks into them, before the overlay lands on top.
pub fn usr_merge(layout: &Layout) -> Result<(), SysrootError> {
    for d in ["usr/lib", "usr/bin", "usr/sbin"] {
        let p = layout.in_sysroot(d);
        std::fs::create_dir_all(&p).map_err(|source| SysrootError::Create { path: p, source })?;
    }
    for d in ["bin", "sbin", "lib"] {
        let link = layout.in_sysroot(d);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("usr/{d}"), &link)
                .map_err(|source| SysrootError::Create { path: link, source })?;
        }
    }
    Ok(())
}

/// Free bytes of the file system holding `p` (the unpack's byte limit).
pub fn free_bytes(p: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(p).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpinit_sys::Recorder;

    #[test]
    fn usr_merge_makes_dirs_and_links() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        usr_merge(&layout).unwrap();
        for d in ["bin", "sbin", "lib"] {
            assert_eq!(
                std::fs::read_link(layout.in_sysroot(d)).unwrap(),
                Path::new("usr").join(d)
            );
        }
        assert!(layout.in_sysroot("usr/sbin").is_dir());
    }

    #[test]
    fn tmpfs_uses_the_options_given() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        mount_tmpfs(&rec, &Layout::new(tmp.path()), "mode=0755,size=50%").unwrap();
        let m = &rec.mounts()[0];
        assert_eq!(m.2.as_deref(), Some("tmpfs"));
        assert_eq!(m.3.as_deref(), Some("mode=0755,size=50%"));
        assert!(m.1.ends_with("sysroot"));
    }
}
