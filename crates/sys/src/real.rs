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
}
