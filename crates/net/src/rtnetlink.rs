//! Link up/down, address and default route over rtnetlink.
//!
//! Only a few fixed requests are needed (RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE), so they
//! are encoded here directly (~150 lines) instead of pulling in netlink-packet-route and
//! its dependency tree. Each request asks for an ACK, and the receive has a timeout, so a
//! kernel that never answers cannot hang PID 1.

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr};

use std::time::{Duration, Instant};

use crate::interface::Links;
use crate::lease::Lease;
use crate::netlink_socket::{self, attribute, finish_message as finish};
use crate::{NetError, NetlinkSocket};

const NETLINK_ROUTE: libc::c_int = 0;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IFF_UP: u32 = 1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTNH_F_ONLINK: u32 = 4;
const NLMSG_HDR_LEN: usize = 16;
/// How long to wait for the kernel's ACK; it answers in microseconds.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open the rtnetlink socket")]
    Socket(#[source] io::Error),
    #[error("no interface {iface}")]
    NoInterface {
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("rtnetlink {what} failed")]
    Request {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// [`Links`] on the running kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelLinks;

impl Links for KernelLinks {
    fn set_up(&self, ifname: &str, up: bool) -> io::Result<()> {
        let index = ifindex(ifname)?;
        Socket::open()?.request(&link_message(1, index, up))
    }

    fn ifindex(&self, ifname: &str) -> io::Result<u32> {
        ifindex(ifname)
    }

    fn rename(&self, ifname: &str, new_name: &str) -> io::Result<()> {
        let index = ifindex(ifname)?;
        Socket::open()?.request(&rename_message(1, index, new_name))
    }

    fn set_mtu(&self, ifname: &str, mtu: u32) -> io::Result<()> {
        let index = ifindex(ifname)?;
        Socket::open()?.request(&mtu_message(1, index, mtu))
    }

    fn add_link(&self, name: &str, kind: &str) -> io::Result<()> {
        Socket::open()?.request(&link_add_message(1, name, kind))
    }

    fn add_address(&self, ifname: &str, address: IpAddr, prefix_len: u8) -> io::Result<()> {
        let index = ifindex(ifname)?;
        Socket::open()?.request(&address_message(1, index, address, prefix_len))
    }
}

fn ifindex(ifname: &str) -> io::Result<u32> {
    let name = CString::new(ifname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// Configures `lease` on its interface: link up, address (replacing an equal one), and the
/// default route via the router (replacing an existing default). A router outside the
/// subnet is installed on-link, as cloud DHCP servers with /32 leases expect.
pub fn apply(lease: &Lease) -> Result<(), NetError> {
    let fail = |source| NetError::Netlink {
        iface: lease.iface.clone(),
        source,
    };
    let index = ifindex(&lease.iface).map_err(|source| {
        fail(NetlinkError::NoInterface {
            iface: lease.iface.clone(),
            source,
        })
    })?;
    let socket = Socket::open().map_err(|e| fail(NetlinkError::Socket(e)))?;
    let request = |what, message: Vec<u8>| {
        socket
            .request(&message)
            .map_err(|source| fail(NetlinkError::Request { what, source }))
    };
    request("link up", link_message(1, index, true))?;
    request(
        "address add",
        address_message(2, index, lease.address.into(), lease.prefix_len),
    )?;
    if let Some(router) = lease.router {
        request(
            "default route add",
            route_message(3, index, router, !lease.on_link(router)),
        )?;
    }
    Ok(())
}

/// Every request asks for an ACK.
fn header(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    netlink_socket::message_header(buf, kind, flags | NLM_F_REQUEST | NLM_F_ACK, seq);
}

/// An RTM_NEWLINK request for the link INDEX (0: a new one) that sets the
/// IFF_* FLAGS selected by CHANGE; its attributes follow.
fn link_request(seq: u32, nl_flags: u16, index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    header(&mut buf, RTM_NEWLINK, nl_flags, seq);
    buf.extend_from_slice(&[0, 0, 0, 0]); // family AF_UNSPEC, pad, ARPHRD type 0
    buf.extend_from_slice(&index.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&change.to_ne_bytes());
    buf
}

/// A NUL-terminated interface name, as IFLA_IFNAME carries it.
fn ifname(name: &str) -> Vec<u8> {
    let mut value = name.as_bytes().to_vec();
    value.push(0);
    value
}

const IFLA_IFNAME: u16 = 3;

/// RTM_NEWLINK changing only IFF_UP.
pub(crate) fn link_message(seq: u32, index: u32, up: bool) -> Vec<u8> {
    let flags = if up { IFF_UP } else { 0 };
    finish(link_request(seq, 0, index, flags, IFF_UP))
}

/// RTM_NEWLINK setting IFLA_IFNAME (the link must be down).
pub(crate) fn rename_message(seq: u32, index: u32, name: &str) -> Vec<u8> {
    let mut buf = link_request(seq, 0, index, 0, 0);
    attribute(&mut buf, IFLA_IFNAME, &ifname(name));
    finish(buf)
}

/// RTM_NEWLINK setting IFLA_MTU.
pub(crate) fn mtu_message(seq: u32, index: u32, mtu: u32) -> Vec<u8> {
    const IFLA_MTU: u16 = 4;
    let mut buf = link_request(seq, 0, index, 0, 0);
    attribute(&mut buf, IFLA_MTU, &mtu.to_ne_bytes());
    finish(buf)
}

/// RTM_NEWLINK creating the link NAME of KIND (`ip link add NAME type KIND`); it must not
/// exist yet.
pub(crate) fn link_add_message(seq: u32, name: &str, kind: &str) -> Vec<u8> {
    const IFLA_LINKINFO: u16 = 18;
    const IFLA_INFO_KIND: u16 = 1;
    let mut buf = link_request(seq, NLM_F_CREATE | NLM_F_EXCL, 0, 0, 0);
    attribute(&mut buf, IFLA_IFNAME, &ifname(name));
    let mut info = Vec::new();
    attribute(&mut info, IFLA_INFO_KIND, kind.as_bytes());
    attribute(&mut buf, IFLA_LINKINFO, &info);
    finish(buf)
}

/// RTM_NEWADDR for `address/prefix_len`, IPv4 or IPv6; an IPv4 address gets its subnet
/// broadcast (none for /31 and /32).
pub(crate) fn address_message(seq: u32, index: u32, address: IpAddr, prefix_len: u8) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    header(&mut buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, seq);
    let (family, octets) = match address {
        IpAddr::V4(a) => (AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (AF_INET6, a.octets().to_vec()),
    };
    buf.extend_from_slice(&[family, prefix_len, 0, RT_SCOPE_UNIVERSE]);
    buf.extend_from_slice(&index.to_ne_bytes());
    attribute(&mut buf, IFA_LOCAL, &octets);
    attribute(&mut buf, IFA_ADDRESS, &octets);
    if let IpAddr::V4(a) = address {
        if prefix_len < 31 {
            let host_bits = u32::MAX >> prefix_len;
            let broadcast = Ipv4Addr::from(u32::from(a) | host_bits);
            attribute(&mut buf, IFA_BROADCAST, &broadcast.octets());
        }
    }
    finish(buf)
}

/// RTM_NEWROUTE for `0.0.0.0/0 via router dev index` in the main table.
pub(crate) fn route_message(seq: u32, index: u32, router: Ipv4Addr, onlink: bool) -> Vec<u8> {
    let mut buf = Vec::with_capacity(48);
    header(&mut buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, seq);
    buf.extend_from_slice(&[
        AF_INET,
        0, // dst_len: default route
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ]);
    let flags = if onlink { RTNH_F_ONLINK } else { 0 };
    buf.extend_from_slice(&flags.to_ne_bytes());
    attribute(&mut buf, RTA_GATEWAY, &router.octets());
    attribute(&mut buf, RTA_OIF, &index.to_ne_bytes());
    finish(buf)
}

/// The errno carried by an NLMSG_ERROR reply (0 is an ACK); `None` for other messages.
pub(crate) fn ack_errno(reply: &[u8]) -> Option<i32> {
    let kind = u16::from_ne_bytes([*reply.get(4)?, *reply.get(5)?]);
    if kind != NLMSG_ERROR {
        return None;
    }
    let code = reply.get(NLMSG_HDR_LEN..NLMSG_HDR_LEN + 4)?;
    Some(-i32::from_ne_bytes([code[0], code[1], code[2], code[3]]))
}

struct Socket(NetlinkSocket);

impl Socket {
    fn open() -> io::Result<Socket> {
        NetlinkSocket::open(NETLINK_ROUTE).map(Socket)
    }

    /// Sends one request to the kernel and waits for its ACK.
    fn request(&self, message: &[u8]) -> io::Result<()> {
        self.0.send(message)?;
        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut buf = [0u8; 4096];
        // Only our own replies arrive (no multicast groups joined); the bound is a backstop.
        for _ in 0..16 {
            let got = self.0.recv(&mut buf, deadline)?;
            match ack_errno(&buf[..got]) {
                Some(0) => return Ok(()),
                Some(errno) => return Err(io::Error::from_raw_os_error(errno)),
                None => continue,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no acknowledgement from the kernel",
        ))
    }
}
