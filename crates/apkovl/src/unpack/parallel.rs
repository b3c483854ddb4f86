//! The commit's new regular files, created on several threads when there are many.
//!
//! A regular file whose path the plan saw empty is created where it goes (held in
//! memory or empty: `openat(O_CREAT | O_EXCL)`, its data, owner, mode and time) or
//! renamed there from the staging directory (`renameat2(RENAME_NOREPLACE)`). For an
//! overlay of 100,000 small files that is almost all of the commit, and almost all of
//! it kernel time (inode and page allocation) that runs in parallel on distinct
//! directories and CPUs. So, from [`MIN_FILES`] such files on a machine with more than
//! one CPU, they are split into contiguous runs (in parent order) and each run is
//! created by its own thread; everything else stays in `commit.rs`'s sequential pass.
//!
//! The guarantees stay those of the sequential pass: each worker opens its parents
//! below the sysroot with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (the
//! canonical path of a directory holds no symlink), never replaces anything (an entry
//! that appeared since verification is left to the sequential pass, which exchanges it
//! recordably), and records every file it created, so a failure anywhere is undone with
//! the rest of the commit. A parent that cannot be opened this way (a kernel without
//! `openat2`) leaves its files to the sequential pass.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

use super::commit::{member_of, Done, Fail, Stage};
use super::plan::{Item, Plan};
use super::stage::{is_held, renameat2, write_all, Creds, SlotName, Writer, NO_SLOT};
use super::tree::Fs;
use crate::archive::Kind;

/// Fewer new files than this are not worth a thread.
pub(super) const MIN_FILES: usize = 4096;
/// Threads at most (the kernel's per-directory locks leave little to gain beyond).
const MAX_WORKERS: usize = 4;

/// Threads to use on this machine: one per CPU up to [`MAX_WORKERS`].
pub(super) fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
}

/// Whether item `i` is a regular file created where the plan saw nothing.
pub(super) fn eligible(plan: &Plan, i: usize) -> bool {
    let item = &plan.items[i];
    item.kind == Kind::File && plan.tree.nodes[item.node as usize].fs == Fs::Missing
}

/// What the workers did: the items they created (to record), and the first failure.
pub(super) struct Outcome {
    pub(super) placed: Vec<usize>,
    pub(super) failed: Option<(usize, io::Error)>,
}

/// Creates the files `todo` (item indices, eligible, in parent order) with `workers`
/// threads; `inject` makes the creation of `todo[n]` fail with an error (tests).
pub(super) fn create_all(
    plan: &Plan,
    w: &Writer,
    root: RawFd,
    todo: &[usize],
    workers: usize,
    inject: Option<(usize, Errno)>,
) -> Outcome {
    let stop = AtomicBool::new(false);
    let run_len = todo.len().div_ceil(workers.max(1));
    let runs: Vec<(usize, &[usize])> = todo
        .chunks(run_len.max(1))
        .enumerate()
        .map(|(k, run)| (k * run_len, run))
        .collect();
    // One record per run, filled as files are created: what a worker did is known
    // even if it stopped early.
    let records: Vec<Mutex<Outcome>> = runs
        .iter()
        .map(|(_, run)| {
            Mutex::new(Outcome {
                placed: Vec::with_capacity(run.len()),
                failed: None,
            })
        })
        .collect();
    std::thread::scope(|scope| {
        let mut inline = Vec::new();
        for (k, &(first, run)) in runs.iter().enumerate().skip(1) {
            let (record, stop) = (&records[k], &stop);
            let job = move || create_run(plan, w, root, run, first, inject, record, stop);
            if std::thread::Builder::new()
                .name("apkovl-commit".into())
                .spawn_scoped(scope, job)
                .is_err()
            {
                inline.push(k);
            }
        }
        for k in std::iter::once(0).chain(inline) {
            if let Some(&(first, run)) = runs.get(k) {
                create_run(plan, w, root, run, first, inject, &records[k], &stop);
            }
        }
    });
    let mut all = Outcome {
        placed: Vec::with_capacity(todo.len()),
        failed: None,
    };
    for record in records {
        let r = record.into_inner().unwrap_or_else(|p| p.into_inner());
        all.placed.extend(r.placed);
        if all.failed.is_none() {
            all.failed = r.failed;
        }
    }
    all
}

