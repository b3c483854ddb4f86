//! The `NETLINK_KOBJECT_UEVENT` socket, accepting only messages from the kernel.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType, UnixCredentials,
};

use crate::event::{parse, ParseError};

/// Receive buffer for one datagram, as in nlplug-findfs.
const DATAGRAM_BUFFER: usize = 16 * 1024;

/// Anything shorter cannot be a real uevent (nlplug-findfs uses the same bound).
const MIN_DATAGRAM: usize = 32;

/// Subscribe to every multicast group; the kernel uses group 1.
const ALL_GROUPS: u32 = u32::MAX;

/// Opening or configuring the socket failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot create the uevent netlink socket")]
    Create(#[source] std::io::Error),
    #[error("cannot set the uevent receive buffer to {size} bytes")]
    ReceiveBuffer {
        size: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the uevent receive buffer size")]
    ReadBufferSize(#[source] std::io::Error),
    #[error("cannot enable SO_PASSCRED on the uevent socket")]
    PassCred(#[source] std::io::Error),
    #[error("cannot bind the uevent socket")]
    Bind(#[source] std::io::Error),
    #[error("cannot read the uevent socket address")]
    Address(#[source] std::io::Error),
}

/// Receiving one event failed; none of these is fatal for the listener.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The kernel dropped events (`ENOBUFS`): rescan sysfs and keep listening.
    #[error("uevent receive buffer overflow, events were lost")]
    Overflow,
    #[error("cannot receive from the uevent socket")]
    Receive(#[source] std::io::Error),
    /// A kernel message that failed validation (e.g. a `DEVNAME` outside `/dev`).
    #[error("rejected a kernel uevent")]
    Parse(#[source] ParseError),
}

/// Why a datagram was discarded before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Discard {
    Size,
    Truncated,
    NotKernel,
    NoCredentials,
    NotRoot,
}

/// What `recvmsg` reported about one datagram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Envelope {
    pub(crate) len: usize,
    pub(crate) truncated: bool,
    pub(crate) sender_port: Option<u32>,
    pub(crate) uid: Option<u32>,
}

impl Envelope {
    /// Only the kernel (port 0, uid 0) may tell PID 1 about devices; CVE-2009-1185 was udev
    /// trusting anyone on this socket.
    pub(crate) fn check(&self) -> Result<(), Discard> {
        if self.truncated {
            return Err(Discard::Truncated);
        }
        if self.len < MIN_DATAGRAM || self.len >= DATAGRAM_BUFFER {
            return Err(Discard::Size);
        }
        if self.sender_port != Some(0) {
            return Err(Discard::NotKernel);
        }
        match self.uid {
            None => Err(Discard::NoCredentials),
            Some(0) => Ok(()),
            Some(_) => Err(Discard::NotRoot),
        }
    }
}

/// A nonblocking uevent listener bound to all groups.
#[derive(Debug)]
pub struct UeventSocket {
    fd: OwnedFd,
    dropped: AtomicU64,
}

impl UeventSocket {
    /// Opens the socket with a receive buffer of `bufsize` bytes.
    ///
    /// `SO_RCVBUFFORCE` (needs `CAP_NET_ADMIN`) is tried first because `SO_RCVBUF` is silently
    /// capped at `net.core.rmem_max`; [`UeventSocket::buffer_size`] reports what was granted.
    pub fn open(bufsize: usize) -> Result<Self, SocketError> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .map_err(|errno| SocketError::Create(errno.into()))?;
        // The option is an `int`; larger requests would wrap around.
        let size = bufsize.min(i32::MAX as usize);
        socket::setsockopt(&fd, sockopt::RcvBufForce, &size)
            .or_else(|_| socket::setsockopt(&fd, sockopt::RcvBuf, &size))
            .map_err(|errno| SocketError::ReceiveBuffer {
                size,
                source: errno.into(),
            })?;
        socket::setsockopt(&fd, sockopt::PassCred, &true)
            .map_err(|errno| SocketError::PassCred(errno.into()))?;
        // Port 0 lets the kernel pick a unique port id, so other netlink users in this
        // process cannot collide with us.
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, ALL_GROUPS))
            .map_err(|errno| SocketError::Bind(errno.into()))?;
        Ok(Self {
            fd,
            dropped: AtomicU64::new(0),
        })
    }

    /// The receive buffer size the kernel granted (it reports twice the requested value).
    pub fn buffer_size(&self) -> Result<usize, SocketError> {
        socket::getsockopt(&self.fd, sockopt::RcvBuf)
            .map_err(|errno| SocketError::ReadBufferSize(errno.into()))
    }

    /// The netlink port id the kernel assigned to this socket.
    pub fn port_id(&self) -> Result<u32, SocketError> {
        socket::getsockname::<NetlinkAddr>(self.fd.as_raw_fd())
            .map(|address| address.pid())
            .map_err(|errno| SocketError::Address(errno.into()))
    }

    /// The next kernel event; `Ok(None)` when nothing is queued.
    ///
    /// Datagrams that are not from the kernel, lack credentials, or have an implausible size
    /// are discarded and counted in [`UeventSocket::dropped`].
    pub fn recv(&self) -> Result<Option<crate::Uevent>, RecvError> {
        let mut buffer = [0u8; DATAGRAM_BUFFER];
        loop {
            let envelope = match self.receive_into(&mut buffer) {
                Ok(envelope) => envelope,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::ENOBUFS) => return Err(RecvError::Overflow),
                Err(errno) => return Err(RecvError::Receive(errno.into())),
            };
            if envelope.check().is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let datagram = buffer.get(..envelope.len).unwrap_or_default();
            return parse(datagram).map(Some).map_err(RecvError::Parse);
        }
    }

    fn receive_into(&self, buffer: &mut [u8]) -> Result<Envelope, Errno> {
        let mut control = nix::cmsg_space!(UnixCredentials);
        let mut iov = [IoSliceMut::new(buffer)];
        let message = socket::recvmsg::<NetlinkAddr>(
            self.fd.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        )?;
        // A truncated control buffer means the credentials cannot be trusted: treat as absent.
        let uid = message.cmsgs().ok().and_then(|mut messages| {
            messages.find_map(|control| match control {
                ControlMessageOwned::ScmCredentials(credentials) => Some(credentials.uid()),
                _ => None,
            })
        });
        Ok(Envelope {
            len: message.bytes,
            truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
            sender_port: message.address.map(|address| address.pid()),
            uid,
        })
    }

    /// How many datagrams were discarded by the sender and size checks so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl AsFd for UeventSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
