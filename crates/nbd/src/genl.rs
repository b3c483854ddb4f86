//! Hands a negotiated socket to the kernel with the generic-netlink `NBD_CMD_CONNECT`.
//!
//! The older ioctl interface (`NBD_SET_SOCK`, then `NBD_DO_IT`) needs a process that sits in
//! `NBD_DO_IT` for as long as the device lives; the netlink command returns at once and
//! leaves the kernel holding the socket, which is what an init that execs its successor
//! needs. Two requests are made, both encoded here by hand as in `alpinit-net`'s rtnetlink
//! code: `CTRL_CMD_GETFAMILY` for the id of the family "nbd" (generic netlink families get
//! their ids at registration), then `NBD_CMD_CONNECT` to that id.
//!
//! Numbers come from the kernel's `include/uapi/linux/genetlink.h` (controller commands and
//! attributes) and `include/uapi/linux/nbd-netlink.h` (family name, version, commands,
//! attributes and the `NBD_ATTR_SOCKETS` nesting); what the kernel requires of the message
//! (`NBD_ATTR_SOCKETS` and `NBD_ATTR_SIZE_BYTES` present, `CAP_SYS_ADMIN`) is in
//! `nbd_genl_connect` in `drivers/block/nbd.c`. Netlink headers and attributes are in host
//! byte order and 4-byte aligned.
//!
//! Every receive has a timeout, so a kernel that never answers cannot hang PID 1.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::{Export, NbdError};
use alpinit_net::netlink_socket::{attribute, finish_message as finish, message_header as header};
use alpinit_net::NetlinkSocket;

pub(crate) const NETLINK_GENERIC: libc::c_int = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_HDR_LEN: usize = 16;
const GENL_HDR_LEN: usize = 4;
/// `NLA_F_NESTED`, set on the type of an attribute that holds attributes.
const NLA_F_NESTED: u16 = 0x8000;
/// The flag bits of an attribute type (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// The version field of requests to the controller, as libnl fills it in.
const CTRL_VERSION: u8 = 1;

const NBD_GENL_FAMILY_NAME: &str = "nbd";
const NBD_GENL_VERSION: u8 = 1;
const NBD_CMD_CONNECT: u8 = 1;
const NBD_ATTR_INDEX: u16 = 1;
const NBD_ATTR_SIZE_BYTES: u16 = 2;
const NBD_ATTR_BLOCK_SIZE_BYTES: u16 = 3;
const NBD_ATTR_TIMEOUT: u16 = 4;
const NBD_ATTR_SERVER_FLAGS: u16 = 5;
const NBD_ATTR_SOCKETS: u16 = 7;
const NBD_SOCK_ITEM: u16 = 1;
const NBD_SOCK_FD: u16 = 1;

/// The device's logical block size. 512 is what the protocol recommends a client assume
/// when no size constraints were negotiated ("Size constraints" in `doc/proto.md`), and the
/// handshake requests none.
pub const BLOCK_SIZE: u64 = 512;

/// The kernel's per-request timeout for the device, in seconds.
///
/// Without one (0), a request to a server that went away waits forever, and so does every
/// process reading the device, PID 1 included while it mounts the root: the kernel only
/// logs "possible stuck request" and re-arms the timer. With one, such a request fails with
/// an I/O error the init can report. 30 s is the block layer's default request timeout; it
/// rides over a server restart or a short network outage, and a boot stuck on a dead server
/// learns it within half a minute. The cost: after the timeout the kernel marks the only
/// connection dead, so a longer outage ends the device rather than pausing it.
pub const IO_TIMEOUT_SECS: u64 = 30;

/// How long to wait for each kernel answer; it answers in microseconds.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Datagrams read while waiting for one answer: the kernel sends `NBD_CMD_CONNECT`'s own
/// reply (the device index) before the ACK. The bound is a backstop.
const MAX_DATAGRAMS: usize = 16;

/// Room for one answer; the controller's family message (with the family's operations and
/// multicast groups) is a few hundred bytes.
const RECV_BUF_LEN: usize = 8192;

const GETFAMILY_SEQ: u32 = 1;
const CONNECT_SEQ: u32 = 2;

