//! The API file systems and the few device nodes every later phase needs,
//! with exactly the options of Alpine's init (§3.4 step 3).

use crate::layout::Layout;
use alpinit_sys::{MountFlags, NodeKind, Sys};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum EarlyError {
    #[error("mounting {what} on {target}: {source}")]
    Mount {
        what: &'static str,
        target: String,
        source: std::io::Error,
    },
}

/// What the early phase ended up with.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Early {
    /// devtmpfs was not available and `/dev` is a tmpfs: the init must make
    /// device nodes itself (mdev-style).
    pub dev_is_tmpfs: bool,
}

const NOSUID_NODEV_NOEXEC: MountFlags =
    MountFlags(MountFlags::NOSUID.0 | MountFlags::NODEV.0 | MountFlags::NOEXEC.0);

fn is_char_dev(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device())
}

fn mknod_if_missing(sys: &dyn Sys, p: &Path, mode: u32, major: u32, minor: u32) {
    if !is_char_dev(p) {
        let _ = std::fs::remove_file(p);
        let _ = sys.mknod(p, NodeKind::Char, mode, major, minor);
    }
}

/// The early phase: API file systems, the console descriptors, the kernel
/// log and the first phase lines. The console and kmsg are set up even when
/// a mount failed, so the failure can be reported.
pub fn run(
    p: &crate::platform::Platform<'_>,
    layout: &Layout,
    t_start: std::time::Duration,
) -> Result<Early, EarlyError> {
    let early = mount_api_filesystems(p.fs, layout);
    ensure_console_fds(layout);
    crate::log::open_kmsg(&layout.dev().join("kmsg"));
    crate::log::phase_at("start", t_start);
    if early.is_ok() {
        crate::log::phase("early-mounts");
    }
    install_applets(p, layout);
    early
}

/// The PATH Alpine's init exports before anything else
/// (`export PATH="$PATH:/usr/bin:/bin:/usr/sbin:/sbin"` in mkinitfs'
/// `initramfs-init.in`); the recovery shell gets it.
pub const ALPINE_PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";

/// Alpine's PATH after what the kernel handed PID 1 (usually nothing: the
/// kernel passes no PATH to init, and an empty entry would mean the current
/// directory).
pub fn shell_path(inherited: Option<&str>) -> String {
    match inherited {
        Some(p) if !p.is_empty() => format!("{p}:{ALPINE_PATH}"),
        _ => ALPINE_PATH.to_owned(),
    }
}

/// `/bin/busybox --install -s`, as Alpine's init does first, so the
/// recovery shell finds `ls`, `mount`, `vi` ... by name. Run after `/proc`
/// is mounted: busybox reads `/proc/self/exe` for the links' target.
/// Existing files (the image's own `/sbin/nlplug-findfs`, `/init`) are kept:
/// busybox makes only the links that are missing. Skipped when the image
/// builder made the links already ([`APPLETS_MARKER`]).
pub fn install_applets(p: &crate::platform::Platform<'_>, layout: &Layout) {
    use std::os::unix::fs::PermissionsExt;
    let busybox = layout.path(APPLETS_TARGET);
    let Ok(meta) = std::fs::metadata(&busybox) else {
        return;
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return;
    }
    if let Some(at_boot) = links_made_at_build(layout, meta.len()) {
        for link in at_boot.iter().flatten() {
            match std::os::unix::fs::symlink(APPLETS_TARGET, layout.path(link)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => crate::log::warn(&format!("linking {link} to {APPLETS_TARGET}: {e}")),
            }
        }
        crate::log::info(&format!(
            "busybox applet links: made when the image was built ({APPLETS_MARKER})"
        ));
        return;
    }
    let args = ["--install".to_owned(), "-s".to_owned()];
    match p
        .spawn
        .run(&busybox, &args, &[], crate::platform::Stdin::Null)
    {
        Ok(status) if status.success() => {}
        Ok(status) => crate::log::warn(&format!(
            "{} --install -s: {status}; applets need their full path",
            busybox.display()
        )),
        Err(e) => crate::log::warn(&format!("starting {} --install -s: {e}", busybox.display())),
    }
}

