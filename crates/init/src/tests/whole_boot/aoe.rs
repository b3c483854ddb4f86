//! ATA over Ethernet (`aoe=`, `aoe_iflist=`, `aoe_mtu=`), `crate::aoe`:
//! upstream's case `aoe`, and what alpinit adds (an interface raised when
//! its driver brings it, a bounded wait for a named target).

use super::machine::{overlay, Machine};
use crate::platform::fake::{Ev, Step};
use std::path::PathBuf;
use std::time::Duration;

const AOE_MODULE: &str = "kernel/drivers/block/aoe/aoe.ko";

/// A machine with the aoe module in its index and a root to hand over to.
fn aoe_machine(cmdline: &str) -> Machine {
    Machine::with_module(cmdline, AOE_MODULE)
}

/// `aoe=0.1` on eth0, the module's control file there, and a disk with an
/// apkovl (a first finding, so that only the target holds the wait).
fn target_machine() -> Machine {
    let m = aoe_machine("aoe=0.1 aoe_iflist=eth0");
    m.nic("eth0", 2, false, true);
    m.write("/dev/etherd/discover", "");
    m.disk("vda1", "DATA", &[("host.apkovl.tar.gz", &overlay(&[]))]);
    m
}

/// The add event of network interface NAME (its driver just bound).
fn nic_added(name: &str) -> alpinit_uevent::Uevent {
    let datagram = format!(
        "add@/devices/pci0000:00/0000:00:03.0/net/{name}\0SUBSYSTEM=net\0INTERFACE={name}\0IFINDEX=2\0"
    );
    alpinit_uevent::parse(datagram.as_bytes()).expect("valid uevent")
}

fn discover_writes(events: &[Ev], m: &Machine) -> usize {
    let control = m.path("/dev/etherd/discover");
    events
        .iter()
        .filter(|e| matches!(e, Ev::SysfsWrite(p, v) if *p == control && v == "discover"))
        .count()
}

/// Upstream's `initramfs_init_aoe`: `ip link set dev eth0 up`, `ip link
/// set dev eth0 mtu 9000`, `modprobe aoe aoe_iflist=eth0`.
#[test]
fn aoe() {
    let m = aoe_machine("aoe=yes aoe_iflist=eth0 aoe_mtu=9000");
    m.nic("eth0", 2, false, true);
    let boot = m.boot();
    assert!(
        boot.has(&Ev::LinkUp("eth0".into(), true)),
        "{:?}",
        boot.events
    );
    assert!(boot.has(&Ev::Mtu("eth0".into(), 9000)), "{:?}", boot.events);
    assert!(
        boot.insmods().iter().any(|x| x == "aoe"),
        "{:?}",
        boot.events
    );
    assert!(
        boot.has(&Ev::ModuleParams("aoe".into(), "aoe_iflist=eth0".into())),
        "{:?}",
        boot.events
    );
}

/// An interface already up with the MTU asked for is left alone; one not
/// in `aoe_iflist=` is never touched.
#[test]
fn aoe_leaves_a_ready_interface_and_unlisted_ones_alone() {
    let m = aoe_machine("aoe=yes aoe_iflist=eth0 aoe_mtu=9000");
    m.nic("eth0", 2, true, true);
    m.write("/sys/class/net/eth0/flags", "0x1003\n");
    m.write("/sys/class/net/eth0/mtu", "9000\n");
    m.nic("eth1", 3, false, true);
    let boot = m.boot();
    assert!(
        !boot
            .events
            .iter()
            .any(|e| matches!(e, Ev::LinkUp(..) | Ev::Mtu(..))),
        "{:?}",
        boot.events
    );
    assert!(boot.insmods().iter().any(|x| x == "aoe"));
}

