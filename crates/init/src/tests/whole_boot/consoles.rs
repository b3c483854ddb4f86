//! Consoles and the keymap in whole boots: the getty lines Alpine writes
//! into the new root, and the keymap loaded before anything prompts.

use super::machine::{overlay, Bus, Fs, Machine};
use crate::keymap::{KbEntry, MAGIC, MAX_NR_KEYMAPS, NR_KEYS};
use crate::platform::fake::Ev;
use std::io::Write;

/// Upstream's `fake_serial_devices`: a 16550A at ttyS0 with CTS|DSR, and
/// an ARM PL011 (ttyAMA0) with a `device` link in sysfs.
pub fn fake_serial_devices(m: &Machine) {
    m.write(
        "/proc/tty/driver/serial",
        "0: uart:16550A port:000003F8 irq:4 tx:0 rx:0 CTS|DSR\n\
         1: uart:16550A port:000002F8 irq:3 tx:103 rx:0 RTS|DTR\n\
         2: uart:unknown port:000003E8 irq:4\n\
         3: uart:unknown port:000002E8 irq:3\n",
    );
    m.mkdir("/sys/devices/platform/ARMH0011:00/tty/ttyAMA0");
    std::os::unix::fs::symlink(
        "../../../ARMH0011:00",
        m.path("/sys/devices/platform/ARMH0011:00/tty/ttyAMA0/device"),
    )
    .unwrap();
    m.mkdir("/sys/class/tty");
    std::os::unix::fs::symlink(
        "../../devices/platform/ARMH0011:00/tty/ttyAMA0",
        m.path("/sys/class/tty/ttyAMA0"),
    )
    .unwrap();
}

/// The start of Alpine's /etc/inittab (alpine-baselayout).
const INITTAB: &str = "::sysinit:/sbin/openrc sysinit\n\
tty1::respawn:/sbin/getty 38400 tty1\n\
tty2::respawn:/sbin/getty 38400 tty2\n";

/// A disk with a boot repository: the boot needs no recovery shell.
fn boot_media(m: &Machine) {
    m.block(
        "vda1",
        Bus::Virtio,
        Fs::Ext4 { label: "A" },
        &[("apks/.boot_repository", b"")],
    );
}

/// A headless VM booted with `console=ttyS0` (the kernel's console is the
/// serial line only).
fn headless(m: &Machine) {
    boot_media(m);
    m.cmdline("console=ttyS0,115200");
    m.write("/sys/class/tty/console/active", "ttyS0\n");
}

#[test]
fn console_ttys0_gets_alpines_getty_line_and_securetty_entry() {
    let m = Machine::new();
    headless(&m);
    m.write("/sysroot/etc/inittab", INITTAB);
    m.write("/sysroot/etc/securetty", "console\ntty1\n");
    m.boot().assert_clean_switch();
    assert_eq!(
        m.read("/sysroot/etc/inittab"),
        format!(
            "{INITTAB}# enable login on alternative console\n\
             ttyS0::respawn:/sbin/getty -L 0 ttyS0 vt100\n"
        )
    );
    assert_eq!(m.read("/sysroot/etc/securetty"), "console\ntty1\nttyS0\n");
}

#[test]
fn console_already_in_inittab_and_securetty_is_left_alone() {
    let m = Machine::new();
    headless(&m);
    let inittab = format!("{INITTAB}ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt220\n");
    m.write("/sysroot/etc/inittab", &inittab);
    m.write("/sysroot/etc/securetty", "ttyS0\n");
    m.boot().assert_clean_switch();
    assert_eq!(m.read("/sysroot/etc/inittab"), inittab);
    assert_eq!(m.read("/sysroot/etc/securetty"), "ttyS0\n");
}

#[test]
fn console_without_securetty_gets_none_and_the_inittab_is_created() {
    let m = Machine::new();
    headless(&m);
    m.boot().assert_clean_switch();
    assert_eq!(
        m.read("/sysroot/etc/inittab"),
        "# enable login on alternative console\nttyS0::respawn:/sbin/getty -L 0 ttyS0 vt100\n"
    );
    assert!(!m.exists("/sysroot/etc/securetty"));
}

/// Alpine skips a tty on which `stty -g` fails (a port without a UART).
#[test]
fn console_that_gives_io_errors_gets_no_getty_line() {
    let m = Machine::new();
    headless(&m);
    m.fake.dead_tty("ttyS0");
    m.write("/sysroot/etc/inittab", INITTAB);
    m.boot().assert_clean_switch();
    assert_eq!(m.read("/sysroot/etc/inittab"), INITTAB);
}

/// A name from the command line that cannot be a tty never reaches the
/// inittab (`:` would add fields to the line).
#[test]
fn console_name_with_inittab_separator_is_refused() {
    let m = Machine::new();
    boot_media(&m);
    m.cmdline("console=ttyS0:x");
    m.boot().assert_clean_switch();
    assert!(!m.read("/sysroot/etc/inittab").contains("ttyS0:x"));
}

/// Regression: an overlay's symlinked inittab is replaced, never written
/// through to a file outside the new root.
#[test]
fn console_inittab_symlink_from_the_overlay_is_not_followed_out() {
    let m = Machine::new();
    headless(&m);
    m.write("/outside", "initramfs file\n");
    let ovl = overlay(&[("etc/hostname", b"h\n")]);
    m.block(
        "sda1",
        Bus::Usb,
        Fs::Vfat { label: "A" },
        &[("h.apkovl.tar.gz", &ovl)],
    );
    m.write("/sysroot/etc/.keep", "");
    std::os::unix::fs::symlink("../../outside", m.path("/sysroot/etc/inittab")).unwrap();
    m.boot().assert_clean_switch();
    assert_eq!(m.read("/outside"), "initramfs file\n");
}

