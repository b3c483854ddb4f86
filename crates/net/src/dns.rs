//! A minimal stub resolver: one A-record query over UDP to the lease's DNS servers.
//!
//! Enough to turn the host of an apkovl URL into an address; no caching, no TCP fallback
//! (an A answer always fits in 512 bytes), no search domains. Each query uses a connected
//! socket, so only the queried server's replies are read, and the id must match.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PORT: u16 = 53;
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
/// Per-query wait; two rounds over all servers, always bounded by the caller's deadline.
const TRY_TIMEOUT: Duration = Duration::from_secs(2);
const ROUNDS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot resolve {host}: no DNS server is known")]
    NoServers { host: String },
    #[error("cannot resolve {host}: not a valid host name")]
    BadName { host: String },
    #[error("cannot resolve {host}: the name does not exist")]
    NotFound { host: String },
    #[error("cannot resolve {host}: no answer from {servers} DNS server(s) in time")]
    Timeout { host: String, servers: usize },
    #[error("cannot resolve {host}: socket error")]
    Io {
        host: String,
        #[source]
        source: io::Error,
    },
}

/// Resolves `host` to an IPv4 address; a literal address is returned as is.
pub fn resolve(host: &str, servers: &[Ipv4Addr], deadline: Instant) -> Result<Ipv4Addr, DnsError> {
    let servers: Vec<SocketAddrV4> = servers
        .iter()
        .map(|s| SocketAddrV4::new(*s, PORT))
        .collect();
    resolve_at(host, &servers, deadline)
}

pub(crate) fn resolve_at(
    host: &str,
    servers: &[SocketAddrV4],
    deadline: Instant,
) -> Result<Ipv4Addr, DnsError> {
    if let Ok(addr) = host.parse::<Ipv4Addr>() {
        return Ok(addr);
    }
    let host_owned = || host.to_owned();
    let io_error = |source| DnsError::Io {
        host: host_owned(),
        source,
    };
    if servers.is_empty() {
        return Err(DnsError::NoServers { host: host_owned() });
    }
    let mut not_found = false;
    for round in 0..ROUNDS {
        for server in servers {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let id = query_id(round);
            let query =
                encode_query(id, host).ok_or_else(|| DnsError::BadName { host: host_owned() })?;
            // An address value, not the text "0.0.0.0:0": a `&str` address goes through
            // getaddrinfo when it does not parse, which links musl's whole resolver
            // (about 12 kB) into the init.
            let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
            let socket = UdpSocket::bind(any).map_err(io_error)?;
            socket.connect(server).map_err(io_error)?;
            let wait = TRY_TIMEOUT
                .min(deadline - now)
                .max(Duration::from_millis(1));
            socket.set_read_timeout(Some(wait)).map_err(io_error)?;
            if socket.send(&query).is_err() {
                continue;
            }
            let until = now + wait;
            let mut buf = [0u8; 512];
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                let left = left.max(Duration::from_millis(1));
                socket.set_read_timeout(Some(left)).map_err(io_error)?;
                let len = match socket.recv(&mut buf) {
                    Ok(len) => len,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Timeout or ICMP unreachable: try the next server.
                    Err(_) => break,
                };
                match decode_answer(id, &buf[..len]) {
                    Answer::Address(addr) => return Ok(addr),
                    Answer::NoSuchName => not_found = true,
                    Answer::Ignore => continue,
                }
                break;
            }
        }
        if not_found {
            break;
        }
    }
    Err(if not_found {
        DnsError::NotFound { host: host_owned() }
    } else {
        DnsError::Timeout {
            host: host_owned(),
            servers: servers.len(),
        }
    })
}

fn query_id(round: usize) -> u16 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos as u16) ^ (round as u16).wrapping_mul(0x9E37)
}

/// A recursive A/IN query, or `None` when `host` is not a valid DNS name.
pub(crate) fn encode_query(id: u16, host: &str) -> Option<Vec<u8>> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    let mut packet = Vec::with_capacity(18 + host.len());
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in host.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return None;
        }
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&TYPE_A.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    Some(packet)
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Address(Ipv4Addr),
    NoSuchName,
    /// Not ours, malformed, an error other than NXDOMAIN, or no A record.
    Ignore,
}

/// Reads the first A record of a response to query `id`.
pub(crate) fn decode_answer(id: u16, packet: &[u8]) -> Answer {
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
    };
    let parse = || -> Option<Answer> {
        if be16(0)? != id || packet.get(2)? & 0x80 == 0 {
            return Some(Answer::Ignore);
        }
        match packet.get(3)? & 0x0f {
            0 => {}
            3 => return Some(Answer::NoSuchName),
            _ => return Some(Answer::Ignore),
        }
        let questions = be16(4)?;
        let answers = be16(6)?;
        let mut at = 12;
        for _ in 0..questions {
            at = skip_name(packet, at)? + 4;
        }
        for _ in 0..answers {
            at = skip_name(packet, at)?;
            let (kind, class, len) = (be16(at)?, be16(at + 2)?, usize::from(be16(at + 8)?));
            let data = packet.get(at + 10..at + 10 + len)?;
            if kind == TYPE_A && class == CLASS_IN && len == 4 {
                return Some(Answer::Address(Ipv4Addr::new(
                    data[0], data[1], data[2], data[3],
                )));
            }
            at += 10 + len;
        }
        Some(Answer::Ignore)
    };
    parse().unwrap_or(Answer::Ignore)
}

/// The offset after a (possibly compressed) name starting at `at`. A compression pointer
/// ends the name in place, so no pointer is followed and loops are impossible.
fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *packet.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => {
                packet.get(at + 1)?;
                return Some(at + 2);
            }
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}