/// The marker `cargo xtask initramfs` writes when it made busybox's applet
/// links in the image (`xtask/src/initramfs/applets.rs`): a first line
/// `busybox /bin/busybox SIZE BANNER`, a `boot PATH` line for each link
/// left to the init (`/sbin/modprobe`, which the kernel would run before
/// `/init` if the image had it), then the links made, one per line.
pub const APPLETS_MARKER: &str = "/lib/alpinit/applets";

/// At most this many `boot PATH` lines are honoured.
const MAX_AT_BOOT: usize = 4;

/// The busybox the links point to, the one the init runs.
const APPLETS_TARGET: &str = "/bin/busybox";

/// How much of the marker the init reads: the first line (a size and
/// busybox's version banner) and the `boot` lines after it are well under
/// this; the list of links made is not read at all.
const MARKER_HEAD: u64 = 256;

/// Whether the image's applet links were made when it was built, for the
/// busybox the image has: the marker names `/bin/busybox` with its size
/// (BUSYBOX_LEN). Another busybox at that path (a later cpio appended by
/// the boot loader, say) may have other applets, so it gets the install.
/// Returns the links the init is to make (`boot PATH` lines, absolute
/// paths). One open and one bounded read: no walk over the links.
fn links_made_at_build(layout: &Layout, busybox_len: u64) -> Option<[Option<String>; MAX_AT_BOOT]> {
    use std::io::Read;
    let file = std::fs::File::open(layout.path(APPLETS_MARKER)).ok()?;
    let mut head = Vec::new();
    file.take(MARKER_HEAD).read_to_end(&mut head).ok()?;
    // Only whole lines: the last one may be cut at MARKER_HEAD.
    let mut lines = head
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n"));
    let first = std::str::from_utf8(lines.next()?).ok()?;
    let mut fields = first.split_ascii_whitespace();
    let ours = fields.next() == Some("busybox")
        && fields.next() == Some(APPLETS_TARGET)
        && fields.next().and_then(|n| n.parse::<u64>().ok()) == Some(busybox_len);
    if !ours {
        return None;
    }
    let mut at_boot: [Option<String>; MAX_AT_BOOT] = Default::default();
    let boot_lines = lines
        .map_while(|l| std::str::from_utf8(l).ok()?.strip_prefix("boot "))
        .map(str::trim_end)
        .filter(|p| p.starts_with('/') && !p.split('/').any(|c| c == ".."));
    for (slot, path) in at_boot.iter_mut().zip(boot_lines) {
        *slot = Some(path.to_owned());
    }
    Some(at_boot)
}

