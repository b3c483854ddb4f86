//! Alpine's own shell `initramfs-init` (mkinitfs 3.13.0, with busybox)
//! booting the diskless media with our init binary as its
//! `/sbin/nlplug-findfs` (the image: `xtask/src/alpine_init.rs`,
//! `Helper::Ours`). Each boot must reach the overlay's new root through
//! Alpine's script, never its recovery shell, and our binary must be the
//! helper that ran: its `alpinit: found apkovl ...` kernel-log line is
//! printed by nothing else (Alpine's script and the C helper never write
//! `alpinit:`).

use std::path::Path;

use anyhow::Result;

use super::checks::*;
use super::*;

const KIND: ImageKind = ImageKind::ShellInit;

/// The banner of Alpine's script: it, not our init, ran as `/init`.
const ALPINE_BANNER: &str = "Alpine Init 3.13.0";
/// Our init's banner (`Alpine Init alpinit VERSION`).
const OUR_BANNER: &str = "Alpine Init alpinit";
/// What Alpine's `recovery_shell` prints (without `panic=`).
const RECOVERY: &str = "Launching initramfs emergency recovery shell.";

const HOST_VIRTIO_REPO: &str = "shell-virtio-repo";
const HOST_VIRTIO: &str = "shell-virtio";
const HOST_USB: &str = "shell-usb";
const HOST_ISO: &str = "shell-iso-usb";
const HOST_OPTIONS: &str = "shell-options";

/// The options Alpine's script turns into nlplug-findfs arguments.
const OPTIONS: &str = "debug_init usbdelay=5 uevent_buf_size=1048576";
/// Its `set -x` trace of the call those OPTIONS make (`-d -t 5000 -U`).
const TRACED_CALL: &str =
    "+ nlplug-findfs -p /sbin/mdev -d -t 5000 -U 1048576 -b /tmp/repositories -a /tmp/apkovls";

/// Alpine's script in front of the same modules boots more slowly: it
/// waits as nlplug-findfs tells it, then unpacks with busybox tar.
fn slower(assets: &Assets, vm: Vm) -> Setup {
    Setup {
        vm,
        stop: stops_on_panic(),
        timeout: assets.accel.boot_timeout() + Duration::from_secs(60),
    }
}

/// [`overlay_disk`] with a boot repository beside the apkovl.
fn overlay_and_repository(
    assets: &Assets,
    dir: &Path,
    name: &str,
    fs_kind: Filesystem,
    hostname: &str,
) -> Result<PathBuf> {
    let ovl = overlay(assets, hostname, &[], Vec::new())?;
    disk(dir, name, fs_kind, &[top_apkovl(ovl), boot_repository()])
}

fn setup_virtio_repo(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = overlay_and_repository(assets, dir, "vda", Filesystem::Ext4, HOST_VIRTIO_REPO)?;
    let mut vm = kernel_vm(assets, KIND, "")?;
    vm.virtio_disk(&img);
    Ok(slower(assets, vm))
}

fn setup_virtio(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = overlay_disk(assets, dir, "vda", Filesystem::Ext4, HOST_VIRTIO)?;
    let mut vm = kernel_vm(assets, KIND, "")?;
    vm.virtio_disk(&img);
    Ok(slower(assets, vm))
}

fn setup_usb(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = overlay_and_repository(assets, dir, "usb", Filesystem::Fat32, HOST_USB)?;
    let mut vm = kernel_vm(assets, KIND, "")?;
    vm.usb_stick(&img);
    Ok(slower(assets, vm))
}

fn setup_iso_usb(assets: &Assets, dir: &Path) -> Result<Setup> {
    let stick = overlay_disk(assets, dir, "usb", Filesystem::Fat32, HOST_ISO)?;
    let iso = iso_with_repository(assets, dir, KIND)?;
    let mut vm = Vm::new(assets.accel);
    vm.cdrom_boot(&iso).usb_stick(&stick);
    let mut setup = slower(assets, vm);
    // isolinux loads the bzImage and the image slowly under TCG.
    setup.timeout += Duration::from_secs(60);
    Ok(setup)
}

