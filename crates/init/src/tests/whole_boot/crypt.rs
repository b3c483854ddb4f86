//! `cryptroot=`: the LUKS volume is waited for, unlocked (a key file, an `EXEC=`
//! program's output, the passphrase typed on the console with Alpine's texts), then
//! mapped; in root mode before the root wait, in diskless mode before the media scan.

use super::machine::{overlay, Bus, Fs, Machine};
use crate::failure::End;
use crate::platform::fake::{Ev, Step};
use std::sync::Mutex;

/// `vda2` holding the LUKS2 container `img`, with its sysfs size and number.
fn luks_partition(m: &Machine, img: &[u8]) {
    m.disk("vda2", "UNUSED", &[]);
    std::fs::write(m.path("/dev/vda2"), img).unwrap();
    std::fs::write(m.path("/.images/vda2"), img).unwrap();
    m.write(
        "/sys/class/block/vda2/size",
        format!("{}\n", img.len() / 512),
    );
    m.write("/sys/class/block/vda2/dev", "254:2\n");
}

/// Device-mapper works: creating the mapping makes `dm-0` (253:0) appear, a device
/// showing `fs` with `files`.
fn mapping_appears(m: &Machine, fs: Fs, files: &[(&str, &[u8])]) {
    let ev = m.block_devno("dm-0", Bus::Virtio, fs, files, Some((253, 0)));
    m.write(
        "/sys/dev/block/253:0/uevent",
        "MAJOR=253\nMINOR=0\nDEVNAME=dm-0\n",
    );
    let reveal = m.hide(&ev);
    let send = m.fake.script_sender();
    let pending = Mutex::new(Some((ev, reveal)));
    m.fake.on_dm_create(move |_| {
        if let Some((ev, reveal)) = pending.lock().unwrap().take() {
            reveal();
            send(Step::Event(ev));
        }
        Ok((253, 0))
    });
}

/// Diskless mode with the boot medium (a vfat holding `sealed.apkovl.tar.gz`,
/// hostname `sealed`) inside LUKS2 on `vda2`, opened as `media` by the typed
/// passphrase. False when the host cannot make the container (no cryptsetup).
fn medium_in_luks(m: &Machine) -> bool {
    medium_in_luks_with(m, &[])
}

/// [`medium_in_luks`], the container made with `luksFormat` arguments `args`.
fn medium_in_luks_with(m: &Machine, args: &[&str]) -> bool {
    let Some((img, right)) = crate::crypt::tests::container_with(&m.path("/.luks"), args) else {
        return false;
    };
    m.cmdline("cryptroot=/dev/vda2 cryptdm=media");
    luks_partition(m, &img);
    let ovl = overlay(&[("etc/hostname", b"sealed\n")]);
    mapping_appears(
        m,
        Fs::Vfat { label: "MEDIA" },
        &[("sealed.apkovl.tar.gz", &ovl)],
    );
    m.fake
        .type_passwords(&[std::str::from_utf8(&right).unwrap()]);
    true
}

/// The tables of the mappings created, by name.
fn dm_tables(boot: &super::record::Boot) -> Vec<(String, String)> {
    boot.events
        .iter()
        .filter_map(|e| match e {
            Ev::DmCreate(name, params) => Some((name.clone(), params.clone())),
            _ => None,
        })
        .collect()
}

