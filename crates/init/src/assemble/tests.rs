use super::dm::{links, split_lvm_name};
use super::*;
use std::path::Path;

#[test]
fn lvm_dm_names_split_as_dmsetup_splitname() {
    for (name, want) in [
        ("vg0-lv_root", Some(("vg0", "lv_root"))),
        ("my--vg-root", Some(("my-vg", "root"))),
        ("vg-my--lv", Some(("vg", "my-lv"))),
        ("a--b--c-d--e", Some(("a-b-c", "d-e"))),
        ("noseparator", None),
        ("only--escaped", None),
        ("-lv", None),
        ("vg-", None),
    ] {
        let got = split_lvm_name(name);
        assert_eq!(
            got.as_ref().map(|(v, l)| (v.as_str(), l.as_str())),
            want,
            "{name}"
        );
    }
}

fn dm_event(
    layout: &Layout,
    n: u32,
    env: &str,
    sys: Option<(&str, &str)>,
) -> alpinit_uevent::Uevent {
    let devpath = format!("/devices/virtual/block/dm-{n}");
    if let Some((name, uuid)) = sys {
        let dir = layout.path(&format!("/sys{devpath}/dm"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(dir.join("uuid"), format!("{uuid}\n")).unwrap();
    }
    alpinit_uevent::parse(
        format!("change@{devpath}\0ACTION=change\0SUBSYSTEM=block\0DEVNAME=dm-{n}\0MAJOR=253\0MINOR={n}\0{env}")
            .as_bytes(),
    )
    .unwrap()
}

const LV: &str = "LVM-0123456789abcdef0123456789abcdefFEDCBA9876543210FEDCBA9876543210";

#[test]
fn dm_links_from_sysfs_and_from_the_uevent() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let read = |l: &str| std::fs::read_link(layout.path(l)).unwrap();
    // Name and UUID from sysfs: an LVM LV gets both links.
    let ev = dm_event(&layout, 0, "", Some(("vg0-lv_root", LV)));
    assert_eq!(links(&layout, &ev, "dm-0").len(), 2);
    assert_eq!(read("/dev/mapper/vg0-lv_root"), Path::new("../dm-0"));
    assert_eq!(read("/dev/vg0/lv_root"), Path::new("../dm-0"));
    // From the uevent: a LUKS mapping is only /dev/mapper/NAME.
    let ev = dm_event(
        &layout,
        1,
        "DM_NAME=cryptroot\0DM_UUID=CRYPT-LUKS2-abc-cryptroot\0",
        None,
    );
    assert_eq!(links(&layout, &ev, "dm-1").len(), 1);
    assert_eq!(read("/dev/mapper/cryptroot"), Path::new("../dm-1"));
    // An LVM-internal volume (thin pool data) has no /dev/VG/LV link.
    let ev = dm_event(
        &layout,
        2,
        "",
        Some(("vg0-pool_tdata", &format!("{LV}-tdata"))),
    );
    assert_eq!(links(&layout, &ev, "dm-2").len(), 1);
    assert!(!layout.path("/dev/vg0/pool_tdata").exists());
    // DM_VG_NAME / DM_LV_NAME win when the uevent has them.
    let ev = dm_event(
        &layout,
        3,
        "DM_NAME=x--y-z\0DM_VG_NAME=x-y\0DM_LV_NAME=z\0",
        None,
    );
    links(&layout, &ev, "dm-3");
    assert_eq!(read("/dev/x-y/z"), Path::new("../dm-3"));
    // Not a dm device, or no name: nothing.
    assert!(links(&layout, &ev, "sda1").is_empty());
    let ev = dm_event(&layout, 4, "", None);
    assert!(links(&layout, &ev, "dm-4").is_empty());
}

#[test]
fn hostile_dm_names_stay_inside_dev() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let ev = dm_event(
        &layout,
        0,
        "DM_NAME=../../etc/x\0DM_VG_NAME=..\0DM_LV_NAME=../passwd\0",
        None,
    );
    let made = links(&layout, &ev, "dm-0");
    assert_eq!(made.len(), 2);
    for l in &made {
        assert!(l.starts_with(layout.dev()), "{}", l.display());
        assert_eq!(
            l.components().count(),
            layout.dev().components().count() + 2
        );
    }
    assert!(!tmp.path().join("etc").exists());
}

#[test]
fn a_real_node_is_never_replaced_by_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    std::fs::create_dir_all(layout.path("/dev/mapper")).unwrap();
    std::fs::write(layout.path("/dev/mapper/root"), "node").unwrap();
    let ev = dm_event(&layout, 0, "DM_NAME=root\0", None);
    links(&layout, &ev, "dm-0");
    assert_eq!(
        std::fs::read_to_string(layout.path("/dev/mapper/root")).unwrap(),
        "node"
    );
}

#[test]
fn zfs_import_arguments_as_upstream() {
    assert_eq!(
        zfs::import_args("tank/ROOT/alpine", false),
        ["import", "-N", "-d", "/dev", "tank"]
    );
    assert_eq!(
        zfs::import_args("tank", true),
        ["import", "-N", "-d", "/dev", "-f", "tank"]
    );
}

#[test]
fn zfs_force_from_the_command_line_word() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    std::fs::create_dir_all(layout.proc()).unwrap();
    for (cmdline, want) in [
        ("root=ZFS=tank zfs_force=1\n", true),
        ("root=ZFS=tank zfs_force=0\n", false),
        ("root=ZFS=tank\n", false),
    ] {
        std::fs::write(layout.proc().join("cmdline"), cmdline).unwrap();
        assert_eq!(zfs::force_requested(&layout), want, "{cmdline}");
    }
}

#[test]
fn degraded_start_only_with_members_and_an_inactive_array() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    std::fs::create_dir_all(layout.proc()).unwrap();
    let fake = crate::platform::fake::Fake::default();
    let p = fake.platform();
    let mut a = Assembler::default();
    std::fs::write(layout.proc().join("mdstat"), "md0 : inactive vda[0](S)\n").unwrap();
    assert!(!a.start_degraded(&p, &layout), "no member seen");
    a.md_members = 1;
    std::fs::write(
        layout.proc().join("mdstat"),
        "md0 : active raid1 vdb[1] vda[0]\n",
    )
    .unwrap();
    assert!(!a.start_degraded(&p, &layout), "every array running");
    std::fs::write(layout.proc().join("mdstat"), "md0 : inactive vda[0](S)\n").unwrap();
    assert!(a.start_degraded(&p, &layout));
    assert!(!a.start_degraded(&p, &layout), "once");
    assert_eq!(fake.events().len(), 1);
}
