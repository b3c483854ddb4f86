use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use crate::dhcp_packet::{
    decode, encode_discover, encode_reply, encode_request, MessageType, PacketError, Reply,
};
use crate::{dhcp_with, resolv_conf, Lease, NetError, UdpTransport};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

/// The value of option `code` in an encoded client message.
fn option(packet: &[u8], code: u8) -> Option<Vec<u8>> {
    let mut at = 240;
    while at < packet.len() {
        match packet[at] {
            255 => return None,
            0 => at += 1,
            c => {
                let len = packet[at + 1] as usize;
                if c == code {
                    return Some(packet[at + 2..at + 2 + len].to_vec());
                }
                at += 2 + len;
            }
        }
    }
    None
}

fn xid_of(packet: &[u8]) -> u32 {
    u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]])
}

fn reply(kind: MessageType, xid: u32) -> Reply {
    Reply {
        xid,
        chaddr: MAC,
        message_type: kind,
        yiaddr: ip("10.0.2.15"),
        subnet_mask: Some(ip("255.255.255.0")),
        routers: vec![ip("10.0.2.2")],
        dns: vec![ip("10.0.2.3")],
        domain: Some("example.org".into()),
        hostname: Some("box1".into()),
        lease_time: Some(86400),
        server_id: Some(ip("10.0.2.2")),
    }
}

#[test]
fn discover_and_request_layout() {
    let discover = encode_discover(0xdead_beef, MAC);
    assert_eq!(discover[0], 1, "BOOTREQUEST");
    assert_eq!(xid_of(&discover), 0xdead_beef);
    assert_eq!(&discover[10..12], &[0x80, 0], "broadcast flag");
    assert_eq!(&discover[28..34], &MAC);
    assert_eq!(&discover[236..240], &[99, 130, 83, 99]);
    assert_eq!(option(&discover, 53), Some(vec![1]));
    let params = option(&discover, 55).unwrap();
    for wanted in [1, 3, 6, 12, 15, 51, 54] {
        assert!(params.contains(&wanted), "option {wanted} requested");
    }
    assert_eq!(discover.last(), Some(&255));

    let request = encode_request(7, MAC, ip("10.0.2.15"), ip("10.0.2.2"));
    assert_eq!(option(&request, 53), Some(vec![3]));
    assert_eq!(option(&request, 50), Some(vec![10, 0, 2, 15]));
    assert_eq!(option(&request, 54), Some(vec![10, 0, 2, 2]));
    assert_eq!(decode(&request), Err(PacketError::NotReply(1)));
}

#[test]
fn reply_round_trip_and_lease() {
    let original = reply(MessageType::Ack, 42);
    let decoded = decode(&encode_reply(&original)).unwrap();
    assert_eq!(decoded, original);
    let lease = decoded.to_lease("eth0", "52:54:00:12:34:56").unwrap();
    assert_eq!(
        lease,
        Lease {
            iface: "eth0".into(),
            mac: "52:54:00:12:34:56".into(),
            address: ip("10.0.2.15"),
            prefix_len: 24,
            router: Some(ip("10.0.2.2")),
            dns: vec![ip("10.0.2.3")],
            domain: Some("example.org".into()),
            hostname: Some("box1".into()),
            server: Some(ip("10.0.2.2")),
        }
    );
    assert_eq!(
        resolv_conf(&lease),
        "search example.org\nnameserver 10.0.2.3\n"
    );
}

#[test]
fn lease_validation() {
    let mut no_mask = reply(MessageType::Ack, 1);
    no_mask.subnet_mask = None;
    no_mask.yiaddr = ip("172.20.0.5");
    assert_eq!(no_mask.to_lease("e", "m").unwrap().prefix_len, 16);

    let mut self_router = reply(MessageType::Ack, 1);
    self_router.routers = vec![ip("10.0.2.15"), ip("10.0.2.1")];
    assert_eq!(
        self_router.to_lease("e", "m").unwrap().router,
        Some(ip("10.0.2.1"))
    );

    let cases = [
        (
            "0.0.0.0",
            "255.255.255.0",
            PacketError::BadAddress(ip("0.0.0.0")),
        ),
        (
            "224.0.0.1",
            "255.255.255.0",
            PacketError::BadAddress(ip("224.0.0.1")),
        ),
        ("10.0.2.15", "0.0.0.0", PacketError::BadMask(ip("0.0.0.0"))),
        (
            "10.0.2.15",
            "255.0.255.0",
            PacketError::BadMask(ip("255.0.255.0")),
        ),
    ];
    for (address, mask, expected) in cases {
        let mut r = reply(MessageType::Ack, 1);
        r.yiaddr = ip(address);
        r.subnet_mask = Some(ip(mask));
        assert_eq!(r.to_lease("e", "m"), Err(expected), "{address}/{mask}");
    }
}