/// One worker: the files of `run` (whose first is `todo[first]`), recorded in `record`.
#[allow(clippy::too_many_arguments)]
fn create_run(
    plan: &Plan,
    w: &Writer,
    root: RawFd,
    run: &[usize],
    first: usize,
    inject: Option<(usize, Errno)>,
    record: &Mutex<Outcome>,
    stop: &AtomicBool,
) {
    let mut out = record.lock().unwrap_or_else(|p| p.into_inner());
    let mut dir: Option<(u32, Option<OwnedFd>)> = None;
    let mut path = Vec::new();
    let sd = w.dir.fd.as_raw_fd();
    for (k, &i) in run.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let item = &plan.items[i];
        let n = &plan.tree.nodes[item.node as usize];
        if dir.as_ref().map(|d| d.0) != Some(n.parent) {
            plan.tree.path_into(n.parent, &mut path);
            dir = Some((n.parent, open_beneath(root, &path)));
        }
        // The parent could not be opened: the sequential pass places these.
        let Some(pfd) = dir.as_ref().and_then(|d| d.1.as_ref()) else {
            continue;
        };
        let pfd = pfd.as_raw_fd();
        let result = match inject {
            Some((at, e)) if at == first + k => Err(e),
            _ if item.slot == NO_SLOT || is_held(item.slot) => {
                create_file(&w.creds, item, pfd, &n.name, w.held(item.slot))
            }
            _ => renameat2(
                sd,
                SlotName::new(item.slot).as_bytes(),
                pfd,
                &n.name,
                super::stage::RENAME_NOREPLACE,
            ),
        };
        match result {
            Ok(()) => out.placed.push(i),
            // Something appeared there since verification: the sequential pass
            // exchanges it, so that it can be put back.
            Err(Errno::EEXIST) => {}
            Err(e) => {
                out.failed = Some((i, e.into()));
                stop.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// The directory at canonical path `path` (no symlink on it), `None` if it cannot be
/// opened without following one or leaving the sysroot.
fn open_beneath(root: RawFd, path: &[u8]) -> Option<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    let fd = openat2(root, path, how).ok()?;
    // SAFETY: `fd` was just returned by a successful openat2 and is owned by no one else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Stage<'_> {
    /// Creates the new regular files of `order` on [`Stage::workers`] threads when
    /// there are enough of them (`parallel.rs`), recording each; returns which items
    /// are placed (empty when none were).
    pub(super) fn place_parallel(&mut self, order: &[usize]) -> Result<Vec<bool>, Fail> {
        let plan = self.plan;
        let todo: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| eligible(plan, i))
            .collect();
        if self.workers < 2 || todo.len() < MIN_FILES {
            return Ok(Vec::new());
        }
        // Parents that are no directory member are made here, as `place` would
        // (recorded for rollback); `todo` is in parent order.
        let mut last = None;
        for &i in &todo {
            let parent = plan.tree.nodes[plan.items[i].node as usize].parent;
            if last != Some(parent) {
                self.dir_fd(parent)?;
                last = Some(parent);
            }
        }
        #[cfg(test)]
        let inject = self.fail_at.map(|n| (n, self.fail_errno));
        #[cfg(not(test))]
        let inject = None;
        let root = self.root.fd().as_raw_fd();
        let out = create_all(plan, &self.w, root, &todo, self.workers, inject);
        let mut placed = vec![false; plan.items.len()];
        for &i in &out.placed {
            placed[i] = true;
            self.done.push(Done::Created(plan.items[i].node));
        }
        match out.failed {
            Some((i, e)) => Err(Fail::Io(member_of(plan, plan.items[i].node), e)),
            None => Ok(placed),
        }
    }
}

/// Creates the regular file `name` in `dir` with `data` and the member's owner, mode
/// and time; a failure after the create removes it again.
pub(super) fn create_file(
    creds: &Creds,
    item: &Item,
    dir: RawFd,
    name: &[u8],
    data: &[u8],
) -> nix::Result<()> {
    let flags =
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mode = super::stage::effective_mode(item.mode, item.uid, item.gid) & 0o777;
    let fd = nix::fcntl::openat(
        Some(dir),
        name,
        flags,
        nix::sys::stat::Mode::from_bits_truncate(mode),
    )?;
    // SAFETY: `fd` was just returned by a successful openat and is owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let written =
        write_all(&fd, data).and_then(|()| creds.finish_file(&fd, item).map_err(|(_, e)| e));
    if written.is_err() {
        let _ = nix::unistd::unlinkat(Some(dir), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    written
}
