//! Upstream's `tests/initramfs-init.test` (mkinitfs 3.13.0, 32 cases), case
//! by case. Each test is named after the upstream case and asserts the same
//! observable effect on alpinit's boot; where alpinit does the work in
//! process, the effect is the recorded platform call instead of the mocked
//! command line (`udhcpc -i eth1` → a DHCP request on eth1).
//!
//! | # | upstream case | pinned by / waits for |
//! |---|---|---|
//! | 1 | `cmdline_root` | [`cmdline_root`] |
//! | 2 | `blacklist` | [`blacklist`] |
//! | 3 | `tmpfs_root` | [`tmpfs_root`] (`KOPT_bootstrap_usr_merged=yes` of upstream's env given as the option) |
//! | 4 | `tmpfs_root_modloop_sign` | [`tmpfs_root_modloop_sign`] |
//! | 5 | `tmpfs_root_net_apkovl` | [`tmpfs_root_net_apkovl`] |
//! | 6 | `tmpfs_root_console_serial` | [`tmpfs_root_console_serial`] |
//! | 7 | `tmpfs_root_autodetect_serial` | [`tmpfs_root_autodetect_serial`] |
//! | 8 | `tmpfs_root_disable_autodetect_serial` | [`tmpfs_root_disable_autodetect_serial`] |
//! | 9 | `tmpfs_root_apkovl_autodetect_serial` | [`tmpfs_root_apkovl_autodetect_serial`] |
//! | 10 | `tmpfs_root_remount_opts` | [`tmpfs_root_remount_opts`] |
//! | 11 | `tmpfs_root_tiny_cloud_cidata` | [`tmpfs_root_tiny_cloud_cidata`] |
//! | 12 | `tmpfs_root_tiny_cloud_bootopt` | [`tmpfs_root_tiny_cloud_bootopt`] |
//! | 13 | `tmpfs_root_tiny_cloud_disabled` | [`tmpfs_root_tiny_cloud_disabled`] |
//! | 14 | `tmpfs_root_tiny_cloud_net` | [`tmpfs_root_tiny_cloud_net`] |
//! | 15 | `tmpfs_root_tiny_cloud_smbios` | [`tmpfs_root_tiny_cloud_smbios`] |
//! | 16 | `tmpfs_root_apkovl_url` | [`tmpfs_root_apkovl_url`] |
//! | 17 | `tmpfs_root_apkovl_mount` | [`tmpfs_root_apkovl_mount`] |
//! | 18 | `tmpfs_root_apkovl_unpack_merged` | [`tmpfs_root_apkovl_unpack_merged`] |
//! | 19 | `tmpfs_root_ip_dhcp_no_iface` | [`tmpfs_root_ip_dhcp_no_iface`] |
//! | 20 | `tmpfs_root_ip_dhcp_no_physical_iface` | [`tmpfs_root_ip_dhcp_no_physical_iface`] |
//! | 21 | `tmpfs_root_ip_dhcp_all_down` | [`tmpfs_root_ip_dhcp_all_down`] |
//! | 22 | `tmpfs_root_ip_dhcp_first_up` | [`tmpfs_root_ip_dhcp_first_up`] |
//! | 23 | `tmpfs_root_ip_dhcp_BOOTIF` | [`tmpfs_root_ip_dhcp_bootif`] |
//! | 24 | `tmpfs_root_ip_mactab` | [`tmpfs_root_ip_mactab`] |
//! | 25 | `tmpfs_root_alpine_repo` | [`tmpfs_root_alpine_repo`] |
//! | 26 | `aoe` | [`super::aoe::aoe`] |
//! | 27 | `wireguard` | [`super::wireguard::wireguard`] |
//! | 28 | `resume_offset` | [`root_mode::resume_offset`] |
//! | 29 | `mount_usr` | [`root_mode::mount_usr`] |
//! | 30 | `autodetect_serial_setconsole` | [`autodetect_serial_setconsole`] |
//! | 31 | `autodetect_serial_setconsole_dmi_notfound` | [`autodetect_serial_setconsole_dmi_notfound`] |
//! | 32 | `autodetect_serial_setconsole_dmi_match` | [`autodetect_serial_setconsole_dmi_match`] |
//!
//! The pending cases are listed in [`PENDING`] (and checked against this
//! table), never as passing tests.

