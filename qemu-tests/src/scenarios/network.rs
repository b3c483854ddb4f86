//! Network boots (issue 3): PXE with pxelinux, apkovl URLs with `{MAC}` and
//! `{UUID}`, HTTPS with the right and a wrong CA, a static `ip=`, a network
//! without DHCP, and `BOOTIF` choosing the second of two NICs.
//!
//! The overlays are served by a [`FileServer`] on 127.0.0.1 that lives as
//! long as the boot (it is owned by the stop closure, which the scenario
//! runner drops when QEMU has ended); it logs request targets to
//! `http-requests.log` beside the serial log, which the checks read.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use rustls::ServerConfig;

use super::checks::*;
use super::*;
use crate::file_server::{self, percent_decode, FileServer};
use crate::netboot::{self, qemu_mac};
use crate::report;
use crate::test_ca::{self, TestCa};

/// What the guest calls the harness host on QEMU's user network.
pub(super) const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const REQUEST_LOG: &str = "http-requests.log";
/// Paths report-init prints: the addresses and routes the init set up and
/// the resolver configuration it handed to the new root.
pub(super) const NET_INSPECT: &[&str] =
    &["/proc/net/route", "/proc/net/fib_trie", "/etc/resolv.conf"];
/// QEMU's user-network DNS server, which its DHCP server hands out.
const SLIRP_DNS: &str = "10.0.2.3";
const UUID: &str = "11111111-2222-3333-4444-555555555555";

pub(super) const HOST_PXE: &str = "alpinit-pxe";
pub(super) const HOST_UUID: &str = "alpinit-uuid";
pub(super) const HOST_HTTPS: &str = "alpinit-https";
pub(super) const HOST_STATIC: &str = "alpinit-static";
pub(super) const HOST_SECOND_NIC: &str = "alpinit-second-nic";
pub(super) const HOST_FIRST_NIC: &str = "alpinit-first-nic";
/// The overlay on the local disk that a failed download falls back to.
pub(super) const HOST_LOCAL: &str = "alpinit-local-fallback";

/// The requests the server logged during this scenario's boot.
fn requests(outcome: &Outcome) -> Vec<String> {
    file_server::requests(&outcome.log_path.with_file_name(REQUEST_LOG))
}

/// Writes the named overlays into `DIR/www` and starts serving it.
pub(super) fn serve(
    dir: &Path,
    files: &[(&str, Vec<u8>)],
    tls: Option<Arc<ServerConfig>>,
) -> Result<FileServer> {
    let www = dir.join("www");
    let specs: Vec<FileSpec> = files
        .iter()
        .map(|(name, data)| FileSpec::new(name, 0o644, data.clone()))
        .collect();
    media::write_tree(&www, &specs)?;
    FileServer::start(&www, &dir.join(REQUEST_LOG), tls)
}

/// Boots VM while SERVER runs (any server that stops when dropped); the
/// server stops when the runner drops the setup after QEMU has ended.
pub(super) fn with_server<S: 'static>(vm: Vm, server: S, timeout: Duration) -> Setup {
    let stop = move |log: &str| {
        let _running = &server;
        log.contains("Kernel panic")
    };
    Setup {
        vm,
        stop: Some(Box::new(stop)),
        timeout,
    }
}

pub(super) fn url(scheme: &str, port: u16, path: &str) -> String {
    format!("{scheme}://{HOST_IP}:{port}/{path}")
}

/// A local disk holding the fallback overlay.
pub(super) fn fallback_disk(assets: &Assets, dir: &Path) -> Result<PathBuf> {
    let ovl = overlay(assets, HOST_LOCAL, &[], Vec::new())?;
    disk(
        dir,
        "vda",
        Filesystem::Ext4,
        &[FileSpec::new("local.apkovl.tar.gz", 0o644, ovl)],
    )
}

fn want_phases(failures: &mut Vec<String>, outcome: &Outcome, names: &[&str]) {
    let seen: Vec<String> = report::phases(&outcome.log)
        .into_iter()
        .map(|p| p.0)
        .collect();
    for name in names {
        if !seen.iter().any(|p| p == name) {
            failures.push(format!("no `alpinit: phase {name}` line on the console"));
        }
    }
}

