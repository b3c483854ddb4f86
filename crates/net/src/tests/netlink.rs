use std::net::Ipv4Addr;

use crate::rtnetlink::{
    ack_errno, address_message, link_add_message, link_message, mtu_message, rename_message,
    route_message,
};
use crate::Lease;

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([buf[at], buf[at + 1]])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// (type, value) of every attribute after a fixed header of `body` bytes.
fn attributes(buf: &[u8], body: usize) -> Vec<(u16, Vec<u8>)> {
    let mut at = 16 + body;
    let mut out = Vec::new();
    while at < buf.len() {
        let len = u16_at(buf, at) as usize;
        out.push((u16_at(buf, at + 2), buf[at + 4..at + len].to_vec()));
        at += len.next_multiple_of(4);
    }
    out
}

#[test]
fn link_message_layout() {
    for (up, flags) in [(true, 1), (false, 0)] {
        let msg = link_message(9, 3, up);
        assert_eq!(u32_at(&msg, 0) as usize, msg.len());
        assert_eq!(msg.len(), 32);
        assert_eq!(u16_at(&msg, 4), 16, "RTM_NEWLINK");
        assert_eq!(u16_at(&msg, 6), 0x1 | 0x4, "REQUEST|ACK");
        assert_eq!(u32_at(&msg, 8), 9, "seq");
        assert_eq!(u32_at(&msg, 20), 3, "ifindex");
        assert_eq!(u32_at(&msg, 24), flags, "ifi_flags");
        assert_eq!(u32_at(&msg, 28), 1, "ifi_change = IFF_UP");
    }
}

#[test]
fn address_message_layout() {
    let address = Ipv4Addr::new(10, 0, 2, 15);
    let msg = address_message(2, 4, address.into(), 24);
    assert_eq!(u32_at(&msg, 0) as usize, msg.len());
    assert_eq!(u16_at(&msg, 4), 20, "RTM_NEWADDR");
    assert_eq!(u16_at(&msg, 6), 0x1 | 0x4 | 0x400 | 0x100);
    assert_eq!(&msg[16..20], &[2, 24, 0, 0], "AF_INET /24 universe");
    assert_eq!(u32_at(&msg, 20), 4);
    assert_eq!(
        attributes(&msg, 8),
        vec![
            (2, vec![10, 0, 2, 15]),
            (1, vec![10, 0, 2, 15]),
            (4, vec![10, 0, 2, 255]),
        ]
    );
    let host = address_message(2, 4, address.into(), 32);
    assert_eq!(attributes(&host, 8).len(), 2, "no broadcast for /32");
}

#[test]
fn route_message_layout() {
    let router = Ipv4Addr::new(10, 0, 2, 2);
    for onlink in [false, true] {
        let msg = route_message(3, 4, router, onlink);
        assert_eq!(u32_at(&msg, 0) as usize, msg.len());
        assert_eq!(u16_at(&msg, 4), 24, "RTM_NEWROUTE");
        assert_eq!(&msg[16..24], &[2, 0, 0, 0, 254, 3, 0, 1]);
        assert_eq!(u32_at(&msg, 24), if onlink { 4 } else { 0 });
        assert_eq!(
            attributes(&msg, 12),
            vec![(5, vec![10, 0, 2, 2]), (4, 4u32.to_ne_bytes().to_vec())]
        );
    }
}

#[test]
fn ack_parsing() {
    let mut ack = vec![0u8; 36];
    ack[4..6].copy_from_slice(&2u16.to_ne_bytes());
    assert_eq!(ack_errno(&ack), Some(0));
    ack[16..20].copy_from_slice(&(-17i32).to_ne_bytes());
    assert_eq!(ack_errno(&ack), Some(17));
    ack[4..6].copy_from_slice(&16u16.to_ne_bytes());
    assert_eq!(ack_errno(&ack), None);
    assert_eq!(ack_errno(&ack[..3]), None);
}

