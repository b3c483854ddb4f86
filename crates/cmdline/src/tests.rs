use std::time::Duration;

use crate::{ApkovlSpec, Cmdline, CmdlineError, DEFAULT_UEVENT_BUF_SIZE, OPTIONS};

fn owned(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| (*word).to_owned()).collect()
}

#[test]
fn option_list_matches_alpine() {
    // Copied from the script's `myopts` (initramfs-init.in 520-566).
    let alpine = "BOOTIF alpine_repo aoe aoe_iflist aoe_mtu apkovl autodetect_serial blacklist \
        bootstrap_usr_merged chart cryptdiscards cryptdm cryptheader cryptkey cryptoffset \
        cryptroot dasd debug_init ds init init_args ip keep_apk_new memdisk modules nbd \
        overlaytmpfs overlaytmpfsflags panic pkgs quiet resume resume_offset root root_size \
        rootflags rootfstype s390x_net splash ssh_key tinycloud uevent_buf_size usbdelay \
        usrflags wireguard zfcp";
    let listed: Vec<&str> = alpine.split_whitespace().collect();
    assert_eq!(OPTIONS.as_slice(), listed.as_slice());
}

#[test]
fn every_option_accepts_value_bare_and_no_forms() {
    for name in OPTIONS {
        for (word, expected) in [
            (format!("{name}=v=w"), "v=w"),
            (name.to_owned(), "yes"),
            (format!("no{name}"), "no"),
            (format!("{name}="), ""),
        ] {
            let cmdline = Cmdline::parse(&word);
            assert_eq!(cmdline.get(name), Some(expected), "word {word:?}");
            assert_eq!(cmdline.options().count(), 1, "word {word:?}");
            assert!(cmdline.other_words().is_empty(), "word {word:?}");
        }
    }
}

#[test]
fn raw_values() {
    struct Case {
        text: &'static str,
        name: &'static str,
        value: Option<&'static str>,
    }
    let cases = [
        Case {
            text: "",
            name: "quiet",
            value: None,
        },
        Case {
            text: "quiet",
            name: "quiet",
            value: Some("yes"),
        },
        Case {
            text: "noquiet",
            name: "quiet",
            value: Some("no"),
        },
        Case {
            text: "quiet noquiet",
            name: "quiet",
            value: Some("no"),
        },
        Case {
            text: "noquiet quiet",
            name: "quiet",
            value: Some("yes"),
        },
        Case {
            text: "quiet=1",
            name: "quiet",
            value: Some("1"),
        },
        Case {
            text: "xquiet quietx",
            name: "quiet",
            value: None,
        },
        Case {
            text: "rootflags=size=50%",
            name: "rootflags",
            value: Some("size=50%"),
        },
        Case {
            text: "root=/dev/vda1 root=UUID=ab-cd",
            name: "root",
            value: Some("UUID=ab-cd"),
        },
        Case {
            text: "root=UUID=ab root=",
            name: "root",
            value: Some(""),
        },
        Case {
            text: "root_size=1G",
            name: "root",
            value: None,
        },
        Case {
            text: "root_size=1G",
            name: "root_size",
            value: Some("1G"),
        },
        Case {
            text: "init_args=-v",
            name: "init",
            value: None,
        },
        Case {
            text: "apkovlx=foo",
            name: "apkovl",
            value: None,
        },
        Case {
            text: "Quiet",
            name: "quiet",
            value: None,
        },
        Case {
            text: "\tip=dhcp\n",
            name: "ip",
            value: Some("dhcp"),
        },
        Case {
            text: "cryptkey",
            name: "cryptkey",
            value: Some("yes"),
        },
        Case {
            text: "nosplash splash=init",
            name: "splash",
            value: Some("init"),
        },
        Case {
            text: "quiet",
            name: "not_an_option",
            value: None,
        },
        Case {
            text: "-- quiet",
            name: "quiet",
            value: Some("yes"),
        },
    ];
    for case in cases {
        let cmdline = Cmdline::parse(case.text);
        assert_eq!(
            cmdline.get(case.name),
            case.value,
            "cmdline {:?}",
            case.text
        );
    }
}

