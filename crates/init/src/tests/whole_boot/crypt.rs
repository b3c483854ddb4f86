//! `cryptroot=` in root mode: the LUKS volume is waited for, unlocked with the
//! passphrase typed on the console (Alpine's texts), then mapped.

use super::machine::Machine;
use crate::failure::End;

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
