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
