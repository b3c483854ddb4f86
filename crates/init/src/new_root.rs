//! The new root phases around the overlay: the tmpfs root before it, the
//! fstab remount and boot-media relocation after it, and the files the new
//! root gets last (`/etc/apk/repositories`, `/etc/resolv.conf`).

use crate::failure::Failure;
use crate::layout::Layout;
use crate::log;
use crate::media::Medium;
use crate::platform::Platform;
use crate::{fstab, sysroot};
use alpinit_cmdline::Cmdline;
use alpinit_sys::MountFlags;

/// The tmpfs root with `rootflags=`, /usr-merged when asked.
pub fn prepare(p: &Platform<'_>, layout: &Layout, cmdline: &Cmdline) -> Result<(), Failure> {
    if cmdline.root_size_deprecated() {
        log::console("WARNING: the boot option root_size is deprecated. Use rootflags instead\n");
    }
    sysroot::mount_tmpfs(p.fs, layout, &cmdline.tmpfs_options())?;
    if cmdline.bootstrap_usr_merged() {
        if let Err(e) = sysroot::usr_merge(layout) {
            log::warn(&crate::failure::chain(&e));
        }
    }
    Ok(())
}

/// The new root's (else the initramfs') fstab: a `/` tmpfs entry remounts
/// the new root with its options; boot media move to their fstab places.
pub fn apply_fstab(p: &Platform<'_>, layout: &Layout, media: &mut [Medium]) {
    let sysroot_fstab = fstab::read_new_root(layout);
    let fstab_text = sysroot_fstab
        .clone()
        .or_else(|| std::fs::read_to_string(layout.path("/etc/fstab")).ok())
        .unwrap_or_default();
    let entries = fstab::parse(&fstab_text);
    if sysroot_fstab.is_some() {
        if let Some(opts) = fstab::root_tmpfs_options(&entries) {
            let (flags, data) = fstab::split_options(opts);
            let flags = flags | MountFlags::REMOUNT;
            if let Err(e) = p.fs.mount("", &layout.sysroot(), None, flags, Some(&data)) {
                log::warn(&format!("remounting the new root with {opts}: {e}"));
            }
        }
    }
    fstab::relocate(p.fs, layout, &entries, media);
}

/// Files the new root needs and the overlay did not bring, written inside
/// the new root whatever symlinks the overlay planted.
pub fn finish(layout: &Layout, repos: &[String]) {
    crate::packages::write_repositories(layout, repos);
    crate::in_root::copy_resolv_conf(layout);
}
