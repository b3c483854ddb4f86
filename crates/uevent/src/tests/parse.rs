use super::datagram;
use crate::{parse, Action, ParseError, Uevent, MAX_PAIRS, MAX_VALUE_LEN};

const VDA1: &str = "/devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda1";
const USB_IF: &str = "/devices/pci0000:00/0000:00:1d.0/usb2/2-1/2-1:1.0";

fn pairs(event: &Uevent) -> Vec<(&str, &str)> {
    event
        .env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect()
}

#[test]
fn virtio_partition_add() {
    let bytes = datagram(
        &format!("add@{VDA1}"),
        &[
            "ACTION=add",
            &format!("DEVPATH={VDA1}"),
            "SUBSYSTEM=block",
            "MAJOR=253",
            "MINOR=1",
            "DEVNAME=vda1",
            "DEVTYPE=partition",
            "DISKSEQ=1",
            "PARTN=1",
            "SEQNUM=1234",
        ],
    );
    let event = parse(&bytes).expect("valid datagram");
    let expected_env = [
        ("ACTION", "add"),
        ("DEVPATH", VDA1),
        ("SUBSYSTEM", "block"),
        ("MAJOR", "253"),
        ("MINOR", "1"),
        ("DEVNAME", "vda1"),
        ("DEVTYPE", "partition"),
        ("DISKSEQ", "1"),
        ("PARTN", "1"),
        ("SEQNUM", "1234"),
    ];
    let expected = Uevent {
        action: Action::Add,
        devpath: VDA1.to_owned(),
        subsystem: Some("block".to_owned()),
        devtype: Some("partition".to_owned()),
        devname: Some("vda1".to_owned()),
        major: Some(253),
        minor: Some(1),
        modalias: None,
        partn: Some(1),
        seqnum: Some(1234),
        env: expected_env
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec(),
    };
    assert_eq!(event, expected);
    assert_eq!(event.get("DISKSEQ"), Some("1"));
}

/// The fields that differ between the accepted datagrams below.
#[derive(Debug, PartialEq, Eq)]
struct Summary<'a> {
    action: &'a str,
    devpath: &'a str,
    subsystem: Option<&'a str>,
    devtype: Option<&'a str>,
    devname: Option<&'a str>,
    major: Option<u32>,
    minor: Option<u32>,
    modalias: Option<&'a str>,
    pairs: usize,
}

fn summary(event: &Uevent) -> Summary<'_> {
    Summary {
        action: event.action.as_str(),
        devpath: &event.devpath,
        subsystem: event.subsystem.as_deref(),
        devtype: event.devtype.as_deref(),
        devname: event.devname.as_deref(),
        major: event.major,
        minor: event.minor,
        modalias: event.modalias.as_deref(),
        pairs: event.env.len(),
    }
}

