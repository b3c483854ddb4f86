//! The staging directory's life: creation, the commit that moves its entries into
//! place, and the cleanup that removes it whatever happened.
//!
//! Each staged entry is moved with `renameat2(RENAME_EXCHANGE)` when something is at
//! its destination: the original then waits in the staging directory under the
//! temporary name until the end, so a failure later in the commit swaps every original
//! back (`RENAME_EXCHANGE` again, or a rename back for new names) and the sysroot is as
//! before. Only a file system without `RENAME_EXCHANGE` falls back to a plain rename,
//! which cannot be undone; the error then says so.

use std::cmp::Reverse;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::plan::Plan;
use super::stage::{tmp_name, Stage, StageDir};
use super::tree::{Fs, ROOT};
use super::UnpackError;
use crate::archive::Kind;
use crate::root::{openat_owned, Root};

/// Prefix of the staging directory's name.
pub(super) const STAGE_PREFIX: &str = ".apkovl-stage-";

/// Creates the staging directory at the top of the sysroot under a name that is not a
/// member of `plan` and did not exist (`mkdirat` fails on anything already there).
pub(super) fn stage_dir(root: &Root, plan: &Plan) -> Result<StageDir, UnpackError> {
    // Only a starting point: the name is checked against the plan and created
    // exclusively, so it needs to be neither random nor secret.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32);
    stage_dir_from(root, plan, seed)
}

/// [`stage_dir`] trying names from `seed` on.
pub(super) fn stage_dir_from(root: &Root, plan: &Plan, seed: u64) -> Result<StageDir, UnpackError> {
    let top = root
        .dir(b"")
        .map_err(|e| stage_err(STAGE_PREFIX, "create", e))?;
    for attempt in 0..64u64 {
        let name = format!("{STAGE_PREFIX}{:016x}", seed.wrapping_add(attempt));
        if plan.tree.lookup(ROOT, name.as_bytes()).is_some() {
            continue;
        }
        match mkdirat(
            Some(top.as_raw_fd()),
            name.as_str(),
            Mode::from_bits_truncate(0o700),
        ) {
            Ok(()) => {}
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(stage_err(&name, "create", e)),
        }
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        return match openat_owned(&top, name.as_str(), flags, Mode::empty()) {
            Ok(fd) => Ok(StageDir {
                fd,
                name: name.into_bytes(),
            }),
            Err(e) => {
                let _ = unlinkat(
                    Some(top.as_raw_fd()),
                    name.as_str(),
                    UnlinkatFlags::RemoveDir,
                );
                Err(stage_err(&name, "open", e))
            }
        };
    }
    Err(stage_err(
        STAGE_PREFIX,
        "find a free name for",
        Errno::EEXIST,
    ))
}

fn stage_err(name: &str, op: &'static str, e: impl Into<io::Error>) -> UnpackError {
    UnpackError::Staging {
        name: name.to_owned(),
        op,
        source: e.into(),
    }
}

const RENAME_NOREPLACE: libc::c_uint = 1;
const RENAME_EXCHANGE: libc::c_uint = 2;

/// `renameat2(2)` by system call number (the C library may lack the wrapper).
fn renameat2(
    old_dir: RawFd,
    old: &[u8],
    new_dir: RawFd,
    new: &[u8],
    flags: libc::c_uint,
) -> nix::Result<()> {
    let old = CString::new(old).map_err(|_| Errno::EINVAL)?;
    let new = CString::new(new).map_err(|_| Errno::EINVAL)?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call, the
    // descriptors are plain integers the kernel checks, and renameat2 takes exactly
    // these five arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            old_dir,
            old.as_ptr(),
            new_dir,
            new.as_ptr(),
            flags,
        )
    };
    Errno::result(r).map(drop)
}

/// How one staged entry reached its place, to undo it.
enum Done {
    /// Swapped with the original, which is now in the staging directory.
    Exchanged(usize),
    /// Moved to a name that did not exist.
    Moved(usize),
    /// Replaced the original by a plain rename (no way back).
    Replaced,
}

