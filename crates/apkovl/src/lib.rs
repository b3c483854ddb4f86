//! Alpine "apkovl" overlays: finding them, choosing one, and unpacking it safely.
//!
//! An apkovl is the `tar.gz` written by `lbu commit` (optionally encrypted with
//! `openssl enc`, see [`enc`]). The init finds them in the top level of mounted media,
//! picks one with [`choose`] and unpacks it into the new root with [`unpack_file`] or
//! [`unpack`].
//!
//! # Selection
//!
//! [`choose`] never depends on discovery order. Candidates are ranked by, in order:
//!
//! 1. a candidate on a device that also holds a boot repository beats all others;
//! 2. a *primary* name beats a secondary one. Primary names end in `.apkovl.tar.gz`
//!    (plain) or `.apkovl.tar.gz.<cipher>` where `<cipher>` looks like an `openssl enc`
//!    cipher name (a known cipher family such as `aes-256-cbc`, `des3`, `camellia…`).
//!    Anything else that still matches `*.apkovl.tar.gz*` (`x.apkovl.tar.gz.bak`,
//!    `.new`, `.old`, …) is a candidate of the lowest priority;
//! 3. the device kernel name in natural order (`sda1 < sda2 < sdb1 < sr0 < vda1`,
//!    `nvme0n1p2 < nvme0n1p10`);
//! 4. the file name, bytewise, then the whole path, bytewise.
//!
//! # Unpacking promises
//!
//! [`unpack`] reads the archive once. While reading, it verifies everything: gzip
//! framing and CRC/ISIZE of every member, the trailing-data policy, tar structure and
//! checksums, every [`Limits`] bound and the path rules below. Each member's path is
//! resolved through the symlinks that already exist in the sysroot to a *canonical*
//! path: under a usr-merged root `bin/foo` and `usr/bin/foo` are one path, so "last
//! member wins" and every type rule apply to what will really be on disk, and a
//! conflict is found before anything is applied. What the plan keeps is bounded by
//! `max_plan_bytes` and is linear in the names it reads (skipped members keep no name;
//! warnings are capped). Regular files' data is written as it is read into a private
//! *staging* directory (created by the unpack at the top of the sysroot under a name
//! that did not exist, entries named by number, so no member can collide with a
//! temporary name; a file replaced by a later member is removed at once). Nothing
//! outside that directory is touched until the whole stream is verified. Only then
//! does the commit put the overlay in place: directories are created, each file,
//! hard link and symlink is created in place where the sysroot has nothing at its path
//! (`renameat2(RENAME_NOREPLACE)` of the staged file, `linkat`, `symlinkat`) and
//! swapped in with `renameat2(RENAME_EXCHANGE)` where something is there (the
//! original is kept until the end; from 4,096 new regular files on, those are created
//! by one thread per CPU, at most four, see `unpack/parallel.rs`), then directory
//! ownership, modes and times are applied (deepest first). A failure at any point, commit included, undoes what was
//! done, removes what the unpack created and leaves the sysroot as it was; the
//! staging directory never survives an unpack. The staging directory holds at most
//! `max_total_bytes` of data while the archive is read (runs of zero bytes are holes).
//!
//! Path and link rules (the sysroot is treated like a chroot):
//!
//! * every path is resolved relative to the sysroot with `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)`, so symlinks that already exist in the sysroot (usr-merge
//!   `bin -> usr/bin` or `bin -> /usr/bin`) are followed but clamped to the sysroot. On
//!   kernels without `openat2` (`ENOSYS`) a component-by-component walk with `O_NOFOLLOW`
//!   resolves symlinks by hand with the same clamping;
//! * a leading `/` and leading `./` are stripped (with one warning), empty and `.`
//!   components are dropped; a `..` component, a NUL byte, an empty name or a name over
//!   the length limits rejects the whole overlay;
//! * symlink members are created verbatim (absolute targets are kept) and never followed
//!   during the unpack: a member whose path goes through a symlink created by the same
//!   archive rejects the overlay;
//! * a hard link must name a member that appeared earlier in the archive and is, at that
//!   point, a regular file or a hard link (resolved once, when the link is read); that
//!   file must still be the final member at its path, and a link may not name its own
//!   path (also through a usr-merge alias); links are created after all file data;
//! * only regular files, directories, symlinks and hard links are created. Device nodes,
//!   FIFOs, sockets, sparse (GNU old format with extension blocks, PAX 0.x and 1.0) and
//!   unknown entries are skipped with a warning;
//! * ownership is numeric from the header (names are ignored) and only restored when
//!   running as root, like tar. **setuid/setgid policy:** the bits are kept only when
//!   the member's owner is uid 0, and dropped otherwise. The sticky bit is kept. A uid
//!   or gid of `0xFFFFFFFF` (which `chown` reads as "unchanged", i.e. root) becomes
//!   65534 (nobody) and drops the setuid/setgid bits;
//! * an existing directory in the sysroot is never replaced by a non-directory member
//!   (the overlay is rejected); an existing non-directory is replaced by rename, never
//!   opened for writing. A directory member where the sysroot has a symlink to a
//!   directory follows it and leaves the target's metadata alone;
//! * member names are bytes: [`UnpackReport::members`] hands them to apk unchanged.
//!
//! Gzip: concatenated members are accepted like `gzip -d` does; zero bytes after the last
//! member are accepted (block-device padding); any other trailing data rejects the
//! overlay. Tar: the two zero end blocks are optional, data after them is ignored, but an
//! archive truncated inside a header or member data is rejected.

mod archive;
mod candidate;
pub mod enc;
mod gzip;
mod member;
mod pipeline;
mod root;
#[cfg(test)]
#[path = "tests/util.rs"]
mod testutil;
mod unpack;

pub use archive::ArchiveError;
pub use candidate::{
    backup_stamp, choose, choose_logged, deciding_rule, device_order, is_apkovl_name, overlay_host,
    Candidate, SIG_SUFFIX,
};
pub use gzip::GzipError;
pub use member::{MemberList, NameError};
pub use root::{Resolver, Root};
pub use unpack::{fuzz_unpack, unpack, unpack_file, Limits, UnpackError, UnpackReport};

/// Fuzz entry point for the decryption layer: decrypts `data` with a fixed password and
/// reads it to the end, ignoring the result.
pub fn fuzz_decrypt(data: &[u8]) {
    enc::fuzz(data);
}