/// The server saw TARGET (compared after percent-decoding, so a client that
/// escapes the colons of a MAC still matches).
fn want_request(failures: &mut Vec<String>, outcome: &Outcome, target: &str) {
    let seen = requests(outcome);
    let decoded = |t: &str| percent_decode(t).unwrap_or_else(|| t.to_string());
    if !seen.iter().any(|t| decoded(t) == decoded(target)) {
        failures.push(format!(
            "the server did not see a request for {target}; it saw {seen:?}"
        ));
    }
}

fn want_console(failures: &mut Vec<String>, outcome: &Outcome, text: &str) {
    if !outcome.log.contains(text) {
        failures.push(format!("no {text:?} on the console"));
    }
}

/// The progress line `MSG: ` followed (possibly after kernel messages) by
/// `failed.`, not `ok.`; returns the rest of that `failed.` line.
pub(super) fn failed_progress(log: &str, msg: &str) -> Option<String> {
    let start = log.find(&format!(" * {msg}"))?;
    let rest = &log[start..];
    let failed = rest.find("failed.")?;
    if rest.find("ok.").is_some_and(|ok| ok < failed) {
        return None;
    }
    let line = rest[failed..].lines().next().unwrap_or_default();
    Some(line.trim_end().to_string())
}

/// The fallback overlay was used after the download failed.
pub(super) fn want_fallback(failures: &mut Vec<String>, outcome: &Outcome, report: &Report) {
    want_hostname(failures, report, HOST_LOCAL);
    want_console(
        failures,
        outcome,
        "The boot continues with local media, if any.",
    );
    want_console(failures, outcome, "/media/vda1/local.apkovl.tar.gz");
}

// (a) pxe-mac

pub(super) const PXE_MAC: u8 = 0x56;

pub(super) fn setup_pxe_mac(assets: &Assets, dir: &Path) -> Result<Setup> {
    let mac = qemu_mac(PXE_MAC);
    let ovl = overlay(assets, HOST_PXE, NET_INSPECT, Vec::new())?;
    let server = serve(dir, &[(&format!("{mac}.apkovl.tar.gz"), ovl)], None)?;
    let append = format!(
        "{CMDLINE} ip=dhcp apkovl={}",
        url("http", server.port(), "{MAC}.apkovl.tar.gz")
    );
    let tftp = dir.join("tftp");
    netboot::pxe_tree(
        &tftp,
        &assets.vmlinuz,
        assets.image(ImageKind::Standard)?,
        &append,
    )?;
    let mut vm = Vm::new(assets.accel);
    vm.pxe_boot(&tftp, "pxelinux.0", &mac);
    // The bzImage and the image come over TFTP and the XZ kernel
    // decompresses under TCG.
    let timeout = assets.accel.boot_timeout() + Duration::from_secs(90);
    Ok(with_server(vm, server, timeout))
}

pub(super) fn check_pxe_mac(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        let mac = qemu_mac(PXE_MAC);
        want_hostname(failures, report, HOST_PXE);
        let bootif = format!("BOOTIF=01-{}", mac.replace(':', "-"));
        let cmdline = report.get("cmdline").unwrap_or_default();
        if !cmdline.split_whitespace().any(|w| w == bootif) {
            failures.push(format!("{bootif} is not on /proc/cmdline: {cmdline:?}"));
        }
        want_dhcp_mac_download(failures, outcome, report, &mac);
    })
}

