//! The diskless tail beyond upstream's cases: keys, arch, clock,
//! tiny-cloud from an overlay, boot charting and memdisk.

use super::machine::{overlay, Bus, Fs, Machine};
use crate::platform::fake::Ev;

fn boot_medium(m: &Machine, files: &[(&str, &[u8])]) {
    let mut all: Vec<(&str, &[u8])> = vec![("apks/.boot_repository", b"")];
    all.extend_from_slice(files);
    m.block("vda1", Bus::Virtio, Fs::Ext4 { label: "A" }, &all);
}

fn runlevel(m: &Machine, level: &str, svc: &str) -> bool {
    m.path(&format!("/sysroot/etc/runlevels/{level}/{svc}"))
        .is_symlink()
}

fn apk_argv(boot: &super::machine::Boot) -> Vec<String> {
    boot.spawned()
        .into_iter()
        .find(|a| a[0] == "/sbin/apk")
        .expect("apk ran")
}

/// Regression: an image whose `/etc/apk/keys/*` link into
/// `/usr/share/apk/keys` gave the new root no keys.
#[test]
fn apk_keys_that_are_symlinks_reach_the_new_root_as_files() {
    let m = Machine::new();
    m.with_apk();
    boot_medium(&m, &[]);
    m.write("/usr/share/apk/keys/x86_64/alpine-devel.rsa.pub", "KEY\n");
    m.mkdir("/etc/apk/keys");
    std::os::unix::fs::symlink(
        "../../../usr/share/apk/keys/x86_64/alpine-devel.rsa.pub",
        m.path("/etc/apk/keys/alpine-devel.rsa.pub"),
    )
    .unwrap();
    let boot = m.boot();
    boot.assert_clean_switch();
    let key = m.path("/sysroot/etc/apk/keys/alpine-devel.rsa.pub");
    assert!(std::fs::symlink_metadata(&key).unwrap().is_file());
    assert_eq!(
        m.read("/sysroot/etc/apk/keys/alpine-devel.rsa.pub"),
        "KEY\n"
    );
}

#[test]
fn modloop_signing_key_adds_openssl_after_alpine_base() {
    let m = Machine::new();
    m.with_apk();
    boot_medium(&m, &[]);
    m.write("/var/cache/misc/modloop-lts.SIGN.RSA.k.rsa.pub", "PUB\n");
    let boot = m.boot();
    boot.assert_clean_switch();
    let argv = apk_argv(&boot);
    let tail: Vec<&str> = argv.iter().rev().take(2).map(String::as_str).collect();
    assert_eq!(tail, ["openssl", "alpine-base"], "{argv:?}");
    assert_eq!(
        m.read("/sysroot/var/cache/misc/modloop-lts.SIGN.RSA.k.rsa.pub"),
        "PUB\n"
    );
}

#[test]
fn without_a_modloop_key_openssl_is_not_added() {
    let m = Machine::new();
    m.with_apk();
    boot_medium(&m, &[]);
    let boot = m.boot();
    assert!(!apk_argv(&boot).iter().any(|a| a == "openssl"));
}

