use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::{sweep, sweep_block, sweep_buses, Action, Uevent, MAX_DEPTH};

const PCI: &str = "devices/pci0000:00";
const VIRTIO_PCI: &str = "devices/pci0000:00/0000:00:04.0";
const VIRTIO: &str = "devices/pci0000:00/0000:00:04.0/virtio1";
const VDA: &str = "devices/pci0000:00/0000:00:04.0/virtio1/block/vda";
const VDA1: &str = "devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda1";

fn write(sys: &Path, relative: &str, contents: &str) {
    let path = sys.join(relative);
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    fs::write(path, contents).expect("write");
}

fn link(sys: &Path, relative: &str, target: &str) {
    let path = sys.join(relative);
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    symlink(target, path).expect("symlink");
}

/// A small sysfs: one virtio disk with a partition, a few odd entries, and class links.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = dir.path();
    fs::create_dir_all(sys.join("bus/pci")).expect("mkdir");
    fs::create_dir_all(sys.join("class/block")).expect("mkdir");

    write(sys, &format!("{PCI}/uevent"), "");
    write(sys, &format!("{VIRTIO_PCI}/uevent"),
          "DRIVER=virtio-pci\nPCI_CLASS=10000\nMODALIAS=pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n");
    link(sys, &format!("{VIRTIO_PCI}/subsystem"), "../../../bus/pci");
    write(
        sys,
        &format!("{VIRTIO}/uevent"),
        "DRIVER=virtio_blk\nMODALIAS=virtio:d00000002v00001AF4\n",
    );
    link(
        sys,
        &format!("{VIRTIO}/subsystem"),
        "../../../../bus/virtio",
    );
    // `block/` itself has no uevent file but must still be descended into.
    write(
        sys,
        &format!("{VDA}/uevent"),
        "MAJOR=253\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\nDISKSEQ=1\n",
    );
    link(
        sys,
        &format!("{VDA}/subsystem"),
        "../../../../../../class/block",
    );
    write(sys, &format!("{VDA}/size"), "2048\n");
    write(
        sys,
        &format!("{VDA1}/uevent"),
        "MAJOR=253\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nACTION=remove\nDEVPATH=/x\n",
    );
    link(
        sys,
        &format!("{VDA1}/subsystem"),
        "../../../../../../../class/block",
    );
    fs::create_dir_all(sys.join(format!("{VDA}/power"))).expect("mkdir");

    // A loop back to an ancestor and a link to another device must not be walked.
    link(sys, &format!("{VIRTIO}/loop"), "..");
    link(sys, &format!("{VIRTIO_PCI}/driver_dir"), "../../virtual/x");
    // Hostile or broken entries are skipped.
    write(
        sys,
        "devices/virtual/evil/uevent",
        "DEVNAME=../etc/shadow\n",
    );
    write(sys, "devices/virtual/huge/uevent", "MAJOR=99999999999\n");
    fs::create_dir_all(sys.join("devices/virtual/dir_uevent/uevent")).expect("mkdir");
    link(
        sys,
        "devices/virtual/link_uevent/uevent",
        "../../pci0000:00/0000:00:04.0/uevent",
    );
    write(sys, "devices/virtual/x/uevent", "DEVNAME=x\n");

    link(sys, "class/block/vda1", &format!("../../{VDA1}"));
    link(sys, "class/block/vda", &format!("../../{VDA}"));
    link(sys, "class/block/self", "self");
    link(sys, "class/block/outside", "/");
    link(sys, "class/block/bus", "../../bus/pci");
    dir
}

fn devpaths(events: &[Uevent]) -> Vec<&str> {
    events.iter().map(|event| event.devpath.as_str()).collect()
}

#[test]
fn sweep_reports_devices_in_path_order_without_following_links() {
    let dir = fixture();
    let events = sweep(dir.path());
    let expected: Vec<String> = [PCI, VIRTIO_PCI, VIRTIO, VDA, VDA1, "devices/virtual/x"]
        .iter()
        .map(|path| format!("/{path}"))
        .collect();
    assert_eq!(devpaths(&events), expected);
    assert!(events.iter().all(|event| event.action == Action::Add));
}

