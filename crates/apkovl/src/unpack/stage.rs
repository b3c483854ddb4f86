//! Pass 2: stage everything under temporary names, then commit by renaming.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, futimens, mkdirat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::plan::{resolve_hard_link, Item, Plan};
use super::UnpackError;
use crate::archive::{Entry, Kind, TarReader};
use crate::gzip::BUF_SIZE;
use crate::member::shown;
use crate::root::{openat_owned, Root};

/// The setuid/setgid policy of the crate docs: kept only for members owned by uid 0.
pub(super) fn effective_mode(mode: u32, uid: u32) -> u32 {
    let mode = mode & 0o7777;
    if uid == 0 {
        mode
    } else {
        mode & !0o6000
    }
}

/// An entry written under a temporary name, waiting for the commit.
struct Staged {
    parent: Vec<u8>,
    tmp: String,
    name: Vec<u8>,
    member: String,
}

struct Stage<'a> {
    root: &'a Root,
    created_dirs: Vec<Vec<u8>>,
    staged: Vec<Staged>,
    /// Plan index of a regular file -> index in `staged`.
    file_slot: HashMap<usize, usize>,
    as_root: bool,
    counter: u64,
}

/// Runs pass 2 and commits; on a failure before the commit everything created is
/// removed again. Returns the number of file data bytes written.
pub(super) fn apply<R: Read>(
    tar: &mut TarReader<R>,
    root: &Root,
    plan: &Plan,
) -> Result<u64, UnpackError> {
    let mut stage = Stage {
        root,
        created_dirs: Vec::new(),
        staged: Vec::new(),
        file_slot: HashMap::new(),
        as_root: nix::unistd::geteuid().is_root(),
        counter: 0,
    };
    match stage.run(tar, plan) {
        Ok(bytes) => {
            stage.commit(plan)?;
            Ok(bytes)
        }
        Err(e) => {
            stage.rollback();
            Err(e)
        }
    }
}

fn os_err(member: &str, op: &'static str, e: impl Into<io::Error>) -> UnpackError {
    let e = e.into();
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => UnpackError::NoSpace {
            member: member.to_owned(),
        },
        _ => UnpackError::Apply {
            member: member.to_owned(),
            op,
            source: e,
        },
    }
}

fn timespec(mtime: i64) -> TimeSpec {
    TimeSpec::new(mtime, 0)
}

