//! `nbd=`: the network configured, the `nbd` module with `max_part=8`,
//! each server attached to the next `/dev/nbdN` before the root or the
//! boot media are looked for (upstream's `setup_nbd`).

use super::machine::{Bus, Fs, Machine};
use super::root_mode::root_disk;
use crate::platform::fake::Ev;
use std::net::{Ipv4Addr, SocketAddr};

const NBD: &str = "kernel/drivers/block/nbd.ko";

/// A machine with a NIC and a DHCP server, the nbd module in its index,
/// and `/dev/nbd0` (size 0: nothing attached) whose export, once
/// attached, is an ext4 root: its sysfs entry appears then, as the
/// kernel's change event and partition scan make it.
fn machine(cmdline: &str) -> Machine {
    let m = Machine::new();
    // panic=: a root that never comes ends the boot instead of the shell.
    m.cmdline(&format!("{cmdline} panic=1"));
    m.add_module(NBD, &[], None);
    m.dhcp_nic("eth0", 2);
    m.sysroot_init();
    m
}

/// The export: an ext4 root with /sbin/init on nbd0, revealed when
/// server `at` attaches it as index 0.
fn export_root(m: &Machine, at: SocketAddr) {
    std::fs::remove_dir_all(m.path("/sysroot")).unwrap();
    m.mkdir("/sysroot");
    let ev = m.block(
        "nbd0",
        Bus::Virtual,
        Fs::Ext4 { label: "NBDROOT" },
        &[("sbin/init", b"#!")],
    );
    use std::os::unix::fs::PermissionsExt;
    let init = m.path("/.contents/nbd0/sbin/init");
    std::fs::set_permissions(init, std::fs::Permissions::from_mode(0o755)).unwrap();
    let reveal = std::sync::Mutex::new(Some(m.hide(&ev)));
    // The node exists, empty, once the module is loaded.
    m.write("/dev/nbd0", "");
    m.fake.on_nbd_attach(move |server, index| {
        if server != at || index != 0 {
            return Err(alpinit_nbd::NbdError::Connect {
                addr: server,
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            });
        }
        if let Some(reveal) = reveal.lock().unwrap().take() {
            reveal();
        }
        Ok(2048 * 512)
    });
}

fn server() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 2, 2), 10809))
}

#[test]
fn nbd_root_is_attached_after_dhcp_and_mounted() {
    let m = machine("root=/dev/nbd0 nbd=10.0.2.2:10809 ip=dhcp");
    export_root(&m, server());
    let boot = m.boot();
    boot.assert_clean_switch();
    let root = boot.mount_on("/sysroot").expect("root mounted");
    assert_eq!(root.source, "/dev/nbd0");
    let at = |wanted: &Ev| boot.events.iter().position(|e| e == wanted);
    let dhcp = at(&Ev::Dhcp("eth0".into())).expect("DHCP");
    let nbd = at(&Ev::Insmod("nbd".into())).expect("nbd inserted");
    let attach = at(&Ev::NbdAttach(server(), 0)).expect("attached");
    assert!(dhcp < attach && nbd < attach, "{:?}", boot.events);
    assert!(boot.has(&Ev::ModuleParams("nbd".into(), "max_part=8".into())));
    boot.assert_kmsg("nbd0: 10.0.2.2:10809, 1048576 bytes");
    // The network is configured once.
    let dhcps = boot
        .events
        .iter()
        .filter(|e| matches!(e, Ev::Dhcp(_)))
        .count();
    assert_eq!(dhcps, 1);
}