/// Attaches `sock`, a stream socket that has completed the NBD handshake for `export`, to
/// `/dev/nbd{index}`.
///
/// Clears the socket's receive and send timeouts first: the kernel's receive loop uses the
/// socket as it is, so a receive timeout left from the handshake would end the device the
/// first time it stays idle that long. The kernel's own request timeout
/// ([`IO_TIMEOUT_SECS`]) takes their place. On success the kernel holds its own reference to
/// the socket and the caller may close its copy.
pub fn attach(sock: BorrowedFd<'_>, index: u32, export: &Export) -> Result<(), NbdError> {
    clear_timeouts(sock).map_err(NbdError::ClearTimeouts)?;
    let netlink = NetlinkSocket::open(NETLINK_GENERIC).map_err(NbdError::NetlinkSocket)?;
    let family = family_id(&netlink, NBD_GENL_FAMILY_NAME)?;

    const CONNECT: &str = "NBD_CMD_CONNECT";
    let request = connect_request(family, CONNECT_SEQ, index, export, sock.as_raw_fd());
    netlink
        .send(&request)
        .map_err(|source| NbdError::NetlinkSend {
            what: CONNECT,
            source,
        })?;
    let deadline = Instant::now() + ACK_TIMEOUT;
    let mut buf = vec![0u8; RECV_BUF_LEN];
    for _ in 0..MAX_DATAGRAMS {
        let got = netlink
            .recv(&mut buf, deadline)
            .map_err(|source| NbdError::NetlinkReceive {
                what: CONNECT,
                source,
            })?;
        match ack_errno(buf.get(..got).unwrap_or_default(), CONNECT_SEQ) {
            Some(0) => return Ok(()),
            Some(errno) => {
                return Err(NbdError::KernelConnect {
                    index,
                    errno,
                    source: io::Error::from_raw_os_error(errno),
                })
            }
            None => continue,
        }
    }
    Err(NbdError::NoAck { index })
}

/// Asks the kernel for the id of the generic netlink family `name`.
pub(crate) fn family_id(netlink: &NetlinkSocket, name: &str) -> Result<u16, NbdError> {
    const WHAT: &str = "CTRL_CMD_GETFAMILY";
    netlink
        .send(&family_request(GETFAMILY_SEQ, name))
        .map_err(|source| NbdError::NetlinkSend { what: WHAT, source })?;
    let mut buf = vec![0u8; RECV_BUF_LEN];
    // The socket is new and has joined no multicast group: the first datagram is the answer.
    let got = netlink
        .recv(&mut buf, Instant::now() + ACK_TIMEOUT)
        .map_err(|source| NbdError::NetlinkReceive { what: WHAT, source })?;
    parse_family_id(buf.get(..got).unwrap_or_default())
}

/// `CTRL_CMD_GETFAMILY` for the family "nbd", with sequence number `seq`.
///
/// No `NLM_F_ACK`: the answer is the family message itself, and a failure still comes back
/// as an `NLMSG_ERROR`.
pub fn getfamily_request(seq: u32) -> Vec<u8> {
    family_request(seq, NBD_GENL_FAMILY_NAME)
}

pub(crate) fn family_request(seq: u32, name: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    header(&mut buf, GENL_ID_CTRL, NLM_F_REQUEST, seq);
    buf.extend_from_slice(&[CTRL_CMD_GETFAMILY, CTRL_VERSION, 0, 0]);
    let mut value = name.as_bytes().to_vec();
    value.push(0);
    attribute(&mut buf, CTRL_ATTR_FAMILY_NAME, &value);
    finish(buf)
}

/// The family id in the kernel's answer to [`getfamily_request`].
///
/// An `NLMSG_ERROR` carrying an errno is [`NbdError::FamilyLookup`] (`ENOENT`: no such
/// family, the nbd driver is not loaded); a message without `CTRL_ATTR_FAMILY_ID` is
/// [`NbdError::NoFamilyId`]; bytes that hold no netlink message are
/// [`NbdError::MalformedFamilyReply`].
pub fn parse_family_id(reply: &[u8]) -> Result<u16, NbdError> {
    let mut seen = false;
    for (kind, payload) in messages(reply) {
        seen = true;
        if kind == NLMSG_ERROR {
            let errno = error_code(payload).ok_or(NbdError::MalformedFamilyReply)?;
            if errno != 0 {
                return Err(NbdError::FamilyLookup {
                    errno,
                    source: io::Error::from_raw_os_error(errno),
                });
            }
            continue;
        }
        if kind != GENL_ID_CTRL {
            continue;
        }
        let attributes = payload
            .get(GENL_HDR_LEN..)
            .ok_or(NbdError::MalformedFamilyReply)?;
        for (kind, value) in attributes_of(attributes) {
            if kind == CTRL_ATTR_FAMILY_ID {
                let id = value
                    .get(..2)
                    .and_then(|v| <[u8; 2]>::try_from(v).ok())
                    .ok_or(NbdError::MalformedFamilyReply)?;
                return Ok(u16::from_ne_bytes(id));
            }
        }
        return Err(NbdError::NoFamilyId);
    }
    Err(if seen {
        NbdError::NoFamilyId
    } else {
        NbdError::MalformedFamilyReply
    })
}

