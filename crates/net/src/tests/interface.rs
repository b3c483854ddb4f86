use std::cell::RefCell;
use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::{
    apply_mactab, choose_interface, interface_mac, machine_uuid, parse_mac, parse_mactab, Links,
    NetError,
};

/// Records every link change as "eth0 up" / "eth0 down".
#[derive(Default)]
struct Recorder {
    calls: RefCell<Vec<String>>,
}

impl Links for Recorder {
    fn set_up(&self, ifname: &str, up: bool) -> io::Result<()> {
        let state = if up { "up" } else { "down" };
        self.calls.borrow_mut().push(format!("{ifname} {state}"));
        Ok(())
    }

    fn ifindex(&self, _ifname: &str) -> io::Result<u32> {
        Err(io::Error::from(io::ErrorKind::NotFound))
    }

    fn rename(&self, ifname: &str, new_name: &str) -> io::Result<()> {
        self.calls
            .borrow_mut()
            .push(format!("{ifname} -> {new_name}"));
        Ok(())
    }
}

/// Alpine's `fake_ifaces`: class/net/N with device/, ifindex, operstate=down, address.
fn fake_iface(sys: &Path, name: &str, index: u32, physical: bool) {
    let dir = sys.join("class/net").join(name);
    fs::create_dir_all(&dir).unwrap();
    if physical {
        fs::create_dir(dir.join("device")).unwrap();
    }
    fs::write(dir.join("ifindex"), format!("{index}\n")).unwrap();
    fs::write(dir.join("operstate"), "down\n").unwrap();
    fs::write(dir.join("address"), format!("02:00:00:00:00:0{index}\n")).unwrap();
}

fn set_operstate(sys: &Path, name: &str, state: &str) {
    fs::write(sys.join("class/net").join(name).join("operstate"), state).unwrap();
}

fn eth012(sys: &Path) {
    // Created out of order so the ifindex sort is what decides.
    for (name, index) in [("eth2", 3), ("eth0", 1), ("eth1", 2)] {
        fake_iface(sys, name, index, true);
    }
}

#[test]
fn no_interface() {
    let dir = tempfile::tempdir().unwrap();
    let links = Recorder::default();
    let err = choose_interface(dir.path(), &links, None, None, Duration::ZERO).unwrap_err();
    assert!(matches!(err, NetError::NoInterface));
    assert_eq!(
        err.to_string(),
        "IP requested but no network interface was found"
    );
}

#[test]
fn no_physical_interface() {
    let dir = tempfile::tempdir().unwrap();
    fake_iface(dir.path(), "veth0", 1, false);
    fake_iface(dir.path(), "veth1", 2, false);
    let links = Recorder::default();
    let err = choose_interface(dir.path(), &links, None, None, Duration::ZERO).unwrap_err();
    assert!(matches!(err, NetError::NoInterface));
    assert!(links.calls.borrow().is_empty());
}

#[test]
fn all_down_takes_first_and_sets_others_down() {
    let dir = tempfile::tempdir().unwrap();
    eth012(dir.path());
    let links = Recorder::default();
    let chosen = choose_interface(dir.path(), &links, None, None, Duration::ZERO).unwrap();
    assert_eq!(chosen, "eth0");
    assert_eq!(
        *links.calls.borrow(),
        ["eth0 up", "eth1 up", "eth2 up", "eth1 down", "eth2 down"]
    );
}

#[test]
fn first_up_wins_and_others_go_down() {
    let dir = tempfile::tempdir().unwrap();
    eth012(dir.path());
    set_operstate(dir.path(), "eth1", "up");
    set_operstate(dir.path(), "eth2", "up");
    let links = Recorder::default();
    let chosen = choose_interface(dir.path(), &links, None, None, Duration::ZERO).unwrap();
    assert_eq!(chosen, "eth1");
    let calls = links.calls.borrow();
    for expected in ["eth0 up", "eth1 up", "eth2 up", "eth2 down", "eth0 down"] {
        assert!(
            calls.iter().any(|c| c == expected),
            "{expected} in {calls:?}"
        );
    }
    assert!(!calls.iter().any(|c| c == "eth1 down"), "{calls:?}");
}

#[test]
fn carrier_file_counts_as_link() {
    let dir = tempfile::tempdir().unwrap();
    eth012(dir.path());
    fs::write(dir.path().join("class/net/eth2/carrier"), "1\n").unwrap();
    fs::write(dir.path().join("class/net/eth1/carrier"), "0\n").unwrap();
    let links = Recorder::default();
    let chosen = choose_interface(dir.path(), &links, None, None, Duration::ZERO).unwrap();
    assert_eq!(chosen, "eth2");
}

