//! The image Alpine's own mkinitfs builds with alpinit as `-i` (README
//! "Installing on Alpine"; built by `xtask/src/mkinitfs.rs`): the diskless
//! boots from disk, USB stick and ISO + stick, root mode, and the recovery
//! shell of `single` with Alpine's busybox.

use std::path::Path;

use anyhow::Result;

use super::checks::*;
use super::*;

const KIND: ImageKind = ImageKind::Mkinitfs;

/// Alpine's image is larger (whole driver directories per feature) and
/// unpacks more slowly under TCG.
fn slower(assets: &Assets, vm: Vm) -> Setup {
    Setup {
        vm,
        stop: stops_on_panic(),
        timeout: assets.accel.boot_timeout() + Duration::from_secs(60),
    }
}

fn apkovl_disk(assets: &Assets, dir: &Path, host: &str, fs_kind: Filesystem) -> Result<PathBuf> {
    let ovl = overlay(assets, host, &[], Vec::new())?;
    let name = match fs_kind {
        Filesystem::Ext4 => "vda",
        Filesystem::Fat32 => "usb",
    };
    disk(
        dir,
        name,
        fs_kind,
        &[FileSpec::new("host.apkovl.tar.gz", 0o644, ovl)],
    )
}

pub(super) fn setup_virtio(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = apkovl_disk(assets, dir, HOST_VIRTIO, Filesystem::Ext4)?;
    let mut vm = kernel_vm(assets, KIND, "")?;
    vm.virtio_disk(&img);
    Ok(slower(assets, vm))
}

pub(super) fn setup_usb(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = apkovl_disk(assets, dir, HOST_USB, Filesystem::Fat32)?;
    let mut vm = kernel_vm(assets, KIND, "")?;
    vm.usb_stick(&img);
    Ok(slower(assets, vm))
}

pub(super) fn setup_iso_usb(assets: &Assets, dir: &Path) -> Result<Setup> {
    let stick = apkovl_disk(assets, dir, HOST_ISO, Filesystem::Fat32)?;
    let iso = iso_with_repository(assets, dir, KIND)?;
    let mut vm = Vm::new(assets.accel);
    vm.cdrom_boot(&iso).usb_stick(&stick);
    Ok(Setup {
        vm,
        stop: stops_on_panic(),
        // isolinux loads the bzImage and the larger image slowly under TCG.
        timeout: assets.accel.boot_timeout() + Duration::from_secs(120),
    })
}

pub(super) fn setup_root(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = super::root_mode::root_disk(assets, dir)?;
    let mut vm = kernel_vm(assets, KIND, "root=LABEL=ROOT")?;
    vm.virtio_disk(&img);
    Ok(slower(assets, vm))
}

pub(super) const HOST_SINGLE: &str = "alpinit-single";
/// Typed in the shell: `ls` by name (a link `busybox --install -s` made,
/// found on the PATH), then what the image has at Alpine's helper's path.
pub(super) const SHELL_COMMAND: &str =
    "ls /bin/ls /sbin/apk && echo APPLETS-OK; ls /sbin/nlplug-findfs || echo NO-NLPLUG-FINDFS\n";
const SINGLE: &str = "Entering single mode. Type 'exit' to continue booting.";

/// `single` with the suite's `panic=-1`: the shell anyway; the harness
/// types [`SHELL_COMMAND`], then `exit`, and the boot goes on.
pub(super) fn setup_single(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = apkovl_disk(assets, dir, HOST_SINGLE, Filesystem::Ext4)?;
    let mut vm = kernel_vm(assets, KIND, "single")?;
    vm.virtio_disk(&img)
        .type_after(SINGLE, "")
        .type_after(SHELL_PROMPT, SHELL_COMMAND)
        .type_after(SHELL_PROMPT, "exit\n");
    let mut setup = slower(assets, vm);
    setup.timeout += Duration::from_secs(60);
    Ok(setup)
}

/// A line of the console that is exactly `text` (not the echo of the
/// typed command, which holds it after `echo `).
fn has_line(log: &str, text: &str) -> bool {
    log.lines().any(|l| l.trim_end_matches('\r').trim() == text)
}

pub(super) fn check_single(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = Vec::new();
    if !outcome.log.contains(SINGLE) {
        failures.push(format!("no {SINGLE:?} on the console"));
    }
    if !has_line(&outcome.log, "APPLETS-OK") {
        failures.push(
            "no APPLETS-OK line: no shell, or `ls` by name or its /bin/ls link is missing"
                .to_string(),
        );
    }
    if !has_line(&outcome.log, "NO-NLPLUG-FINDFS") {
        failures.push(
            "no NO-NLPLUG-FINDFS line: no shell, or the image has a /sbin/nlplug-findfs the mini root has none of"
                .to_string(),
        );
    }
    let (more, report) = common(outcome, report);
    failures.extend(more);
    if failures.iter().any(|f| f.starts_with("no report")) {
        return failures;
    }
    want_hostname(&mut failures, &report, HOST_SINGLE);
    failures
}

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "alpine-mkinitfs-virtio",
            about: "Alpine's mkinitfs image (alpinit as -i): virtio ext4 disk with the apkovl",
            image: KIND,
            setup: setup_virtio,
            check: check_virtio_ext4,
        },
        Scenario {
            name: "alpine-mkinitfs-usb",
            about: "Alpine's mkinitfs image: USB stick, FAT32 partition with the apkovl",
            image: KIND,
            setup: setup_usb,
            check: check_usb_fat32,
        },
        Scenario {
            name: "alpine-mkinitfs-iso-usb",
            about: "Alpine's mkinitfs image on an isolinux ISO with a boot repository, apkovl on a USB stick",
            image: KIND,
            setup: setup_iso_usb,
            check: check_iso_usb,
        },
        Scenario {
            name: "alpine-mkinitfs-root",
            about: "Alpine's mkinitfs image: root=LABEL=ROOT mounted read-only, no media scan",
            image: KIND,
            setup: setup_root,
            check: check_root_label,
        },
        Scenario {
            name: "alpine-mkinitfs-single",
            about: "Alpine's mkinitfs image, single with panic=: Alpine's busybox shell runs applets by name",
            image: KIND,
            setup: setup_single,
            check: check_single,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typed_command_is_not_taken_for_its_output() {
        let echo = format!("~ # {}", SHELL_COMMAND.trim_end());
        assert!(!has_line(&echo, "APPLETS-OK"));
        assert!(!has_line(&echo, "NO-NLPLUG-FINDFS"));
        let log = format!("{echo}\r\n/bin/ls\r\n/sbin/apk\r\nAPPLETS-OK\r\nls: /sbin/nlplug-findfs: No such file or directory\r\nNO-NLPLUG-FINDFS\r\n~ # ");
        assert!(has_line(&log, "APPLETS-OK"));
        assert!(has_line(&log, "NO-NLPLUG-FINDFS"));
    }
}
