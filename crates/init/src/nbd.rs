//! Network block devices (`nbd=SERVER:PORT[,..]`), as Alpine's init sets
//! them up (`initramfs-init.in`, `setup_nbd`; reference §3.4 step 16): the
//! network configured, the `nbd` module with `max_part=8`, then each
//! server attached to the next free `/dev/nbdN`, before the root or the
//! boot media are looked for, so that they can be on it.
//!
//! Alpine runs `nbd-client SERVER PORT /dev/nbdN`, and configures the
//! network before its device discovery (a NIC whose driver is a module
//! must be in `modules=`; its script says so in a TODO). Here the buses
//! are swept first so the NIC's driver loads like any other, and the
//! client is in process (`alpinit_nbd`): the negotiation over TCP, then
//! the socket handed to the kernel over generic netlink, so no client
//! program stays behind the hand-over and the image needs no nbd-client.

use crate::failure::chain;
use crate::layout::Layout;
use crate::log;
use crate::network::{self, Network};
use crate::platform::Platform;
use alpinit_cmdline::{Cmdline, Nbd, NbdServer};
use alpinit_kmod::Loader;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Alpine's `modprobe -q nbd max_part=8`: partitions on the devices.
pub const MODULE_OPTIONS: &str = "max_part=8";

/// The bound on one server's connection and negotiation (and on a name's
/// lookup): a server that does not answer must not hold the boot.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the drivers of the devices on the buses may take to load
/// before the network is configured: seconds under emulation, far less
/// on hardware.
pub const DRIVERS_WAIT: Duration = Duration::from_secs(10);

/// Sweeps of the buses at most: a bus under a bus under a bus (PCI,
/// virtio, ...) is as deep as a boot's NIC sits.
const SWEEPS: usize = 4;

/// Alpine's message when no device could be set up.
pub const FAILED: &str = "Failed to setup nbd device.";

/// Why one server could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    #[error("nbd={host}:{port}: looking up {host}")]
    Resolve {
        host: String,
        port: u16,
        #[source]
        source: alpinit_net::DnsError,
    },
    #[error("nbd={host}:{port} on /dev/nbd{index}")]
    Attach {
        host: String,
        port: u16,
        index: u32,
        #[source]
        source: alpinit_nbd::NbdError,
    },
}

/// With `nbd=`: the network (configured here, and returned for the rest
/// of the boot) and every server attached that can be. `None` without it.
pub fn setup(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &Loader,
) -> Option<Network> {
    let nbd = cmdline.nbd()?;
    for bad in &nbd.bad {
        log::warn(&format!("nbd: {bad:?} is not SERVER:PORT: skipped"));
    }
    load_nic_drivers(layout, loader);
    let net = network::configure(p, layout, cmdline);
    if let Err(e) = loader.load_now("nbd") {
        log::error(&format!("nbd: {}", chain(&e)));
        log::console(&format!("{FAILED}\n"));
        return Some(net);
    }
    if attach_all(p, layout, &nbd, &net) == 0 {
        log::console(&format!("{FAILED}\n"));
    }
    Some(net)
}

/// The drivers of every device on the buses, loaded now (within
/// [`DRIVERS_WAIT`]): among them the NIC's, whose interface the network
/// configuration looks for. A bus driver makes devices of its own (the
/// virtio NIC appears once `virtio_pci` is loaded), so the buses are swept
/// again after each round of loading until a sweep finds nothing new.
/// Discovery later requests the same modaliases again; each module loads
/// once.
fn load_nic_drivers(layout: &Layout, loader: &Loader) {
    let deadline = std::time::Instant::now() + DRIVERS_WAIT;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..SWEEPS {
        let hold = loader.hold();
        let mut new = false;
        for ev in alpinit_uevent::sweep_buses(&layout.sys()) {
            if let Some(alias) = ev.modalias.as_deref() {
                new |= crate::discovery::request_modalias(loader, &mut seen, alias);
            }
        }
        drop(hold);
        if !new {
            return;
        }
        if !loader.wait_idle(deadline) {
            log::warn("nbd: drivers still loading; configuring the network anyway");
            return;
        }
    }
}

/// Attaches each server to the next `/dev/nbdN` (N counts the servers
/// attached, as Alpine's loop); returns how many were.
fn attach_all(p: &Platform<'_>, layout: &Layout, nbd: &Nbd, net: &Network) -> u32 {
    let resolvers = net
        .lease
        .as_ref()
        .map(|l| l.dns.clone())
        .unwrap_or_default();
    let mut attached = 0;
    for server in &nbd.servers {
        let device = layout.dev().join(format!("nbd{attached}"));
        if !device.exists() {
            // Alpine: `[ -b "$device" ] || continue`.
            log::warn(&format!(
                "nbd={}:{}: no {}",
                server.host,
                server.port,
                device.display()
            ));
            continue;
        }
        match attach(p, server, &resolvers, attached) {
            Ok(size) => {
                log::info(&format!(
                    "nbd{attached}: {}:{}, {size} bytes",
                    server.host, server.port
                ));
                attached += 1;
            }
            Err(e) => {
                let e = chain(&e);
                log::error(&e);
                log::console(&format!("ERROR: {e}\n"));
            }
        }
    }
    attached
}

fn attach(
    p: &Platform<'_>,
    server: &NbdServer,
    resolvers: &[std::net::Ipv4Addr],
    index: u32,
) -> Result<u64, NbdError> {
    let ip = match server.host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => IpAddr::V4(
            p.net
                .resolve(&server.host, resolvers, p.clock.now() + ATTACH_TIMEOUT)
                .map_err(|source| NbdError::Resolve {
                    host: server.host.clone(),
                    port: server.port,
                    source,
                })?,
        ),
    };
    p.net
        .nbd_attach(SocketAddr::new(ip, server.port), index, ATTACH_TIMEOUT)
        .map_err(|source| NbdError::Attach {
            host: server.host.clone(),
            port: server.port,
            index,
            source,
        })
}
