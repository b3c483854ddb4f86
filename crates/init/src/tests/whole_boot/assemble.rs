//! Assembled storage in whole boots: an LVM physical volume gets `lvm
//! vgchange`, RAID members get `mdadm --incremental`, and the device the
//! tool makes (its uevent scripted to arrive only once the tool ran) is
//! linked, probed and mounted as the root; btrfs members are registered
//! with the kernel; `root=ZFS=` imports the pool and mounts the dataset.

use super::machine::{Bus, Fs, Machine};
use crate::failure::End;
use crate::platform::fake::{Ev, Step};
use alpinit_sys::Call;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

/// Member images are 4 MiB: blkid (and the prober) skip RAID and LVM
/// metadata on floppy-sized devices.
const MEMBER_SIZE: u64 = 4 << 20;

fn grow(m: &Machine, dev: &str) {
    for p in [format!("/dev/{dev}"), format!("/.images/{dev}")] {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(m.path(&p))
            .expect("image");
        f.set_len(MEMBER_SIZE).expect("size");
    }
}

fn put(m: &Machine, dev: &str, at: u64, bytes: &[u8]) {
    for p in [format!("/dev/{dev}"), format!("/.images/{dev}")] {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(m.path(&p))
            .expect("image");
        f.write_all_at(bytes, at).expect("write");
    }
}

