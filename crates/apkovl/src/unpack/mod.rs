//! Verify-then-apply unpacking of an apkovl into a sysroot (rules in the crate docs).

mod commit;
mod parallel;
mod plan;
mod stage;
#[cfg(test)]
mod tests;
mod tree;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::archive::ArchiveError;
use crate::member::{MemberList, NameError};
use crate::root::{Resolver, Root};

/// Bounds applied while reading an overlay; exceeding one is an error naming it.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Decompressed tar stream size (headers, data, padding).
    pub max_total_bytes: u64,
    /// Number of archive members.
    pub max_entries: u64,
    /// Length of a member name or link target in bytes.
    pub max_path_len: usize,
    /// Length of one path component in bytes.
    pub max_component_len: usize,
    /// Size of one PAX header or GNU long name/link record.
    pub max_pax_bytes: usize,
    /// Size of the compressed input.
    pub max_compressed_bytes: u64,
    /// Memory the verified plan may hold until the commit: a fixed cost per
    /// member and per distinct path component, plus the names, link targets, member
    /// list and warnings it keeps. Bounds what an archive of many members with long
    /// names (up to `max_entries` times `max_path_len`) can make the init allocate.
    pub max_plan_bytes: usize,
}

impl Default for Limits {
    /// 1 GiB decompressed (the caller lowers it to the sysroot's free space), 100 000
    /// entries, `PATH_MAX` 4096, `NAME_MAX` 255, 64 KiB extension records, 1 GiB input,
    /// 32 MiB of plan (a 100 000-member overlay with 60-byte names needs about 20 MiB).
    fn default() -> Self {
        Limits {
            max_total_bytes: 1 << 30,
            max_entries: 100_000,
            max_path_len: 4096,
            max_component_len: 255,
            max_pax_bytes: 64 * 1024,
            max_compressed_bytes: 1 << 30,
            max_plan_bytes: 32 << 20,
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Member names in archive order as `tar -v` lists them (leading `/` and `./`
    /// removed), e.g. `etc/`, `etc/hostname`: the `apk --overlay-from-stdin` list.
    /// Skipped entries are not listed. Names are bytes, as stored in the archive.
    pub members: MemberList,
    /// Things skipped or changed on the way (device nodes, stripped leading `/`): the
    /// first few in full, then one line counting the rest.
    pub warnings: Vec<String>,
    /// Bytes of regular-file data written.
    pub bytes: u64,
    /// Number of archive members (extension headers not counted).
    pub entries: u64,
}

/// Why an overlay was not unpacked. Unless stated, nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The overlay file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The overlay path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The overlay path is not a regular file (symlinks are not followed).
    #[error("{path} is not a regular file")]
    NotRegular {
        /// The overlay path.
        path: PathBuf,
    },
    /// The overlay file is larger than `max_compressed_bytes`.
    #[error("{path} is {size} bytes, over the limit max_compressed_bytes ({limit})")]
    TooLarge {
        /// The overlay path.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The sysroot could not be opened as a directory.
    #[error("cannot open the sysroot {path}: {source}")]
    Sysroot {
        /// The sysroot path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The caller's `open` callback failed.
    #[error("cannot open the overlay stream: {0}")]
    Source(#[source] io::Error),
    /// The gzip or tar structure is broken, or a size limit was hit.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The plan outgrew `max_plan_bytes`.
    #[error("the overlay's member list needs more than max_plan_bytes ({limit} bytes) of memory")]
    PlanTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// Looking at the sysroot to resolve a member's path failed.
    #[error("member {member}: cannot resolve {path} in the sysroot: {source}")]
    Resolve {
        /// The member name, escaped.
        member: String,
        /// The path being looked at, escaped.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// More members than `max_entries`.
    #[error("archive exceeds the limit max_entries ({limit})")]
    TooManyEntries {
        /// The limit in force.
        limit: u64,
    },
    /// A member name breaks the path rules.
    #[error("member {member}: {reason}")]
    Name {
        /// The member name, escaped.
        member: String,
        /// The rule.
        reason: NameError,
    },
    /// A symlink target is empty, contains NUL or is too long.
    #[error("symlink {member}: target {reason}")]
    SymlinkTarget {
        /// The member name, escaped.
        member: String,
        /// The rule.
        reason: NameError,
    },
    /// A hard link does not point to an earlier regular-file member.
    #[error("hard link {member} -> {target}: {reason}")]
    HardLink {
        /// The member name, escaped.
        member: String,
        /// The link target, escaped.
        target: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A member path goes through a symlink that this archive creates.
    #[error(
        "member {member} would be written through the symlink {symlink} from the same archive"
    )]
    ThroughSymlink {
        /// The member name, escaped.
        member: String,
        /// The symlink member.
        symlink: String,
    },
    /// A member path goes through something the archive makes a non-directory.
    #[error("member {member} needs {parent} to be a directory, but the archive makes it a file")]
    NotADirectory {
        /// The member name, escaped.
        member: String,
        /// The conflicting member.
        parent: String,
    },
    /// A non-directory member would replace an existing directory in the sysroot.
    #[error("member {member} would replace an existing directory")]
    ReplacesDirectory {
        /// The member name, escaped.
        member: String,
    },
    /// A directory is needed where the sysroot has a non-directory.
    #[error("member {member}: an existing non-directory is in the way")]
    Blocked {
        /// The member name, escaped.
        member: String,
    },
    /// The sysroot file system is full (blocks or inodes).
    #[error("no space left in the sysroot while writing {member}")]
    NoSpace {
        /// The member name, escaped.
        member: String,
    },
    /// Another system call failed while writing `member`.
    #[error("member {member}: {op}: {source}")]
    Apply {
        /// The member name, escaped.
        member: String,
        /// The operation.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The staging directory could not be made (nothing was written).
    #[error("cannot {op} the staging directory {name} in the sysroot: {source}")]
    Staging {
        /// Its name (or the name prefix).
        name: String,
        /// The operation.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The commit phase failed part-way (an I/O error: conflicts are found while reading).
    /// What was moved into place is moved back; `remains` says whether that worked.
    #[error("committing member {member} failed ({source}); {remains}")]
    Commit {
        /// The member name, escaped.
        member: String,
        /// The OS error.
        source: io::Error,
        /// What the sysroot holds now.
        remains: &'static str,
    },
}

/// Unpacks a gzip'd tar into `sysroot`. `open` is called once and returns a reader of
/// the compressed bytes. Nothing outside the staging directory is written before the
/// whole archive is verified; see the crate docs for the full contract.
pub fn unpack<F, R>(open: F, sysroot: &Path, limits: &Limits) -> Result<UnpackReport, UnpackError>
where
    F: FnMut() -> Result<R, io::Error>,
    R: Read + Send,
{
    unpack_with(open, sysroot, limits, Resolver::Openat2)
}

pub(crate) fn unpack_with<F, R>(
    mut open: F,
    sysroot: &Path,
    limits: &Limits,
    resolver: Resolver,
) -> Result<UnpackReport, UnpackError>
where
    F: FnMut() -> Result<R, io::Error>,
    R: Read + Send,
{
    let root = Root::open(sysroot, resolver).map_err(|source| UnpackError::Sysroot {
        path: sysroot.to_owned(),
        source,
    })?;
    let src = open().map_err(UnpackError::Source)?;
    let mut w = stage::Writer::new(stage::stage_dir(&root)?);
    let plan = match crate::pipeline::with_tar(src, limits, |tar| {
        plan::verify(tar, &root, limits, &mut w)
    }) {
        Ok(plan) => plan,
        Err(e) => {
            w.remove_all(&root);
            return Err(e);
        }
    };
    let mut stage = commit::Stage::new(&root, &plan, w);
    stage.commit()?;
    stage.finish();
    let bytes = stage.w.bytes;
    drop(stage);
    Ok(UnpackReport {
        entries: plan.items.len() as u64,
        members: plan.members,
        warnings: plan.warnings,
        bytes,
    })
}

/// Unpacks a plain `.apkovl.tar.gz` file. The file is opened once with
/// `O_NOFOLLOW | O_CLOEXEC` and must be a regular file no larger than
/// `max_compressed_bytes`.
pub fn unpack_file(
    path: &Path,
    sysroot: &Path,
    limits: &Limits,
) -> Result<UnpackReport, UnpackError> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| UnpackError::Open {
            path: path.to_owned(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| UnpackError::Open {
        path: path.to_owned(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(UnpackError::NotRegular {
            path: path.to_owned(),
        });
    }
    if meta.size() > limits.max_compressed_bytes {
        return Err(UnpackError::TooLarge {
            path: path.to_owned(),
            size: meta.size(),
            limit: limits.max_compressed_bytes,
        });
    }
    unpack(
        || {
            let mut f = file.try_clone()?;
            f.seek(SeekFrom::Start(0))?;
            Ok(f)
        },
        sysroot,
        limits,
    )
}

/// Fuzz entry point: unpacks `data` into `sysroot` with small limits and returns the
/// outcome, so the harness can check "everything or nothing".
pub fn fuzz_unpack(data: &[u8], sysroot: &Path) -> Result<UnpackReport, UnpackError> {
    let limits = Limits {
        max_total_bytes: 16 << 20,
        max_entries: 10_000,
        max_compressed_bytes: 16 << 20,
        ..Limits::default()
    };
    unpack(|| Ok(data), sysroot, &limits)
}
