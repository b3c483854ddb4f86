//! Diskless boots from local media: disk, USB, ISO + USB, hotplug, ENOBUFS,
//! overlay choice, apk, the new root's files.

use super::machine::{apkovl_fixture, overlay, Bus, Fs, Machine, BOOT_REPOSITORY};
use crate::platform::fake::Ev;
use alpinit_sys::MountFlags;

fn host_overlay() -> Vec<u8> {
    overlay(&[
        ("etc/hostname", b"box\n"),
        ("etc/apk/world", b"openssh\n"),
        ("root/.profile", b"x\n"),
    ])
}

const USB_STORAGE: &str = "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00";

fn usb_stick(m: &Machine) {
    m.modalias_device(
        "usb",
        "/devices/pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0",
        USB_STORAGE,
    );
}

#[test]
fn diskless_from_virtio_disk_unpacks_the_overlay_and_switches_root() {
    let m = Machine::new();
    m.modalias_device(
        "virtio",
        "/devices/pci0000:00/0000:00:05.0/virtio2",
        "virtio:d00000002v00001AF4",
    );
    let ovl = host_overlay();
    m.disk("vda1", "DATA", &[("host.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let mods = boot.insmods();
    assert!(mods.contains(&"virtio_blk".to_owned()), "{mods:?}");
    // Dependencies first, then the module; the fs module before the mount.
    let pos = |n: &str| mods.iter().position(|x| x == n);
    assert!(pos("virtio_ring") < pos("virtio_blk"));
    let media = boot.mount_on("/media/vda1").expect("vda1 mounted");
    assert_eq!(media.source, "/dev/vda1");
    assert_eq!(media.fstype.as_deref(), Some("ext4"));
    assert!(media.flags.contains(
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC
    ));
    assert!(mods.contains(&"ext4".to_owned()));
    let root = boot.mount_on("/sysroot").expect("tmpfs root");
    assert_eq!(root.fstype.as_deref(), Some("tmpfs"));
    assert_eq!(root.data.as_deref(), Some("mode=0755"));
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
    for phase in [
        "start",
        "early-mounts",
        "first-block",
        "media-found",
        "apkovl-chosen",
        "unpacked",
        "packages",
    ] {
        boot.assert_kmsg(&format!("phase {phase} "));
    }
}

#[test]
fn diskless_from_usb_stick_links_usbdisk_and_loads_usb_storage() {
    let m = Machine::new();
    usb_stick(&m);
    let ovl = host_overlay();
    m.stick("sda1", "ALPINE", &[("box.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(boot.insmods().contains(&"usb_storage".to_owned()));
    assert!(boot.insmods().contains(&"vfat".to_owned()));
    assert_eq!(
        std::fs::read_link(m.path("/dev/usbdisk")).ok(),
        Some("sda1".into())
    );
    assert_eq!(
        boot.mount_on("/media/sda1")
            .and_then(|x| x.fstype)
            .as_deref(),
        Some("vfat")
    );
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
}

#[test]
fn diskless_from_iso_and_usb_uses_the_cd_repository_and_the_stick_overlay() {
    let m = Machine::new();
    m.block(
        "sr0",
        Bus::Cdrom,
        Fs::Iso {
            label: "alpine-std",
        },
        &[BOOT_REPOSITORY],
    );
    let ovl = host_overlay();
    m.stick("sda1", "STICK", &[("box.apkovl.tar.gz", &ovl)]);
    m.with_apk();
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(
        std::fs::read_link(m.path("/dev/cdrom")).ok(),
        Some("sr0".into())
    );
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
    assert_eq!(m.read("/sysroot/etc/apk/repositories"), "/media/sr0/apks\n");
    let apk = boot
        .spawned()
        .into_iter()
        .find(|a| a[0] == "/sbin/apk" && a[1] == "add" && a.contains(&"--no-network".to_owned()))
        .expect("apk add ran");
    assert!(apk.contains(&"/media/sr0/apks".to_owned()), "{apk:?}");
    assert!(
        apk.contains(&"openssh".to_owned()),
        "world packages: {apk:?}"
    );
    assert!(apk.contains(&"alpine-base".to_owned()), "{apk:?}");
}

#[test]
fn media_without_apkovl_or_repository_are_unmounted() {
    let m = Machine::new();
    m.disk("vda1", "EMPTY", &[("notes.txt", b"x")]);
    let ovl = host_overlay();
    m.disk("vdb1", "DATA", &[("h.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(
        boot.umounts().contains(&"/media/vda1".to_owned()),
        "{:?}",
        boot.umounts()
    );
    assert!(!boot.umounts().contains(&"/media/vdb1".to_owned()));
}

#[test]
fn hotplug_usb_stick_arriving_after_coldplug_is_found() {
    let m = Machine::new();
    let ovl = host_overlay();
    let ev = m.stick("sdb1", "LATE", &[("late.apkovl.tar.gz", &ovl)]);
    m.hotplug(3, ev, false);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(boot.mount_on("/media/sdb1").is_some());
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
}

#[test]
fn enobufs_lost_events_are_recovered_by_a_sysfs_rescan() {
    let m = Machine::new();
    let ovl = host_overlay();
    let ev = m.disk("vdc1", "LOST", &[("lost.apkovl.tar.gz", &ovl)]);
    m.hotplug(2, ev, true);
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_kmsg("uevent buffer overflow");
    assert!(boot.mount_on("/media/vdc1").is_some());
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
}

#[test]
fn uevent_socket_unavailable_falls_back_to_polling_sysfs() {
    let m = Machine::new();
    m.fake.fail_socket(libc::EPERM);
    let ovl = host_overlay();
    let ev = m.disk("vda1", "X", &[("a.apkovl.tar.gz", &ovl)]);
    m.hotplug(0, ev, false);
    // Without the socket the event never arrives; polling sysfs finds it.
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_kmsg("falling back to sysfs polling");
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
}

#[test]
fn overlay_on_the_medium_with_a_boot_repository_wins() {
    let m = Machine::new();
    let stale = overlay(&[("etc/hostname", b"stale\n")]);
    let good = overlay(&[("etc/hostname", b"good\n")]);
    m.disk("vda1", "A", &[("a.apkovl.tar.gz", &stale)]);
    m.disk("vdb1", "B", &[("b.apkovl.tar.gz", &good), BOOT_REPOSITORY]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(m.read("/sysroot/etc/hostname"), "good\n");
}

#[test]
fn symlinked_apkovl_on_a_medium_is_skipped_with_a_warning() {
    let m = Machine::new();
    m.repo_disk();
    let dir = m.path("/.contents/vda1");
    std::os::unix::fs::symlink("/etc/shadow", dir.join("evil.apkovl.tar.gz")).unwrap();
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_kmsg("ignoring evil.apkovl.tar.gz on /dev/vda1: not a regular file");
    assert!(!boot.console.contains("Loading user settings"));
}

#[test]
fn bootstrap_usr_merged_links_bin_sbin_lib_into_usr() {
    let m = Machine::new();
    m.cmdline("bootstrap_usr_merged");
    let ovl = overlay(&[("bin/tool", b"x")]);
    m.disk("vda1", "A", &[("a.apkovl.tar.gz", &ovl)]);
    std::fs::remove_dir_all(m.path("/sysroot/sbin")).unwrap();
    let boot = m.boot();
    assert_eq!(
        std::fs::read_link(m.path("/sysroot/bin")).ok(),
        Some("usr/bin".into())
    );
    assert_eq!(
        std::fs::read_link(m.path("/sysroot/lib")).ok(),
        Some("usr/lib".into())
    );
    assert!(
        m.exists("/sysroot/usr/bin/tool"),
        "unpacked through the link"
    );
    // /sbin is now usr/sbin, which has no init: the init check fails.
    boot.assert_console("/sbin/init not found in new root");
}

#[test]
fn rootflags_become_the_tmpfs_root_options() {
    let m = Machine::new();
    m.cmdline("rootflags=size=16M,nr_inodes=1000");
    m.repo_disk();
    let boot = m.boot();
    boot.assert_clean_switch();
    let root = boot.mount_on("/sysroot").unwrap();
    assert_eq!(
        root.data.as_deref(),
        Some("mode=0755,size=16M,nr_inodes=1000")
    );
}

#[test]
fn apk_runs_initdb_then_add_with_the_overlay_member_list() {
    let m = Machine::new();
    m.with_apk();
    let stdin = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = std::sync::Arc::clone(&stdin);
    m.fake.on_spawn(move |argv, input| {
        if let (Some("add"), Some(bytes)) = (argv.get(1).map(String::as_str), input) {
            *seen.lock().unwrap() = String::from_utf8_lossy(bytes).into_owned();
        }
        Ok(0)
    });
    let ovl = host_overlay();
    m.disk("vda1", "A", &[("a.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let apk: Vec<_> = boot
        .spawned()
        .into_iter()
        .filter(|a| a[0] == "/sbin/apk")
        .collect();
    assert_eq!(
        apk[0][1..],
        ["add", "--root", "/sysroot", "--initdb", "--quiet"]
    );
    assert_eq!(apk.len(), 2, "{apk:?}");
    assert!(
        stdin.lock().unwrap().contains("etc/hostname\n"),
        "members on stdin"
    );
    // Keys, /sys /proc /dev bound in for apk and let go after.
    assert!(boot
        .mounts()
        .iter()
        .any(|x| x.target == "/sysroot/proc" && x.flags.contains(MountFlags::BIND)));
    assert!(boot.umounts().contains(&"/sysroot/proc".to_owned()));
    assert!(m.exists("/sysroot/etc/apk/keys"));
    assert_eq!(
        std::fs::read_link(m.path("/sysroot/etc/runlevels/boot/swclock")).ok(),
        Some("/etc/init.d/swclock".into()),
        "no /dev/rtc*: swclock"
    );
}

#[test]
fn without_an_overlay_the_default_services_are_enabled() {
    let m = Machine::new();
    m.repo_disk();
    let boot = m.boot();
    boot.assert_clean_switch();
    for (level, svc) in [
        ("sysinit", "devfs"),
        ("boot", "bootmisc"),
        ("shutdown", "killprocs"),
    ] {
        assert!(
            m.exists(&format!("/sysroot/etc/runlevels/{level}/{svc}")),
            "{level}/{svc}"
        );
    }
}

#[test]
fn root_directory_of_the_overlay_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let m = Machine::new();
    let ovl = host_overlay();
    m.disk("vda1", "A", &[("a.apkovl.tar.gz", &ovl)]);
    m.boot().assert_clean_switch();
    let mode = std::fs::metadata(m.path("/sysroot/root"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn modules_option_and_etc_modules_are_loaded_explicitly() {
    let m = Machine::new();
    m.cmdline("modules=loop,dummy");
    m.write("/etc/modules", "evbug\n");
    m.repo_disk();
    let boot = m.boot();
    boot.assert_clean_switch();
    for name in ["loop", "dummy", "evbug", "squashfs"] {
        assert!(
            boot.insmods().contains(&name.to_owned()),
            "{name}: {:?}",
            boot.insmods()
        );
    }
}

#[test]
fn init_and_init_args_are_what_switch_root_execs() {
    let m = Machine::new();
    m.cmdline("init=/bin/sh init_args=-x");
    m.exe("/sysroot/bin/sh");
    m.repo_disk();
    let boot = m.boot();
    assert_eq!(
        boot.switched_to(),
        Some(("/bin/sh".to_owned(), vec!["-x".to_owned()]))
    );
    assert_eq!(boot.shells(), 0);
}

#[test]
fn mounts_are_moved_into_the_new_root_before_switch_root() {
    let m = Machine::new();
    m.repo_disk();
    let boot = m.boot();
    boot.assert_clean_switch();
    let moved: Vec<_> = boot
        .mounts()
        .into_iter()
        .filter(|x| x.flags.contains(MountFlags::MOVE))
        .map(|x| x.target)
        .collect();
    for t in ["/sysroot/sys", "/sysroot/dev", "/sysroot/proc"] {
        assert!(moved.contains(&t.to_owned()), "{t}: {moved:?}");
    }
    let last_move = boot.events.iter().rposition(|e| matches!(e, Ev::Sys(alpinit_sys::Call::Mount { flags, .. }) if flags.contains(MountFlags::MOVE)));
    let switch = boot.index(|e| matches!(e, Ev::SwitchRoot { .. }));
    assert!(last_move < switch);
}

#[test]
fn quiet_keeps_progress_lines_off_the_console() {
    let m = Machine::new();
    m.cmdline("quiet");
    m.repo_disk();
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(!boot.console.contains("Alpine Init"), "{}", boot.console);
    assert!(
        !boot.console.contains(" * Mounting boot media"),
        "{}",
        boot.console
    );
}

#[test]
fn encrypted_overlay_is_unpacked_with_the_typed_password() {
    let m = Machine::new();
    let enc = apkovl_fixture("tiny-sha256.apkovl.tar.gz.aes-256-cbc");
    m.stick("sda1", "A", &[("box.apkovl.tar.gz.aes-256-cbc", &enc)]);
    m.fake.type_passwords(&["wrong", "alpinit"]);
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_console("Wrong password, try again.");
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
}

#[test]
fn single_mode_runs_a_shell_after_discovery_then_boots() {
    let m = Machine::new();
    m.cmdline("single");
    m.repo_disk();
    let boot = m.boot();
    assert_eq!(boot.shells(), 1);
    boot.assert_console("Entering single mode");
    let shell = boot.index(|e| matches!(e, Ev::Spawn(a) if a[0].ends_with("bin/busybox")));
    let tmpfs = boot.index(|e| matches!(e, Ev::Sys(alpinit_sys::Call::Mount { fstype, .. }) if fstype.as_deref() == Some("tmpfs") && !format!("{e:?}").contains("shm")));
    assert!(shell < tmpfs, "shell before the new root");
    assert!(boot.switched_to().is_some());
}

/// README "No fixed idle timeout": once the medium is found and nothing is
/// settling, discovery stops at once (Alpine waits 5 s after the last uevent).
#[test]
fn no_fixed_idle_timeout_discovery_ends_as_soon_as_the_medium_is_found() {
    let m = Machine::new();
    m.repo_disk();
    m.boot().assert_clean_switch();
    assert!(
        m.fake.elapsed() < std::time::Duration::from_millis(500),
        "{:?}",
        m.fake.elapsed()
    );
}

/// A USB stick still settling (usb-storage bound, no disk yet) keeps the
/// wait going after a first finding, bounded by `usbdelay=`.
#[test]
fn settling_usb_storage_is_waited_for_up_to_usbdelay() {
    let m = Machine::new();
    m.cmdline("usbdelay=3");
    m.repo_disk();
    let intf = "/sys/devices/pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0";
    m.mkdir(intf);
    m.mkdir("/sys/bus/usb/drivers/usb-storage");
    std::os::unix::fs::symlink(
        m.path(intf),
        m.path("/sys/bus/usb/drivers/usb-storage/1-1:1.0"),
    )
    .unwrap();
    m.boot().assert_clean_switch();
    let waited = m.fake.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(3) && waited < std::time::Duration::from_secs(4),
        "{waited:?}"
    );
}