/// The whole flow up to the device-mapper step: the temp tree has no
/// /dev/mapper/control, so the mapping fails, naming it (the QEMU scenario
/// `luks-root` goes on from there with a kernel).
#[test]
fn cryptroot_asks_again_after_a_wrong_passphrase_then_maps() {
    let m = Machine::new();
    let Some((img, right)) = crate::crypt::tests::container(&m.path("/.luks")) else {
        return;
    };
    m.cmdline("root=/dev/mapper/root cryptroot=/dev/vda2 panic=1");
    m.disk("vda2", "UNUSED", &[]);
    std::fs::write(m.path("/dev/vda2"), &img).unwrap();
    std::fs::write(m.path("/.images/vda2"), &img).unwrap();
    m.write(
        "/sys/class/block/vda2/size",
        format!("{}\n", img.len() / 512),
    );
    m.write("/sys/class/block/vda2/dev", "254:2\n");
    m.fake
        .type_passwords(&["wrong", std::str::from_utf8(&right).unwrap()]);
    let boot = m.boot();
    boot.assert_console("Enter passphrase for /dev/vda2: ");
    boot.assert_console("No key available with this passphrase.");
    boot.assert_kmsg("mapping root: open ");
    boot.assert_kmsg("/dev/mapper/control: No such file or directory");
    assert_eq!(boot.end, End::GaveUp);
}

/// The bare `cryptkey`: /crypto_keyfile.bin in the image opens the volume without a
/// prompt; `cryptheader=` reads the header from a file in the image.
#[test]
fn cryptkey_and_cryptheader_open_without_a_prompt() {
    for (cmdline, header) in [
        ("root=/dev/mapper/root cryptroot=/dev/vda2 cryptkey panic=1", false),
        ("root=/dev/mapper/root cryptroot=/dev/vda2 cryptkey=/etc/k:3:5 cryptheader=/h.img panic=1", true),
    ] {
        let m = Machine::new();
        let Some((img, right)) = crate::crypt::tests::container(&m.path("/.luks")) else {
            return;
        };
        m.cmdline(cmdline);
        m.disk("vda2", "UNUSED", &[]);
        m.write("/crypto_keyfile.bin", &right);
        m.write("/etc/k", [&b"xyz"[..], &right[..], b"tail"].concat());
        if header {
            // The device itself holds no header then: only the file can open it.
            m.write("/h.img", &img);
            let mut data = img.clone();
            data[..0x8000].fill(0); // both LUKS2 header copies
            std::fs::write(m.path("/dev/vda2"), &data).unwrap();
        } else {
            std::fs::write(m.path("/dev/vda2"), &img).unwrap();
        }
        m.write("/sys/class/block/vda2/size", format!("{}\n", img.len() / 512));
        m.write("/sys/class/block/vda2/dev", "254:2\n");
        let boot = m.boot();
        assert!(!boot.console.contains("Enter passphrase"), "{cmdline}: {}", boot.console);
        boot.assert_kmsg("/dev/mapper/control: No such file or directory");
        assert_eq!(boot.end, End::GaveUp);
    }
}

#[test]
fn cryptroot_device_missing_is_named() {
    let m = Machine::new();
    m.cmdline("root=/dev/mapper/root cryptroot=UUID=0000 panic=1");
    let boot = m.boot();
    boot.assert_kmsg("crypt device UUID=0000 not found");
    assert_eq!(boot.end, End::GaveUp);
}

#[test]
fn cryptroot_with_a_device_that_is_not_luks_says_so() {
    let m = Machine::new();
    m.cmdline("root=/dev/mapper/root cryptroot=/dev/vda2 panic=1");
    m.disk("vda2", "PLAIN", &[]);
    let boot = m.boot();
    boot.assert_kmsg("LUKS header of ");
    boot.assert_kmsg("/dev/vda2: not a LUKS volume (no LUKS magic)");
    assert_eq!(boot.end, End::GaveUp);
}

