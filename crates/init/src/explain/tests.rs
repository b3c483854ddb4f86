//! `alpinit explain` on a fake machine: a temp `/proc`, `/sys`, `/dev` and
//! media (`crate::tests::whole_boot::machine`), the recording `Sys`.

use super::*;
use crate::tests::whole_boot::machine::{overlay, Bus, Fs, Machine, BOOT_REPOSITORY};
use alpinit_sys::{Call, MountFlags};

fn explain(m: &Machine) -> (Verdict, String) {
    let mut out = Vec::new();
    let verdict = run(&m.layout, &m.fake, &Args::default(), &mut out).expect("explain");
    (verdict, String::from_utf8(out).expect("utf-8"))
}

/// `/dev/NAME` is mounted at `/media/NAME` (as after a boot): its files are
/// read there, nothing is mounted.
fn mounted(m: &Machine, name: &str, fstype: &str, files: &[(&str, &[u8])]) {
    let mut mounts = m.read("/proc/mounts");
    mounts.push_str(&format!("/dev/{name} /media/{name} {fstype} ro 0 0\n"));
    m.write("/proc/mounts", mounts);
    m.mkdir(&format!("/media/{name}"));
    for (rel, data) in files {
        m.write(&format!("/media/{name}/{rel}"), data);
    }
}

