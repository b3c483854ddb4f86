//! Where things are. Every path the init touches hangs off one root so tests
//! can point the whole boot at a temp tree (Alpine's own tests use `ROOT=`).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `rel` is written as an absolute path of the initramfs ("/proc/cmdline").
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn proc(&self) -> PathBuf {
        self.path("/proc")
    }
    pub fn sys(&self) -> PathBuf {
        self.path("/sys")
    }
    pub fn dev(&self) -> PathBuf {
        self.path("/dev")
    }
    pub fn media(&self) -> PathBuf {
        self.path("/media")
    }
    pub fn sysroot(&self) -> PathBuf {
        self.path("/sysroot")
    }

    /// The directory of this kernel's modules inside the initramfs.
    pub fn modules_dir(&self) -> Option<PathBuf> {
        let release = std::fs::read_to_string(self.path("/proc/sys/kernel/osrelease")).ok()?;
        Some(self.path("/lib/modules").join(release.trim()))
    }

    /// A path of the new root ("/etc/fstab" → "<root>/sysroot/etc/fstab").
    pub fn in_sysroot(&self, rel: &str) -> PathBuf {
        self.sysroot().join(rel.trim_start_matches('/'))
    }
}