/// [`OPTIONS`]: a boot repository on a virtio disk, the apkovl on a USB
/// stick that comes later (usb-storage settles for seconds under TCG).
fn setup_options(assets: &Assets, dir: &Path) -> Result<Setup> {
    let vda = disk(dir, "vda", Filesystem::Ext4, &[boot_repository()])?;
    let stick = overlay_disk(assets, dir, "usb", Filesystem::Fat32, HOST_OPTIONS)?;
    let mut vm = kernel_vm(assets, KIND, OPTIONS)?;
    vm.virtio_disk(&vda).usb_stick(&stick);
    Ok(slower(assets, vm))
}

/// What every boot of Alpine's script with our helper must show: the
/// script ran as `/init`, our binary found APKOVL (the script's `-a`
/// file) and the script loaded it, no recovery shell, and the new root
/// is the overlay's (report-init as PID 1 reports HOST).
fn shell_booted(
    outcome: &Outcome,
    report: Option<&Report>,
    apkovl: &str,
    host: &str,
    more: impl FnOnce(&mut Vec<String>, &str, &Report),
) -> Vec<String> {
    let log = outcome.log.as_str();
    let mut failures = Vec::new();
    if log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    if !log.contains(ALPINE_BANNER) {
        failures.push(format!(
            "no {ALPINE_BANNER:?}: Alpine's initramfs-init did not run as /init"
        ));
    }
    if log.contains(OUR_BANNER) {
        failures.push(format!(
            "{OUR_BANNER:?} on the console: our init ran as /init"
        ));
    }
    if log.contains(RECOVERY) || log.contains("Mounting boot media: failed.") {
        failures.push("Alpine's script failed a step and fell back to its recovery shell".into());
    }
    if !media_ok(log) {
        failures.push("no `Mounting boot media: ok.` on the console".to_string());
    }
    let found = format!("alpinit: found apkovl {apkovl}");
    if !log.contains(&found) {
        failures.push(format!(
            "no {found:?} on the console: our binary did not run as nlplug-findfs"
        ));
    }
    let loaded = format!("Loading user settings from {apkovl}: ok.");
    if !log.contains(&loaded) {
        failures.push(format!("no {loaded:?}: the script did not load the apkovl"));
    }
    let Some(report) = report else {
        failures.push(format!(
            "no report from the new root's init ({} after {:.1}s)",
            if outcome.timed_out {
                "timed out"
            } else {
                "stopped"
            },
            outcome.elapsed.as_secs_f64()
        ));
        return failures;
    };
    if report.pid() != Some(1) {
        failures.push(format!(
            "report-init pid is {:?}, want 1",
            report.get("pid")
        ));
    }
    want_hostname(&mut failures, report, host);
    more(&mut failures, log, report);
    failures
}

/// LINE (a kernel-log line of our helper) is on the console.
fn want_line(failures: &mut Vec<String>, log: &str, line: &str) {
    if !log.contains(line) {
        failures.push(format!("no {line:?} on the console"));
    }
}

fn check_virtio_repo(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let apkovl = "/media/vda1/host.apkovl.tar.gz";
    shell_booted(outcome, report, apkovl, HOST_VIRTIO_REPO, |f, log, r| {
        want_line(f, log, "alpinit: found boot repository /media/vda1/apks");
        want_media(f, r, "/dev/vda1", &["/media/vda1"], "ext4");
    })
}

fn check_virtio(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let apkovl = "/media/vda1/host.apkovl.tar.gz";
    shell_booted(outcome, report, apkovl, HOST_VIRTIO, |f, log, r| {
        if log.contains("alpinit: found boot repository") {
            f.push("a boot repository was reported on a disk that has none".to_string());
        }
        want_media(f, r, "/dev/vda1", &["/media/vda1"], "ext4");
    })
}