#[test]
fn on_link_and_static_lease() {
    let config =
        crate::parse_ip("192.0.2.10::192.0.2.1:255.255.255.0::eth0:none:192.0.2.53").unwrap();
    let lease = Lease::from_static(&config, "eth0", "52:54:00:00:00:01").unwrap();
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(lease.router, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert!(lease.on_link(Ipv4Addr::new(192, 0, 2, 254)));
    assert!(!lease.on_link(Ipv4Addr::new(192, 0, 3, 1)));
    assert_eq!(crate::resolv_conf(&lease), "nameserver 192.0.2.53\n");
    assert_eq!(Lease::from_static(&crate::IpConfig::Off, "eth0", "m"), None);
}

#[test]
fn rename_message_carries_the_new_name() {
    let msg = rename_message(4, 7, "lan");
    assert_eq!(
        u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
        msg.len()
    );
    assert_eq!(u32::from_ne_bytes(msg[20..24].try_into().unwrap()), 7);
    // ifi_change is 0: nothing but the name changes.
    assert_eq!(&msg[28..32], &[0, 0, 0, 0]);
    // IFLA_IFNAME: length 8 (4 + "lan\0"), type 3.
    assert_eq!(u16::from_ne_bytes([msg[32], msg[33]]), 8);
    assert_eq!(u16::from_ne_bytes([msg[34], msg[35]]), 3);
    assert_eq!(&msg[36..40], b"lan\0");
}

#[test]
fn mtu_message_carries_the_mtu_and_changes_no_flag() {
    let msg = mtu_message(5, 3, 9000);
    assert_eq!(
        u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
        msg.len()
    );
    assert_eq!(u32::from_ne_bytes(msg[20..24].try_into().unwrap()), 3);
    assert_eq!(&msg[24..32], &[0; 8], "no flag set, none changed");
    // IFLA_MTU: length 8 (4 + u32), type 4.
    assert_eq!(u16::from_ne_bytes([msg[32], msg[33]]), 8);
    assert_eq!(u16::from_ne_bytes([msg[34], msg[35]]), 4);
    assert_eq!(u32::from_ne_bytes(msg[36..40].try_into().unwrap()), 9000);
}

#[test]
fn link_add_message_names_the_link_and_its_kind() {
    let msg = link_add_message(6, "wg0", "wireguard");
    assert_eq!(
        u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
        msg.len()
    );
    // NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE.
    assert_eq!(
        u16::from_ne_bytes([msg[6], msg[7]]),
        0x1 | 0x4 | 0x200 | 0x400
    );
    assert_eq!(&msg[16..32], &[0; 16], "a new link: index 0");
    // IFLA_IFNAME "wg0\0", then IFLA_LINKINFO { IFLA_INFO_KIND "wireguard" }.
    assert_eq!(u16::from_ne_bytes([msg[34], msg[35]]), 3);
    assert_eq!(&msg[36..40], b"wg0\0");
    // The nested attribute is padded to 16 bytes.
    assert_eq!(u16::from_ne_bytes([msg[40], msg[41]]), 4 + 16);
    assert_eq!(u16::from_ne_bytes([msg[42], msg[43]]), 18);
    assert_eq!(u16::from_ne_bytes([msg[44], msg[45]]), 4 + 9);
    assert_eq!(u16::from_ne_bytes([msg[46], msg[47]]), 1);
    assert_eq!(&msg[48..57], b"wireguard");
}

#[test]
fn ipv6_address_message_carries_the_address_and_prefix() {
    let address: std::net::Ipv6Addr = "fd00::1".parse().unwrap();
    let msg = address_message(7, 9, address.into(), 64);
    assert_eq!(&msg[16..20], &[10, 64, 0, 0], "AF_INET6, /64, universe");
    assert_eq!(u32::from_ne_bytes(msg[20..24].try_into().unwrap()), 9);
    assert_eq!(u16::from_ne_bytes([msg[24], msg[25]]), 20);
    assert_eq!(u16::from_ne_bytes([msg[26], msg[27]]), 2, "IFA_LOCAL");
    assert_eq!(&msg[28..44], &address.octets());
    assert_eq!(u16::from_ne_bytes([msg[46], msg[47]]), 1, "IFA_ADDRESS");
    assert_eq!(&msg[48..64], &address.octets());
}

#[test]
fn addresses_as_ip_addr_add_takes_them() {
    let v4 = |s: &str| std::net::IpAddr::V4(s.parse().unwrap());
    let v6 = |s: &str| std::net::IpAddr::V6(s.parse().unwrap());
    let rows = [
        ("192.168.0.1/24", Some((v4("192.168.0.1"), 24))),
        ("10.0.0.1", Some((v4("10.0.0.1"), 32))),
        ("fd00::1/64", Some((v6("fd00::1"), 64))),
        ("fd00::1", Some((v6("fd00::1"), 128))),
        ("10.0.0.1/33", None),
        ("fd00::1/129", None),
        ("10.0.0.1/", None),
        ("10.0.0.1/+8", None),
        ("10.0.0/8", None),
        ("wg0", None),
        ("", None),
    ];
    for (text, want) in rows {
        assert_eq!(crate::parse_address(text), want, "{text}");
    }
    assert!(crate::valid_interface_name("wg0"));
    assert!(!crate::valid_interface_name("../wg"));
    assert!(!crate::valid_interface_name("a-name-too-long-"));
}
