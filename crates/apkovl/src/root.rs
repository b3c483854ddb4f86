//! Path resolution inside the sysroot as if it were the root directory.
//!
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` does this in the kernel (Linux ≥ 5.6).
//! Older kernels answer `ENOSYS`; then a component-by-component walk opens each step with
//! `O_PATH | O_NOFOLLOW`, reads symlinks itself and restarts absolute targets and `..` at
//! the sysroot, which gives the same clamping. Magic links are never followed by the walk
//! because it resolves every link from its text.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

/// Same bound as the kernel's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;

/// How paths are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// The kernel's `openat2`, falling back to [`Resolver::Walk`] on `ENOSYS`.
    Openat2,
    /// The userspace walk.
    Walk,
}

/// An open sysroot.
pub struct Root {
    fd: OwnedFd,
    resolver: Cell<Resolver>,
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: only called (privately, in this module) on a descriptor that a successful
    // open call has just returned; nothing else owns it, so `OwnedFd` may take it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `openat(2)` returning an owned descriptor.
pub(crate) fn openat_owned<P: ?Sized + nix::NixPath>(
    dir: &OwnedFd,
    name: &P,
    flags: OFlag,
    mode: Mode,
) -> nix::Result<OwnedFd> {
    openat(Some(dir.as_raw_fd()), name, flags, mode).map(owned)
}

fn dot_if_empty(path: &[u8]) -> &[u8] {
    if path.is_empty() {
        b"."
    } else {
        path
    }
}

impl Root {
    pub fn open(path: &Path, resolver: Resolver) -> io::Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd: owned(fd),
            resolver: Cell::new(resolver),
        })
    }

    /// The sysroot's own `O_PATH` descriptor, as a base for `*at()` calls on paths that
    /// are known to contain no symlink.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Opens `path` (relative to the sysroot) with `flags`. Symlinks on the way are
    /// followed inside the sysroot; the last component is not followed when `flags`
    /// contains `O_NOFOLLOW`.
    pub fn open_at(&self, path: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
        let flags = flags | OFlag::O_CLOEXEC;
        if self.resolver.get() == Resolver::Openat2 {
            let how = OpenHow::new()
                .flags(flags)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            let mut tries = 0;
            loop {
                match openat2(self.fd.as_raw_fd(), dot_if_empty(path), how) {
                    Ok(fd) => return Ok(owned(fd)),
                    // The kernel asks for a retry when a rename raced the lookup.
                    Err(Errno::EAGAIN) if tries < 16 => tries += 1,
                    Err(Errno::ENOSYS) => {
                        self.resolver.set(Resolver::Walk);
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.walk(path, flags)
    }

    /// The directory `path`, as an `O_PATH` fd usable as a `*at()` base.
    pub fn dir(&self, path: &[u8]) -> io::Result<OwnedFd> {
        self.open_at(path, OFlag::O_PATH | OFlag::O_DIRECTORY)
    }

    fn walk(&self, path: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
        let nofollow_last = flags.contains(OFlag::O_NOFOLLOW);
        let mut pending: VecDeque<Vec<u8>> = split(path).collect();
        // Directories entered below the root; empty means "at the root".
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut links = 0;
        while let Some(comp) = pending.pop_front() {
            let base = stack.last().map_or(self.fd.as_raw_fd(), |d| d.as_raw_fd());
            if comp == b".." {
                stack.pop();
                continue;
            }
            let is_last = pending.is_empty();
            let step = owned(openat(
                Some(base),
                &comp[..],
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?);
            let kind = SFlag::from_bits_truncate(fstat(step.as_raw_fd())?.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFLNK && !(is_last && nofollow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP.into());
                }
                let target = readlinkat(Some(base), &comp[..])?;
                let target = target.as_bytes();
                if target.first() == Some(&b'/') {
                    stack.clear();
                }
                for c in split(target).collect::<Vec<_>>().into_iter().rev() {
                    pending.push_front(c);
                }
                continue;
            }
            if is_last {
                return Ok(owned(openat(
                    Some(base),
                    &comp[..],
                    flags | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )?));
            }
            if kind != SFlag::S_IFDIR {
                return Err(Errno::ENOTDIR.into());
            }
            stack.push(step);
        }
        let base = stack.last().map_or(self.fd.as_raw_fd(), |d| d.as_raw_fd());
        Ok(owned(openat(Some(base), ".", flags, Mode::empty())?))
    }
}

fn split(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    /// Both resolvers must agree on where each path lands.
    #[test]
    fn resolvers_clamp_to_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/tool"), b"inside").unwrap();
        fs::write(tmp.path().join("outside"), b"outside").unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink("/usr/bin", root.join("abin")).unwrap();
        symlink("../../..", root.join("up")).unwrap();
        symlink("/", root.join("slash")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("../outside", root.join("usr/esc")).unwrap();
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("bin/tool", Some(b"inside")),
            ("abin/tool", Some(b"inside")),
            ("up/usr/bin/tool", Some(b"inside")),
            ("slash/bin/tool", Some(b"inside")),
            ("up/outside", None),
            ("usr/esc", None),
            ("loop1", None),
        ];
        for resolver in [Resolver::Openat2, Resolver::Walk] {
            let r = Root::open(&root, resolver).unwrap();
            for (path, want) in cases {
                let got = r
                    .open_at(path.as_bytes(), OFlag::O_RDONLY)
                    .map(|fd| fs::read(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap());
                match want {
                    Some(w) => assert_eq!(got.unwrap(), *w, "{resolver:?} {path}"),
                    None => assert!(got.is_err(), "{resolver:?} {path}: {got:?}"),
                }
            }
            let err = r.open_at(
                b"bin",
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY,
            );
            assert!(
                err.is_err(),
                "{resolver:?}: O_NOFOLLOW followed the last symlink"
            );
            assert!(r.dir(b"").is_ok());
            assert!(r.dir(b"abin").is_ok());
        }
    }
}
