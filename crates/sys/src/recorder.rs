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
    BtrfsScan {
        device: PathBuf,
    },
}

/// The kind of a [`Call`], for failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mount,
    Umount,
    Mknod,
    Chroot,
    BtrfsScan,
}

/// Which calls of a kind fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Every call of the kind.
    Any,
    /// Calls on this path (mount target or source, umount target, mknod path).
    Path(PathBuf),
    /// Mounts of this file-system type.
    FsType(String),
}

#[derive(Debug, Clone)]
struct Rule {
    kind: Kind,
    what: Match,
    errno: i32,
    /// Fail only this many times, then succeed (None: always).
    times: Option<usize>,
}

impl Call {
    pub fn kind(&self) -> Kind {
        match self {
            Call::Mount { .. } => Kind::Mount,
            Call::Umount { .. } => Kind::Umount,
            Call::Mknod { .. } => Kind::Mknod,
            Call::ChrootHere => Kind::Chroot,
            Call::BtrfsScan { .. } => Kind::BtrfsScan,
        }
    }

    fn matches(&self, m: &Match) -> bool {
        match (m, self) {
            (Match::Any, _) => true,
            (Match::Path(p), Call::Mount { source, target, .. }) => {
                target == p || Path::new(source) == p
            }
            (Match::Path(p), Call::Umount { target, .. }) => target == p,
            (Match::Path(p), Call::Mknod { path, .. }) => path == p,
            (Match::Path(p), Call::BtrfsScan { device }) => device == p,
            (Match::FsType(t), Call::Mount { fstype, .. }) => fstype.as_deref() == Some(t),
            _ => false,
        }
    }
}

/// Records every call; calls matching a registered rule (by kind, see
/// [`Recorder::fail`]) fail with the rule's errno.
#[derive(Debug, Default)]
pub struct Recorder {
    calls: Mutex<Vec<Call>>,
    failures: Mutex<Vec<(String, i32)>>,
    rules: Mutex<Vec<Rule>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the calls of `kind` selected by `what` fail with `errno`.
    pub fn fail(&self, kind: Kind, what: Match, errno: i32) {
        lock(&self.rules).push(Rule {
            kind,
            what,
            errno,
            times: None,
        });
    }

    /// Like [`Recorder::fail`], for the first `times` matching calls only.
    pub fn fail_times(&self, kind: Kind, what: Match, errno: i32, times: usize) {
        lock(&self.rules).push(Rule {
            kind,
            what,
            errno,
            times: Some(times),
        });
    }

    /// Make every call whose `Debug` rendering contains `pattern` fail with
    /// `errno`. Prefer [`Recorder::fail`], which does not depend on how a
    /// call prints.
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

    /// Records `call` and says whether an injected failure applies to it.
    pub fn record(&self, call: Call) -> io::Result<()> {
        let rendered = format!("{call:?}");
        let mut injected = None;
        for rule in lock(&self.rules).iter_mut() {
            if rule.kind == call.kind() && call.matches(&rule.what) && rule.times != Some(0) {
                if let Some(t) = rule.times.as_mut() {
                    *t -= 1;
                }
                injected = Some(rule.errno);
                break;
            }
        }
        lock(&self.calls).push(call);
        if let Some(errno) = injected {
            return Err(io::Error::from_raw_os_error(errno));
        }
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

    fn btrfs_scan_dev(&self, _control: &Path, device: &Path) -> io::Result<()> {
        self.record(Call::BtrfsScan {
            device: device.to_owned(),
        })
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

    #[test]
    fn failures_are_injected_by_call_kind_and_target() {
        let r = Recorder::new();
        r.fail(Kind::Umount, Match::Any, libc::EBUSY);
        r.fail(Kind::Mount, Match::FsType("devtmpfs".into()), libc::ENODEV);
        r.fail_times(Kind::Mknod, Match::Path("/dev/null".into()), libc::EPERM, 1);
        let p = Path::new("/dev");
        assert!(r
            .mount("x", p, Some("tmpfs"), MountFlags::NONE, None)
            .is_ok());
        let e = r.mount("x", p, Some("devtmpfs"), MountFlags::NONE, None);
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::ENODEV));
        // A umount of the same path is a different kind: its own rule applies.
        assert_eq!(
            r.umount(p, false).unwrap_err().raw_os_error(),
            Some(libc::EBUSY)
        );
        let null = Path::new("/dev/null");
        assert!(r.mknod(null, NodeKind::Char, 0o666, 1, 3).is_err());
        assert!(
            r.mknod(null, NodeKind::Char, 0o666, 1, 3).is_ok(),
            "failed only once"
        );
        assert!(r.chroot_here().is_ok());
        assert_eq!(r.calls().len(), 6);
    }
}
