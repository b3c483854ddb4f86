//! Every write into the new root after the overlay was applied.
//!
//! Once an overlay is unpacked the sysroot holds symlinks its author chose
//! (`etc/runlevels/boot -> ../../../outside`, `root -> /etc`). Plain
//! `std::fs` calls on `/sysroot/...` paths would follow them into the
//! initramfs. [`NewRoot`] resolves every path inside the sysroot the way the
//! unpacker does (`alpinit_apkovl::Root`: `openat2(RESOLVE_IN_ROOT)` with a
//! userspace walk on old kernels), so a symlink on the way is followed but
//! clamped to the sysroot, and the last component of a path is never
//! followed when it is written, replaced, removed or chmod'ed: the
//! operation happens on the directory entry itself, through `*at()` calls
//! on the resolved parent directory.

use crate::layout::Layout;
use crate::log;
use alpinit_apkovl::{Resolver, Root};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

/// Files read from the new root (fstab, world) are small; a larger one is
/// refused rather than read into memory.
const READ_LIMIT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum NewRootError {
    #[error("opening the new root {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{rel}: not a path of plain names inside the new root")]
    BadPath { rel: String },
    #[error("resolving {rel} inside the new root: {source}")]
    Resolve { rel: String, source: io::Error },
    #[error("creating directory {rel} in the new root: {source}")]
    Mkdir { rel: String, source: io::Error },
    #[error("writing {rel} in the new root: {source}")]
    Write { rel: String, source: io::Error },
    #[error("reading {from}: {source}")]
    Source { from: PathBuf, source: io::Error },
    #[error("reading {rel} in the new root: {source}")]
    Read { rel: String, source: io::Error },
    #[error("creating symlink {rel} in the new root: {source}")]
    Symlink { rel: String, source: io::Error },
    #[error("changing the mode of {rel} in the new root: {source}")]
    Chmod { rel: String, source: io::Error },
    #[error("removing {rel} from the new root: {source}")]
    Remove { rel: String, source: io::Error },
    #[error("{rel} in the new root is a {kind}; left alone")]
    Kind { rel: String, kind: &'static str },
}

/// The sysroot, opened once; paths are relative to it ("/etc/fstab" and
/// "etc/fstab" mean the same).
pub struct NewRoot {
    path: PathBuf,
    root: Root,
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: only called on a descriptor a successful openat(2) has just
    // returned; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn kind_of(mode: u32) -> SFlag {
    SFlag::from_bits_truncate(mode) & SFlag::S_IFMT
}

fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFLNK => "symlink",
        SFlag::S_IFREG => "regular file",
        _ => "special file",
    }
}

/// The components of `rel`; `..` is refused (no caller needs it, and a
/// name that climbs is a bug or hostile input), `.` and empty ones dropped.
fn components(rel: &str) -> Result<Vec<&str>, NewRootError> {
    let mut out = Vec::new();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(NewRootError::BadPath { rel: rel.into() }),
            c => out.push(c),
        }
    }
    Ok(out)
}

impl NewRoot {
    pub fn open(path: &Path) -> Result<Self, NewRootError> {
        Self::open_with(path, Resolver::Openat2)
    }