/// LVM's label CRC: CRC-32 (reflected 0xEDB88320) seeded, not inverted.
fn lvm_crc(data: &[u8]) -> u32 {
    let mut crc = 0xF597_A6CFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// A virtio disk `name` that probes as an LVM physical volume.
fn lvm_pv(m: &Machine, name: &str) {
    m.block(name, Bus::Virtio, Fs::Blank, &[]);
    grow(m, name);
    let mut label = [0u8; 512];
    label[..8].copy_from_slice(b"LABELONE");
    label[8..16].copy_from_slice(&1u64.to_le_bytes());
    label[20..24].copy_from_slice(&32u32.to_le_bytes());
    label[24..32].copy_from_slice(b"LVM2 001");
    label[32..64].copy_from_slice(b"abcdefghijklmnopqrstuvwxyz012345");
    let crc = lvm_crc(&label[20..]);
    label[16..20].copy_from_slice(&crc.to_le_bytes());
    put(m, name, 512, &label);
}

/// A virtio disk `name` that probes as a v0.90 RAID member of array `uuid`.
fn raid_member(m: &Machine, name: &str, uuid: u32) {
    m.block(name, Bus::Virtio, Fs::Blank, &[]);
    grow(m, name);
    let at = MEMBER_SIZE - 0x10000;
    let mut sb = [0u8; 64];
    sb[..4].copy_from_slice(&0xA92B_4EFCu32.to_le_bytes());
    sb[8..12].copy_from_slice(&90u32.to_le_bytes());
    sb[20..24].copy_from_slice(&uuid.to_le_bytes());
    put(m, name, at, &sb);
}

/// A virtio disk `name` that probes as a member of btrfs `fsid`.
fn btrfs_member(m: &Machine, name: &str, fsid: u8) {
    m.block(name, Bus::Virtio, Fs::Blank, &[]);
    grow(m, name);
    put(m, name, 0x10000 + 0x20, &[fsid; 16]);
    put(m, name, 0x10000 + 0x40, b"_BHRfS_M");
    put(m, name, 0x10000 + 0x12B, b"POOL");
}

/// An ext4 device-mapper or md device holding an installed root, hidden
/// until `reveal` runs; its `change` uevent (what dm and md send once the
/// device is usable) is returned. `dm` gives `/sys/.../dm/{name,uuid}`.
fn assembled_root(
    m: &Machine,
    devname: &str,
    devno: (u32, u32),
    dm: Option<(&str, &str)>,
) -> (alpinit_uevent::Uevent, impl FnOnce() + Send + 'static) {
    std::fs::remove_dir_all(m.path("/sysroot")).unwrap();
    m.mkdir("/sysroot");
    let add = m.block_devno(
        devname,
        Bus::Virtio,
        Fs::Ext4 { label: "ROOT" },
        &[("sbin/init", b"#!")],
        Some(devno),
    );
    let init = m.path(&format!("/.contents/{devname}/sbin/init"));
    std::fs::set_permissions(init, std::fs::Permissions::from_mode(0o755)).unwrap();
    if let Some((name, uuid)) = dm {
        m.write(&format!("/sys{}/dm/name", add.devpath), format!("{name}\n"));
        m.write(&format!("/sys{}/dm/uuid", add.devpath), format!("{uuid}\n"));
    }
    let change = alpinit_uevent::parse(
        format!(
            "change@{}\0ACTION=change\0SUBSYSTEM=block\0DEVNAME={devname}\0MAJOR={}\0MINOR={}\0DEVTYPE=disk\0",
            add.devpath, devno.0, devno.1
        )
        .as_bytes(),
    )
    .expect("uevent");
    let reveal = m.hide(&add);
    (change, reveal)
}

/// `reveal` and the uevent run when a spawned program satisfies `when`.
fn on_tool(
    m: &Machine,
    when: impl Fn(&[String]) -> bool + Send + Sync + 'static,
    ev: alpinit_uevent::Uevent,
    reveal: impl FnOnce() + Send + 'static,
) {
    let send = m.fake.script_sender();
    let pending = Mutex::new(Some((ev, reveal)));
    m.fake.on_spawn(move |argv, _| {
        if when(argv) {
            if let Some((ev, reveal)) = pending.lock().unwrap().take() {
                reveal();
                send(Step::Event(ev));
            }
        }
        Ok(0)
    });
}

fn tool_args(boot: &super::record::Boot, tool: &str) -> Vec<Vec<String>> {
    boot.spawned()
        .into_iter()
        .filter(|a| a[0] == tool)
        .map(|a| a[1..].to_vec())
        .collect()
}

const LV_UUID: &str = "LVM-0123456789abcdef0123456789abcdefFEDCBA9876543210FEDCBA9876543210";

/// Regression: an LVM root (`setup-disk -L`) never booted: no `lvm
/// vgchange` ran and `/dev/vg0/lv_root` could not match.
#[test]
fn lvm_root_is_activated_linked_and_mounted() {
    let m = Machine::new();
    m.cmdline("root=/dev/vg0/lv_root panic=1");
    m.exe("/sbin/lvm");
    lvm_pv(&m, "vda");
    let (ev, reveal) = assembled_root(&m, "dm-0", (253, 0), Some(("vg0-lv_root", LV_UUID)));
    on_tool(&m, |a| a[0].ends_with("/sbin/lvm"), ev, reveal);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(
        tool_args(&boot, "/sbin/lvm"),
        vec![crate::assemble::LVM_ARGS.map(str::to_owned).to_vec()]
    );
    for link in ["/dev/vg0/lv_root", "/dev/mapper/vg0-lv_root"] {
        assert_eq!(
            std::fs::read_link(m.path(link)).unwrap(),
            Path::new("../dm-0"),
            "{link}"
        );
    }
    let root = boot.mount_on("/sysroot").expect("root mounted");
    assert_eq!(root.source, "/dev/dm-0");
    assert_eq!(root.fstype.as_deref(), Some("ext4"));
}

#[test]
fn root_by_dev_mapper_name_matches_the_dm_device() {
    let m = Machine::new();
    m.cmdline("root=/dev/mapper/vg0-lv_root panic=1");
    m.exe("/sbin/lvm");
    lvm_pv(&m, "vda");
    let (ev, reveal) = assembled_root(&m, "dm-0", (253, 0), Some(("vg0-lv_root", LV_UUID)));
    on_tool(&m, |a| a[0].ends_with("/sbin/lvm"), ev, reveal);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(boot.mount_on("/sysroot").unwrap().source, "/dev/dm-0");
}

#[test]
fn lvm_member_without_lvm_in_the_image_names_the_tool_and_the_feature() {
    let m = Machine::new();
    m.cmdline("root=/dev/vg0/lv_root panic=1");
    lvm_pv(&m, "vda");
    let boot = m.boot();
    assert_eq!(boot.end, End::GaveUp);
    assert!(tool_args(&boot, "/sbin/lvm").is_empty());
    boot.assert_kmsg(
        "/dev/vda is an LVM physical volume but the image has no /sbin/lvm (mkinitfs feature lvm)",
    );
}

/// A hung lvm is killed at the limit and the boot goes on to its failure
/// policy instead of waiting forever.
#[test]
fn lvm_killed_at_its_limit_is_reported() {
    let m = Machine::new();
    m.cmdline("root=/dev/vg0/lv_root panic=1");
    m.exe("/sbin/lvm");
    lvm_pv(&m, "vda");
    m.fake.on_spawn(|_, _| Ok(137));
    let boot = m.boot();
    assert_eq!(boot.end, End::GaveUp);
    boot.assert_kmsg("was still running after 30s and was killed");
}

/// Regression: an md RAID1 root never booted: no mdadm ran.
#[test]
fn raid1_root_is_assembled_from_both_members_and_mounted() {
    let m = Machine::new();
    m.cmdline("root=/dev/md0 panic=1");
    m.exe("/sbin/mdadm");
    raid_member(&m, "vda", 7);
    raid_member(&m, "vdb", 7);
    let (ev, reveal) = assembled_root(&m, "md0", (9, 0), None);
    on_tool(
        &m,
        |a| a.last().map(String::as_str) == Some("/dev/vdb"),
        ev,
        reveal,
    );
    let boot = m.boot();
    boot.assert_clean_switch();
    let inc = |d: &str| {
        vec![
            "--incremental".to_owned(),
            "--quiet".to_owned(),
            d.to_owned(),
        ]
    };
    assert_eq!(
        tool_args(&boot, "/sbin/mdadm"),
        vec![inc("/dev/vda"), inc("/dev/vdb")],
        "each member once, no degraded start"
    );
    assert_eq!(boot.mount_on("/sysroot").unwrap().source, "/dev/md0");
}

/// A RAID1 with a member missing starts degraded once the wait for the
/// root ends, not from its first member as soon as it is seen.
#[test]
fn raid1_with_a_member_missing_starts_degraded_when_the_wait_ends() {
    let m = Machine::new();
    m.cmdline("root=/dev/md0 panic=1");
    m.exe("/sbin/mdadm");
    raid_member(&m, "vda", 7);
    m.write("/proc/mdstat", "Personalities : [raid1]\nmd0 : inactive vda[0](S)\n      1024 blocks\n\nunused devices: <none>\n");
    let (ev, reveal) = assembled_root(&m, "md0", (9, 0), None);
    on_tool(&m, |a| a.iter().any(|x| x == "--scan"), ev, reveal);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(
        tool_args(&boot, "/sbin/mdadm"),
        vec![
            vec![
                "--incremental".to_owned(),
                "--quiet".to_owned(),
                "/dev/vda".to_owned()
            ],
            ["--incremental", "--run", "--scan", "--quiet"]
                .map(str::to_owned)
                .to_vec(),
        ]
    );
    boot.assert_kmsg("RAID arrays incomplete: starting them degraded");
    assert_eq!(boot.mount_on("/sysroot").unwrap().source, "/dev/md0");
}

/// Regression: both members of a two-device btrfs carry the file system's
/// UUID, and `root=UUID=` called them an ambiguous clone; neither was
/// registered with the kernel, so the mount could not find the second.
#[test]
fn btrfs_over_two_disks_registers_both_and_mounts_by_uuid() {
    // With a named driver too: a root already there is still registered.
    for named in ["", " modules=btrfs"] {
        btrfs_over_two_disks(named);
    }
}

fn btrfs_over_two_disks(named: &str) {
    let m = Machine::new();
    m.cmdline(&format!(
        "root=UUID=05050505-0505-0505-0505-050505050505 rootfstype=btrfs panic=1{named}"
    ));
    std::fs::remove_dir_all(m.path("/sysroot")).unwrap();
    m.mkdir("/sysroot");
    btrfs_member(&m, "vda", 5);
    btrfs_member(&m, "vdb", 5);
    m.exe("/.contents/vda/sbin/init");
    m.fake.set_contents("/dev/vda", &m.path("/.contents/vda"));
    let boot = m.boot();
    assert_eq!(boot.end, End::SwitchedRoot, "{}", boot.console);
    for d in ["vda", "vdb"] {
        assert!(
            boot.has(&Ev::Sys(Call::BtrfsScan {
                device: m.path(&format!("/dev/{d}"))
            })),
            "{d} registered"
        );
    }
    let scan = boot
        .index(|e| matches!(e, Ev::Sys(Call::BtrfsScan { .. })))
        .unwrap();
    let mount = boot
        .index(|e| matches!(e, Ev::Sys(Call::Mount { target, .. }) if target.ends_with("sysroot")))
        .unwrap();
    assert!(scan < mount);
    let root = boot.mount_on("/sysroot").unwrap();
    assert_eq!(
        (root.source.as_str(), root.fstype.as_deref()),
        ("/dev/vda", Some("btrfs"))
    );
}

/// A btrfs root that is there once the named drivers are loaded is still
/// registered by discovery (a sibling may be on its way), not mounted
/// straight away.
#[test]
fn btrfs_root_with_a_named_driver_is_registered_before_it_is_mounted() {
    let m = Machine::new();
    m.cmdline("root=UUID=05050505-0505-0505-0505-050505050505 modules=btrfs panic=1");
    std::fs::remove_dir_all(m.path("/sysroot")).unwrap();
    m.mkdir("/sysroot");
    btrfs_member(&m, "vda", 5);
    m.exe("/.contents/vda/sbin/init");
    m.fake.set_contents("/dev/vda", &m.path("/.contents/vda"));
    let boot = m.boot();
    assert_eq!(boot.end, End::SwitchedRoot, "{}", boot.console);
    assert!(boot.has(&Ev::Sys(Call::BtrfsScan {
        device: m.path("/dev/vda")
    })));
}

/// Regression: `root=ZFS=` was refused.
#[test]
fn zfs_root_imports_the_pool_loads_the_key_and_mounts_the_dataset() {
    let m = Machine::new();
    m.cmdline("root=ZFS=tank/ROOT/alpine panic=1");
    m.exe("/usr/sbin/zpool");
    m.exe("/usr/sbin/zfs");
    m.fake
        .set_spawn_output("list -H -o feature@encryption tank", "active\n");
    m.fake.set_spawn_output(
        "get -H -o value encryptionroot tank/ROOT/alpine",
        "tank/ROOT\n",
    );
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(
        tool_args(&boot, "/usr/sbin/zpool"),
        vec![
            ["import", "-N", "-d", "/dev", "tank"]
                .map(str::to_owned)
                .to_vec(),
            ["list", "-H", "-o", "feature@encryption", "tank"]
                .map(str::to_owned)
                .to_vec(),
        ]
    );
    assert_eq!(
        tool_args(&boot, "/usr/sbin/zfs"),
        vec![
            [
                "get",
                "-H",
                "-o",
                "value",
                "encryptionroot",
                "tank/ROOT/alpine"
            ]
            .map(str::to_owned)
            .to_vec(),
            ["load-key", "tank/ROOT"].map(str::to_owned).to_vec(),
        ]
    );
    let root = boot.mount_on("/sysroot").unwrap();
    assert_eq!(root.source, "tank/ROOT/alpine");
    assert_eq!(root.fstype.as_deref(), Some("zfs"));
    assert!(root.flags.contains(alpinit_sys::MountFlags::RDONLY));
    assert_eq!(
        std::fs::read_link(m.path("/etc/mtab")).unwrap(),
        Path::new("/proc/mounts")
    );
}

#[test]
fn zfs_root_unencrypted_with_zfs_force_needs_no_key() {
    let m = Machine::new();
    m.cmdline("root=ZFS=tank zfs_force=1 panic=1");
    m.exe("/usr/sbin/zpool");
    m.exe("/usr/sbin/zfs");
    m.fake
        .set_spawn_output("list -H -o feature@encryption tank", "disabled\n");
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(
        tool_args(&boot, "/usr/sbin/zpool")[0],
        ["import", "-N", "-d", "/dev", "-f", "tank"]
            .map(str::to_owned)
            .to_vec()
    );
    assert!(tool_args(&boot, "/usr/sbin/zfs").is_empty());
}

#[test]
fn zfs_root_without_zpool_names_the_feature() {
    let m = Machine::new();
    m.cmdline("root=ZFS=tank/root panic=1");
    let boot = m.boot();
    assert_eq!(boot.end, End::GaveUp);
    boot.assert_console("root=ZFS=tank/root: pool tank is a ZFS pool but the image has no /usr/sbin/zpool (mkinitfs feature zfs)");
}

/// A multi-device btrfs boot medium is mounted and scanned once, through
/// its first member, not once per member.
#[test]
fn btrfs_medium_over_two_disks_is_mounted_once() {
    let m = Machine::new();
    btrfs_member(&m, "vda", 6);
    btrfs_member(&m, "vdb", 6);
    for d in ["vda", "vdb"] {
        m.write(&format!("/.contents/{d}/apks/.boot_repository"), "");
        m.fake
            .set_contents(&format!("/dev/{d}"), &m.path(&format!("/.contents/{d}")));
    }
    let boot = m.boot();
    assert_eq!(boot.end, End::SwitchedRoot, "{}", boot.console);
    let media: Vec<String> = boot
        .mounts()
        .into_iter()
        .filter(|x| x.target.starts_with("/media/vd"))
        .map(|x| x.target)
        .collect();
    assert_eq!(media, ["/media/vda"]);
    for d in ["vda", "vdb"] {
        assert!(boot.has(&Ev::Sys(Call::BtrfsScan {
            device: m.path(&format!("/dev/{d}"))
        })));
    }
}

/// Diskless mode: a boot repository on an LVM volume is found once lvm
/// activated it, mounted at `/media/dm-0` as nlplug-findfs mounts it.
#[test]
fn boot_repository_on_an_lvm_volume_is_found_after_activation() {
    let m = Machine::new();
    m.exe("/sbin/lvm");
    lvm_pv(&m, "vda");
    let add = m.block_devno(
        "dm-0",
        Bus::Virtio,
        Fs::Ext4 { label: "DATA" },
        &[super::machine::BOOT_REPOSITORY],
        Some((253, 0)),
    );
    m.write(&format!("/sys{}/dm/name", add.devpath), "vg0-data\n");
    m.write(
        &format!("/sys{}/dm/uuid", add.devpath),
        format!("{LV_UUID}\n"),
    );
    let change = alpinit_uevent::parse(
        format!(
            "change@{}\0ACTION=change\0SUBSYSTEM=block\0DEVNAME=dm-0\0MAJOR=253\0MINOR=0\0DEVTYPE=disk\0",
            add.devpath
        )
        .as_bytes(),
    )
    .expect("uevent");
    let reveal = m.hide(&add);
    on_tool(&m, |a| a[0].ends_with("/sbin/lvm"), change, reveal);
    let boot = m.boot();
    assert_eq!(boot.end, End::SwitchedRoot, "{}", boot.console);
    assert_eq!(tool_args(&boot, "/sbin/lvm").len(), 1);
    let media = boot.mount_on("/media/dm-0").expect("LV mounted");
    assert_eq!(media.source, "/dev/dm-0");
    assert_eq!(
        std::fs::read_link(m.path("/dev/vg0/data")).unwrap(),
        Path::new("../dm-0")
    );
    boot.assert_kmsg("found boot repository");
}