#[test]
fn hostile_replies() {
    let good = encode_reply(&reply(MessageType::Offer, 9));
    let options_start = 240;
    let mut cases: Vec<(&str, Vec<u8>, PacketError)> = vec![
        (
            "truncated header",
            good[..200].to_vec(),
            PacketError::TooShort(200),
        ),
        ("empty", Vec::new(), PacketError::TooShort(0)),
    ];
    let mut no_cookie = good.clone();
    no_cookie[236] = 0;
    cases.push(("no magic cookie", no_cookie, PacketError::NoMagicCookie));
    let mut past_end = good[..options_start].to_vec();
    past_end.extend_from_slice(&[53, 1, 2, 6, 200, 1, 2, 3]);
    cases.push((
        "length past the end",
        past_end,
        PacketError::OptionTruncated {
            code: 6,
            offset: 243,
        },
    ));
    let mut code_only = good[..options_start].to_vec();
    code_only.extend_from_slice(&[53, 1, 2, 3]);
    cases.push((
        "code without length",
        code_only,
        PacketError::OptionTruncated {
            code: 3,
            offset: 243,
        },
    ));
    let mut no_type = good[..options_start].to_vec();
    no_type.extend_from_slice(&[1, 4, 255, 255, 255, 0, 255]);
    cases.push(("no message type", no_type, PacketError::NoMessageType));
    let mut bad_mask = good[..options_start].to_vec();
    bad_mask.extend_from_slice(&[53, 1, 2, 1, 3, 255, 255, 255, 255]);
    cases.push((
        "3-byte mask",
        bad_mask,
        PacketError::OptionMalformed { code: 1 },
    ));
    let mut huge = good[..options_start].to_vec();
    huge.extend_from_slice(&[53, 1, 2]);
    for _ in 0..5 {
        huge.push(6);
        huge.push(252);
        huge.extend_from_slice(&[8; 252]);
    }
    cases.push((
        "concatenated option too long",
        huge,
        PacketError::OptionTooLong { code: 6 },
    ));
    let mut ethernet = good.clone();
    ethernet[1] = 6;
    cases.push((
        "not ethernet",
        ethernet,
        PacketError::Hardware { htype: 6, hlen: 6 },
    ));

    for (name, packet, expected) in cases {
        assert_eq!(decode(&packet), Err(expected), "{name}");
    }
}

#[test]
fn hostile_text_options_are_dropped() {
    let mut packet = encode_reply(&reply(MessageType::Ack, 3));
    packet.pop(); // END
    packet.extend_from_slice(&[15, 0]); // an empty repeat of the domain: concatenated, fine
    packet.extend_from_slice(&[12, 9]);
    packet.extend_from_slice(b"x\nsearch ");
    packet.push(255);
    let decoded = decode(&packet).unwrap();
    assert_eq!(decoded.domain.as_deref(), Some("example.org"));
    // "box1" + "x\nsearch " concatenated contains a newline, so the hostname is dropped.
    assert_eq!(decoded.hostname, None);
}

enum Script {
    Ack,
    Nak,
}

/// A one-client DHCP server on loopback. Before each real answer it sends noise the client
/// must ignore: garbage, a reply with another xid, and one for another MAC.
fn fake_server(script: Script) -> (SocketAddrV4, thread::JoinHandle<Vec<Vec<u8>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = match socket.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let handle = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1500];
        for expected in [1u8, 3] {
            let (len, peer) = socket.recv_from(&mut buf).unwrap();
            let packet = buf[..len].to_vec();
            assert_eq!(option(&packet, 53), Some(vec![expected]));
            let xid = xid_of(&packet);
            socket.send_to(b"not dhcp", peer).unwrap();
            let kind = match (expected, &script) {
                (1, _) => MessageType::Offer,
                (_, Script::Ack) => MessageType::Ack,
                (_, Script::Nak) => MessageType::Nak,
            };
            let wrong_xid = reply(kind, xid.wrapping_add(1));
            socket.send_to(&encode_reply(&wrong_xid), peer).unwrap();
            let mut other_mac = reply(kind, xid);
            other_mac.chaddr = [2, 0, 0, 0, 0, 9];
            socket.send_to(&encode_reply(&other_mac), peer).unwrap();
            let mut answer = reply(kind, xid);
            if expected == 3 {
                answer.yiaddr = Ipv4Addr::from(
                    <[u8; 4]>::try_from(option(&packet, 50).unwrap().as_slice()).unwrap(),
                );
            }
            socket.send_to(&encode_reply(&answer), peer).unwrap();
            seen.push(packet);
        }
        seen
    });
    (addr, handle)
}