/// An overlay fetched as `/{MAC}.apkovl.tar.gz` after a DHCP lease on
/// eth0: the request, the network phases and console line, and QEMU's DNS
/// server in the new root's resolv.conf.
pub(super) fn want_dhcp_mac_download(
    failures: &mut Vec<String>,
    outcome: &Outcome,
    report: &Report,
    mac: &str,
) {
    want_request(failures, outcome, &format!("/{mac}.apkovl.tar.gz"));
    want_phases(failures, outcome, &["link-up", "dhcp-lease", "download"]);
    want_console(failures, outcome, "Obtaining IP via DHCP (eth0): ok.");
    let resolv = report.content("/etc/resolv.conf").unwrap_or_default();
    if !resolv
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["nameserver", SLIRP_DNS])
    {
        failures.push(format!(
            "the new root's /etc/resolv.conf lacks `nameserver {SLIRP_DNS}`: {resolv:?}"
        ));
    }
}

// (b) uuid-token

pub(super) fn setup_uuid_token(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_UUID, &[], Vec::new())?;
    let server = serve(dir, &[(&format!("{UUID}.apkovl.tar.gz"), ovl)], None)?;
    let apkovl = url("http", server.port(), "{UUID}.apkovl.tar.gz?token=x");
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        &format!("ip=dhcp apkovl={apkovl}"),
    )?;
    vm.user_nic("n0", &qemu_mac(0x56)).uuid(UUID);
    Ok(with_server(vm, server, assets.accel.boot_timeout()))
}

pub(super) fn check_uuid_token(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_UUID);
        let target = format!("/{UUID}.apkovl.tar.gz?token=x");
        if !requests(outcome).contains(&target) {
            failures.push(format!(
                "the server did not see {target}; it saw {:?}",
                requests(outcome)
            ));
        }
        want_phases(failures, outcome, &["dhcp-lease", "download"]);
    })
}

// (c) https-ok, https-wrong-ca

fn setup_https(assets: &Assets, dir: &Path, ca: &TestCa, fallback: bool) -> Result<Setup> {
    let ovl = overlay(assets, HOST_HTTPS, &[], Vec::new())?;
    let tls = ca.server_config(IpAddr::V4(HOST_IP))?;
    let server = serve(dir, &[("x.apkovl.tar.gz", ovl)], Some(tls))?;
    let apkovl = url("https", server.port(), "x.apkovl.tar.gz");
    let mut vm = kernel_vm(
        assets,
        ImageKind::Https,
        &format!("ip=dhcp apkovl={apkovl}"),
    )?;
    vm.user_nic("n0", &qemu_mac(0x56));
    if fallback {
        vm.virtio_disk(&fallback_disk(assets, dir)?);
    }
    Ok(with_server(vm, server, assets.accel.boot_timeout()))
}

pub(super) fn setup_https_ok(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ca = TestCa::load(&test_ca::ca_dir(&assets.out_dir), test_ca::IMAGE_CA_NAME)?;
    setup_https(assets, dir, &ca, false)
}

pub(super) fn check_https_ok(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_HTTPS);
        want_request(failures, outcome, "/x.apkovl.tar.gz");
        want_phases(failures, outcome, &["download"]);
    })
}

/// The server's leaf comes from a CA the image does not trust (same subject
/// name as the image's CA, different key), and a local disk holds a
/// fallback overlay.
pub(super) fn setup_https_wrong_ca(assets: &Assets, dir: &Path) -> Result<Setup> {
    let other = TestCa::generate(test_ca::IMAGE_CA_NAME)?;
    setup_https(assets, dir, &other, true)
}

pub(super) fn check_https_wrong_ca(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_fallback(failures, outcome, report);
        match failed_progress(&outcome.log, "Downloading https://") {
            None => failures.push("no ` * Downloading https://...: failed.` line".to_string()),
            Some(line) => {
                let lower = line.to_lowercase();
                if !lower.contains("certificate") && !lower.contains("issuer") {
                    failures.push(format!(
                        "the download failure does not name the certificate problem: {line:?}"
                    ));
                }
            }
        }
        let seen = requests(outcome);
        if !seen.is_empty() {
            failures.push(format!(
                "a request went through despite the untrusted certificate: {seen:?}"
            ));
        }
    })
}

// (d) static-ip

/// Not the address QEMU's DHCP server would hand out (10.0.2.15), so the
/// report tells a static configuration from a lease.
const STATIC_IP: &str = "10.0.2.20";

