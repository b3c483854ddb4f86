//! Each row of the README's failure table, and the failure policy around
//! it: the message (with its whole cause chain, once), then `panic=`, the
//! recovery shell or a halt, and what the boot does after the shell.

use super::machine::{apkovl_fixture, overlay, Bus, Fs, Machine};
use crate::failure::End;
use crate::platform::fake::Ev;
use alpinit_sys::Match;

#[test]
fn no_boot_media_says_so_runs_the_shell_then_boots_with_default_services() {
    let m = Machine::new();
    m.block("vda", Bus::Virtio, Fs::Blank, &[]);
    let boot = m.boot();
    boot.assert_console(" * Mounting boot media: failed.\n");
    boot.assert_console("none of the 1 block devices seen holds an apkovl");
    // Slow hardware gets Alpine's 5 s of silence before the failure.
    assert!(m.fake.elapsed() >= std::time::Duration::from_secs(5));
    assert_eq!(boot.shells(), 1);
    assert_eq!(boot.end, End::SwitchedRoot);
    assert!(m.exists("/sysroot/etc/runlevels/sysinit/devfs"));
}

#[test]
fn no_boot_media_with_panic_gives_up_without_a_shell() {
    let m = Machine::new();
    m.cmdline("panic=10");
    let boot = m.boot();
    assert_eq!(boot.end, End::GaveUp);
    assert_eq!(boot.shells(), 0);
    assert!(boot.switched_to().is_none());
    boot.assert_kmsg("panic= is set");
}

#[test]
fn no_boot_media_without_busybox_halts_with_the_message_on_screen() {
    let m = Machine::new();
    std::fs::remove_file(m.path("/bin/busybox")).unwrap();
    let boot = m.boot();
    assert_eq!(boot.end, End::Halted);
    boot.assert_console("No recovery shell in this image");
    boot.assert_console("No boot media found");
    assert!(boot.spawned().is_empty());
}

#[test]
fn no_boot_media_is_no_failure_when_networking_may_bring_the_overlay() {
    let m = Machine::new();
    m.cmdline("ip=dhcp");
    m.dhcp_nic("eth0", 2);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(!boot.console.contains("Mounting boot media: failed"));
}

