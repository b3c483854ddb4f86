//! `nlplug-findfs` mode on the fake machine: what Alpine's shell init (and
//! a user's script) gets from the `-a`/`-b` files and the exit status.

use super::machine::{overlay, Machine, BOOT_REPOSITORY};
use crate::findfs_cli::{parse, run, ParseOutcome};
use std::sync::Arc;

/// Runs `nlplug-findfs ARGS` on M; returns the exit status and the kernel
/// log (debug, warnings and errors included).
fn findfs(m: &Machine, args: &str) -> (i32, String) {
    let argv: Vec<String> = args
        .split_whitespace()
        .map(|a| a.replace("@", &m.path("").display().to_string()))
        .collect();
    let ParseOutcome::Run(args) = parse(&argv) else {
        panic!("{argv:?} does not parse");
    };
    crate::log::set_thread_sink(Some(Arc::clone(&m.fake.out) as Arc<dyn crate::log::Sink>));
    let status = run(&m.fake.platform(), &m.layout, &args);
    crate::log::set_thread_sink(None);
    let kmsg = m.fake.out.kmsg.lock().expect("kmsg").join("");
    (status, kmsg)
}

fn virtio(m: &Machine) {
    m.modalias_device(
        "virtio",
        "/devices/pci0000:00/0000:00:05.0/virtio2",
        "virtio:d00000002v00001AF4",
    );
}

#[test]
fn alpine_diskless_call_lists_the_apkovl_and_the_repository() {
    let m = Machine::new();
    virtio(&m);
    let ovl = overlay(&[("etc/hostname", b"box\n")]);
    m.disk(
        "vda1",
        "DATA",
        &[("host.apkovl.tar.gz", &ovl), BOOT_REPOSITORY],
    );
    let (status, log) = findfs(&m, "-p /sbin/mdev -b @/tmp/repositories -a @/tmp/apkovls");
    assert_eq!(status, 0, "{log}");
    let apkovls = m.read("/tmp/apkovls");
    assert!(
        apkovls
            .trim_end()
            .ends_with("/media/vda1/host.apkovl.tar.gz"),
        "{apkovls}"
    );
    assert_eq!(apkovls.lines().count(), 1, "{apkovls}");
    let repos = m.read("/tmp/repositories");
    assert!(repos.trim_end().ends_with("/media/vda1/apks"), "{repos}");
}

/// nlplug's exit status: 1 when nothing was found, 0 with `-n`; and no
/// empty `-a`/`-b` files either way.
#[test]
fn nothing_found_exits_1_or_0_with_n_and_writes_no_files() {
    for (flags, want) in [("", 1), ("-n", 0), ("--allow-not-found", 0)] {
        let m = Machine::new();
        virtio(&m);
        m.disk("vda1", "DATA", &[("etc/motd", b"hi\n")]);
        let (status, log) = findfs(
            &m,
            &format!("{flags} -t 100 -b @/tmp/repositories -a @/tmp/apkovls"),
        );
        assert_eq!(status, want, "{flags}: {log}");
        assert!(!m.exists("/tmp/apkovls"), "{flags}");
        assert!(!m.exists("/tmp/repositories"), "{flags}");
    }
}

/// `-f SUBSYSTEM` keeps only that subsystem's events, as nlplug's code
/// does: with `-f usb` the virtio disk's block events are dropped, so the
/// apkovl on it is not seen; with `-f block` it is.
#[test]
fn filter_keeps_only_the_named_subsystem() {
    for (filter, found) in [("usb", false), ("block", true)] {
        let m = Machine::new();
        virtio(&m);
        let ovl = overlay(&[("etc/hostname", b"box\n")]);
        m.disk("vda1", "DATA", &[("host.apkovl.tar.gz", &ovl)]);
        let (status, log) = findfs(&m, &format!("-n -t 100 -f {filter} -a @/tmp/apkovls"));
        assert_eq!(status, 0, "{log}");
        assert_eq!(m.exists("/tmp/apkovls"), found, "-f {filter}: {log}");
    }
}

/// `-d`: nlplug's debug lines (every uevent) are logged, at debug level,
/// which nlplug-findfs mode prints on stderr.
#[test]
fn debug_logs_each_uevent() {
    let m = Machine::new();
    virtio(&m);
    m.disk("vda1", "DATA", &[BOOT_REPOSITORY]);
    let (_, quiet) = findfs(&m, "-n -t 100 -b @/tmp/r");
    assert!(!quiet.contains("uevent: action="), "{quiet}");
    let m = Machine::new();
    virtio(&m);
    m.disk("vda1", "DATA", &[BOOT_REPOSITORY]);
    let (_, debug) = findfs(&m, "-d -n -t 100 -b @/tmp/r");
    assert!(
        debug.contains("<7>alpinit: uevent: action='Add' subsystem='block' devname='vda1'"),
        "{debug}"
    );
}

/// The device operand: found exits 0; a device that never appears exits 1
/// and says so; `-n` makes that 0.
#[test]
fn device_operand_decides_the_status() {
    let m = Machine::new();
    virtio(&m);
    m.disk("vda1", "DATA", &[]);
    assert_eq!(findfs(&m, "LABEL=DATA").0, 0);
    let m = Machine::new();
    virtio(&m);
    m.disk("vda1", "DATA", &[]);
    assert_eq!(findfs(&m, "-t 100 LABEL=NOPE").0, 1);
    let m = Machine::new();
    virtio(&m);
    m.disk("vda1", "DATA", &[]);
    assert_eq!(findfs(&m, "-n -t 100 LABEL=NOPE").0, 0);
}

