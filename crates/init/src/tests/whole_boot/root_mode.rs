//! `root=` boots: the installed root is waited for, mounted and handed over
//! to; boot media are not scanned.

use super::machine::{Bus, Fs, Machine, BOOT_REPOSITORY};
use crate::failure::End;
use crate::platform::fake::Ev;
use alpinit_sys::{Call, MountFlags};
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;

/// An installed root on `name`: its mount shows an executable /sbin/init;
/// the initramfs' sysroot starts empty.
pub(super) fn root_disk(m: &Machine, name: &str, label: &'static str) -> alpinit_uevent::Uevent {
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

/// Index of the first mount on `target` (relative to the machine's root).
fn mount_index(m: &Machine, boot: &super::record::Boot, target: &str) -> Option<usize> {
    let want = m.path(target);
    boot.index(|e| matches!(e, Ev::Sys(Call::Mount { target, .. }) if *target == want))
}

fn shell_index(boot: &super::record::Boot) -> Option<usize> {
    boot.index(|e| matches!(e, Ev::Spawn(argv) if argv.get(1).map(String::as_str) == Some("sh")))
}

fn sysfs_writes(m: &Machine, boot: &super::record::Boot) -> Vec<(usize, String, String)> {
    let root = m.path("/");
    boot.events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Ev::SysfsWrite(path, value) => Some((
                i,
                format!("/{}", path.strip_prefix(&root).unwrap_or(path).display()),
                value.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// The kernel's hibernation attributes (CONFIG_HIBERNATION).
fn hibernation_support(m: &Machine) {
    m.write("/sys/power/resume", "0:0\n");
    m.write("/sys/power/resume_offset", "0\n");
}

/// Alpine §3.5 step 2: the shell comes after the device wait and before
/// anything is mounted (it used to come after the root was mounted).
#[test]
fn root_mode_single_opens_the_shell_after_the_device_wait_before_the_root_is_mounted() {
    let m = Machine::new();
    m.cmdline("root=vda1 single");
    root_disk(&m, "vda1", "ROOT");
    let boot = m.boot();
    assert_eq!(boot.shells(), 1);
    boot.assert_console(" * Mounting root: Entering single mode. Type 'exit' to continue booting.");
    let shell = shell_index(&boot).expect("shell");
    let mounted = mount_index(&m, &boot, "/sysroot").expect("root mounted");
    assert!(shell < mounted, "{:?}", boot.events);
    assert_eq!(boot.end, End::SwitchedRoot);
}

#[test]
fn overlaytmpfs_mounts_the_root_read_only_under_a_tmpfs_upper_layer() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 overlaytmpfs overlaytmpfsflags=size=64m rootflags=rw,noatime");
    root_disk(&m, "vda1", "ROOT");
    // The overlay shows the root's files.
    m.fake.set_contents("overlayfs", &m.path("/.contents/vda1"));
    // What the kernel lists once the three are mounted.
    let mounts = m.read("/proc/mounts");
    m.write(
        "/proc/mounts",
        format!(
            "{mounts}/dev/vda1 /media/root-ro ext4 ro,noatime 0 0\n\
             root-tmpfs /media/root-rw tmpfs rw,size=65536k,mode=755 0 0\n\
             overlayfs /sysroot overlay rw 0 0\n"
        ),
    );
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_console(" * Mounting root: ok.");
    let ro = boot
        .mount_on("/media/root-ro")
        .expect("root at /media/root-ro");
    assert_eq!(ro.source, "/dev/vda1");
    assert_eq!(ro.fstype.as_deref(), Some("ext4"));
    assert!(
        ro.flags.contains(MountFlags::RDONLY),
        "rootflags=rw is overridden"
    );
    assert!(ro.flags.contains(MountFlags(libc::MS_NOATIME)));
    let rw = boot
        .mount_on("/media/root-rw")
        .expect("tmpfs at /media/root-rw");
    assert_eq!(
        (rw.source.as_str(), rw.fstype.as_deref()),
        ("root-tmpfs", Some("tmpfs"))
    );
    assert!(!rw.flags.contains(MountFlags::RDONLY));
    assert_eq!(rw.data.as_deref(), Some("mode=0755,size=64m"));
    assert!(m.path("/media/root-rw/root").is_dir());
    assert!(m.path("/media/root-rw/work").is_dir());
    let ov = boot.mount_on("/sysroot").expect("overlay on the sysroot");
    assert_eq!(
        (ov.source.as_str(), ov.fstype.as_deref()),
        ("overlayfs", Some("overlay"))
    );
    assert!(!ov.flags.contains(MountFlags::RDONLY));
    let (lower, upper) = (m.path("/media/root-ro"), m.path("/media/root-rw"));
    assert_eq!(
        ov.data.as_deref(),
        Some(
            format!(
                "lowerdir={},upperdir={}/root,workdir={}/work",
                lower.display(),
                upper.display(),
                upper.display()
            )
            .as_str()
        )
    );
    let order: Vec<_> = ["/media/root-ro", "/media/root-rw", "/sysroot"]
        .iter()
        .map(|t| mount_index(&m, &boot, t).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    // Both lower mounts are moved into the new root, the overlay stays.
    for dir in ["/media/root-ro", "/media/root-rw"] {
        let moved = boot
            .mounts()
            .into_iter()
            .find(|x| x.flags.contains(MountFlags::MOVE) && x.source == dir);
        assert_eq!(
            moved.map(|x| x.target),
            Some(format!("/sysroot{dir}")),
            "{dir}"
        );
    }
    assert!(!boot
        .mounts()
        .iter()
        .any(|x| x.flags.contains(MountFlags::MOVE) && x.source == "/sysroot"));
}

#[test]
fn overlaytmpfs_failed_overlay_unmounts_its_layers_and_names_the_mount() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 overlaytmpfs panic=1");
    root_disk(&m, "vda1", "ROOT");
    m.fail_mount(alpinit_sys::Match::FsType("overlay".into()), libc::ENODEV);
    let boot = m.boot();
    assert_eq!(boot.end, End::GaveUp);
    boot.assert_console("Mounting root: failed. mounting the overlay on /sysroot (-o lowerdir=");
    assert_eq!(boot.umounts(), ["/media/root-rw", "/media/root-ro"]);
}

/// The root's fstab: `/usr` on its own partition, by label.
fn usr_fstab(m: &Machine, line: &str) {
    m.write(
        "/.contents/vda1/etc/fstab",
        format!("LABEL=ROOT / ext4 ro 0 1\n{line}\n"),
    );
    m.mkdir("/.contents/vda1/usr");
}

#[test]
fn usr_from_the_root_fstab_is_mounted_read_only_after_the_root() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1");
    root_disk(&m, "vda1", "ROOT");
    usr_fstab(&m, "LABEL=USR\t/usr\text4\tdefaults,nodev 0 2");
    m.block("vdb1", Bus::Virtio, Fs::Ext4 { label: "USR" }, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_console(" * Mounting /usr: ok.");
    assert_eq!(boot.kmsg.matches("coldplug: ").count(), 1, "{}", boot.kmsg);
    let usr = boot.mount_on("/sysroot/usr").expect("/usr mounted");
    assert_eq!(usr.source, "/dev/vdb1");
    assert_eq!(usr.fstype.as_deref(), Some("ext4"));
    assert!(usr.flags.contains(MountFlags::RDONLY));
    assert!(
        !usr.flags.contains(MountFlags::NODEV),
        "usrflags=, not fstab's options"
    );
    let root = mount_index(&m, &boot, "/sysroot").unwrap();
    let usr = mount_index(&m, &boot, "/sysroot/usr").unwrap();
    assert!(root < usr);
    // /usr stays where it is: it is not moved at the hand-over.
    assert!(!boot
        .mounts()
        .iter()
        .any(|x| x.flags.contains(MountFlags::MOVE) && x.target.contains("/usr")));
}

#[test]
fn usrflags_give_the_usr_options_and_disable_skips_it() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 usrflags=rw,noatime");
    root_disk(&m, "vda1", "ROOT");
    usr_fstab(&m, "/dev/vdb1 /usr auto defaults 0 2");
    m.block("vdb1", Bus::Virtio, Fs::Ext4 { label: "USR" }, &[]);
    let boot = m.boot();
    let usr = boot.mount_on("/sysroot/usr").expect("/usr mounted");
    assert!(!usr.flags.contains(MountFlags::RDONLY));
    assert!(usr.flags.contains(MountFlags(libc::MS_NOATIME)));
    assert_eq!(usr.fstype.as_deref(), Some("ext4"), "auto: probed");

    let m = Machine::new();
    m.cmdline("root=/dev/vda1 usrflags=disable");
    root_disk(&m, "vda1", "ROOT");
    usr_fstab(&m, "/dev/vdb1 /usr ext4 defaults 0 2");
    m.block("vdb1", Bus::Virtio, Fs::Ext4 { label: "USR" }, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(boot.mount_on("/sysroot/usr").is_none());
    assert!(!boot.console.contains("Mounting /usr"));
}

/// The fstab is the new root's: a symlinked `/etc` that climbs with `..`
/// resolves inside the new root, never to the initramfs' files.
#[test]
fn usr_fstab_is_read_inside_the_new_root() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1");
    root_disk(&m, "vda1", "ROOT");
    std::os::unix::fs::symlink("../host-etc", m.path("/.contents/vda1/etc")).unwrap();
    m.write("/host-etc/fstab", "/dev/vdb1 /usr ext4 defaults 0 0\n");
    m.block("vdb1", Bus::Virtio, Fs::Ext4 { label: "USR" }, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(
        boot.mount_on("/sysroot/usr").is_none(),
        "{:?}",
        boot.mounts()
    );
}

/// Regression: `usr -> /` in the new root resolved to the new root's top,
/// and `/usr` was mounted over the whole root.
#[test]
fn usr_symlinked_to_the_root_is_not_mounted_over_it() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1");
    root_disk(&m, "vda1", "ROOT");
    m.write(
        "/.contents/vda1/etc/fstab",
        "/dev/vdb1 /usr ext4 defaults 0 2\n",
    );
    std::os::unix::fs::symlink("/", m.path("/.contents/vda1/usr")).unwrap();
    m.block("vdb1", Bus::Virtio, Fs::Ext4 { label: "USR" }, &[]);
    let boot = m.boot();
    boot.assert_console(
        "Mounting /usr: failed. /usr in the new root resolves to the new root itself",
    );
    assert_eq!(
        boot.mounts()
            .iter()
            .filter(|x| x.target == "/sysroot")
            .count(),
        1,
        "{:?}",
        boot.mounts()
    );
    assert_eq!(boot.end, End::SwitchedRoot);
}

#[test]
fn usr_device_missing_is_named_and_the_boot_goes_on_after_the_shell() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1");
    root_disk(&m, "vda1", "ROOT");
    usr_fstab(&m, "/dev/vdz1 /usr ext4 defaults 0 2");
    let boot = m.boot();
    boot.assert_console(
        " * Mounting /usr: failed. /usr device /dev/vdz1 not found (1 block devices seen)",
    );
    boot.assert_console("Type exit to continue boot.");
    assert_eq!(boot.shells(), 1);
    assert_eq!(boot.end, End::SwitchedRoot);
    assert!(boot.mount_on("/sysroot/usr").is_none());
}

#[test]
fn resume_writes_the_swap_device_number_before_the_root_is_mounted() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 rootflags=rw resume=LABEL=SWAP resume_offset=3549184");
    hibernation_support(&m);
    root_disk(&m, "vda1", "ROOT");
    m.block_devno(
        "vda2",
        Bus::Virtio,
        Fs::Ext4 { label: "SWAP" },
        &[],
        Some((254, 18)),
    );
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_console(" * Mounting root: Resume from disk\n");
    let writes = sysfs_writes(&m, &boot);
    let values: Vec<_> = writes
        .iter()
        .map(|w| (w.1.as_str(), w.2.as_str()))
        .collect();
    assert_eq!(
        values,
        [
            ("/sys/power/resume_offset", "3549184\n"),
            ("/sys/power/resume", "254:18")
        ]
    );
    let root = mount_index(&m, &boot, "/sysroot").expect("root mounted");
    assert!(
        writes.iter().all(|w| w.0 < root),
        "before any mount of the root"
    );
    assert_eq!(m.read("/sys/power/resume"), "254:18");
    // The swap partition was there after the root's wait: no second sweep.
    assert_eq!(boot.kmsg.matches("coldplug: ").count(), 1, "{}", boot.kmsg);
}

