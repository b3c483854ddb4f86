//! The recovery shell with Alpine's busybox: applets by name (`--install -s`
//! and Alpine's PATH) and `single` whatever `panic=` says.

use super::machine::{Bus, Fs, Machine};
use crate::failure::End;
use crate::platform::fake::Ev;
use std::os::unix::fs::PermissionsExt;

fn repository_disk(m: &Machine) {
    m.block(
        "vda1",
        Bus::Virtio,
        Fs::Ext4 { label: "A" },
        &[("apks/.boot_repository", b"")],
    );
}

/// The PATH the shell got, from the environment recorded after its spawn.
fn shell_path(boot: &super::machine::Boot) -> Option<String> {
    let shell = boot.index(|e| {
        matches!(e, Ev::Spawn(a) if a[0].ends_with("/bin/busybox") && a.get(1).map(String::as_str) == Some("sh"))
    })?;
    // The spawn's environment is recorded right after it by the same
    // thread, but a module loader thread may record an insmod in between.
    boot.events[shell + 1..].iter().find_map(|e| match e {
        Ev::SpawnEnv(env) => env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone()),
        _ => None,
    })
}

#[test]
fn busybox_install_s_runs_first_so_applets_work_by_name() {
    let m = Machine::new();
    repository_disk(&m);
    let boot = m.boot();
    boot.assert_clean_switch();
    let spawned = boot.spawned();
    assert_eq!(
        spawned.first().map(Vec::as_slice),
        Some(
            [
                "/bin/busybox".to_owned(),
                "--install".to_owned(),
                "-s".to_owned()
            ]
            .as_slice()
        )
    );
    let install = boot
        .index(|e| matches!(e, Ev::Spawn(a) if a.get(1).map(String::as_str) == Some("--install")))
        .expect("--install ran");
    let proc_mount = boot
        .index(|e| matches!(e, Ev::Sys(alpinit_sys::Call::Mount { fstype, .. }) if fstype.as_deref() == Some("proc")))
        .expect("proc mounted");
    let first_block = boot
        .index(|e| matches!(e, Ev::Sys(alpinit_sys::Call::Mount { fstype, .. }) if fstype.as_deref() == Some("ext4")))
        .expect("medium mounted");
    assert!(
        proc_mount < install && install < first_block,
        "after /proc (busybox reads /proc/self/exe), before discovery"
    );
}

/// The marker `cargo xtask initramfs` writes beside the links it made,
/// naming BUSYBOX_LEN as the size of `/bin/busybox`.
fn applet_marker(m: &Machine, busybox_len: u64) {
    m.write(
        "/lib/alpinit/applets",
        format!(
            "busybox /bin/busybox {busybox_len} BusyBox v1.35.0 (Debian 1:1.35.0-4)\n\
             boot /sbin/modprobe\n/sbin/mdev\n/bin/ls\n"
        ),
    );
    m.mkdir("/sbin");
}

fn install_spawned(boot: &super::machine::Boot) -> bool {
    boot.spawned()
        .iter()
        .any(|a| a.get(1).map(String::as_str) == Some("--install"))
}

#[test]
fn applet_links_made_at_build_skip_the_install_spawn() {
    let m = Machine::new();
    let len = std::fs::metadata(m.path("/bin/busybox")).unwrap().len();
    applet_marker(&m, len);
    repository_disk(&m);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert!(!install_spawned(&boot), "{:?}", boot.spawned());
    assert!(boot.spawned().is_empty(), "{:?}", boot.spawned());
    // The one link the image leaves to the init (the kernel runs it).
    assert_eq!(
        std::fs::read_link(m.path("/sbin/modprobe")).ok(),
        Some(std::path::PathBuf::from("/bin/busybox"))
    );
    assert!(boot
        .kmsg
        .contains("busybox applet links: made when the image was built"));
}

#[test]
fn applet_marker_of_another_busybox_still_installs() {
    let m = Machine::new();
    let len = std::fs::metadata(m.path("/bin/busybox")).unwrap().len();
    applet_marker(&m, len + 1);
    repository_disk(&m);
    let boot = m.boot();
    boot.assert_clean_switch();
    assert_eq!(
        boot.spawned().first().map(Vec::as_slice),
        Some(
            ["/bin/busybox", "--install", "-s"]
                .map(str::to_owned)
                .as_slice()
        )
    );
    assert!(
        !m.exists("/sbin/modprobe"),
        "boot lines of a marker not ours"
    );
}

#[test]
fn no_busybox_no_applet_install() {
    let m = Machine::new();
    std::fs::remove_file(m.path("/bin/busybox")).unwrap();
    repository_disk(&m);
    let boot = m.boot();
    assert_eq!(boot.end, End::SwitchedRoot, "{}", boot.console);
    assert!(boot.spawned().is_empty(), "{:?}", boot.spawned());
}

#[test]
fn recovery_shell_gets_alpines_path() {
    let m = Machine::new();
    let boot = m.boot();
    assert_eq!(boot.shells(), 1, "{}", boot.console);
    let path = shell_path(&boot).expect("the shell's PATH");
    assert!(
        path == "/usr/bin:/bin:/usr/sbin:/sbin" || path.ends_with(":/usr/bin:/bin:/usr/sbin:/sbin"),
        "{path}"
    );
}

#[test]
fn shell_path_is_alpines_after_the_inherited_one() {
    use crate::early::shell_path;
    assert_eq!(shell_path(None), "/usr/bin:/bin:/usr/sbin:/sbin");
    assert_eq!(shell_path(Some("")), "/usr/bin:/bin:/usr/sbin:/sbin");
    assert_eq!(
        shell_path(Some("/opt/bin")),
        "/opt/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    );
}

#[test]
fn single_gives_a_shell_even_with_panic() {
    let m = Machine::new();
    m.cmdline("single panic=10");
    repository_disk(&m);
    let boot = m.boot();
    assert_eq!(boot.shells(), 1, "{}", boot.console);
    assert!(
        boot.console
            .contains("Entering single mode. Type 'exit' to continue booting."),
        "{}",
        boot.console
    );
    assert!(!boot.kmsg.contains("panic= is set"), "{}", boot.kmsg);
    assert!(shell_path(&boot).is_some());
    assert_eq!(boot.end, End::SwitchedRoot, "{}", boot.console);
}

#[test]
fn single_gives_a_shell_even_with_panic_in_root_mode() {
    let m = Machine::new();
    m.cmdline("root=vda1 single panic=10");
    std::fs::remove_dir_all(m.path("/sysroot")).unwrap();
    m.mkdir("/sysroot");
    m.block(
        "vda1",
        Bus::Virtio,
        Fs::Ext4 { label: "ROOT" },
        &[("sbin/init", b"#!")],
    );
    let init = m.path("/.contents/vda1/sbin/init");
    std::fs::set_permissions(init, std::fs::Permissions::from_mode(0o755)).unwrap();
    let boot = m.boot();
    assert_eq!(boot.shells(), 1, "{}", boot.console);
    assert!(boot.console.contains("Entering single mode"));
    assert_eq!(boot.end, End::SwitchedRoot, "{}", boot.console);
}

#[test]
fn single_without_a_shell_boots_on() {
    let m = Machine::new();
    std::fs::remove_file(m.path("/bin/busybox")).unwrap();
    m.cmdline("single panic=10");
    repository_disk(&m);
    let boot = m.boot();
    assert_eq!(boot.end, End::SwitchedRoot, "{}", boot.console);
    assert!(boot.console.contains("Entering single mode"));
}
