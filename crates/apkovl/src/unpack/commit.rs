//! The commit that puts the verified overlay in place, and the cleanup that removes
//! the staging directory (`stage.rs`) whatever happened.
//!
//! The commit runs only once the whole archive is verified. It creates the
//! directories, then places every final non-directory member, parent by parent (one
//! open directory per parent): where the plan saw nothing at the path, in place
//! (`renameat2(RENAME_NOREPLACE)` of the staged file, `linkat`, `symlinkat`, each of
//! which fails rather than replace something that appeared since); where something is
//! there, by `renameat2(RENAME_EXCHANGE)` with a staged entry, so the original waits
//! in the staging directory until the end. Every step is recorded, and a failure
//! undoes them newest first (unlinking what was created, swapping originals back), so
//! the sysroot is as before. Only a file system without `RENAME_EXCHANGE` falls back
//! to a plain rename, which cannot be undone; the error then says so.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, utimensat, FileStat, Mode, SFlag, UtimensatFlags};
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::parallel::create_file;
use super::plan::{Item, Plan, Target};
use super::stage::{
    clear_stage_name, is_held, os_err, owner, renameat2, timespec, SlotName, Writer, NO_SLOT,
    RENAME_EXCHANGE, RENAME_NOREPLACE,
};
use super::tree::{Fs, ROOT};
use super::UnpackError;
use crate::archive::Kind;
use crate::member::shown;
use crate::root::{openat_owned, Root};

/// How one entry reached its place, to undo it.
pub(super) enum Done {
    /// Created at a path that was empty (moved from the staging directory, linked or
    /// made there): undone by unlinking it.
    Created(u32),
    /// Swapped with the original, which is now staging entry `slot`.
    Exchanged { slot: u32, node: u32 },
    /// Replaced the original by a plain rename (no way back).
    Replaced,
}

/// A failure of the commit before it is undone.
pub(super) enum Fail {
    /// A system call on `member`'s entry failed.
    Io(String, io::Error),
    Unpack(UnpackError),
}

impl From<UnpackError> for Fail {
    fn from(e: UnpackError) -> Fail {
        Fail::Unpack(e)
    }
}

/// The commit of a verified plan whose files are staged in `w`.
pub(super) struct Stage<'a> {
    pub(super) root: &'a Root,
    pub(super) plan: &'a Plan,
    pub(super) w: Writer,
    /// Directories this commit created, in creation order (for rollback).
    created_dirs: Vec<u32>,
    pub(super) done: Vec<Done>,
    /// The directory last opened: consecutive entries share it, and reopening it costs
    /// a path walk as long as the path (thousands of components at worst).
    cache: Option<(u32, OwnedFd)>,
    /// The directory of the last hard link's file.
    src_cache: Option<(u32, OwnedFd)>,
    /// While directory metadata is set: the parent of the cached directory.
    up: Option<(u32, OwnedFd)>,
    /// Device and inode of each directory opened by node, to step up with `..` safely.
    inos: HashMap<u32, (u64, u64)>,
    /// Threads for creating many new files (`parallel.rs`); below 2, none.
    pub(super) workers: usize,
    /// Tests: fail the placement that would be step number N (counted in `done`; with
    /// threads, the Nth new file of the parallel pass).
    #[cfg(test)]
    pub(super) fail_at: Option<usize>,
    /// Tests: the error `fail_at` injects.
    #[cfg(test)]
    pub(super) fail_errno: Errno,
}

