//! DHCP (RFC 2131/2132) messages: the two the client sends and a strict decoder for replies.
//!
//! The decoder treats every reply as hostile: lengths are checked before each read, repeated
//! options are concatenated (RFC 3396) with a size bound, text options must be plain host
//! names, and [`Reply::to_lease`] rejects addresses and masks that cannot be configured.

use std::net::Ipv4Addr;

use crate::ipconfig::{classful_mask, prefix_len};
use crate::lease::Lease;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const HTYPE_ETHERNET: u8 = 1;
/// Fixed BOOTP header up to (not including) the magic cookie.
const HEADER_LEN: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Ask servers to broadcast replies: the UDP socket has no address to receive unicast on.
const FLAG_BROADCAST: u16 = 0x8000;

const OPT_PAD: u8 = 0;
const OPT_SUBNET_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_HOSTNAME: u8 = 12;
const OPT_DOMAIN: u8 = 15;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMETERS: u8 = 55;
const OPT_MAX_SIZE: u8 = 57;
const OPT_CLIENT_ID: u8 = 61;
const OPT_END: u8 = 255;

/// Upper bound on one option after RFC 3396 concatenation; no option we read needs more.
const MAX_OPTION_LEN: usize = 1024;
/// At most this many routers / DNS servers are kept from a reply.
const MAX_ADDRESSES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("DHCP packet too short ({0} bytes)")]
    TooShort(usize),
    #[error("not a BOOTP reply (op {0})")]
    NotReply(u8),
    #[error("not an Ethernet DHCP packet (htype {htype}, hlen {hlen})")]
    Hardware { htype: u8, hlen: u8 },
    #[error("DHCP magic cookie missing")]
    NoMagicCookie,
    #[error("DHCP option {code} at offset {offset} runs past the end of the packet")]
    OptionTruncated { code: u8, offset: usize },
    #[error("DHCP option {code} is too long")]
    OptionTooLong { code: u8 },
    #[error("DHCP option {code} has a malformed value")]
    OptionMalformed { code: u8 },
    #[error("DHCP reply has no message type")]
    NoMessageType,
    #[error("DHCP reply offers the unusable address {0}")]
    BadAddress(Ipv4Addr),
    #[error("DHCP reply has the unusable netmask {0}")]
    BadMask(Ipv4Addr),
}

/// A decoded server reply; only the fields the client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub xid: u32,
    pub chaddr: [u8; 6],
    pub message_type: MessageType,
    pub yiaddr: Ipv4Addr,
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub hostname: Option<String>,
    pub lease_time: Option<u32>,
    pub server_id: Option<Ipv4Addr>,
}

/// DHCPDISCOVER with the broadcast flag, our MAC as chaddr and client id, and the
/// parameter request list.
pub fn encode_discover(xid: u32, mac: [u8; 6]) -> Vec<u8> {
    let mut packet = header(xid, mac);
    push_common(&mut packet, MessageType::Discover, mac);
    packet.push(OPT_END);
    packet
}

/// DHCPREQUEST (SELECTING state) for the `requested` address offered by `server`.
pub fn encode_request(xid: u32, mac: [u8; 6], requested: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    let mut packet = header(xid, mac);
    push_common(&mut packet, MessageType::Request, mac);
    push_option(&mut packet, OPT_REQUESTED_IP, &requested.octets());
    push_option(&mut packet, OPT_SERVER_ID, &server.octets());
    packet.push(OPT_END);
    packet
}

fn header(xid: u32, mac: [u8; 6]) -> Vec<u8> {
    let mut packet = vec![0u8; HEADER_LEN];
    packet[0] = BOOTREQUEST;
    packet[1] = HTYPE_ETHERNET;
    packet[2] = 6;
    packet[4..8].copy_from_slice(&xid.to_be_bytes());
    packet[10..12].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
    packet[28..34].copy_from_slice(&mac);
    packet.extend_from_slice(&MAGIC_COOKIE);
    packet
}

