//! Staging while the archive is verified: every regular file's data is written, as it
//! is read, into a private staging directory (made and removed here; `commit.rs` moves
//! its entries into place).
//!
//! The staging directory is created at the top of the sysroot with `mkdirat` under a
//! name that did not exist; entries in it are named by number (`slot`), so a member can
//! never collide with a temporary name, and nothing in it is visible in the sysroot
//! until the commit. A member whose canonical path would be the staging directory
//! itself is seen by the plan as missing, and the directory is renamed out of its way
//! before the commit (`commit::clear_stage_name`).
//!
//! Per file this costs `openat` (the mode given at creation when the umask lets it
//! through), the writes, `futimens` and `close`; `fchown` only when the owner differs
//! from what the kernel gives a new file, `fchmod` only when the creation mode could
//! not express the final one. Runs of zero bytes become holes (`lseek`), as
//! `cp --sparse=auto` does: the content read back is the same.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fchmod, fstat, futimens, mkdirat, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, ftruncate, lseek, unlinkat, write, Gid, Uid, UnlinkatFlags, Whence};

use super::plan::{Item, Plan};
use super::tree::ROOT;
use super::UnpackError;
use crate::archive::TarReader;
use crate::gzip::BUF_SIZE;
use crate::member::shown;
use crate::root::{openat_owned, Root};

/// The owner used for a member whose uid or gid is `0xFFFFFFFF` (the user "nobody").
/// The kernel reads `(uid_t)-1` in `chown` as "leave unchanged", so restoring that id
/// would leave the file owned by root; with mode 02755 that would be a setgid-root
/// program. Such an id is mapped to nobody and the setuid/setgid bits are dropped.
pub(super) const NOBODY: u32 = 65534;

/// No slot.
pub(super) const NO_SLOT: u32 = u32::MAX;
/// A slot with this bit names a small file held in memory (its index), not a staging
/// entry.
const HELD: u32 = 1 << 31;
/// Files up to this size are held in memory while the archive is read, and written
/// where they go by the commit: that saves the rename out of the staging directory,
/// a quarter of the kernel time of a small file.
const HELD_FILE_MAX: u64 = 4096;
/// Bytes of file data held in memory at most, and files held at most (4 bytes each):
/// 1.5 MiB in all.
const HELD_BYTES_MAX: usize = 1 << 20;
const HELD_FILES_MAX: usize = 128 * 1024;

/// Whether `slot` names a file held in memory.
pub(super) fn is_held(slot: u32) -> bool {
    slot != NO_SLOT && slot & HELD != 0
}

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

pub(super) fn timespec(mtime: i64) -> TimeSpec {
    TimeSpec::new(mtime, 0)
}

/// The name of staging entry `slot`: its decimal digits, without allocating.
pub(super) struct SlotName {
    buf: [u8; 10],
    start: usize,
}

impl SlotName {
    pub(super) fn new(slot: u32) -> SlotName {
        let mut buf = [0u8; 10];
        let mut start = buf.len();
        let mut n = slot;
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        SlotName { buf, start }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// The staging directory (see the module docs).
pub(super) struct StageDir {
    pub(super) fd: OwnedFd,
    pub(super) name: Vec<u8>,
}

/// Who owns a new file and which mode bits creation lets through, learnt once.
pub(super) struct Creds {
    pub(super) as_root: bool,
    /// Owner and group the kernel gives a new entry of the staging directory.
    uid: u32,
    gid: u32,
    /// The process umask, `None` when it cannot be read (then every file gets `fchmod`).
    umask: Option<u32>,
}

impl Creds {
    fn of(dir: &OwnedFd) -> Creds {
        let uid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        // A setgid directory gives its entries its own group (the staging directory
        // inherits the bit from a setgid sysroot top).
        let gid = match fstat(dir.as_raw_fd()) {
            Ok(st) if st.st_mode & libc::S_ISGID != 0 => st.st_gid,
            _ => egid,
        };
        Creds {
            as_root: uid == 0,
            uid,
            gid,
            umask: read_umask(),
        }
    }

    /// Gives the new regular file `fd` (created with `mode & 0o777`) the member's
    /// owner, mode and time. Ownership first: chown clears setuid bits, so the mode
    /// comes after it; the creation mode has no setuid/setgid/sticky bits, so those
    /// always take fchmod.
    pub(super) fn finish_file(
        &self,
        fd: &OwnedFd,
        item: &Item,
    ) -> Result<(), (&'static str, Errno)> {
        let mode = effective_mode(item.mode, item.uid, item.gid);
        if self.needs_chown(item.uid, item.gid) {
            fchown(
                fd.as_raw_fd(),
                Some(Uid::from_raw(owner(item.uid))),
                Some(Gid::from_raw(owner(item.gid))),
            )
            .map_err(|e| ("chown", e))?;
        }
        if self.umask.is_none_or(|um| mode != mode & 0o777 & !um) {
            fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode)).map_err(|e| ("chmod", e))?;
        }
        let t = timespec(item.mtime);
        futimens(fd.as_raw_fd(), &t, &t).map_err(|e| ("set times", e))
    }

