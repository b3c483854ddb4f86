//! Module feature sets in the spirit of mkinitfs `features.d/*.modules`.
//!
//! An entry is a module name or name glob (`-` and `_` are the same), or a
//! path glob or directory under `lib/modules/<release>/` when it contains a
//! `/`; globs are `alpinit_kmod::fnmatch` wildcards. Aliases are not entries.
//! A trailing `?` marks an entry that may be absent from a kernel (built in,
//! or not configured) without a warning. See `modules::ModuleIndex::closure`.

use anyhow::{bail, Result};

pub const FEATURES: &[(&str, &[&str])] = &[
    ("base", &["loop", "overlay", "af_packet?"]),
    (
        "virtio",
        &[
            "virtio_pci",
            "virtio_mmio?",
            "virtio_blk",
            "virtio_net",
            "virtio_scsi",
            "virtio_console",
            "virtio_rng?",
        ],
    ),
    (
        "ata",
        &["ata_piix", "ahci", "ata_generic", "pata_acpi?", "sd_mod"],
    ),
    (
        "scsi",
        &[
            "sd_mod",
            "sr_mod",
            "virtio_scsi",
            "vmw_pvscsi?",
            "mptspi?",
            "hv_storvsc?",
        ],
    ),
    (
        "usb",
        &[
            "usb-storage",
            "uas",
            "xhci-pci",
            "xhci-hcd",
            "ehci-pci",
            "ehci-hcd",
            "ohci-pci",
            "ohci-hcd",
            "uhci-hcd?",
            "usbhid?",
            "hid-generic?",
            "sd_mod",
        ],
    ),
    ("cdrom", &["sr_mod", "cdrom", "isofs"]),
    ("nvme", &["nvme", "nvme-core"]),
    ("mmc", &["mmc_block", "sdhci", "sdhci-pci", "sdhci-acpi?"]),
    ("ext4", &["ext4", "crc32c-intel?", "crc32c_generic"]),
    (
        "vfat",
        &[
            "vfat",
            "nls_cp437",
            "nls_ascii",
            "nls_iso8859-1",
            "nls_utf8",
        ],
    ),
    ("iso9660", &["isofs"]),
    ("btrfs", &["btrfs", "crc32c-intel?", "crc32c_generic"]),
    ("xfs", &["xfs", "crc32c-intel?", "crc32c_generic"]),
    ("exfat", &["exfat", "nls_utf8"]),
    ("squashfs", &["squashfs", "loop"]),
    // LUKS roots unlocked in process (crates/init/src/crypt.rs): dm-crypt and
    // the cipher templates the supported specifications need (aes itself is
    // built in), and the CPU's AES (AES-NI; on arm64 the crypto extensions, and
    // bit-sliced NEON for cores without them such as the Raspberry Pi 4's, the
    // two that arm64's `crypto-xts(aes)` alias names): a mapping keeps the
    // implementation it was made with, so without them the root would run on
    // the generic C AES after the boot too (mkinitfs' cryptsetup feature takes
    // all of kernel/arch/*/crypto). In the default image; the opt-in
    // `cryptsetup` feature below adds the program for what the init does not
    // open itself.
    (
        "dm-crypt",
        &[
            "dm-crypt",
            "aesni-intel?",
            "aes-ce-blk?",
            "aes-neon-bs?",
            "xts?",
            "ecb?",
            "cbc?",
            "essiv?",
            "sha512_generic?",
        ],
    ),
    ("network", &["af_packet?", "virtio_net", "e1000", "e1000e?"]),
    // mkinitfs features.d/{lvm,raid,cryptsetup,zfs}.modules; their programs
    // are in feature_files.rs.
    (
        "lvm",
        &[
            "dm-mod",
            "dm-snapshot?",
            "dm-mirror?",
            "dm-thin-pool?",
            "dm-cache?",
            "dm-raid?",
            "dm-writecache?",
        ],
    ),
    (
        "raid",
        &[
            "md-mod",
            "raid0?",
            "raid1?",
            "raid10?",
            "raid456?",
            "crc32c-intel?",
            "crc32c_generic",
        ],
    ),
    (
        "cryptsetup",
        &[
            "dm-crypt",
            "dm-integrity?",
            "aesni-intel?",
            "xts?",
            "essiv?",
            "cbc?",
            "sha256-ssse3?",
            "sha256_generic?",
        ],
    ),
    ("zfs", &["zfs?", "spl?"]),
    // mkinitfs features.d/aoe.modules: ATA over Ethernet (`aoe=`).
    ("aoe", &["aoe"]),
    // mkinitfs features.d/nbd.modules (`nbd=`); no nbd-client: the init
    // attaches the devices itself.
    ("nbd", &["nbd"]),
    // mkinitfs features.d/wireguard.modules (`wireguard=`); its program is
    // in feature_files.rs.
    ("wireguard", &["wireguard"]),
];

pub fn all_names() -> Vec<&'static str> {
    FEATURES.iter().map(|(name, _)| *name).collect()
}

/// The module entries of the named features, in feature order.
pub fn entries(names: &[String]) -> Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for name in names {
        let Some((_, list)) = FEATURES.iter().find(|(n, _)| n == name) else {
            bail!(
                "unknown feature {name:?}; known: {}",
                all_names().join(", ")
            );
        };
        out.extend_from_slice(list);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lists_non_empty() {
        let mut names = all_names();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total);
        assert!(FEATURES.iter().all(|(_, list)| !list.is_empty()));
    }

    #[test]
    fn unknown_features_are_rejected() {
        assert!(entries(&["nope".to_string()]).is_err());
        let usb = entries(&["usb".to_string()]).expect("usb");
        assert!(usb.contains(&"usb-storage"));
    }
}
