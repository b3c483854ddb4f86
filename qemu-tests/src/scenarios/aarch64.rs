//! The aarch64 scenarios: Debian's arm64 kernel on QEMU's `virt` board
//! (TCG, Cortex-A57), booting the aarch64 image into the aarch64
//! report-init. The virtio disk and the USB stick are the x86_64
//! scenarios' own setup and checks (`Vm` picks the machine from
//! `Assets::arch`); the SD card and the network boot are the ones the
//! Raspberry Pi and ARM servers need.

use super::*;

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "virtio-ext4",
        about: "virtio disk, ext4 partition with the apkovl at top level",
        image: ImageKind::Standard,
        setup: setup_virtio_ext4,
        check: check_virtio_ext4,
    }]
}
