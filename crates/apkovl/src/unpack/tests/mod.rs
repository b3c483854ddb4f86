//! Hostile and ordinary archives against both resolvers (security.md §12 A*/C*).

mod accept;
mod commit;
mod hardening;
mod reject;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use super::stage::effective_mode;
use super::{unpack_with, Limits, UnpackError, UnpackReport};
use crate::archive::ArchiveError;
use crate::gzip::GzipError;
use crate::member::NameError;
use crate::root::Resolver;
use crate::testutil::{gz, snapshot, unlock, Tar, H};

struct Ctx {
    root: PathBuf,
    outside: PathBuf,
}

impl Ctx {
    fn outside_str(&self) -> String {
        self.outside.to_string_lossy().into_owned()
    }
}

fn simple(build: impl FnOnce(&mut Tar)) -> Vec<u8> {
    let mut t = Tar::default();
    build(&mut t);
    gz(&t.finish())
}

/// Creates `<tmp>/outside` (must never change) and `<tmp>/sysroot` with what
/// `apk add --initdb` would leave, runs the archive, and returns the outcome.
fn run(
    setup: fn(&Ctx),
    build: &dyn Fn(&Ctx) -> Vec<u8>,
    limits: &Limits,
    resolver: Resolver,
) -> (
    tempfile::TempDir,
    Ctx,
    Result<UnpackReport, UnpackError>,
    bool,
) {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = Ctx {
        root: tmp.path().join("sysroot"),
        outside: tmp.path().join("outside"),
    };
    fs::create_dir_all(ctx.outside.join("etc")).unwrap();
    fs::write(ctx.outside.join("secret"), b"secret").unwrap();
    fs::write(ctx.outside.join("etc/passwd"), b"root:x:0:0").unwrap();
    fs::create_dir_all(ctx.root.join("etc/apk")).unwrap();
    fs::create_dir_all(ctx.root.join("tmp")).unwrap();
    fs::write(ctx.root.join("etc/hostname"), b"old").unwrap();
    setup(&ctx);
    let data = build(&ctx);
    let before = snapshot(tmp.path());
    let res = unpack_with(|| Ok(&data[..]), &ctx.root, limits, resolver);
    let unchanged = snapshot(tmp.path()) == before;
    (tmp, ctx, res, unchanged)
}

type Check = fn(&UnpackError) -> bool;
type Build = Box<dyn Fn(&Ctx) -> Vec<u8>>;
type Verify = fn(&Ctx, &UnpackReport);
type Setup = fn(&Ctx);
type RejectCase = (&'static str, Setup, Build, Limits, Check);
type AcceptCase = (&'static str, Setup, Build, Verify);

fn no_setup(_: &Ctx) {}

#[test]
fn setuid_policy() {
    for (mode, uid, gid, want) in [
        (0o4755, 0, 0, 0o4755),
        (0o2755, 0, 0, 0o2755),
        (0o6755, 1000, 0, 0o755),
        (0o4755, 1, 0, 0o755),
        (0o1777, 1000, 0, 0o1777),
        (0o100644, 0, 0, 0o644),
        (0o2755, 0, u32::MAX, 0o755),
        (0o4755, u32::MAX, 0, 0o755),
    ] {
        assert_eq!(
            effective_mode(mode, uid, gid),
            want,
            "{mode:o} uid {uid} gid {gid}"
        );
    }
}

/// A gzip CRC error at the very end, found after every file was staged (directories
/// to make, a file to replace, a symlink and a hard link planned), leaves nothing.
#[test]
fn corrupt_crc_after_every_file_was_staged_leaves_nothing() {
    let mut t = Tar::default();
    t.dir("new/", 0o755)
        .file("new/a/b/file", &[b'x'; 3000])
        .file("etc/hostname", b"new")
        .symlink("new/link", "/x")
        .hardlink("new/hl", "etc/hostname");
    let mut bad_tail = gz(&t.finish());
    let n = bad_tail.len();
    bad_tail[n - 8] ^= 0xff;
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sysroot");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/hostname"), b"old").unwrap();
        let before = snapshot(tmp.path());
        let mut opened = 0;
        let res = unpack_with(
            || {
                opened += 1;
                Ok(&bad_tail[..])
            },
            &root,
            &Limits::default(),
            resolver,
        );
        let err = res.expect_err("corrupt CRC");
        assert!(
            matches!(
                err,
                UnpackError::Archive(ArchiveError::Gzip(GzipError::Corrupt(_)))
            ),
            "{err}"
        );
        assert_eq!(opened, 1, "the input is read once");
        assert_eq!(snapshot(tmp.path()), before, "{resolver:?}");
    }
}

#[test]
fn missing_sysroot_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = simple(|t| {
        t.file("a", b"1");
    });
    let err = unpack_with(
        || Ok(&data[..]),
        &tmp.path().join("nope"),
        &Limits::default(),
        Resolver::Openat2,
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Sysroot { .. }), "{err}");
}