mod root_mode;

use super::consoles::fake_serial_devices;
use super::machine::{overlay, Bus, Fs, Machine};
use crate::platform::fake::Ev;
use alpinit_sys::MountFlags;

/// Upstream cases for behaviours alpinit does not have yet, with the
/// behaviour each needs.
pub const PENDING: &[(&str, &str)] = &[];

/// Upstream's `fake_sysroot_init`: `/sbin -> usr/sbin` with an executable init.
fn fake_sysroot_init(m: &Machine) {
    std::fs::remove_dir_all(m.path("/sysroot")).unwrap();
    m.exe("/sysroot/usr/sbin/init");
    std::os::unix::fs::symlink("usr/sbin", m.path("/sysroot/sbin")).unwrap();
}

/// Upstream's `fake_ifaces`: physical NICs, down, ifindex and MAC from 1.
fn fake_ifaces(m: &Machine, names: &[&str]) -> Vec<String> {
    (1u32..)
        .zip(names)
        .map(|(n, name)| m.nic(name, n, false, true))
        .collect()
}

#[test]
fn pending_cases_match_the_table() {
    let doc = include_str!("upstream.rs");
    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("//! | ") && l.contains("| `"))
        .collect();
    assert_eq!(rows.len(), 32);
    let pending = rows.iter().filter(|r| r.contains("| pending: ")).count();
    assert_eq!(pending, PENDING.len());
    for (case, behaviour) in PENDING {
        assert!(
            rows.iter()
                .any(|r| r.contains(&format!("| `{case}` | pending: {behaviour} |"))),
            "{case}"
        );
    }
}

#[test]
fn cmdline_root() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1");
    fake_sysroot_init(&m);
    m.block("vda1", Bus::Virtio, Fs::Ext4 { label: "ROOT" }, &[]);
    let boot = m.boot();
    assert!(boot.console.contains("Alpine Init"));
    assert!(boot.kmsg.contains("coldplug: "), "discovery ran");
    let root = boot.mount_on("/sysroot").unwrap();
    assert_eq!(root.source, "/dev/vda1");
    assert!(root.flags.contains(MountFlags::RDONLY));
    boot.assert_clean_switch();
}

#[test]
fn blacklist() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 blacklist=dummy,evbug");
    fake_sysroot_init(&m);
    m.modalias_device(
        "input",
        "/devices/LNXSYSTM:00/LNXPWRBN:00/input/input0",
        "input:b0019v0000p0001e0000-e0,1,k74,ramlsfw",
    );
    m.block("vda1", Bus::Virtio, Fs::Ext4 { label: "ROOT" }, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let conf = m.read("/etc/modprobe.d/boot-opt-blacklist.conf");
    assert!(
        conf.contains("blacklist dummy\n") && conf.contains("blacklist evbug\n"),
        "{conf}"
    );
    let mods = boot.insmods();
    assert!(
        !mods.iter().any(|x| x == "dummy" || x == "evbug"),
        "{mods:?}"
    );
}

#[test]
fn blacklist_control_without_it_the_modalias_loads_both() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1");
    fake_sysroot_init(&m);
    m.modalias_device(
        "input",
        "/devices/LNXSYSTM:00/LNXPWRBN:00/input/input0",
        "input:b0019v0000p0001e0000-e0,1,k74,ramlsfw",
    );
    m.block("vda1", Bus::Virtio, Fs::Ext4 { label: "ROOT" }, &[]);
    let mods = m.boot().insmods();
    assert!(
        mods.contains(&"dummy".to_owned()) && mods.contains(&"evbug".to_owned()),
        "{mods:?}"
    );
}

#[test]
fn tmpfs_root() {
    let m = Machine::new();
    m.cmdline("bootstrap_usr_merged");
    fake_sysroot_init(&m);
    m.block(
        "vda1",
        Bus::Virtio,
        Fs::Ext4 { label: "A" },
        &[("apks/.boot_repository", b"")],
    );
    let boot = m.boot();
    assert_eq!(
        boot.mount_on("/sysroot").and_then(|x| x.fstype).as_deref(),
        Some("tmpfs")
    );
    for d in ["usr/lib", "usr/bin", "usr/sbin"] {
        assert!(m.path(&format!("/sysroot/{d}")).is_dir(), "{d}");
    }
    for d in ["bin", "lib"] {
        assert_eq!(
            std::fs::read_link(m.path(&format!("/sysroot/{d}"))).ok(),
            Some(format!("usr/{d}").into())
        );
    }
    boot.assert_clean_switch();
}

