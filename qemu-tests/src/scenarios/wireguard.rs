//! `wireguard=` on the real kernel: after DHCP on the user NIC, the
//! tunnel `wg0` is created, configured by Debian's `wg setconf` from the
//! image's `/etc/wireguard/initrd.conf` ([`WIREGUARD_CONF`], in the
//! Assemble image), brought up and given an IPv4 and an IPv6 address.

use std::path::Path;

use anyhow::Result;

use super::boot_media::{booted, disk_and_nic};
use super::checks::*;
use super::*;

/// The image's tunnel configuration: a test key (not a secret), the listen
/// port the check finds in `/proc/net/udp`, and one peer.
pub const WIREGUARD_CONF: &str = "\
[Interface]
PrivateKey = iB/s4pkz6ba9lVGJIYtTdTsApCUGE2Lgyx6o92iwbms=
ListenPort = 51820

[Peer]
PublicKey = 8YQleEZpxdv9CcMCe/avEEtYmvGTMLiGMG6JgqE/kmE=
AllowedIPs = 10.200.0.0/24
Endpoint = 10.0.2.2:51820
";

pub(super) fn scenarios() -> [Scenario; 1] {
    [Scenario {
        name: "wireguard-tunnel",
        about: "wireguard=wg0;10.200.0.1/24,fd00::1/64: after DHCP, wg0 made, configured by wg setconf (listening on 51820), up, with both addresses",
        image: ImageKind::Assemble,
        setup: setup_wireguard_tunnel,
        check: check_wireguard_tunnel,
    }]
}

const HOST_WG: &str = "alpinit-wireguard";
const FLAGS: &str = "/sys/class/net/wg0/flags";
const UDP: &str = "/proc/net/udp";
const FIB: &str = "/proc/net/fib_trie";
const INET6: &str = "/proc/net/if_inet6";

fn setup_wireguard_tunnel(assets: &Assets, dir: &Path) -> Result<Setup> {
    disk_and_nic(
        assets,
        dir,
        ImageKind::Assemble,
        "wireguard=wg0;10.200.0.1/24,fd00::1/64",
        HOST_WG,
        &[FLAGS, UDP, FIB, INET6],
    )
}

fn check_wireguard_tunnel(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_WG);
        let content = |path| report.content(path).unwrap_or_default();
        let up = u32::from_str_radix(content(FLAGS).trim().trim_start_matches("0x"), 16)
            .is_ok_and(|f| f & 1 == 1);
        if !up {
            failures.push(format!("{FLAGS}: {:?}, want IFF_UP", content(FLAGS)));
        }
        // 51820 = 0xCA6C: the listen port `wg setconf` gave the tunnel.
        if !content(UDP).contains(":CA6C ") {
            failures.push(format!("no UDP socket on port 51820 in {UDP}"));
        }
        if !content(FIB).contains("10.200.0.1") {
            failures.push(format!("10.200.0.1 not in {FIB}"));
        }
        let v6 = content(INET6)
            .lines()
            .any(|l| l.starts_with("fd000000000000000000000000000001 ") && l.ends_with("wg0"));
        if !v6 {
            failures.push(format!("fd00::1 on wg0 not in {INET6}"));
        }
        for line in [
            "running /usr/bin/wg setconf wg0 /etc/wireguard/initrd.conf",
            "alpinit: wireguard: wg0 up",
        ] {
            if !outcome.log.contains(line) {
                failures.push(format!("no {line:?} in the kernel log"));
            }
        }
        // Alpine's line for a tunnel that could not be made.
        if outcome.log.contains("Failed to setup wireguard tunnel.") {
            failures.push("the boot said the tunnel failed".into());
        }
    })
}
