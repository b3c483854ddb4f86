//! Hand-over to the new root: check `init=`, move every mount under the
//! sysroot, free the initramfs, switch_root and exec.

use crate::layout::Layout;
use crate::log;
use alpinit_sys::{MountFlags, Sys};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How long the hand-over waits for module loads still running (a module
/// inserted while the root moves is harmless, one hung in init_module must
/// not stop the boot).
pub const MODULES_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("{init} not found in new root")]
    InitMissing { init: String },
    #[error("{init} in the new root is not an executable file")]
    InitNotExecutable { init: String },
    #[error("the new root {path} is not mounted")]
    NotMounted { path: PathBuf },
    #[error("{step}: {source}")]
    Switch {
        step: &'static str,
        source: std::io::Error,
    },
}

/// `init=` must exist and be executable before anything is torn down.
pub fn check_init(layout: &Layout, init: &str) -> Result<(), HandoverError> {
    let sysroot = layout.sysroot();
    let Some(p) = crate::in_root::resolve_in_root(&sysroot, init) else {
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
    for m in crate::fstab::proc_mounts(proc_mounts) {
        let target = m.target;
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
    let root = match crate::in_root::NewRoot::open(&layout.sysroot()) {
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
///
/// Order: everything that can fail and leave the boot stuck comes before
/// anything is deleted. The new root must be a mount point with an
/// executable `init`; then chdir into it, `mount --move . /` and
/// `chroot .`. Only once those succeeded are the initramfs contents (held
/// open by a descriptor taken before the move) deleted, so a failing move
/// or chroot leaves busybox and the recovery shell in place.
pub fn switch_root(
    sys: &dyn Sys,
    layout: &Layout,
    init: &str,
    args: &[String],
    console: Option<&str>,
) -> HandoverError {
    // A worker thread that hit a bug holds the console with the recovery
    // shell: the exec must not take it away.
    crate::emergency::park_if_another_thread_panicked();
    let old = match enter_new_root(sys, layout, init, &Process) {
        Ok(old) => old,
        Err(e) => return e,
    };
    crate::free_initramfs::in_background(old);
    if let Some(c) = console {
        crate::early::reopen_console(&Path::new("/dev").join(c));
    }
    let step = |step, source| HandoverError::Switch { step, source };
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

/// The initramfs after the new root was moved over it: reachable only
/// through this descriptor.
pub struct OldRoot {
    dir: OwnedFd,
    dev: u64,
}

/// What the hand-over asks of the process besides [`Sys`]; tests record
/// these instead of moving the test process.
pub trait ProcessOps {
    fn chdir(&self, path: &Path) -> std::io::Result<()>;
    /// Whether `path` is the root of a mount (its device differs from its
    /// parent's, the same test busybox switch_root makes).
    fn is_mount_point(&self, path: &Path) -> bool;
}

/// The running process.
pub struct Process;

impl ProcessOps for Process {
    fn chdir(&self, path: &Path) -> std::io::Result<()> {
        std::env::set_current_dir(path)
    }

    fn is_mount_point(&self, path: &Path) -> bool {
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev());
        match (dev(path), dev(&path.join(".."))) {
            (Ok(a), Ok(b)) => a != b,
            _ => false,
        }
    }
}

/// The checks, then chdir, `mount --move . /`, `chroot .`, `chdir /`.
/// Nothing is deleted here; on failure the process is back in the
/// initramfs' root directory.
pub fn enter_new_root(
    sys: &dyn Sys,
    layout: &Layout,
    init: &str,
    ops: &dyn ProcessOps,
) -> Result<OldRoot, HandoverError> {
    let step = |step, source| HandoverError::Switch { step, source };
    let chdir = |p: &Path| ops.chdir(p);
    let sysroot = layout.sysroot();
    if !ops.is_mount_point(&sysroot) {
        return Err(HandoverError::NotMounted { path: sysroot });
    }
    check_init(layout, init)?;
    let dir =
        std::fs::File::open(layout.root()).map_err(|e| step("opening the initramfs root", e))?;
    let dev = dir
        .metadata()
        .map_err(|e| step("reading the initramfs root", e))?
        .dev();
    let dir = OwnedFd::from(dir);
    chdir(&sysroot).map_err(|e| step("chdir to the new root", e))?;
    let back = |err: HandoverError| {
        if let Err(e) = chdir(layout.root()) {
            log::warn(&format!("chdir back to the initramfs: {e}"));
        }
        err
    };
    sys.mount(".", Path::new("/"), None, MountFlags::MOVE, None)
        .map_err(|e| back(step("moving the new root onto /", e)))?;
    sys.chroot_here().map_err(|e| back(step("chroot", e)))?;
    chdir(Path::new("/")).map_err(|e| step("chdir /", e))?;
    Ok(OldRoot { dir, dev })
}

/// Deepest directory level of the initramfs that is freed; it is a few
/// levels deep, and the bound keeps the recursion's stack use fixed.
const FREE_DEPTH: u32 = 32;

impl OldRoot {
    /// Deletes the initramfs contents (they live in RAM) without crossing
    /// into other file systems.
    pub fn free(self) {
        free_dir(&self.dir, self.dev, FREE_DEPTH);
    }

    /// The initramfs' root directory, for the child that frees it
    /// (`crate::free_initramfs`).
    pub(crate) fn dir_fd(&self) -> std::os::fd::RawFd {
        self.dir.as_raw_fd()
    }

    /// The initramfs root open as DIR on device DEV (that child's view).
    pub(crate) fn from_parts(dir: OwnedFd, dev: u64) -> Self {
        OldRoot { dir, dev }
    }
}

fn free_dir(dir: &OwnedFd, dev: u64, depth: u32) {
    use nix::fcntl::{AtFlags, OFlag};
    use nix::sys::stat::Mode;
    use nix::unistd::UnlinkatFlags;
    let Ok(mut listing) = nix::dir::Dir::openat(
        Some(dir.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let names: Vec<CString> = listing
        .iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let Ok(st) = nix::sys::stat::fstatat(
            Some(dir.as_raw_fd()),
            name.as_c_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) else {
            continue;
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if is_dir {
            if st.st_dev != dev || depth == 0 {
                continue;
            }
            if let Ok(fd) = nix::fcntl::openat(
                Some(dir.as_raw_fd()),
                name.as_c_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                // SAFETY: `fd` was just returned by a successful openat(2)
                // and nothing else owns it.
                let child = unsafe { OwnedFd::from_raw_fd(fd) };
                free_dir(&child, dev, depth - 1);
            }
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name.as_c_str(),
                UnlinkatFlags::RemoveDir,
            );
        } else {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name.as_c_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
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
        let resolve_in_root = crate::in_root::resolve_in_root;
        assert_eq!(resolve_in_root(&root, "/a/up"), Some(root.join("etc")));
        assert_eq!(resolve_in_root(&root, "/a/up/../../.."), Some(root.clone()));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(resolve_in_root(&root, "/loop"), None);
    }

    use alpinit_sys::{Call, Recorder};
    use std::cell::RefCell;

    /// Records chdirs; the new root counts as mounted when `mounted`.
    struct FakeProcess {
        mounted: bool,
        chdirs: RefCell<Vec<PathBuf>>,
    }

    impl ProcessOps for FakeProcess {
        fn chdir(&self, path: &Path) -> std::io::Result<()> {
            self.chdirs.borrow_mut().push(path.to_owned());
            Ok(())
        }
        fn is_mount_point(&self, _: &Path) -> bool {
            self.mounted
        }
    }

    fn fake(mounted: bool) -> FakeProcess {
        FakeProcess {
            mounted,
            chdirs: RefCell::new(Vec::new()),
        }
    }

    /// An initramfs with busybox and modules, and a new root with an
    /// executable /sbin/init.
    fn initramfs() -> (tempfile::TempDir, Layout) {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let r = tmp.path();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::write(r.join("bin/busybox"), b"#!").unwrap();
        std::fs::create_dir_all(r.join("lib/modules/6.1/kernel")).unwrap();
        std::fs::write(r.join("lib/modules/6.1/kernel/x.ko"), b"x").unwrap();
        std::os::unix::fs::symlink("/bin/busybox", r.join("sh")).unwrap();
        std::fs::write(r.join("init"), b"x").unwrap();
        std::fs::create_dir_all(layout.in_sysroot("sbin")).unwrap();
        std::fs::write(layout.in_sysroot("sbin/init"), b"#!").unwrap();
        std::fs::set_permissions(
            layout.in_sysroot("sbin/init"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        (tmp, layout)
    }

    fn intact(layout: &Layout) -> bool {
        let r = layout.root();
        r.join("bin/busybox").is_file()
            && r.join("lib/modules/6.1/kernel/x.ko").is_file()
            && r.join("init").is_file()
    }

    /// Regression: switch_root deleted the initramfs (busybox included)
    /// before the move; a failing move left no recovery shell.
    #[test]
    fn failing_move_leaves_the_initramfs_intact() {
        let (_tmp, layout) = initramfs();
        let rec = Recorder::new();
        rec.fail_when("source: \".\"", libc::EINVAL);
        let p = fake(true);
        let err = enter_new_root(&rec, &layout, "/sbin/init", &p)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("moving the new root onto /"),
            "{err}"
        );
        assert!(intact(&layout));
        assert!(!rec.calls().contains(&Call::ChrootHere));
        // Back in the initramfs' root after the failed move.
        assert_eq!(p.chdirs.borrow().last().unwrap(), layout.root());
    }

    #[test]
    fn failing_chroot_leaves_the_initramfs_intact() {
        let (_tmp, layout) = initramfs();
        let rec = Recorder::new();
        rec.fail_when("ChrootHere", libc::EPERM);
        let err = enter_new_root(&rec, &layout, "/sbin/init", &fake(true))
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("chroot"), "{err}");
        assert!(intact(&layout));
    }

    #[test]
    fn unmounted_new_root_or_missing_init_stops_before_any_call() {
        let (_tmp, layout) = initramfs();
        let rec = Recorder::new();
        let err = enter_new_root(&rec, &layout, "/sbin/init", &fake(false))
            .err()
            .unwrap();
        assert!(matches!(err, HandoverError::NotMounted { .. }), "{err}");
        let err = enter_new_root(&rec, &layout, "/sbin/nope", &fake(true))
            .err()
            .unwrap();
        assert!(matches!(err, HandoverError::InitMissing { .. }), "{err}");
        assert!(rec.calls().is_empty());
        assert!(intact(&layout));
    }

    /// The initramfs is freed only after the move and the chroot succeeded,
    /// through the descriptor taken before the move.
    #[test]
    fn initramfs_is_freed_only_after_move_and_chroot() {
        let (_tmp, layout) = initramfs();
        let rec = Recorder::new();
        let p = fake(true);
        let old = enter_new_root(&rec, &layout, "/sbin/init", &p).unwrap();
        let calls = rec.calls();
        assert!(
            matches!(&calls[0], Call::Mount { source, target, flags, .. }
                if source == "." && target == Path::new("/") && *flags == MountFlags::MOVE),
            "{calls:?}"
        );
        assert_eq!(calls[1], Call::ChrootHere);
        assert_eq!(*p.chdirs.borrow(), [layout.sysroot(), PathBuf::from("/")]);
        assert!(intact(&layout), "deleted before free()");
        old.free();
        let left: Vec<_> = std::fs::read_dir(layout.root()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