#[test]
fn corrupt_overlay_is_rejected_whole_and_the_boot_goes_on_without_it() {
    let m = Machine::new();
    let mut ovl = overlay(&[("etc/hostname", b"box\n")]);
    let cut = ovl.len() / 2;
    ovl.truncate(cut);
    m.disk("vda1", "A", &[("h.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_console(" * Loading user settings from /media/vda1/h.apkovl.tar.gz: failed. ");
    boot.assert_console(
        "\nThe overlay /media/vda1/h.apkovl.tar.gz was rejected; nothing of it was applied. Type exit to boot without it.\n"
    );
    // The cause is said once, on the progress line, on the console and in the kernel log.
    let (_, rest) = boot.console.split_once(": failed. ").unwrap();
    let cause = rest.lines().next().unwrap();
    assert!(!cause.is_empty());
    assert_eq!(boot.console.matches(cause).count(), 1, "{}", boot.console);
    assert_eq!(boot.kmsg.matches(cause).count(), 1, "{}", boot.kmsg);
    assert_eq!(boot.shells(), 1);
    assert!(!m.exists("/sysroot/etc/hostname"));
    assert_eq!(boot.end, End::SwitchedRoot);
    assert!(
        m.exists("/sysroot/etc/runlevels/sysinit/devfs"),
        "default services"
    );
}

#[test]
fn hostile_overlay_with_dotdot_member_writes_nothing() {
    let m = Machine::new();
    let ovl = overlay(&[("etc/hostname", b"box\n"), ("../escape", b"x")]);
    m.disk("vda1", "A", &[("h.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_console("failed.");
    assert!(!m.exists("/sysroot/etc/hostname"));
    assert!(!m.exists("/escape"));
    assert_eq!(boot.shells(), 1);
}

#[test]
fn hostile_overlay_with_panic_gives_up() {
    let m = Machine::new();
    m.cmdline("panic=-1");
    let ovl = overlay(&[("../escape", b"x")]);
    m.disk("vda1", "A", &[("h.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    assert_eq!(boot.end, End::GaveUp);
    assert!(boot.switched_to().is_none());
}

#[test]
fn wrong_password_three_times_rejects_the_overlay() {
    let m = Machine::new();
    let enc = apkovl_fixture("tiny-md5.apkovl.tar.gz.aes-256-cbc");
    m.stick("sda1", "A", &[("b.apkovl.tar.gz.aes-256-cbc", &enc)]);
    m.fake.type_passwords(&["a", "b", "c"]);
    let boot = m.boot();
    assert_eq!(
        boot.console.matches("Wrong password, try again.").count(),
        2
    );
    boot.assert_console("failed.");
    assert_eq!(boot.shells(), 1);
    assert!(!m.exists("/sysroot/etc/hostname"));
}

#[test]
fn missing_init_says_so_runs_the_shell_and_tries_the_hand_over_anyway() {
    let m = Machine::new();
    std::fs::remove_file(m.path("/sysroot/sbin/init")).unwrap();
    m.repo_disk();
    let boot = m.boot();
    boot.assert_console("/sbin/init not found in new root");
    assert_eq!(boot.shells(), 1);
    assert_eq!(boot.end, End::SwitchedRoot);
}

#[test]
fn init_that_is_not_executable_is_reported() {
    let m = Machine::new();
    std::fs::remove_file(m.path("/sysroot/sbin/init")).unwrap();
    m.write("/sysroot/sbin/init", "data");
    m.repo_disk();
    let boot = m.boot();
    boot.assert_console("/sbin/init in the new root is not an executable file");
    assert_eq!(boot.shells(), 1);
}

#[test]
fn switch_root_failure_runs_the_shell_and_retries() {
    let m = Machine::new();
    m.fake.fail_switch_root(1);
    m.repo_disk();
    let boot = m.boot();
    let attempts = boot
        .events
        .iter()
        .filter(|e| matches!(e, Ev::SwitchRoot { .. }))
        .count();
    assert_eq!(attempts, 2);
    assert_eq!(boot.shells(), 1);
    boot.assert_console("switch_root failed: exec: ");
    assert_eq!(boot.end, End::SwitchedRoot);
}

#[test]
fn sysfs_mount_failure_is_reported_with_its_cause_and_the_boot_goes_on() {
    let m = Machine::new();
    m.fail_mount(Match::FsType("sysfs".into()), libc::EPERM);
    m.repo_disk();
    let boot = m.boot();
    let eperm = std::io::Error::from_raw_os_error(libc::EPERM).to_string();
    boot.assert_console("mounting sysfs on ");
    boot.assert_console(&eperm);
    assert_eq!(boot.shells(), 1);
    assert_eq!(boot.end, End::SwitchedRoot);
}

#[test]
fn devtmpfs_missing_falls_back_to_tmpfs_and_makes_nodes() {
    let m = Machine::new();
    m.fail_mount(Match::FsType("devtmpfs".into()), libc::ENODEV);
    m.repo_disk();
    // A tmpfs /dev starts empty: the node must come from the uevent.
    std::fs::remove_file(m.path("/dev/vda1")).unwrap();
    let boot = m.boot();
    boot.assert_clean_switch();
    let nodes: Vec<_> = boot
        .events
        .iter()
        .filter_map(|e| match e {
            Ev::Sys(alpinit_sys::Call::Mknod { path, .. }) => {
                path.file_name().map(|n| n.to_string_lossy().into_owned())
            }
            _ => None,
        })
        .collect();
    assert!(
        nodes.contains(&"vda1".to_owned()),
        "block node made from the uevent: {nodes:?}"
    );
    assert!(nodes.contains(&"console".to_owned()));
}

#[test]
fn tmpfs_root_mount_failure_runs_the_shell() {
    let m = Machine::new();
    m.fail_mount(Match::Path(m.path("/sysroot")), libc::ENOMEM);
    m.repo_disk();
    let boot = m.boot();
    boot.assert_console("mounting tmpfs on ");
    assert_eq!(boot.shells(), 1);
}

#[test]
fn apk_failure_is_a_warning_on_the_console_without_a_shell() {
    let m = Machine::new();
    m.with_apk();
    m.fake
        .on_spawn(|argv, _| Ok(if argv[0].ends_with("/sbin/apk") { 1 } else { 0 }));
    m.repo_disk();
    let boot = m.boot();
    boot.assert_console("WARNING: apkovl packages install completed with errors...");
    boot.assert_clean_switch();
}

#[test]
fn dhcp_failure_says_why_and_the_boot_continues_with_local_media() {
    let m = Machine::new();
    m.cmdline("ip=dhcp");
    m.nic("eth0", 2, true, true);
    let ovl = overlay(&[("etc/hostname", b"local\n")]);
    m.disk("vda1", "A", &[("a.apkovl.tar.gz", &ovl)]);
    let boot = m.boot();
    boot.assert_console(" * Obtaining IP via DHCP (eth0): failed. no DHCP lease on eth0");
    boot.assert_clean_switch();
    assert_eq!(m.read("/sysroot/etc/hostname"), "local\n");
}

#[test]
fn download_failure_shows_the_whole_cause_once_and_the_boot_continues() {
    let m = Machine::new();
    m.cmdline("ip=dhcp apkovl=http://10.0.2.2/x.apkovl.tar.gz");
    m.dhcp_nic("eth0", 2);
    m.fake.on_fetch(|url| {
        Err(alpinit_net::FetchError::Connect {
            url: url.to_owned(),
            addr: "10.0.2.2:80".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        })
    });
    let boot = m.boot();
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused).to_string();
    let line = format!(
        " * Downloading http://10.0.2.2/x.apkovl.tar.gz: failed. http://10.0.2.2/x.apkovl.tar.gz: cannot connect to 10.0.2.2:80: {refused}\n"
    );
    boot.assert_console(&line);
    assert_eq!(boot.console.matches(&refused).count(), 1);
    boot.assert_kmsg(&format!("cannot connect to 10.0.2.2:80: {refused}"));
    boot.assert_clean_switch();
    assert!(
        !m.exists("/tmp/x.apkovl.tar.gz"),
        "the partial download is removed"
    );
}
