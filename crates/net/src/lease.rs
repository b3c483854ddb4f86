//! The configuration one interface ends up with, from DHCP or from a static `ip=`.

use std::net::Ipv4Addr;

use crate::ipconfig::{prefix_len, IpConfig};

/// An IPv4 configuration for one interface. DHCP fills it from the ACK; a static `ip=` via
/// [`Lease::from_static`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub iface: String,
    /// Lower-case, colon-separated; the value of `{MAC}`.
    pub mac: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub hostname: Option<String>,
    /// The DHCP server that granted it; `None` for static configuration.
    pub server: Option<Ipv4Addr>,
}

impl Lease {
    /// The lease a static `ip=` describes, or `None` for `Off`/`Dhcp`.
    pub fn from_static(config: &IpConfig, iface: &str, mac: &str) -> Option<Lease> {
        let IpConfig::Static {
            client,
            netmask,
            gateway,
            hostname,
            dns,
            ..
        } = config
        else {
            return None;
        };
        Some(Lease {
            iface: iface.to_owned(),
            mac: mac.to_owned(),
            address: *client,
            prefix_len: prefix_len(*netmask)?,
            router: *gateway,
            dns: dns.clone(),
            domain: None,
            hostname: hostname.clone(),
            server: None,
        })
    }

    /// Whether `addr` is inside this lease's subnet.
    pub fn on_link(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0);
        u32::from(addr) & mask == u32::from(self.address) & mask
    }
}

/// `/etc/resolv.conf` for a lease: `search` for the domain, then one `nameserver` line per
/// server (as udhcpc's default script writes it). Empty when the lease has neither.
pub fn resolv_conf(lease: &Lease) -> String {
    let mut text = String::new();
    if let Some(domain) = &lease.domain {
        text.push_str(&format!("search {domain}\n"));
    }
    for server in &lease.dns {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text
}
