//! Regression tests for writes into a new root holding planted symlinks:
//! nothing outside the root is created, deleted or chmod'ed.

use super::*;
use crate::layout::Layout;
use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

/// Every entry under `dir` (not following symlinks) with its mode and, for
/// files, contents and for symlinks, target.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let body = if md.is_file() {
                std::fs::read(&p).unwrap()
            } else if md.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                todo.push(p.clone());
                Vec::new()
            };
            out.insert(p, (md.mode(), body));
        }
    }
    out
}

/// A layout whose sysroot is a sibling of `outside`, a directory the
/// planted links point at, holding a file and a 0755 directory.
struct Planted {
    tmp: tempfile::TempDir,
    layout: Layout,
    outside: PathBuf,
}

impl Planted {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().join("initramfs"));
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("victim")).unwrap();
        std::fs::set_permissions(
            outside.join("victim"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(outside.join("keep"), b"keep").unwrap();
        std::fs::create_dir_all(layout.in_sysroot("etc/runlevels")).unwrap();
        std::fs::create_dir_all(layout.in_sysroot("etc/apk")).unwrap();
        Self {
            tmp,
            layout,
            outside,
        }
    }

    /// The whole temp tree except the sysroot.
    fn outside_root(&self) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        let sysroot = self.layout.sysroot();
        snapshot(self.tmp.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with(&sysroot))
            .collect()
    }

    fn link(&self, target: &Path, rel: &str) {
        symlink(target, self.layout.in_sysroot(rel)).unwrap();
    }
}

/// `etc/runlevels/boot -> ../../../outside`: rc_add (hwclock/swclock and
/// the default services) lands inside the new root.
#[test]
fn rc_add_through_planted_runlevel_link_stays_inside() {
    let t = Planted::new();
    t.link(Path::new("../../../outside"), "etc/runlevels/boot");
    std::fs::create_dir_all(t.layout.in_sysroot("outside")).unwrap();
    std::fs::write(t.outside.join("swclock"), b"real file").unwrap();
    let before = t.outside_root();
    crate::packages::rc_add(&t.layout, "swclock", "boot").unwrap();
    crate::packages::default_services(&t.layout, &alpinit_cmdline::Cmdline::parse("")).unwrap();
    assert_eq!(t.outside_root(), before);
    // Clamped: `../../../outside` from etc/runlevels is /outside of the new root.
    assert_eq!(
        std::fs::read_link(t.layout.in_sysroot("outside/swclock")).unwrap(),
        Path::new("/etc/init.d/swclock")
    );
    assert!(t.layout.in_sysroot("outside/hostname").is_symlink());
}

/// A dangling planted link: the directory is not created outside, the
/// service is not added, and the error says where.
#[test]
fn rc_add_through_dangling_runlevel_link_fails_inside() {
    let t = Planted::new();
    t.link(Path::new("../../../nowhere"), "etc/runlevels/boot");
    let before = t.outside_root();
    let err = crate::packages::rc_add(&t.layout, "hwclock", "boot").unwrap_err();
    assert!(err.to_string().contains("etc/runlevels/boot"), "{err}");
    assert_eq!(t.outside_root(), before);
    assert!(!t.tmp.path().join("nowhere").exists());
}