#[test]
fn sweep_fills_fields_from_uevent_files_and_subsystem_links() {
    let dir = fixture();
    let events = sweep(dir.path());
    let find = |path: &str| {
        events
            .iter()
            .find(|event| event.devpath == format!("/{path}"))
            .unwrap_or_else(|| panic!("{path} swept"))
    };
    let partition = find(VDA1);
    assert_eq!(partition.subsystem.as_deref(), Some("block"));
    assert_eq!(partition.devtype.as_deref(), Some("partition"));
    assert_eq!(partition.devname.as_deref(), Some("vda1"));
    assert_eq!(
        (partition.major, partition.minor, partition.partn),
        (Some(253), Some(1), Some(1))
    );
    // The file cannot override what the sweep itself knows.
    assert_eq!(partition.get("ACTION"), Some("add"));
    assert_eq!(partition.get("DEVPATH"), Some(format!("/{VDA1}").as_str()));
    assert_eq!(partition.seqnum, None);

    let pci = find(VIRTIO_PCI);
    assert_eq!(pci.subsystem.as_deref(), Some("pci"));
    assert_eq!(pci.get("DRIVER"), Some("virtio-pci"));
    assert_eq!(
        pci.modalias.as_deref(),
        Some("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00")
    );

    let bridge = find(PCI);
    assert_eq!(bridge.subsystem, None);
    assert_eq!(bridge.env.len(), 2);
}

#[test]
fn sweep_stops_at_the_depth_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut relative = String::from("devices");
    for _ in 0..MAX_DEPTH + 8 {
        relative.push_str("/d");
        write(dir.path(), &format!("{relative}/uevent"), "DEVTYPE=x\n");
    }
    let events = sweep(dir.path());
    assert_eq!(events.len(), MAX_DEPTH);
    // "/devices/d/…/d" splits into "", "devices" and one "d" per level.
    let deepest = events
        .last()
        .map(|event| event.devpath.split('/').count() - 2);
    assert_eq!(deepest, Some(MAX_DEPTH));
}

#[test]
fn sweep_of_a_missing_tree_is_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(sweep(dir.path()).is_empty());
    assert!(sweep_block(dir.path()).is_empty());
}

#[test]
fn sweep_block_follows_class_links_into_devices_only() {
    let dir = fixture();
    let events = sweep_block(dir.path());
    assert_eq!(devpaths(&events), [format!("/{VDA}"), format!("/{VDA1}")]);
    assert_eq!(events[0].devtype.as_deref(), Some("disk"));
    assert_eq!(events[1].subsystem.as_deref(), Some("block"));
}

#[test]
fn sweep_buses_reports_bus_devices_and_block_devices_only() {
    let dir = fixture();
    let sys = dir.path();
    fs::create_dir_all(sys.join("bus/pci/devices")).expect("mkdir");
    fs::create_dir_all(sys.join("bus/virtio/devices")).expect("mkdir");
    link(
        sys,
        "bus/pci/devices/0000:00:04.0",
        &format!("../../../{VIRTIO_PCI}"),
    );
    link(
        sys,
        "bus/virtio/devices/virtio0",
        &format!("../../../{VIRTIO}"),
    );
    link(sys, "bus/virtio/devices/escape", "../../../../etc");
    link(sys, "bus/virtio/devices/abs", "/devices/x");
    let events = sweep_buses(sys);
    assert_eq!(
        devpaths(&events),
        [
            format!("/{VIRTIO_PCI}").as_str(),
            format!("/{VIRTIO}").as_str(),
            format!("/{VDA}").as_str(),
            format!("/{VDA1}").as_str(),
        ]
    );
    assert_eq!(
        events[1].modalias.as_deref(),
        Some("virtio:d00000002v00001AF4")
    );
    assert_eq!(events[3].devname.as_deref(), Some("vda1"));
}
