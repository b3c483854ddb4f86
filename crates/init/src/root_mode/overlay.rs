//! `overlaytmpfs` (Alpine §3.5 step 5): the root read-only at
//! `/media/root-ro`, a tmpfs at `/media/root-rw` holding the upper layer
//! (`root`) and overlayfs' work directory (`work`), and an overlay of the
//! two on the sysroot. The hand-over moves both mounts into the new root
//! (`handover::move_mounts`), so the booted system finds them where Alpine
//! puts them.

use crate::layout::Layout;
use crate::log;
use crate::platform::Platform;
use crate::rootfs::{self, RootDevice, RootError};
use alpinit_kmod::Loader;
use alpinit_sys::MountFlags;
use std::path::Path;

/// Where the read-only root is mounted.
pub const LOWER: &str = "/media/root-ro";
/// Where the tmpfs with the upper layer is mounted.
pub const UPPER: &str = "/media/root-rw";

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("creating {path}")]
    Mkdir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mounting the tmpfs of the upper layer on {target} (-o {data})")]
    Tmpfs {
        target: String,
        data: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mounting the overlay on {target} (-o {data})")]
    Overlay {
        target: String,
        data: String,
        #[source]
        source: std::io::Error,
    },
}

/// The tmpfs options as Alpine builds them: `mode=0755,OPTS,rw`.
pub fn tmpfs_options(overlaytmpfsflags: Option<&str>) -> String {
    match overlaytmpfsflags.filter(|f| !f.is_empty()) {
        Some(f) => format!("mode=0755,{f},rw"),
        None => "mode=0755,rw".to_owned(),
    }
}

/// The root read-only with `rootflags=` (Alpine: `rootflags,ro`), whatever
/// they say about rw.
fn lower_options(rootflags: Option<&str>) -> (MountFlags, String) {
    let (flags, data) = rootfs::root_mount_options(rootflags);
    (flags | MountFlags::RDONLY, data)
}

/// Mounts the three layers; on failure whatever was mounted is unmounted
/// again, so the retry after the recovery shell starts clean.
pub fn mount(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &Loader,
    dev: &RootDevice,
    rootflags: Option<&str>,
    overlaytmpfsflags: Option<&str>,
) -> Result<(), RootError> {
    let lower = layout.path(LOWER);
    let upper = layout.path(UPPER);
    let shown = |path: &Path| crate::packages::unroot(layout, path);
    let mkdir = |path: &Path| {
        std::fs::create_dir_all(path).map_err(|source| OverlayError::Mkdir {
            path: shown(path),
            source,
        })
    };
    mkdir(&lower)?;
    mkdir(&upper)?;
    let (flags, data) = lower_options(rootflags);
    rootfs::mount_device(p, layout, dev, &lower, flags, &data)?;
    let undo = |mounted: &[&Path]| {
        for m in mounted {
            if let Err(e) = p.fs.umount(m, false) {
                log::warn(&format!("unmounting {}: {e}", shown(m)));
            }
        }
    };
    let data = tmpfs_options(overlaytmpfsflags);
    let (flags, fs_data) = crate::fstab::split_options(&data);
    // The upper layer is the writable part: `rw` comes last, as in Alpine.
    let flags = MountFlags(flags.0 & !libc::MS_RDONLY);
    if let Err(source) =
        p.fs.mount("root-tmpfs", &upper, Some("tmpfs"), flags, Some(&fs_data))
    {
        undo(&[&lower]);
        return Err(OverlayError::Tmpfs {
            target: UPPER.to_owned(),
            data,
            source,
        }
        .into());
    }
    let (work, root) = (upper.join("work"), upper.join("root"));
    if let Err(e) = mkdir(&work).and_then(|()| mkdir(&root)) {
        undo(&[&upper, &lower]);
        return Err(e.into());
    }
    crate::media::load_fs_modules(loader, layout, "overlay");
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        root.display(),
        work.display()
    );
    let sysroot = layout.sysroot();
    let _ = std::fs::create_dir_all(&sysroot);
    if let Err(source) = p.fs.mount(
        "overlayfs",
        &sysroot,
        Some("overlay"),
        MountFlags::NONE,
        Some(&data),
    ) {
        undo(&[&upper, &lower]);
        return Err(OverlayError::Overlay {
            target: shown(&sysroot),
            data,
            source,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_options_are_alpines_mode_flags_rw() {
        assert_eq!(tmpfs_options(None), "mode=0755,rw");
        assert_eq!(tmpfs_options(Some("")), "mode=0755,rw");
        assert_eq!(
            tmpfs_options(Some("size=64m,nr_inodes=4k")),
            "mode=0755,size=64m,nr_inodes=4k,rw"
        );
    }

    #[test]
    fn the_lower_root_is_read_only_even_with_rootflags_rw() {
        let (f, d) = lower_options(Some("rw,noatime,data=journal"));
        assert!(f.contains(MountFlags::RDONLY));
        assert!(f.contains(MountFlags(libc::MS_NOATIME)));
        assert_eq!(d, "data=journal");
        assert!(lower_options(None).0.contains(MountFlags::RDONLY));
    }
}
