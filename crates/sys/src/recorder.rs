//! A recording fake of [`Sys`] for unit tests.

use crate::{MountFlags, NodeKind, Sys};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One recorded privileged call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: String,
        target: PathBuf,
        fstype: Option<String>,
        flags: MountFlags,
        data: Option<String>,
    },
    Umount {
        target: PathBuf,
        lazy: bool,
    },
    Mknod {
        path: PathBuf,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    },
    ChrootHere,
}

/// Records every call; calls whose rendered form contains a registered
/// pattern fail with the registered errno.
#[derive(Debug, Default)]
pub struct Recorder {
    calls: Mutex<Vec<Call>>,
    failures: Mutex<Vec<(String, i32)>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every call whose `Debug` rendering contains `pattern` fail with `errno`.
    pub fn fail_when(&self, pattern: &str, errno: i32) {
        lock(&self.failures).push((pattern.to_owned(), errno));
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// The mount calls only, as (source, target, fstype, data).
    pub fn mounts(&self) -> Vec<(String, PathBuf, Option<String>, Option<String>)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Mount {
                    source,
                    target,
                    fstype,
                    data,
                    ..
                } => Some((source, target, fstype, data)),
                _ => None,
            })
            .collect()
    }

    fn record(&self, call: Call) -> io::Result<()> {
        let rendered = format!("{call:?}");
        lock(&self.calls).push(call);
        for (pattern, errno) in lock(&self.failures).iter() {
            if rendered.contains(pattern.as_str()) {
                return Err(io::Error::from_raw_os_error(*errno));
            }
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Sys for Recorder {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: MountFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(Call::Mount {
            source: source.to_owned(),
            target: target.to_owned(),
            fstype: fstype.map(str::to_owned),
            flags,
            data: data.map(str::to_owned),
        })
    }

    fn umount(&self, target: &Path, lazy: bool) -> io::Result<()> {
        self.record(Call::Umount {
            target: target.to_owned(),
            lazy,
        })
    }

    fn mknod(
        &self,
        path: &Path,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.record(Call::Mknod {
            path: path.to_owned(),
            kind,
            mode,
            major,
            minor,
        })
    }

    fn chroot_here(&self) -> io::Result<()> {
        self.record(Call::ChrootHere)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_calls_and_injects_failures() {
        let r = Recorder::new();
        r.fail_when("/media/sdb1", libc::EINVAL);
        assert!(r
            .mount(
                "/dev/sda1",
                Path::new("/media/sda1"),
                Some("vfat"),
                MountFlags::RDONLY,
                None
            )
            .is_ok());
        let err = r
            .mount(
                "/dev/sdb1",
                Path::new("/media/sdb1"),
                None,
                MountFlags::NONE,
                None,
            )
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        assert_eq!(r.calls().len(), 2);
        assert_eq!(r.mounts()[0].2.as_deref(), Some("vfat"));
    }
}