fn push_common(packet: &mut Vec<u8>, kind: MessageType, mac: [u8; 6]) {
    push_option(packet, OPT_MESSAGE_TYPE, &[kind as u8]);
    let mut client_id = vec![HTYPE_ETHERNET];
    client_id.extend_from_slice(&mac);
    push_option(packet, OPT_CLIENT_ID, &client_id);
    push_option(packet, OPT_MAX_SIZE, &1500u16.to_be_bytes());
    push_option(
        packet,
        OPT_PARAMETERS,
        &[
            OPT_SUBNET_MASK,
            OPT_ROUTER,
            OPT_DNS,
            OPT_HOSTNAME,
            OPT_DOMAIN,
            OPT_LEASE_TIME,
            OPT_SERVER_ID,
        ],
    );
}

fn push_option(packet: &mut Vec<u8>, code: u8, value: &[u8]) {
    packet.push(code);
    packet.push(value.len() as u8);
    packet.extend_from_slice(value);
}

/// Decodes a BOOTREPLY. Requests (op 1) are rejected: on a shared segment the client also
/// hears other clients' broadcasts.
pub fn decode(buf: &[u8]) -> Result<Reply, PacketError> {
    if buf.len() < HEADER_LEN + MAGIC_COOKIE.len() {
        return Err(PacketError::TooShort(buf.len()));
    }
    if buf[0] != BOOTREPLY {
        return Err(PacketError::NotReply(buf[0]));
    }
    if buf[1] != HTYPE_ETHERNET || buf[2] != 6 {
        return Err(PacketError::Hardware {
            htype: buf[1],
            hlen: buf[2],
        });
    }
    if buf[HEADER_LEN..HEADER_LEN + 4] != MAGIC_COOKIE {
        return Err(PacketError::NoMagicCookie);
    }
    let mut options: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut offset = HEADER_LEN + 4;
    while offset < buf.len() {
        let code = buf[offset];
        if code == OPT_END {
            break;
        }
        if code == OPT_PAD {
            offset += 1;
            continue;
        }
        let len = *buf
            .get(offset + 1)
            .ok_or(PacketError::OptionTruncated { code, offset })? as usize;
        let value = buf
            .get(offset + 2..offset + 2 + len)
            .ok_or(PacketError::OptionTruncated { code, offset })?;
        match options.iter_mut().find(|(c, _)| *c == code) {
            Some((_, existing)) => {
                if existing.len() + value.len() > MAX_OPTION_LEN {
                    return Err(PacketError::OptionTooLong { code });
                }
                existing.extend_from_slice(value);
            }
            None => options.push((code, value.to_vec())),
        }
        offset += 2 + len;
    }
    let get = |code: u8| options.iter().find(|(c, _)| *c == code).map(|(_, v)| v);

    let message_type = match get(OPT_MESSAGE_TYPE) {
        Some(v) if v.len() == 1 => {
            MessageType::from_u8(v[0]).ok_or(PacketError::OptionMalformed {
                code: OPT_MESSAGE_TYPE,
            })?
        }
        Some(_) => {
            return Err(PacketError::OptionMalformed {
                code: OPT_MESSAGE_TYPE,
            })
        }
        None => return Err(PacketError::NoMessageType),
    };
    let one_addr = |code: u8| -> Result<Option<Ipv4Addr>, PacketError> {
        match get(code) {
            None => Ok(None),
            Some(v) if v.len() == 4 => Ok(Some(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
            Some(_) => Err(PacketError::OptionMalformed { code }),
        }
    };
    let addr_list = |code: u8| -> Result<Vec<Ipv4Addr>, PacketError> {
        match get(code) {
            None => Ok(Vec::new()),
            Some(v) if !v.is_empty() && v.len() % 4 == 0 => Ok(v
                .chunks_exact(4)
                .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                .filter(|a| usable_host(*a))
                .take(MAX_ADDRESSES)
                .collect()),
            Some(_) => Err(PacketError::OptionMalformed { code }),
        }
    };
    let lease_time = match get(OPT_LEASE_TIME) {
        None => None,
        Some(v) if v.len() == 4 => Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
        Some(_) => {
            return Err(PacketError::OptionMalformed {
                code: OPT_LEASE_TIME,
            })
        }
    };
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&buf[28..34]);
    Ok(Reply {
        xid: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        chaddr,
        message_type,
        yiaddr: Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]),
        subnet_mask: one_addr(OPT_SUBNET_MASK)?,
        routers: addr_list(OPT_ROUTER)?,
        dns: addr_list(OPT_DNS)?,
        // A malformed name is dropped rather than failing the lease: it is only cosmetic.
        domain: get(OPT_DOMAIN).and_then(|v| host_name(v)),
        hostname: get(OPT_HOSTNAME).and_then(|v| host_name(v)),
        lease_time,
        server_id: one_addr(OPT_SERVER_ID)?,
    })
}