/// `NBD_CMD_CONNECT` to the nbd family `family`: device `index`, the export's size and
/// transmission flags, [`BLOCK_SIZE`], [`IO_TIMEOUT_SECS`], and the socket `fd`; the kernel
/// is asked to acknowledge.
pub fn connect_request(family: u16, seq: u32, index: u32, export: &Export, fd: i32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96);
    header(&mut buf, family, NLM_F_REQUEST | NLM_F_ACK, seq);
    buf.extend_from_slice(&[NBD_CMD_CONNECT, NBD_GENL_VERSION, 0, 0]);
    attribute(&mut buf, NBD_ATTR_INDEX, &index.to_ne_bytes());
    attribute(&mut buf, NBD_ATTR_SIZE_BYTES, &export.size.to_ne_bytes());
    attribute(
        &mut buf,
        NBD_ATTR_BLOCK_SIZE_BYTES,
        &BLOCK_SIZE.to_ne_bytes(),
    );
    attribute(&mut buf, NBD_ATTR_TIMEOUT, &IO_TIMEOUT_SECS.to_ne_bytes());
    let flags = u64::from(export.transmission_flags);
    attribute(&mut buf, NBD_ATTR_SERVER_FLAGS, &flags.to_ne_bytes());
    // The kernel reads the descriptor as a u32 and casts it back to int.
    let mut item = Vec::with_capacity(8);
    attribute(&mut item, NBD_SOCK_FD, &(fd as u32).to_ne_bytes());
    let mut sockets = Vec::with_capacity(12);
    attribute(&mut sockets, NBD_SOCK_ITEM | NLA_F_NESTED, &item);
    attribute(&mut buf, NBD_ATTR_SOCKETS | NLA_F_NESTED, &sockets);
    finish(buf)
}

/// The errno of the `NLMSG_ERROR` answering sequence number `seq` in `reply` (0 is an ACK);
/// `None` when the datagram holds no such message.
pub fn ack_errno(reply: &[u8], seq: u32) -> Option<i32> {
    let mut rest = reply;
    while let Some((kind, this_seq, payload, next)) = split_message(rest) {
        if kind == NLMSG_ERROR && this_seq == seq {
            return error_code(payload);
        }
        rest = next;
    }
    None
}

/// The first netlink message of `bytes`: type, sequence number, payload, and the bytes after
/// it; `None` when no complete message is left.
fn split_message(bytes: &[u8]) -> Option<(u16, u32, &[u8], &[u8])> {
    let len = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let kind = u16::from_ne_bytes(bytes.get(4..6)?.try_into().ok()?);
    let seq = u32::from_ne_bytes(bytes.get(8..12)?.try_into().ok()?);
    if len < NLMSG_HDR_LEN {
        return None;
    }
    let payload = bytes.get(NLMSG_HDR_LEN..len)?;
    let next = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
    Some((kind, seq, payload, next))
}

/// The type and payload of each message in a datagram.
fn messages(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let (kind, _, payload, next) = split_message(bytes)?;
        bytes = next;
        Some((kind, payload))
    })
}

/// The type (flag bits cleared) and value of each attribute in `bytes`.
fn attributes_of(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(bytes.get(..2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(bytes.get(2..4)?.try_into().ok()?);
        if len < 4 {
            return None;
        }
        let value = bytes.get(4..len)?;
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind & NLA_TYPE_MASK, value))
    })
}

/// The positive errno of an `NLMSG_ERROR` payload (0 for an ACK).
fn error_code(payload: &[u8]) -> Option<i32> {
    let code = i32::from_ne_bytes(payload.get(..4)?.try_into().ok()?);
    Some(code.checked_neg().unwrap_or(i32::MAX))
}

/// Sets SO_RCVTIMEO and SO_SNDTIMEO of `sock` to "never".
pub(crate) fn clear_timeouts(sock: BorrowedFd<'_>) -> io::Result<()> {
    let never = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: the fd is borrowed, so it is open for the call; `never` is a valid
        // timeval and the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                std::ptr::from_ref(&never).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
