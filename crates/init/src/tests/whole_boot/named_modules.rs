//! Root mode with drivers named by `modules=` or the image's `/etc/modules`:
//! once they are loaded, a root they brought is mounted without a sweep of
//! every bus (`root_mode::brought_by_named_modules`); otherwise, and where
//! the root needs discovery's work, the usual coldplug runs.

use super::machine::Machine;
use super::root_mode::root_disk;

/// The input device's modalias matches `evbug` and `dummy` in the test
/// index: loaded only when coldplug ran.
const INPUT: &str = "input:b0019v0000p0001e0000-e0,1,k74,ramlsfw";

fn machine(cmdline: &str, etc_modules: Option<&str>) -> Machine {
    let m = Machine::new();
    m.cmdline(cmdline);
    m.add_module("kernel/drivers/block/virtio_blk.ko", &[], None);
    if let Some(text) = etc_modules {
        m.write("/etc/modules", text);
    }
    m.modalias_device(
        "input",
        "/devices/LNXSYSTM:00/LNXPWRBN:00/input/input0",
        INPUT,
    );
    root_disk(&m, "vda1", "ROOT");
    m
}

#[test]
fn a_root_the_named_driver_brought_is_mounted_without_coldplug() {
    // (command line, /etc/modules, coldplug expected)
    let cases: &[(&str, Option<&str>, bool)] = &[
        ("root=/dev/vda1 modules=virtio_blk", None, false),
        ("root=LABEL=ROOT modules=virtio_blk,ext4", None, false),
        (
            "root=/dev/vda1",
            Some("# the VM's disk\nvirtio_blk\n"),
            false,
        ),
        // Nothing named: the root may need any driver.
        ("root=/dev/vda1", None, true),
        ("root=/dev/vda1 rootfstype=ext4", None, true),
        ("root=/dev/vda1", Some("# nothing\n"), true),
        // The recovery shell opens after the wait: keyboards need coldplug.
        ("root=/dev/vda1 modules=virtio_blk single", None, true),
    ];
    for &(cmdline, etc_modules, coldplug) in cases {
        let m = machine(cmdline, etc_modules);
        let boot = m.boot();
        if !cmdline.contains("single") {
            // (`single`'s shell ends in the recording platform's halt.)
            boot.assert_clean_switch();
        }
        let root = boot.mount_on("/sysroot").expect("root mounted");
        assert_eq!(root.source, "/dev/vda1", "{cmdline}");
        let mods = boot.insmods();
        assert_eq!(
            boot.kmsg.contains("coldplug: "),
            coldplug,
            "{cmdline} {etc_modules:?}: {}",
            boot.kmsg
        );
        assert_eq!(mods.contains(&"evbug".to_owned()), coldplug, "{mods:?}");
        if etc_modules.is_some_and(|t| t.contains("virtio_blk")) || cmdline.contains("modules=") {
            assert!(mods.contains(&"virtio_blk".to_owned()), "{mods:?}");
        }
    }
}

/// The named driver did not bring the root (it is on another disk, still
/// to come): discovery runs and finds it.
#[test]
fn a_root_the_named_driver_did_not_bring_is_waited_for_as_usual() {
    let m = machine("root=/dev/vdb1 modules=virtio_blk", None);
    let ev = m.disk("vdb1", "OTHER", &[("sbin/init", b"#!")]);
    m.hotplug(2, ev, false);
    let boot = m.boot();
    let root = boot.mount_on("/sysroot").expect("root mounted");
    assert_eq!(root.source, "/dev/vdb1");
    assert!(boot.kmsg.contains("coldplug: "), "{}", boot.kmsg);
}