/// Writing `resume` makes the kernel read the image header right away, at
/// the offset it has then: Alpine writes the offset after it.
#[test]
fn resume_offset_is_written_before_resume() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 resume=/dev/vda2 resume_offset=8");
    hibernation_support(&m);
    root_disk(&m, "vda1", "ROOT");
    m.disk("vda2", "SWAP", &[]);
    let boot = m.boot();
    let attrs: Vec<_> = sysfs_writes(&m, &boot).into_iter().map(|w| w.1).collect();
    assert_eq!(attrs, ["/sys/power/resume_offset", "/sys/power/resume"]);
}

/// Alpine §3.6 step 1: in diskless mode resume comes before the boot
/// media are looked for, so no medium is mounted yet.
#[test]
fn resume_in_diskless_mode_comes_before_any_medium_is_mounted() {
    let m = Machine::new();
    m.cmdline("resume=UUID=11111111-1111-1111-1111-111111111111");
    hibernation_support(&m);
    m.block_devno(
        "vdb1",
        Bus::Virtio,
        Fs::Ext4 { label: "SWAP" },
        &[],
        Some((254, 17)),
    );
    m.block(
        "vda1",
        Bus::Virtio,
        Fs::Vfat { label: "BOOT" },
        &[BOOT_REPOSITORY],
    );
    let boot = m.boot();
    assert_eq!(boot.end, End::SwitchedRoot, "{}", boot.console);
    let writes = sysfs_writes(&m, &boot);
    assert_eq!(writes.last().map(|w| w.2.as_str()), Some("254:17"));
    let first_media = boot
        .index(|e| matches!(e, Ev::Sys(Call::Mount { target, .. }) if target.starts_with(m.path("/media"))))
        .expect("boot media mounted");
    assert!(
        writes.iter().all(|w| w.0 < first_media),
        "{:?}",
        boot.events
    );
    boot.assert_console("Resume from disk");
}

