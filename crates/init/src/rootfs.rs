//! Root mode's root device (`root=` set; Alpine §3.5): wait for it and
//! tell its file system ([`find_root`]), mount it ([`mount_device`]) with
//! `rootfstype=`/`rootflags=` (default `ro`). What happens between and
//! after (`single`, resume, `overlaytmpfs`, `/usr`) is in `root_mode.rs`.
//! Boot media are not scanned in this mode, as in Alpine.

use crate::discovery;
use crate::layout::Layout;
use crate::log;
use crate::platform::Platform;
use alpinit_sys::MountFlags;
use std::path::Path;

/// Why the root could not be mounted.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("root=ZFS={dataset}")]
    Zfs {
        dataset: String,
        #[source]
        source: crate::assemble::AssembleError,
    },
    #[error("root device {spec} not found ({block_devices} block devices seen)")]
    NotFound { spec: String, block_devices: usize },
    #[error(transparent)]
    Ambiguous {
        #[from]
        source: crate::devices::DeviceError,
    },
    #[error("cannot tell the file system of /dev/{devname} (root={spec}); set rootfstype=")]
    FsType { spec: String, devname: String },
    #[error("mounting {src} ({fstype}) on {target}")]
    Mount {
        src: String,
        fstype: String,
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Overlay(#[from] crate::root_mode::overlay::OverlayError),
}

/// Mount flags and data for the root: `rootflags=` or Alpine's default `ro`.
pub fn root_mount_options(rootflags: Option<&str>) -> (MountFlags, String) {
    crate::fstab::split_options(rootflags.filter(|f| !f.is_empty()).unwrap_or("ro"))
}

/// The root device found, and the file system to mount it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootDevice {
    pub devname: String,
    pub fstype: String,
}

/// Waits for the root device and tells its file system (loading its
/// modules); the error names what is missing.
pub fn find_root(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    spec: &str,
    rootfstype: Option<&str>,
    options: &discovery::Options,
) -> Result<RootDevice, RootError> {
    let findings = discovery::discover(p, layout, loader, options);
    crate::modules::report_missing_drivers(layout, loader.index());
    root_device(
        layout,
        loader,
        spec,
        rootfstype,
        &findings.wanted,
        findings.block_devices,
    )
}

/// The root device among `wanted` (what matched `spec`, of `block_devices`
/// seen) and its file system, whose modules are loaded.
pub fn root_device(
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    spec: &str,
    rootfstype: Option<&str>,
    wanted: &crate::devices::Matches,
    block_devices: usize,
) -> Result<RootDevice, RootError> {
    let devname = match wanted.unique("root device", spec)? {
        Some(d) => d.to_owned(),
        None => {
            return Err(RootError::NotFound {
                spec: spec.to_owned(),
                block_devices,
            })
        }
    };
    log::phase("media-found");
    let Some(fstype) = rootfstype
        .map(str::to_owned)
        .or_else(|| crate::media::fstype_of(layout, &devname))
    else {
        return Err(RootError::FsType {
            spec: spec.to_owned(),
            devname,
        });
    };
    crate::media::load_fs_modules(loader, layout, &fstype);
    Ok(RootDevice { devname, fstype })
}

/// Mounts the root device on `target` with `flags` and `data`.
pub fn mount_device(
    p: &Platform<'_>,
    layout: &Layout,
    dev: &RootDevice,
    target: &Path,
    flags: MountFlags,
    data: &str,
) -> Result<(), RootError> {
    let _ = std::fs::create_dir_all(target);
    let data = (!data.is_empty()).then_some(data);
    let src = format!("/dev/{}", dev.devname);
    p.fs.mount(&src, target, Some(&dev.fstype), flags, data)
        .map_err(|source| RootError::Mount {
            src,
            fstype: dev.fstype.clone(),
            target: crate::packages::unroot(layout, target),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_read_only_unless_rootflags_say_otherwise() {
        let (f, d) = root_mount_options(None);
        assert!(f.contains(MountFlags::RDONLY));
        assert_eq!(d, "");
        let (f, d) = root_mount_options(Some("rw,noatime,data=journal"));
        assert!(!f.contains(MountFlags::RDONLY));
        assert!(f.contains(MountFlags(libc::MS_NOATIME)));
        assert_eq!(d, "data=journal");
    }
}
