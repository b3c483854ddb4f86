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
    let sysroot_fstab = layout.in_sysroot("/etc/fstab");
    let fstab_text = std::fs::read_to_string(&sysroot_fstab)
        .or_else(|_| std::fs::read_to_string(layout.path("/etc/fstab")))
        .unwrap_or_default();
    let entries = fstab::parse(&fstab_text);
    if sysroot_fstab.exists() {
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

/// Files the new root needs and the overlay did not bring.
pub fn finish(layout: &Layout, repos: &[String]) {
    let repo_file = layout.in_sysroot("/etc/apk/repositories");
    if !repo_file.exists() && !repos.is_empty() {
        let text = format!("{}\n", repos.join("\n"));
        let written = std::fs::create_dir_all(layout.in_sysroot("/etc/apk"))
            .and_then(|()| std::fs::write(&repo_file, text));
        if let Err(e) = written {
            log::warn(&format!("writing {}: {e}", repo_file.display()));
        }
    }
    let resolv = layout.in_sysroot("/etc/resolv.conf");
    let initramfs_resolv = layout.path("/etc/resolv.conf");
    if !resolv.exists() && initramfs_resolv.exists() {
        if let Err(e) = std::fs::copy(&initramfs_resolv, &resolv) {
            log::warn(&format!("copying {}: {e}", initramfs_resolv.display()));
        }
    }
}