#[test]
fn tmpfs_root_net_apkovl() {
    let m = Machine::new();
    m.cmdline("apkovl=https://example.com/{UUID}/foo.apkovl.tar.gz");
    fake_sysroot_init(&m);
    m.write(
        "/sys/class/dmi/id/product_uuid",
        "c7c29fe0-cf90-4024-8ba3-208387fc7ac6\n",
    );
    let mac = m.nic("eth0", 1, true, true);
    m.dhcp_server("eth0", &mac);
    let boot = m.boot();
    assert!(
        boot.has(&Ev::Fetch(
            "https://example.com/c7c29fe0-cf90-4024-8ba3-208387fc7ac6/foo.apkovl.tar.gz".into()
        )),
        "{:?}",
        boot.events
    );
}

#[test]
fn tmpfs_root_remount_opts() {
    let m = Machine::new();
    fake_sysroot_init(&m);
    m.write(
        "/sysroot/etc/fstab",
        "/dev/cdrom\t/media/cdrom\tiso9660\tnoauto,ro,customopts 0 0\n/dev/usbdisk\t/media/usb\tvfat\tnoauto,ro 0 0\n",
    );
    // Device 0:0: the rdev of this tree's regular-file nodes (upstream fakes `stat`).
    m.block_devno(
        "sr0",
        Bus::Cdrom,
        Fs::Iso { label: "alpine" },
        &[("apks/.boot_repository", b"")],
        Some((0, 0)),
    );
    let boot = m.boot();
    boot.assert_clean_switch();
    let mounts = boot.mounts();
    let moved = mounts
        .iter()
        .find(|x| x.flags.contains(MountFlags::MOVE) && x.target == "/media/cdrom");
    assert_eq!(
        moved.map(|x| x.source.as_str()),
        Some("/media/sr0"),
        "{mounts:?}"
    );
    let remount = mounts
        .iter()
        .find(|x| x.flags.contains(MountFlags::REMOUNT) && x.target == "/media/cdrom")
        .expect("remounted");
    assert_eq!(remount.data.as_deref(), Some("customopts"));
    assert!(remount.flags.contains(MountFlags::RDONLY));
}

#[test]
fn tmpfs_root_apkovl_url() {
    let m = Machine::new();
    m.cmdline("apkovl=http://example.tld/some/path/to/file?some=queries&forExample=for:Validation");
    fake_sysroot_init(&m);
    let mac = m.nic("eth0", 1, true, true);
    m.dhcp_server("eth0", &mac);
    let ovl = overlay(&[("etc/hostname", b"url\n")]);
    m.fake.on_fetch(move |_| Ok(ovl.clone()));
    let boot = m.boot();
    assert!(
        m.exists("/tmp/file"),
        "downloaded to /tmp/file without the query"
    );
    assert_eq!(std::fs::read_dir(m.path("/tmp")).unwrap().count(), 1);
    // As in Alpine, a name without `.gz` is read as a cipher suffix.
    assert!(
        boot.console.contains("Cipher file is not supported"),
        "{}",
        boot.console
    );
}