/// `cryptheader=` naming a device (not a file of the image) is read from that device,
/// whether it is there from the start or arrives later (then waited for like
/// `cryptroot=`); the root in the mapping is then mounted and booted.
#[test]
fn cryptheader_device_is_waited_for_and_read() {
    for late in [true, false] {
        let m = Machine::new();
        let Some((img, right)) = crate::crypt::tests::container(&m.path("/.luks")) else {
            return;
        };
        m.cmdline(
            "root=/dev/mapper/root cryptroot=/dev/vda2 cryptheader=/dev/vdb cryptkey panic=1",
        );
        m.write("/crypto_keyfile.bin", &right);
        let mut data = img.clone();
        data[..0x8000].fill(0); // both LUKS2 header copies: only vdb can open it
        luks_partition(&m, &data);
        let hdr = m.block("vdb", Bus::Virtio, Fs::Blank, &[]);
        std::fs::write(m.path("/dev/vdb"), &img).unwrap();
        if late {
            m.hotplug(2, hdr, false);
        }
        mapping_appears(&m, Fs::Ext4 { label: "ROOT" }, &[]);
        let boot = m.boot();
        boot.assert_clean_switch();
        assert!(
            !boot.console.contains("Enter passphrase"),
            "{}",
            boot.console
        );
        let tables = dm_tables(&boot);
        assert_eq!(tables.len(), 1, "{tables:?}");
        assert_eq!(tables[0].0, "root");
        // The data device and the header's data offset (4096 sectors).
        assert!(tables[0].1.contains(" 0 254:2 4096 "), "{}", tables[0].1);
        assert_eq!(
            boot.mount_on("/sysroot").map(|mnt| mnt.source).as_deref(),
            Some("/dev/dm-0")
        );
    }
}

