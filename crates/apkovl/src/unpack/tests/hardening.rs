//! Regression tests for the hardening of issue 8: plan memory, hard-link chains,
//! canonical paths under usr-merge, staging names, sparse members, ids of -1 and
//! non-UTF-8 names. Each test is named after the behaviour it pins.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::*;
use crate::pipeline::with_tar;
use crate::root::Root;
use crate::unpack::commit::Stage;
use crate::unpack::plan::{verify, Plan};
use crate::unpack::stage::{stage_dir_from, STAGE_PREFIX};
use crate::unpack::stage::{Writer, NOBODY};

/// Verification only, into `root` (what it staged is removed).
fn plan_of(data: &[u8], root: &Path, limits: &Limits) -> Result<Plan, UnpackError> {
    let root = Root::open(root, Resolver::Openat2).unwrap();
    let mut w = Writer::new(stage_dir_from(&root, 0).unwrap());
    let plan = with_tar(data, limits, |tar| verify(tar, &root, limits, &mut w));
    w.remove_all(&root);
    plan
}

/// Verification and commit with the staging directory's name chosen from `seed`,
/// returning the commit still holding its staging directory (call `finish`).
pub(super) fn verified<'a>(
    data: &[u8],
    root: &'a Root,
    plan: &'a mut Option<Plan>,
    seed: u64,
) -> Stage<'a> {
    let limits = Limits::default();
    let mut w = Writer::new(stage_dir_from(root, seed).unwrap());
    let p = with_tar(data, &limits, |tar| verify(tar, root, &limits, &mut w)).unwrap();
    Stage::new(root, plan.insert(p), w)
}

/// A scratch directory in memory when possible: the deep-tree tests measure the
/// unpacker, not a disk's journal.
fn scratch() -> tempfile::TempDir {
    match Path::new("/dev/shm") {
        shm if shm.is_dir() => tempfile::tempdir_in(shm).unwrap(),
        _ => tempfile::tempdir().unwrap(),
    }
}

fn usr_merged(c: &Ctx) {
    fs::create_dir_all(c.root.join("usr/bin")).unwrap();
    symlink("usr/bin", c.root.join("bin")).unwrap();
}

fn staging_left(tmp: &Path) -> Vec<String> {
    snapshot(tmp)
        .into_keys()
        .filter(|k| k.contains(STAGE_PREFIX) || k.contains(".apkovl-"))
        .collect()
}

#[test]
fn skipped_members_keep_no_names_and_warnings_are_aggregated() {
    // 1000 FIFOs, each named by a 16 KiB PAX path of control bytes: the old plan kept
    // every name and a warning six times its size (about 100 MB here).
    let name = vec![0x01u8; 16 * 1024];
    let mut t = Tar::default();
    for _ in 0..1000 {
        t.pax(&[("path", &name)]).header(&H {
            name: b"fifo",
            flag: b'6',
            ..H::default()
        });
    }
    t.file("etc/after", b"ok");
    let data = gz(&t.finish());
    let tmp = tempfile::tempdir().unwrap();
    let plan = plan_of(&data, tmp.path(), &Limits::default()).unwrap();
    assert!(
        plan.bytes() < 1000 * 200,
        "plan holds {} bytes",
        plan.bytes()
    );
    assert_eq!(plan.warnings.len(), 9, "{:?}", plan.warnings.len());
    assert!(plan.warnings.iter().all(|w| w.len() < 1200));
    assert_eq!(plan.warnings[8], "... and 992 more warnings");
    let (_tmp, ctx, res, _) = run(
        no_setup,
        &|_| data.clone(),
        &Limits::default(),
        Resolver::Openat2,
    );
    let r = res.unwrap();
    assert_eq!(r.members, ["etc/after"]);
    assert_eq!(fs::read(ctx.root.join("etc/after")).unwrap(), b"ok");
}