#[test]
fn other_words_keep_everything_unrecognised_in_order() {
    let cases: [(&str, &[&str]); 6] = [
        ("", &[]),
        ("quiet root=/dev/sda", &[]),
        (
            "modprobe.blacklist=a,b quiet e1000.debug=1",
            &["modprobe.blacklist=a,b", "e1000.debug=1"],
        ),
        ("apkovlx=foo nomodeset", &["apkovlx=foo", "nomodeset"]),
        // No quoting, exactly like the shell's unquoted expansion.
        ("a=\"b c\"", &["a=\"b", "c\""]),
        ("console single=1 --", &["console", "single=1", "--"]),
    ];
    for (text, expected) in cases {
        assert_eq!(
            Cmdline::parse(text).other_words(),
            owned(expected),
            "cmdline {text:?}"
        );
    }
}

#[test]
fn single_mode_words() {
    for (text, single) in [
        ("s", true),
        ("single", true),
        ("1", true),
        ("quiet 1 root=x", true),
        ("", false),
        ("S", false),
        ("11", false),
        ("single=1", false),
        ("singles", false),
    ] {
        assert_eq!(Cmdline::parse(text).single(), single, "cmdline {text:?}");
    }
}

#[test]
fn consoles_are_prepended_and_the_last_is_used_for_switch_root() {
    let cases: [(&str, &[&str], Option<&str>); 5] = [
        ("", &[], None),
        ("console=ttyS0,115200n8", &["ttyS0"], Some("ttyS0")),
        (
            "console=tty0 console=ttyS0,115200",
            &["ttyS0", "tty0"],
            Some("ttyS0"),
        ),
        (
            "console=ttyS0 console=tty0",
            &["tty0", "ttyS0"],
            Some("tty0"),
        ),
        (
            "console= console=,9600 console=hvc0",
            &["hvc0"],
            Some("hvc0"),
        ),
    ];
    for (text, consoles, last) in cases {
        let cmdline = Cmdline::parse(text);
        assert_eq!(cmdline.consoles(), owned(consoles), "cmdline {text:?}");
        assert_eq!(cmdline.switch_root_console(), last, "cmdline {text:?}");
        assert!(cmdline.other_words().is_empty(), "cmdline {text:?}");
    }
}

#[test]
fn full_pxelinux_cmdline() {
    let cmdline = Cmdline::parse(
        "BOOT_IMAGE=/boot/vmlinuz-lts initrd=/boot/initramfs-lts \
         modules=loop,squashfs,sd-mod,usb-storage quiet console=tty0 console=ttyS0,115200 \
         ip=dhcp apkovl=http://10.0.2.2:8080/{MAC}.apkovl.tar.gz \
         alpine_repo=http://a/b,http://c/d BOOTIF=01-52-54-00-12-34-56 nomodeset\n",
    );
    assert_eq!(
        cmdline.other_words(),
        owned(&[
            "BOOT_IMAGE=/boot/vmlinuz-lts",
            "initrd=/boot/initramfs-lts",
            "nomodeset"
        ])
    );
    assert_eq!(
        cmdline.modules(),
        owned(&["loop", "squashfs", "sd-mod", "usb-storage"])
    );
    assert!(cmdline.quiet());
    assert_eq!(cmdline.consoles(), owned(&["ttyS0", "tty0"]));
    assert_eq!(cmdline.switch_root_console(), Some("ttyS0"));
    assert_eq!(cmdline.get("ip"), Some("dhcp"));
    assert_eq!(
        cmdline.apkovl(),
        Some(ApkovlSpec::Url(
            "http://10.0.2.2:8080/{MAC}.apkovl.tar.gz".to_owned()
        ))
    );
    assert_eq!(cmdline.alpine_repo(), owned(&["http://a/b", "http://c/d"]));
    assert_eq!(cmdline.get("BOOTIF"), Some("01-52-54-00-12-34-56"));
    assert!(cmdline.needs_network());
    assert_eq!(cmdline.root(), None);
    assert!(!cmdline.single());
    assert_eq!(cmdline.init(), "/sbin/init");
    assert_eq!(cmdline.tmpfs_options(), "mode=0755");
    assert_eq!(cmdline.uevent_buf_size(), Ok(DEFAULT_UEVENT_BUF_SIZE));
    assert_eq!(cmdline.usbdelay(), Ok(None));
    let names: Vec<&str> = cmdline.options().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        ["BOOTIF", "alpine_repo", "apkovl", "ip", "modules", "quiet"]
    );
}