#[test]
fn accepted_datagrams() {
    let usb_modalias = "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00";
    let usb_if_path = format!("DEVPATH={USB_IF}");
    let usb_if_modalias = format!("MODALIAS={usb_modalias}");
    let base = Summary {
        action: "add",
        devpath: "",
        subsystem: None,
        devtype: None,
        devname: None,
        major: None,
        minor: None,
        modalias: None,
        pairs: 0,
    };
    let cases: Vec<(&str, Vec<u8>, Summary)> = vec![
        (
            "usb interface with modalias",
            datagram(
                &format!("add@{USB_IF}"),
                &[
                    "ACTION=add",
                    &usb_if_path,
                    "SUBSYSTEM=usb",
                    "DEVTYPE=usb_interface",
                    "PRODUCT=781/5567/100",
                    "TYPE=0/0/0",
                    "INTERFACE=8/6/80",
                    &usb_if_modalias,
                    "SEQNUM=1500",
                ],
            ),
            Summary {
                devpath: USB_IF,
                subsystem: Some("usb"),
                devtype: Some("usb_interface"),
                modalias: Some(usb_modalias),
                pairs: 9,
                ..base
            },
        ),
        (
            "usb device node below /dev/bus",
            datagram(
                "add@/devices/pci0000:00/0000:00:1d.0/usb2/2-1",
                &[
                    "ACTION=add",
                    "DEVPATH=/devices/pci0000:00/0000:00:1d.0/usb2/2-1",
                    "SUBSYSTEM=usb",
                    "MAJOR=189",
                    "MINOR=129",
                    "DEVNAME=bus/usb/002/002",
                    "DEVTYPE=usb_device",
                    "SEQNUM=1499",
                ],
            ),
            Summary {
                devpath: "/devices/pci0000:00/0000:00:1d.0/usb2/2-1",
                subsystem: Some("usb"),
                devtype: Some("usb_device"),
                devname: Some("bus/usb/002/002"),
                major: Some(189),
                minor: Some(129),
                pairs: 8,
                ..base
            },
        ),
        (
            "bus add",
            datagram(
                "add@/bus/usb",
                &[
                    "ACTION=add",
                    "DEVPATH=/bus/usb",
                    "SUBSYSTEM=bus",
                    "SEQNUM=5",
                ],
            ),
            Summary {
                devpath: "/bus/usb",
                subsystem: Some("bus"),
                pairs: 4,
                ..base
            },
        ),
        (
            "remove",
            datagram(
                "remove@/devices/virtual/block/loop0",
                &[
                    "ACTION=remove",
                    "DEVPATH=/devices/virtual/block/loop0",
                    "SUBSYSTEM=block",
                    "MAJOR=7",
                    "MINOR=0",
                    "DEVNAME=loop0",
                    "DEVTYPE=disk",
                    "SEQNUM=77",
                ],
            ),
            Summary {
                action: "remove",
                devpath: "/devices/virtual/block/loop0",
                subsystem: Some("block"),
                devtype: Some("disk"),
                devname: Some("loop0"),
                major: Some(7),
                minor: Some(0),
                pairs: 8,
                ..base
            },
        ),
        (
            "header only, no final NUL",
            b"change@/devices/virtual/misc/x".to_vec(),
            Summary {
                action: "change",
                devpath: "/devices/virtual/misc/x",
                ..base
            },
        ),
        (
            "pair keys override the header",
            datagram("add@/devices/a", &["ACTION=unbind", "DEVPATH=/devices/b"]),
            Summary {
                action: "unbind",
                devpath: "/devices/b",
                pairs: 2,
                ..base
            },
        ),
        (
            "malformed pairs are skipped, values keep later '='",
            [
                datagram(
                    "bind@/devices/a",
                    &["NOEQUALS", "=x", "BAD KEY=1", "lower_ok=1", "MODALIAS=a=b"],
                ),
                b"BAD\xffUTF8=1\0\0\0SUBSYSTEM=pci".to_vec(),
            ]
            .concat(),
            Summary {
                action: "bind",
                devpath: "/devices/a",
                subsystem: Some("pci"),
                modalias: Some("a=b"),
                pairs: 3,
                ..base
            },
        ),
        (
            "duplicates: the last one wins",
            datagram(
                "add@/devices/a",
                &["DEVNAME=one", "DEVNAME=two", "MAJOR=1", "MAJOR=2"],
            ),
            Summary {
                devpath: "/devices/a",
                devname: Some("two"),
                major: Some(2),
                pairs: 4,
                ..base
            },
        ),
        (
            "unknown action",
            datagram("frobnicate@/devices/a", &[]),
            Summary {
                action: "frobnicate",
                devpath: "/devices/a",
                ..base
            },
        ),
    ];
    for (name, bytes, expected) in cases {
        let event = parse(&bytes).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(summary(&event), expected, "{name}");
    }
}