/// Alpine's init brings the listed interfaces up before its coldplug, so
/// a NIC whose driver is a module was missed. Here the interface is raised
/// when it appears, and a `discover` follows so the targets answer on it.
#[test]
fn aoe_raises_an_interface_that_appears_during_discovery_then_discovers() {
    let m = aoe_machine("aoe=yes aoe_iflist=eth1");
    m.write("/dev/etherd/discover", "");
    m.disk("vda1", "DATA", &[("host.apkovl.tar.gz", &overlay(&[]))]);
    // The interface is not in sysfs when discovery starts; it appears with
    // the first live uevent (as its driver, loaded by coldplug, binds).
    m.fake.script([
        Step::Run(Box::new({
            let sys = m.path("/sys/class/net/eth1");
            move || std::fs::create_dir_all(sys).expect("eth1 in sysfs")
        })),
        Step::Event(nic_added("eth1")),
    ]);
    let boot = m.boot();
    let up = boot
        .index(|e| *e == Ev::LinkUp("eth1".into(), true))
        .unwrap_or_else(|| panic!("eth1 not raised: {:?}", boot.events));
    let discover = boot
        .index(|e| matches!(e, Ev::SysfsWrite(p, _) if p.ends_with("etherd/discover")))
        .unwrap_or_else(|| panic!("no discover: {:?}", boot.events));
    assert!(up < discover, "{:?}", boot.events);
    boot.assert_clean_switch();
}

/// `aoe=0.1`: the boot waits for `/dev/etherd/e0.1`, writing a `discover`
/// a second, and goes on as soon as it exists.
#[test]
fn aoe_waits_for_a_named_target_and_rediscovers_each_second() {
    let m = target_machine();
    let node: PathBuf = m.path("/dev/etherd/e0.1");
    let mut steps: Vec<Step> = (0..30).map(|_| Step::Pause).collect();
    steps.push(Step::Run(Box::new(move || {
        std::fs::write(node, "").expect("target node");
    })));
    m.fake.script(steps);
    let boot = m.boot();
    boot.assert_kmsg("waiting: AoE target ");
    boot.assert_kmsg("etherd/e0.1 not discovered yet");
    assert!(
        m.exists("/dev/etherd/e0.1"),
        "the boot ended before the target"
    );
    // 30 waits of the loop's 100 ms tick: about three seconds.
    let writes = discover_writes(&boot.events, &m);
    assert!((2..=6).contains(&writes), "{writes} discover writes");
    assert!(m.fake.elapsed() < Duration::from_secs(10));
    boot.assert_clean_switch();
}

/// A target that never answers holds the boot only within discovery's
/// bounds (Alpine's loop had none), and the boot goes on with what it found.
#[test]
fn aoe_target_that_never_appears_is_waited_for_within_bounds() {
    let m = target_machine();
    let boot = m.boot();
    boot.assert_kmsg("etherd/e0.1 not discovered yet");
    let elapsed = m.fake.elapsed();
    assert!(
        elapsed >= Duration::from_secs(9) && elapsed < Duration::from_secs(30),
        "{elapsed:?}"
    );
    assert!(discover_writes(&boot.events, &m) >= 8);
    boot.assert_clean_switch();
}

/// Targets that are not `shelf.slot` are named and never waited for, and a
/// non-numeric MTU is reported instead of set.
#[test]
fn aoe_rejects_target_paths_and_bad_mtus_with_a_message() {
    let m = aoe_machine("aoe=../../sda aoe_iflist=eth0 aoe_mtu=jumbo");
    m.nic("eth0", 2, false, true);
    m.disk("vda1", "DATA", &[("host.apkovl.tar.gz", &overlay(&[]))]);
    let boot = m.boot();
    boot.assert_kmsg("aoe: target \"../../sda\" is not SHELF.SLOT");
    boot.assert_kmsg("aoe_mtu=jumbo: not a number");
    assert!(!boot.events.iter().any(|e| matches!(e, Ev::Mtu(..))));
    assert!(boot.has(&Ev::LinkUp("eth0".into(), true)));
    assert!(m.fake.elapsed() < Duration::from_secs(5), "no wait for it");
    boot.assert_clean_switch();
}

/// The NIC's driver is not left for the new root when AoE needs the link
/// (network drivers are deferred when the boot has no use for them).
#[test]
fn aoe_loads_the_nic_driver_that_would_otherwise_wait_for_the_new_root() {
    for (cmdline, loaded) in [("aoe=yes aoe_iflist=eth0", true), ("", false)] {
        let m = aoe_machine(cmdline);
        m.modalias_device(
            "pci",
            "/devices/pci0000:00/0000:00:03.0",
            "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
        );
        m.disk("vda1", "DATA", &[("host.apkovl.tar.gz", &overlay(&[]))]);
        let boot = m.boot();
        assert_eq!(
            boot.insmods().iter().any(|x| x == "e1000"),
            loaded,
            "{cmdline:?}: {:?}",
            boot.insmods()
        );
    }
}
