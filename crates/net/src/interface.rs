//! Choosing the network interface, as Alpine's `configure_ip` does, from a sysfs tree.

use std::fs;
use std::io;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::ipconfig::valid_ifname;
use crate::NetError;

/// Link state changes, behind a trait so tests can record them instead of needing root.
pub trait Links {
    fn set_up(&self, ifname: &str, up: bool) -> io::Result<()>;
    fn ifindex(&self, ifname: &str) -> io::Result<u32>;
    /// Renames a (down) interface; for `/etc/mactab`.
    fn rename(&self, _ifname: &str, _new_name: &str) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// Sets the link's MTU; for `aoe_mtu=` (ATA over Ethernet's jumbo frames).
    fn set_mtu(&self, _ifname: &str, _mtu: u32) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// Creates a virtual link (`ip link add NAME type KIND`); for `wireguard=`.
    fn add_link(&self, _name: &str, _kind: &str) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// Adds an address (`ip addr add dev IF ADDRESS/PREFIX`); for `wireguard=`.
    fn add_address(
        &self,
        _ifname: &str,
        _address: std::net::IpAddr,
        _prefix_len: u8,
    ) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Whether NAME can name a network interface (the kernel's rules:
/// 1-15 printable bytes, no `/`, `:` or space, not `.` or `..`).
pub fn valid_interface_name(name: &str) -> bool {
    crate::ipconfig::valid_ifname(name).is_ok()
}

/// `ADDRESS/PREFIX` or a bare address (a host address, as `ip addr add`
/// takes it), IPv4 or IPv6.
pub fn parse_address(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let address: std::net::IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
    };
    (prefix <= max).then_some((address, prefix))
}

/// How often the carrier is polled; Alpine's loop sleeps 0.1 s.
const CARRIER_POLL: Duration = Duration::from_millis(100);

/// Picks the interface to configure.
///
/// 1. `device` (from `ip=`) as given.
/// 2. The interface whose `address` equals `bootif_mac`, compared case-insensitively and
///    exactly (Alpine's `grep` was a substring match). No match falls through to 3.
/// 3. Physical interfaces (with a `device` entry, so no `lo`, veth or bridges) in ifindex
///    order: all are set up, the first that shows carrier (`operstate` `up` or `carrier` `1`)
///    within `carrier_wait` wins, else the first; the others are set down again.
///
/// Only step 3 touches link state; the caller brings the chosen interface up before DHCP.
/// `sys` is the sysfs root (`/sys`).
pub fn choose_interface(
    sys: &Path,
    links: &dyn Links,
    device: Option<&str>,
    bootif_mac: Option<&str>,
    carrier_wait: Duration,
) -> Result<String, NetError> {
    if let Some(device) = device {
        return valid_ifname(device).map_err(|()| NetError::BadInterfaceName(device.to_owned()));
    }
    let class = sys.join("class/net");
    let names = list_interfaces(&class)?;

    if let Some(mac) = bootif_mac {
        let found = names.iter().find(|name| {
            read_trimmed(&class.join(name).join("address"))
                .is_some_and(|address| address.eq_ignore_ascii_case(mac.trim()))
        });
        if let Some(name) = found {
            return Ok(name.clone());
        }
    }

    let mut physical: Vec<(u32, String)> = names
        .into_iter()
        .filter(|name| class.join(name).join("device").symlink_metadata().is_ok())
        .map(|name| {
            let index = read_trimmed(&class.join(&name).join("ifindex"))
                .and_then(|text| text.parse().ok())
                .or_else(|| links.ifindex(&name).ok())
                .unwrap_or(u32::MAX);
            (index, name)
        })
        .collect();
    alpinit_sort::sort(&mut physical);
    let physical: Vec<String> = physical.into_iter().map(|(_, name)| name).collect();
    let Some(first) = physical.first() else {
        return Err(NetError::NoInterface);
    };

    for name in &physical {
        // A NIC that refuses to come up simply never shows carrier; the others still count.
        let _ = links.set_up(name, true);
    }
    let start = Instant::now();
    let chosen = loop {
        if let Some(name) = physical.iter().find(|name| has_carrier(&class.join(name))) {
            break name.clone();
        }
        let waited = start.elapsed();
        if waited >= carrier_wait {
            break first.clone();
        }
        thread::sleep(CARRIER_POLL.min(carrier_wait - waited));
    };
    for name in physical.iter().filter(|name| **name != chosen) {
        let _ = links.set_up(name, false);
    }
    Ok(chosen)
}

/// Interface names under `class/net`, sorted (the shell glob's order). A missing directory
/// means no interfaces, not an error: sysfs without networking support looks like that.
fn list_interfaces(class: &Path) -> Result<Vec<String>, NetError> {
    let entries = match fs::read_dir(class) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetError::ReadSys {
                path: class.to_owned(),
                source,
            })
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| valid_ifname(name).is_ok())
        .collect();
    alpinit_sort::sort(&mut names);
    Ok(names)
}

fn has_carrier(dir: &Path) -> bool {
    read_trimmed(&dir.join("operstate")).as_deref() == Some("up")
        || read_trimmed(&dir.join("carrier")).as_deref() == Some("1")
}

/// Whether `ifname` is administratively up (IFF_UP in its sysfs `flags`,
/// which the kernel prints as `0x` and hex digits); false when unreadable.
pub fn link_is_up(sys: &Path, ifname: &str) -> bool {
    const IFF_UP: u32 = 0x1;
    read_trimmed(&sys.join("class/net").join(ifname).join("flags"))
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & IFF_UP != 0)
}

/// The MTU of `ifname` from sysfs; `None` when unreadable.
pub fn link_mtu(sys: &Path, ifname: &str) -> Option<u32> {
    read_trimmed(&sys.join("class/net").join(ifname).join("mtu"))?
        .parse()
        .ok()
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// The MAC address of `ifname` as sysfs prints it (lower-case, colon-separated).
pub fn interface_mac(sys: &Path, ifname: &str) -> Result<String, NetError> {
    let path = sys.join("class/net").join(ifname).join("address");
    fs::read_to_string(&path)
        .map(|s| s.trim().to_ascii_lowercase())
        .map_err(|source| NetError::ReadSys { path, source })
}

/// Parses `52:54:00:12:34:56` into bytes.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        // Two hex digits: `from_str_radix` also takes a sign (`+0`).
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// `class/dmi/id/product_uuid` under the sysfs root, as the kernel prints it. `None` when it
/// is missing or empty (no DMI, or not readable); the caller warns and substitutes nothing.
pub fn machine_uuid(sys: &Path) -> Option<String> {
    read_trimmed(&sys.join("class/dmi/id/product_uuid")).filter(|uuid| !uuid.is_empty())
}