/// `cryptkey=` naming a device (not a file of the image): the key stick arrives
/// late, is waited for, and the key read from it, `SIZE` bytes at `OFFSET`, as
/// nlplug-findfs' `-k SPEC:OFFSET:SIZE`.
#[test]
fn cryptkey_device_is_waited_for_and_read_with_offset_and_size() {
    use std::os::unix::fs::FileExt;
    let m = Machine::new();
    let Some((img, right)) = crate::crypt::tests::container(&m.path("/.luks")) else {
        return;
    };
    m.cmdline(&format!(
        "root=/dev/mapper/root cryptroot=/dev/vda2 cryptkey=UUID=1234-5678:4096:{} panic=1",
        right.len()
    ));
    luks_partition(&m, &img);
    // A FAT stick (the fake's FAT volumes have the serial 1234-5678).
    let stick = m.block("sdb", Bus::Usb, Fs::Vfat { label: "KEYS" }, &[]);
    let node = std::fs::OpenOptions::new()
        .write(true)
        .open(m.path("/dev/sdb"))
        .unwrap();
    node.write_all_at(&[&right[..], b"and what follows"].concat(), 4096)
        .unwrap();
    m.hotplug(2, stick, false);
    mapping_appears(&m, Fs::Ext4 { label: "ROOT" }, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(
        !boot.console.contains("Enter passphrase"),
        "{}",
        boot.console
    );
    assert_eq!(dm_tables(&boot).len(), 1);
}

#[test]
fn cryptheader_that_is_neither_file_nor_device_is_named() {
    let m = Machine::new();
    let Some((img, _)) = crate::crypt::tests::container(&m.path("/.luks")) else {
        return;
    };
    m.cmdline("root=/dev/mapper/root cryptroot=/dev/vda2 cryptheader=/h.img panic=1");
    luks_partition(&m, &img);
    let boot = m.boot();
    boot.assert_kmsg("crypt header /h.img not found: no such file in the image, no such device");
    assert_eq!(boot.end, End::GaveUp);
}

/// `cryptkey=EXEC=prog`: the program's output opens the volume without a prompt.
#[test]
fn exec_key_opens_the_root_without_a_prompt() {
    let m = Machine::new();
    let Some((img, right)) = crate::crypt::tests::container(&m.path("/.luks")) else {
        return;
    };
    m.cmdline("root=/dev/mapper/root cryptroot=/dev/vda2 cryptkey=EXEC=/sbin/getkey:2:0 panic=1");
    m.exe("/sbin/getkey");
    let mut out = b"xx".to_vec();
    out.extend_from_slice(&right);
    m.fake
        .set_spawn_output("", std::str::from_utf8(&out).unwrap());
    luks_partition(&m, &img);
    mapping_appears(&m, Fs::Ext4 { label: "ROOT" }, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let runs: Vec<_> = boot
        .spawned()
        .into_iter()
        .filter(|a| a[0] == "/sbin/getkey")
        .collect();
    assert_eq!(runs, [["/sbin/getkey"]]);
    assert!(
        !boot.console.contains("Enter passphrase"),
        "{}",
        boot.console
    );
    assert_eq!(dm_tables(&boot).len(), 1);
}

/// An `EXEC=` key that does not open the volume, or whose program hangs, is named;
/// no passphrase is asked (nlplug-findfs: no fallback for EXEC= keys).
#[test]
fn exec_key_failures_ask_no_passphrase() {
    for (hang, want) in [
        (false, "the key EXEC=/sbin/getkey does not open /dev/vda2"),
        (true, "cryptkey=EXEC="),
    ] {
        let m = Machine::new();
        let Some((img, _)) = crate::crypt::tests::container(&m.path("/.luks")) else {
            return;
        };
        m.cmdline("root=/dev/mapper/root cryptroot=/dev/vda2 cryptkey=EXEC=/sbin/getkey panic=1");
        m.exe("/sbin/getkey");
        m.fake.set_spawn_output("", "not the key");
        if hang {
            // Exit code 137 from the hook: killed at the limit.
            m.fake.on_spawn(|_, _| Ok(137));
        }
        m.fake.type_passwords(&["right"]);
        luks_partition(&m, &img);
        let boot = m.boot();
        boot.assert_kmsg(want);
        if hang {
            boot.assert_kmsg("getkey: still running after 30s, killed");
        }
        assert!(
            !boot.console.contains("Enter passphrase"),
            "{}",
            boot.console
        );
        assert!(dm_tables(&boot).is_empty());
        assert_eq!(boot.end, End::GaveUp);
    }
}

/// Diskless mode with `cryptroot=`: the boot medium is inside the LUKS volume; it is
/// unlocked before the media scan, which then finds the apkovl in the mapping. The
/// crypt options are not reported as ignored.
#[test]
fn diskless_boot_medium_inside_luks_is_found_after_unlock() {
    let m = Machine::new();
    if !medium_in_luks(&m) {
        return;
    }
    let boot = m.boot();
    boot.assert_clean_switch();
    boot.assert_console("Enter passphrase for /dev/vda2: ");
    boot.assert_kmsg("/dev/vda2 unlocked (key slot 0), mapped as /dev/mapper/media");
    assert!(
        !boot.kmsg.contains("not supported by this version"),
        "{}",
        boot.kmsg
    );
    assert_eq!(dm_tables(&boot)[0].0, "media");
    assert_eq!(
        boot.mount_on("/media/dm-0")
            .map(|mnt| mnt.source)
            .as_deref(),
        Some("/dev/dm-0")
    );
    assert_eq!(m.read("/sysroot/etc/hostname"), "sealed\n");
}

/// Diskless mode: a volume that cannot be opened is a failure with its cause (here
/// under `panic=`), not a silent boot without the medium.
#[test]
fn diskless_cryptroot_failure_is_named() {
    let m = Machine::new();
    m.cmdline("cryptroot=UUID=0000 panic=1");
    m.repo_disk();
    let boot = m.boot();
    boot.assert_kmsg("crypt device UUID=0000 not found");
    assert_eq!(boot.end, End::GaveUp);
}

/// The CPU's AES driver (here `aesni_intel`, found by the kernel's alias
/// `crypto-aes`) is inserted before the mapping's table is loaded: dm-crypt
/// keeps the implementation it was made with, so the root would otherwise run
/// on the generic AES for good (and the kernel would run `modprobe` for
/// `xts(aes)` during the table load).
#[test]
fn cpu_aes_driver_is_inserted_before_the_table_is_loaded() {
    let m = Machine::new();
    m.add_module(
        "kernel/arch/x86/crypto/aesni-intel.ko",
        &[],
        Some("crypto-aes"),
    );
    if !medium_in_luks(&m) {
        return;
    }
    let boot = m.boot();
    boot.assert_clean_switch();
    let at = |want: &dyn Fn(&Ev) -> bool| boot.events.iter().position(want);
    let aes = at(&|e| matches!(e, Ev::Insmod(n) if n == "aesni_intel"));
    let table = at(&|e| matches!(e, Ev::DmCreate(..)));
    assert!(aes.is_some() && table.is_some(), "{:?}", boot.insmods());
    assert!(
        aes < table,
        "aesni_intel at {aes:?}, the table at {table:?}"
    );
}

/// The modules of other cipher modes (the ESSIV template, its `authenc`
/// dependency, the SHA-512 module) are not loaded for an XTS volume; a
/// CBC-ESSIV volume gets them, before its table is loaded.
#[test]
fn only_the_volumes_cipher_mode_modules_are_inserted() {
    for (args, essiv) in [
        (&[][..], false),
        (
            &["--cipher", "aes-cbc-essiv:sha256", "--key-size", "256"][..],
            true,
        ),
    ] {
        let m = Machine::new();
        m.add_module("kernel/crypto/xts.ko", &[], None);
        m.add_module("kernel/crypto/authenc.ko", &[], None);
        m.add_module(
            "kernel/crypto/essiv.ko",
            &["kernel/crypto/authenc.ko"],
            None,
        );
        m.add_module("kernel/crypto/sha512_generic.ko", &[], None);
        if !medium_in_luks_with(&m, args) {
            return;
        }
        let boot = m.boot();
        boot.assert_clean_switch();
        let at = |name: &str| {
            boot.events
                .iter()
                .position(|e| matches!(e, Ev::Insmod(n) if n == name))
        };
        let table = boot
            .events
            .iter()
            .position(|e| matches!(e, Ev::DmCreate(..)));
        assert!(at("xts") < table, "{args:?}: {:?}", boot.insmods());
        for name in ["essiv", "authenc", "sha512_generic"] {
            match essiv {
                true => assert!(
                    at(name).is_some() && at(name) < table,
                    "{args:?}: {name}: {:?}",
                    boot.insmods()
                ),
                false => assert_eq!(at(name), None, "{args:?}: {:?}", boot.insmods()),
            }
        }
    }
}

/// Root mode on a LUKS mapping: the root is the mapping just made, there once
/// its table is loaded, so it is mounted without a second discovery (one
/// coldplug sweep in the whole boot, where there were two).
#[test]
fn root_on_the_mapping_just_made_needs_no_second_sweep() {
    let m = Machine::new();
    let Some((img, right)) = crate::crypt::tests::container(&m.path("/.luks")) else {
        return;
    };
    m.cmdline("root=/dev/mapper/root cryptroot=/dev/vda2 cryptkey panic=1");
    luks_partition(&m, &img);
    m.write("/crypto_keyfile.bin", &right);
    std::fs::remove_dir_all(m.path("/sysroot")).unwrap();
    m.mkdir("/sysroot");
    mapping_appears(&m, Fs::Ext4 { label: "ROOT" }, &[("sbin/init", b"#!")]);
    let init = m.path("/.contents/dm-0/sbin/init");
    std::fs::set_permissions(init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let boot = m.boot();
    boot.assert_clean_switch();
    let root = boot.mount_on("/sysroot").expect("root mounted");
    assert_eq!(
        (root.source.as_str(), root.fstype.as_deref()),
        ("/dev/dm-0", Some("ext4"))
    );
    assert_eq!(
        boot.kmsg.matches(" devices swept in ").count(),
        1,
        "{}",
        boot.kmsg
    );
}
