//! `wireguard=IF;ADDR,..[;CONF]` (`crate::wireguard`): upstream's case
//! `wireguard`, the configuration run through the image's `wg`, and the
//! failures Alpine reports as `Failed to setup wireguard tunnel.`

use super::machine::{overlay, Machine};
use crate::platform::fake::Ev;

const WIREGUARD_MODULE: &str = "kernel/drivers/net/wireguard/wireguard.ko";

fn wg_machine(cmdline: &str) -> Machine {
    Machine::with_module(cmdline, WIREGUARD_MODULE)
}

fn spawned(events: &[Ev], argv0_suffix: &str) -> Vec<Vec<String>> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Spawn(argv) if argv[0].ends_with(argv0_suffix) => Some(argv[1..].to_vec()),
            _ => None,
        })
        .collect()
}

/// Upstream's `initramfs_init_wireguard`: `modprobe wireguard` and `ip
/// link set dev wg0 up` (here the link is made and raised over
/// rtnetlink, and its address added).
#[test]
fn wireguard() {
    let m = wg_machine("wireguard=wg0;192.168.0.1/24");
    let boot = m.boot();
    assert!(
        boot.insmods().iter().any(|x| x == "wireguard"),
        "{:?}",
        boot.events
    );
    let add = boot
        .index(|e| *e == Ev::LinkAdd("wg0".into(), "wireguard".into()))
        .unwrap_or_else(|| panic!("no link add: {:?}", boot.events));
    let up = boot
        .index(|e| *e == Ev::LinkUp("wg0".into(), true))
        .unwrap_or_else(|| panic!("wg0 not up: {:?}", boot.events));
    let address = boot
        .index(|e| *e == Ev::Address("wg0".into(), "192.168.0.1/24".into()))
        .unwrap_or_else(|| panic!("no address: {:?}", boot.events));
    assert!(add < up && up < address, "{:?}", boot.events);
    boot.assert_kmsg("no /usr/bin/wg in this initramfs");
    assert!(!boot.console.contains(crate::wireguard::FAILED));
}

/// With the image's `wg` and its configuration, `wg setconf` runs between
/// the link's creation and its coming up; IPv6 addresses too; the tunnel
/// is made after the network is configured on the NIC.
#[test]
fn wireguard_runs_wg_setconf_with_the_named_configuration() {
    let m = wg_machine("wireguard=wg1;10.9.0.2/24,fd00::2/64;/etc/wireguard/wg1.conf");
    m.exe("/usr/bin/wg");
    m.write("/etc/wireguard/wg1.conf", "[Interface]\n");
    m.dhcp_nic("eth0", 2);
    m.disk("vda1", "DATA", &[("host.apkovl.tar.gz", &overlay(&[]))]);
    let boot = m.boot();
    assert_eq!(
        spawned(&boot.events, "/usr/bin/wg"),
        [["setconf", "wg1", "/etc/wireguard/wg1.conf"]],
        "{:?}",
        boot.events
    );
    let setconf = boot
        .index(|e| matches!(e, Ev::Spawn(a) if a[0].ends_with("/usr/bin/wg")))
        .expect("setconf");
    let dhcp = boot.index(|e| *e == Ev::Dhcp("eth0".into())).expect("dhcp");
    let add = boot
        .index(|e| *e == Ev::LinkAdd("wg1".into(), "wireguard".into()))
        .expect("add");
    let up = boot
        .index(|e| *e == Ev::LinkUp("wg1".into(), true))
        .expect("up");
    assert!(
        dhcp < add && add < setconf && setconf < up,
        "{:?}",
        boot.events
    );
    assert!(boot.has(&Ev::Address("wg1".into(), "fd00::2/64".into())));
    boot.assert_clean_switch();
}

/// Alpine's `Failed to setup wireguard tunnel.` with the reason: no module
/// in the image, or a name no interface can have (nothing is created then);
/// an address that is not one is named and skipped.
#[test]
fn wireguard_failures_are_said_and_the_boot_goes_on() {
    let m = Machine::new();
    m.cmdline("wireguard=wg0;10.0.0.1/24");
    m.sysroot_init();
    let boot = m.boot();
    boot.assert_console(crate::wireguard::FAILED);
    boot.assert_console("module wireguard");
    assert!(!boot.events.iter().any(|e| matches!(e, Ev::LinkAdd(..))));

    let m = wg_machine("wireguard=../wg;10.0.0.1/24");
    let boot = m.boot();
    boot.assert_console(crate::wireguard::FAILED);
    boot.assert_console("\"../wg\" cannot name an interface");
    assert!(!boot.events.iter().any(|e| matches!(e, Ev::LinkAdd(..))));

    let m = wg_machine("wireguard=wg0;10.0.0.1/24,10.0.0/8,fd00::1");
    let boot = m.boot();
    boot.assert_kmsg("\"10.0.0/8\" is not ADDRESS[/PREFIX]");
    assert!(boot.has(&Ev::Address("wg0".into(), "10.0.0.1/24".into())));
    assert!(boot.has(&Ev::Address("wg0".into(), "fd00::1/128".into())));
    assert!(!boot.console.contains(crate::wireguard::FAILED));
}

/// Root mode: the network and the tunnel after the root is found.
#[test]
fn wireguard_in_root_mode() {
    let m = wg_machine("root=/dev/vda1 wireguard=wg0;10.0.0.1/24");
    m.dhcp_nic("eth0", 2);
    m.block(
        "vda1",
        super::machine::Bus::Virtio,
        super::machine::Fs::Ext4 { label: "ROOT" },
        &[],
    );
    let boot = m.boot();
    boot.assert_clean_switch();
    let dhcp = boot.index(|e| *e == Ev::Dhcp("eth0".into())).expect("dhcp");
    let up = boot
        .index(|e| *e == Ev::LinkUp("wg0".into(), true))
        .expect("up");
    assert!(dhcp < up, "{:?}", boot.events);
}