#[test]
fn value_and_pair_caps() {
    let long = format!("LONG={}", "x".repeat(MAX_VALUE_LEN + 1));
    let fits = format!("FITS={}", "y".repeat(MAX_VALUE_LEN));
    let event = parse(&datagram("add@/devices/a", &[&long, &fits])).expect("parses");
    assert_eq!(
        pairs(&event)
            .iter()
            .map(|(key, _)| *key)
            .collect::<Vec<_>>(),
        ["FITS"]
    );

    let many: Vec<String> = (0..1000).map(|index| format!("KEY{index}=v")).collect();
    let mut words: Vec<&str> = many.iter().map(String::as_str).collect();
    words.push("DEVNAME=late");
    let event = parse(&datagram("add@/devices/a", &words)).expect("parses");
    assert_eq!(event.env.len(), MAX_PAIRS);
    assert_eq!(
        event.env.last().map(|(key, _)| key.as_str()),
        Some("KEY127")
    );
    assert_eq!(event.devname, None);
}

#[test]
fn rejected_datagrams() {
    let header = |text: &str| {
        Err(ParseError::Header {
            header: text.to_owned(),
        })
    };
    let devname = |text: &str| {
        Err(ParseError::Devname {
            devname: text.to_owned(),
        })
    };
    let devpath = |text: &str| {
        Err(ParseError::Devpath {
            devpath: text.to_owned(),
        })
    };
    let number = |key, text: &str| {
        Err(ParseError::Number {
            key,
            value: text.to_owned(),
        })
    };
    let cases: Vec<(Vec<u8>, Result<Uevent, ParseError>)> = vec![
        (Vec::new(), Err(ParseError::Empty)),
        (
            b"\0ACTION=add\0DEVPATH=/devices/a\0".to_vec(),
            Err(ParseError::Empty),
        ),
        (
            b"libudev\0\xfe\xed\xca\xfe\0\0\0\0".to_vec(),
            Err(ParseError::Libudev),
        ),
        (
            datagram("add/devices/a", &["ACTION=add"]),
            header("add/devices/a"),
        ),
        (datagram("@/devices/a", &[]), header("@/devices/a")),
        (datagram("add@", &[]), header("add@")),
        (
            b"add@/devices/\xff\0".to_vec(),
            header("add@/devices/\u{fffd}"),
        ),
        (
            datagram("add@/devices/a", &["ACTION="]),
            Err(ParseError::MissingAction),
        ),
        (datagram("add@relative/a", &[]), devpath("relative/a")),
        (
            datagram("add@/devices/a", &["DEVPATH=/devices/../../etc"]),
            devpath("/devices/../../etc"),
        ),
        (
            datagram("add@/devices/a", &["DEVNAME=../etc/x"]),
            devname("../etc/x"),
        ),
        (
            datagram("add@/devices/a", &["DEVNAME=/abs"]),
            devname("/abs"),
        ),
        (
            datagram("add@/devices/a", &["DEVNAME=bus/../../x"]),
            devname("bus/../../x"),
        ),
        (datagram("add@/devices/a", &["DEVNAME="]), devname("")),
        (
            datagram("add@/devices/a", &["MAJOR=99999999999"]),
            number("MAJOR", "99999999999"),
        ),
        (
            datagram("add@/devices/a", &["MINOR=-1"]),
            number("MINOR", "-1"),
        ),
        (
            datagram("add@/devices/a", &["MINOR=+1"]),
            number("MINOR", "+1"),
        ),
        (datagram("add@/devices/a", &["PARTN="]), number("PARTN", "")),
        (
            datagram("add@/devices/a", &["SEQNUM=x"]),
            number("SEQNUM", "x"),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            parse(&bytes),
            expected,
            "datagram {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn fuzz_entry_survives_hostile_bytes() {
    let inputs: [&[u8]; 6] = [
        b"",
        b"@",
        b"\0\0\0",
        b"a@/\0=\0==\0\xff",
        b"libudev",
        &[b'@'; 70_000],
    ];
    for input in inputs {
        crate::fuzz(input);
    }
    // A header longer than a value may be is refused rather than kept.
    let long = format!("add@/{}", "d".repeat(MAX_VALUE_LEN));
    assert!(matches!(
        parse(long.as_bytes()),
        Err(ParseError::Header { .. })
    ));
}