#[test]
fn nbd_servers_count_only_those_attached_and_names_are_looked_up() {
    // The first server refuses; the second, by name, becomes nbd0.
    let m = machine("root=/dev/nbd0 nbd=10.0.2.9:10809,nbd.lan:10809,bad ip=dhcp");
    m.fake.name("nbd.lan", Ipv4Addr::new(10, 0, 2, 2));
    export_root(&m, server());
    let boot = m.boot();
    boot.assert_clean_switch();
    let refused = SocketAddr::from((Ipv4Addr::new(10, 0, 2, 9), 10809));
    assert!(boot.has(&Ev::NbdAttach(refused, 0)));
    assert!(boot.has(&Ev::Resolve("nbd.lan".into())));
    assert!(boot.has(&Ev::NbdAttach(server(), 0)));
    boot.assert_console("ERROR: nbd=10.0.2.9:10809 on /dev/nbd0");
    boot.assert_kmsg("nbd: \"bad\" is not SERVER:PORT: skipped");
    assert!(
        !boot.console.contains(crate::nbd::FAILED),
        "{}",
        boot.console
    );
    assert_eq!(boot.mount_on("/sysroot").unwrap().source, "/dev/nbd0");
}

#[test]
fn nbd_without_any_device_says_alpines_message_and_the_boot_goes_on() {
    // (command line, what else the machine lacks)
    for (cmdline, no_node) in [
        // Every server refuses.
        ("root=/dev/vda1 nbd=10.0.2.9:10809 ip=dhcp", false),
        // The module made no /dev/nbd0: nothing is tried.
        ("root=/dev/vda1 nbd=10.0.2.2:10809 ip=dhcp", true),
        // An unknown name.
        ("root=/dev/vda1 nbd=nowhere:10809 ip=dhcp", false),
    ] {
        let m = machine(cmdline);
        root_disk(&m, "vda1", "ROOT");
        if !no_node {
            m.write("/dev/nbd0", "");
        }
        let boot = m.boot();
        boot.assert_clean_switch();
        boot.assert_console(crate::nbd::FAILED);
        let attaches = boot
            .events
            .iter()
            .filter(|e| matches!(e, Ev::NbdAttach(..)))
            .count();
        let want = usize::from(!no_node && !cmdline.contains("nowhere"));
        assert_eq!(attaches, want, "{cmdline}: {:?}", boot.events);
        assert_eq!(boot.mount_on("/sysroot").unwrap().source, "/dev/vda1");
    }
}

#[test]
fn diskless_boot_finds_its_apkovl_on_the_nbd_export() {
    let m = machine("nbd=10.0.2.2:10809 ip=dhcp");
    let ev = m.block(
        "nbd0",
        Bus::Virtual,
        Fs::Ext4 { label: "NBD" },
        &[(
            "host.apkovl.tar.gz",
            &super::machine::overlay(&[("etc/hostname", b"nbdhost\n")]),
        )],
    );
    let reveal = std::sync::Mutex::new(Some(m.hide(&ev)));
    m.write("/dev/nbd0", "");
    m.fake.on_nbd_attach(move |_, _| {
        if let Some(reveal) = reveal.lock().unwrap().take() {
            reveal();
        }
        Ok(1 << 20)
    });
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_kmsg("Loading user settings from /media/nbd0/host.apkovl.tar.gz: ok.");
    assert_eq!(m.read("/sysroot/etc/hostname"), "nbdhost\n");
    let dhcps = boot
        .events
        .iter()
        .filter(|e| matches!(e, Ev::Dhcp(_)))
        .count();
    assert_eq!(dhcps, 1, "the network is configured once");
}

/// The NIC's driver loads before the network is configured (Alpine's
/// script configures it before its coldplug, so a driver that is a module
/// must be in `modules=`): the buses are swept first.
#[test]
fn nbd_loads_the_nic_driver_before_dhcp() {
    let m = machine("root=/dev/nbd0 nbd=10.0.2.2:10809 ip=dhcp");
    m.modalias_device(
        "pci",
        "/devices/pci0000:00/0000:00:03.0",
        "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
    );
    export_root(&m, server());
    let boot = m.boot();
    boot.assert_clean_switch();
    let at = |wanted: &Ev| boot.events.iter().position(|e| e == wanted);
    let nic = at(&Ev::Insmod("e1000".into())).expect("e1000 inserted");
    let dhcp = at(&Ev::Dhcp("eth0".into())).expect("DHCP");
    assert!(nic < dhcp, "{:?}", boot.events);
}