#[test]
fn options_are_reported_in_alpine_order_with_last_value() {
    let cmdline = Cmdline::parse("root=/dev/a quiet BOOTIF=x root=/dev/b noquiet");
    let options: Vec<(&str, &str)> = cmdline.options().collect();
    assert_eq!(
        options,
        [("BOOTIF", "x"), ("quiet", "no"), ("root", "/dev/b")]
    );
}

#[test]
fn environment_seeds_options_and_the_command_line_overrides() {
    let env = [
        ("KOPT_bootstrap_usr_merged", "yes"),
        ("KOPT_root", "/dev/sda1"),
        ("KOPT_quiet", "yes"),
        ("KOPT_not_an_option", "1"),
        ("KOPT_", "1"),
        ("PATH", "/bin"),
        ("root", "/dev/wrong"),
    ]
    .map(|(key, value)| (key.to_owned(), value.to_owned()));
    let cmdline = Cmdline::parse_with_env("root=/dev/vda2 noquiet", env.into_iter());
    assert!(cmdline.bootstrap_usr_merged());
    assert_eq!(cmdline.root(), Some("/dev/vda2"));
    assert!(!cmdline.quiet());
    let names: Vec<&str> = cmdline.options().map(|(name, _)| name).collect();
    assert_eq!(names, ["bootstrap_usr_merged", "quiet", "root"]);
    assert!(cmdline.other_words().is_empty());
}

#[test]
fn apkovl_forms() {
    fn device(device: &str, fstype: Option<&str>, path: &str) -> ApkovlSpec {
        ApkovlSpec::Device {
            device: device.to_owned(),
            fstype: fstype.map(str::to_owned),
            path: path.to_owned(),
        }
    }
    let path = |value: &str| ApkovlSpec::Path(value.to_owned());
    let url = |value: &str| ApkovlSpec::Url(value.to_owned());
    let cases = [
        ("", None),
        ("apkovl=", None),
        (
            "apkovl=/dev/sda1:vfat:x.apkovl.tar.gz",
            Some(device("/dev/sda1", Some("vfat"), "x.apkovl.tar.gz")),
        ),
        ("apkovl=LABEL=x:foo", Some(device("LABEL=x", None, "foo"))),
        (
            "apkovl=/dev/sda1::foo",
            Some(device("/dev/sda1", None, "foo")),
        ),
        ("apkovl=x.apkovl.tar.gz", Some(path("x.apkovl.tar.gz"))),
        (
            "apkovl=/media/sda1/x.apkovl.tar.gz",
            Some(path("/media/sda1/x.apkovl.tar.gz")),
        ),
        ("apkovl=a:b:c:d", Some(path("a:b:c:d"))),
        ("apkovl=:foo", Some(path(":foo"))),
        ("apkovl=/dev/sda1:vfat:", Some(path("/dev/sda1:vfat:"))),
        (
            "apkovl=https://h/{UUID}/x.tar.gz?a=b:c",
            Some(url("https://h/{UUID}/x.tar.gz?a=b:c")),
        ),
        ("apkovl=http://h:8080/x", Some(url("http://h:8080/x"))),
        ("apkovl=ftp://h/x", Some(url("ftp://h/x"))),
        ("apkovl=tftp://h/x", Some(device("tftp", None, "//h/x"))),
        ("apkovl", Some(path("yes"))),
    ];
    for (text, expected) in cases {
        assert_eq!(Cmdline::parse(text).apkovl(), expected, "cmdline {text:?}");
    }
}

#[test]
fn tmpfs_options_and_root_size_warning() {
    let cases = [
        ("", "mode=0755", false),
        ("rootflags=size=50%", "mode=0755,size=50%", false),
        ("root_size=1G", "mode=0755,size=1G", true),
        (
            "root_size=1G rootflags=nr_inodes=1k,size=2G",
            "mode=0755,size=1G,nr_inodes=1k,size=2G",
            true,
        ),
        ("root_size= rootflags=", "mode=0755", false),
    ];
    for (text, options, deprecated) in cases {
        let cmdline = Cmdline::parse(text);
        assert_eq!(cmdline.tmpfs_options(), options, "cmdline {text:?}");
        assert_eq!(
            cmdline.root_size_deprecated(),
            deprecated,
            "cmdline {text:?}"
        );
    }
}

