//! The in-process DHCP client: DISCOVER → OFFER → REQUEST → ACK with bounded retries.
//!
//! # Socket choice
//!
//! A plain UDP socket bound to `0.0.0.0:68` with `SO_BINDTODEVICE` and `SO_BROADCAST`, not
//! an `AF_PACKET` socket. Linux sends to `255.255.255.255` out of the bound device with
//! source `0.0.0.0` before the interface has an address, and because every request sets the
//! BOOTP broadcast flag, servers broadcast their replies, which the socket receives. This
//! avoids hand-built IP/UDP headers, checksums and a BPF filter. The cost: a server that
//! ignores the broadcast flag and unicasts to the offered address is not heard; such
//! servers are rare (QEMU's user network, dnsmasq and ISC dhcpd honour the flag).
//!
//! The socket layer is the [`DhcpTransport`] trait, so the whole exchange is tested against
//! a fake server on loopback.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::dhcp_packet::{self, MessageType, Reply, CLIENT_PORT, SERVER_PORT};
use crate::interface::Links;
use crate::lease::Lease;
use crate::rtnetlink::KernelLinks;
use crate::NetError;

/// How long each attempt waits for the server, doubling like RFC 2131 §4.1 suggests.
pub const BACKOFF: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// Sends and receives DHCP datagrams.
pub trait DhcpTransport {
    fn send(&mut self, packet: &[u8]) -> io::Result<()>;
    /// Waits at most `timeout` for one datagram; `Ok(None)` when none arrived.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>>;
}

/// The real transport: UDP from port 68 to a server address (broadcast on a real network).
pub struct UdpTransport {
    socket: UdpSocket,
    server: SocketAddrV4,
}

impl UdpTransport {
    /// `0.0.0.0:68` bound to `iface`, sending to `255.255.255.255:67`. Needs `CAP_NET_RAW`
    /// (for `SO_BINDTODEVICE`) and `CAP_NET_BIND_SERVICE`, which PID 1 has.
    pub fn open(iface: &str) -> io::Result<UdpTransport> {
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT))?;
        bind_to_device(&socket, iface)?;
        socket.set_broadcast(true)?;
        Ok(UdpTransport {
            socket,
            server: SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT),
        })
    }

    /// A transport between arbitrary addresses, without device binding; for tests on
    /// loopback with unprivileged ports.
    pub fn with_addresses(local: SocketAddrV4, server: SocketAddrV4) -> io::Result<UdpTransport> {
        Ok(UdpTransport {
            socket: UdpSocket::bind(local)?,
            server,
        })
    }
}

