//! A netlink socket to the kernel: requests out, datagrams in with a
//! deadline, so a kernel that never answers cannot hang PID 1; and the
//! message encoding both of its users need. Shared by rtnetlink
//! (`rtnetlink.rs`) and the NBD attach (`alpinit_nbd`, generic netlink).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// An unbound netlink socket of one protocol family (`NETLINK_ROUTE`,
/// `NETLINK_GENERIC`), talking to the kernel.
pub struct NetlinkSocket(OwnedFd);

impl NetlinkSocket {
    /// A socket of netlink `protocol` (`NETLINK_ROUTE` 0, `NETLINK_GENERIC` 16).
    pub fn open(protocol: libc::c_int) -> io::Result<NetlinkSocket> {
        // SAFETY: plain socket(2) call with integer arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
        Ok(NetlinkSocket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// One message to the kernel.
    pub fn send(&self, message: &[u8]) -> io::Result<()> {
        // SAFETY: the fd is live and `message` is valid for `message.len()` bytes. An
        // unbound, unconnected netlink socket sends to the kernel (port 0).
        let sent = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One datagram into `buf` (truncated if longer), waiting until `deadline` at most.
    pub fn recv(&self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer from the kernel",
                ));
            }
            let mut poll = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // Below 2 s, so the conversion cannot truncate; rounded up so that a wait
            // under a millisecond does not spin.
            let millis = left.as_micros().div_ceil(1000) as libc::c_int;
            // SAFETY: `poll` is one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut poll, 1, millis) };
            if ready < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            if ready == 0 {
                continue; // the deadline check above ends the wait
            }
            // SAFETY: the fd is live and `buf` is writable for `buf.len()` bytes.
            let got =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if got < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            return Ok((got as usize).min(buf.len()));
        }
    }
}

/// Starts a netlink message: `struct nlmsghdr` with its length left for
/// [`finish_message`] (`include/uapi/linux/netlink.h`).
pub fn message_header(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by `finish_message`
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
}

/// One attribute (`struct nlattr`), padded to 4 bytes. Values here are at
/// most a few dozen bytes.
pub fn attribute(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// The message with its length written into its header.
pub fn finish_message(mut buf: Vec<u8>) -> Vec<u8> {
    let len = (buf.len() as u32).to_ne_bytes();
    if let Some(head) = buf.get_mut(..4) {
        head.copy_from_slice(&len);
    }
    buf
}