#[test]
fn bootif_picks_matching_mac_without_touching_links() {
    let dir = tempfile::tempdir().unwrap();
    eth012(dir.path());
    let links = Recorder::default();
    let mac = crate::parse_bootif("01-02-00-00-00-00-03").unwrap();
    let chosen = choose_interface(dir.path(), &links, None, Some(&mac), Duration::ZERO).unwrap();
    assert_eq!(chosen, "eth2");
    assert!(links.calls.borrow().is_empty());

    let upper = choose_interface(
        dir.path(),
        &links,
        None,
        Some("02:00:00:00:00:02"),
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(upper, "eth1");
}

#[test]
fn bootif_without_match_falls_back_to_physical() {
    let dir = tempfile::tempdir().unwrap();
    eth012(dir.path());
    set_operstate(dir.path(), "eth1", "up");
    let links = Recorder::default();
    let chosen = choose_interface(
        dir.path(),
        &links,
        None,
        Some("52:54:00:ff:ff:ff"),
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(chosen, "eth1");
}

#[test]
fn explicit_device_wins_and_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    eth012(dir.path());
    let links = Recorder::default();
    let mac = Some("02:00:00:00:00:03");
    let chosen = choose_interface(dir.path(), &links, Some("eth1"), mac, Duration::ZERO).unwrap();
    assert_eq!(chosen, "eth1");
    assert!(links.calls.borrow().is_empty());
    let bad = choose_interface(dir.path(), &links, Some("../x"), None, Duration::ZERO);
    assert!(matches!(bad, Err(NetError::BadInterfaceName(_))));
}

#[test]
fn mac_and_uuid_from_sysfs() {
    let dir = tempfile::tempdir().unwrap();
    fake_iface(dir.path(), "eth0", 1, true);
    fs::write(
        dir.path().join("class/net/eth0/address"),
        "52:54:00:AB:cd:01\n",
    )
    .unwrap();
    assert_eq!(
        interface_mac(dir.path(), "eth0").unwrap(),
        "52:54:00:ab:cd:01"
    );
    assert!(interface_mac(dir.path(), "eth9").is_err());

    assert_eq!(machine_uuid(dir.path()), None);
    let dmi = dir.path().join("class/dmi/id");
    fs::create_dir_all(&dmi).unwrap();
    fs::write(dmi.join("product_uuid"), "").unwrap();
    assert_eq!(machine_uuid(dir.path()), None);
    fs::write(
        dmi.join("product_uuid"),
        "c7c29fe0-cf90-4024-8ba3-208387fc7ac6\n",
    )
    .unwrap();
    assert_eq!(
        machine_uuid(dir.path()).as_deref(),
        Some("c7c29fe0-cf90-4024-8ba3-208387fc7ac6")
    );
}

#[test]
fn parse_mac_cases() {
    assert_eq!(
        parse_mac("52:54:00:12:34:5f"),
        Some([0x52, 0x54, 0, 0x12, 0x34, 0x5f])
    );
    for bad in [
        "52:54:00:12:34",
        "52:54:00:12:34:56:78",
        "5:54:00:12:34:56",
        "zz:54:00:12:34:56",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad}");
    }
}

/// Fuzz target `net_config`: `u8::from_str_radix` takes a sign, so `+0` passed as
/// a pair and a mactab line with it was kept though no interface could match it.
#[test]
fn mac_pair_with_a_sign_is_refused() {
    assert_eq!(parse_mac("+0:00:00:00:00:00"), None);
    assert_eq!(parse_mac("02:00:00:00:00:+1"), None);
    assert_eq!(parse_mac("02:00:00:00:00:-1"), None);
    assert!(parse_mactab("eth0 +2:00:00:00:00:01\n").is_empty());
}

/// Fuzz target `net_config`: mactab names took any bytes but `/`, `:` and
/// whitespace (a NUL would cut the name in netlink); now the rule `ip=`'s
/// device follows.
#[test]
fn mactab_name_with_control_or_non_ascii_bytes_is_skipped() {
    let entries = parse_mactab(
        "a\u{0}b 02:00:00:00:00:01\nl\u{e4}n 02:00:00:00:00:02\nb\u{7f} 02:00:00:00:00:03\nok 02:00:00:00:00:04\n",
    );
    assert_eq!(
        entries,
        [("ok".to_string(), "02:00:00:00:00:04".to_string())]
    );
}

#[test]
fn mactab_parses_names_and_macs_and_skips_bad_lines() {
    let entries = parse_mactab(
        "# nameif -s\nlan 02:00:00:00:00:02\nwan\t02:00:00:00:00:0A # uplink\n../x 02:00:00:00:00:03\nshort 02:00\nname-that-is-far-too-long 02:00:00:00:00:01\n",
    );
    assert_eq!(
        entries,
        [
            ("lan".to_string(), "02:00:00:00:00:02".to_string()),
            ("wan".to_string(), "02:00:00:00:00:0a".to_string()),
        ]
    );
}

#[test]
fn mactab_renames_by_mac_with_the_link_down() {
    let dir = tempfile::tempdir().unwrap();
    eth012(dir.path());
    let links = Recorder::default();
    let entries =
        parse_mactab("lan 02:00:00:00:00:02\neth0 02:00:00:00:00:01\nghost 02:00:00:00:00:09\n");
    let (done, errors) = apply_mactab(dir.path(), &links, &entries);
    assert_eq!(done, [("eth1".to_string(), "lan".to_string())]);
    assert!(errors.is_empty());
    assert_eq!(*links.calls.borrow(), ["eth1 down", "eth1 -> lan"]);
}

/// Links that can bring interfaces down but not rename them (the trait's default).
struct NoRename;

impl Links for NoRename {
    fn set_up(&self, _ifname: &str, _up: bool) -> io::Result<()> {
        Ok(())
    }

    fn ifindex(&self, _ifname: &str) -> io::Result<u32> {
        Err(io::Error::from(io::ErrorKind::NotFound))
    }
}

#[test]
fn mactab_rename_failure_keeps_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    eth012(dir.path());
    let entries = parse_mactab("lan 02:00:00:00:00:02\n");
    let (done, errors) = apply_mactab(dir.path(), &NoRename, &entries);
    assert!(done.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(&errors[0], NetError::Rename { from, to, source, .. }
            if from == "eth1" && to == "lan" && source.kind() == io::ErrorKind::Unsupported),
        "{:?}",
        errors[0]
    );
    assert_eq!(
        crate::error_chain(&errors[0]),
        format!(
            "cannot rename eth1 (02:00:00:00:00:02) to lan: {}",
            io::Error::from(io::ErrorKind::Unsupported)
        )
    );
}