#[test]
fn plan_larger_than_max_plan_bytes_is_rejected_naming_the_limit() {
    let build = |_: &Ctx| {
        let mut t = Tar::default();
        for i in 0..200 {
            let long = format!("etc/{}/{i}", "n".repeat(250));
            t.pax(&[("path", long.as_bytes())]).file("x", b"1");
        }
        gz(&t.finish())
    };
    let limits = Limits {
        max_plan_bytes: 64 * 1024,
        ..Limits::default()
    };
    let (_, _, res, unchanged) = run(no_setup, &build, &limits, Resolver::Openat2);
    let err = res.unwrap_err();
    assert!(
        matches!(err, UnpackError::PlanTooLarge { limit: 65536 }),
        "{err}"
    );
    assert!(err.to_string().contains("max_plan_bytes"), "{err}");
    assert!(unchanged);
}

#[test]
fn deep_paths_share_their_directories_in_the_plan() {
    // 300 members 2000 directories deep: the old plan stored and hashed every
    // ancestor of every member (quadratic in the depth).
    let deep = "d/".repeat(2000);
    let mut t = Tar::default();
    for i in 0..300 {
        let name = format!("{deep}f{i}");
        t.pax(&[("path", name.as_bytes())]).file("x", b"1");
    }
    let data = gz(&t.finish());
    let tmp = tempfile::tempdir().unwrap();
    let plan = plan_of(&data, tmp.path(), &Limits::default()).unwrap();
    assert_eq!(plan.tree.nodes.len(), 1 + 2000 + 300);
    assert!(plan.bytes() < 2300 * 200 + 300 * 4200, "{}", plan.bytes());
    // The unpack itself, with fewer members (the cost here is the file system's).
    let mut t = Tar::default();
    for i in 0..20 {
        let name = format!("{deep}f{i}");
        t.pax(&[("path", name.as_bytes())]).file("x", b"1");
    }
    let data = gz(&t.finish());
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        let tmp = scratch();
        unpack_with(|| Ok(&data[..]), tmp.path(), &Limits::default(), resolver).unwrap();
        assert_eq!(
            fs::read(tmp.path().join(format!("{deep}f19"))).unwrap(),
            b"1"
        );
    }
}

#[test]
fn hard_link_chain_of_100000_takes_one_lookup_per_link() {
    let mut t = Tar::default();
    t.file("l0", b"data");
    for i in 1..100_000 {
        t.hardlink(&format!("l{i}"), &format!("l{}", i - 1));
    }
    let data = gz(&t.finish());
    let tmp = tempfile::tempdir().unwrap();
    let plan = plan_of(&data, tmp.path(), &Limits::default()).unwrap();
    assert_eq!(plan.link_steps, 99_999);
}

#[test]
fn hard_link_chain_unpacks_to_one_inode() {
    let mut t = Tar::default();
    t.file("l0", b"data");
    for i in 1..3000 {
        t.hardlink(&format!("l{i}"), &format!("l{}", i - 1));
    }
    let data = gz(&t.finish());
    let (tmp, ctx, res, _) = run(
        no_setup,
        &|_| data.clone(),
        &Limits::default(),
        Resolver::Openat2,
    );
    res.unwrap();
    let ino = |p: &str| fs::metadata(ctx.root.join(p)).unwrap().ino();
    assert_eq!(ino("l0"), ino("l2999"));
    assert_eq!(fs::metadata(ctx.root.join("l0")).unwrap().nlink(), 3000);
    assert!(staging_left(tmp.path()).is_empty());
}

#[test]
fn usr_merge_aliases_are_one_path_and_the_last_member_wins() {
    // bin/foo and usr/bin/foo/ are the same path on a usr-merged root: the old code
    // verified both and failed half-way through the commit with EISDIR.
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        let build = |_: &Ctx| {
            simple(|t| {
                t.file("etc/hostname", b"new")
                    .file("bin/foo", b"file")
                    .dir("usr/bin/foo/", 0o750);
            })
        };
        let (tmp, ctx, res, _) = run(usr_merged, &build, &Limits::default(), resolver);
        res.unwrap();
        assert!(fs::symlink_metadata(ctx.root.join("usr/bin/foo"))
            .unwrap()
            .is_dir());
        assert_eq!(fs::read(ctx.root.join("etc/hostname")).unwrap(), b"new");
        assert!(staging_left(tmp.path()).is_empty());

        let build = |_: &Ctx| {
            simple(|t| {
                t.dir("usr/bin/foo/", 0o750).file("bin/foo", b"file");
            })
        };
        let (_tmp, ctx, res, _) = run(usr_merged, &build, &Limits::default(), resolver);
        res.unwrap();
        assert_eq!(fs::read(ctx.root.join("usr/bin/foo")).unwrap(), b"file");
    }
}