    /// `open` with a chosen resolver (tests run the old kernels' walk too).
    fn open_with(path: &Path, resolver: Resolver) -> Result<Self, NewRootError> {
        let root = Root::open(path, resolver).map_err(|source| NewRootError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            root,
        })
    }

    /// The directory holding the last component of `rel`, and that name.
    fn parent<'a>(&self, rel: &'a str) -> Result<(OwnedFd, &'a str), NewRootError> {
        let comps = components(rel)?;
        let Some((leaf, dirs)) = comps.split_last() else {
            return Err(NewRootError::BadPath { rel: rel.into() });
        };
        let dir =
            self.root
                .dir(dirs.join("/").as_bytes())
                .map_err(|source| NewRootError::Resolve {
                    rel: rel.into(),
                    source,
                })?;
        Ok((dir, leaf))
    }

    /// The type of the directory entry `rel` names (not following it), or
    /// `None` when there is none.
    fn entry_kind(&self, rel: &str) -> Result<Option<SFlag>, NewRootError> {
        let (dir, leaf) = self.parent(rel)?;
        match nix::sys::stat::fstatat(Some(dir.as_raw_fd()), leaf, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(kind_of(st.st_mode))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(NewRootError::Resolve {
                rel: rel.into(),
                source: e.into(),
            }),
        }
    }

    /// Whether a directory entry named `rel` exists, whatever it is (a
    /// dangling symlink counts: it is the overlay's choice, never written
    /// through).
    pub fn present(&self, rel: &str) -> bool {
        self.entry_kind(rel).is_ok_and(|k| k.is_some())
    }

    /// Whether `rel` resolves (symlinks followed inside the new root).
    pub fn exists(&self, rel: &str) -> bool {
        components(rel).is_ok_and(|c| {
            self.root
                .open_at(c.join("/").as_bytes(), OFlag::O_PATH)
                .is_ok()
        })
    }

    /// `mkdir -p`, with symlinks on the way followed inside the new root.
    pub fn create_dir_all(&self, rel: &str) -> Result<(), NewRootError> {
        let comps = components(rel)?;
        let mkdir_err = |source: io::Error| NewRootError::Mkdir {
            rel: rel.into(),
            source,
        };
        for i in 0..comps.len() {
            let prefix = comps[..=i].join("/");
            match self.root.dir(prefix.as_bytes()) {
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(mkdir_err(e)),
            }
            let parent = self
                .root
                .dir(comps[..i].join("/").as_bytes())
                .map_err(mkdir_err)?;
            match nix::sys::stat::mkdirat(
                Some(parent.as_raw_fd()),
                comps[i],
                Mode::from_bits_truncate(0o755),
            ) {
                // EEXIST: a racing creator, or a dangling symlink, which the
                // next component's lookup then reports.
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(mkdir_err(e.into())),
            }
            self.root.dir(prefix.as_bytes()).map_err(mkdir_err)?;
        }
        Ok(())
    }

    /// Replaces the entry `rel` by a regular file filled by `fill`: written
    /// under a temporary name in the same directory, then renamed over the
    /// entry, so a planted symlink is replaced and never written through.
    fn replace_file(
        &self,
        rel: &str,
        mode: u32,
        fill: impl FnOnce(&mut File) -> Result<(), NewRootError>,
    ) -> Result<(), NewRootError> {
        let write_err = |source: io::Error| NewRootError::Write {
            rel: rel.into(),
            source,
        };
        let (dir, leaf) = self.parent(rel)?;
        if self.entry_kind(rel)? == Some(SFlag::S_IFDIR) {
            return Err(NewRootError::Kind {
                rel: rel.into(),
                kind: "directory",
            });
        }
        let tmp = format!(".{leaf}.alpinit-new");
        let _ = nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode & 0o777),
        )
        .map_err(|e| write_err(e.into()))?;
        let mut file = File::from(owned(fd));
        let done = fill(&mut file).and_then(|()| {
            nix::sys::stat::fchmod(file.as_raw_fd(), Mode::from_bits_truncate(mode & 0o777))
                .map_err(|e| write_err(e.into()))?;
            nix::fcntl::renameat(
                Some(dir.as_raw_fd()),
                tmp.as_str(),
                Some(dir.as_raw_fd()),
                leaf,
            )
            .map_err(|e| write_err(e.into()))
        });
        if done.is_err() {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                tmp.as_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
        done
    }

    /// Writes `data` as the regular file `rel` (replacing whatever entry
    /// was there, except a directory).
    pub fn write_file(&self, rel: &str, data: &[u8], mode: u32) -> Result<(), NewRootError> {
        self.replace_file(rel, mode, |f| {
            f.write_all(data).map_err(|source| NewRootError::Write {
                rel: rel.into(),
                source,
            })
        })
    }

    /// Copies the initramfs file `from` to `rel` with `from`'s permission bits.
    pub fn copy_file_in(&self, from: &Path, rel: &str) -> Result<(), NewRootError> {
        use std::os::unix::fs::PermissionsExt;
        let src_err = |source: io::Error| NewRootError::Source {
            from: from.to_owned(),
            source,
        };
        let mut src = File::open(from).map_err(src_err)?;
        let mode = src.metadata().map_err(src_err)?.permissions().mode();
        self.replace_file(rel, mode, |f| {
            io::copy(&mut src, f)
                .map(drop)
                .map_err(|source| NewRootError::Write {
                    rel: rel.into(),
                    source,
                })
        })
    }

    /// Makes `rel` a symlink to `target` (text kept verbatim), replacing a
    /// file or symlink of that name; a directory is left alone.
    pub fn symlink(&self, target: &str, rel: &str) -> Result<(), NewRootError> {
        let link_err = |source: io::Error| NewRootError::Symlink {
            rel: rel.into(),
            source,
        };
        let (dir, leaf) = self.parent(rel)?;
        match self.entry_kind(rel)? {
            None => {}
            Some(SFlag::S_IFDIR) => {
                return Err(NewRootError::Kind {
                    rel: rel.into(),
                    kind: "directory",
                })
            }
            Some(_) => {
                nix::unistd::unlinkat(Some(dir.as_raw_fd()), leaf, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| link_err(e.into()))?
            }
        }
        nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), leaf).map_err(|e| link_err(e.into()))
    }

    /// `chmod` of a directory or regular file; a symlink or special file
    /// named `rel` is refused, never followed.
    pub fn chmod(&self, rel: &str, mode: u32) -> Result<(), NewRootError> {
        let chmod_err = |source: io::Error| NewRootError::Chmod {
            rel: rel.into(),
            source,
        };
        let (dir, leaf) = self.parent(rel)?;
        let flags = match self.entry_kind(rel)? {
            Some(SFlag::S_IFDIR) => OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            // O_NONBLOCK: should the entry be swapped for a FIFO meanwhile,
            // the open must not hang PID 1.
            Some(SFlag::S_IFREG) => OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            Some(other) => {
                return Err(NewRootError::Kind {
                    rel: rel.into(),
                    kind: kind_name(other),
                })
            }
            None => return Err(chmod_err(io::Error::from_raw_os_error(libc::ENOENT))),
        };
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            leaf,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(owned)
        .map_err(|e| chmod_err(e.into()))?;
        nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode & 0o7777))
            .map_err(|e| chmod_err(e.into()))
    }

    /// Removes the entry `rel` (a file or symlink, never followed);
    /// returns whether there was one.
    pub fn remove(&self, rel: &str) -> Result<bool, NewRootError> {
        let (dir, leaf) = self.parent(rel)?;
        match nix::unistd::unlinkat(Some(dir.as_raw_fd()), leaf, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(NewRootError::Remove {
                rel: rel.into(),
                source: e.into(),
            }),
        }
    }

    /// Reads a regular file of the new root (symlinks followed inside it).
    pub fn read_to_string(&self, rel: &str) -> Result<String, NewRootError> {
        let read_err = |source: io::Error| NewRootError::Read {
            rel: rel.into(),
            source,
        };
        let comps = components(rel)?;
        let fd = self
            .root
            .open_at(
                comps.join("/").as_bytes(),
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            )
            .map_err(read_err)?;
        let file = File::from(fd);
        let kind = kind_of(
            nix::sys::stat::fstat(file.as_raw_fd())
                .map_err(|e| read_err(e.into()))?
                .st_mode,
        );
        if kind != SFlag::S_IFREG {
            return Err(NewRootError::Kind {
                rel: rel.into(),
                kind: kind_name(kind),
            });
        }
        let mut text = String::new();
        file.take(READ_LIMIT)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        Ok(text)
    }

    /// A directory to mount on: created (inside the new root) if missing,
    /// returned as a path with no symlink in it, so mount(2) cannot be led
    /// outside the new root by one.
    pub fn mount_target(&self, rel: &str) -> Result<PathBuf, NewRootError> {
        self.create_dir_all(rel)?;
        let resolved = resolve_in_root(&self.path, rel).ok_or_else(|| NewRootError::Resolve {
            rel: rel.into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        })?;
        match std::fs::symlink_metadata(&resolved) {
            Ok(m) if m.is_dir() => Ok(resolved),
            Ok(_) => Err(NewRootError::Kind {
                rel: rel.into(),
                kind: "non-directory",
            }),
            Err(source) => Err(NewRootError::Resolve {
                rel: rel.into(),
                source,
            }),
        }
    }

    /// Makes the FIFO `rel`; an entry of that name is left alone (EEXIST).
    pub fn mkfifo(&self, rel: &str, mode: u32) -> Result<(), NewRootError> {
        let (dir, leaf) = self.parent(rel)?;
        nix::sys::stat::mknodat(
            Some(dir.as_raw_fd()),
            leaf,
            SFlag::S_IFIFO,
            Mode::from_bits_truncate(mode & 0o777),
            0,
        )
        .map_err(|e| NewRootError::Write {
            rel: rel.into(),
            source: e.into(),
        })
    }

    /// Writes `data` to the FIFO `rel` when a reader holds it open. Never
    /// blocks (no reader: ENXIO) and never follows a symlink; anything but
    /// a FIFO is refused.
    pub fn write_fifo(&self, rel: &str, data: &[u8]) -> Result<(), NewRootError> {
        match self.entry_kind(rel)? {
            Some(SFlag::S_IFIFO) => {}
            Some(kind) => {
                return Err(NewRootError::Kind {
                    rel: rel.into(),
                    kind: kind_name(kind),
                })
            }
            None => {
                return Err(NewRootError::Resolve {
                    rel: rel.into(),
                    source: io::Error::from_raw_os_error(libc::ENOENT),
                })
            }
        }
        let write_err = |source: io::Error| NewRootError::Write {
            rel: rel.into(),
            source,
        };
        let (dir, leaf) = self.parent(rel)?;
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            leaf,
            OFlag::O_WRONLY
                | OFlag::O_NONBLOCK
                | OFlag::O_NOFOLLOW
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| write_err(e.into()))?;
        let mut fifo = File::from(owned(fd));
        // Checked again on the open descriptor: the entry may have changed.
        let st = nix::sys::stat::fstat(fifo.as_raw_fd()).map_err(|e| write_err(e.into()))?;
        if kind_of(st.st_mode) != SFlag::S_IFIFO {
            return Err(NewRootError::Kind {
                rel: rel.into(),
                kind: kind_name(kind_of(st.st_mode)),
            });
        }
        fifo.write_all(data).map_err(write_err)
    }
}