    /// Whether a new entry needs `fchown` to get the member's owner.
    pub(super) fn needs_chown(&self, uid: u32, gid: u32) -> bool {
        self.as_root && (owner(uid) != self.uid || owner(gid) != self.gid)
    }
}

/// The umask from `/proc/self/status` (reading it with `umask(2)` would change it for
/// a moment, for every thread).
fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// Writes file members into the staging directory while pass 1 reads them.
pub(super) struct Writer {
    pub(super) dir: StageDir,
    /// The next free slot.
    next: u32,
    buf: Vec<u8>,
    /// Data of the files held in memory, one after the other, and where each starts.
    held: Vec<u8>,
    held_start: Vec<u32>,
    pub(super) creds: Creds,
    /// Bytes of regular-file data read into staged files.
    pub(super) bytes: u64,
}

impl Writer {
    pub(super) fn new(dir: StageDir) -> Writer {
        let creds = Creds::of(&dir.fd);
        Writer {
            dir,
            next: 0,
            buf: Vec::new(),
            held: Vec::new(),
            held_start: Vec::new(),
            creds,
            bytes: 0,
        }
    }

    /// The data of a file held in memory (`slot` as [`Writer::file`] returned it);
    /// empty for anything else.
    pub(super) fn held(&self, slot: u32) -> &[u8] {
        if !is_held(slot) {
            return &[];
        }
        let i = (slot & !HELD) as usize;
        let start = self.held_start[i] as usize;
        let end = self
            .held_start
            .get(i + 1)
            .map_or(self.held.len(), |&e| e as usize);
        &self.held[start..end]
    }

    /// Slots handed out so far (`0..next_slot()`).
    pub(super) fn next_slot(&self) -> u32 {
        self.next
    }

    /// A fresh slot number.
    pub(super) fn slot(&mut self) -> u32 {
        let s = self.next;
        self.next += 1;
        s
    }