impl Stage<'_> {
    fn run<R: Read>(&mut self, tar: &mut TarReader<R>, plan: &Plan) -> Result<u64, UnpackError> {
        let mut buf = vec![0u8; BUF_SIZE];
        let mut bytes = 0;
        let mut index = 0;
        while let Some(entry) = tar.next_entry()? {
            let item = plan
                .items
                .get(index)
                .filter(|it| it.entry == entry)
                .ok_or(UnpackError::Changed { index })?;
            let this = index;
            index += 1;
            let Some(path) = item.path.as_ref().filter(|p| item.is_final && !p.is_root()) else {
                continue;
            };
            let member = shown(&entry.name);
            let (parent, name) = path.split_last();
            match entry.kind {
                Kind::Dir => {
                    self.mkdir_p(&path.0, &member)?;
                }
                Kind::File => {
                    let (file, slot) = self.create_tmp(parent, name, &member)?;
                    self.file_slot.insert(this, slot);
                    let mut file = File::from(file);
                    loop {
                        let n = tar.read_data(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        file.write_all(&buf[..n])
                            .map_err(|e| os_err(&member, "write", e))?;
                        bytes += n as u64;
                    }
                    self.set_meta(&file, &entry, &member)?;
                }
                Kind::Symlink => self.symlink(parent, name, &entry, &member)?,
                Kind::HardLink | Kind::Skipped(_) => {}
            }
        }
        if index != plan.items.len() {
            return Err(UnpackError::Changed { index });
        }
        for (i, item) in plan.items.iter().enumerate() {
            if item.is_final && item.entry.kind == Kind::HardLink {
                self.hard_link(plan, i, item)?;
            }
        }
        Ok(bytes)
    }

    /// Opens directory `path`, creating missing components (recorded for rollback).
    fn mkdir_p(&mut self, path: &[u8], member: &str) -> Result<OwnedFd, UnpackError> {
        let blocked = || UnpackError::Blocked {
            member: member.to_owned(),
        };
        match self.root.dir(path) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(blocked()),
            Err(e) => return Err(os_err(member, "open directory", e)),
        }
        let mut fd = self
            .root
            .dir(b"")
            .map_err(|e| os_err(member, "open sysroot", e))?;
        let mut cur: Vec<u8> = Vec::with_capacity(path.len());
        for comp in path.split(|&b| b == b'/') {
            if !cur.is_empty() {
                cur.push(b'/');
            }
            cur.extend_from_slice(comp);
            fd = match self.root.dir(&cur) {
                Ok(next) => next,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    match mkdirat(Some(fd.as_raw_fd()), comp, Mode::from_bits_truncate(0o755)) {
                        Ok(()) => self.created_dirs.push(cur.clone()),
                        // A dangling symlink or a race: never follow or replace it.
                        Err(Errno::EEXIST) => return Err(blocked()),
                        Err(e) => return Err(os_err(member, "mkdir", e)),
                    }
                    self.root
                        .dir(&cur)
                        .map_err(|e| os_err(member, "open directory", e))?
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(blocked()),
                Err(e) => return Err(os_err(member, "open directory", e)),
            };
        }
        Ok(fd)
    }

    /// The parent directory for a non-directory member, after checking that the final
    /// name is not an existing directory.
    fn parent_for(
        &mut self,
        parent: &[u8],
        name: &[u8],
        member: &str,
    ) -> Result<OwnedFd, UnpackError> {
        let pfd = self.mkdir_p(parent, member)?;
        match fstatat(Some(pfd.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
                Err(UnpackError::ReplacesDirectory {
                    member: member.to_owned(),
                })
            }
            Ok(_) | Err(Errno::ENOENT) => Ok(pfd),
            Err(e) => Err(os_err(member, "stat", e)),
        }
    }

    /// Runs `make` with fresh temporary names until one does not exist yet, and records
    /// the result for commit and rollback.
    fn stage_new<T>(
        &mut self,
        parent: &[u8],
        name: &[u8],
        member: &str,
        op: &'static str,
        mut make: impl FnMut(&OwnedFd, &str) -> nix::Result<T>,
    ) -> Result<(T, usize), UnpackError> {
        let pfd = self.parent_for(parent, name, member)?;
        loop {
            self.counter += 1;
            let tmp = format!(".apkovl-{}-{}", std::process::id(), self.counter);
            match make(&pfd, &tmp) {
                Ok(v) => {
                    self.staged.push(Staged {
                        parent: parent.to_vec(),
                        tmp,
                        name: name.to_vec(),
                        member: member.to_owned(),
                    });
                    return Ok((v, self.staged.len() - 1));
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(os_err(member, op, e)),
            }
        }
    }

    fn create_tmp(
        &mut self,
        parent: &[u8],
        name: &[u8],
        member: &str,
    ) -> Result<(OwnedFd, usize), UnpackError> {
        self.stage_new(parent, name, member, "create", |pfd, tmp| {
            let flags = OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_WRONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            openat_owned(pfd, tmp, flags, Mode::from_bits_truncate(0o600))
        })
    }

    fn symlink(
        &mut self,
        parent: &[u8],
        name: &[u8],
        entry: &Entry,
        member: &str,
    ) -> Result<(), UnpackError> {
        let as_root = self.as_root;
        self.stage_new(parent, name, member, "symlink", |pfd, tmp| {
            symlinkat(&entry.link[..], Some(pfd.as_raw_fd()), tmp)?;
            if as_root {
                fchownat(
                    Some(pfd.as_raw_fd()),
                    tmp,
                    Some(Uid::from_raw(entry.uid)),
                    Some(Gid::from_raw(entry.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )?;
            }
            let t = timespec(entry.mtime);
            utimensat(
                Some(pfd.as_raw_fd()),
                tmp,
                &t,
                &t,
                UtimensatFlags::NoFollowSymlink,
            )
        })?;
        Ok(())
    }

    fn hard_link(&mut self, plan: &Plan, index: usize, item: &Item) -> Result<(), UnpackError> {
        let member = shown(&item.entry.name);
        let target = resolve_hard_link(plan, item)?;
        let Some(&slot) = self.file_slot.get(&target) else {
            return Err(UnpackError::Changed { index });
        };
        let (src_parent, src_tmp) = (
            self.staged[slot].parent.clone(),
            self.staged[slot].tmp.clone(),
        );
        let src = self
            .root
            .dir(&src_parent)
            .map_err(|e| os_err(&member, "open directory", e))?;
        let Some(path) = &item.path else {
            return Err(UnpackError::Changed { index });
        };
        let (parent, name) = path.split_last();
        self.stage_new(parent, name, &member, "link", |pfd, tmp| {
            linkat(
                Some(src.as_raw_fd()),
                src_tmp.as_str(),
                Some(pfd.as_raw_fd()),
                tmp,
                AtFlags::empty(),
            )
        })?;
        Ok(())
    }

    /// Ownership first: chown clears setuid bits, so the mode must come after it.
    fn set_meta(&self, fd: &impl AsRawFd, entry: &Entry, member: &str) -> Result<(), UnpackError> {
        let fd = fd.as_raw_fd();
        if self.as_root {
            fchown(
                fd,
                Some(Uid::from_raw(entry.uid)),
                Some(Gid::from_raw(entry.gid)),
            )
            .map_err(|e| os_err(member, "chown", e))?;
        }
        let mode = effective_mode(entry.mode, entry.uid);
        fchmod(fd, Mode::from_bits_truncate(mode)).map_err(|e| os_err(member, "chmod", e))?;
        let t = timespec(entry.mtime);
        futimens(fd, &t, &t).map_err(|e| os_err(member, "set times", e))
    }

    fn commit(&mut self, plan: &Plan) -> Result<(), UnpackError> {
        let staged = std::mem::take(&mut self.staged);
        for (i, s) in staged.iter().enumerate() {
            let renamed = self.root.dir(&s.parent).and_then(|pfd| {
                renameat(
                    Some(pfd.as_raw_fd()),
                    s.tmp.as_str(),
                    Some(pfd.as_raw_fd()),
                    &s.name[..],
                )
                .map_err(io::Error::from)
            });
            if let Err(source) = renamed {
                self.staged = staged.into_iter().skip(i).collect();
                let member = self.staged[0].member.clone();
                self.rollback_staged();
                return Err(UnpackError::Commit { member, source });
            }
        }
        let mut dirs: Vec<&Item> = plan
            .items
            .iter()
            .filter(|it| it.is_final && it.entry.kind == Kind::Dir)
            .filter(|it| it.path.as_ref().is_some_and(|p| !p.is_root()))
            .collect();
        dirs.sort_by_key(|it| Reverse(it.path.as_ref().map_or(0, |p| p.ancestors().count())));
        for item in dirs {
            let Some(path) = &item.path else { continue };
            let member = shown(&item.entry.name);
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            match self.root.open_at(&path.0, flags) {
                Ok(fd) => self
                    .set_meta(&fd, &item.entry, &member)
                    .map_err(|e| match e {
                        UnpackError::Apply { source, .. } => UnpackError::Commit { member, source },
                        other => other,
                    })?,
                // An existing symlink (usr-merge) stands there: leave its target alone.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {}
                Err(source) => return Err(UnpackError::Commit { member, source }),
            }
        }
        Ok(())
    }

    fn rollback_staged(&mut self) {
        for s in self.staged.drain(..).rev() {
            if let Ok(pfd) = self.root.dir(&s.parent) {
                let _ = unlinkat(
                    Some(pfd.as_raw_fd()),
                    s.tmp.as_str(),
                    UnlinkatFlags::NoRemoveDir,
                );
            }
        }
    }

    /// Best effort: removes staged entries, then created directories, newest first.
    fn rollback(&mut self) {
        self.rollback_staged();
        for dir in self.created_dirs.drain(..).rev() {
            let (parent, name) = match dir.iter().rposition(|&b| b == b'/') {
                Some(i) => (&dir[..i], &dir[i + 1..]),
                None => (&[][..], &dir[..]),
            };
            if let Ok(pfd) = self.root.dir(parent) {
                let _ = unlinkat(Some(pfd.as_raw_fd()), name, UnlinkatFlags::RemoveDir);
            }
        }
    }
}
