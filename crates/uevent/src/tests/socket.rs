use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use super::datagram;
use crate::socket::{Discard, Envelope};
use crate::{SocketError, UeventSocket};

#[test]
fn only_plausible_kernel_datagrams_pass() {
    let kernel = Envelope {
        len: 200,
        truncated: false,
        sender_port: Some(0),
        uid: Some(0),
    };
    let cases = [
        (kernel, Ok(())),
        (Envelope { len: 32, ..kernel }, Ok(())),
        (
            Envelope {
                len: 16383,
                ..kernel
            },
            Ok(()),
        ),
        (Envelope { len: 31, ..kernel }, Err(Discard::Size)),
        (
            Envelope {
                len: 16384,
                ..kernel
            },
            Err(Discard::Size),
        ),
        (
            Envelope {
                truncated: true,
                ..kernel
            },
            Err(Discard::Truncated),
        ),
        (
            Envelope {
                sender_port: Some(4242),
                ..kernel
            },
            Err(Discard::NotKernel),
        ),
        (
            Envelope {
                sender_port: None,
                ..kernel
            },
            Err(Discard::NotKernel),
        ),
        (
            Envelope {
                uid: None,
                ..kernel
            },
            Err(Discard::NoCredentials),
        ),
        (
            Envelope {
                uid: Some(1000),
                ..kernel
            },
            Err(Discard::NotRoot),
        ),
    ];
    for (envelope, expected) in cases {
        assert_eq!(envelope.check(), expected, "{envelope:?}");
    }
}

/// Opens a listener, or explains why this environment cannot.
fn open_or_skip() -> Option<UeventSocket> {
    match UeventSocket::open(256 * 1024) {
        Ok(listener) => Some(listener),
        Err(SocketError::Create(error) | SocketError::Bind(error))
            if matches!(
                error.raw_os_error().map(Errno::from_raw),
                Some(Errno::EPERM | Errno::EACCES | Errno::EAFNOSUPPORT | Errno::EPROTONOSUPPORT)
            ) =>
        {
            eprintln!("skipping: uevent netlink socket not permitted here: {error}");
            None
        }
        Err(error) => panic!("open failed: {error}"),
    }
}

#[test]
fn open_binds_a_nonblocking_listener() {
    let Some(listener) = open_or_skip() else {
        return;
    };
    assert_ne!(listener.port_id().expect("bound"), 0);
    assert!(listener.buffer_size().expect("readable") > 0);
    // Nonblocking: draining whatever the host kernel queued must end instead of hanging.
    while let Ok(Some(_)) = listener.recv() {}
}

#[test]
fn forged_userspace_messages_are_dropped() {
    let Some(listener) = open_or_skip() else {
        return;
    };
    let port = listener.port_id().expect("bound");
    let sender = socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )
    .expect("sender socket");
    let forged = datagram(
        "add@/devices/forged/sda",
        &[
            "ACTION=add",
            "DEVPATH=/devices/forged/sda",
            "SUBSYSTEM=block",
            "DEVNAME=sda",
            "MAJOR=8",
            "MINOR=0",
        ],
    );
    let destination = NetlinkAddr::new(port, 0);
    for message in [forged.as_slice(), b"add@/x\0".as_slice()] {
        socket::sendto(sender.as_raw_fd(), message, &destination, MsgFlags::empty())
            .expect("unicast to our port");
    }
    let before = listener.dropped();
    loop {
        match listener.recv() {
            Ok(Some(event)) => assert_ne!(event.devpath, "/devices/forged/sda"),
            Ok(None) => break,
            Err(error) => panic!("recv failed: {error}"),
        }
    }
    // Unicast delivery is synchronous, so both datagrams were queued before the drain.
    assert!(
        listener.dropped() >= before + 2,
        "dropped {}",
        listener.dropped()
    );
}