/// `chmod 0700 $sysroot/root` when it is a directory (a symlink named
/// `root` is left alone, never followed).
pub fn restrict_root_home(layout: &Layout) {
    let done = NewRoot::open(&layout.sysroot()).and_then(|r| match r.entry_kind("root")? {
        Some(SFlag::S_IFDIR) => r.chmod("root", 0o700),
        _ => Ok(()),
    });
    if let Err(e) = done {
        log::warn(&e.to_string());
    }
}

/// The initramfs' `/etc/resolv.conf` (written by DHCP) into the new root,
/// when the overlay brought none.
pub fn copy_resolv_conf(layout: &Layout) {
    let from = layout.path("/etc/resolv.conf");
    if !from.is_file() {
        return;
    }
    let done = NewRoot::open(&layout.sysroot()).and_then(|r| {
        if r.present("etc/resolv.conf") {
            return Ok(());
        }
        r.create_dir_all("etc")?;
        r.copy_file_in(&from, "etc/resolv.conf")
    });
    if let Err(e) = done {
        log::warn(&e.to_string());
    }
}

/// Resolves `path` inside `root` as if chrooted: absolute symlinks restart
/// at `root`, `..` never climbs above it. Every component of the result is
/// a real directory entry (no symlinks left), or `None` when one is missing
/// or the links loop.
pub fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_owned)
        .collect();
    let mut cur = root.to_owned();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                if cur != root {
                    cur.pop();
                }
                continue;
            }
            _ => {}
        }
        let next = cur.join(&c);
        let md = std::fs::symlink_metadata(&next).ok()?;
        if md.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = std::fs::read_link(&next).ok()?;
            if target.is_absolute() {
                cur = root.to_owned();
            }
            for comp in target.components().rev() {
                match comp {
                    Component::Normal(s) => todo.push(s.to_string_lossy().into_owned()),
                    Component::ParentDir => todo.push("..".into()),
                    _ => {}
                }
            }
        } else {
            cur = next;
        }
    }
    Some(cur)
}

#[cfg(test)]
#[path = "in_root_tests.rs"]
mod tests;