pub fn mount_api_filesystems(sys: &dyn Sys, layout: &Layout) -> Result<Early, EarlyError> {
    for d in [
        "/proc",
        "/sys",
        "/dev",
        "/media/cdrom",
        "/media/usb",
        "/sysroot",
        "/tmp",
        "/run",
    ] {
        let _ = std::fs::create_dir_all(layout.path(d));
    }
    let dev = layout.dev();
    mknod_if_missing(sys, &dev.join("null"), 0o666, 1, 3);

    let sysfs = layout.sys();
    sys.mount("sysfs", &sysfs, Some("sysfs"), NOSUID_NODEV_NOEXEC, None)
        .map_err(|source| EarlyError::Mount {
            what: "sysfs",
            target: sysfs.display().to_string(),
            source,
        })?;

    let dev_flags = MountFlags::NOSUID;
    let dev_data = Some("mode=0755,size=2M");
    let mut early = Early::default();
    if sys
        .mount("devtmpfs", &dev, Some("devtmpfs"), dev_flags, dev_data)
        .is_err()
    {
        sys.mount("devtmpfs", &dev, Some("tmpfs"), dev_flags, dev_data)
            .map_err(|source| EarlyError::Mount {
                what: "tmpfs on /dev",
                target: dev.display().to_string(),
                source,
            })?;
        early.dev_is_tmpfs = true;
        mknod_if_missing(sys, &dev.join("null"), 0o666, 1, 3);
        mknod_if_missing(sys, &dev.join("console"), 0o600, 5, 1);
        mknod_if_missing(sys, &dev.join("tty"), 0o666, 5, 0);
        mknod_if_missing(sys, &dev.join("zero"), 0o666, 1, 5);
        mknod_if_missing(sys, &dev.join("urandom"), 0o666, 1, 9);
    }
    mknod_if_missing(sys, &dev.join("kmsg"), 0o660, 1, 11);

    let proc = layout.proc();
    sys.mount("proc", &proc, Some("proc"), NOSUID_NODEV_NOEXEC, None)
        .map_err(|source| EarlyError::Mount {
            what: "proc",
            target: proc.display().to_string(),
            source,
        })?;

    // /dev/kmsg writes are rate-limited to a burst of 10 by default; the
    // phase and probe lines must all arrive.
    let _ = std::fs::write(proc.join("sys/kernel/printk_devkmsg"), "on\n");

    mknod_if_missing(sys, &dev.join("ptmx"), 0o666, 5, 2);
    let pts = dev.join("pts");
    let _ = std::fs::create_dir_all(&pts);
    // devpts and shm are conveniences: their failure is logged, not fatal.
    if let Err(e) = sys.mount(
        "devpts",
        &pts,
        Some("devpts"),
        MountFlags(MountFlags::NOSUID.0 | MountFlags::NOEXEC.0),
        Some("gid=5,mode=0620"),
    ) {
        crate::log::warn(&format!("mounting devpts: {e}"));
    }
    let shm = dev.join("shm");
    let _ = std::fs::create_dir_all(&shm);
    if let Err(e) = sys.mount("shm", &shm, Some("tmpfs"), NOSUID_NODEV_NOEXEC, None) {
        crate::log::warn(&format!("mounting /dev/shm: {e}"));
    }
    Ok(early)
}

/// The kernel hands PID 1 the console as fds 0-2 only when the image has
/// `/dev/console`; make sure they are open either way.
pub fn ensure_console_fds(layout: &Layout) {
    // SAFETY: fcntl(F_GETFD) on a possibly closed fd only queries flags.
    let open = unsafe { libc::fcntl(1, libc::F_GETFD) } != -1;
    if !open {
        reopen_console(&layout.dev().join("console"));
    }
}