/// `etc/apk/keys -> /abs/outside`: the keys go to that path inside the
/// new root.
#[test]
fn keys_copied_through_planted_absolute_link_stay_inside() {
    let t = Planted::new();
    let keys = t.layout.path("/etc/apk/keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("alpine.rsa.pub"), b"KEY").unwrap();
    t.link(&t.outside, "etc/apk/keys");
    let before = t.outside_root();
    // Dangling inside the new root: nothing is written anywhere.
    crate::keys::install_apk_keys(&t.layout);
    assert_eq!(t.outside_root(), before);
    let inside_dir = t
        .layout
        .sysroot()
        .join(t.outside.strip_prefix("/").unwrap());
    assert!(!inside_dir.exists());
    std::fs::create_dir_all(&inside_dir).unwrap();
    crate::keys::install_apk_keys(&t.layout);
    assert_eq!(t.outside_root(), before);
    let inside = inside_dir.join("alpine.rsa.pub");
    assert_eq!(std::fs::read(inside).unwrap(), b"KEY");
}

/// `root -> /abs/outside/victim`: the 0700 chmod of /root is not applied
/// through the link.
#[test]
fn root_home_chmod_never_follows_a_planted_link() {
    let t = Planted::new();
    t.link(&t.outside.join("victim"), "root");
    let before = t.outside_root();
    restrict_root_home(&t.layout);
    assert_eq!(t.outside_root(), before);
    assert!(t.layout.in_sysroot("root").is_symlink());
    // A real directory is restricted.
    std::fs::remove_file(t.layout.in_sysroot("root")).unwrap();
    std::fs::create_dir(t.layout.in_sysroot("root")).unwrap();
    restrict_root_home(&t.layout);
    let mode = std::fs::metadata(t.layout.in_sysroot("root"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// `etc/resolv.conf -> ../../outside/resolv.conf` (dangling) and
/// `etc/apk/repositories -> ../../../outside/keep`: neither is written
/// through; a planted entry counts as the overlay's own file.
#[test]
fn resolv_conf_and_repositories_never_written_through_planted_links() {
    let t = Planted::new();
    std::fs::create_dir_all(t.layout.path("/etc")).unwrap();
    std::fs::write(t.layout.path("/etc/resolv.conf"), b"nameserver 10.0.2.3\n").unwrap();
    t.link(Path::new("../../outside/resolv.conf"), "etc/resolv.conf");
    t.link(Path::new("../../../outside/keep"), "etc/apk/repositories");
    let before = t.outside_root();
    copy_resolv_conf(&t.layout);
    crate::packages::write_repositories(&t.layout, &["/media/sda1/apks".to_owned()]);
    assert_eq!(t.outside_root(), before);
    assert!(!t.outside.join("resolv.conf").exists());
    // Without a planted entry both are written inside.
    std::fs::remove_file(t.layout.in_sysroot("etc/resolv.conf")).unwrap();
    std::fs::remove_file(t.layout.in_sysroot("etc/apk/repositories")).unwrap();
    copy_resolv_conf(&t.layout);
    crate::packages::write_repositories(&t.layout, &["/media/sda1/apks".to_owned()]);
    assert_eq!(
        std::fs::read(t.layout.in_sysroot("etc/resolv.conf")).unwrap(),
        b"nameserver 10.0.2.3\n"
    );
    assert_eq!(
        std::fs::read_to_string(t.layout.in_sysroot("etc/apk/repositories")).unwrap(),
        "/media/sda1/apks\n"
    );
}

/// Mount targets: `/media -> /abs/outside` and `dev -> ../outside`; the
/// moves and binds go to directories inside the new root.
#[test]
fn mount_targets_through_planted_links_stay_inside() {
    let t = Planted::new();
    t.link(&t.outside, "media");
    t.link(Path::new("../../outside"), "dev");
    let proc_dir = t.layout.proc();
    std::fs::create_dir_all(&proc_dir).unwrap();
    std::fs::write(
        proc_dir.join("mounts"),
        "proc /proc proc rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\n/dev/sda1 /media/sda1 vfat ro 0 0\n",
    )
    .unwrap();
    for d in ["dev", "sys", "media/sda1"] {
        std::fs::create_dir_all(t.layout.path(d)).unwrap();
    }
    // Both links resolve inside the new root once these exist.
    let sysroot = t.layout.sysroot();
    std::fs::create_dir_all(sysroot.join("outside")).unwrap();
    std::fs::create_dir_all(sysroot.join(t.outside.strip_prefix("/").unwrap())).unwrap();
    let before = t.outside_root();
    let rec = alpinit_sys::Recorder::new();
    crate::packages::bind_api_filesystems(&rec, &t.layout);
    crate::handover::move_mounts(&rec, &t.layout);
    // The initramfs' own /dev, /sys, /media/sda1 and /proc are sources,
    // not targets: only the directories outside the initramfs count.
    let mut after = t.outside_root();
    let mut before = before;
    after.retain(|p, _| !p.starts_with(t.layout.root()));
    before.retain(|p, _| !p.starts_with(t.layout.root()));
    assert_eq!(after, before);
    let targets: Vec<PathBuf> = rec.mounts().into_iter().map(|m| m.1).collect();
    assert_eq!(targets.len(), 6, "{targets:?}");
    for target in &targets {
        assert!(target.starts_with(&sysroot), "{}", target.display());
        let md = std::fs::symlink_metadata(target).unwrap();
        assert!(md.is_dir(), "{}", target.display());
        let mut p = target.clone();
        while p != sysroot {
            assert!(!p.is_symlink(), "{} goes through a link", target.display());
            p.pop();
        }
    }
    assert!(sysroot.join("outside").is_dir());
}

#[test]
fn paths_that_climb_are_refused() {
    let t = Planted::new();
    let root = NewRoot::open(&t.layout.sysroot()).unwrap();
    for bad in ["../x", "etc/../../x", ""] {
        assert!(
            matches!(
                root.write_file(bad, b"x", 0o644),
                Err(NewRootError::BadPath { .. })
            ),
            "{bad}"
        );
    }
    assert!(!t.tmp.path().join("x").exists());
}

#[test]
fn write_file_replaces_a_symlink_and_refuses_a_directory() {
    let t = Planted::new();
    let root = NewRoot::open(&t.layout.sysroot()).unwrap();
    t.link(&t.outside.join("keep"), "etc/hostname");
    root.write_file("/etc/hostname", b"box\n", 0o644).unwrap();
    assert_eq!(std::fs::read(t.outside.join("keep")).unwrap(), b"keep");
    let md = std::fs::symlink_metadata(t.layout.in_sysroot("etc/hostname")).unwrap();
    assert!(md.is_file());
    assert_eq!(md.permissions().mode() & 0o777, 0o644);
    assert!(matches!(
        root.write_file("etc/apk", b"x", 0o644),
        Err(NewRootError::Kind { .. })
    ));
    assert!(t.layout.in_sysroot("etc/apk").is_dir());
    assert!(root.remove("etc/hostname").unwrap());
    assert!(!root.remove("etc/hostname").unwrap());
}

#[test]
fn fstab_read_follows_links_only_inside() {
    let t = Planted::new();
    std::fs::write(t.outside.join("fstab"), b"outside fstab").unwrap();
    t.link(Path::new("../../outside/fstab"), "etc/fstab");
    assert_eq!(crate::fstab::read_new_root(&t.layout), None);
    std::fs::create_dir_all(t.layout.in_sysroot("outside")).unwrap();
    std::fs::write(t.layout.in_sysroot("outside/fstab"), b"inside fstab").unwrap();
    assert_eq!(
        crate::fstab::read_new_root(&t.layout).as_deref(),
        Some("inside fstab")
    );
}

/// The same clamping with the userspace walk used on kernels without
/// openat2 as with openat2.
#[test]
fn both_resolvers_keep_writes_inside() {
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        let t = Planted::new();
        t.link(Path::new("../../../outside"), "etc/runlevels/boot");
        t.link(&t.outside, "media");
        std::fs::create_dir_all(t.layout.in_sysroot("outside")).unwrap();
        let before = t.outside_root();
        let root = NewRoot::open_with(&t.layout.sysroot(), resolver).unwrap();
        root.create_dir_all("etc/runlevels/boot/x").unwrap();
        root.symlink("/etc/init.d/hwclock", "etc/runlevels/boot/hwclock")
            .unwrap();
        root.write_file("etc/runlevels/boot/f", b"f", 0o600)
            .unwrap();
        root.chmod("etc/runlevels/boot/x", 0o700).unwrap();
        assert!(root.remove("etc/runlevels/boot/f").unwrap());
        // `media` points at an absolute path missing inside: refused, not followed.
        assert!(root.mount_target("media/sda1").is_err(), "{resolver:?}");
        assert_eq!(t.outside_root(), before, "{resolver:?}");
        let inside = t.layout.in_sysroot("outside");
        assert!(inside.join("x").is_dir(), "{resolver:?}");
        assert!(inside.join("hwclock").is_symlink(), "{resolver:?}");
        assert!(!inside.join("f").exists(), "{resolver:?}");
    }
}