#[test]
fn uevent_buf_size_values() {
    let syntax = |value: &str| {
        Err(CmdlineError::UeventBufSizeSyntax {
            value: value.to_owned(),
        })
    };
    let range = |value: &str| {
        Err(CmdlineError::UeventBufSizeRange {
            value: value.to_owned(),
        })
    };
    let cases = [
        ("", Ok(4 * 1024 * 1024)),
        ("uevent_buf_size=", Ok(4 * 1024 * 1024)),
        ("uevent_buf_size=4096", Ok(4096)),
        ("uevent_buf_size=1073741824", Ok(1 << 30)),
        ("uevent_buf_size=1073741825", range("1073741825")),
        ("uevent_buf_size=0", range("0")),
        (
            "uevent_buf_size=999999999999999999999999",
            range("999999999999999999999999"),
        ),
        ("uevent_buf_size=-1", syntax("-1")),
        ("uevent_buf_size=+5", syntax("+5")),
        ("uevent_buf_size=4M", syntax("4M")),
        ("uevent_buf_size", syntax("yes")),
    ];
    for (text, expected) in cases {
        assert_eq!(
            Cmdline::parse(text).uevent_buf_size(),
            expected,
            "cmdline {text:?}"
        );
    }
    let message = Cmdline::parse("uevent_buf_size=lots")
        .uevent_buf_size()
        .map_err(|e| e.to_string());
    assert!(message.is_err_and(|text| text.contains("\"lots\"")));
}

#[test]
fn usbdelay_values() {
    let syntax = |value: &str| {
        Err(CmdlineError::UsbdelaySyntax {
            value: value.to_owned(),
        })
    };
    let range = |value: &str| {
        Err(CmdlineError::UsbdelayRange {
            value: value.to_owned(),
        })
    };
    let cases = [
        ("", Ok(None)),
        ("usbdelay=", Ok(None)),
        ("usbdelay=0", Ok(Some(Duration::ZERO))),
        ("usbdelay=3", Ok(Some(Duration::from_secs(3)))),
        ("usbdelay=0.5", Ok(Some(Duration::from_millis(500)))),
        ("usbdelay=2.25", Ok(Some(Duration::from_millis(2250)))),
        ("usbdelay=1.0000000019", Ok(Some(Duration::new(1, 1)))),
        ("usbdelay=3600", Ok(Some(Duration::from_secs(3600)))),
        ("usbdelay=3600.1", range("3600.1")),
        (
            "usbdelay=99999999999999999999999",
            range("99999999999999999999999"),
        ),
        ("usbdelay=-1", syntax("-1")),
        ("usbdelay=.5", syntax(".5")),
        ("usbdelay=5.", syntax("5.")),
        ("usbdelay=1.2.3", syntax("1.2.3")),
        ("usbdelay=1e3", syntax("1e3")),
        ("usbdelay=inf", syntax("inf")),
        ("usbdelay", syntax("yes")),
    ];
    for (text, expected) in cases {
        assert_eq!(
            Cmdline::parse(text).usbdelay(),
            expected,
            "cmdline {text:?}"
        );
    }
}

#[test]
fn init_root_and_fstype() {
    let cases = [
        ("", "/sbin/init", None, None),
        ("init=/bin/sh init=", "/sbin/init", None, None),
        ("init=/bin/sh", "/bin/sh", None, None),
        ("root=/dev/vda1", "/sbin/init", Some("/dev/vda1"), None),
        (
            "root=/dev/vda1 rootfstype=ext4",
            "/sbin/init",
            Some("/dev/vda1"),
            Some("ext4"),
        ),
        (
            "root=ZFS=tank/root",
            "/sbin/init",
            Some("ZFS=tank/root"),
            Some("zfs"),
        ),
        (
            "root=ZFS=tank/root rootfstype=btrfs",
            "/sbin/init",
            Some("ZFS=tank/root"),
            Some("btrfs"),
        ),
        ("rootfstype=xfs", "/sbin/init", None, Some("xfs")),
    ];
    for (text, init, root, fstype) in cases {
        let cmdline = Cmdline::parse(text);
        assert_eq!(cmdline.init(), init, "cmdline {text:?}");
        assert_eq!(cmdline.root(), root, "cmdline {text:?}");
        assert_eq!(cmdline.rootfstype(), fstype, "cmdline {text:?}");
    }
}