fn usable_host(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() || addr.is_loopback())
}

/// A DNS name made of letters, digits, `-`, `_` and `.` (trailing NULs from sloppy servers
/// removed); anything else could smuggle lines into resolv.conf.
fn host_name(value: &[u8]) -> Option<String> {
    let end = value.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let value = &value[..end];
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b));
    ok.then(|| String::from_utf8_lossy(value).into_owned())
}

impl Reply {
    /// Validates the reply as a configuration for `iface` and turns it into a [`Lease`].
    ///
    /// The address must be a usable host address and the mask contiguous and not zero; a
    /// missing mask gets the classful default (what busybox `ifconfig` would have done). A
    /// router equal to our own address is dropped; a router outside the subnet is kept and
    /// installed as an on-link gateway by [`crate::apply`].
    pub fn to_lease(&self, iface: &str, mac: &str) -> Result<Lease, PacketError> {
        if !usable_host(self.yiaddr) {
            return Err(PacketError::BadAddress(self.yiaddr));
        }
        let mask = self
            .subnet_mask
            .unwrap_or_else(|| classful_mask(self.yiaddr));
        let prefix_len = prefix_len(mask).ok_or(PacketError::BadMask(mask))?;
        let router = self.routers.iter().copied().find(|r| *r != self.yiaddr);
        Ok(Lease {
            iface: iface.to_owned(),
            mac: mac.to_owned(),
            address: self.yiaddr,
            prefix_len,
            router,
            dns: self.dns.clone(),
            domain: self.domain.clone(),
            hostname: self.hostname.clone(),
            server: self.server_id,
        })
    }
}

/// Encodes a server reply; the counterpart of [`decode`] for test servers and fuzz seeds.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut packet = header(reply.xid, reply.chaddr);
    packet[0] = BOOTREPLY;
    packet[16..20].copy_from_slice(&reply.yiaddr.octets());
    push_option(&mut packet, OPT_MESSAGE_TYPE, &[reply.message_type as u8]);
    if let Some(server) = reply.server_id {
        push_option(&mut packet, OPT_SERVER_ID, &server.octets());
    }
    if let Some(mask) = reply.subnet_mask {
        push_option(&mut packet, OPT_SUBNET_MASK, &mask.octets());
    }
    for (code, list) in [(OPT_ROUTER, &reply.routers), (OPT_DNS, &reply.dns)] {
        if !list.is_empty() {
            let bytes: Vec<u8> = list.iter().flat_map(|a| a.octets()).collect();
            push_option(&mut packet, code, &bytes);
        }
    }
    for (code, text) in [(OPT_DOMAIN, &reply.domain), (OPT_HOSTNAME, &reply.hostname)] {
        if let Some(text) = text {
            push_option(&mut packet, code, text.as_bytes());
        }
    }
    if let Some(time) = reply.lease_time {
        push_option(&mut packet, OPT_LEASE_TIME, &time.to_be_bytes());
    }
    packet.push(OPT_END);
    packet
}