/// The stick holds a boot repository, so the script relocates it by its
/// fstab's `/dev/usbdisk` line: `/media/usb` needs the `/dev/usbdisk`
/// link our helper makes where mdev's script made it.
fn check_usb(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let apkovl = "/media/sda1/host.apkovl.tar.gz";
    shell_booted(outcome, report, apkovl, HOST_USB, |f, log, r| {
        want_line(f, log, "alpinit: found boot repository /media/sda1/apks");
        want_mount(f, r, "/dev/sda1", "/media/usb", "vfat");
    })
}

/// The CD's repository and the stick's apkovl: both relocated by the
/// fstab, through our `/dev/cdrom` and `/dev/usbdisk` links.
fn check_iso_usb(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let apkovl = "/media/sda1/host.apkovl.tar.gz";
    shell_booted(outcome, report, apkovl, HOST_ISO, |f, log, r| {
        want_line(f, log, "alpinit: found boot repository /media/sr0/apks");
        want_mount(f, r, "/dev/sr0", "/media/cdrom", "iso9660");
        want_mount(f, r, "/dev/sda1", "/media/usb", "vfat");
    })
}

/// The script called our helper with `-d -t -U` (its `set -x` trace),
/// the helper's `-d` lines reached the console on stderr as the C
/// helper's do, and it waited for the stick after the repository.
fn check_options(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let apkovl = "/media/sda1/host.apkovl.tar.gz";
    shell_booted(outcome, report, apkovl, HOST_OPTIONS, |f, log, r| {
        want_line(f, log, TRACED_CALL);
        if !log
            .lines()
            .any(|l| l.starts_with("nlplug-findfs: uevent: action="))
        {
            f.push("no `nlplug-findfs: uevent: action=...` line: -d gave no debug output".into());
        }
        want_line(f, log, "alpinit: found boot repository /media/vda1/apks");
        want_mount(f, r, "/dev/vda1", "/media/vda1", "ext4");
        want_mount(f, r, "/dev/sda1", "/media/usb", "vfat");
    })
}

