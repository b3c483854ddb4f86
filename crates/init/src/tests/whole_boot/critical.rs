//! The critical path: coldplug loads what can lead to boot media and
//! leaves the rest (sound, pointers, network drivers without networking)
//! to the new root (`modules::deferral`).

use super::machine::{overlay, Machine};
use crate::platform::fake::Ev;
use alpinit_sys::Call;

const SOUND: &str = "pci:v00001274d00005000sv00001AF4sd00001100bc04sc01i00";
const MOUSE: &str = "serio:ty01pr00id00ex00";
const E1000: &str = "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00";

/// The machine's module index plus a sound card's and a mouse's modules,
/// and those devices, an e1000 NIC and a virtio disk with an overlay.
fn machine(cmdline: &str) -> Machine {
    let m = Machine::new();
    m.cmdline(cmdline);
    for (path, alias) in [
        (
            "kernel/sound/pci/snd-ens1370.ko",
            "pci:v00001274d00005000sv*sd*bc*sc*i*",
        ),
        (
            "kernel/drivers/input/mouse/psmouse.ko",
            "serio:ty01pr*id*ex*",
        ),
    ] {
        m.add_module(path, &[], Some(alias));
    }
    m.modalias_device("pci", "/devices/pci0000:00/0000:00:04.0", SOUND);
    m.modalias_device("serio", "/devices/platform/i8042/serio1", MOUSE);
    m.modalias_device("pci", "/devices/pci0000:00/0000:00:03.0", E1000);
    m.modalias_device(
        "virtio",
        "/devices/pci0000:00/0000:00:05.0/virtio2",
        "virtio:d00000002v00001AF4",
    );
    let ovl = overlay(&[("etc/hostname", b"box\n")]);
    m.disk("vda1", "DATA", &[("host.apkovl.tar.gz", &ovl)]);
    m
}

#[test]
fn coldplug_loads_storage_and_fs_and_leaves_sound_pointer_and_nic_to_the_new_root() {
    let m = machine("debug_init");
    let boot = m.boot();
    boot.assert_clean_switch();
    let mods = boot.insmods();
    for wanted in ["virtio_ring", "virtio_blk", "ext4"] {
        assert!(mods.contains(&wanted.to_owned()), "{wanted}: {mods:?}");
    }
    for deferred in ["snd_ens1370", "psmouse", "e1000"] {
        assert!(!mods.contains(&deferred.to_owned()), "{deferred}: {mods:?}");
    }
    boot.assert_kmsg(&format!(
        "left for the new root (sound): {SOUND}: snd_ens1370"
    ));
    boot.assert_kmsg(&format!(
        "left for the new root (pointer and event input): {MOUSE}: psmouse"
    ));
    boot.assert_kmsg(&format!("left for the new root (network): {E1000}: e1000"));
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
}

#[test]
fn a_network_boot_loads_the_nic_driver_and_still_defers_sound() {
    let m = machine("ip=dhcp");
    m.dhcp_nic("eth0", 2);
    let boot = m.boot();
    boot.assert_clean_switch();
    let mods = boot.insmods();
    assert!(mods.contains(&"e1000".to_owned()), "{mods:?}");
    assert!(!mods.contains(&"snd_ens1370".to_owned()), "{mods:?}");
    // The NIC went ahead of nothing it needs: storage still loads too.
    assert!(mods.contains(&"virtio_blk".to_owned()), "{mods:?}");
}

#[test]
fn modules_and_etc_modules_load_deferrable_modules_all_the_same() {
    let m = machine("modules=snd-ens1370");
    m.write("/etc/modules", "psmouse\ne1000\n");
    let boot = m.boot();
    boot.assert_clean_switch();
    let mods = boot.insmods();
    for name in ["snd_ens1370", "psmouse", "e1000", "virtio_blk", "ext4"] {
        assert!(mods.contains(&name.to_owned()), "{name}: {mods:?}");
    }
}

const PIIX_IDE: &str = "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80";
const XHCI: &str = "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30";