fn bind_to_device(socket: &UdpSocket, iface: &str) -> io::Result<()> {
    let name = iface.as_bytes();
    // SAFETY: the fd is a live socket owned by `socket`; the option value points at `name`,
    // valid for `name.len()` bytes for the duration of the call, and the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl DhcpTransport for UdpTransport {
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.socket.send_to(packet, self.server).map(|_| ())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        // A zero read timeout means "block forever" to the kernel; never ask for that.
        let timeout = timeout.max(Duration::from_millis(1));
        self.socket.set_read_timeout(Some(timeout))?;
        match self.socket.recv_from(buf) {
            Ok((len, _)) => Ok(Some(len)),
            // EINTR too: PID 1 takes signals, and the caller re-checks its deadline.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Brings `iface` up and obtains a lease on it before `deadline`, with [`BACKOFF`].
pub fn dhcp(iface: &str, mac: [u8; 6], deadline: Instant) -> Result<Lease, NetError> {
    KernelLinks
        .set_up(iface, true)
        .map_err(|source| NetError::Netlink {
            iface: iface.to_owned(),
            source: crate::NetlinkError::Request {
                what: "link up",
                source,
            },
        })?;
    let mut transport = UdpTransport::open(iface).map_err(|source| NetError::DhcpSocket {
        iface: iface.to_owned(),
        source,
    })?;
    dhcp_with(&mut transport, iface, mac, deadline, &BACKOFF)
}

/// The DHCP exchange over any transport. Each entry of `backoff` is one attempt (DISCOVER,
/// then REQUEST for the first acceptable OFFER) that may wait that long for each reply;
/// nothing waits past `deadline`. Replies with another xid or chaddr, requests from other
/// clients and undecodable or unusable packets are ignored.
pub fn dhcp_with(
    transport: &mut dyn DhcpTransport,
    iface: &str,
    mac: [u8; 6],
    deadline: Instant,
    backoff: &[Duration],
) -> Result<Lease, NetError> {
    let mac_text = format_mac(mac);
    let io_error = |source| NetError::DhcpIo {
        iface: iface.to_owned(),
        source,
    };
    let mut last_nak = None;
    let mut last_offer = None;
    let mut attempts = 0;
    for (attempt, wait) in backoff.iter().enumerate() {
        if Instant::now() >= deadline {
            break;
        }
        attempts += 1;
        let xid = transaction_id(mac, attempt);
        transport
            .send(&dhcp_packet::encode_discover(xid, mac))
            .map_err(io_error)?;
        let offer = receive(transport, xid, mac, *wait, deadline, |reply| {
            reply.message_type == MessageType::Offer
                && reply.server_id.is_some()
                && reply.to_lease(iface, &mac_text).is_ok()
        })
        .map_err(io_error)?;
        let Some(offer) = offer else { continue };
        let Some(server) = offer.server_id else {
            continue;
        };
        last_offer = Some((server, offer.yiaddr));
        transport
            .send(&dhcp_packet::encode_request(xid, mac, offer.yiaddr, server))
            .map_err(io_error)?;
        let answer = receive(transport, xid, mac, *wait, deadline, |reply| {
            reply.server_id.is_none_or(|id| id == server)
                && matches!(reply.message_type, MessageType::Ack | MessageType::Nak)
        })
        .map_err(io_error)?;
        match answer {
            Some(reply) if reply.message_type == MessageType::Ack => {
                match reply.to_lease(iface, &mac_text) {
                    Ok(mut lease) => {
                        lease.server = lease.server.or(Some(server));
                        return Ok(lease);
                    }
                    Err(_) => continue,
                }
            }
            Some(_) => last_nak = Some(server),
            None => {}
        }
    }
    Err(match (last_nak, last_offer) {
        (Some(server), _) => NetError::DhcpNak {
            iface: iface.to_owned(),
            server,
        },
        (None, Some((server, offered))) => NetError::DhcpNoAck {
            iface: iface.to_owned(),
            server,
            offered,
            attempts,
        },
        (None, None) => NetError::DhcpTimeout {
            iface: iface.to_owned(),
            attempts,
        },
    })
}

/// Waits up to `wait` (and never past `deadline`) for a reply to `xid` that `accept` likes.
fn receive(
    transport: &mut dyn DhcpTransport,
    xid: u32,
    mac: [u8; 6],
    wait: Duration,
    deadline: Instant,
    accept: impl Fn(&Reply) -> bool,
) -> io::Result<Option<Reply>> {
    let until = (Instant::now() + wait).min(deadline);
    let mut buf = [0u8; 1500];
    loop {
        let now = Instant::now();
        if now >= until {
            return Ok(None);
        }
        let Some(len) = transport.recv(&mut buf, until - now)? else {
            continue;
        };
        if let Ok(reply) = dhcp_packet::decode(&buf[..len]) {
            if reply.xid == xid && reply.chaddr == mac && accept(&reply) {
                return Ok(Some(reply));
            }
        }
    }
}

/// A fresh xid per attempt. `getrandom` without blocking: early in boot the pool may not be
/// ready, and then the clock and MAC are unpredictable enough to avoid collisions between
/// machines, which is all an xid needs.
fn transaction_id(mac: [u8; 6], attempt: usize) -> u32 {
    let mut bytes = [0u8; 4];
    // SAFETY: `bytes` is a writable buffer of exactly the length passed.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), 4, libc::GRND_NONBLOCK) };
    if got == 4 {
        return u32::from_ne_bytes(bytes);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mac_bits = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    nanos ^ mac_bits.rotate_left(7) ^ (attempt as u32).wrapping_mul(0x9E37_79B9)
}

pub(crate) fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
