//! The privileged-syscall seam of the init.
//!
//! Everything that needs root or a real kernel (mount, umount, mknod, the
//! final chroot) goes through [`Sys`], so the boot logic can be unit-tested
//! against a [`Recorder`] that logs each call and can be told to fail.
//! Plain file-system work (mkdir, symlink, reading files) is not behind the
//! trait: it runs against injected root paths, which tests point at temp trees.

mod real;
mod recorder;

pub use real::Kernel;
pub use recorder::{Call, Kind, Match, Recorder};

use std::io;
use std::path::Path;

/// Mount flags the init uses, kept as a plain bit set so the recorder can
/// print them without depending on nix types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountFlags(pub u64);

impl MountFlags {
    pub const NONE: Self = Self(0);
    pub const RDONLY: Self = Self(libc::MS_RDONLY);
    pub const NOSUID: Self = Self(libc::MS_NOSUID);
    pub const NODEV: Self = Self(libc::MS_NODEV);
    pub const NOEXEC: Self = Self(libc::MS_NOEXEC);
    pub const REMOUNT: Self = Self(libc::MS_REMOUNT);
    pub const BIND: Self = Self(libc::MS_BIND);
    pub const MOVE: Self = Self(libc::MS_MOVE);
    pub const REC: Self = Self(libc::MS_REC);

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for MountFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// Kind of device node for [`Sys::mknod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Char,
    Block,
}

/// The privileged operations of the init.
pub trait Sys: Send + Sync {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MountFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn umount(&self, target: &Path, lazy: bool) -> io::Result<()>;
    fn mknod(
        &self,
        path: &Path,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()>;
    /// `chroot(".")` after the caller has chdir'ed into the new root.
    fn chroot_here(&self) -> io::Result<()>;
    /// Registers `device` as a member of a (multi-device) btrfs file system
    /// with the kernel: `BTRFS_IOC_SCAN_DEV` on `control`
    /// (`/dev/btrfs-control`), what `btrfs device scan` does per device.
    fn btrfs_scan_dev(&self, control: &Path, device: &Path) -> io::Result<()>;
}
