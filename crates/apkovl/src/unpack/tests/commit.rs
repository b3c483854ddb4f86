//! The single read and the commit: files staged while the archive is verified, entries
//! created in place where the sysroot has nothing, exchanged where it has something,
//! and every step undone when the commit fails.

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

use super::hardening::verified;
use super::*;
use crate::root::Root;
use crate::unpack::stage::{SlotName, NO_SLOT};

/// Larger than what is held in memory (4 KiB), so it goes to the staging directory.
fn big(byte: u8) -> Vec<u8> {
    vec![byte; 5000]
}

fn staged_names(stage: &crate::unpack::commit::Stage) -> Vec<String> {
    let dir = stage.root.fd().as_raw_fd();
    let name = String::from_utf8(stage.w.dir.name.clone()).unwrap();
    let path = format!("/proc/self/fd/{dir}/{name}");
    let mut v: Vec<String> = fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// A commit that fails half-way (here: a staged file vanished) undoes every step it
/// made: an original swapped back, a file and a symlink created in place removed; no
/// staging entry is left. (Small files are held in memory, not staged: these are
/// larger.)
#[test]
fn commit_failure_half_way_removes_in_place_creates_and_restores_originals() {
    let tmp = tempfile::tempdir().unwrap();
    let root_path = tmp.path().join("sysroot");
    fs::create_dir_all(root_path.join("etc")).unwrap();
    fs::write(root_path.join("etc/hostname"), b"old").unwrap();
    let data = simple(|t| {
        t.file("etc/hostname", &big(b'n'))
            .file("etc/motd", &big(b'm'))
            .symlink("etc/link", "motd")
            .hardlink("etc/hl", "etc/motd")
            .file("new/dir/file", &big(b'1'));
    });
    let before = snapshot(tmp.path());
    let root = Root::open(&root_path, Resolver::Openat2).unwrap();
    let mut plan = None;
    let mut stage = verified(&data, &root, &mut plan, 0);
    // Slots follow the non-empty file members: new/dir/file is slot 2. Entries are
    // placed parent by parent, so etc/ is done before new/dir/ fails.
    assert_eq!(staged_names(&stage), ["0", "1", "2"]);
    nix::unistd::unlinkat(
        Some(stage.w.dir.fd.as_raw_fd()),
        SlotName::new(2).as_bytes(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    )
    .unwrap();
    let err = stage.commit().unwrap_err();
    assert!(
        matches!(
            err,
            UnpackError::Commit {
                remains: "nothing of the overlay was applied",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(snapshot(tmp.path()), before);
}

/// An I/O failure injected before each step of the commit in turn (exchange of an
/// existing file, a staged file renamed in place, files held in memory and an empty
/// file created in place, a
/// symlink, a hard link in place and one exchanged, in a new directory and an existing
/// one) leaves the sysroot exactly as it was: every in-place create is unlinked,
/// every original swapped back, every directory made removed.
#[test]
fn rollback_after_an_injected_failure_at_every_step_restores_the_sysroot() {
    let data = simple(|t| {
        t.file("etc/hostname", b"new")
            .file("etc/motd", b"m")
            .file("etc/empty", b"")
            .file("etc/staged", &big(b's'))
            .symlink("etc/link", "motd")
            .hardlink("etc/hl", "etc/motd")
            .hardlink("etc/old-hl", "etc/motd")
            .dir("new/", 0o700)
            .file("new/dir/file", b"1")
            .file("new/dir/empty", b"")
            .hardlink("new/hl", "etc/empty");
    });
    let mut steps = 0;
    for fail_at in 0.. {
        let tmp = tempfile::tempdir().unwrap();
        let root_path = tmp.path().join("sysroot");
        fs::create_dir_all(root_path.join("etc")).unwrap();
        fs::write(root_path.join("etc/hostname"), b"old").unwrap();
        fs::write(root_path.join("etc/old-hl"), b"old link").unwrap();
        let before = snapshot(tmp.path());
        let root = Root::open(&root_path, Resolver::Openat2).unwrap();
        let mut plan = None;
        let mut stage = verified(&data, &root, &mut plan, 0);
        stage.fail_at = Some(fail_at);
        match stage.commit() {
            Err(UnpackError::Commit {
                source,
                remains: "nothing of the overlay was applied",
                ..
            }) if source.raw_os_error() == Some(libc::EIO) => {
                assert_eq!(snapshot(tmp.path()), before, "failure at step {fail_at}");
                steps += 1;
            }
            Err(e) => panic!("step {fail_at}: {e}"),
            Ok(()) => {
                stage.finish();
                assert_eq!(fs::read(root_path.join("etc/old-hl")).unwrap(), b"m");
                assert_eq!(fs::read(root_path.join("new/hl")).unwrap(), b"");
                break;
            }
        }
    }
    assert_eq!(steps, 10, "every non-directory member is one step");
}

/// Something that appears at a path the plan saw empty (a race with another writer)
/// is never overwritten blindly: the in-place create fails, the entry is exchanged
/// instead, and the commit can still be undone.
#[test]
fn entry_appearing_after_verification_is_exchanged_not_clobbered() {
    let tmp = tempfile::tempdir().unwrap();
    let data = simple(|t| {
        t.file("etc/motd", b"overlay")
            .file("etc/empty", b"")
            .symlink("etc/link", "motd")
            .hardlink("etc/hl", "etc/motd");
    });
    fs::create_dir(tmp.path().join("etc")).unwrap();
    let root = Root::open(tmp.path(), Resolver::Openat2).unwrap();
    let mut plan = None;
    let mut stage = verified(&data, &root, &mut plan, 0);
    for name in ["motd", "empty", "link", "hl"] {
        fs::write(tmp.path().join("etc").join(name), b"appeared").unwrap();
    }
    stage.commit().unwrap();
    stage.finish();
    assert_eq!(fs::read(tmp.path().join("etc/motd")).unwrap(), b"overlay");
    assert_eq!(
        fs::read_link(tmp.path().join("etc/link")).unwrap(),
        Path::new("motd")
    );
    assert_eq!(fs::read(tmp.path().join("etc/hl")).unwrap(), b"overlay");
    assert_eq!(fs::read(tmp.path().join("etc/empty")).unwrap(), b"");
    let top: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(top.len(), 1, "the staging directory is gone");
}

/// A file replaced by a later member at the same path leaves the staging directory as
/// soon as the later member is read, so a path written many times costs the space of
/// one copy.
#[test]
fn file_replaced_by_a_later_member_is_dropped_from_staging_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = simple(|t| {
        t.file("etc/a", &big(b'1'))
            .file("etc/a", &big(b'2'))
            .file("etc/b", &big(b'x'))
            .symlink("etc/b", "a")
            .file("etc/a", &big(b'3'));
    });
    let root = Root::open(tmp.path(), Resolver::Openat2).unwrap();
    let mut plan = None;
    let mut stage = verified(&data, &root, &mut plan, 0);
    assert_eq!(staged_names(&stage), ["3"]);
    let slots: Vec<u32> = stage.plan.items.iter().map(|i| i.slot).collect();
    // Slots number the file members: the last file is the fourth.
    assert_eq!(slots, [NO_SLOT, NO_SLOT, NO_SLOT, NO_SLOT, 3]);
    stage.commit().unwrap();
    stage.finish();
    assert_eq!(fs::read(tmp.path().join("etc/a")).unwrap(), big(b'3'));
    assert_eq!(
        fs::read_link(tmp.path().join("etc/b")).unwrap(),
        Path::new("a")
    );
}

/// Runs of zero bytes become holes; the content read back is the member's.
#[test]
fn zero_runs_are_written_as_holes_with_the_same_content() {
    let mut content = vec![0u8; 4 << 20];
    content[1 << 20] = b'x';
    let data = simple(|t| {
        t.file("zeros", &content).file("empty", b"");
    });
    let tmp = tempfile::tempdir().unwrap();
    unpack_with(
        || Ok(&data[..]),
        tmp.path(),
        &Limits::default(),
        Resolver::Openat2,
    )
    .unwrap();
    let got = fs::read(tmp.path().join("zeros")).unwrap();
    assert!(got == content, "content differs");
    let meta = fs::metadata(tmp.path().join("zeros")).unwrap();
    assert_eq!(meta.len(), 4 << 20);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "{} blocks for 4 MiB of mostly zeros",
        meta.blocks()
    );
    assert_eq!(fs::metadata(tmp.path().join("empty")).unwrap().len(), 0);
}

/// The mode given at creation is only the part the umask lets through; every other
/// mode (group/other write, sticky, setuid) still ends exact.
#[test]
fn file_modes_are_exact_whatever_the_creation_mode_lets_through() {
    let modes = [0o644, 0o777, 0o600, 0o1777, 0o4755, 0o2711, 0o000];
    let data = simple(|t| {
        for (i, mode) in modes.iter().enumerate() {
            let name = format!("f{i}");
            t.entry(
                &H {
                    name: name.as_bytes(),
                    mode: *mode,
                    size: 1,
                    ..H::default()
                },
                b"x",
            );
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    unpack_with(
        || Ok(&data[..]),
        tmp.path(),
        &Limits::default(),
        Resolver::Openat2,
    )
    .unwrap();
    for (i, mode) in modes.iter().enumerate() {
        let p = tmp.path().join(format!("f{i}"));
        let m = fs::metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, *mode, "{}", p.display());
        assert_eq!(m.mtime(), 1_700_000_000);
    }
}

/// Directory metadata is applied deepest first, climbing one level at a time from the
/// directory below: every level of a deep chain gets its own mode and time.
#[test]
fn deep_directory_chain_gets_every_mode_and_time() {
    let depth = 300;
    let data = simple(|t| {
        let mut path = String::new();
        for i in 0..depth {
            path.push_str("d/");
            t.long_name(path.as_bytes()).header(&H {
                name: b"placeholder/",
                flag: b'5',
                mode: if i % 2 == 0 { 0o750 } else { 0o755 },
                mtime: 1_600_000_000 + i as u64,
                ..H::default()
            });
        }
        let file = format!("{path}f");
        t.long_name(file.as_bytes()).file("placeholder", b"x");
    });
    let tmp = tempfile::tempdir().unwrap();
    unpack_with(
        || Ok(&data[..]),
        tmp.path(),
        &Limits::default(),
        Resolver::Openat2,
    )
    .unwrap();
    let mut p = tmp.path().to_path_buf();
    for i in 0..depth {
        p.push("d");
        let m = fs::symlink_metadata(&p).unwrap();
        let want = if i % 2 == 0 { 0o750 } else { 0o755 };
        assert_eq!(m.permissions().mode() & 0o7777, want, "level {i}");
        assert_eq!(m.mtime(), 1_600_000_000 + i as i64, "level {i}");
    }
    assert_eq!(fs::read(p.join("f")).unwrap(), b"x");
}

/// Directory owners and modes are only changed where they differ from what the
/// directory has, which is read back first: a directory made inside a setgid one
/// inherits the bit and loses it again, an existing directory gets the member's mode,
/// and siblings (opened by name from their parent) each get their own mode and time.
#[test]
fn directory_metadata_ends_exact_when_only_differences_are_applied() {
    let dirs: [(&str, u32); 7] = [
        ("top/", 0o2755),
        ("top/plain/", 0o755),
        ("top/sticky/", 0o1777),
        ("top/private/", 0o700),
        ("top/private/in/", 0o750),
        ("old/", 0o755),
        ("old/new/", 0o711),
    ];
    let data = simple(|t| {
        for (i, (name, mode)) in dirs.iter().enumerate() {
            t.header(&H {
                name: name.as_bytes(),
                flag: b'5',
                mode: *mode,
                mtime: 1_500_000_000 + i as u64,
                ..H::default()
            });
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("old")).unwrap();
    fs::set_permissions(tmp.path().join("old"), fs::Permissions::from_mode(0o700)).unwrap();
    unpack_with(
        || Ok(&data[..]),
        tmp.path(),
        &Limits::default(),
        Resolver::Openat2,
    )
    .unwrap();
    for (i, (name, mode)) in dirs.iter().enumerate() {
        let m = fs::symlink_metadata(tmp.path().join(name)).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, *mode, "{name}");
        assert_eq!(m.mtime(), 1_500_000_000 + i as i64, "{name}");
    }
}

/// Small files are held in memory only up to the budget (1 MiB); the rest are staged.
/// Either way each file lands with its content, and the memory is bounded.
#[test]
fn small_files_beyond_the_memory_budget_are_staged_and_all_land() {
    let content = |i: usize| vec![b'a' + (i % 26) as u8; 4000 + i % 96];
    let data = simple(|t| {
        for i in 0..400 {
            t.file(&format!("d/f{i}"), &content(i));
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let root = Root::open(tmp.path(), Resolver::Openat2).unwrap();
    let mut plan = None;
    let mut stage = verified(&data, &root, &mut plan, 0);
    let staged = staged_names(&stage).len();
    assert!((100..400).contains(&staged), "{staged} of 400 staged");
    stage.commit().unwrap();
    stage.finish();
    for i in 0..400 {
        assert_eq!(
            fs::read(tmp.path().join(format!("d/f{i}"))).unwrap(),
            content(i)
        );
    }
}

/// Regression (QEMU `enospc-inodes`): with files created in place at commit, a sysroot
/// out of inodes failed there and was reported as a bare I/O error; it is named as no
/// space left, and nothing stays applied.
#[test]
fn no_space_during_the_commit_is_named_and_undone() {
    let data = simple(|t| {
        t.file("etc/hostname", b"new").file("var/many/f001", b"1");
    });
    let tmp = tempfile::tempdir().unwrap();
    let root_path = tmp.path().join("sysroot");
    fs::create_dir_all(root_path.join("etc")).unwrap();
    fs::write(root_path.join("etc/hostname"), b"old").unwrap();
    let before = snapshot(tmp.path());
    let root = Root::open(&root_path, Resolver::Openat2).unwrap();
    let mut plan = None;
    let mut stage = verified(&data, &root, &mut plan, 0);
    stage.fail_at = Some(1);
    stage.fail_errno = nix::errno::Errno::ENOSPC;
    let err = stage.commit().unwrap_err();
    assert!(matches!(err, UnpackError::NoSpace { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("no space left in the sysroot while writing "),
        "{err}"
    );
    assert_eq!(snapshot(tmp.path()), before);
}

/// An overlay with more new files than `parallel::MIN_FILES`: empty, held in memory and
/// staged ones spread over directories, some where the sysroot already has an entry.
fn many_files() -> (Vec<u8>, usize) {
    let count = crate::unpack::parallel::MIN_FILES + 900;
    let data = simple(|t| {
        t.file("keep/old", b"overlay");
        for i in 0..count {
            let name = format!("d{}/f{i}", i % 7);
            let content = match i % 50 {
                0 => big(b'b'),
                1 => Vec::new(),
                _ => format!("{i}").into_bytes(),
            };
            t.entry(
                &H {
                    name: name.as_bytes(),
                    mode: if i % 3 == 0 { 0o600 } else { 0o644 },
                    mtime: 1_400_000_000 + i as u64,
                    size: content.len() as u64,
                    ..H::default()
                },
                &content,
            );
        }
    });
    (data, count)
}

/// Many new files are created on several threads (here three, whatever the machine):
/// each lands with its content, mode and time, existing entries (one there before, one
/// that appeared after verification) are exchanged by the sequential pass, and no
/// staging entry is left.
#[test]
fn many_new_files_created_on_threads_all_land_exact() {
    let (data, count) = many_files();
    let tmp = scratch_dir();
    fs::create_dir(tmp.path().join("keep")).unwrap();
    fs::write(tmp.path().join("keep/old"), b"before").unwrap();
    let root = Root::open(tmp.path(), Resolver::Openat2).unwrap();
    let mut plan = None;
    let mut stage = verified(&data, &root, &mut plan, 0);
    // Appeared since verification: exchanged by the sequential pass, not clobbered.
    fs::create_dir(tmp.path().join("d3")).unwrap();
    fs::write(tmp.path().join("d3/f3"), b"appeared").unwrap();
    stage.workers = 3;
    stage.commit().unwrap();
    stage.finish();
    drop(stage);
    for i in 0..count {
        let p = tmp.path().join(format!("d{}/f{i}", i % 7));
        let want = match i % 50 {
            0 => big(b'b'),
            1 => Vec::new(),
            _ => format!("{i}").into_bytes(),
        };
        assert_eq!(fs::read(&p).unwrap(), want, "{}", p.display());
        let m = fs::metadata(&p).unwrap();
        let mode = if i % 3 == 0 { 0o600 } else { 0o644 };
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{}", p.display());
        assert_eq!(m.mtime(), 1_400_000_000 + i as i64, "{}", p.display());
    }
    assert_eq!(fs::read(tmp.path().join("keep/old")).unwrap(), b"overlay");
    let top = fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(top, 8, "d0..d6 and keep, no staging directory");
}

/// A failure on one of the commit's threads undoes what every thread created, and the
/// rest of the commit: the sysroot is exactly as before.
#[test]
fn failure_on_a_commit_thread_undoes_every_file_of_every_thread() {
    let (data, _) = many_files();
    let tmp = scratch_dir();
    let root_path = tmp.path().join("sysroot");
    fs::create_dir_all(root_path.join("keep")).unwrap();
    fs::write(root_path.join("keep/old"), b"before").unwrap();
    let before = snapshot(tmp.path());
    let root = Root::open(&root_path, Resolver::Openat2).unwrap();
    let mut plan = None;
    let mut stage = verified(&data, &root, &mut plan, 0);
    stage.workers = 2;
    stage.fail_at = Some(crate::unpack::parallel::MIN_FILES - 100);
    let err = stage.commit().unwrap_err();
    assert!(
        matches!(err, UnpackError::Commit { remains, .. } if remains.starts_with("nothing")),
        "{err}"
    );
    drop(stage);
    assert_eq!(snapshot(tmp.path()), before);
}

fn scratch_dir() -> tempfile::TempDir {
    match Path::new("/dev/shm") {
        shm if shm.is_dir() => tempfile::tempdir_in(shm).unwrap(),
        _ => tempfile::tempdir().unwrap(),
    }
}