pub(super) fn setup_static_ip(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_STATIC, NET_INSPECT, Vec::new())?;
    let server = serve(dir, &[("x.apkovl.tar.gz", ovl)], None)?;
    let apkovl = url("http", server.port(), "x.apkovl.tar.gz");
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        &format!("ip={STATIC_IP}::{HOST_IP}:255.255.255.0::eth0:off apkovl={apkovl}"),
    )?;
    vm.user_nic("n0", &qemu_mac(0x56));
    Ok(with_server(vm, server, assets.accel.boot_timeout()))
}

/// `/proc/net/route` has a default route on IFACE via GATEWAY.
fn has_default_route(route: &str, iface: &str, gateway: Ipv4Addr) -> bool {
    // The kernel prints addresses as the hex of the in-memory (network
    // order) u32, i.e. byte-reversed on little-endian hosts.
    let want = format!("{:08X}", u32::from_le_bytes(gateway.octets()));
    route.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 2 && fields[0] == iface && fields[1] == "00000000" && fields[2] == want
    })
}

pub(super) fn check_static_ip(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_STATIC);
        want_request(failures, outcome, "/x.apkovl.tar.gz");
        want_console(failures, outcome, "Setting IP (eth0): ok.");
        if outcome.log.contains("Obtaining IP via DHCP") {
            failures.push("DHCP ran although ip= was static".to_string());
        }
        let fib = report.content("/proc/net/fib_trie").unwrap_or_default();
        if !fib.contains(STATIC_IP) {
            failures.push(format!("{STATIC_IP} is not in /proc/net/fib_trie"));
        }
        let route = report.content("/proc/net/route").unwrap_or_default();
        if !has_default_route(route, "eth0", HOST_IP) {
            failures.push(format!(
                "no default route via {HOST_IP} on eth0 in /proc/net/route: {route:?}"
            ));
        }
    })
}

// (e) no-dhcp

pub(super) fn setup_no_dhcp(assets: &Assets, dir: &Path) -> Result<Setup> {
    let (to, from) = (netboot::free_udp_port()?, netboot::free_udp_port()?);
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        &format!("ip=dhcp apkovl={}", url("http", 9, "x.apkovl.tar.gz")),
    )?;
    vm.silent_nic("n0", &qemu_mac(0x56), to, from)
        .virtio_disk(&fallback_disk(assets, dir)?);
    Ok(Setup {
        vm,
        stop: stops_on_panic(),
        // The init waits out its whole DHCP deadline first.
        timeout: assets.accel.boot_timeout() + Duration::from_secs(30),
    })
}

pub(super) fn check_no_dhcp(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_fallback(failures, outcome, report);
        match failed_progress(&outcome.log, "Obtaining IP via DHCP (eth0)") {
            None => failures.push("no ` * Obtaining IP via DHCP (eth0): failed.` line".to_string()),
            Some(line) => {
                if !line.contains("no DHCP lease") {
                    failures.push(format!("the DHCP failure does not say why: {line:?}"));
                }
            }
        }
    })
}

// (f) bootif-second-nic

/// Two NICs (…:56 and …:57), and a server with one overlay per NIC MAC;
/// returns the server and the `{MAC}` apkovl URL.
fn two_nic_overlays(assets: &Assets, dir: &Path) -> Result<(FileServer, String)> {
    let (first, second) = (qemu_mac(0x56), qemu_mac(0x57));
    let server = serve(
        dir,
        &[
            (
                &format!("{first}.apkovl.tar.gz"),
                overlay(assets, HOST_FIRST_NIC, &[], Vec::new())?,
            ),
            (
                &format!("{second}.apkovl.tar.gz"),
                overlay(assets, HOST_SECOND_NIC, &[], Vec::new())?,
            ),
        ],
        None,
    )?;
    let apkovl = url("http", server.port(), "{MAC}.apkovl.tar.gz");
    Ok((server, apkovl))
}

