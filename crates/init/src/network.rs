//! Networking for network boots (Alpine §3.6.1), in process: the interface
//! chosen by `ip=`/`BOOTIF`/carrier, DHCP or a static address, resolv.conf,
//! and fetching an apkovl by URL with `{MAC}`/`{UUID}`. It runs after
//! coldplug, so NIC drivers are loaded first (the old init configured the
//! network before its coldplug).

use crate::failure::chain;
use crate::layout::Layout;
use crate::log::{self, Progress};
use crate::platform::Platform;
use alpinit_cmdline::Cmdline;
use alpinit_net::{FetchOptions, IpConfig, Lease};
use std::path::PathBuf;
use std::time::Duration;

/// How long DHCP may take in all (4 tries with backoff fit inside).
const DHCP_DEADLINE: Duration = Duration::from_secs(20);
/// Alpine polls 4 s for a link with carrier.
const CARRIER_WAIT: Duration = Duration::from_secs(4);
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The configured network, as far as the rest of the boot cares.
#[derive(Debug, Default, Clone)]
pub struct Network {
    pub lease: Option<Lease>,
}

impl Network {
    pub fn mac(&self) -> Option<&str> {
        self.lease.as_ref().map(|l| l.mac.as_str())
    }
}

/// The network phase: configured when `ip=` or a URL asks for it, or a
/// `wireguard=` tunnel will run over it (Alpine's `configure_ip` before
/// `setup_wireguard`).
pub fn start(p: &Platform<'_>, layout: &Layout, cmdline: &Cmdline) -> Network {
    if cmdline.configures_network() {
        configure(p, layout, cmdline)
    } else {
        Network::default()
    }
}

pub fn configure(p: &Platform<'_>, layout: &Layout, cmdline: &Cmdline) -> Network {
    let ip = cmdline.get("ip").unwrap_or("dhcp");
    let config = match alpinit_net::parse_ip(ip) {
        Ok(c) => c,
        Err(e) => {
            let e = chain(&e);
            log::error(&format!("ip={ip}: {e}"));
            log::console(&format!("ERROR: ip={ip}: {e}\n"));
            return Network::default();
        }
    };
    if matches!(config, IpConfig::Off) {
        return Network::default();
    }
    let bootif = cmdline.get("BOOTIF").and_then(alpinit_net::parse_bootif);
    let sys = layout.sys();
    let links = p.net.links();
    // Alpine runs `nameif -s` when the image has /etc/mactab.
    if let Ok(text) = std::fs::read_to_string(layout.path("/etc/mactab")) {
        let entries = alpinit_net::parse_mactab(&text);
        let (renamed, errors) = alpinit_net::apply_mactab(&sys, links, &entries);
        for (old, new) in renamed {
            log::info(&format!("mactab: renamed {old} to {new}"));
        }
        for e in errors {
            log::warn(&format!("mactab: {}", chain(&e)));
        }
    }
    let iface = match alpinit_net::choose_interface(
        &sys,
        links,
        config.device(),
        bootif.as_deref(),
        CARRIER_WAIT,
    ) {
        Ok(i) => i,
        Err(e) => {
            let e = chain(&e);
            log::error(&format!("ERROR: {e}"));
            log::console(&format!("ERROR: {e}\n"));
            return Network::default();
        }
    };
    log::phase("link-up");
    let mac = match alpinit_net::interface_mac(&sys, &iface) {
        Ok(m) => m,
        Err(e) => {
            log::error(&format!(
                "reading the MAC address of {iface}: {}",
                chain(&e)
            ));
            return Network::default();
        }
    };
    let lease = match &config {
        IpConfig::Static { .. } => {
            let progress = Progress::begin(&format!("Setting IP ({iface})"));
            let Some(lease) = Lease::from_static(&config, &iface, &mac) else {
                progress.failed("incomplete static ip= configuration");
                return Network::default();
            };
            if let Err(e) = p.net.apply(&lease) {
                progress.failed(&chain(&e));
                return Network::default();
            }
            progress.ok();
            lease
        }
        _ => {
            let progress = Progress::begin(&format!("Obtaining IP via DHCP ({iface})"));
            let Some(raw_mac) = alpinit_net::parse_mac(&mac) else {
                progress.failed(&format!("bad MAC address {mac}"));
                return Network::default();
            };
            let lease = match p.net.dhcp(&iface, raw_mac, p.clock.now() + DHCP_DEADLINE) {
                Ok(l) => l,
                Err(e) => {
                    progress.failed(&chain(&e));
                    return Network::default();
                }
            };
            if let Err(e) = p.net.apply(&lease) {
                progress.failed(&chain(&e));
                return Network::default();
            }
            progress.ok();
            log::info(&format!(
                "{iface}: {}/{} router {:?} dns {:?}",
                lease.address, lease.prefix_len, lease.router, lease.dns
            ));
            lease
        }
    };
    log::phase("dhcp-lease");
    let resolv = alpinit_net::resolv_conf(&lease);
    if !resolv.is_empty() {
        let path = layout.path("/etc/resolv.conf");
        if let Err(e) = std::fs::write(&path, resolv) {
            log::warn(&format!("writing {}: {e}", path.display()));
        }
    }
    Network { lease: Some(lease) }
}

/// Downloads an apkovl URL into `/tmp`; on failure says why and returns
/// None so the boot goes on with local media.
pub fn fetch_apkovl(
    p: &Platform<'_>,
    layout: &Layout,
    net: &Network,
    template: &str,
) -> Option<PathBuf> {
    let uuid = alpinit_net::machine_uuid(&layout.sys());
    if template.contains("{UUID}") && uuid.is_none() {
        log::warn("apkovl URL uses {UUID} but /sys/class/dmi/id/product_uuid is missing");
    }
    let url = alpinit_net::substitute(template, net.mac(), uuid.as_deref());
    let dest = layout.path("/tmp").join(alpinit_net::local_name(&url));
    let resolvers = net
        .lease
        .as_ref()
        .map(|l| l.dns.clone())
        .unwrap_or_default();
    let ca = layout.path(CA_BUNDLE);
    let mut opts = FetchOptions {
        ca_bundle: Some(ca),
        ..FetchOptions::default()
    };
    if let Some(free) = crate::sysroot::free_bytes(&layout.path("/tmp")) {
        opts.max_bytes = opts.max_bytes.min(free / 2);
    }
    let progress = Progress::begin(&format!("Downloading {url}"));
    let result = std::fs::File::create(&dest)
        .map_err(|e| format!("creating {}: {e}", dest.display()))
        .and_then(|mut f| {
            p.net
                .fetch(&url, &resolvers, &opts, &mut f)
                .map_err(|e| chain(&e))
        });
    match result {
        Ok(bytes) => {
            progress.ok();
            log::info(&format!("downloaded {bytes} bytes to {}", dest.display()));
            log::phase("download");
            Some(dest)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&dest);
            progress.failed(&e);
            log::console("The boot continues with local media, if any.\n");
            None
        }
    }
}
