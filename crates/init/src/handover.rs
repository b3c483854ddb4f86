//! Hand-over to the new root: check `init=`, move every mount under the
//! sysroot, free the initramfs, switch_root and exec.

use crate::layout::Layout;
use crate::log;
use alpinit_sys::{MountFlags, Sys};
use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("{init} not found in new root")]
    InitMissing { init: String },
    #[error("{init} in the new root is not an executable file")]
    InitNotExecutable { init: String },
    #[error("{step}: {source}")]
    Switch {
        step: &'static str,
        source: std::io::Error,
    },
}

/// `init=` must exist and be executable before anything is torn down.
pub fn check_init(layout: &Layout, init: &str) -> Result<(), HandoverError> {
    let sysroot = layout.sysroot();
    let Some(p) = crate::newroot::resolve_in_root(&sysroot, init) else {
        return Err(HandoverError::InitMissing { init: init.into() });
    };
    match std::fs::metadata(&p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(HandoverError::InitNotExecutable { init: init.into() }),
        Err(_) => Err(HandoverError::InitMissing { init: init.into() }),
    }
}

/// Mount points to move, from `/proc/mounts`: everything but `/`, the
/// sysroot and what is under it, outermost first (a moved mount carries
/// its children along, so those are left out).
pub fn mounts_to_move(proc_mounts: &str, sysroot: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in proc_mounts.lines() {
        let Some(target) = line.split_whitespace().nth(1) else {
            continue;
        };
        let target = crate::fstab::unescape(target);
        if target == "/" || target == sysroot || target.starts_with(&format!("{sysroot}/")) {
            continue;
        }
        if out
            .iter()
            .any(|o| target == *o || target.starts_with(&format!("{o}/")))
        {
            continue;
        }
        out.push(target);
    }
    out
}

pub fn move_mounts(sys: &dyn Sys, layout: &Layout) {
    let mounts = std::fs::read_to_string(layout.proc().join("mounts")).unwrap_or_default();
    let sysroot = crate::packages::unroot(layout, &layout.sysroot());
    let root = match crate::newroot::NewRoot::open(&layout.sysroot()) {
        Ok(r) => r,
        Err(e) => {
            log::warn(&format!("moving mounts into the new root: {e}"));
            return;
        }
    };
    for m in mounts_to_move(&mounts, &sysroot) {
        let src = layout.path(&m);
        if !src.is_dir() {
            continue;
        }
        let dst = match root.mount_target(&m) {
            Ok(d) => d,
            Err(e) => {
                log::warn(&format!("moving {m} into the new root: {e}"));
                continue;
            }
        };
        if let Err(e) = sys.mount(&src.to_string_lossy(), &dst, None, MountFlags::MOVE, None) {
            log::warn(&format!("moving {m} into the new root: {e}"));
        }
    }
}

/// Deletes the initramfs contents (they live in RAM) without crossing into
/// other file systems; `keep` (the sysroot) is skipped.
pub fn free_initramfs(dir: &Path, dev: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p == keep {
            continue;
        }
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            if md.dev() != dev {
                continue;
            }
            free_initramfs(&p, dev, keep);
            let _ = std::fs::remove_dir(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// The init's peak resident memory (`VmHWM`), for the boot log.
pub fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_hwm(&status)
}

fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// switch_root: only returns on failure.
pub fn switch_root(
    sys: &dyn Sys,
    layout: &Layout,
    init: &str,
    args: &[String],
    console: Option<&str>,
) -> HandoverError {
    let sysroot = layout.sysroot();
    let step = |step, source| HandoverError::Switch { step, source };
    if let Err(e) = std::env::set_current_dir(&sysroot) {
        return step("chdir to the new root", e);
    }
    if let Ok(md) = std::fs::symlink_metadata(layout.root()) {
        free_initramfs(layout.root(), md.dev(), &sysroot);
    }
    if let Err(e) = sys.mount(".", Path::new("/"), None, MountFlags::MOVE, None) {
        return step("moving the new root onto /", e);
    }
    if let Err(e) = sys.chroot_here() {
        return step("chroot", e);
    }
    if let Err(e) = std::env::set_current_dir("/") {
        return step("chdir /", e);
    }
    if let Some(c) = console {
        crate::early::reopen_console(&Path::new("/dev").join(c));
    }
    let argv: Vec<CString> = std::iter::once(init.to_owned())
        .chain(args.iter().cloned())
        .filter_map(|a| CString::new(a).ok())
        .collect();
    let Some(prog) = argv.first().cloned() else {
        return step(
            "exec",
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        );
    };
    if let Some(kib) = peak_memory_kib() {
        log::info(&format!("peak memory {kib} kB"));
    }
    log::phase("switch-root");
    match nix::unistd::execv(&prog, &argv) {
        Err(e) => step("exec", std::io::Error::from_raw_os_error(e as i32)),
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_from_proc_status() {
        assert_eq!(
            vm_hwm("Name:\tinit\nVmPeak:\t 9000 kB\nVmHWM:\t    4321 kB\n"),
            Some(4321)
        );
        assert_eq!(vm_hwm("Name:\tinit\n"), None);
    }

    #[test]
    fn mounts_to_move_skips_root_sysroot_and_children() {
        let m = "rootfs / rootfs rw 0 0\nsysfs /sys sysfs rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\nproc /proc proc rw 0 0\ndevpts /dev/pts devpts rw 0 0\nshm /dev/shm tmpfs rw 0 0\n/dev/sr0 /media/sr0 iso9660 ro 0 0\ntmpfs /sysroot tmpfs rw 0 0\n/dev/sda1 /media/my\\040stick vfat ro 0 0\n";
        assert_eq!(
            mounts_to_move(m, "/sysroot"),
            ["/sys", "/dev", "/proc", "/media/sr0", "/media/my stick"]
        );
    }

    #[test]
    fn init_check_follows_absolute_symlinks_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let root = layout.sysroot();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        std::fs::write(root.join("bin/busybox"), b"#!").unwrap();
        std::fs::set_permissions(
            root.join("bin/busybox"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("/bin/busybox", root.join("sbin/init")).unwrap();
        check_init(&layout, "/sbin/init").unwrap();
        let missing = check_init(&layout, "/sbin/nope").unwrap_err();
        assert_eq!(missing.to_string(), "/sbin/nope not found in new root");
        std::fs::write(root.join("bin/data"), b"").unwrap();
        assert!(matches!(
            check_init(&layout, "/bin/data"),
            Err(HandoverError::InitNotExecutable { .. })
        ));
    }

    #[test]
    fn resolve_never_leaves_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("a/up")).unwrap();
        let resolve_in_root = crate::newroot::resolve_in_root;
        assert_eq!(resolve_in_root(&root, "/a/up"), Some(root.join("etc")));
        assert_eq!(resolve_in_root(&root, "/a/up/../../.."), Some(root.clone()));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(resolve_in_root(&root, "/loop"), None);
    }

    #[test]
    fn free_initramfs_keeps_the_sysroot() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("lib/modules")).unwrap();
        std::fs::write(r.join("lib/modules/x.ko"), b"x").unwrap();
        std::fs::create_dir_all(r.join("sysroot/etc")).unwrap();
        std::fs::write(r.join("init"), b"x").unwrap();
        let dev = std::fs::metadata(r).unwrap().dev();
        free_initramfs(r, dev, &r.join("sysroot"));
        assert!(!r.join("lib").exists() && !r.join("init").exists());
        assert!(r.join("sysroot/etc").is_dir());
    }
}