/// Points fds 0-2 at `path` (a tty).
pub fn reopen_console(path: &Path) {
    use std::os::fd::IntoRawFd;
    if let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        let fd = f.into_raw_fd();
        for target in 0..3 {
            // SAFETY: dup2 onto the standard descriptors; `fd` is a valid open fd.
            unsafe { libc::dup2(fd, target) };
        }
        if fd > 2 {
            // SAFETY: `fd` is ours and no longer needed after the dup2 calls.
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpinit_sys::{Call, Recorder};

    #[test]
    fn mounts_api_filesystems_with_alpines_options() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let rec = Recorder::new();
        let early = mount_api_filesystems(&rec, &layout).unwrap();
        assert!(!early.dev_is_tmpfs);
        let mounts = rec.mounts();
        let kinds: Vec<_> = mounts.iter().map(|m| m.2.clone().unwrap()).collect();
        assert_eq!(kinds, ["sysfs", "devtmpfs", "proc", "devpts", "tmpfs"]);
        assert_eq!(mounts[1].3.as_deref(), Some("mode=0755,size=2M"));
        assert_eq!(mounts[3].3.as_deref(), Some("gid=5,mode=0620"));
        assert!(mounts[4].1.ends_with("dev/shm"));
        let flags = rec.calls().into_iter().find_map(|c| match c {
            Call::Mount { fstype, flags, .. } if fstype.as_deref() == Some("proc") => Some(flags),
            _ => None,
        });
        let f = flags.unwrap();
        assert!(
            f.contains(MountFlags::NOSUID)
                && f.contains(MountFlags::NODEV)
                && f.contains(MountFlags::NOEXEC)
        );
    }

    #[test]
    fn falls_back_to_tmpfs_and_makes_nodes_when_devtmpfs_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let rec = Recorder::new();
        rec.fail_when("fstype: Some(\"devtmpfs\")", libc::ENODEV);
        let early = mount_api_filesystems(&rec, &layout).unwrap();
        assert!(early.dev_is_tmpfs);
        let nodes: Vec<_> = rec
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Mknod {
                    path, major, minor, ..
                } => Some((path.file_name().unwrap().to_owned(), major, minor)),
                _ => None,
            })
            .collect();
        assert!(nodes
            .iter()
            .any(|(n, ma, mi)| n == "console" && *ma == 5 && *mi == 1));
        assert!(nodes
            .iter()
            .any(|(n, ma, mi)| n == "kmsg" && *ma == 1 && *mi == 11));
        assert!(rec
            .mounts()
            .iter()
            .any(|m| m.2.as_deref() == Some("tmpfs") && m.1.ends_with("dev")));
    }

    #[test]
    fn applet_marker_counts_only_for_the_busybox_it_names() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let made = |len| links_made_at_build(&layout, len).is_some();
        assert!(!made(10), "no marker");
        let marker = layout.path(APPLETS_MARKER);
        std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
        let links = "/sbin/mdev\n".repeat(100);
        let good = format!("busybox /bin/busybox 10 BusyBox v1.35.0 (Debian 1:1.35.0-4)\n{links}");
        std::fs::write(&marker, &good).unwrap();
        assert!(made(10));
        assert!(!made(11), "another size");
        for bad in [
            "busybox /usr/bin/busybox 10\n/sbin/mdev\n",
            "busybox /bin/busybox ten\n",
            "busybox /bin/busybox\n",
            "/sbin/mdev\nbusybox /bin/busybox 10\n",
            "",
        ] {
            std::fs::write(&marker, bad).unwrap();
            assert!(!made(10), "{bad:?}");
        }
        // Only the head is read, whole lines of it: a first line cut there
        // is no marker.
        let long = format!("busybox /bin/busybox 10 {}\n", "v".repeat(300));
        std::fs::write(&marker, long).unwrap();
        assert!(!made(10));
    }

    #[test]
    fn applet_marker_boot_lines_name_the_links_left_to_the_init() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let marker = layout.path(APPLETS_MARKER);
        std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
        let head = "busybox /bin/busybox 10 BusyBox v1.35.0\n";
        std::fs::write(
            &marker,
            format!("{head}boot /sbin/modprobe\nboot ../x\nboot /a/../b\n/bin/ls\nboot /late\n"),
        )
        .unwrap();
        let at_boot = links_made_at_build(&layout, 10).unwrap();
        assert_eq!(at_boot[0].as_deref(), Some("/sbin/modprobe"));
        assert!(at_boot[1..].iter().all(Option::is_none), "{at_boot:?}");
        // A boot line cut at the end of the head is not read.
        let cut = format!("{head}boot /sbin/modprobe\nboot /{}\n", "y".repeat(300));
        std::fs::write(&marker, cut).unwrap();
        let at_boot = links_made_at_build(&layout, 10).unwrap();
        assert_eq!(at_boot[0].as_deref(), Some("/sbin/modprobe"));
        assert!(at_boot[1].is_none());
    }

    #[test]
    fn sysfs_failure_is_an_error_naming_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = Recorder::new();
        rec.fail_when("sysfs", libc::EPERM);
        let err = mount_api_filesystems(&rec, &Layout::new(tmp.path())).unwrap_err();
        assert!(err.to_string().contains("sysfs"), "{err}");
    }
}
