//! The generic netlink messages, byte for byte (expected bytes written out field by field
//! from `include/uapi/linux/genetlink.h` and `include/uapi/linux/nbd-netlink.h`), the reply
//! parsers on handcrafted and hostile input, and the controller lookup against the running
//! kernel (unprivileged; it attaches nothing).

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::genl::{clear_timeouts, family_id, NETLINK_GENERIC};
use crate::{
    ack_errno, attach, connect_request, getfamily_request, parse_family_id, Export, NbdError,
};
use alpinit_net::NetlinkSocket;

fn ne16(v: u16) -> [u8; 2] {
    v.to_ne_bytes()
}

fn ne32(v: u32) -> [u8; 4] {
    v.to_ne_bytes()
}

fn ne64(v: u64) -> [u8; 8] {
    v.to_ne_bytes()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A netlink header: length, type, flags, sequence number, port id 0.
fn nlmsghdr(len: u32, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
    cat(&[&ne32(len), &ne16(kind), &ne16(flags), &ne32(seq), &ne32(0)])
}

#[test]
fn getfamily_request_bytes() {
    let expected = cat(&[
        &nlmsghdr(28, 0x10, 0x1, 7), // GENL_ID_CTRL, NLM_F_REQUEST
        &[3, 1, 0, 0],               // CTRL_CMD_GETFAMILY, version 1
        &ne16(8),                    // 4 + "nbd\0"
        &ne16(2),                    // CTRL_ATTR_FAMILY_NAME
        b"nbd\0",
    ]);
    assert_eq!(getfamily_request(7), expected);
}

#[test]
fn connect_request_bytes() {
    let export = Export {
        size: 0x0000_0002_4000_0000,
        transmission_flags: 0x0103,
    };
    let expected = cat(&[
        &nlmsghdr(92, 0x1b, 0x5, 2), // the nbd family id, NLM_F_REQUEST | NLM_F_ACK
        &[1, 1, 0, 0],               // NBD_CMD_CONNECT, NBD_GENL_VERSION
        &ne16(8),
        &ne16(1), // NBD_ATTR_INDEX
        &ne32(3),
        &ne16(12),
        &ne16(2), // NBD_ATTR_SIZE_BYTES
        &ne64(0x0000_0002_4000_0000),
        &ne16(12),
        &ne16(3), // NBD_ATTR_BLOCK_SIZE_BYTES
        &ne64(512),
        &ne16(12),
        &ne16(4), // NBD_ATTR_TIMEOUT
        &ne64(30),
        &ne16(12),
        &ne16(5), // NBD_ATTR_SERVER_FLAGS
        &ne64(0x0103),
        &ne16(16),
        &ne16(0x8007), // NLA_F_NESTED | NBD_ATTR_SOCKETS
        &ne16(12),
        &ne16(0x8001), // NLA_F_NESTED | NBD_SOCK_ITEM
        &ne16(8),
        &ne16(1), // NBD_SOCK_FD
        &ne32(5),
    ]);
    assert_eq!(connect_request(0x1b, 2, 3, &export, 5), expected);
}

/// A CTRL_CMD_NEWFAMILY answer as the kernel builds it, with `attrs` after the genl header.
fn newfamily(attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len() as u32;
    cat(&[&nlmsghdr(len, 0x10, 0, 1), &[1, 2, 0, 0], attrs])
}

fn family_attrs(id: u16) -> Vec<u8> {
    cat(&[
        &ne16(8),
        &ne16(2), // CTRL_ATTR_FAMILY_NAME
        b"nbd\0",
        &ne16(6),
        &ne16(1), // CTRL_ATTR_FAMILY_ID, padded to 8
        &ne16(id),
        &[0, 0],
        &ne16(8),
        &ne16(3), // CTRL_ATTR_VERSION
        &ne32(1),
        &ne16(8),
        &ne16(5), // CTRL_ATTR_MAXATTR
        &ne32(10),
        &ne16(24),
        &ne16(0x8006), // NLA_F_NESTED | CTRL_ATTR_OPS
        &ne16(20),
        &ne16(0x8001),
        &ne16(8),
        &ne16(1), // CTRL_ATTR_OP_ID
        &ne32(1),
        &ne16(8),
        &ne16(2), // CTRL_ATTR_OP_FLAGS
        &ne32(0x2),
    ])
}

#[test]
fn parse_family_id_reads_the_id() {
    assert_eq!(
        parse_family_id(&newfamily(&family_attrs(0x1b))).unwrap(),
        0x1b
    );
}

#[test]
fn parse_family_id_skips_nested_attributes_before_the_id() {
    let attrs = cat(&[
        &ne16(12),
        &ne16(0x8007), // NLA_F_NESTED | CTRL_ATTR_MCAST_GROUPS
        &ne16(8),
        &ne16(0x8001),
        &ne16(4),
        &ne16(1),
        &ne16(6),
        &ne16(1),
        &ne16(0x2a),
        &[0, 0],
    ]);
    assert_eq!(parse_family_id(&newfamily(&attrs)).unwrap(), 0x2a);
}

#[test]
fn parse_family_id_after_an_ack_in_the_same_datagram() {
    let ack = cat(&[
        &nlmsghdr(36, 2, 0, 9),
        &ne32(0),
        &nlmsghdr(16, 0x10, 0x5, 9),
    ]);
    let reply = cat(&[&ack, &newfamily(&family_attrs(0x33))]);
    assert_eq!(parse_family_id(&reply).unwrap(), 0x33);
}

fn nlmsg_error(errno: i32, seq: u32) -> Vec<u8> {
    cat(&[
        &nlmsghdr(36, 2, 0, seq),
        &(-errno).to_ne_bytes(),
        &nlmsghdr(28, 0x10, 0x1, seq), // the request's header, echoed
    ])
}

#[test]
fn parse_family_id_names_the_errno() {
    let result = parse_family_id(&nlmsg_error(libc::ENOENT, 1));
    let Err(e @ NbdError::FamilyLookup { errno, .. }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(errno, libc::ENOENT);
    assert_eq!(
        e.to_string(),
        "generic netlink family \"nbd\": lookup failed (is the nbd driver loaded?)"
    );
    let source = std::error::Error::source(&e).unwrap().to_string();
    assert!(source.contains("No such file or directory"), "{source}");

    let result = parse_family_id(&nlmsg_error(libc::EPERM, 1));
    let Err(e @ NbdError::FamilyLookup { errno, .. }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(errno, libc::EPERM);
    assert_eq!(
        e.to_string(),
        "generic netlink family \"nbd\": lookup failed"
    );
}

#[test]
fn parse_family_id_rejects_replies_without_an_id() {
    assert!(matches!(
        parse_family_id(&nlmsg_error(0, 1)),
        Err(NbdError::NoFamilyId)
    ));
    assert!(matches!(
        parse_family_id(&newfamily(&[])),
        Err(NbdError::NoFamilyId)
    ));
    // A family id attribute too short to hold one.
    let short = cat(&[&ne16(5), &ne16(1), &[0x1b, 0, 0, 0]]);
    assert!(matches!(
        parse_family_id(&newfamily(&short)),
        Err(NbdError::MalformedFamilyReply)
    ));
}

#[test]
fn parse_family_id_rejects_garbage() {
    for garbage in [
        &[][..],
        &[1, 2, 3],
        &[0xff; 16],
        &cat(&[&ne32(15), &[0; 12]]),       // length below the header
        &cat(&[&ne32(u32::MAX), &[0; 28]]), // length past the end
        &cat(&[&ne32(17), &ne16(2), &[0; 10]]), // NLMSG_ERROR without an errno
        &nlmsghdr(16, 0x10, 0, 1),          // no genl header
    ] {
        let result = parse_family_id(garbage);
        assert!(result.is_err(), "{garbage:?}: {result:?}");
    }
    let valid = newfamily(&family_attrs(0x1b));
    for len in 0..valid.len() {
        assert!(parse_family_id(&valid[..len]).is_err(), "cut at {len}");
    }
    // Any byte changed, at random: no panic, whatever the verdict.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut bytes = valid.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        let _ = parse_family_id(&bytes);
        let _ = ack_errno(&bytes, 1);
        let random: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
        let _ = parse_family_id(&random);
        let _ = ack_errno(&random, 1);
    }
}

#[test]
fn ack_errno_matches_the_sequence_number() {
    // NBD_CMD_CONNECT's own answer (the device index) comes before the ACK.
    let connect_reply = cat(&[
        &nlmsghdr(28, 0x1b, 0, 2),
        &[1, 1, 0, 0],
        &ne16(8),
        &ne16(1),
        &ne32(0),
    ]);
    assert_eq!(ack_errno(&connect_reply, 2), None);
    assert_eq!(
        ack_errno(&cat(&[&connect_reply, &nlmsg_error(0, 2)]), 2),
        Some(0)
    );
    assert_eq!(
        ack_errno(&nlmsg_error(libc::EBUSY, 2), 2),
        Some(libc::EBUSY)
    );
    assert_eq!(ack_errno(&nlmsg_error(0, 1), 2), None);
    assert_eq!(ack_errno(&[], 2), None);
    // i32::MIN has no positive counterpart; it must not overflow.
    let odd = cat(&[&nlmsghdr(20, 2, 0, 2), &i32::MIN.to_ne_bytes()]);
    assert_eq!(ack_errno(&odd, 2), Some(i32::MAX));
}

#[test]
fn clear_timeouts_leaves_none() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    clear_timeouts(stream.as_fd()).unwrap();
    assert_eq!(stream.read_timeout().unwrap(), None);
    assert_eq!(stream.write_timeout().unwrap(), None);
}

#[test]
fn attach_refuses_a_non_socket_before_any_netlink() {
    let file = File::open("/dev/null").unwrap();
    let export = Export {
        size: 512,
        transmission_flags: 1,
    };
    let result = attach(file.as_fd(), 0, &export);
    let Err(NbdError::ClearTimeouts(source)) = result else {
        panic!("{result:?}");
    };
    assert_eq!(source.raw_os_error(), Some(libc::ENOTSOCK));
}

/// The lookup against the running kernel: the controller names itself as family 0x10.
#[test]
fn kernel_resolves_the_controller_family() {
    let Ok(socket) = NetlinkSocket::open(NETLINK_GENERIC) else {
        eprintln!("no generic netlink socket here; skipped");
        return;
    };
    assert_eq!(family_id(&socket, "nlctrl").unwrap(), 0x10);
    let result = family_id(&socket, "alpinit-none");
    assert!(
        matches!(result, Err(NbdError::FamilyLookup { errno, .. }) if errno == libc::ENOENT),
        "{result:?}"
    );
    // "nbd" resolves when the driver is loaded and is ENOENT otherwise; either way the
    // request is understood.
    let result = family_id(&socket, "nbd");
    assert!(
        matches!(
            result,
            Ok(_)
                | Err(NbdError::FamilyLookup {
                    errno: libc::ENOENT,
                    ..
                })
        ),
        "{result:?}"
    );
}