#[test]
fn resume_device_that_never_appears_is_named_and_does_not_hold_the_boot() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 resume=UUID=deadbeef-0000-0000-0000-000000000000");
    hibernation_support(&m);
    root_disk(&m, "vda1", "ROOT");
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_console("resume: resume device UUID=deadbeef-0000-0000-0000-000000000000 not found (1 block devices seen); booting without resuming");
    assert!(sysfs_writes(&m, &boot).is_empty());
    // The discovery's wait rules bound it: Alpine's 5 s of silence.
    assert!(
        m.fake.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        m.fake.elapsed()
    );
}

#[test]
fn resume_matching_two_devices_resumes_from_neither() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 resume=LABEL=SWAP");
    hibernation_support(&m);
    root_disk(&m, "vda1", "ROOT");
    m.disk("vdb1", "SWAP", &[]);
    m.disk("vdc1", "SWAP", &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_console(
        "resume device LABEL=SWAP is ambiguous: /dev/vdb1 and /dev/vdc1 both match",
    );
    assert!(sysfs_writes(&m, &boot).is_empty());
}

#[test]
fn resume_without_hibernation_support_says_so() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 resume=/dev/vda1 resume_offset=abc");
    root_disk(&m, "vda1", "ROOT");
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_console("resume: no hibernation support found\n");
    assert!(!boot.console.contains("Resume from disk"));
    assert!(sysfs_writes(&m, &boot).is_empty());
}

