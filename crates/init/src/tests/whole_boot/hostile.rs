//! Whole boots against hostile input that the unit tests of each module
//! cover piecewise: a cloned stick (two devices with one identity) and an
//! overlay that plants symlinks out of the new root.

use super::machine::{Bus, Fs, Machine};
use crate::failure::End;
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;

fn overlay_with_symlink(link: &str, target: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for dir in ["etc/", "etc/runlevels/"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1);
        tar.append_data(&mut h, dir, std::io::empty()).expect("dir");
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_mtime(1);
    tar.append_link(&mut h, link, target).expect("symlink");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(4);
    h.set_mtime(1);
    tar.append_data(&mut h, "etc/hostname", &b"box\n"[..])
        .expect("file");
    tar.into_inner().expect("tar").finish().expect("gzip")
}

/// Regression (issue: after unpacking, the init followed symlinks the
/// overlay planted): `etc/runlevels/boot -> ../../../outside` made the
/// clock service's runlevel link land outside the new root.
#[test]
fn planted_runlevel_symlink_is_not_written_through() {
    let m = Machine::new();
    m.with_apk();
    let ovl = overlay_with_symlink("etc/runlevels/boot", "../../../outside");
    m.block(
        "vda1",
        Bus::Virtio,
        Fs::Ext4 { label: "OVL" },
        &[("h.apkovl.tar.gz", &ovl)],
    );
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
    assert!(
        !m.exists("/outside"),
        "nothing may be created through the planted link"
    );
    // The link itself was replaced inside the root, or the service was
    // skipped with a warning: either way it stays inside.
    let link = m.path("/sysroot/etc/runlevels/boot");
    if let Ok(target) = std::fs::read_link(&link) {
        assert_eq!(target, std::path::Path::new("../../../outside"));
        assert!(boot.kmsg.contains("swclock"), "{}", boot.kmsg);
    }
}

/// Regression (issue: a cloned stick wins silently): two sticks with the
/// same file-system UUID and `apkovl=UUID=..:` must name both and use neither.
#[test]
fn ambiguous_apkovl_device_names_both_and_boots_without_an_overlay() {
    let m = Machine::new();
    m.cmdline("apkovl=UUID=1234-5678:vfat:x.apkovl.tar.gz");
    let a = super::machine::overlay(&[("etc/hostname", b"first\n")]);
    let b = super::machine::overlay(&[("etc/hostname", b"second\n")]);
    m.block(
        "sda1",
        Bus::Usb,
        Fs::Vfat { label: "TWIN" },
        &[("x.apkovl.tar.gz", &a)],
    );
    m.block(
        "sdb1",
        Bus::Usb,
        Fs::Vfat { label: "TWIN" },
        &[("x.apkovl.tar.gz", &b)],
    );
    let boot = m.boot();
    assert!(
        boot.console.contains(
            "apkovl device UUID=1234-5678 is ambiguous: /dev/sda1 and /dev/sdb1 both match"
        ),
        "{}\n{}\n{:?}",
        boot.console,
        boot.kmsg,
        boot.end
    );
    assert!(boot.console.contains("Type exit to boot without it."));
    assert_eq!(boot.shells(), 1);
    assert_eq!(boot.end, End::SwitchedRoot);
    assert!(!m.exists("/sysroot/etc/hostname"), "no overlay applied");
}

/// The same for `root=`: nothing is mounted while two disks match; once
/// the user unplugs the clone from the shell, the root mounts.
#[test]
fn ambiguous_root_device_is_not_mounted_until_one_is_left() {
    let m = Machine::new();
    m.cmdline("root=LABEL=ROOT");
    std::fs::remove_dir_all(m.path("/sysroot")).unwrap();
    m.mkdir("/sysroot");
    let mut evs = Vec::new();
    for name in ["vda1", "vdb1"] {
        evs.push(m.block(
            name,
            Bus::Virtio,
            Fs::Ext4 { label: "ROOT" },
            &[("sbin/init", b"#!")],
        ));
        let init = m.path(&format!("/.contents/{name}/sbin/init"));
        std::fs::set_permissions(init, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // At the shell the user unplugs the clone: its sysfs entries and node go.
    let clone = evs.pop().expect("vdb1");
    let gone = Mutex::new(vec![
        m.path(&format!("/sys{}", clone.devpath)),
        m.path("/sys/class/block/vdb1"),
        m.path("/dev/vdb1"),
    ]);
    m.fake.on_spawn(move |argv, _| {
        if argv.get(1).map(String::as_str) != Some("sh") {
            return Ok(0);
        }
        for p in gone.lock().unwrap().drain(..) {
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
        Ok(0)
    });
    let boot = m.boot();
    assert!(
        boot.console
            .contains("root device LABEL=ROOT is ambiguous: /dev/vda1 and /dev/vdb1 both match"),
        "{}",
        boot.console
    );
    assert_eq!(boot.shells(), 1);
    assert_eq!(
        boot.mount_on("/sysroot").map(|x| x.source).as_deref(),
        Some("/dev/vda1")
    );
}
