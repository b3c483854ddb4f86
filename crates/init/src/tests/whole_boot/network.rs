//! Network boots: DHCP, static `ip=`, URL overlays, repositories, BOOTIF.

use super::machine::{overlay, Machine};
use crate::platform::fake::Ev;

#[test]
fn network_boot_dhcp_sets_the_address_and_writes_resolv_conf_into_the_new_root() {
    let m = Machine::new();
    m.cmdline("ip=dhcp");
    m.dhcp_nic("eth0", 2);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(boot.has(&Ev::Dhcp("eth0".into())));
    assert!(boot.has(&Ev::Apply("eth0 10.0.2.15/24".into())));
    boot.assert_console(" * Obtaining IP via DHCP (eth0): ok.");
    assert!(m.read("/etc/resolv.conf").contains("nameserver 10.0.2.3"));
    assert!(m
        .read("/sysroot/etc/resolv.conf")
        .contains("nameserver 10.0.2.3"));
}

#[test]
fn network_boot_fetches_the_apkovl_url_with_the_mac_and_applies_it() {
    let m = Machine::new();
    m.cmdline("ip=dhcp apkovl=http://10.0.2.2/{MAC}.apkovl.tar.gz");
    m.dhcp_nic("eth0", 2);
    let ovl = overlay(&[("etc/hostname", b"net\n")]);
    m.fake.on_fetch(move |_| Ok(ovl.clone()));
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(boot.has(&Ev::Fetch(
        "http://10.0.2.2/02:00:00:00:00:02.apkovl.tar.gz".into()
    )));
    assert_eq!(m.read("/sysroot/etc/hostname"), "net\n");
    let dhcp = boot.index(|e| matches!(e, Ev::Dhcp(_)));
    let fetch = boot.index(|e| matches!(e, Ev::Fetch(_)));
    assert!(dhcp < fetch);
}

#[test]
fn network_boot_with_static_ip_sets_the_address_without_dhcp() {
    let m = Machine::new();
    m.cmdline("ip=192.168.1.5::192.168.1.1:255.255.255.0::eth0:none");
    m.nic("eth0", 2, false, true);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(!boot.events.iter().any(|e| matches!(e, Ev::Dhcp(_))));
    assert!(
        boot.has(&Ev::Apply("eth0 192.168.1.5/24".into())),
        "{:?}",
        boot.events
    );
    boot.assert_console(" * Setting IP (eth0): ok.");
}

#[test]
fn ip_off_configures_nothing() {
    let m = Machine::new();
    m.cmdline("ip=off apkovl=http://10.0.2.2/x.apkovl.tar.gz");
    m.nic("eth0", 2, true, true);
    let boot = m.boot();
    assert!(!boot
        .events
        .iter()
        .any(|e| matches!(e, Ev::Dhcp(_) | Ev::Apply(_))));
    assert_eq!(boot.end, crate::failure::End::SwitchedRoot);
}

#[test]
fn bootif_picks_the_second_nic() {
    let m = Machine::new();
    m.cmdline("ip=dhcp BOOTIF=01-02-00-00-00-00-03");
    m.nic("eth0", 2, true, true);
    m.dhcp_nic("eth1", 3);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(boot.has(&Ev::Dhcp("eth1".into())), "{:?}", boot.events);
    assert!(!boot.has(&Ev::Dhcp("eth0".into())));
}

#[test]
fn a_bad_ip_option_is_reported_and_the_boot_goes_on() {
    let m = Machine::new();
    m.cmdline("ip=1.2.3");
    let boot = m.boot();
    boot.assert_console("ERROR: ip=1.2.3: ");
    assert!(!boot.events.iter().any(|e| matches!(e, Ev::Dhcp(_))));
}