#[test]
fn resume_offset_that_is_not_a_number_is_named() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 resume=/dev/vda1 resume_offset=12k");
    hibernation_support(&m);
    root_disk(&m, "vda1", "ROOT");
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_console("resume: resume_offset=\"12k\" is not a number of pages");
    assert!(sysfs_writes(&m, &boot).is_empty());
}

/// The root's file system module is queued when the root device is
/// probed, not after the storage drivers still loading have finished:
/// here the disk driver's insertion does not return until ext4 was
/// inserted (before the fix ext4 waited for it, the full hold).
#[test]
fn root_fs_module_loads_while_a_storage_driver_is_still_loading() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1");
    root_disk(&m, "vda1", "ROOT");
    m.modalias_device(
        "virtio",
        "/devices/pci0000:00/0000:00:05.0/virtio2",
        "virtio:d00000002v00001AF4",
    );
    m.fake.hold_insmod("virtio_blk", "ext4");
    let boot = m.boot();
    boot.assert_clean_switch();
    let at = |wanted: &Ev| boot.events.iter().position(|e| e == wanted);
    let ext4 = at(&Ev::Insmod("ext4".into())).expect("ext4 inserted");
    let released = at(&Ev::InsmodReturned("virtio_blk".into())).expect("virtio_blk returned");
    assert!(ext4 < released, "{:?}", boot.events);
}