#[test]
fn usr_merge_alias_conflicts_are_rejected_before_anything_is_written() {
    let cases: [(&str, Setup, Build, Check); 3] = [
        (
            "file, then a child of the same path through the other name",
            usr_merged,
            Box::new(|_| {
                simple(|t| {
                    t.file("etc/hostname", b"new")
                        .file("bin/foo", b"file")
                        .file("usr/bin/foo/x", b"x");
                })
            }),
            |e| matches!(e, UnpackError::NotADirectory { .. }),
        ),
        (
            "file over an existing directory through the alias",
            |c| {
                usr_merged(c);
                fs::create_dir_all(c.root.join("usr/bin/foo")).unwrap();
            },
            Box::new(|_| {
                simple(|t| {
                    t.file("etc/hostname", b"new").file("bin/foo", b"file");
                })
            }),
            |e| matches!(e, UnpackError::ReplacesDirectory { .. }),
        ),
        (
            "hard link naming its own target through the alias",
            usr_merged,
            Box::new(|_| {
                simple(|t| {
                    t.file("etc/hostname", b"new")
                        .file("bin/foo", b"file")
                        .hardlink("usr/bin/foo", "bin/foo");
                })
            }),
            |e| matches!(e, UnpackError::HardLink { .. }),
        ),
    ];
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        for (name, setup, build, check) in &cases {
            let (tmp, _, res, unchanged) = run(*setup, &**build, &Limits::default(), resolver);
            let err = res.expect_err(name);
            assert!(check(&err), "{name}: {err}");
            assert!(unchanged, "{name} ({resolver:?}): the tree changed");
            assert!(staging_left(tmp.path()).is_empty(), "{name}");
        }
    }
}

#[test]
fn staging_directory_name_avoids_existing_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let existing = format!("{STAGE_PREFIX}{:016x}", 5);
    fs::create_dir(tmp.path().join(&existing)).unwrap();
    let root = Root::open(tmp.path(), Resolver::Openat2).unwrap();
    let dir = stage_dir_from(&root, 5).unwrap();
    assert_eq!(dir.name, format!("{STAGE_PREFIX}{:016x}", 6).into_bytes());
}

/// A member whose name is the staging directory's (as a file, and as a directory with
/// a file in it) is unpacked like any other: the plan sees nothing at that name and
/// the staging directory moves out of its way before the commit.
#[test]
fn member_named_like_the_staging_directory_is_unpacked() {
    let taken = format!("{STAGE_PREFIX}{:016x}", 5);
    for as_dir in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let data = simple(|t| {
            if as_dir {
                t.file(&format!("{taken}/inner"), b"member");
            } else {
                t.file(&taken, b"member");
            }
            t.file("etc/other", b"x");
        });
        let root = Root::open(tmp.path(), Resolver::Openat2).unwrap();
        let mut plan = None;
        let mut stage = verified(&data, &root, &mut plan, 5);
        stage.commit().unwrap();
        stage.finish();
        let path = if as_dir {
            tmp.path().join(&taken).join("inner")
        } else {
            tmp.path().join(&taken)
        };
        assert_eq!(fs::read(path).unwrap(), b"member");
        assert_eq!(fs::read(tmp.path().join("etc/other")).unwrap(), b"x");
        let top: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(top.len(), 2, "{top:?}");
    }
}

