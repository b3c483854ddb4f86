//! Pass 2: create directories, write every file, symlink and hard link into a private
//! staging directory, then commit (see `commit.rs`).
//!
//! The staging directory is created by this pass at the top of the sysroot with a name
//! that no member of the plan has (checked against the plan, and created with
//! `mkdirat`, which fails rather than reuse anything). Entries in it are named by
//! number, so a member can never collide with a temporary name, and removing that one
//! directory removes every temporary entry.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, futimens, mkdirat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};

use super::plan::{Item, Plan, Target};
use super::tree::{Fs, ROOT};
use super::UnpackError;
use crate::archive::{Kind, TarReader};
use crate::gzip::BUF_SIZE;
use crate::member::shown;
use crate::root::{openat_owned, Root};

/// The owner used for a member whose uid or gid is `0xFFFFFFFF` (the user "nobody").
/// The kernel reads `(uid_t)-1` in `chown` as "leave unchanged", so restoring that id
/// would leave the file owned by root; with mode 02755 that would be a setgid-root
/// program. Such an id is mapped to nobody and the setuid/setgid bits are dropped.
pub(super) const NOBODY: u32 = 65534;

/// The id restored for a member id (see [`NOBODY`]).
pub(super) fn owner(id: u32) -> u32 {
    if id == u32::MAX {
        NOBODY
    } else {
        id
    }
}

/// The setuid/setgid policy of the crate docs: kept only for members owned by uid 0,
/// and dropped when either id had to be mapped to nobody.
pub(super) fn effective_mode(mode: u32, uid: u32, gid: u32) -> u32 {
    let mode = mode & 0o7777;
    if uid == 0 && gid != u32::MAX {
        mode
    } else {
        mode & !0o6000
    }
}

/// An entry written in the staging directory, waiting for the commit.
pub(super) struct Staged {
    /// Where it goes (canonical node).
    pub(super) node: u32,
}

/// The staging directory (see the module docs).
pub(super) struct StageDir {
    pub(super) fd: OwnedFd,
    pub(super) name: Vec<u8>,
}

pub(super) struct Stage<'a> {
    pub(super) root: &'a Root,
    pub(super) plan: &'a Plan,
    pub(super) dir: StageDir,
    /// Directories this pass created, in creation order (for rollback).
    pub(super) created_dirs: Vec<u32>,
    /// Entry `i` of the staging directory is named `i`.
    pub(super) staged: Vec<Staged>,
    /// Plan index of a regular file -> its entry in the staging directory.
    file_slot: HashMap<u32, usize>,
    pub(super) as_root: bool,
    /// The directory of the last member: consecutive members usually share it, and
    /// reopening it costs a path walk as long as the path (thousands of components at
    /// worst).
    dir_cache: RefCell<Option<(u32, OwnedFd)>>,
}

