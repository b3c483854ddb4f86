//! In-process networking for network boots: `ip=`, `BOOTIF`, DHCP, static addresses and
//! the HTTP(S) download of an apkovl.
//!
//! Alpine's `configure_ip` runs `ip`, `udhcpc` and `wget`; PID 1 here cannot lean on child
//! processes, so every step is done in this crate with plain sockets:
//!
//! * [`parse_ip`] / [`parse_bootif`] read the kernel command line values;
//! * [`choose_interface`] picks the NIC the way Alpine does (explicit device, `BOOTIF`, then
//!   the first physical interface with carrier);
//! * [`dhcp`] runs DISCOVER/OFFER/REQUEST/ACK with bounded retries and a hard deadline;
//! * [`apply`] configures the address and default route over rtnetlink;
//! * [`fetch`] downloads one URL over HTTP/1.1 (and HTTPS with the `https` feature) with a
//!   timeout on every phase and a size cap.
//!
//! Nothing here blocks without a bound: every socket operation has a timeout derived from
//! the caller's deadline.

pub mod dhcp_packet;

mod deadline;
mod dhcp;
mod dns;
mod http;
mod interface;
mod ipconfig;
mod lease;
mod location;
mod mactab;
pub mod netlink_socket;
mod response;
mod rtnetlink;
#[cfg(feature = "https")]
mod tls;

#[cfg(test)]
mod tests;

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use deadline::{Deadline, DeadlineExceeded};
pub use dhcp::{dhcp, dhcp_with, DhcpTransport, UdpTransport, BACKOFF};
pub use dns::{resolve, DnsError};
pub use http::{fetch, FetchError, FetchOptions, ResponseError};
pub use interface::{
    choose_interface, interface_mac, link_is_up, link_mtu, machine_uuid, parse_address, parse_mac,
    valid_interface_name, Links,
};
pub use ipconfig::{parse_bootif, parse_ip, IpConfig};
pub use lease::{resolv_conf, Lease};
pub use location::{local_name, substitute, Url, UrlError};
pub use mactab::{apply_mactab, parse_mactab};
pub use netlink_socket::NetlinkSocket;
pub use rtnetlink::{apply, KernelLinks, NetlinkError};

/// Failures of interface selection, DHCP and address configuration.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid ip= value {value:?}: {reason}")]
    BadIp { value: String, reason: String },
    /// Alpine prints this line (after `ERROR: `) when no NIC exists; kept verbatim.
    #[error("IP requested but no network interface was found")]
    NoInterface,
    #[error("invalid interface name {0:?}")]
    BadInterfaceName(String),
    #[error("cannot read {path}")]
    ReadSys {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot rename {from} ({mac}) to {to}")]
    Rename {
        from: String,
        to: String,
        mac: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the DHCP socket on {iface}")]
    DhcpSocket {
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("DHCP on {iface}: network error")]
    DhcpIo {
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("no DHCP lease on {iface} before the deadline ({attempts} attempts)")]
    DhcpTimeout { iface: String, attempts: u32 },
    /// An OFFER came but the REQUEST that followed it was never answered.
    #[error("no DHCP lease on {iface} before the deadline: server {server} offered {offered} but never acknowledged the request ({attempts} attempts)")]
    DhcpNoAck {
        iface: String,
        server: Ipv4Addr,
        offered: Ipv4Addr,
        attempts: u32,
    },
    #[error("DHCP server {server} refused the request on {iface}")]
    DhcpNak { iface: String, server: Ipv4Addr },
    #[error("cannot configure {iface}")]
    Netlink {
        iface: String,
        #[source]
        source: NetlinkError,
    },
}

/// `error` and all its sources, joined with `: `, for the one line the console shows.
///
/// The error types of this crate leave a wrapped cause out of their own message, so the chain
/// names each cause once (`http://h/x: cannot connect to 10.0.2.2:80: Connection refused`).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        // An io::Error built from another error displays that error; skip exact repeats.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Decodes arbitrary bytes as a DHCP reply; for fuzz targets, where any panic is a bug.
pub fn fuzz_dhcp(data: &[u8]) {
    if let Ok(reply) = dhcp_packet::decode(data) {
        let _ = reply.to_lease("eth0", "00:00:00:00:00:00");
    }
}

/// Parses arbitrary bytes as an HTTP response (head and body); for fuzz targets.
pub fn fuzz_http_response(data: &[u8]) {
    http::fuzz_response(data);
}