impl Stage<'_> {
    /// The destination directory and name of staged entry `slot`.
    fn dest(&self, slot: usize) -> io::Result<(OwnedFd, &[u8])> {
        let node = &self.plan.tree.nodes[self.staged[slot].node as usize];
        Ok((self.existing_dir(node.parent)?, &node.name[..]))
    }

    /// Moves one staged entry into place.
    fn place(&self, slot: usize) -> io::Result<Done> {
        let (pfd, name) = self.dest(slot)?;
        let (sd, tmp) = (self.dir.fd.as_raw_fd(), tmp_name(slot));
        let pd = pfd.as_raw_fd();
        match renameat2(sd, tmp.as_bytes(), pd, name, RENAME_EXCHANGE) {
            Ok(()) => {
                // What came back must not be a directory (the plan checked it; this
                // catches a change since): swap it back.
                let st = fstatat(Some(sd), tmp.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
                if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
                    renameat2(sd, tmp.as_bytes(), pd, name, RENAME_EXCHANGE)?;
                    return Err(Errno::EISDIR.into());
                }
                Ok(Done::Exchanged(slot))
            }
            Err(Errno::ENOENT) => {
                renameat2(sd, tmp.as_bytes(), pd, name, RENAME_NOREPLACE)?;
                Ok(Done::Moved(slot))
            }
            Err(Errno::EINVAL) => {
                nix::fcntl::renameat(Some(sd), tmp.as_str(), Some(pd), name)?;
                Ok(Done::Replaced)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Undoes `done` newest first; false when something could not be undone.
    fn unplace(&self, done: &[Done]) -> bool {
        let mut all = true;
        for d in done.iter().rev() {
            let ok = match *d {
                Done::Exchanged(slot) | Done::Moved(slot) => {
                    let flags = if matches!(d, Done::Exchanged(_)) {
                        RENAME_EXCHANGE
                    } else {
                        RENAME_NOREPLACE
                    };
                    match self.dest(slot) {
                        Ok((pfd, name)) => renameat2(
                            pfd.as_raw_fd(),
                            name,
                            self.dir.fd.as_raw_fd(),
                            tmp_name(slot).as_bytes(),
                            flags,
                        )
                        .is_ok(),
                        _ => false,
                    }
                }
                Done::Replaced => false,
            };
            all &= ok;
        }
        all
    }

    /// Moves every staged entry into place, then applies directory metadata (deepest
    /// first). On a failure everything moved is put back.
    pub(super) fn commit(&mut self) -> Result<(), UnpackError> {
        let mut done = Vec::with_capacity(self.staged.len());
        for slot in 0..self.staged.len() {
            match self.place(slot) {
                Ok(d) => done.push(d),
                Err(source) => {
                    let member = self.member(self.staged[slot].node);
                    return Err(self.failed(&done, member, source));
                }
            }
        }
        let plan = self.plan;
        let mut dirs: Vec<usize> = (0..plan.items.len())
            .filter(|&i| plan.is_final(i) && plan.items[i].kind == Kind::Dir)
            .filter(|&i| plan.items[i].node != ROOT)
            .filter(|&i| plan.tree.nodes[plan.items[i].node as usize].fs != Fs::Symlink)
            .collect();
        dirs.sort_by_key(|&i| Reverse(plan.tree.nodes[plan.items[i].node as usize].depth));
        for i in dirs {
            let item = &plan.items[i];
            let member = self.member(item.node);
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            let result = match self.root.open_at(&plan.tree.path(item.node), flags) {
                Ok(fd) => match self.set_meta(&fd, item, &member) {
                    Err(UnpackError::Apply { source, .. }) => Err(source),
                    Err(other) => Err(io::Error::other(other.to_string())),
                    Ok(()) => Ok(()),
                },
                Err(e) => Err(e),
            };
            if let Err(source) = result {
                return Err(self.failed(&done, member, source));
            }
        }
        Ok(())
    }

    fn failed(&mut self, done: &[Done], member: String, source: io::Error) -> UnpackError {
        let restored = self.unplace(done);
        self.rollback();
        UnpackError::Commit {
            member,
            source,
            remains: if restored {
                "nothing of the overlay was applied"
            } else {
                "some members were applied and could not be taken back"
            },
        }
    }

    /// Removes the staging directory and what is in it (temporary entries, or the
    /// originals replaced by the commit).
    pub(super) fn remove_stage_dir(&mut self) {
        let sd = self.dir.fd.as_raw_fd();
        for slot in 0..self.staged.len() {
            let _ = unlinkat(
                Some(sd),
                tmp_name(slot).as_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
        if let Ok(top) = self.root.dir(b"") {
            let _ = unlinkat(
                Some(top.as_raw_fd()),
                &self.dir.name[..],
                UnlinkatFlags::RemoveDir,
            );
        }
    }

    /// Best effort: removes the staging directory, then created directories, newest
    /// first.
    pub(super) fn rollback(&mut self) {
        self.remove_stage_dir();
        self.staged.clear();
        for node in std::mem::take(&mut self.created_dirs).into_iter().rev() {
            let n = &self.plan.tree.nodes[node as usize];
            if let Ok(pfd) = self.root.dir(&self.plan.tree.path(n.parent)) {
                let _ = unlinkat(Some(pfd.as_raw_fd()), &n.name[..], UnlinkatFlags::RemoveDir);
            }
        }
    }
}
