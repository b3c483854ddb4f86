use std::net::Ipv4Addr;

use crate::{parse_bootif, parse_ip, IpConfig, NetError};

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

#[test]
fn parse_ip_cases() {
    let dhcp = |device: Option<&str>| IpConfig::Dhcp {
        device: device.map(str::to_owned),
    };
    let cases: Vec<(&str, IpConfig)> = vec![
        ("dhcp", dhcp(None)),
        ("", dhcp(None)),
        ("off", IpConfig::Off),
        ("none", IpConfig::Off),
        ("off:::::eth0", IpConfig::Off),
        ("::::::dhcp", dhcp(None)),
        ("dhcp:::::eth1", dhcp(Some("eth1"))),
        (":::::eth1:dhcp", dhcp(Some("eth1"))),
        ("10.0.0.5::::::dhcp", dhcp(None)),
        (":::::eth0", dhcp(Some("eth0"))),
        (":::::eth0:on", dhcp(Some("eth0"))),
        (":::::eth0:any", dhcp(Some("eth0"))),
        (":::::eth0:off", IpConfig::Off),
        (
            "192.168.1.10:192.168.1.1:192.168.1.1:255.255.255.0:box:eth0:none:8.8.8.8:1.1.1.1",
            IpConfig::Static {
                client: ip("192.168.1.10"),
                netmask: ip("255.255.255.0"),
                gateway: Some(ip("192.168.1.1")),
                hostname: Some("box".into()),
                device: Some("eth0".into()),
                dns: vec![ip("8.8.8.8"), ip("1.1.1.1")],
            },
        ),
        (
            "10.1.2.3::::",
            IpConfig::Static {
                client: ip("10.1.2.3"),
                netmask: ip("255.0.0.0"),
                gateway: None,
                hostname: None,
                device: None,
                dns: vec![],
            },
        ),
        (
            "172.16.0.9::0.0.0.0:255.255.255.252:::off::9.9.9.9",
            IpConfig::Static {
                client: ip("172.16.0.9"),
                netmask: ip("255.255.255.252"),
                gateway: None,
                hostname: None,
                device: None,
                dns: vec![ip("9.9.9.9")],
            },
        ),
        (
            "192.0.2.7:::255.255.255.255",
            IpConfig::Static {
                client: ip("192.0.2.7"),
                netmask: ip("255.255.255.255"),
                gateway: None,
                hostname: None,
                device: None,
                dns: vec![],
            },
        ),
    ];
    for (input, expected) in cases {
        match parse_ip(input) {
            Ok(got) => assert_eq!(got, expected, "ip={input}"),
            Err(e) => panic!("ip={input}: {e}"),
        }
    }
}

#[test]
fn parse_ip_rejects_garbage() {
    for input in [
        "garbage",
        "300.1.1.1",
        "10.0.0.1:::255.0.255.0",
        "10.0.0.1:::0.0.0.0",
        "10.0.0.1:::255.255.255.0::eth0:none:dns",
        "0.0.0.0:::255.0.0.0",
        "255.255.255.255",
        ":::255.255.255.0",
        ":::::../../etc",
        ":::::eth0/x",
        ":::::averyveryverylongname",
        ":::::eth0:rarp",
        "10.0.0.1::gw",
    ] {
        match parse_ip(input) {
            Err(NetError::BadIp { value, .. }) => assert_eq!(value, input),
            other => panic!("ip={input} should fail, got {other:?}"),
        }
    }
}

#[test]
fn parse_bootif_cases() {
    let cases = [
        ("01-52-54-00-12-34-56", Some("52:54:00:12:34:56")),
        ("01-AA-BB-CC-DD-EE-FF", Some("aa:bb:cc:dd:ee:ff")),
        ("02:00:00:00:00:03", Some("02:00:00:00:00:03")),
        ("52-54-00-12-34-56", Some("52:54:00:12:34:56")),
        ("06-52-54-00-12-34-56", None),
        ("01-52-54-00-12-34", None),
        ("01-52-54-00-12-34-5g", None),
        ("01-525-4-00-12-34-56", None),
        ("", None),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_bootif(input).as_deref(), expected, "BOOTIF={input}");
    }
}
