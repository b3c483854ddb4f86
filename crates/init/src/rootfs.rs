//! Root mode (`root=` set; Alpine §3.5): wait for the root device, mount it
//! on the sysroot with `rootfstype=`/`rootflags=` (default `ro`), hand over.
//! Boot media are not scanned in this mode, as in Alpine.

use crate::discovery;
use crate::layout::Layout;
use crate::log::{self, Progress};
use crate::platform::Platform;
use alpinit_sys::MountFlags;

/// Why the root could not be mounted.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("root={spec}: ZFS roots are not supported by this version")]
    Zfs { spec: String },
    #[error("root device {spec} not found ({block_devices} block devices seen)")]
    NotFound { spec: String, block_devices: usize },
    #[error(transparent)]
    Ambiguous {
        #[from]
        source: crate::devices::DeviceError,
    },
    #[error("cannot tell the file system of /dev/{devname} (root={spec}); set rootfstype=")]
    FsType { spec: String, devname: String },
    #[error("mounting {src} ({fstype}) on /sysroot")]
    Mount {
        src: String,
        fstype: String,
        #[source]
        source: std::io::Error,
    },
}

/// Mount flags and data for the root: `rootflags=` or Alpine's default `ro`.
pub fn root_mount_options(rootflags: Option<&str>) -> (MountFlags, String) {
    crate::fstab::split_options(rootflags.filter(|f| !f.is_empty()).unwrap_or("ro"))
}

fn failed(progress: Progress, e: RootError) -> Result<(), RootError> {
    progress.failed(&crate::failure::chain(&e));
    Err(e)
}

/// Finds and mounts the root device; the error names what is missing.
pub fn mount_root(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    spec: &str,
    rootfstype: Option<&str>,
    rootflags: Option<&str>,
    options: discovery::Options,
) -> Result<(), RootError> {
    let progress = Progress::begin("Mounting root");
    if spec.starts_with("ZFS=") {
        return failed(
            progress,
            RootError::Zfs {
                spec: spec.to_owned(),
            },
        );
    }
    let findings = discovery::discover(p, layout, loader, &options);
    let devname = match findings.wanted.unique("root device", spec) {
        Ok(Some(d)) => d.to_owned(),
        Ok(None) => {
            return failed(
                progress,
                RootError::NotFound {
                    spec: spec.to_owned(),
                    block_devices: findings.block_devices,
                },
            )
        }
        Err(source) => return failed(progress, RootError::Ambiguous { source }),
    };
    log::phase("media-found");
    let fstype = match rootfstype
        .map(str::to_owned)
        .or_else(|| crate::media::fstype_of(layout, &devname))
    {
        Some(t) => t,
        None => {
            return failed(
                progress,
                RootError::FsType {
                    spec: spec.to_owned(),
                    devname,
                },
            )
        }
    };
    crate::media::load_fs_modules(loader, layout, &fstype);
    let (flags, data) = root_mount_options(rootflags);
    let sysroot = layout.sysroot();
    let _ = std::fs::create_dir_all(&sysroot);
    let data = (!data.is_empty()).then_some(data.as_str());
    let src = format!("/dev/{devname}");
    if let Err(source) = p.fs.mount(&src, &sysroot, Some(&fstype), flags, data) {
        return failed(
            progress,
            RootError::Mount {
                src,
                fstype,
                source,
            },
        );
    }
    progress.ok();
    Ok(())
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