/// In root mode Alpine edits no inittab.
#[test]
fn console_root_mode_leaves_the_inittab_alone() {
    let m = Machine::new();
    m.cmdline("root=/dev/vda1 console=ttyS0");
    m.block("vda1", Bus::Virtio, Fs::Ext4 { label: "ROOT" }, &[]);
    m.boot().assert_clean_switch();
    assert!(!m.exists("/sysroot/etc/inittab"));
}

fn gz_bmap(tables: &[u8]) -> Vec<u8> {
    let mut data = MAGIC.to_vec();
    let mut flags = [0u8; MAX_NR_KEYMAPS];
    for t in tables {
        flags[usize::from(*t)] = 1;
    }
    data.extend_from_slice(&flags);
    for _ in tables {
        for j in 0..NR_KEYS as u16 {
            data.extend_from_slice(&(0x0f00 + j).to_ne_bytes());
        }
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&data).unwrap();
    e.finish().unwrap()
}

fn encrypted_overlay(m: &Machine) {
    let enc = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../apkovl/tests/fixtures/tiny-sha256.apkovl.tar.gz.aes-256-cbc"
    ))
    .unwrap();
    m.block(
        "sda1",
        Bus::Usb,
        Fs::Vfat { label: "A" },
        &[("box.apkovl.tar.gz.aes-256-cbc", &enc)],
    );
}

#[test]
fn keymap_is_loaded_before_the_password_prompt() {
    let m = Machine::new();
    m.write("/etc/keymap/us.bmap.gz", gz_bmap(&[0, 1]));
    encrypted_overlay(&m);
    m.fake.type_passwords(&["alpinit"]);
    let boot = m.boot();
    boot.assert_clean_switch();
    let keymap = boot
        .index(|e| matches!(e, Ev::Keymap(_)))
        .expect("keymap loaded");
    let prompt = boot
        .index(|e| matches!(e, Ev::Prompt(_)))
        .expect("prompted");
    assert!(keymap < prompt, "{:?}", boot.events);
    let Ev::Keymap(entries) = &boot.events[keymap] else {
        unreachable!()
    };
    assert_eq!(entries.len(), 2 * NR_KEYS);
    assert_eq!(
        entries[NR_KEYS + 3],
        KbEntry {
            table: 1,
            index: 3,
            value: 0x0f03
        }
    );
    assert!(
        boot.console.contains(" * Setting keymap us.bmap.gz: ok."),
        "{}",
        boot.console
    );
}

#[test]
fn keymap_is_loaded_before_the_recovery_shell() {
    let m = Machine::new();
    m.write("/etc/keymap/de.bmap.gz", gz_bmap(&[0]));
    let boot = m.boot();
    let keymap = boot
        .index(|e| matches!(e, Ev::Keymap(_)))
        .expect("keymap loaded");
    let shell = boot
        .index(|e| matches!(e, Ev::Spawn(argv) if argv[0].ends_with("busybox") && argv[1] == "sh"))
        .expect("no media: the shell");
    assert!(keymap < shell, "{:?}", boot.events);
}

#[test]
fn keymap_short_file_loads_nothing_and_the_boot_goes_on() {
    let m = Machine::new();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b"bkeymap\x01\x01").unwrap();
    m.write("/etc/keymap/cut.bmap.gz", e.finish().unwrap());
    encrypted_overlay(&m);
    m.fake.type_passwords(&["alpinit"]);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(!boot.events.iter().any(|e| matches!(e, Ev::Keymap(_))));
    assert!(
        boot.console.contains("Setting keymap cut.bmap.gz: failed.")
            && boot.console.contains("cut.bmap.gz: truncated"),
        "{}",
        boot.console
    );
    assert_eq!(m.read("/sysroot/etc/hostname"), "box\n");
}

fn set_consoles(boot: &super::machine::Boot) -> Vec<Ev> {
    boot.events
        .iter()
        .filter(|e| matches!(e, Ev::SetConsole(_)))
        .cloned()
        .collect()
}

/// Alpine's loop goes on to the next detected tty when `stty -g` fails.
#[test]
fn setconsole_skips_a_serial_line_that_gives_io_errors() {
    let m = Machine::new();
    boot_media(&m);
    m.cmdline("autodetect_serial=setconsole");
    fake_serial_devices(&m);
    m.fake.dead_tty("ttyS0");
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(
        set_consoles(&boot),
        [Ev::SetConsole(m.path("/dev/ttyAMA0"))]
    );
}

/// A pattern grep -E would refuse matches nothing and is named; the valid
/// one still decides.
#[test]
fn setconsole_invalid_pattern_is_reported_and_the_others_still_match() {
    let m = Machine::new();
    boot_media(&m);
    m.cmdline("autodetect_serial=setconsole=svn(QEMU,pnQEMU.*Machine");
    m.write(
        "/sys/class/dmi/id/modalias",
        "dmi:svnQEMU:pnQEMUVirtualMachine:\n",
    );
    fake_serial_devices(&m);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(boot.kmsg.contains("svn(QEMU"), "{}", boot.kmsg);
    assert_eq!(set_consoles(&boot), [Ev::SetConsole(m.path("/dev/ttyS0"))]);
}

/// Without setconsole the console stays where the kernel put it.
#[test]
fn setconsole_is_not_run_without_the_option() {
    let m = Machine::new();
    boot_media(&m);
    fake_serial_devices(&m);
    let boot = m.boot();
    assert_eq!(set_consoles(&boot), []);
}
