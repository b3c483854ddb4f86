//! Freeing the initramfs after the hand-over without making the new root's
//! init wait for it. Deleting the initramfs' files (the init, busybox, the
//! kernel modules: tens of MB of RAM) took about 40 ms of a one-second
//! root-mode boot under QEMU/TCG (`cargo xtask bench root`). A child
//! started as `alpinit-free-initramfs FD` deletes them while the new init
//! starts; the new init reaps it, as every init reaps children it did
//! not start. Where the child cannot start (no `/proc` in the new root),
//! the initramfs is freed before the exec, as before.

use crate::handover::OldRoot;
use crate::log;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// ramfs' `f_type` (`include/uapi/linux/magic.h`; not in the libc crate).
const RAMFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x8584_58f6);

/// The name the init answers to in that child.
pub const NAME: &str = "alpinit-free-initramfs";

/// Frees OLD in a child process, or here when no child can be started.
pub fn in_background(old: OldRoot) {
    if let Err(e) = spawn(&old) {
        log::debug(&format!("freeing the initramfs here: {e}"));
        old.free();
    }
}

fn spawn(old: &OldRoot) -> std::io::Result<()> {
    let fd = old.dir_fd();
    // The descriptor is the child's way into the initramfs (nothing else
    // reaches it after the chroot): keep it open across the exec, for that
    // child only (`old` closes it here right after).
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )?;
    let spawned = Command::new("/proc/self/exe")
        .arg0(NAME)
        .arg(fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    spawned.map(drop)
}

/// Why the child refuses to delete anything.
#[derive(Debug, thiserror::Error)]
pub enum FreeError {
    #[error("usage: {NAME} FD (run by the init at the hand-over)")]
    Usage,
    #[error("descriptor {fd}: {source}")]
    Stat { fd: i32, source: nix::Error },
    #[error("descriptor {fd} is not a directory of an initramfs (ramfs or tmpfs, not the root)")]
    NotAnInitramfs { fd: i32 },
}

/// The child's `main`: ARGS is the descriptor number. Only a directory on
/// a ramfs or tmpfs that is not the process' own root is freed, so the
/// name run by hand on a running system deletes nothing of it.
pub fn main(args: &[String]) -> i32 {
    // The kernel named the process after the file it ran ("exe", from
    // /proc/self/exe): show what it is in `ps` instead. Cosmetic, so a
    // failure is ignored.
    let _ = nix::sys::prctl::set_name(c"alpinit-free-in");
    match free(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{NAME}: {e}");
            2
        }
    }
}

fn free(args: &[String]) -> Result<(), FreeError> {
    let [fd] = args else {
        return Err(FreeError::Usage);
    };
    let fd: i32 = fd.parse().map_err(|_| FreeError::Usage)?;
    if fd < 3 {
        return Err(FreeError::Usage);
    }
    let st = nix::sys::stat::fstat(fd).map_err(|source| FreeError::Stat { fd, source })?;
    let fs = nix::sys::statfs::fstatfs(
        // SAFETY: fstat above proved `fd` open; the borrow ends with this call.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
    )
    .map_err(|source| FreeError::Stat { fd, source })?;
    let ram = [RAMFS_MAGIC, nix::sys::statfs::TMPFS_MAGIC].contains(&fs.filesystem_type());
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let root_dev = nix::sys::stat::stat("/").map(|r| r.st_dev).ok();
    if !ram || !is_dir || root_dev == Some(st.st_dev) {
        return Err(FreeError::NotAnInitramfs { fd });
    }
    // SAFETY: the descriptor was handed to this process for this purpose
    // (see `spawn`) and nothing else in it owns the number.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    OldRoot::from_parts(dir, st.st_dev).free();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_child_refuses_bad_arguments() {
        for args in [
            vec![],
            vec!["x".to_owned()],
            vec!["1".to_owned()],
            vec!["3".to_owned(), "4".to_owned()],
        ] {
            assert!(matches!(free(&args), Err(FreeError::Usage)), "{args:?}");
        }
    }

    /// Run by hand on a running system with a descriptor to an ordinary
    /// directory, the child deletes nothing.
    #[test]
    fn the_child_deletes_nothing_outside_a_ram_file_system() {
        let tmp = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        std::fs::write(tmp.path().join("keep"), b"x").unwrap();
        let dir = std::fs::File::open(tmp.path()).unwrap();
        let fd = dir.as_raw_fd();
        let err = free(&[fd.to_string()]).unwrap_err();
        assert!(matches!(err, FreeError::NotAnInitramfs { .. }), "{err}");
        assert!(tmp.path().join("keep").exists());
    }
}