/// "Silently fix apk arch in case the apkovl does not match."
#[test]
fn overlay_apk_arch_of_another_machine_is_corrected() {
    let m = Machine::new();
    let ovl = overlay(&[("etc/apk/arch", b"armv7\n"), ("etc/hostname", b"h\n")]);
    boot_medium(&m, &[("h.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let want = format!("{}\n", crate::keys::apk_arch().unwrap_or("armv7"));
    assert_eq!(m.read("/sysroot/etc/apk/arch"), want);
}

/// Alpine adds hwclock/swclock whether or not the image has apk.
#[test]
fn clock_service_is_added_without_apk() {
    let m = Machine::new();
    boot_medium(&m, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(runlevel(&m, "boot", "swclock"));
    assert!(!runlevel(&m, "boot", "hwclock"));

    let m = Machine::new();
    boot_medium(&m, &[]);
    m.write("/dev/rtc0", "");
    m.boot().assert_clean_switch();
    assert!(runlevel(&m, "boot", "hwclock"));
    assert!(!runlevel(&m, "boot", "swclock"));
}

#[test]
fn tiny_cloud_from_a_cidata_volume_adds_packages_and_four_services() {
    let m = Machine::new();
    m.with_apk();
    boot_medium(&m, &[]);
    m.block("sr0", Bus::Cdrom, Fs::Iso { label: "CIDATA" }, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    for (svc, level) in crate::cloud::SERVICES {
        assert!(runlevel(&m, level, svc), "{svc}");
    }
    let argv = apk_argv(&boot);
    for p in crate::cloud::PACKAGES {
        assert!(argv.iter().any(|a| a == p), "{p}: {argv:?}");
    }
}

#[test]
fn tiny_cloud_disabled_by_the_overlay() {
    let m = Machine::new();
    let ovl = overlay(&[
        ("etc/.default_boot_services", b""),
        ("etc/tiny-cloud.disabled", b""),
    ]);
    m.cmdline("ds=nocloud");
    boot_medium(&m, &[("h.apkovl.tar.gz", &ovl)]);
    m.boot().assert_clean_switch();
    assert!(runlevel(&m, "sysinit", "modloop"));
    assert!(!runlevel(&m, "boot", "tiny-cloud-boot"));
}

#[test]
fn no_cloud_evidence_no_tiny_cloud() {
    let m = Machine::new();
    m.cmdline("notinycloud");
    m.write("/sys/class/dmi/id/product_serial", "VMware-42 1a\n");
    boot_medium(&m, &[]);
    m.boot().assert_clean_switch();
    assert!(runlevel(&m, "sysinit", "modloop"));
    assert!(!runlevel(&m, "boot", "tiny-cloud-boot"));
}

/// An overlay without `.default_boot_services` keeps its own services:
/// tiny-cloud is decided only with the default services, as in Alpine.
#[test]
fn tiny_cloud_left_to_an_overlay_that_has_its_services() {
    let m = Machine::new();
    let ovl = overlay(&[("etc/hostname", b"h\n")]);
    m.cmdline("ds=nocloud");
    boot_medium(&m, &[("h.apkovl.tar.gz", &ovl)]);
    m.boot().assert_clean_switch();
    assert!(!runlevel(&m, "boot", "tiny-cloud-boot"));
}

#[test]
fn chart_runs_bootchartd_and_starts_init_behind_it() {
    let m = Machine::new();
    m.with_apk();
    m.exe("/sbin/bootchartd");
    m.cmdline("chart init_args=x");
    boot_medium(&m, &[]);
    let boot = m.boot();
    let runs: Vec<Vec<String>> = boot
        .spawned()
        .into_iter()
        .filter(|a| a[0] == "/sbin/bootchartd")
        .collect();
    assert_eq!(
        runs,
        [
            vec!["/sbin/bootchartd".to_owned(), "start-initfs".to_owned()],
            vec![
                "/sbin/bootchartd".to_owned(),
                "stop-initfs".to_owned(),
                "/sysroot".to_owned()
            ],
        ]
    );
    // Started before apk runs, stopped after it.
    let start = boot
        .index(|e| matches!(e, Ev::Spawn(a) if a.get(1).is_some_and(|x| x == "start-initfs")))
        .unwrap();
    let apk = boot
        .index(|e| matches!(e, Ev::Spawn(a) if a[0].ends_with("/sbin/apk")))
        .unwrap();
    let stop = boot
        .index(|e| matches!(e, Ev::Spawn(a) if a.get(1).is_some_and(|x| x == "stop-initfs")))
        .unwrap();
    assert!(start < apk && apk < stop);
    assert_eq!(
        boot.switched_to(),
        Some((
            "/sbin/bootchartd".to_owned(),
            vec!["start-rootfs".into(), "/sbin/init".into(), "x".into()]
        ))
    );
    assert!(apk_argv(&boot).iter().any(|a| a == "acct"));
}

#[test]
fn chart_without_bootchartd_is_said_once_and_the_boot_is_plain() {
    let m = Machine::new();
    m.with_apk();
    m.cmdline("chart");
    boot_medium(&m, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(boot.kmsg.matches("no /sbin/bootchartd").count(), 1);
    assert!(!apk_argv(&boot).iter().any(|a| a == "acct"));
    assert_eq!(boot.switched_to().unwrap().1, Vec::<String>::new());
}

#[test]
fn memdisk_loads_phram_with_the_disk_memdisk_left() {
    use crate::memdisk::tests::{base_memory, table, IOMEM};
    let m = Machine::new();
    m.cmdline("memdisk");
    m.write("/proc/iomem", IOMEM);
    m.write(
        "/dev/mem",
        base_memory(636, &table(0x7f00_0000, 2880), 0x9f000 + 0x20),
    );
    m.write(
        &format!("/lib/modules/{}/modules.dep", super::machine::RELEASE),
        format!(
            "{}kernel/drivers/mtd/devices/phram.ko:\nkernel/drivers/mtd/mtdblock.ko:\n",
            m.read(&format!(
                "/lib/modules/{}/modules.dep",
                super::machine::RELEASE
            ))
        ),
    );
    for k in [
        "kernel/drivers/mtd/devices/phram.ko",
        "kernel/drivers/mtd/mtdblock.ko",
    ] {
        m.write(
            &format!("/lib/modules/{}/{k}", super::machine::RELEASE),
            "\x7fELF",
        );
    }
    boot_medium(&m, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let insmods = boot.insmods();
    assert!(insmods.iter().any(|i| i == "phram"), "{insmods:?}");
    assert!(insmods.iter().any(|i| i == "mtdblock"), "{insmods:?}");
    assert!(
        boot.has(&Ev::ModuleParams(
            "phram".into(),
            "phram=memdisk,0x7f000000,0x168000".into()
        )),
        "{:?}",
        boot.events
    );
}

#[test]
fn memdisk_without_a_memdisk_says_why_and_loads_nothing() {
    let m = Machine::new();
    m.cmdline("memdisk");
    m.write("/proc/iomem", crate::memdisk::tests::IOMEM);
    m.write("/dev/mem", vec![0u8; 0xa0000]);
    boot_medium(&m, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(boot.kmsg.contains("memdisk: "), "{}", boot.kmsg);
    assert!(!boot.insmods().iter().any(|i| i.contains("phram")));
}

fn splash_medium(m: &Machine) {
    boot_medium(
        m,
        &[
            ("fbsplash.ppm", b"P6"),
            ("fbsplash.cfg", b"IMG_ALIGN=TL\n"),
            ("fbsplash0.ppm", b"P6"),
        ],
    );
}

fn started(boot: &super::machine::Boot) -> Vec<Vec<String>> {
    boot.events
        .iter()
        .filter_map(|e| match e {
            Ev::Started(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn splash_on_the_media_is_shown_by_the_images_fbsplash() {
    let m = Machine::new();
    m.exe("/sbin/fbsplash");
    m.write("/dev/fb0", "");
    splash_medium(&m);
    let boot = m.boot();
    boot.assert_clean_switch();
    let fbsplash = m.path("/sbin/fbsplash").display().to_string();
    assert!(boot.spawned().contains(
        &[
            "/sbin/fbsplash",
            "-s",
            "/media/vda1/fbsplash0.ppm",
            "-d",
            "/dev/fb0",
            "-i",
            "/tmp/fbsplash.cfg"
        ]
        .map(String::from)
        .to_vec()
    ));
    assert_eq!(m.read("/tmp/fbsplash.cfg"), "IMG_ALIGN=CM\n");
    assert_eq!(
        started(&boot),
        [[
            fbsplash.as_str(),
            "-T",
            "16",
            "-s",
            "/media/vda1/fbsplash.ppm",
            "-i",
            "/media/vda1/fbsplash.cfg",
            "-f",
            "/sysroot/.splash.ctrl"
        ]
        .map(String::from)
        .to_vec()]
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(m.path("/sysroot/.splash.ctrl"))
        .unwrap()
        .file_type()
        .is_fifo());
    // Left running into the new root: not told to exit.
    assert!(!boot.kmsg.contains("telling fbsplash to exit"));
}

#[test]
fn splash_no_shows_nothing() {
    let m = Machine::new();
    m.exe("/sbin/fbsplash");
    m.cmdline("splash=no");
    splash_medium(&m);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(started(&boot).is_empty());
    assert!(!m.exists("/sysroot/.splash.ctrl"));
}

#[test]
fn splash_without_fbsplash_in_the_image_is_said_once() {
    let m = Machine::new();
    splash_medium(&m);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(
        boot.kmsg.matches("has no fbsplash").count(),
        1,
        "{}",
        boot.kmsg
    );
    assert!(started(&boot).is_empty());
}

/// `splash=init` ends the splash at the hand-over; the FIFO is opened
/// without blocking, so with no reader (the fake starts nothing) the boot
/// says so and goes on.
#[test]
fn splash_init_tells_fbsplash_to_exit_without_blocking() {
    let m = Machine::new();
    m.exe("/sbin/fbsplash");
    m.cmdline("splash=init");
    splash_medium(&m);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(started(&boot).len(), 1);
    assert!(
        boot.kmsg.contains("telling fbsplash to exit"),
        "{}",
        boot.kmsg
    );
}