#[test]
fn tmpfs_root_apkovl_mount() {
    let m = Machine::new();
    m.cmdline("apkovl=/dev/sda1:foofs:bar.apkovl.tar.gz");
    fake_sysroot_init(&m);
    let ovl = overlay(&[("etc/hostname", b"bar\n")]);
    m.block("sda1", Bus::Usb, Fs::Blank, &[("bar.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(m.path("/media/sda1").is_dir());
    let mount = boot.mount_on("/media/sda1").expect("mounted");
    assert_eq!(
        (mount.source.as_str(), mount.fstype.as_deref()),
        ("/dev/sda1", Some("foofs"))
    );
    assert!(boot.umounts().contains(&"/media/sda1".to_owned()));
    assert_eq!(m.read("/sysroot/etc/hostname"), "bar\n");
}

#[test]
fn tmpfs_root_apkovl_unpack_merged() {
    let m = Machine::new();
    m.cmdline("apkovl=foo.tar.gz");
    m.write("/foo.tar.gz", overlay(&[("bin/foo", b"")]));
    fake_sysroot_init(&m);
    m.mkdir("/sysroot/usr/bin");
    std::os::unix::fs::symlink("usr/bin", m.path("/sysroot/bin")).unwrap();
    let boot = m.boot();
    assert!(m.path("/sysroot/usr/bin/foo").is_file(), "{}", boot.console);
}

#[test]
fn tmpfs_root_ip_dhcp_no_iface() {
    let m = Machine::new();
    m.cmdline("ip=dhcp");
    fake_sysroot_init(&m);
    let boot = m.boot();
    assert!(
        boot.console
            .contains("ERROR: IP requested but no network interface was found"),
        "{}",
        boot.console
    );
}

#[test]
fn tmpfs_root_ip_dhcp_no_physical_iface() {
    let m = Machine::new();
    m.cmdline("ip=dhcp");
    fake_sysroot_init(&m);
    m.nic("veth0", 1, false, false);
    m.nic("veth1", 2, false, false);
    let boot = m.boot();
    assert!(
        boot.console
            .contains("ERROR: IP requested but no network interface was found"),
        "{}",
        boot.console
    );
    assert!(!boot.events.iter().any(|e| matches!(e, Ev::Dhcp(_))));
}

#[test]
fn tmpfs_root_ip_dhcp_all_down() {
    let m = Machine::new();
    m.cmdline("ip=dhcp");
    fake_sysroot_init(&m);
    fake_ifaces(&m, &["eth0", "eth1", "eth2"]);
    let boot = m.boot();
    assert!(boot.has(&Ev::Dhcp("eth0".into())), "{:?}", boot.events);
}

#[test]
fn tmpfs_root_ip_dhcp_first_up() {
    let m = Machine::new();
    m.cmdline("ip=dhcp");
    fake_sysroot_init(&m);
    fake_ifaces(&m, &["eth0", "eth1", "eth2"]);
    m.write("/sys/class/net/eth1/operstate", "up\n");
    m.write("/sys/class/net/eth2/operstate", "up\n");
    let boot = m.boot();
    for (name, up) in [
        ("eth0", true),
        ("eth1", true),
        ("eth2", true),
        ("eth2", false),
        ("eth0", false),
    ] {
        assert!(
            boot.has(&Ev::LinkUp(name.into(), up)),
            "{name} {up}: {:?}",
            boot.events
        );
    }
    assert!(!boot.has(&Ev::LinkUp("eth1".into(), false)));
    assert!(boot.has(&Ev::Dhcp("eth1".into())));
}

#[test]
fn tmpfs_root_ip_dhcp_bootif() {
    let m = Machine::new();
    m.cmdline("ip=dhcp BOOTIF=02:00:00:00:00:03");
    fake_sysroot_init(&m);
    let macs = fake_ifaces(&m, &["eth0", "eth1", "eth2"]);
    m.dhcp_server("eth2", &macs[2]);
    let boot = m.boot();
    assert!(!boot
        .events
        .iter()
        .any(|e| matches!(e, Ev::LinkUp(n, _) if n == "eth0" || n == "eth1")));
    assert!(boot.has(&Ev::Dhcp("eth2".into())), "{:?}", boot.events);
    // The link comes up with its address (rtnetlink), not with `ip link`.
    assert!(boot.has(&Ev::Apply("eth2 10.0.2.15/24".into())));
}

#[test]
fn tmpfs_root_ip_mactab() {
    let m = Machine::new();
    m.cmdline("ip=dhcp");
    fake_sysroot_init(&m);
    let mac = m.nic("eth0", 1, true, true);
    m.write("/etc/mactab", format!("lan0 {mac}\n"));
    m.dhcp_server("lan0", &mac);
    let boot = m.boot();
    // Alpine runs `nameif`; alpinit renames in process.
    assert!(
        boot.has(&Ev::Rename("eth0".into(), "lan0".into())),
        "{:?}",
        boot.events
    );
    assert!(boot.has(&Ev::Dhcp("lan0".into())));
}

#[test]
fn tmpfs_root_alpine_repo() {
    let m = Machine::new();
    m.cmdline("alpine_repo=https://example.com/a,https://example.com/b");
    fake_sysroot_init(&m);
    let mac = m.nic("eth0", 1, true, true);
    m.dhcp_server("eth0", &mac);
    let boot = m.boot();
    boot.assert_clean_switch();
    let repos = m.read("/sysroot/etc/apk/repositories");
    assert!(
        repos.lines().any(|l| l == "https://example.com/a"),
        "{repos}"
    );
    assert!(
        repos.lines().any(|l| l == "https://example.com/b"),
        "{repos}"
    );
}

/// Upstream mocks nlplug-findfs; here a boot medium is found, so the boot
/// is clean.
fn boot_medium(m: &Machine) {
    m.block(
        "vda1",
        Bus::Virtio,
        Fs::Ext4 { label: "A" },
        &[("apks/.boot_repository", b"")],
    );
}

/// Files of the new root whose name contains `part` (upstream's
/// `find sysroot/ -name '*part*'`).
fn find_in(dir: &std::path::Path, part: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(part) {
            found.push(e.path().display().to_string());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find_in(&e.path(), part));
        }
    }
    found
}

#[test]
fn tmpfs_root_modloop_sign() {
    let m = Machine::new();
    fake_sysroot_init(&m);
    boot_medium(&m);
    m.write(
        "/var/cache/misc/modloop.SIGN.RSA.ncopa-4d1b7620.rsa.pub",
        "",
    );
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(m
        .path("/sysroot/var/cache/misc/modloop.SIGN.RSA.ncopa-4d1b7620.rsa.pub")
        .is_file());
}

/// Upstream's tiny-cloud cases: a clean boot of `fake_sysroot_init` with a
/// boot medium, `cmdline`, and what `prepare` adds; returns the machine.
fn tiny_cloud_boot(cmdline: &str, prepare: impl Fn(&Machine)) -> Machine {
    let m = Machine::new();
    if !cmdline.is_empty() {
        m.cmdline(cmdline);
    }
    fake_sysroot_init(&m);
    boot_medium(&m);
    prepare(&m);
    m.boot().assert_clean_switch();
    m
}

fn has_tiny_cloud(m: &Machine) -> bool {
    !find_in(&m.path("/sysroot"), "tiny-cloud").is_empty()
}

/// Upstream's `findfs LABEL=cidata` succeeds: here a volume so labelled.
fn cidata_volume(m: &Machine) {
    m.block("vdb", Bus::Virtio, Fs::Iso { label: "cidata" }, &[]);
}

#[test]
fn tmpfs_root_tiny_cloud_cidata() {
    assert!(has_tiny_cloud(&tiny_cloud_boot("", cidata_volume)));
}

#[test]
fn tmpfs_root_tiny_cloud_bootopt() {
    assert!(has_tiny_cloud(&tiny_cloud_boot(
        "tinycloud=cloud=nocloud",
        |_| ()
    )));
}

#[test]
fn tmpfs_root_tiny_cloud_disabled() {
    let m = tiny_cloud_boot("", |m| {
        cidata_volume(m);
        m.write("/sysroot/etc/tiny-cloud.disabled", "");
    });
    assert_eq!(
        find_in(&m.path("/sysroot/etc/runlevels"), "tiny-cloud"),
        Vec::<String>::new()
    );
}

#[test]
fn tmpfs_root_tiny_cloud_net() {
    assert!(has_tiny_cloud(&tiny_cloud_boot(
        "ds=nocloud;s=http://10.0.0.1/configs",
        |_| ()
    )));
}

#[test]
fn tmpfs_root_tiny_cloud_smbios() {
    assert!(has_tiny_cloud(&tiny_cloud_boot("", |m| {
        m.write(
            "/sys/class/dmi/id/product_serial",
            "ds=nocloud;s=http://10.0.2.2:8000/\n",
        );
    })));
}

#[test]
fn tmpfs_root_console_serial() {
    let m = Machine::new();
    m.cmdline("console=ttyS0");
    fake_sysroot_init(&m);
    m.write("/sys/class/tty/console/active", "tty0\n");
    // As upstream (`-o ignore`), the boot may pass the recovery shell
    // (no boot media here); it reaches the hand-over.
    assert!(m.boot().switched_to().is_some());
    let inittab = m.read("/sysroot/etc/inittab");
    assert!(inittab.contains("tty0::respawn:/sbin/getty"), "{inittab}");
    assert!(inittab.contains("ttyS0::respawn:/sbin/getty"), "{inittab}");
}

#[test]
fn tmpfs_root_autodetect_serial() {
    let m = Machine::new();
    fake_sysroot_init(&m);
    fake_serial_devices(&m);
    // As upstream (`-o ignore`), the boot may pass the recovery shell
    // (no boot media here); it reaches the hand-over.
    assert!(m.boot().switched_to().is_some());
    let inittab = m.read("/sysroot/etc/inittab");
    assert!(inittab.contains("ttyS0::respawn:/sbin/getty"), "{inittab}");
    assert!(
        inittab.contains("ttyAMA0::respawn:/sbin/getty"),
        "{inittab}"
    );
}

#[test]
fn tmpfs_root_disable_autodetect_serial() {
    let m = Machine::new();
    m.cmdline("autodetect_serial=no");
    fake_sysroot_init(&m);
    fake_serial_devices(&m);
    // As upstream (`-o ignore`), the boot may pass the recovery shell
    // (no boot media here); it reaches the hand-over.
    assert!(m.boot().switched_to().is_some());
    let inittab = m.read("/sysroot/etc/inittab");
    assert!(!inittab.contains("ttyS0::respawn:/sbin/getty"), "{inittab}");
    assert!(
        !inittab.contains("ttyAMA0::respawn:/sbin/getty"),
        "{inittab}"
    );
}

#[test]
fn tmpfs_root_apkovl_autodetect_serial() {
    let m = Machine::new();
    m.cmdline("apkovl=foo.tar.gz");
    m.write("/foo.tar.gz", overlay(&[("foo", b"")]));
    fake_sysroot_init(&m);
    fake_serial_devices(&m);
    assert!(m.boot().switched_to().is_some());
    assert!(m.exists("/sysroot/foo"), "the overlay was applied");
    let inittab = m.read("/sysroot/etc/inittab");
    assert!(!inittab.contains("ttyS0::respawn:/sbin/getty"), "{inittab}");
    assert!(
        !inittab.contains("ttyAMA0::respawn:/sbin/getty"),
        "{inittab}"
    );
}

/// Upstream's QEMU DMI modalias.
const QEMU_MODALIAS: &str = "dmi:bvnEDKII:bvredk2-stable202408-prebuilt.qemu.org:bd08/13/2024:br0.0:svnQEMU:pnQEMUVirtualMachine:pvrvirt-10.0:cvnQEMU:ct1:cvrvirt-10.0:sku:\n";

fn setconsole_boot(cmdline: &str, modalias: Option<&str>) -> (Machine, Vec<Ev>) {
    let m = Machine::new();
    m.cmdline(cmdline);
    fake_sysroot_init(&m);
    fake_serial_devices(&m);
    if let Some(text) = modalias {
        m.write("/sys/class/dmi/id/modalias", text);
    }
    m.block("vda1", Bus::Virtio, Fs::Ext4 { label: "ROOT" }, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let set = boot
        .events
        .into_iter()
        .filter(|e| matches!(e, Ev::SetConsole(_)))
        .collect();
    (m, set)
}

#[test]
fn autodetect_serial_setconsole() {
    let (m, set) = setconsole_boot("root=/dev/vda1 autodetect_serial=setconsole", None);
    assert_eq!(set, [Ev::SetConsole(m.path("/dev/ttyS0"))]);
}

#[test]
fn autodetect_serial_setconsole_dmi_notfound() {
    let (_, set) = setconsole_boot(
        "root=/dev/vda1 autodetect_serial=setconsole=notfound",
        Some(QEMU_MODALIAS),
    );
    assert_eq!(set, []);
}

#[test]
fn autodetect_serial_setconsole_dmi_match() {
    let (m, set) = setconsole_boot(
        "root=/dev/vda1 autodetect_serial=setconsole=notfound,pnQEMUVirtualMachine",
        Some(QEMU_MODALIAS),
    );
    assert_eq!(set, [Ev::SetConsole(m.path("/dev/ttyS0"))]);
}
