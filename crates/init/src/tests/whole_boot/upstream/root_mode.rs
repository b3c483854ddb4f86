//! The upstream cases of root mode's hibernation resume and `/usr`.

use super::super::machine::{Bus, Fs, Machine};
use super::fake_sysroot_init;

/// Upstream touches `sys/power/resume` and gets `resume_offset` from the
/// script's `echo >`; the kernel has both attributes, so the tree does too.
#[test]
fn resume_offset() {
    let m = Machine::new();
    m.cmdline("root=fake_dev resume=fake_dev resume_offset=3549184");
    fake_sysroot_init(&m);
    m.write("/sys/power/resume", "");
    m.write("/sys/power/resume_offset", "");
    m.block("fake_dev", Bus::Virtio, Fs::Ext4 { label: "ROOT" }, &[]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(m.read("/sys/power/resume_offset").contains("3549184"));
}

#[test]
fn mount_usr() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1");
    fake_sysroot_init(&m);
    m.write(
        "/sysroot/etc/fstab",
        "/dev/vda2\t/usr\text4\tdefaults 0 0\n",
    );
    m.block("vda1", Bus::Virtio, Fs::Ext4 { label: "ROOT" }, &[]);
    m.block("vda2", Bus::Virtio, Fs::Ext4 { label: "USR" }, &[]);
    let boot = m.boot();
    boot.assert_console("Mounting /usr");
    let usr = boot.mount_on("/sysroot/usr").expect("/usr mounted");
    assert_eq!(usr.source, "/dev/vda2");
    boot.assert_clean_switch();
}
