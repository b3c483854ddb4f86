//! `unpack_file` against archives made by the real `tar`, and the file-level checks.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;
use std::process::Command;

use alpinit_apkovl::{unpack_file, Limits, UnpackError};

fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("note: `{tool}` not found, test skipped");
    }
    found
}

/// A small lbu-like tree with long names, an absolute symlink and odd modes.
fn make_tree(src: &Path) {
    fs::create_dir_all(src.join("etc/apk")).unwrap();
    fs::create_dir_all(src.join("etc/runlevels/default")).unwrap();
    fs::write(src.join("etc/hostname"), b"box\n").unwrap();
    fs::write(src.join("etc/apk/world"), b"alpine-base\nopenssh\n").unwrap();
    symlink("/media/usb/cache", src.join("etc/apk/cache")).unwrap();
    symlink("/etc/init.d/sshd", src.join("etc/runlevels/default/sshd")).unwrap();
    let deep = src.join(format!("etc/{}", "d".repeat(120)));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f".repeat(150)), vec![b'z'; 200_000]).unwrap();
    fs::hard_link(src.join("etc/hostname"), src.join("etc/hostname.link")).unwrap();
}

#[test]
fn archives_from_real_tar_unpack_identically() {
    if !have("tar") {
        return;
    }
    for format in ["gnu", "pax", "ustar"] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(&src);
        let ovl = tmp.path().join("host.apkovl.tar.gz");
        let ok = Command::new("tar")
            .arg(format!("--format={format}"))
            .arg("-czf")
            .arg(&ovl)
            .arg("-C")
            .arg(&src)
            .arg("etc")
            .status()
            .unwrap();
        if !ok.success() {
            // ustar cannot hold the long names; that is tar's limitation, not ours.
            assert_eq!(format, "ustar");
            continue;
        }
        let root = tmp.path().join("sysroot");
        fs::create_dir(&root).unwrap();
        let report = unpack_file(&ovl, &root, &Limits::default()).unwrap();
        assert!(report.members.contains("etc/"), "{format}");
        assert!(report.members.contains("etc/hostname"), "{format}");
        for rel in ["etc/hostname", "etc/apk/world"] {
            assert_eq!(
                fs::read(src.join(rel)).unwrap(),
                fs::read(root.join(rel)).unwrap()
            );
            let (a, b) = (
                fs::metadata(src.join(rel)).unwrap(),
                fs::metadata(root.join(rel)).unwrap(),
            );
            assert_eq!(
                (a.mode(), a.mtime()),
                (b.mode(), b.mtime()),
                "{format} {rel}"
            );
        }
        let deep = format!("etc/{}/{}", "d".repeat(120), "f".repeat(150));
        assert_eq!(
            fs::read(root.join(&deep)).unwrap(),
            vec![b'z'; 200_000],
            "{format}"
        );
        assert_eq!(
            fs::read_link(root.join("etc/apk/cache")).unwrap(),
            Path::new("/media/usb/cache")
        );
        let ino = |p: &str| fs::metadata(root.join(p)).unwrap().ino();
        assert_eq!(ino("etc/hostname"), ino("etc/hostname.link"), "{format}");
        assert_eq!(report.bytes, 4 + 20 + 200_000, "{format}");
    }
}

#[test]
fn file_level_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sysroot");
    fs::create_dir(&root).unwrap();
    let real = tmp.path().join("real.apkovl.tar.gz");
    fs::write(&real, b"\x1f\x8b not really").unwrap();
    let link = tmp.path().join("link.apkovl.tar.gz");
    symlink(&real, &link).unwrap();
    let dir = tmp.path().join("dir.apkovl.tar.gz");
    fs::create_dir(&dir).unwrap();

    let err = unpack_file(&link, &root, &Limits::default()).unwrap_err();
    assert!(matches!(err, UnpackError::Open { .. }), "symlink: {err}");
    let err = unpack_file(&dir, &root, &Limits::default()).unwrap_err();
    assert!(matches!(err, UnpackError::NotRegular { .. }), "dir: {err}");
    let small = Limits {
        max_compressed_bytes: 4,
        ..Limits::default()
    };
    let err = unpack_file(&real, &root, &small).unwrap_err();
    assert!(
        matches!(err, UnpackError::TooLarge { limit: 4, .. }),
        "size: {err}"
    );
    let err = unpack_file(&tmp.path().join("missing"), &root, &Limits::default()).unwrap_err();
    assert!(matches!(err, UnpackError::Open { .. }), "missing: {err}");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn fuzz_entry_point_survives_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    data.extend((0..2000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    assert!(alpinit_apkovl::fuzz_unpack(&data, tmp.path()).is_err());
    alpinit_apkovl::fuzz_decrypt(&data);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}
