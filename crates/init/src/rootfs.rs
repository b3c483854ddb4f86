//! Root mode (`root=` set; Alpine §3.5): wait for the root device, mount it
//! on the sysroot with `rootfstype=`/`rootflags=` (default `ro`), hand over.
//! Boot media are not scanned in this mode, as in Alpine.

use crate::discovery;
use crate::layout::Layout;
use crate::log::{self, Progress};
use alpinit_sys::{MountFlags, Sys};

/// Mount flags and data for the root: `rootflags=` or Alpine's default `ro`.
pub fn root_mount_options(rootflags: Option<&str>) -> (MountFlags, String) {
    crate::fstab::split_options(rootflags.filter(|f| !f.is_empty()).unwrap_or("ro"))
}

/// Finds and mounts the root device. Returns a message naming what is
/// missing on failure.
pub fn mount_root(
    sys: &dyn Sys,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    spec: &str,
    rootfstype: Option<&str>,
    rootflags: Option<&str>,
    options: discovery::Options,
) -> Result<(), String> {
    let p = Progress::begin("Mounting root");
    if spec.starts_with("ZFS=") {
        let msg = format!("root={spec}: ZFS roots are not supported by this version");
        p.failed(&msg);
        return Err(msg);
    }
    let findings = discovery::discover(sys, layout, loader, &options);
    let devname = match findings.wanted.unique("root device", spec) {
        Ok(Some(d)) => d.to_owned(),
        Ok(None) => {
            let msg = format!(
                "root device {spec} not found ({} block devices seen)",
                findings.block_devices
            );
            p.failed(&msg);
            return Err(msg);
        }
        Err(e) => {
            let msg = e.to_string();
            p.failed(&msg);
            return Err(msg);
        }
    };
    log::phase("media-found");
    let fstype = match rootfstype
        .map(str::to_owned)
        .or_else(|| crate::media::fstype_of(layout, &devname))
    {
        Some(t) => t,
        None => {
            let msg = format!(
                "cannot tell the file system of /dev/{devname} (root={spec}); set rootfstype="
            );
            p.failed(&msg);
            return Err(msg);
        }
    };
    crate::media::load_fs_modules(loader, &fstype);
    let (flags, data) = root_mount_options(rootflags);
    let sysroot = layout.sysroot();
    let _ = std::fs::create_dir_all(&sysroot);
    let data = (!data.is_empty()).then_some(data.as_str());
    let src = format!("/dev/{devname}");
    if let Err(e) = sys.mount(&src, &sysroot, Some(&fstype), flags, data) {
        let msg = format!("mounting {src} ({fstype}) on /sysroot: {e}");
        p.failed(&msg);
        return Err(msg);
    }
    p.ok();
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
