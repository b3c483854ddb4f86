//! Every x86_64 scenario, in the order the suite runs them: name, what it
//! shows, the image it boots, and its setup and check.

use super::*;

pub fn all() -> Vec<Scenario> {
    vec![
        super::boot_media::virtio_ext4(),
        Scenario {
            name: "explain",
            about: "the booted guest runs `alpinit explain`: options, boot medium, chosen apkovl, exit status 0",
            image: ImageKind::Standard,
            setup: setup_explain,
            check: check_explain,
        },
        super::boot_media::usb_fat32(),
        Scenario {
            name: "iso-usb",
            about: "isolinux ISO with a boot repository plus a USB stick with the apkovl",
            image: ImageKind::Standard,
            setup: setup_iso_usb,
            check: check_iso_usb,
        },
        Scenario {
            name: "serial-console",
            about: "console=ttyS0: the new root's inittab gets Alpine's getty line, securetty gets ttyS0",
            image: ImageKind::Standard,
            setup: setup_serial_console,
            check: check_serial_console,
        },
        Scenario {
            name: "precedence",
            about: "two disks with apkovls; the one beside a boot repository wins",
            image: ImageKind::Standard,
            setup: setup_precedence,
            check: check_precedence,
        },
        Scenario {
            name: "btrfs-xfs",
            about: "apkovl on a btrfs disk, boot repository on an xfs disk: both mounted (Alpine bug #11589)",
            image: ImageKind::Standard,
            setup: setup_btrfs_xfs,
            check: check_btrfs_xfs,
        },
        Scenario {
            name: "usr-merged",
            about: "bootstrap_usr_merged: bin/foo lands in /usr/bin, /bin is a symlink",
            image: ImageKind::Standard,
            setup: setup_usr_merged,
            check: check_usr_merged,
        },
        Scenario {
            name: "apkovl-dev-fstype-path",
            about: "apkovl=/dev/vda1:ext4:deep/dir/custom.apkovl.tar.gz",
            image: ImageKind::Standard,
            setup: setup_dev_fstype_path,
            check: check_dev_fstype_path,
        },
        Scenario {
            name: "no-media",
            about: "no disks: boot media fail, recovery shell, no panic",
            image: ImageKind::Standard,
            setup: setup_no_media,
            check: check_no_media,
        },
        Scenario {
            name: "no-media-panic",
            about: "no disks with panic=10: the init gives up and the kernel reboots",
            image: ImageKind::Standard,
            setup: setup_no_media_panic,
            check: check_no_media_panic,
        },
        Scenario {
            name: "root-label",
            about: "root=LABEL=ROOT: the installed root is mounted read-only, no media scan",
            image: ImageKind::Standard,
            setup: setup_root_label,
            check: check_root_label,
        },
        Scenario {
            name: "btrfs-two-disks",
            about: "root=UUID= of a btrfs over two virtio disks (RAID0 data): both members registered, mounted read-only",
            image: ImageKind::Standard,
            setup: setup_btrfs_two_disks,
            check: check_btrfs_two_disks,
        },
        Scenario {
            name: "lvm-root",
            about: "root=/dev/vg0/lv_root: lvm vgchange from the image, /dev/VG/LV linked, the LV mounted read-only",
            image: ImageKind::Assemble,
            setup: setup_lvm_root,
            check: check_lvm_root,
        },
        Scenario {
            name: "raid1-root",
            about: "root=LABEL= on a RAID1 over two virtio disks: mdadm --incremental per member, the array complete, mounted read-only",
            image: ImageKind::Assemble,
            setup: setup_raid1_root,
            check: check_raid1_root,
        },
        Scenario {
            name: "raid1-degraded",
            about: "the RAID1 root with one member missing: started degraded when the wait for the root ends, then mounted",
            image: ImageKind::Assemble,
            setup: setup_raid1_degraded,
            check: check_raid1_degraded,
        },
        Scenario {
            name: "fake-apk",
            about: "the recording /sbin/apk sees Alpine's flags and the overlay list",
            image: ImageKind::FakeApk,
            setup: setup_fake_apk,
            check: check_fake_apk,
        },
        Scenario {
            name: "encrypted-usb",
            about: "aes-256-cbc apkovl on a USB stick: a wrong, then the right password on the console",
            image: ImageKind::Standard,
            setup: setup_encrypted_usb,
            check: check_encrypted_usb,
        },
        Scenario {
            name: "hostile-overlay",
            about: "`..` member, symlink escape and device node: rejected whole, exit boots without it",
            image: ImageKind::FakeApkInit,
            setup: setup_hostile_overlay,
            check: check_hostile_overlay,
        },
        Scenario {
            name: "hostile-overlay-panic",
            about: "the hostile overlay with panic=: no shell, the init gives up and the kernel panics",
            image: ImageKind::Standard,
            setup: setup_hostile_panic,
            check: check_hostile_panic,
        },
        Scenario {
            name: "hostile-symlink",
            about: "symlink `evil -> /` then `evil/etc/passwd`: rejected whole, exit boots without it",
            image: ImageKind::FakeApkInit,
            setup: setup_hostile_symlink,
            check: check_hostile_symlink,
        },
        Scenario {
            name: "device-nodes",
            about: "an overlay with a char device and a FIFO: both skipped with a warning, the rest applied",
            image: ImageKind::Standard,
            setup: setup_device_nodes,
            check: check_device_nodes,
        },
        Scenario {
            name: "truncated-overlay",
            about: "the apkovl cut in half: rejected as truncated, nothing applied",
            image: ImageKind::FakeApkInit,
            setup: setup_truncated,
            check: check_truncated,
        },
        Scenario {
            name: "gzip-bomb",
            about: "rootflags=size=16M and an overlay inflating to 200 MiB: rejected by the size limit",
            image: ImageKind::FakeApkInit,
            setup: setup_gzip_bomb,
            check: check_gzip_bomb,
        },
        Scenario {
            name: "enospc-inodes",
            about: "rootflags=nr_inodes=64 and a 120-file overlay: ENOSPC names the member, nothing applied",
            image: ImageKind::FakeApkInit,
            setup: setup_enospc_inodes,
            check: check_enospc_inodes,
        },
        Scenario {
            name: "pxe-mac",
            about: "pxelinux over QEMU's TFTP, ip=dhcp, apkovl by {MAC} over HTTP, BOOTIF",
            image: ImageKind::Standard,
            setup: setup_pxe_mac,
            check: check_pxe_mac,
        },
        Scenario {
            name: "uuid-token",
            about: "-uuid and apkovl=http://.../{UUID}.apkovl.tar.gz?token=x",
            image: ImageKind::Standard,
            setup: setup_uuid_token,
            check: check_uuid_token,
        },
        Scenario {
            name: "https-ok",
            about: "apkovl over HTTPS, verified against the test CA in the image",
            image: ImageKind::Https,
            setup: setup_https_ok,
            check: check_https_ok,
        },
        Scenario {
            name: "https-wrong-ca",
            about: "HTTPS with a certificate from an untrusted CA fails closed; the local overlay boots",
            image: ImageKind::Https,
            setup: setup_https_wrong_ca,
            check: check_https_wrong_ca,
        },
        Scenario {
            name: "static-ip",
            about: "static ip= without DHCP, apkovl over HTTP",
            image: ImageKind::Standard,
            setup: setup_static_ip,
            check: check_static_ip,
        },
        Scenario {
            name: "no-dhcp",
            about: "no DHCP server: bounded failure, no panic, the local overlay boots",
            image: ImageKind::Standard,
            setup: setup_no_dhcp,
            check: check_no_dhcp,
        },
        Scenario {
            name: "mactab",
            about: "/etc/mactab renames the second NIC to lan; ip=:::::lan:dhcp uses it",
            image: ImageKind::Mactab,
            setup: setup_mactab,
            check: check_mactab,
        },
        Scenario {
            name: "bootif-second-nic",
            about: "two NICs, BOOTIF picks the second; its MAC names the apkovl",
            image: ImageKind::Standard,
            setup: setup_bootif_second_nic,
            check: check_bootif_second_nic,
        },
        Scenario {
            name: "wait-ide-cd",
            about: "apkovl on a virtio disk, boot repository only on a PIIX IDE CD: both used",
            image: ImageKind::Standard,
            setup: setup_wait_ide_cd,
            check: check_wait_cd,
        },
        Scenario {
            name: "wait-ahci-cd",
            about: "apkovl on a virtio disk, boot repository only on a q35 AHCI CD: both used",
            image: ImageKind::Standard,
            setup: setup_wait_ahci_cd,
            check: check_wait_cd,
        },
        Scenario {
            name: "wait-nvme",
            about: "apkovl on a virtio disk, boot repository only on an NVMe disk: both used",
            image: ImageKind::Standard,
            setup: setup_wait_nvme,
            check: check_wait_nvme,
        },
        Scenario {
            name: "usbdelay-late-stick",
            about: "usbdelay=8, repository on a virtio disk, the apkovl stick plugged in 3 s later: used",
            image: ImageKind::Standard,
            setup: setup_usbdelay_late_stick,
            check: check_usbdelay_late_stick,
        },
        Scenario {
            name: "unplug-during-unpack",
            about: "the overlay's stick removed while it is read: I/O error named, nothing applied",
            image: ImageKind::FakeApkInit,
            setup: setup_unplug_during_unpack,
            check: check_unplug_during_unpack,
        },
    ]
    .into_iter()
    .chain(net_faults::scenarios())
    .chain(real_apk::scenarios())
    .chain(alpine_mkinitfs::scenarios())
    .chain(root_mode::scenarios())
    .chain(nbd::scenarios())
    .chain(aoe::scenarios())
    .chain(wireguard::scenarios())
    .chain(luks::scenarios())
    .chain(luks_roots::scenarios())
    .chain(rollback::scenarios())
    .chain(shell_init::scenarios())
    .chain(nlplug_matrix::scenarios())
    .collect()
}
