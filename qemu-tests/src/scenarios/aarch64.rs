//! The aarch64 scenarios: Debian's arm64 kernel on QEMU's `virt` board
//! (TCG, Cortex-A57), booting the aarch64 image into the aarch64
//! report-init. The virtio disk and the USB stick are the x86_64
//! scenarios' own setup and checks (`Vm` picks the machine from
//! `Assets::arch`); the SD card and the network boot are the ones the
//! Raspberry Pi and ARM servers need; `real-apk` is the x86_64 scenario
//! of that name with the aarch64 mini root (`real_apk.rs`).

use std::path::Path;

use anyhow::Result;

use super::boot_media::booted;
use super::checks::*;
use super::network::{serve, url, want_dhcp_mac_download, with_server, NET_INSPECT};
use super::*;
use crate::netboot::qemu_mac;

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "rpi-sd-card",
            about:
                "Raspberry Pi layout on an SD card (SDHCI, MBR, FAT32): boot repository and apkovl",
            image: ImageKind::Standard,
            setup: setup_rpi_sd_card,
            check: check_rpi_sd_card,
        },
        Scenario {
            name: "net-dhcp-mac",
            about: "ip=dhcp, apkovl=http://.../{MAC}.apkovl.tar.gz from the suite's file server",
            image: ImageKind::Standard,
            setup: setup_net_dhcp_mac,
            check: check_net_dhcp_mac,
        },
        super::boot_media::virtio_ext4(),
        super::boot_media::usb_fat32(),
        super::real_apk::aarch64_scenario(),
    ]
}

const HOST_RPI: &str = "alpinit-rpi";
/// What `lbu commit` leaves on a Raspberry Pi: `HOSTNAME.apkovl.tar.gz`.
const RPI_APKOVL: &str = "alpinit-rpi.apkovl.tar.gz";
/// Alpine's `cmdline.txt` for the Raspberry Pi, with the serial console.
const RPI_CMDLINE: &str = "modules=loop,squashfs,sd-mod,usb-storage";

/// The top of the FAT partition of Alpine's Raspberry Pi tarball
/// (`alpine-rpi-*-aarch64.tar.gz`): the firmware's files, the kernel and
/// initramfs under `boot/`, the boot repository `apks/` with its
/// `aarch64/` index, and the apkovl `lbu` committed beside them. Only the
/// paths matter here; the firmware files are stand-ins.
fn rpi_tree(apkovl: Vec<u8>) -> Vec<FileSpec> {
    let stub = |path: &str| FileSpec::new(path, 0o644, format!("stand-in for {path}\n"));
    vec![
        stub("bootcode.bin"),
        stub("start4.elf"),
        stub("fixup4.dat"),
        stub("bcm2711-rpi-4-b.dtb"),
        stub("overlays/README"),
        FileSpec::new(
            "config.txt",
            0o644,
            "[pi4]\nkernel=boot/vmlinuz-rpi\ninitramfs boot/initramfs-rpi\narm_64bit=1\n",
        ),
        FileSpec::new(
            "cmdline.txt",
            0o644,
            format!("{RPI_CMDLINE} console=tty1\n"),
        ),
        stub("boot/vmlinuz-rpi"),
        stub("boot/initramfs-rpi"),
        stub("boot/modloop-rpi"),
        stub("apks/aarch64/APKINDEX.tar.gz"),
        FileSpec::new("apks/.boot_repository", 0o644, ""),
        FileSpec::new(RPI_APKOVL, 0o644, apkovl),
    ]
}

fn setup_rpi_sd_card(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_RPI, &["/etc/apk/repositories"], Vec::new())?;
    // 64 MiB: QEMU's sd-card wants a power-of-two size.
    let card = disk(dir, "sdcard", Filesystem::Fat32, &rpi_tree(ovl))?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, RPI_CMDLINE)?;
    vm.sd_card(&card);
    Ok(reported(assets, vm))
}

fn check_rpi_sd_card(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_RPI);
        want_media(
            failures,
            report,
            "/dev/mmcblk0p1",
            &["/media/mmcblk0p1"],
            "vfat",
        );
        let apkovl = format!("/media/mmcblk0p1/{RPI_APKOVL}");
        if !outcome.log.contains(&apkovl) {
            failures.push(format!("{apkovl} is not named on the console"));
        }
        let repos = report.content("/etc/apk/repositories").unwrap_or_default();
        if !repos.lines().any(|l| l.trim() == "/media/mmcblk0p1/apks") {
            failures.push(format!(
                "the new root's /etc/apk/repositories lacks the card's boot repository \
                 /media/mmcblk0p1/apks: {repos:?}"
            ));
        }
    })
}

const HOST_NET: &str = "alpinit-arm-net";
const NET_MAC: u8 = 0x61;

fn setup_net_dhcp_mac(assets: &Assets, dir: &Path) -> Result<Setup> {
    let mac = qemu_mac(NET_MAC);
    let ovl = overlay(assets, HOST_NET, NET_INSPECT, Vec::new())?;
    let server = serve(dir, &[(&format!("{mac}.apkovl.tar.gz"), ovl)], None)?;
    let append = format!(
        "ip=dhcp apkovl={}",
        url("http", server.port(), "{MAC}.apkovl.tar.gz")
    );
    let mut vm = kernel_vm(assets, ImageKind::Standard, &append)?;
    vm.user_nic("n0", &mac);
    Ok(with_server(vm, server, assets.accel.boot_timeout()))
}

fn check_net_dhcp_mac(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_NET);
        want_dhcp_mac_download(failures, outcome, report, &qemu_mac(NET_MAC));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sd_card_is_laid_out_as_alpines_raspberry_pi_tarball() {
        let tree = rpi_tree(b"ovl".to_vec());
        let paths: Vec<&str> = tree.iter().map(|f| f.path.as_str()).collect();
        for want in [
            "apks/.boot_repository",
            "boot/vmlinuz-rpi",
            "boot/initramfs-rpi",
            "config.txt",
            "cmdline.txt",
            RPI_APKOVL,
        ] {
            assert!(paths.contains(&want), "{want} in {paths:?}");
        }
        // The apkovl is at the top, where the media scan looks for it.
        assert!(!RPI_APKOVL.contains('/'));
        assert!(RPI_APKOVL.ends_with(".apkovl.tar.gz"));
    }
}