fn mount_calls(m: &Machine) -> Vec<Call> {
    m.fake
        .events()
        .into_iter()
        .filter_map(|e| match e {
            crate::platform::fake::Ev::Sys(c @ (Call::Mount { .. } | Call::Umount { .. })) => {
                Some(c)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn report_names_options_devices_and_the_chosen_apkovl() {
    let m = Machine::new();
    m.cmdline(
        "BOOT_IMAGE=/boot/vmlinuz console=tty0 console=ttyS0 modules=sd-mod,usb-storage \
         dasd=0.0.0100 usb-storage.delay_use=0 quiet",
    );
    let ovl = overlay(&[("etc/hostname", b"box\n")]);
    m.stick("sda1", "STICK", &[]);
    mounted(&m, "sda1", "vfat", &[("box.apkovl.tar.gz", &ovl)]);
    m.block("loop1", Bus::Virtio, Fs::Blank, &[]);
    m.block("loop0", Bus::Virtio, Fs::Blank, &[]);
    let (verdict, out) = explain(&m);
    assert_eq!(
        verdict,
        Verdict::Found("/media/sda1/box.apkovl.tar.gz".into())
    );
    assert_eq!(verdict.exit_status(), 0);
    for want in [
        "  in effect: modules=sd-mod,usb-storage quiet console=tty0 console=ttyS0\n",
        "  ignored (parsed, not supported by this version): dasd=0.0.0100\n",
        "  module parameters: usb-storage.delay_use=0\n",
        "  for the kernel only: BOOT_IMAGE=/boot/vmlinuz\n",
        "  loop0 loop1: not scanned: ram, loop and zram devices are never boot media\n",
        "  sda1 uuid=1234-5678: vfat, scanned (mounted at /media/sda1): 1 apkovl(s), 0 boot repositories\n",
        "  candidate /media/sda1/box.apkovl.tar.gz (device sda1)\n",
        "  chosen: /media/sda1/box.apkovl.tar.gz\n    the only candidate\n",
        "A boot would use the apkovl /media/sda1/box.apkovl.tar.gz (exit status 0).",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    assert!(
        mount_calls(&m).is_empty(),
        "a mounted medium is read in place"
    );
}

#[test]
fn choice_says_which_rule_decided() {
    let m = Machine::new();
    let ovl = overlay(&[("etc/hostname", b"x\n")]);
    m.disk("vda1", "A", &[]);
    mounted(&m, "vda1", "ext4", &[("a.apkovl.tar.gz", &ovl)]);
    m.disk("vdb1", "B", &[]);
    mounted(
        &m,
        "vdb1",
        "ext4",
        &[("b.apkovl.tar.gz", &ovl), BOOT_REPOSITORY],
    );
    let (verdict, out) = explain(&m);
    assert_eq!(
        verdict,
        Verdict::Found("/media/vdb1/b.apkovl.tar.gz".into())
    );
    assert!(
        out.contains(
            "    over /media/vda1/a.apkovl.tar.gz: its device also holds a boot repository\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("  /media/vdb1/apks (boot repository)\n"),
        "{out}"
    );
}

#[test]
fn no_apkovl_exits_1_and_lists_the_boot_repository() {
    let m = Machine::new();
    m.disk("vda1", "A", &[]);
    mounted(&m, "vda1", "ext4", &[BOOT_REPOSITORY]);
    m.block("vdb", Bus::Virtio, Fs::Blank, &[]);
    let (verdict, out) = explain(&m);
    assert_eq!(verdict.exit_status(), 1);
    assert!(out.contains("  vdb: no file system\n"), "{out}");
    assert!(
        out.contains("  /media/vda1/apks (boot repository)\n"),
        "{out}"
    );
    assert!(out.contains("A boot would find no apkovl"), "{out}");
}

/// A medium nobody mounted is mounted read-only, without journal replay,
/// in a private directory, and released.
#[test]
fn unmounted_medium_is_mounted_read_only_and_released() {
    let m = Machine::new();
    let ovl = overlay(&[("etc/hostname", b"x\n")]);
    m.disk("vda1", "A", &[("host.apkovl.tar.gz", &ovl)]);
    let (verdict, out) = explain(&m);
    assert_eq!(
        verdict,
        Verdict::Found("/media/vda1/host.apkovl.tar.gz".into())
    );
    let calls = mount_calls(&m);
    let [Call::Mount {
        source,
        target,
        fstype,
        flags,
        data,
    }, Call::Umount {
        target: released, ..
    }] = calls.as_slice()
    else {
        panic!("one mount and its umount: {calls:?}");
    };
    assert_eq!(source, "/dev/vda1");
    assert_eq!(fstype.as_deref(), Some("ext4"));
    assert!(flags.contains(MountFlags::RDONLY), "{flags:?}");
    assert_eq!(data.as_deref(), Some("noload"));
    assert_eq!(released, target);
    assert!(target.starts_with(m.path("/tmp")), "{}", target.display());
    assert!(out.contains("mounted read-only for this report"), "{out}");
}

#[test]
fn apkovl_device_option_is_checked_on_its_device() {
    let m = Machine::new();
    m.cmdline("apkovl=LABEL=CONF:cfg/host.apkovl.tar.gz");
    m.disk("vda1", "CONF", &[]);
    mounted(&m, "vda1", "ext4", &[("cfg/host.apkovl.tar.gz", b"x")]);
    let (verdict, _) = explain(&m);
    assert_eq!(
        verdict,
        Verdict::Found("/media/vda1/cfg/host.apkovl.tar.gz".into())
    );

    // The same label twice: the boot picks neither.
    m.disk("vdb1", "CONF", &[]);
    mounted(&m, "vdb1", "ext4", &[("cfg/host.apkovl.tar.gz", b"x")]);
    let (verdict, out) = explain(&m);
    assert_eq!(verdict.exit_status(), 1);
    assert!(
        out.contains("is ambiguous: /dev/vda1, /dev/vdb1 match"),
        "{out}"
    );
}

#[test]
fn url_apkovl_counts_as_found_without_fetching() {
    let m = Machine::new();
    m.cmdline("ip=dhcp apkovl=https://example.org/{MAC}.apkovl.tar.gz");
    let (verdict, out) = explain(&m);
    assert_eq!(verdict.exit_status(), 0);
    assert!(out.contains("fetched over the network at boot"), "{out}");
}

#[test]
fn hardware_without_driver_names_the_missing_module() {
    let m = Machine::new();
    m.modalias_device(
        "pci",
        "/devices/pci0000:00/0000:00:04.0",
        "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30",
    );
    m.modalias_device(
        "virtio",
        "/devices/pci0000:00/0000:00:05.0/virtio2",
        "virtio:d00000002v00001AF4",
    );
    let (_, out) = explain(&m);
    assert!(
        out.contains("module xhci_pci is not in this image (mkinitfs feature usb;"),
        "{out}"
    );
    assert!(
        out.contains(
            "virtio/virtio2 (virtio:d00000002v00001AF4): no driver bound; the index has virtio_blk"
        ),
        "{out}"
    );
}

#[test]
fn missing_cmdline_is_an_error() {
    let m = Machine::new();
    std::fs::remove_file(m.path("/proc/cmdline")).unwrap();
    let err = run(&m.layout, &m.fake, &Args::default(), &mut Vec::new()).unwrap_err();
    assert!(matches!(err, ExplainError::Cmdline { .. }), "{err}");
}

/// Regression guard: the kernel hands `explain` on its command line to
/// `/init` as an argument; the initramfs' init must boot, not explain.
#[test]
fn explain_runs_except_as_the_initramfs_init() {
    let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(!wanted(&argv(&["/init", "explain"]), 1));
    assert!(wanted(&argv(&["/init", "explain"]), 4242));
    assert!(wanted(&argv(&["/usr/bin/alpinit", "explain"]), 1));
    assert!(wanted(
        &argv(&["alpinit", "explain", "--modules", "/x"]),
        77
    ));
    assert!(!wanted(&argv(&["alpinit"]), 77));
    assert!(!wanted(&argv(&["/sbin/nlplug-findfs", "explain"]), 77));
    assert_eq!(
        parse_args(&argv(&["--modules", "/x"])),
        Ok(Some(Args {
            modules: Some("/x".into())
        }))
    );
    assert!(parse_args(&argv(&["--bogus"])).is_err());
}

/// With keys in `/etc/alpinit/keys`, each candidate's signature is checked
/// as the boot checks it; a chosen overlay without a valid one is not
/// counted as found (issue: `explain` reports the signature status).
#[test]
fn signature_status_of_each_candidate_with_keys_in_the_image() {
    use crate::signature::testkeys::{Kind, TestKey};
    let key = TestKey::new(Kind::Ed25519);
    let ovl = overlay(&[("etc/hostname", b"box\n")]);
    let other = overlay(&[("etc/hostname", b"other\n")]);
    let stranger = TestKey::new(Kind::Ed25519);
    for (sig, valid) in [(key.sign(&ovl), true), (stranger.sign(&ovl), false)] {
        let m = Machine::new();
        m.write("/etc/alpinit/keys/site.pem", &key.public_pem);
        m.stick("sda1", "STICK", &[]);
        mounted(
            &m,
            "sda1",
            "vfat",
            &[
                ("box.apkovl.tar.gz", &ovl),
                ("box.apkovl.tar.gz.sig", &sig),
                ("zz.apkovl.tar.gz", &other),
            ],
        );
        let (verdict, out) = explain(&m);
        assert!(
            out.contains("  keys in /etc/alpinit/keys: an overlay needs"),
            "{out}"
        );
        assert!(
            out.contains(
                "  candidate /media/sda1/zz.apkovl.tar.gz (device sda1)\n    signature: rejected: "
            ),
            "{out}"
        );
        if valid {
            assert!(
                out.contains("    signature: valid (key site.pem)\n"),
                "{out}"
            );
            assert_eq!(verdict.exit_status(), 0, "{out}");
        } else {
            assert!(out.contains("does not match"), "{out}");
            assert_eq!(verdict.exit_status(), 1, "{out}");
        }
    }
}

#[test]
fn without_keys_signatures_are_not_checked() {
    let m = Machine::new();
    let ovl = overlay(&[("etc/hostname", b"box\n")]);
    m.stick("sda1", "STICK", &[]);
    mounted(&m, "sda1", "vfat", &[("box.apkovl.tar.gz", &ovl)]);
    let (verdict, out) = explain(&m);
    assert!(
        out.contains("  no keys in /etc/alpinit/keys: overlays are taken without a signature\n"),
        "{out}"
    );
    assert!(!out.contains("signature:"), "{out}");
    assert_eq!(verdict.exit_status(), 0);
}