#[test]
fn gnu_sparse_members_with_extension_headers_are_skipped() {
    let build = |_: &Ctx| {
        let mut t = Tar::default();
        // Old GNU sparse: four map entries in the header, isextended set, one
        // extension block (isextended clear), then 1024 bytes of data.
        t.header_patched(
            &H {
                name: b"var/old-sparse",
                flag: b'S',
                size: 1024,
                ..H::default()
            },
            |b| b[482] = 1,
        );
        let mut ext = [0u8; 512];
        ext[..12].copy_from_slice(b"00000010000\0");
        t.data(&ext).data(&[b's'; 1024]);
        // PAX 1.0 sparse: the map is at the start of the member data.
        let mut body = b"1\n0\n5\n".to_vec();
        body.resize(512, 0);
        body.extend_from_slice(b"12345");
        t.pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"var/pax-sparse"),
            ("GNU.sparse.realsize", b"10000"),
        ])
        .entry(
            &H {
                name: b"GNUSparseFile.0/pax-sparse",
                size: body.len() as u64,
                ..H::default()
            },
            &body,
        )
        .file("etc/after", b"ok");
        gz(&t.finish())
    };
    let (_tmp, ctx, res, _) = run(no_setup, &build, &Limits::default(), Resolver::Openat2);
    let r = res.unwrap();
    assert_eq!(r.members, ["etc/after"]);
    assert_eq!(fs::read(ctx.root.join("etc/after")).unwrap(), b"ok");
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(r.warnings[0].contains("sparse") && r.warnings[0].contains("var/old-sparse"));
    assert!(r.warnings[1].contains("var/pax-sparse"), "{:?}", r.warnings);
    assert!(!ctx.root.join("var").exists());
}

#[test]
fn ids_of_minus_one_become_nobody_without_setuid_or_setgid() {
    let build = |_: &Ctx| {
        simple(|t| {
            t.entry(
                &H {
                    name: b"usr/bin/sg",
                    mode: 0o2755,
                    gid: u64::from(u32::MAX),
                    size: 1,
                    ..H::default()
                },
                b"x",
            )
            .entry(
                &H {
                    name: b"usr/bin/su",
                    mode: 0o4755,
                    uid: u64::from(u32::MAX),
                    size: 1,
                    ..H::default()
                },
                b"x",
            );
        })
    };
    let (_tmp, ctx, res, _) = run(no_setup, &build, &Limits::default(), Resolver::Openat2);
    res.unwrap();
    let sg = fs::metadata(ctx.root.join("usr/bin/sg")).unwrap();
    let su = fs::metadata(ctx.root.join("usr/bin/su")).unwrap();
    assert_eq!(sg.mode() & 0o7777, 0o755);
    assert_eq!(su.mode() & 0o7777, 0o755);
    if nix::unistd::geteuid().is_root() {
        assert_eq!((sg.uid(), sg.gid()), (0, NOBODY));
        assert_eq!((su.uid(), su.gid()), (NOBODY, 0));
    }
}

#[test]
fn non_utf8_member_names_reach_the_member_list_unchanged() {
    let build = |_: &Ctx| {
        let mut t = Tar::default();
        t.entry(
            &H {
                name: b"etc/caf\xe9",
                size: 1,
                ..H::default()
            },
            b"x",
        );
        gz(&t.finish())
    };
    let (_tmp, ctx, res, _) = run(no_setup, &build, &Limits::default(), Resolver::Openat2);
    let r = res.unwrap();
    assert_eq!(r.members.as_bytes(), b"etc/caf\xe9\n");
    let path = ctx.root.join(OsStr::from_bytes(b"etc/caf\xe9"));
    assert_eq!(fs::read(path).unwrap(), b"x");
}

/// A hard link takes the file its target holds when the link is read; if that file is
/// replaced later in the archive the link would need data that is never written, so
/// the overlay is rejected (before, the link silently took the later content).
#[test]
fn hard_link_whose_file_is_replaced_later_is_rejected() {
    let build = |_: &Ctx| {
        simple(|t| {
            t.file("a", b"old").hardlink("b", "a").file("a", b"new");
        })
    };
    let (_tmp, _, res, unchanged) = run(no_setup, &build, &Limits::default(), Resolver::Openat2);
    let err = res.unwrap_err();
    assert!(
        matches!(
            err,
            UnpackError::HardLink {
                reason: "the target is replaced later in the archive",
                ..
            }
        ),
        "{err}"
    );
    assert!(unchanged);
}
