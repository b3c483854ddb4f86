//! `root=` boots: the installed root is waited for, mounted and handed over
//! to; boot media are not scanned.

use super::machine::{Machine, BOOT_REPOSITORY};
use crate::failure::End;
use alpinit_sys::MountFlags;
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;

/// An installed root on `name`: its mount shows an executable /sbin/init;
/// the initramfs' sysroot starts empty.
fn root_disk(m: &Machine, name: &str, label: &'static str) -> alpinit_uevent::Uevent {
    std::fs::remove_dir_all(m.path("/sysroot")).unwrap();
    m.mkdir("/sysroot");
    let ev = m.disk(name, label, &[("sbin/init", b"#!")]);
    let init = m.path(&format!("/.contents/{name}/sbin/init"));
    std::fs::set_permissions(init, std::fs::Permissions::from_mode(0o755)).unwrap();
    ev
}

#[test]
fn root_mode_mounts_the_root_read_only_and_switches_without_scanning_media() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1");
    root_disk(&m, "vda1", "ROOT");
    m.disk("vdb1", "DATA", &[BOOT_REPOSITORY]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let root = boot.mount_on("/sysroot").expect("root mounted");
    assert_eq!(root.source, "/dev/vda1");
    assert_eq!(root.fstype.as_deref(), Some("ext4"));
    assert!(root.flags.contains(MountFlags::RDONLY));
    assert!(
        !boot
            .mounts()
            .iter()
            .any(|x| x.target.starts_with("/media/")),
        "no media scan"
    );
    assert!(boot.insmods().contains(&"ext4".to_owned()));
    boot.assert_console(" * Mounting root: ok.");
}

#[test]
fn root_mode_by_label_with_rootfstype_and_rootflags() {
    let m = Machine::new();
    m.cmdline("root=LABEL=ROOT rootfstype=ext4 rootflags=rw,noatime,data=journal");
    root_disk(&m, "vda2", "ROOT");
    let boot = m.boot();
    boot.assert_clean_switch();
    let root = boot.mount_on("/sysroot").expect("root mounted");
    assert_eq!(root.source, "/dev/vda2");
    assert!(!root.flags.contains(MountFlags::RDONLY));
    assert!(root.flags.contains(MountFlags(libc::MS_NOATIME)));
    assert_eq!(root.data.as_deref(), Some("data=journal"));
}

#[test]
fn root_device_missing_says_so_and_waits_again_after_the_shell() {
    let m = Machine::new();
    m.cmdline("root=UUID=11111111-1111-1111-1111-111111111111");
    let ev = root_disk(&m, "vda1", "ROOT");
    let reveal = Mutex::new(Some(m.hide(&ev)));
    // The user plugs the disk in from the recovery shell.
    m.fake.on_spawn(move |argv, _| {
        if argv.get(1).map(String::as_str) != Some("sh") {
            return Ok(0);
        }
        if let Some(f) = reveal.lock().unwrap().take() {
            f();
        }
        Ok(0)
    });
    let boot = m.boot();
    boot.assert_console(" * Mounting root: failed. root device UUID=11111111-1111-1111-1111-111111111111 not found (0 block devices seen)");
    boot.assert_console("Type exit to try again.");
    assert_eq!(boot.shells(), 1);
    assert_eq!(
        boot.mount_on("/sysroot").map(|x| x.source).as_deref(),
        Some("/dev/vda1")
    );
    assert_eq!(boot.end, End::SwitchedRoot);
}

#[test]
fn root_device_missing_with_panic_gives_up() {
    let m = Machine::new();
    m.cmdline("root=/dev/vdz9 panic=5");
    let boot = m.boot();
    assert_eq!(boot.end, End::GaveUp);
    assert_eq!(boot.shells(), 0);
    boot.assert_kmsg("root device /dev/vdz9 not found");
}

#[test]
fn root_mount_failure_keeps_the_errno() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 panic=1");
    root_disk(&m, "vda1", "ROOT");
    m.fail_mount(alpinit_sys::Match::Path(m.path("/sysroot")), libc::EIO);
    let boot = m.boot();
    let eio = std::io::Error::from_raw_os_error(libc::EIO).to_string();
    assert!(
        boot.console.contains(&format!(
            "failed. mounting /dev/vda1 (ext4) on /sysroot: {eio}"
        )),
        "{}",
        boot.console
    );
    assert_eq!(boot.end, End::GaveUp);
}

#[test]
fn root_mode_single_runs_the_shell_before_the_hand_over() {
    let m = Machine::new();
    m.cmdline("root=vda1 single");
    root_disk(&m, "vda1", "ROOT");
    let boot = m.boot();
    assert_eq!(boot.shells(), 1);
    boot.assert_console("Entering single mode");
    assert_eq!(boot.end, End::SwitchedRoot);
}