pub(super) fn os_err(member: &str, op: &'static str, e: impl Into<io::Error>) -> UnpackError {
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

pub(super) fn tmp_name(slot: usize) -> String {
    slot.to_string()
}

impl<'a> Stage<'a> {
    pub(super) fn new(root: &'a Root, plan: &'a Plan, dir: StageDir) -> Stage<'a> {
        Stage {
            root,
            plan,
            dir,
            created_dirs: Vec::new(),
            staged: Vec::new(),
            file_slot: HashMap::new(),
            as_root: nix::unistd::geteuid().is_root(),
            dir_cache: RefCell::new(None),
        }
    }

    /// The cached directory `node`, if it is the cached one.
    fn cached_dir(&self, node: u32) -> Option<OwnedFd> {
        match &*self.dir_cache.borrow() {
            Some((n, fd)) if *n == node => fd.try_clone().ok(),
            _ => None,
        }
    }

    fn cache_dir(&self, node: u32, fd: &OwnedFd) {
        *self.dir_cache.borrow_mut() = fd.try_clone().ok().map(|fd| (node, fd));
    }

    /// The existing directory at canonical node `node`.
    pub(super) fn existing_dir(&self, node: u32) -> io::Result<OwnedFd> {
        if let Some(fd) = self.cached_dir(node) {
            return Ok(fd);
        }
        let fd = self.root.dir(&self.plan.tree.path(node))?;
        self.cache_dir(node, &fd);
        Ok(fd)
    }

    pub(super) fn member(&self, node: u32) -> String {
        shown(&self.plan.tree.path(node))
    }

    /// Reads the archive again and stages everything; returns the file bytes written.
    pub(super) fn run<R: Read>(&mut self, tar: &mut TarReader<R>) -> Result<u64, UnpackError> {
        let plan = self.plan;
        let mut buf = vec![0u8; BUF_SIZE];
        let mut bytes = 0;
        let mut index = 0;
        while let Some(entry) = tar.next_entry()? {
            let item = plan
                .items
                .get(index)
                .filter(|it| it.fingerprint == plan.fingerprint(&entry))
                .ok_or(UnpackError::Changed { index })?;
            let this = index;
            index += 1;
            if !plan.is_final(this) || item.node == ROOT {
                continue;
            }
            let member = shown(&entry.name);
            match item.kind {
                // A directory member where the sysroot has a symlink leaves it alone.
                Kind::Dir if plan.tree.nodes[item.node as usize].fs == Fs::Symlink => {}
                Kind::Dir => {
                    self.mkdir_p(item.node, &member)?;
                }
                Kind::File => {
                    let (fd, slot) = self.create_file(item.node, &member)?;
                    self.file_slot.insert(this as u32, slot);
                    let mut file = File::from(fd);
                    loop {
                        let n = tar.read_data(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        file.write_all(&buf[..n])
                            .map_err(|e| os_err(&member, "write", e))?;
                        bytes += n as u64;
                    }
                    self.set_meta(&file, item, &member)?;
                }
                Kind::Symlink => self.symlink(item, &member)?,
                Kind::HardLink | Kind::Skipped(_) => {}
            }
        }
        if index != plan.items.len() {
            return Err(UnpackError::Changed { index });
        }
        for (i, item) in plan.items.iter().enumerate() {
            if let (Target::Hard(file), true) = (&item.target, plan.is_final(i)) {
                self.hard_link(i, item, *file)?;
            }
        }
        Ok(bytes)
    }

    /// Opens the directory at canonical node `node`, creating missing components
    /// (recorded for rollback). The canonical path holds no symlink, so missing parts
    /// are created and entered one component at a time with `O_NOFOLLOW`: linear in
    /// the depth.
    pub(super) fn mkdir_p(&mut self, node: u32, member: &str) -> Result<OwnedFd, UnpackError> {
        let tree = &self.plan.tree;
        let blocked = || UnpackError::Blocked {
            member: member.to_owned(),
        };
        match self.root.dir(&tree.path(node)) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(blocked()),
            Err(e) => return Err(os_err(member, "open directory", e)),
        }
        let mut chain = Vec::new();
        let mut n = node;
        while n != ROOT {
            chain.push(n);
            n = tree.nodes[n as usize].parent;
        }
        let mut fd = self
            .root
            .dir(b"")
            .map_err(|e| os_err(member, "open sysroot", e))?;
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        for &n in chain.iter().rev() {
            let name = &tree.nodes[n as usize].name[..];
            let open = |fd: &OwnedFd| openat_owned(fd, name, flags, Mode::empty());
            fd = match open(&fd) {
                Ok(next) => next,
                Err(Errno::ENOENT) => {
                    match mkdirat(Some(fd.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) => self.created_dirs.push(n),
                        // A race: never follow or replace what appeared.
                        Err(Errno::EEXIST) => return Err(blocked()),
                        Err(e) => return Err(os_err(member, "mkdir", e)),
                    }
                    open(&fd).map_err(|e| os_err(member, "open directory", e))?
                }
                Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => return Err(blocked()),
                Err(e) => return Err(os_err(member, "open directory", e)),
            };
        }
        Ok(fd)
    }

    /// Makes the parent of `node`, checks that `node` is not a directory there, and
    /// runs `make` on a fresh entry name in the staging directory.
    fn stage_new<T>(
        &mut self,
        node: u32,
        member: &str,
        op: &'static str,
        make: impl FnOnce(&OwnedFd, &str) -> nix::Result<T>,
    ) -> Result<(T, usize), UnpackError> {
        let tree = &self.plan.tree;
        let n = &tree.nodes[node as usize];
        let pfd = match self.cached_dir(n.parent) {
            Some(fd) => fd,
            None => {
                let fd = self.mkdir_p(n.parent, member)?;
                self.cache_dir(n.parent, &fd);
                fd
            }
        };
        match fstatat(
            Some(pfd.as_raw_fd()),
            &n.name[..],
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
                return Err(UnpackError::ReplacesDirectory {
                    member: member.to_owned(),
                })
            }
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(os_err(member, "stat", e)),
        }
        let slot = self.staged.len();
        let v = make(&self.dir.fd, &tmp_name(slot)).map_err(|e| os_err(member, op, e))?;
        self.staged.push(Staged { node });
        Ok((v, slot))
    }

    fn create_file(&mut self, node: u32, member: &str) -> Result<(OwnedFd, usize), UnpackError> {
        self.stage_new(node, member, "create", |dir, tmp| {
            let flags = OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_WRONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            openat_owned(dir, tmp, flags, Mode::from_bits_truncate(0o600))
        })
    }

    fn symlink(&mut self, item: &Item, member: &str) -> Result<(), UnpackError> {
        let Target::Symlink(target) = &item.target else {
            return Err(UnpackError::Changed { index: 0 });
        };
        let as_root = self.as_root;
        self.stage_new(item.node, member, "symlink", |dir, tmp| {
            symlinkat(&target[..], Some(dir.as_raw_fd()), tmp)?;
            if as_root {
                fchownat(
                    Some(dir.as_raw_fd()),
                    tmp,
                    Some(Uid::from_raw(owner(item.uid))),
                    Some(Gid::from_raw(owner(item.gid))),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )?;
            }
            let t = timespec(item.mtime);
            utimensat(
                Some(dir.as_raw_fd()),
                tmp,
                &t,
                &t,
                UtimensatFlags::NoFollowSymlink,
            )
        })?;
        Ok(())
    }

    fn hard_link(&mut self, index: usize, item: &Item, file: u32) -> Result<(), UnpackError> {
        let member = self.member(item.node);
        let Some(&slot) = self.file_slot.get(&file) else {
            return Err(UnpackError::Changed { index });
        };
        let src = tmp_name(slot);
        self.stage_new(item.node, &member, "link", |dir, tmp| {
            linkat(
                Some(dir.as_raw_fd()),
                src.as_str(),
                Some(dir.as_raw_fd()),
                tmp,
                AtFlags::empty(),
            )
        })?;
        Ok(())
    }

    /// Ownership first: chown clears setuid bits, so the mode must come after it.
    pub(super) fn set_meta(
        &self,
        fd: &impl AsRawFd,
        item: &Item,
        member: &str,
    ) -> Result<(), UnpackError> {
        let fd = fd.as_raw_fd();
        if self.as_root {
            fchown(
                fd,
                Some(Uid::from_raw(owner(item.uid))),
                Some(Gid::from_raw(owner(item.gid))),
            )
            .map_err(|e| os_err(member, "chown", e))?;
        }
        let mode = effective_mode(item.mode, item.uid, item.gid);
        fchmod(fd, Mode::from_bits_truncate(mode)).map_err(|e| os_err(member, "chmod", e))?;
        let t = timespec(item.mtime);
        futimens(fd, &t, &t).map_err(|e| os_err(member, "set times", e))
    }
}