#[test]
fn init_args_are_word_split() {
    let env = [("KOPT_init_args".to_owned(), " -v  --x\ty ".to_owned())];
    let cases: [(Cmdline, &[&str]); 3] = [
        (Cmdline::parse(""), &[]),
        (Cmdline::parse("init_args=single"), &["single"]),
        (
            Cmdline::parse_with_env("", env.into_iter()),
            &["-v", "--x", "y"],
        ),
    ];
    for (cmdline, args) in cases {
        assert_eq!(cmdline.init_args(), owned(args));
    }
}

#[test]
fn comma_lists() {
    let cmdline = Cmdline::parse("modules=a,,b, blacklist=c pkgs=,vim,htop alpine_repo=/media/x");
    assert_eq!(cmdline.modules(), owned(&["a", "b"]));
    assert_eq!(cmdline.blacklist(), owned(&["c"]));
    assert_eq!(cmdline.pkgs(), owned(&["vim", "htop"]));
    assert_eq!(cmdline.alpine_repo(), owned(&["/media/x"]));
    let empty = Cmdline::parse("alpine_repo=auto");
    assert!(empty.alpine_repo().is_empty());
    assert!(empty.modules().is_empty() && empty.blacklist().is_empty() && empty.pkgs().is_empty());
}

#[test]
fn flags() {
    type Flag = fn(&Cmdline) -> bool;
    let flags: [(&str, Flag); 5] = [
        ("quiet", Cmdline::quiet),
        ("debug_init", Cmdline::debug_init),
        ("keep_apk_new", Cmdline::keep_apk_new),
        ("bootstrap_usr_merged", Cmdline::bootstrap_usr_merged),
        ("panic", Cmdline::panic_on_failure),
    ];
    for (name, flag) in flags {
        assert!(!flag(&Cmdline::parse("")), "{name} unset");
        assert!(flag(&Cmdline::parse(name)), "bare {name}");
        assert!(!flag(&Cmdline::parse(&format!("{name}="))), "empty {name}");
    }
    // Only the panic switch takes any non-empty value, as in the script.
    for text in ["panic=0", "panic=10", "nopanic"] {
        assert!(Cmdline::parse(text).panic_on_failure(), "cmdline {text:?}");
    }
    for text in ["quiet=1", "noquiet"] {
        assert!(!Cmdline::parse(text).quiet(), "cmdline {text:?}");
    }
}

#[test]
fn network_is_needed() {
    let cases = [
        ("", false),
        ("ip=dhcp", true),
        ("ip=off", true),
        ("ip=", false),
        ("nbd=10.0.0.1:2000", true),
        ("apkovl=https://h/x.apkovl.tar.gz", true),
        ("apkovl=/dev/sda1:x.apkovl.tar.gz", false),
        ("alpine_repo=auto", false),
        ("alpine_repo=/media/usb/apks", false),
        ("alpine_repo=ftp://mirror/alpine", true),
        ("alpine_repo=/media/usb/apks,https://mirror/alpine", true),
        ("alpine_repo=httpx://mirror", false),
        ("root=/dev/nbd0", false),
    ];
    for (text, expected) in cases {
        assert_eq!(
            Cmdline::parse(text).needs_network(),
            expected,
            "cmdline {text:?}"
        );
    }
}

#[test]
fn fuzz_survives_hostile_text() {
    let long = "x=".repeat(10_000) + " quiet";
    for text in [
        "",
        "\0",
        "=",
        "no",
        "console=,",
        "apkovl=:::",
        "usbdelay=9.",
        "ü=ü noü",
        &long,
    ] {
        crate::fuzz(text);
    }
    assert!(Cmdline::parse(&long).quiet());
}

#[test]
fn apkovl_fallback_is_on_unless_the_last_word_says_no() {
    for (text, want) in [
        ("", true),
        ("apkovl_fallback=no", false),
        ("noapkovl_fallback", false),
        ("apkovl_fallback=no apkovl_fallback", true),
        ("noapkovl_fallback apkovl_fallback=yes", true),
        ("apkovl_fallback=yes apkovl_fallback=no", false),
    ] {
        assert_eq!(Cmdline::parse(text).apkovl_fallback(), want, "{text:?}");
    }
}
