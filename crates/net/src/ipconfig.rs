//! `ip=` and `BOOTIF=` from the kernel command line.
//!
//! `ip=` uses the kernel's layout `client:server:gw:netmask:hostname:device:autoconf:dns0:dns1`
//! (Documentation/admin-guide/nfs/nfsroot.rst). Alpine's `configure_ip` reads it like this,
//! and so does [`parse_ip`]:
//!
//! * client `off` or `none` → no networking;
//! * client `dhcp`, or autoconf `dhcp` → DHCP on `device` (if given);
//! * otherwise a static address from client + netmask, optional gateway and two DNS servers;
//! * server and hostname are not used by Alpine; the hostname is kept for the caller.
//!
//! Deliberate differences from the shell script, each because the script's behaviour left the
//! machine without a working network while the user clearly asked for one:
//!
//! * an empty value, or a value with neither client nor netmask (`ip=::::::eth0`), means DHCP
//!   (the kernel's meaning of autoconfiguration); Alpine chose the interface and then did
//!   nothing;
//! * autoconf `on`, `any`, `both` and `bootp` also mean DHCP when no client address is given,
//!   as they do for the kernel; autoconf `off`/`none` without an address means no networking;
//! * a client address without netmask gets the classful mask, as the kernel does, instead of
//!   `ifconfig … netmask ""` failing;
//! * malformed addresses and unsafe device names (`/`, `..`, over 15 bytes) are errors rather
//!   than being passed to `ifconfig` or used in a sysfs path.

use std::net::Ipv4Addr;

use crate::NetError;

/// What `ip=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpConfig {
    Off,
    Dhcp {
        device: Option<String>,
    },
    Static {
        client: Ipv4Addr,
        netmask: Ipv4Addr,
        gateway: Option<Ipv4Addr>,
        hostname: Option<String>,
        device: Option<String>,
        dns: Vec<Ipv4Addr>,
    },
}

impl IpConfig {
    /// The interface named in `ip=`, if any.
    pub fn device(&self) -> Option<&str> {
        match self {
            IpConfig::Off => None,
            IpConfig::Dhcp { device } | IpConfig::Static { device, .. } => device.as_deref(),
        }
    }
}

const DHCP_AUTOCONF: [&str; 5] = ["dhcp", "on", "any", "both", "bootp"];

/// Parses an `ip=` value (see the module documentation for the rules).
pub fn parse_ip(value: &str) -> Result<IpConfig, NetError> {
    let bad = |reason: String| NetError::BadIp {
        value: value.to_owned(),
        reason,
    };
    let fields: Vec<&str> = value.split(':').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or("").trim();
    let (client, gateway, netmask, hostname, device, autoconf) =
        (field(0), field(2), field(3), field(4), field(5), field(6));

    if client == "off" || client == "none" {
        return Ok(IpConfig::Off);
    }
    let device = match device {
        "" => None,
        name => Some(valid_ifname(name).map_err(|()| bad(format!("bad device name {name:?}")))?),
    };
    if client == "dhcp" || autoconf == "dhcp" {
        return Ok(IpConfig::Dhcp { device });
    }
    if client.is_empty() {
        if !netmask.is_empty() {
            return Err(bad("netmask given without a client address".into()));
        }
        return match autoconf {
            "" => Ok(IpConfig::Dhcp { device }),
            a if DHCP_AUTOCONF.contains(&a) => Ok(IpConfig::Dhcp { device }),
            // Static configuration without an address: there is nothing to configure.
            "off" | "none" => Ok(IpConfig::Off),
            a => Err(bad(format!("unknown autoconf method {a:?}"))),
        };
    }

    let addr = |name: &str, text: &str| -> Result<Ipv4Addr, NetError> {
        text.parse::<Ipv4Addr>()
            .map_err(|_| bad(format!("{name} {text:?} is not an IPv4 address")))
    };
    let optional = |name: &str, text: &str| -> Result<Option<Ipv4Addr>, NetError> {
        match text {
            "" => Ok(None),
            text => addr(name, text).map(|a| Some(a).filter(|a| !a.is_unspecified())),
        }
    };
    let client = addr("client", client)?;
    if client.is_unspecified() || client.is_broadcast() || client.is_multicast() {
        return Err(bad(format!("client {client} cannot be a host address")));
    }
    let netmask = match netmask {
        "" => classful_mask(client),
        text => {
            let mask = addr("netmask", text)?;
            if prefix_len(mask).is_none() {
                return Err(bad(format!("netmask {mask} is not contiguous")));
            }
            mask
        }
    };
    let gateway = optional("gateway", gateway)?;
    let mut dns = Vec::new();
    for (name, text) in [("dns0", field(7)), ("dns1", field(8))] {
        dns.extend(optional(name, text)?);
    }
    Ok(IpConfig::Static {
        client,
        netmask,
        gateway,
        hostname: Some(hostname.to_owned()).filter(|h| !h.is_empty()),
        device,
        dns,
    })
}

/// Accepts names the kernel could have given an interface and that are safe in a sysfs path.
pub(crate) fn valid_ifname(name: &str) -> Result<String, ()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(())
    }
}

/// The prefix length of a contiguous netmask (`255.255.255.0` → 24); `None` otherwise.
/// A zero mask is rejected too: a host address with a /0 subnet is never intended.
pub fn prefix_len(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0 && ones > 0).then_some(ones as u8)
}

/// The pre-CIDR default mask of an address, used by the kernel when `ip=` has none.
pub(crate) fn classful_mask(addr: Ipv4Addr) -> Ipv4Addr {
    match addr.octets()[0] {
        0..=127 => Ipv4Addr::new(255, 0, 0, 0),
        128..=191 => Ipv4Addr::new(255, 255, 0, 0),
        _ => Ipv4Addr::new(255, 255, 255, 0),
    }
}

/// `BOOTIF=01-52-54-00-12-34-56` (PXELINUX `IPAPPEND 2`) → `52:54:00:12:34:56`.
///
/// The `01-` prefix (ARP hardware type Ethernet) is optional and `:` is accepted as separator
/// too, because Alpine's own test passes `BOOTIF=02:00:00:00:00:03`. Anything that is not six
/// hex octets of a unicast address gives `None`, so a typo cannot match an unrelated interface the way Alpine's
/// unanchored `grep` could.
pub fn parse_bootif(value: &str) -> Option<String> {
    let value = value.trim();
    let parts: Vec<&str> = value.split(['-', ':']).collect();
    let octets = match parts.len() {
        7 if parts[0] == "01" => &parts[1..],
        6 => &parts[..],
        _ => return None,
    };
    let valid = octets
        .iter()
        .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()))
        // A NIC address is unicast; this also keeps a truncated `01-…` from being read as
        // a MAC starting with 01.
        && u8::from_str_radix(octets[0], 16).is_ok_and(|first| first & 1 == 0);
    valid.then(|| octets.join(":").to_ascii_lowercase())
}