/// The IDE controller is swept first (PCI address order), yet the USB host
/// controller's chain loads first and alone: a stick takes long to appear
/// after its controller binds, and xhci loaded beside ata_piix would wait
/// out libata's port probe (`alpinit_kmod::slow_to_settle`).
#[test]
fn usb_host_controller_loads_before_an_ide_controller_swept_ahead_of_it() {
    let m = Machine::new();
    m.add_module("kernel/drivers/ata/libata.ko", &[], None);
    m.add_module(
        "kernel/drivers/ata/ata_piix.ko",
        &["kernel/drivers/ata/libata.ko"],
        Some("pci:v00008086d00007010sv*sd*bc*sc*i*"),
    );
    m.add_module("kernel/drivers/usb/core/usbcore.ko", &[], None);
    m.add_module(
        "kernel/drivers/usb/host/xhci-pci.ko",
        &["kernel/drivers/usb/core/usbcore.ko"],
        Some("pci:v00001B36d0000000Dsv*sd*bc*sc*i*"),
    );
    m.modalias_device("pci", "/devices/pci0000:00/0000:00:01.1", PIIX_IDE);
    m.modalias_device("pci", "/devices/pci0000:00/0000:00:02.0", XHCI);
    let ovl = overlay(&[("etc/hostname", b"box\n")]);
    m.disk("vda1", "DATA", &[("host.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let mods = boot.insmods();
    let pos = |n: &str| {
        mods.iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n}: {mods:?}"))
    };
    assert!(pos("usbcore") < pos("libata"), "{mods:?}");
    assert!(pos("xhci_pci") < pos("libata"), "{mods:?}");
    assert!(pos("xhci_pci") < pos("ata_piix"), "{mods:?}");
}

/// While usb-storage holds a bound stick back (its one-second
/// `delay_use`), the stick's disk driver, its file system and the
/// modloop's loop and squashfs load: all of them before the partition
/// shows up and is mounted. The wait is logged once.
#[test]
fn a_settling_usb_stick_gets_its_disk_driver_and_the_modloop_modules_meanwhile() {
    let m = Machine::new();
    m.add_module("kernel/drivers/scsi/sd_mod.ko", &[], None);
    let ovl = overlay(&[("etc/hostname", b"box\n")]);
    m.settling_stick(3, "sda1", &[("host.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let at = |wanted: &Ev| boot.events.iter().position(|e| e == wanted);
    let mounted = boot
        .events
        .iter()
        .position(
            |e| matches!(e, Ev::Sys(Call::Mount { target, .. }) if target.ends_with("media/sda1")),
        )
        .expect("sda1 mounted");
    for module in ["sd_mod", "vfat", "loop", "squashfs"] {
        let loaded = at(&Ev::Insmod(module.into()))
            .unwrap_or_else(|| panic!("{module}: {:?}", boot.insmods()));
        assert!(loaded < mounted, "{module}: {:?}", boot.events);
    }
    assert_eq!(
        boot.kmsg.matches("waiting: usb-storage interface").count(),
        1,
        "{}",
        boot.kmsg
    );
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
}

/// A machine whose image has the USB stick drivers; with HOST an xhci
/// controller whose driver coldplug loads, with HUB its root hub (a USB
/// device, `DEVTYPE=usb_device` on the `usb` bus). No disk.
fn usb_machine(host: bool, hub: bool) -> Machine {
    let m = Machine::new();
    m.add_module("kernel/drivers/usb/core/usbcore.ko", &[], None);
    for path in [
        "kernel/drivers/usb/storage/usb-storage.ko",
        "kernel/drivers/usb/storage/uas.ko",
    ] {
        m.add_module(path, &["kernel/drivers/usb/core/usbcore.ko"], None);
    }
    if host {
        m.add_module(
            "kernel/drivers/usb/host/xhci-pci.ko",
            &["kernel/drivers/usb/core/usbcore.ko"],
            Some("pci:v00001B36d0000000Dsv*sd*bc*sc*i*"),
        );
        m.modalias_device("pci", "/devices/pci0000:00/0000:00:02.0", XHCI);
    }
    if hub {
        const HUB: &str = "/devices/pci0000:00/0000:00:02.0/usb1";
        m.write(
            &format!("/sys{HUB}/uevent"),
            "MAJOR=189\nMINOR=0\nDEVNAME=bus/usb/001/001\nDEVTYPE=usb_device\nDRIVER=usb\n",
        );
        m.mkdir("/sys/bus/usb/devices");
        std::os::unix::fs::symlink(
            "../../../../bus/usb",
            m.path(&format!("/sys{HUB}/subsystem")),
        )
        .expect("subsystem link");
        std::os::unix::fs::symlink(
            format!("../../..{HUB}"),
            m.path("/sys/bus/usb/devices/usb1"),
        )
        .expect("bus link");
    }
    m
}

/// [`usb_machine`] with a disk holding an overlay (diskless mode).
fn usb_diskless(host: bool, hub: bool) -> Machine {
    let m = usb_machine(host, hub);
    let ovl = overlay(&[("etc/hostname", b"box\n")]);
    m.disk("vda1", "DATA", &[("host.apkovl.tar.gz", &ovl)]);
    m
}

/// With a USB host controller up (its root hub there), the stick drivers
/// load before any stick shows up, so that one is bound as soon as the
/// hub enumerates it (`Discovery::preload_usb_storage`), and after the
/// host controller's own driver; without a USB device nothing asks for
/// them. (The wait for a host controller driver still loading is pinned
/// by the loader's queue test `slow_to_settle_requests_run_first_and_alone`:
/// this machine's loader inserts in order.)
#[test]
fn a_usb_host_controller_gets_the_stick_drivers_before_any_stick() {
    for host in [true, false] {
        let boot = usb_diskless(host, true).boot();
        boot.assert_clean_switch();
        let mods = boot.insmods();
        let pos = |n: &str| mods.iter().position(|x| x == n);
        for module in ["usb_storage", "uas"] {
            let at = pos(module).unwrap_or_else(|| panic!("{module} ({host}): {mods:?}"));
            if host {
                assert!(pos("xhci_pci") < Some(at), "{module}: {mods:?}");
            }
        }
    }
    for host in [true, false] {
        let boot = usb_diskless(host, false).boot();
        boot.assert_clean_switch();
        let mods = boot.insmods();
        for module in ["usb_storage", "uas"] {
            assert!(!mods.contains(&module.to_owned()), "{module}: {mods:?}");
        }
    }
}

/// Root mode: once the root device is found, a USB stick cannot matter
/// any more, and the stick drivers are not loaded for one.
#[test]
fn root_mode_with_its_root_found_loads_no_stick_drivers() {
    let m = usb_machine(false, true);
    m.cmdline("root=/dev/vda1");
    super::root_mode::root_disk(&m, "vda1", "ROOT");
    let boot = m.boot();
    boot.assert_clean_switch();
    let mods = boot.insmods();
    for module in ["usb_storage", "uas"] {
        assert!(!mods.contains(&module.to_owned()), "{module}: {mods:?}");
    }
}
