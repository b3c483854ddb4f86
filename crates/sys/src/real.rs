//! The real kernel behind [`Sys`].

use crate::{MountFlags, NodeKind, Sys};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use std::io;
use std::path::Path;

/// Calls straight into the kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Kernel;

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Sys for Kernel {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MountFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(
            Some(source),
            target,
            fstype,
            MsFlags::from_bits_retain(flags.0),
            data,
        )
        .map_err(io_err)
    }

    fn umount(&self, target: &Path, lazy: bool) -> io::Result<()> {
        let flags = if lazy {
            MntFlags::MNT_DETACH
        } else {
            MntFlags::empty()
        };
        nix::mount::umount2(target, flags).map_err(io_err)
    }

    fn mknod(
        &self,
        path: &Path,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let kind = match kind {
            NodeKind::Char => SFlag::S_IFCHR,
            NodeKind::Block => SFlag::S_IFBLK,
        };
        let dev = nix::sys::stat::makedev(u64::from(major), u64::from(minor));
        nix::sys::stat::mknod(path, kind, Mode::from_bits_truncate(mode), dev).map_err(io_err)
    }

    fn chroot_here(&self) -> io::Result<()> {
        nix::unistd::chroot(".").map_err(io_err)
    }

    fn btrfs_scan_dev(&self, control: &Path, device: &Path) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let name = device.as_os_str().as_bytes();
        let mut args = BtrfsVolArgs {
            fd: 0,
            name: [0; BTRFS_PATH_NAME_MAX + 1],
        };
        // The kernel reads a NUL-terminated name: one byte stays 0.
        if name.len() > BTRFS_PATH_NAME_MAX || name.contains(&0) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        args.name[..name.len()].copy_from_slice(name);
        let ctl = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(control)?;
        // SAFETY: `ctl` is an open descriptor for the duration of the call;
        // `args` is a live, correctly sized `struct btrfs_ioctl_vol_args`
        // (include/uapi/linux/btrfs.h: __s64 fd; char name[4088]) that the
        // kernel only reads for BTRFS_IOC_SCAN_DEV.
        unsafe { btrfs_ioc_scan_dev(ctl.as_raw_fd(), &args) }
            .map(drop)
            .map_err(io_err)
    }
}

/// `BTRFS_PATH_NAME_MAX` of include/uapi/linux/btrfs.h.
const BTRFS_PATH_NAME_MAX: usize = 4087;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct BtrfsVolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

// BTRFS_IOC_SCAN_DEV = _IOW(BTRFS_IOCTL_MAGIC 0x94, 4, struct btrfs_ioctl_vol_args).
nix::ioctl_write_ptr!(btrfs_ioc_scan_dev, 0x94, 4, BtrfsVolArgs);