fn client(server: SocketAddrV4) -> UdpTransport {
    UdpTransport::with_addresses(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), server).unwrap()
}

#[test]
fn full_exchange_over_loopback() {
    let (server, handle) = fake_server(Script::Ack);
    let mut transport = client(server);
    let deadline = Instant::now() + Duration::from_secs(20);
    let lease = dhcp_with(
        &mut transport,
        "eth0",
        MAC,
        deadline,
        &[Duration::from_secs(5)],
    )
    .unwrap();
    let seen = handle.join().unwrap();
    assert_eq!(lease.address, ip("10.0.2.15"));
    assert_eq!(lease.router, Some(ip("10.0.2.2")));
    assert_eq!(lease.mac, "52:54:00:12:34:56");
    assert_eq!(lease.server, Some(ip("10.0.2.2")));
    assert_eq!(
        xid_of(&seen[0]),
        xid_of(&seen[1]),
        "REQUEST reuses the DISCOVER xid"
    );
    assert_eq!(option(&seen[1], 54), Some(vec![10, 0, 2, 2]));
}

#[test]
fn nak_fails_with_the_server() {
    let (server, handle) = fake_server(Script::Nak);
    let mut transport = client(server);
    let deadline = Instant::now() + Duration::from_secs(20);
    let err = dhcp_with(
        &mut transport,
        "eth0",
        MAC,
        deadline,
        &[Duration::from_secs(5)],
    )
    .unwrap_err();
    handle.join().unwrap();
    assert!(
        matches!(err, NetError::DhcpNak { ref server, .. } if *server == ip("10.0.2.2")),
        "{err:?}"
    );
}

#[test]
fn silent_server_gives_up_after_the_attempts() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = match silent.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    let mut transport = client(addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let backoff = [Duration::from_millis(20), Duration::from_millis(40)];
    let err = dhcp_with(&mut transport, "eth9", MAC, deadline, &backoff).unwrap_err();
    assert!(
        matches!(err, NetError::DhcpTimeout { ref iface, attempts: 2 } if iface == "eth9"),
        "{err:?}"
    );
    let mut buf = [0u8; 1500];
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..2 {
        let len = silent.recv(&mut buf).unwrap();
        assert_eq!(
            option(&buf[..len], 53),
            Some(vec![1]),
            "a DISCOVER per attempt"
        );
    }
}

/// Answers every DISCOVER with an OFFER and never answers a REQUEST.
#[test]
fn offer_without_ack_names_the_silent_server() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = match socket.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let handle = thread::spawn(move || {
        let mut kinds = Vec::new();
        let mut buf = [0u8; 1500];
        while let Ok((len, peer)) = socket.recv_from(&mut buf) {
            let packet = &buf[..len];
            let kind = option(packet, 53).unwrap_or_default();
            if kind == [1] {
                let offer = reply(MessageType::Offer, xid_of(packet));
                socket.send_to(&encode_reply(&offer), peer).unwrap();
            }
            kinds.push(kind);
            if kinds.len() == 4 {
                break;
            }
        }
        kinds
    });
    let mut transport = client(addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let backoff = [Duration::from_millis(100), Duration::from_millis(200)];
    let err = dhcp_with(&mut transport, "eth0", MAC, deadline, &backoff).unwrap_err();
    assert!(
        matches!(
            err,
            NetError::DhcpNoAck { ref server, ref offered, attempts: 2, .. }
                if *server == ip("10.0.2.2") && *offered == ip("10.0.2.15")
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("server 10.0.2.2 offered 10.0.2.15 but never acknowledged"),
        "{err}"
    );
    assert_eq!(handle.join().unwrap(), [vec![1], vec![3], vec![1], vec![3]]);
}

#[test]
fn passed_deadline_sends_nothing() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = match silent.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    let mut transport = client(addr);
    let err = dhcp_with(&mut transport, "eth0", MAC, Instant::now(), &crate::BACKOFF).unwrap_err();
    assert!(
        matches!(err, NetError::DhcpTimeout { attempts: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn fuzz_entry_points_survive_samples() {
    let good = encode_reply(&reply(MessageType::Ack, 5));
    for len in 0..good.len() {
        crate::fuzz_dhcp(&good[..len]);
    }
    crate::fuzz_http_response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
    );
    crate::fuzz_http_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    );
}