pub(super) fn setup_bootif_second_nic(assets: &Assets, dir: &Path) -> Result<Setup> {
    let (first, second) = (qemu_mac(0x56), qemu_mac(0x57));
    let (server, apkovl) = two_nic_overlays(assets, dir)?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        &format!(
            "BOOTIF=01-{} ip=dhcp apkovl={apkovl}",
            second.replace(':', "-")
        ),
    )?;
    vm.user_nic("n0", &first).user_nic("n1", &second);
    Ok(with_server(vm, server, assets.accel.boot_timeout()))
}

pub(super) fn check_bootif_second_nic(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_SECOND_NIC);
        let second = format!("/{}.apkovl.tar.gz", qemu_mac(0x57));
        want_request(failures, outcome, &second);
        let first = format!("/{}.apkovl.tar.gz", qemu_mac(0x56));
        let seen = requests(outcome);
        if seen
            .iter()
            .any(|t| percent_decode(t).as_deref() == Some(first.as_str()))
        {
            failures.push(format!("the first NIC's overlay was requested: {seen:?}"));
        }
        // The kernel's ethN for the second NIC depends on probe order: the
        // request above shows which NIC was used.
        let dhcp_ok = outcome.log.lines().any(|l| {
            l.split_once("Obtaining IP via DHCP (eth")
                .is_some_and(|(_, rest)| rest.trim_end().ends_with("): ok."))
        });
        if !dhcp_ok {
            failures.push("no \"Obtaining IP via DHCP (ethN): ok.\" on the console".into());
        }
    })
}

// /etc/mactab in the image names the second NIC "lan"; ip= asks for it.

/// What `ImageKind::Mactab` puts into the image's /etc/mactab.
pub const MACTAB: &str = "# nameif -s\nlan 52:54:00:12:34:57\n";

pub(super) fn setup_mactab(assets: &Assets, dir: &Path) -> Result<Setup> {
    let (first, second) = (qemu_mac(0x56), qemu_mac(0x57));
    let (server, apkovl) = two_nic_overlays(assets, dir)?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Mactab,
        &format!("ip=:::::lan:dhcp apkovl={apkovl}"),
    )?;
    vm.user_nic("n0", &first).user_nic("n1", &second);
    Ok(with_server(vm, server, assets.accel.boot_timeout()))
}

pub(super) fn check_mactab(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_SECOND_NIC);
        want_request(
            failures,
            outcome,
            &format!("/{}.apkovl.tar.gz", qemu_mac(0x57)),
        );
        // Which ethN the kernel gives the second NIC depends on probe
        // order; the rename is by MAC, and the request above shows the
        // right NIC was used.
        let renamed = outcome.log.lines().any(|l| {
            l.split_once("mactab: renamed eth")
                .is_some_and(|(_, rest)| rest.trim_end().ends_with(" to lan"))
        });
        if !renamed {
            failures.push("no \"mactab: renamed ethN to lan\" on the console".into());
        }
        want_console(failures, outcome, "Obtaining IP via DHCP (lan): ok.");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_in_proc_net_route() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let gw = Ipv4Addr::new(10, 0, 2, 2);
        assert!(has_default_route(route, "eth0", gw));
        assert!(!has_default_route(route, "eth1", gw));
        assert!(!has_default_route(
            route,
            "eth0",
            Ipv4Addr::new(10, 0, 2, 3)
        ));
        let no_default = "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert!(!has_default_route(no_default, "eth0", gw));
    }

    #[test]
    fn progress_failures_are_found_across_kernel_messages() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                " * Obtaining IP via DHCP (eth0): failed. no DHCP lease on eth0\n",
                Some("failed. no DHCP lease on eth0"),
            ),
            (
                " * Obtaining IP via DHCP (eth0): [ 5.1] virtio_net: x\nfailed. why\n",
                Some("failed. why"),
            ),
            (
                " * Obtaining IP via DHCP (eth0): ok.\nlater failed.\n",
                None,
            ),
            ("nothing here\n", None),
        ];
        for (log, want) in cases {
            assert_eq!(
                failed_progress(log, "Obtaining IP via DHCP (eth0)").as_deref(),
                *want,
                "{log:?}"
            );
        }
    }
}