/// SOURCE mounted at TARGET with FSTYPE in the new root. Unlike
/// [`want_media`] the options are not checked: the script remounts a
/// relocated medium with its fstab's options (mkinitfs' fstab gives
/// `/media/usb` only `noauto`).
fn want_mount(
    failures: &mut Vec<String>,
    report: &Report,
    source: &str,
    target: &str,
    fstype: &str,
) {
    let mounts = report.mounts();
    match mounts.iter().find(|m| m.target == target) {
        Some(m) if m.source == source && m.fstype == fstype => {}
        Some(m) => failures.push(format!(
            "{target} is {} ({}), want {source} ({fstype})",
            m.source, m.fstype
        )),
        None => failures.push(format!(
            "{source} is not mounted at {target} in the new root"
        )),
    }
}

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "shell-init-virtio-repo",
            about: "Alpine's shell init, our binary as nlplug-findfs: virtio ext4 disk with the apkovl and a boot repository",
            image: KIND,
            setup: setup_virtio_repo,
            check: check_virtio_repo,
        },
        Scenario {
            name: "shell-init-virtio",
            about: "Alpine's shell init, our binary as nlplug-findfs: virtio ext4 disk with the apkovl only",
            image: KIND,
            setup: setup_virtio,
            check: check_virtio,
        },
        Scenario {
            name: "shell-init-usb",
            about: "Alpine's shell init, our binary as nlplug-findfs: USB stick on xhci (apkovl, boot repository), relocated to /media/usb",
            image: KIND,
            setup: setup_usb,
            check: check_usb,
        },
        Scenario {
            name: "shell-init-iso-usb",
            about: "Alpine's shell init, our binary as nlplug-findfs: ISO with a boot repository, apkovl on a USB stick",
            image: KIND,
            setup: setup_iso_usb,
            check: check_iso_usb,
        },
        Scenario {
            name: "shell-init-options",
            about: "Alpine's shell init, our binary as nlplug-findfs: debug_init usbdelay=5 uevent_buf_size= (-d -t -U), repository on virtio, apkovl on a USB stick",
            image: KIND,
            setup: setup_options,
            check: check_options,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The console of a passing `shell-init-virtio-repo` boot (the
    /// report's `/sys`, `/proc` and `/media` listings cut).
    const PASSED: &str = include_str!("shell_init/virtio-repo.log");

    fn outcome(log: &str) -> Outcome {
        Outcome {
            log: log.to_string(),
            log_path: PathBuf::from("serial.log"),
            status: None,
            timed_out: false,
            stopped: false,
            elapsed: Duration::from_secs(10),
        }
    }

    fn judge(log: &str) -> Vec<String> {
        let outcome = outcome(log);
        let report = Report::parse(log);
        check_virtio_repo(&outcome, report.as_ref())
    }

    fn has(failures: &[String], text: &str) -> bool {
        failures.iter().any(|f| f.contains(text))
    }

    #[test]
    fn a_boot_through_alpines_script_with_our_helper_passes() {
        assert_eq!(judge(PASSED), Vec::<String>::new());
    }

    /// The C helper (or any other) writes no `alpinit:` line: the same
    /// boot without them is not ours.
    #[test]
    fn a_boot_without_our_helpers_lines_fails() {
        let log: String = PASSED
            .lines()
            .filter(|l| !l.contains("alpinit:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let failures = judge(&log);
        assert!(
            has(&failures, "our binary did not run as nlplug-findfs"),
            "{failures:?}"
        );
    }

    #[test]
    fn a_boot_with_our_init_as_init_fails() {
        let log = PASSED.replace("Alpine Init 3.13.0", "Alpine Init alpinit 0.1.0");
        let failures = judge(&log);
        assert!(has(&failures, "did not run as /init"), "{failures:?}");
        assert!(has(&failures, "our init ran as /init"), "{failures:?}");
    }

    /// With `panic=` Alpine's `recovery_shell` exits and the kernel
    /// panics; without it the shell announces itself. Both fail.
    #[test]
    fn alpines_recovery_shell_fails_the_boot() {
        let cut = PASSED
            .find("Mounting boot media: ok.")
            .expect("the fixture mounts the boot media");
        let failed = format!(
            "{}Mounting boot media: failed. \n{RECOVERY}\n/ # ",
            &PASSED[..cut]
        );
        let failures = judge(&failed);
        assert!(has(&failures, "recovery shell"), "{failures:?}");
        assert!(has(&failures, "no report"), "{failures:?}");
        let panicked = format!(
            "{}Mounting boot media: failed. \nKernel panic - not syncing: Attempted to kill init!",
            &PASSED[..cut]
        );
        let failures = judge(&panicked);
        assert!(has(&failures, "kernel panic"), "{failures:?}");
    }

    #[test]
    fn another_hostname_or_a_missing_medium_fails() {
        let log = PASSED.replace("hostname=shell-virtio-repo", "hostname=localhost");
        assert!(has(&judge(&log), "hostname is"), "{:?}", judge(&log));
        let log = PASSED.replace(" /media/vda1 ext4", " /media/usb ext4");
        assert!(
            has(&judge(&log), "/dev/vda1 is not mounted"),
            "{:?}",
            judge(&log)
        );
    }

    #[test]
    fn a_relocated_mount_is_checked_by_target_source_and_type() {
        let report = Report::parse(
            "ALPINIT-REPORT-BEGIN\npid=1\nmount=/dev/sda1 /media/usb vfat rw,relatime 0 0\nALPINIT-REPORT-END\n",
        )
        .expect("report");
        let mut failures = Vec::new();
        want_mount(&mut failures, &report, "/dev/sda1", "/media/usb", "vfat");
        assert!(failures.is_empty(), "{failures:?}");
        want_mount(&mut failures, &report, "/dev/sdb1", "/media/usb", "vfat");
        want_mount(
            &mut failures,
            &report,
            "/dev/sr0",
            "/media/cdrom",
            "iso9660",
        );
        assert_eq!(failures.len(), 2, "{failures:?}");
    }
}
