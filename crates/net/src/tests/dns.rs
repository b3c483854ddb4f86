use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use crate::dns::{decode_answer, encode_query, resolve_at, Answer};
use crate::DnsError;

/// A response to `query` with the given rcode and answer records (type, data).
fn response(query: &[u8], rcode: u8, answers: &[(u16, &[u8])]) -> Vec<u8> {
    let mut packet = query.to_vec();
    packet[2] |= 0x80;
    packet[3] = rcode;
    packet[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    for (kind, data) in answers {
        packet.extend_from_slice(&[0xc0, 12]);
        packet.extend_from_slice(&kind.to_be_bytes());
        packet.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        packet.extend_from_slice(&(data.len() as u16).to_be_bytes());
        packet.extend_from_slice(data);
    }
    packet
}

#[test]
fn query_layout_and_names() {
    let query = encode_query(0x1234, "boot.example.org.").unwrap();
    assert_eq!(&query[..4], &[0x12, 0x34, 0x01, 0x00]);
    assert_eq!(
        &query[12..],
        b"\x04boot\x07example\x03org\x00\x00\x01\x00\x01"
    );
    for bad in ["", "a..b", "bad name", "x/y", &"a".repeat(64)] {
        assert_eq!(encode_query(1, bad), None, "{bad:?}");
    }
}

#[test]
fn answers() {
    let query = encode_query(7, "h.example").unwrap();
    let cname_then_a = response(&query, 0, &[(5, b"\x01x\x00"), (1, &[192, 0, 2, 1])]);
    assert_eq!(
        decode_answer(7, &cname_then_a),
        Answer::Address(Ipv4Addr::new(192, 0, 2, 1))
    );
    assert_eq!(decode_answer(8, &cname_then_a), Answer::Ignore, "wrong id");
    assert_eq!(
        decode_answer(7, &response(&query, 3, &[])),
        Answer::NoSuchName
    );
    assert_eq!(
        decode_answer(7, &response(&query, 2, &[])),
        Answer::Ignore,
        "SERVFAIL"
    );
    assert_eq!(decode_answer(7, &query), Answer::Ignore, "not a response");
    for len in 0..cname_then_a.len() {
        assert_ne!(
            decode_answer(7, &cname_then_a[..len]),
            Answer::Address(Ipv4Addr::new(192, 0, 2, 1)),
            "truncated at {len}"
        );
    }
}

fn server(reply: impl Fn(&[u8]) -> Vec<u8> + Send + 'static) -> SocketAddrV4 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = match socket.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        if let Ok((len, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&reply(&buf[..len]), peer);
        }
    });
    addr
}

#[test]
fn resolves_over_udp() {
    let addr = server(|q| response(q, 0, &[(1, &[198, 51, 100, 7])]));
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = resolve_at("mirror.example", &[addr], deadline).unwrap();
    assert_eq!(got, Ipv4Addr::new(198, 51, 100, 7));
}

#[test]
fn nxdomain_and_literals() {
    let addr = server(|q| response(q, 3, &[]));
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = resolve_at("missing.example", &[addr], deadline).unwrap_err();
    assert!(matches!(err, DnsError::NotFound { .. }), "{err:?}");
    assert_eq!(
        resolve_at("10.1.2.3", &[], deadline).unwrap(),
        Ipv4Addr::new(10, 1, 2, 3)
    );
    assert!(matches!(
        resolve_at("h.example", &[], deadline),
        Err(DnsError::NoServers { .. })
    ));
}