    /// Stages the data of the file member `item` (named `name` in the archive) that
    /// `tar` is positioned at; returns its slot. An empty file is not staged
    /// ([`NO_SLOT`]): the commit creates it where it goes, which costs the same calls
    /// as a staged file without the rename (whose cost grows with the depth of the
    /// destination).
    pub(super) fn file<R: Read>(
        &mut self,
        item: &Item,
        name: &[u8],
        tar: &mut TarReader<R>,
        size: u64,
    ) -> Result<u32, UnpackError> {
        if size == 0 {
            return Ok(NO_SLOT);
        }
        if size <= HELD_FILE_MAX
            && self.held.len() + size as usize <= HELD_BYTES_MAX
            && self.held_start.len() < HELD_FILES_MAX
        {
            let index = self.held_start.len() as u32;
            self.held_start.push(self.held.len() as u32);
            let start = self.held.len();
            self.held.resize(start + size as usize, 0);
            let mut filled = start;
            while filled < self.held.len() {
                let n = tar.read_data(&mut self.held[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            // The reader gives exactly the member's size or an error.
            if filled != self.held.len() {
                return Err(os_err(&shown(name), "read", Errno::EIO));
            }
            self.bytes += size;
            return Ok(HELD | index);
        }
        let slot = self.slot();
        let tmp = SlotName::new(slot);
        let mode = effective_mode(item.mode, item.uid, item.gid);
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat_owned(
            &self.dir.fd,
            tmp.as_bytes(),
            flags,
            Mode::from_bits_truncate(mode & 0o777),
        )
        .map_err(|e| os_err(&shown(name), "create", e))?;
        if self.buf.is_empty() {
            self.buf = vec![0u8; BUF_SIZE];
        }
        let mut size = 0u64;
        let mut hole = false;
        loop {
            let n = tar.read_data(&mut self.buf)?;
            if n == 0 {
                break;
            }
            let data = &self.buf[..n];
            size += n as u64;
            if is_zero(data) {
                lseek(fd.as_raw_fd(), n as i64, Whence::SeekCur)
                    .map_err(|e| os_err(&shown(name), "seek", e))?;
                hole = true;
                continue;
            }
            hole = false;
            write_all(&fd, data).map_err(|e| os_err(&shown(name), "write", e))?;
        }
        if hole {
            ftruncate(&fd, size as i64).map_err(|e| os_err(&shown(name), "truncate", e))?;
        }
        self.bytes += size;
        self.creds
            .finish_file(&fd, item)
            .map_err(|(op, e)| os_err(&shown(name), op, e))?;
        Ok(slot)
    }

    /// Removes staged entry `slot` (a file that a later member replaced); a file held
    /// in memory keeps its bytes until the end.
    pub(super) fn discard(&self, slot: u32) {
        if is_held(slot) {
            return;
        }
        let _ = unlinkat(
            Some(self.dir.fd.as_raw_fd()),
            SlotName::new(slot).as_bytes(),
            UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// Whether `data` is all zero bytes (checked in blocks, stopping at the first that
/// is not).
fn is_zero(data: &[u8]) -> bool {
    data.chunks(512)
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

pub(super) fn write_all(fd: &OwnedFd, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match write(fd, data) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Prefix of the staging directory's name.
pub(super) const STAGE_PREFIX: &str = ".apkovl-stage-";

/// Creates the staging directory at the top of the sysroot under a name that did not
/// exist (`mkdirat` fails on anything already there).
pub(super) fn stage_dir(root: &Root) -> Result<StageDir, UnpackError> {
    // Only a starting point: the name is created exclusively and moved out of the way
    // of a member of the same name, so it needs to be neither random nor secret.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32);
    stage_dir_from(root, seed)
}

fn stage_name(seed: u64) -> String {
    format!("{STAGE_PREFIX}{seed:016x}")
}

/// [`stage_dir`] trying names from `seed` on.
pub(super) fn stage_dir_from(root: &Root, seed: u64) -> Result<StageDir, UnpackError> {
    let top = root
        .dir(b"")
        .map_err(|e| stage_err(STAGE_PREFIX, "create", e))?;
    for attempt in 0..64u64 {
        let name = stage_name(seed.wrapping_add(attempt));
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

/// Renames the staging directory when a member of the plan has its name (the plan saw
/// nothing there, see `tree.rs`), to a name that is neither a member nor taken.
pub(super) fn clear_stage_name(root: &Root, plan: &Plan, dir: &mut StageDir) -> io::Result<()> {
    if plan.tree.lookup(ROOT, &dir.name).is_none() {
        return Ok(());
    }
    let top = root.dir(b"")?;
    let mut seed = u64::from_str_radix(
        std::str::from_utf8(&dir.name[STAGE_PREFIX.len()..]).unwrap_or("0"),
        16,
    )
    .unwrap_or(0);
    for _ in 0..64 {
        seed = seed.wrapping_add(1);
        let name = stage_name(seed);
        if plan.tree.lookup(ROOT, name.as_bytes()).is_some() {
            continue;
        }
        let t = top.as_raw_fd();
        match renameat2(t, &dir.name, t, name.as_bytes(), RENAME_NOREPLACE) {
            Ok(()) => {
                dir.name = name.into_bytes();
                return Ok(());
            }
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Errno::EEXIST.into())
}

fn stage_err(name: &str, op: &'static str, e: impl Into<io::Error>) -> UnpackError {
    UnpackError::Staging {
        name: name.to_owned(),
        op,
        source: e.into(),
    }
}

pub(super) const RENAME_NOREPLACE: libc::c_uint = 1;
pub(super) const RENAME_EXCHANGE: libc::c_uint = 2;

/// `renameat2(2)` by system call number (the C library may lack the wrapper).
pub(super) fn renameat2(
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

impl Writer {
    /// Removes the staging directory if it is empty; false when it is not.
    pub(super) fn remove_dir(&self, root: &Root) -> bool {
        match root.dir(b"") {
            Ok(top) => unlinkat(
                Some(top.as_raw_fd()),
                &self.dir.name[..],
                UnlinkatFlags::RemoveDir,
            )
            .is_ok(),
            Err(_) => false,
        }
    }

    /// Removes every entry the staging directory may hold, then the directory.
    pub(super) fn remove_all(&mut self, root: &Root) {
        let sd = self.dir.fd.as_raw_fd();
        for slot in 0..self.next_slot() {
            let tmp = SlotName::new(slot);
            let _ = unlinkat(Some(sd), tmp.as_bytes(), UnlinkatFlags::NoRemoveDir);
        }
        self.remove_dir(root);
    }
}