/// The LUKS options are acted on, as nlplug's `cryptsetup_thread`: `-c`
/// waits for the device, `-k` opens it without a prompt, `-m` names the
/// mapping (the temp tree has no /dev/mapper/control, so the flow ends at
/// the device-mapper step, naming it; the QEMU scenarios
/// `nlplug-matrix-2`, `-3`, `-45` go on from there with a kernel). Without
/// `-m` nothing is unlocked, as nlplug maps nothing then.
#[test]
fn crypt_options_open_the_device_with_the_key_file_before_the_scan() {
    for (args, mapped) in [
        (
            "-n -t 100 -c vda2 -k /key -m cryptdev -a @/tmp/apkovls",
            true,
        ),
        ("-n -t 100 -c vda2 -k /key -a @/tmp/apkovls", false),
    ] {
        let m = Machine::new();
        let Some((img, right)) = crate::crypt::tests::container(&m.path("/.luks")) else {
            return;
        };
        luks_on_vda2(&m, &img);
        m.write("/key", &right);
        let (status, log) = findfs(&m, args);
        assert_eq!(status, 0, "{args}: {log}");
        let console = m.fake.out.console.lock().expect("console").clone();
        assert!(!console.contains("Enter passphrase"), "{args}: {console}");
        assert_eq!(
            log.contains("mapping cryptdev: ") && log.contains("/dev/mapper/control"),
            mapped,
            "{args}: {log}"
        );
        assert_eq!(log.contains("-c without -m"), !mapped, "{args}: {log}");
    }
}

/// `-k EXEC=prog`: nlplug-findfs runs prog and takes the key from its
/// output (reference §2, `-k`), with no passphrase prompt after it.
#[test]
fn crypt_key_exec_runs_the_program_for_the_key() {
    let m = Machine::new();
    let Some((img, right)) = crate::crypt::tests::container(&m.path("/.luks")) else {
        return;
    };
    luks_on_vda2(&m, &img);
    m.exe("/sbin/getkey");
    m.fake
        .set_spawn_output("", std::str::from_utf8(&right).unwrap());
    let args = "-n -t 100 -c vda2 -k EXEC=/sbin/getkey -m cryptdev -a @/tmp/apkovls";
    let (status, log) = findfs(&m, args);
    assert_eq!(status, 0, "{log}");
    // Only the program's output holds the key: a mapping proves it ran.
    let console = m.fake.out.console.lock().expect("console").clone();
    assert!(!console.contains("Enter passphrase"), "{console}");
    assert!(log.contains("mapping cryptdev: "), "{log}");
}

/// A virtio disk whose second partition holds the LUKS container IMG.
fn luks_on_vda2(m: &Machine, img: &[u8]) {
    virtio(m);
    m.disk("vda2", "UNUSED", &[]);
    std::fs::write(m.path("/dev/vda2"), img).unwrap();
    m.write(
        "/sys/class/block/vda2/size",
        format!("{}\n", img.len() / 512),
    );
    m.write("/sys/class/block/vda2/dev", "254:2\n");
}

/// As nlplug-findfs, a settling stick is waited for and found, and loop
/// and squashfs are left to the caller (Alpine's init loads them): the
/// init loads them during the wait only for its own diskless boot.
#[test]
fn settling_stick_is_found_without_loading_the_modloop_modules() {
    let m = Machine::new();
    let ovl = overlay(&[("etc/hostname", b"box\n")]);
    m.settling_stick(3, "sda1", &[("host.apkovl.tar.gz", &ovl)]);
    let (status, log) = findfs(&m, "-p /sbin/mdev -b @/tmp/repositories -a @/tmp/apkovls");
    assert_eq!(status, 0, "{log}");
    assert!(
        m.read("/tmp/apkovls")
            .trim_end()
            .ends_with("/media/sda1/host.apkovl.tar.gz"),
        "{log}"
    );
    let inserted: Vec<_> = m
        .fake
        .events()
        .into_iter()
        .filter_map(|e| match e {
            crate::platform::fake::Ev::Insmod(n) => Some(n),
            _ => None,
        })
        .collect();
    assert!(inserted.contains(&"usb_storage".to_owned()), "{inserted:?}");
    for module in ["loop", "squashfs"] {
        assert!(!inserted.contains(&module.to_owned()), "{inserted:?}");
    }
    assert_eq!(
        log.matches("waiting: usb-storage interface").count(),
        1,
        "{log}"
    );
}

/// Alpine's init leaves /dev/kmsg rate-limited (10 lines per 5 s), which
/// dropped our `found apkovl` line after a dozen probe and wait lines:
/// the limit is lifted while nlplug-findfs runs and restored after it.
#[test]
fn kmsg_rate_limit_is_lifted_during_the_run_and_restored() {
    let m = Machine::new();
    let sysctl = "/proc/sys/kernel/printk_devkmsg";
    m.write(sysctl, "ratelimit\n");
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let (read, path) = (Arc::clone(&seen), m.path(sysctl));
    m.fake
        .script([crate::platform::fake::Step::Run(Box::new(move || {
            *read.lock().expect("seen") = std::fs::read_to_string(&path).expect("sysctl");
        }))]);
    let ovl = overlay(&[("etc/hostname", b"box\n")]);
    m.settling_stick(3, "sda1", &[("host.apkovl.tar.gz", &ovl)]);
    let (status, log) = findfs(&m, "-p /sbin/mdev -a @/tmp/apkovls");
    assert_eq!(status, 0, "{log}");
    assert_eq!(seen.lock().expect("seen").as_str(), "on\n");
    assert_eq!(m.read(sysctl), "ratelimit\n");
}
