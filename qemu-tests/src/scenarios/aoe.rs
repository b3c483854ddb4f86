//! ATA over Ethernet on the real kernel: the interface named by
//! `aoe_iflist=` comes up with `aoe_mtu=` once its driver (virtio_net,
//! loaded by coldplug) brings it, and `aoe` is loaded with `aoe_iflist=`.
//! QEMU's user network carries no raw Ethernet to an AoE target, so no
//! target is booted from here: the whole-boot tests
//! (`crates/init/src/tests/whole_boot/aoe.rs`) cover the discover writes
//! and the wait for a target.

use std::path::Path;

use anyhow::Result;

use super::boot_media::{booted, disk_and_nic};
use super::checks::*;
use super::*;

pub(super) fn scenarios() -> [Scenario; 1] {
    [Scenario {
        name: "aoe-interface",
        about: "aoe=yes aoe_iflist=eth0 aoe_mtu=9000: eth0 up with MTU 9000 once virtio_net brings it, aoe loaded with aoe_iflist=eth0",
        image: ImageKind::Assemble,
        setup: setup_aoe_interface,
        check: check_aoe_interface,
    }]
}

const HOST_AOE: &str = "alpinit-aoe";
const MTU: &str = "/sys/class/net/eth0/mtu";
const OPERSTATE: &str = "/sys/class/net/eth0/operstate";
const FLAGS: &str = "/sys/class/net/eth0/flags";
const IFLIST: &str = "/sys/module/aoe/parameters/aoe_iflist";

fn setup_aoe_interface(assets: &Assets, dir: &Path) -> Result<Setup> {
    disk_and_nic(
        assets,
        dir,
        ImageKind::Assemble,
        "aoe=yes aoe_iflist=eth0 aoe_mtu=9000",
        HOST_AOE,
        &[MTU, OPERSTATE, FLAGS, IFLIST],
    )
}

fn check_aoe_interface(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_AOE);
        let content = |path| report.content(path).map(str::trim);
        if content(MTU) != Some("9000") {
            failures.push(format!("{MTU}: {:?}, want 9000", content(MTU)));
        }
        // IFF_UP: the link was set up (operstate follows the carrier).
        let up = content(FLAGS)
            .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
            .is_some_and(|f| f & 1 == 1);
        if !up {
            failures.push(format!("{FLAGS}: {:?}, want IFF_UP", content(FLAGS)));
        }
        if content(IFLIST) != Some("eth0") {
            failures.push(format!("{IFLIST}: {:?}, want eth0", content(IFLIST)));
        }
        if !outcome.log.contains("alpinit: aoe: eth0 up") {
            failures.push("no `aoe: eth0 up` line in the kernel log".into());
        }
    })
}
