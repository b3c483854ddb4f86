//! `/usr` from the new root's fstab (Alpine §3.5 step 7): for every fstab
//! line whose mount point is `/usr`, wait for its device (`UUID=`,
//! `LABEL=`, `PARTUUID=` or a path, matched as `root=` is) and mount it on
//! the new root's `/usr` with the fstab's type and `usrflags=` (default
//! `ro`; `disable` skips this). The fstab is read, and the mount point
//! resolved, inside the new root (`in_root.rs`).

use crate::early::Early;
use crate::failure::{chain, End, Failure, Policy};
use crate::fstab::Entry;
use crate::in_root::{NewRoot, NewRootError};
use crate::layout::Layout;
use crate::log::Progress;
use crate::platform::Platform;
use alpinit_cmdline::Cmdline;
use alpinit_kmod::Loader;

#[derive(Debug, thiserror::Error)]
pub enum UsrError {
    #[error("/usr device {spec} not found ({block_devices} block devices seen)")]
    NotFound { spec: String, block_devices: usize },
    #[error(transparent)]
    Ambiguous(#[from] crate::devices::DeviceError),
    #[error("cannot tell the file system of /dev/{devname} (/usr {spec}); give it in fstab")]
    FsType { spec: String, devname: String },
    #[error("the mount point /usr in the new root")]
    Target {
        #[source]
        source: NewRootError,
    },
    #[error("/usr in the new root resolves to the new root itself; not mounting over it")]
    TargetIsRoot,
    #[error("mounting {src} ({fstype}) on /usr of the new root")]
    Mount {
        src: String,
        fstype: String,
        #[source]
        source: std::io::Error,
    },
}

/// The fstab lines for `/usr`, in file order.
pub fn usr_entries(entries: &[Entry]) -> impl Iterator<Item = &Entry> {
    entries.iter().filter(|e| e.file == "/usr")
}

/// `usrflags=`: `None` for `disable`, else the options (default `ro`).
pub fn usr_options(usrflags: Option<&str>) -> Option<&str> {
    match usrflags.filter(|f| !f.is_empty()) {
        Some("disable") => None,
        Some(f) => Some(f),
        None => Some("ro"),
    }
}

/// Mounts `/usr` when the new root's fstab has it. A failure says why and
/// gives the recovery shell; after it the boot goes on (as in Alpine).
pub fn mount(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &Loader,
    early: &Early,
    policy: &Policy,
) -> Result<(), End> {
    let Some(opts) = usr_options(cmdline.get("usrflags")) else {
        return Ok(());
    };
    let Some(text) = crate::fstab::read_new_root(layout) else {
        return Ok(());
    };
    let entries = crate::fstab::parse(&text);
    for e in usr_entries(&entries) {
        let progress = Progress::begin("Mounting /usr");
        match mount_one(p, layout, cmdline, loader, early, e, opts) {
            Ok(()) => progress.ok(),
            Err(source) => {
                progress.failed(&chain(&source));
                policy.handle(p, &Failure::Usr { source })?;
            }
        }
    }
    Ok(())
}

fn mount_one(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &Loader,
    early: &Early,
    e: &Entry,
    opts: &str,
) -> Result<(), UsrError> {
    let (matches, block_devices) = super::wait_device(p, layout, loader, cmdline, early, &e.spec);
    let Some(devname) = matches.unique("/usr device", &e.spec)? else {
        return Err(UsrError::NotFound {
            spec: e.spec.clone(),
            block_devices,
        });
    };
    let fstype = match e.vfstype.as_str() {
        "" | "auto" => crate::media::fstype_of(layout, devname),
        t => Some(t.to_owned()),
    };
    let Some(fstype) = fstype else {
        return Err(UsrError::FsType {
            spec: e.spec.clone(),
            devname: devname.to_owned(),
        });
    };
    crate::media::load_fs_modules(loader, layout, &fstype);
    let target = NewRoot::open(&layout.sysroot())
        .and_then(|root| root.mount_target("usr"))
        .map_err(|source| UsrError::Target { source })?;
    // A `usr -> /` symlink resolves (inside the new root) to its top:
    // mounting there would hide the whole root.
    if target == layout.sysroot() {
        return Err(UsrError::TargetIsRoot);
    }
    let (flags, data) = crate::fstab::split_options(opts);
    let data = (!data.is_empty()).then_some(data.as_str());
    let src = format!("/dev/{devname}");
    p.fs.mount(&src, &target, Some(&fstype), flags, data)
        .map_err(|source| UsrError::Mount {
            src,
            fstype,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usrflags_default_ro_and_disable_skips() {
        assert_eq!(usr_options(None), Some("ro"));
        assert_eq!(usr_options(Some("")), Some("ro"));
        assert_eq!(usr_options(Some("rw,noatime")), Some("rw,noatime"));
        assert_eq!(usr_options(Some("disable")), None);
    }

    #[test]
    fn only_usr_lines_are_taken() {
        let e = crate::fstab::parse(
            "UUID=1 / ext4 rw 0 1\n/dev/vda2\t/usr\text4\tdefaults 0 0\nLABEL=X /usr/local ext4 ro 0 0\n",
        );
        let usr: Vec<_> = usr_entries(&e).map(|e| e.spec.as_str()).collect();
        assert_eq!(usr, ["/dev/vda2"]);
    }
}