impl<'a> Stage<'a> {
    pub(super) fn new(root: &'a Root, plan: &'a Plan, w: Writer) -> Stage<'a> {
        Stage {
            root,
            plan,
            w,
            created_dirs: Vec::new(),
            done: Vec::new(),
            cache: None,
            src_cache: None,
            up: None,
            inos: HashMap::new(),
            workers: super::parallel::default_workers(),
            #[cfg(test)]
            fail_at: None,
            #[cfg(test)]
            fail_errno: Errno::EIO,
        }
    }

    /// Puts the plan in place. On a failure everything done is undone and the staging
    /// directory removed; on success only the staging directory is left to remove
    /// ([`Stage::finish`]).
    pub(super) fn commit(&mut self) -> Result<(), UnpackError> {
        match self.commit_steps() {
            Ok(()) => Ok(()),
            Err(fail) => {
                let restored = self.unplace();
                self.rollback();
                Err(match fail {
                    // A full sysroot (blocks or inodes, now that files are created
                    // in place at commit) is said as such once it is undone.
                    Fail::Io(member, source)
                        if restored
                            && matches!(
                                source.raw_os_error(),
                                Some(libc::ENOSPC) | Some(libc::EDQUOT)
                            ) =>
                    {
                        UnpackError::NoSpace { member }
                    }
                    Fail::Io(member, source) => UnpackError::Commit {
                        member,
                        source,
                        remains: remains(restored),
                    },
                    Fail::Unpack(e) if restored => e,
                    Fail::Unpack(e) => UnpackError::Commit {
                        member: String::new(),
                        source: io::Error::other(e),
                        remains: remains(false),
                    },
                })
            }
        }
    }

    fn commit_steps(&mut self) -> Result<(), Fail> {
        let plan = self.plan;
        clear_stage_name(self.root, plan, &mut self.w.dir)
            .map_err(|e| Fail::Io(shown(&self.w.dir.name), e))?;
        let final_of = |kind: fn(Kind) -> bool| {
            (0..plan.items.len())
                .filter(move |&i| plan.is_final(i) && plan.items[i].node != ROOT)
                .filter(move |&i| kind(plan.items[i].kind))
        };
        for i in final_of(|k| k == Kind::Dir) {
            let node = plan.items[i].node;
            // A directory member where the sysroot has a symlink leaves it alone.
            if plan.tree.nodes[node as usize].fs != Fs::Symlink {
                self.dir_fd(node)?;
            }
        }
        // Files and symlinks, then hard links to the files now in place; each group
        // parent by parent.
        let by_parent = |mut v: Vec<usize>| {
            alpinit_sort::sort_by_key(&mut v, |&i| {
                plan.tree.nodes[plan.items[i].node as usize].parent
            });
            v
        };
        let files = by_parent(final_of(|k| matches!(k, Kind::File | Kind::Symlink)).collect());
        let placed = self.place_parallel(&files)?;
        for i in files {
            if !placed.get(i).copied().unwrap_or(false) {
                self.place(&plan.items[i])?;
            }
        }
        for i in by_parent(final_of(|k| k == Kind::HardLink).collect()) {
            self.place(&plan.items[i])?;
        }
        self.dir_meta()
    }

    /// Directory ownership, modes and times, deepest first (a directory whose mode
    /// forbids entering it must come after what is below it), each opened from its
    /// parent.
    fn dir_meta(&mut self) -> Result<(), Fail> {
        let plan = self.plan;
        let mut dirs: Vec<usize> = (0..plan.items.len())
            .filter(|&i| plan.is_final(i) && plan.items[i].kind == Kind::Dir)
            .filter(|&i| plan.items[i].node != ROOT)
            .filter(|&i| plan.tree.nodes[plan.items[i].node as usize].fs != Fs::Symlink)
            .collect();
        alpinit_sort::sort_by_key(&mut dirs, |&i| {
            let n = &plan.tree.nodes[plan.items[i].node as usize];
            (Reverse(n.depth), n.parent)
        });
        let as_root = self.w.creds.as_root;
        for i in dirs {
            let item = &plan.items[i];
            let io = |e: Errno| Fail::Io(member_of(plan, item.node), e.into());
            let (fd, st) = self.meta_fd(item.node)?;
            let (uid, gid) = (owner(item.uid), owner(item.gid));
            // Only what differs is changed; a chown clears setuid/setgid bits, so the
            // mode comes after it and is then always set.
            let chown = as_root && (st.st_uid != uid || st.st_gid != gid);
            if chown {
                nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .map_err(io)?;
            }
            let mode = super::stage::effective_mode(item.mode, item.uid, item.gid);
            if chown || st.st_mode & 0o7777 != mode {
                nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode)).map_err(io)?;
            }
            let t = timespec(item.mtime);
            nix::sys::stat::futimens(fd, &t, &t).map_err(io)?;
        }
        Ok(())
    }

    /// The directory at `node` opened for reading (its owner, mode and times are set
    /// through it) and its status; it becomes the cached directory. Deepest-first order
    /// climbs one level at a time, so the parent is reached by `..` from it
    /// ([`Stage::parent_of_cached`]); a sibling is opened by name from their parent,
    /// kept in `up`.
    fn meta_fd(&mut self, node: u32) -> Result<(RawFd, FileStat), Fail> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let plan = self.plan;
        let (fd, st) = match self.parent_of_cached(node, flags) {
            Some(found) => found,
            None => {
                let io = |e: Errno| Fail::Io(member_of(plan, node), e.into());
                let n = &plan.tree.nodes[node as usize];
                let up = match self.up.take() {
                    Some((p, fd)) if p == n.parent => (p, fd),
                    _ => {
                        self.dir_fd(n.parent)?;
                        self.cache.take().ok_or_else(|| io(Errno::EBADF))?
                    }
                };
                let fd = openat_owned(&up.1, &n.name[..], flags, Mode::empty()).map_err(io)?;
                self.up = Some(up);
                let st = fstat(fd.as_raw_fd()).map_err(io)?;
                self.inos.insert(node, (st.st_dev, st.st_ino));
                (fd, st)
            }
        };
        let raw = fd.as_raw_fd();
        self.cache = Some((node, fd));
        Ok((raw, st))
    }

    /// Places one non-directory member.
    fn place(&mut self, item: &Item) -> Result<(), Fail> {
        let (plan, node) = (self.plan, item.node);
        #[cfg(test)]
        if self.fail_at == Some(self.done.len()) {
            return Err(Fail::Io(member_of(plan, node), self.fail_errno.into()));
        }
        let pfd = self.dir_fd(plan.tree.nodes[node as usize].parent)?;
        let n = &plan.tree.nodes[node as usize];
        let (name, empty) = (&n.name[..], n.fs == Fs::Missing);
        let sd = self.w.dir.fd.as_raw_fd();
        let io = |e: Errno| Fail::Io(member_of(plan, node), e.into());
        let staged = match (item.kind, &item.target) {
            // Empty, or held in memory: written where it goes.
            (Kind::File, _) if item.slot == NO_SLOT || is_held(item.slot) => {
                if empty {
                    match create_file(&self.w.creds, item, pfd, name, self.w.held(item.slot)) {
                        Ok(()) => {
                            self.done.push(Done::Created(node));
                            return Ok(());
                        }
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                let slot = self.w.slot();
                let tmp = SlotName::new(slot);
                create_file(
                    &self.w.creds,
                    item,
                    sd,
                    tmp.as_bytes(),
                    self.w.held(item.slot),
                )
                .map_err(io)?;
                slot
            }
            (Kind::File, _) => {
                let tmp = SlotName::new(item.slot);
                if empty {
                    match renameat2(sd, tmp.as_bytes(), pfd, name, RENAME_NOREPLACE) {
                        Ok(()) => {
                            self.done.push(Done::Created(node));
                            return Ok(());
                        }
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                item.slot
            }
            (Kind::HardLink, Target::Hard(file)) => {
                // The file is in place by now (it is final: check_final).
                let file = &plan.tree.nodes[plan.items[*file as usize].node as usize];
                let src_dir = if file.parent == n.parent {
                    pfd
                } else {
                    self.src_dir_fd(file.parent)
                        .map_err(|e| Fail::Io(member_of(plan, node), e))?
                };
                let link = |dir: RawFd, to: &[u8]| {
                    linkat(
                        Some(src_dir),
                        &file.name[..],
                        Some(dir),
                        to,
                        AtFlags::empty(),
                    )
                };
                if empty {
                    match link(pfd, name) {
                        Ok(()) => {
                            self.done.push(Done::Created(node));
                            return Ok(());
                        }
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                let slot = self.w.slot();
                link(sd, SlotName::new(slot).as_bytes()).map_err(io)?;
                slot
            }
            (Kind::Symlink, Target::Symlink(target)) => {
                if empty {
                    match symlinkat(&target[..], Some(pfd), name) {
                        Ok(()) => {
                            self.done.push(Done::Created(node));
                            self.symlink_meta(item, pfd, name).map_err(io)?;
                            return Ok(());
                        }
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                let slot = self.w.slot();
                let tmp = SlotName::new(slot);
                symlinkat(&target[..], Some(sd), tmp.as_bytes()).map_err(io)?;
                self.symlink_meta(item, sd, tmp.as_bytes()).map_err(io)?;
                slot
            }
            _ => return Err(io(Errno::EINVAL)),
        };
        let done = self.exchange(staged, node, pfd).map_err(io)?;
        self.done.push(done);
        Ok(())
    }

    /// The directory of a hard link's file, kept open for the next link.
    fn src_dir_fd(&mut self, node: u32) -> io::Result<RawFd> {
        if let Some((n, fd)) = &self.src_cache {
            if *n == node {
                return Ok(fd.as_raw_fd());
            }
        }
        let fd = self.root.dir(&self.plan.tree.path(node))?;
        let raw = fd.as_raw_fd();
        self.src_cache = Some((node, fd));
        Ok(raw)
    }

    fn symlink_meta(&self, item: &Item, dir: RawFd, name: &[u8]) -> nix::Result<()> {
        if self.w.creds.as_root {
            fchownat(
                Some(dir),
                name,
                Some(Uid::from_raw(owner(item.uid))),
                Some(Gid::from_raw(owner(item.gid))),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        let t = timespec(item.mtime);
        utimensat(Some(dir), name, &t, &t, UtimensatFlags::NoFollowSymlink)
    }

    /// Swaps staged entry `slot` with what is at `node` in the directory `pfd`.
    fn exchange(&self, slot: u32, node: u32, pfd: RawFd) -> nix::Result<Done> {
        let name = &self.plan.tree.nodes[node as usize].name[..];
        let sd = self.w.dir.fd.as_raw_fd();
        let tmp = SlotName::new(slot);
        match renameat2(sd, tmp.as_bytes(), pfd, name, RENAME_EXCHANGE) {
            Ok(()) => {
                // What came back must not be a directory (the plan checked it; this
                // catches a change since): swap it back.
                let st = fstatat(Some(sd), tmp.as_bytes(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
                if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
                    renameat2(sd, tmp.as_bytes(), pfd, name, RENAME_EXCHANGE)?;
                    return Err(Errno::EISDIR);
                }
                Ok(Done::Exchanged { slot, node })
            }
            Err(Errno::ENOENT) => {
                renameat2(sd, tmp.as_bytes(), pfd, name, RENAME_NOREPLACE)?;
                Ok(Done::Created(node))
            }
            Err(Errno::EINVAL) => {
                nix::fcntl::renameat(Some(sd), tmp.as_bytes(), Some(pfd), name)?;
                Ok(Done::Replaced)
            }
            Err(e) => Err(e),
        }
    }

    /// The directory at canonical node `node`, made if missing, kept open for the
    /// next call. The descriptor stays valid until the next call.
    pub(super) fn dir_fd(&mut self, node: u32) -> Result<RawFd, Fail> {
        if let Some((n, fd)) = &self.cache {
            if *n == node {
                return Ok(fd.as_raw_fd());
            }
        }
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match self.parent_of_cached(node, flags) {
            Some((fd, _)) => fd,
            None => {
                let fd = self.mkdir_p(node)?;
                if let Ok(st) = fstat(fd.as_raw_fd()) {
                    self.inos.insert(node, (st.st_dev, st.st_ino));
                }
                fd
            }
        };
        let raw = fd.as_raw_fd();
        self.cache = Some((node, fd));
        Ok(raw)
    }

    /// The directory `node` reached by `..` from the cached directory when `node` is
    /// its parent (deepest-first order climbs one level at a time; a path walk from the
    /// top would cost the depth each time), accepted only when it is the very directory
    /// this commit saw at `node` before (device and inode), so nothing moved meanwhile
    /// can lead elsewhere.
    fn parent_of_cached(&self, node: u32, flags: OFlag) -> Option<(OwnedFd, FileStat)> {
        let (c, fd) = self.cache.as_ref()?;
        if *c == ROOT || self.plan.tree.nodes[*c as usize].parent != node {
            return None;
        }
        let want = *self.inos.get(&node)?;
        let up = openat_owned(fd, "..", flags, Mode::empty()).ok()?;
        let st = fstat(up.as_raw_fd()).ok()?;
        ((st.st_dev, st.st_ino) == want).then_some((up, st))
    }

    /// Opens the directory at canonical node `node`, creating missing components
    /// (recorded for rollback). The canonical path holds no symlink, so missing parts
    /// are created and entered one component at a time with `O_NOFOLLOW`: linear in
    /// the depth, and one step when the parent is the directory last opened.
    fn mkdir_p(&mut self, node: u32) -> Result<OwnedFd, UnpackError> {
        let plan = self.plan;
        let tree = &plan.tree;
        let member = || member_of(plan, node);
        let blocked = || UnpackError::Blocked { member: member() };
        let parent = tree.nodes[node as usize].parent;
        let mut chain = Vec::new();
        let mut fd = match self.cache.take() {
            Some((n, fd)) if n == parent && node != ROOT => {
                chain.push(node);
                fd
            }
            cached => {
                self.cache = cached;
                match self.root.dir(&tree.path(node)) {
                    Ok(fd) => return Ok(fd),
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(blocked()),
                    Err(e) => return Err(os_err(&member(), "open directory", e)),
                }
                let mut n = node;
                while n != ROOT {
                    chain.push(n);
                    n = tree.nodes[n as usize].parent;
                }
                self.root
                    .dir(b"")
                    .map_err(|e| os_err(&member(), "open sysroot", e))?
            }
        };
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        for &n in chain.iter().rev() {
            let name = &tree.nodes[n as usize].name[..];
            let open = |fd: &OwnedFd| openat_owned(fd, name, flags, Mode::empty());
            // Where the plan saw nothing and this commit has not been, the directory
            // is made first: looking before costs a failed lookup per level.
            let fresh = tree.nodes[n as usize].fs == Fs::Missing && !self.inos.contains_key(&n);
            let looked = if fresh { Err(Errno::ENOENT) } else { open(&fd) };
            fd = match looked {
                Ok(next) => next,
                Err(Errno::ENOENT) => {
                    match mkdirat(Some(fd.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) => self.created_dirs.push(n),
                        // Made earlier in this commit, or a race: entered only if it is
                        // a directory (never followed, never replaced).
                        Err(Errno::EEXIST) if fresh => {}
                        Err(Errno::EEXIST) => return Err(blocked()),
                        Err(e) => return Err(os_err(&member(), "mkdir", e)),
                    }
                    match open(&fd) {
                        Ok(next) => next,
                        Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => return Err(blocked()),
                        Err(e) => return Err(os_err(&member(), "open directory", e)),
                    }
                }
                Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => return Err(blocked()),
                Err(e) => return Err(os_err(&member(), "open directory", e)),
            };
        }
        Ok(fd)
    }

    /// Undoes every recorded step, newest first; false when something could not be
    /// undone.
    fn unplace(&mut self) -> bool {
        self.cache = None;
        self.src_cache = None;
        self.up = None;
        let mut all = true;
        let sd = self.w.dir.fd.as_raw_fd();
        for d in std::mem::take(&mut self.done).into_iter().rev() {
            let node = match d {
                Done::Created(node) | Done::Exchanged { node, .. } => node,
                Done::Replaced => {
                    all = false;
                    continue;
                }
            };
            let n = &self.plan.tree.nodes[node as usize];
            let Ok(pfd) = self.root.dir(&self.plan.tree.path(n.parent)) else {
                all = false;
                continue;
            };
            let pd = pfd.as_raw_fd();
            let ok = match d {
                Done::Exchanged { slot, .. } => {
                    let tmp = SlotName::new(slot);
                    renameat2(pd, &n.name, sd, tmp.as_bytes(), RENAME_EXCHANGE).is_ok()
                }
                _ => unlinkat(Some(pd), &n.name[..], UnlinkatFlags::NoRemoveDir).is_ok(),
            };
            all &= ok;
        }
        all
    }

    /// After a successful commit: removes the originals that were replaced and the
    /// staging directory.
    pub(super) fn finish(&mut self) {
        let sd = self.w.dir.fd.as_raw_fd();
        for d in &self.done {
            if let Done::Exchanged { slot, .. } = d {
                let tmp = SlotName::new(*slot);
                let _ = unlinkat(Some(sd), tmp.as_bytes(), UnlinkatFlags::NoRemoveDir);
            }
        }
        if !self.w.remove_dir(self.root) {
            self.w.remove_all(self.root);
        }
    }

    /// Best effort: removes the staging directory with everything in it, then the
    /// directories this commit created, newest first.
    pub(super) fn rollback(&mut self) {
        self.cache = None;
        self.w.remove_all(self.root);
        for node in std::mem::take(&mut self.created_dirs).into_iter().rev() {
            let n = &self.plan.tree.nodes[node as usize];
            if let Ok(pfd) = self.root.dir(&self.plan.tree.path(n.parent)) {
                let _ = unlinkat(Some(pfd.as_raw_fd()), &n.name[..], UnlinkatFlags::RemoveDir);
            }
        }
    }
}

pub(super) fn member_of(plan: &Plan, node: u32) -> String {
    shown(&plan.tree.path(node))
}

fn remains(restored: bool) -> &'static str {
    if restored {
        "nothing of the overlay was applied"
    } else {
        "some members were applied and could not be taken back"
    }
}
