//! What a module is for, read from where it sits in the module tree
//! (its path in `modules.dep`), so that the boot can load what leads to
//! boot media first and leave what cannot to the new root.
//!
//! The kernel's source layout is the classification: a module under
//! `kernel/drivers/ata/` drives a disk controller wherever it came from,
//! one under `kernel/sound/` never finds a boot medium. Paths this table
//! does not know (out-of-tree `updates/`, `extra/`) are [`Kind::Other`]:
//! loaded, never deferred.

/// What a module drives, as far as finding boot media is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Storage controllers and buses, block devices, file systems and
    /// the library and crypto code they use: on the way to boot media.
    Boot,
    /// Network drivers: needed only when the boot uses the network.
    Network,
    /// Sound cards.
    Sound,
    /// GPUs, framebuffers, backlights, cameras and TV cards.
    Graphics,
    /// Mice, joysticks, touchscreens, event and LED handlers. Keyboards
    /// (`input/keyboard`, `input/serio`, every HID driver) are
    /// [`Kind::Other`]: a passphrase or the recovery shell may need one.
    Pointer,
    /// Sensors, I2C/SMBus controllers, watchdogs, memory error reporting,
    /// thermal zones, LEDs.
    Platform,
    /// CPU feature modules (faster crypto and checksums, frequency
    /// scaling), matched by a `cpu:` modalias.
    CpuFeature,
    /// Anything else: loaded as it comes, after [`Kind::Boot`].
    Other,
}

impl Kind {
    /// Whether a boot that does not use the network can leave this kind
    /// to the new root (its mdev or udev loads it from the modloop).
    /// Graphics is not: an image carries GPU drivers only when it was asked
    /// to (mkinitfs's `kms` feature), so that the passphrase prompt and the
    /// splash show on the screen before the root is unlocked.
    pub fn deferrable(self) -> bool {
        !matches!(self, Kind::Boot | Kind::Graphics | Kind::Other)
    }

    /// The word the boot log uses.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Boot => "boot media",
            Kind::Network => "network",
            Kind::Sound => "sound",
            Kind::Graphics => "graphics",
            Kind::Pointer => "pointer and event input",
            Kind::Platform => "sensors and platform",
            Kind::CpuFeature => "CPU feature",
            Kind::Other => "other",
        }
    }
}

/// Directories under `kernel/` and what their modules are. The longest
/// matching prefix wins, so `drivers/input/keyboard/` beats
/// `drivers/input/`.
const TREE: &[(&str, Kind)] = &[
    ("drivers/block/", Kind::Boot),
    ("drivers/ata/", Kind::Boot),
    ("drivers/scsi/", Kind::Boot),
    ("drivers/nvme/", Kind::Boot),
    ("drivers/mmc/", Kind::Boot),
    ("drivers/memstick/", Kind::Boot),
    ("drivers/usb/host/", Kind::Boot),
    ("drivers/usb/storage/", Kind::Boot),
    ("drivers/usb/core/", Kind::Boot),
    ("drivers/usb/common/", Kind::Boot),
    ("drivers/virtio/", Kind::Boot),
    ("drivers/cdrom/", Kind::Boot),
    ("drivers/md/", Kind::Boot),
    ("drivers/nvdimm/", Kind::Boot),
    ("drivers/mtd/", Kind::Boot),
    ("drivers/hv/", Kind::Boot),
    ("drivers/message/fusion/", Kind::Boot),
    ("drivers/pci/controller/", Kind::Boot),
    ("drivers/firewire/", Kind::Boot),
    ("drivers/s390/block/", Kind::Boot),
    ("fs/", Kind::Boot),
    ("crypto/", Kind::Boot),
    ("lib/", Kind::Boot),
    ("block/", Kind::Boot),
    ("drivers/net/", Kind::Network),
    ("drivers/bluetooth/", Kind::Network),
    ("drivers/infiniband/", Kind::Network),
    ("net/", Kind::Network),
    ("sound/", Kind::Sound),
    ("drivers/gpu/", Kind::Graphics),
    ("drivers/video/", Kind::Graphics),
    ("drivers/media/", Kind::Graphics),
    ("drivers/staging/media/", Kind::Graphics),
    ("drivers/input/", Kind::Pointer),
    ("drivers/input/keyboard/", Kind::Other),
    ("drivers/input/serio/", Kind::Other),
    ("drivers/hwmon/", Kind::Platform),
    ("drivers/i2c/", Kind::Platform),
    ("drivers/watchdog/", Kind::Platform),
    ("drivers/edac/", Kind::Platform),
    ("drivers/thermal/", Kind::Platform),
    ("drivers/leds/", Kind::Platform),
    ("drivers/iio/", Kind::Platform),
    ("drivers/powercap/", Kind::Platform),
    ("drivers/cpufreq/", Kind::CpuFeature),
];

/// The kind of the module at `path` (as written in `modules.dep`:
/// `kernel/drivers/ata/ahci.ko`, or an absolute path ending so).
pub fn kind_of_path(path: &str) -> Kind {
    let Some(rel) = in_tree(path) else {
        return Kind::Other;
    };
    TREE.iter()
        .filter(|(prefix, _)| rel.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or(Kind::Other, |(_, kind)| *kind)
}

/// Directories of drivers whose devices turn up long after the driver
/// binds: a USB host controller's ports are debounced and reset before a
/// stick is enumerated, and usb-storage then waits a second
/// (`delay_use`) before it scans the stick's disk. Their loads start
/// before any other, on their own ([`Loader`](crate::Loader)), so that
/// the rest loads during that wait instead of before it. On their own
/// because a module's `init_module` does not return before all the
/// kernel's asynchronous work is done (`do_init_module` calls
/// `async_synchronize_full`), so xhci_hcd loaded beside ata_piix waits
/// out libata's port probe.
const SLOW_TO_SETTLE: &[&str] = &["drivers/usb/host/", "drivers/usb/storage/"];

/// Whether the module at `path` (as in [`kind_of_path`]) drives a bus
/// whose devices take long to appear once it is bound (`SLOW_TO_SETTLE`).
pub fn slow_to_settle(path: &str) -> bool {
    in_tree(path).is_some_and(|rel| SLOW_TO_SETTLE.iter().any(|prefix| rel.starts_with(prefix)))
}

/// Directories whose modules register no device driver: file systems,
/// libraries, crypto algorithms (`arch/<arch>/crypto/` too, the CPU's),
/// I/O schedulers and integrity code (`block/`), and device-mapper and MD
/// (`drivers/md/`: targets and RAID personalities, a misc device and block
/// devices of their own, no driver bound to a bus device).
const DRIVERLESS: &[&str] = &["fs/", "lib/", "crypto/", "block/", "drivers/md/"];

/// The module parameter that skips `do_init_module`'s wait for all of the
/// kernel's asynchronous work (kernel/module/main.c; any module takes it
/// since Linux 4.2, `Documentation/admin-guide/kernel-parameters.txt`,
/// "module.async_probe").
pub const ASYNC_PROBE: &str = "async_probe=1";

/// Whether the module at `path` (as in [`kind_of_path`]) registers no
/// device driver, so that inserting it with [`ASYNC_PROBE`] changes
/// nothing but the wait: without it, the insertion of ext4, jbd2 or
/// crc32c does not return before every driver's asynchronous probe is
/// done (libata's probe of empty IDE ports: 50 ms of an idle CPU between
/// crc32c_intel and crc32c_generic in a traced `vs-alpine virtio-repo`
/// boot; 44 ms after dm_mod in a LUKS2 root boot, every loader worker
/// waiting), and the boot medium's file system waits for a disk controller
/// it does not use. Drivers keep the wait: their probe is what the boot
/// waits for.
pub fn drives_no_device(path: &str) -> bool {
    in_tree(path).is_some_and(|rel| {
        DRIVERLESS.iter().any(|prefix| rel.starts_with(prefix))
            || rel
                .strip_prefix("arch/")
                .and_then(|r| r.split_once('/'))
                .is_some_and(|(_, r)| r.starts_with("crypto/"))
    })
}

/// PATH below the kernel's own tree (`drivers/ata/ata_piix.ko` of
/// `kernel/drivers/ata/ata_piix.ko`); `None` out of tree.
fn in_tree(path: &str) -> Option<&str> {
    let at = path.find("kernel/")?;
    Some(&path[at + "kernel/".len()..])
}

/// The kinds a request by modalias may be left to the new root for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deferral {
    /// Defer [`Kind::deferrable`] kinds at all (off: load everything).
    pub enabled: bool,
    /// The boot uses the network: network drivers are on the way to the
    /// boot media, never deferred.
    pub network: bool,
}

impl Deferral {
    /// Whether a modalias whose modules are all of `kind` waits for the
    /// new root.
    pub fn defers(self, kind: Kind) -> bool {
        self.enabled && kind.deferrable() && !(self.network && kind == Kind::Network)
    }

    /// Whether `kind` is on the way to the boot media: loaded before
    /// everything else.
    pub fn critical(self, kind: Kind) -> bool {
        kind == Kind::Boot || (self.network && kind == Kind::Network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driverless_modules_by_path() {
        for (path, none) in [
            ("kernel/fs/ext4/ext4.ko", true),
            ("kernel/fs/jbd2/jbd2.ko.xz", true),
            ("kernel/lib/crc16.ko", true),
            ("kernel/crypto/xts.ko", true),
            ("kernel/arch/x86/crypto/aesni-intel.ko", true),
            ("kernel/arch/arm64/crypto/sha2-ce.ko", true),
            ("/lib/modules/6.1.0-57-amd64/kernel/fs/vfat/vfat.ko", true),
            ("kernel/drivers/ata/ata_piix.ko", false),
            ("kernel/drivers/block/virtio_blk.ko", false),
            ("kernel/drivers/md/dm-crypt.ko", true),
            ("kernel/drivers/md/dm-mod.ko", true),
            ("kernel/drivers/md/raid1.ko", true),
            ("kernel/block/t10-pi.ko", true),
            ("kernel/drivers/block/loop.ko", false),
            ("kernel/arch/x86/kvm/kvm.ko", false),
            ("kernel/drivers/crypto/ccp/ccp.ko", false),
            ("kernel/net/packet/af_packet.ko", false),
            ("extra/fs/zfs.ko", false),
            ("updates/lib/x.ko", false),
        ] {
            assert_eq!(drives_no_device(path), none, "{path}");
        }
    }

    #[test]
    fn module_kinds_by_path() {
        let cases = [
            ("kernel/drivers/ata/ata_piix.ko", Kind::Boot),
            ("kernel/drivers/block/virtio_blk.ko.xz", Kind::Boot),
            ("kernel/drivers/usb/host/xhci-pci.ko", Kind::Boot),
            ("kernel/drivers/usb/storage/uas.ko", Kind::Boot),
            ("kernel/drivers/mmc/host/sdhci-acpi.ko", Kind::Boot),
            ("kernel/fs/ext4/ext4.ko", Kind::Boot),
            ("kernel/crypto/xts.ko", Kind::Boot),
            ("kernel/drivers/md/dm-crypt.ko", Kind::Boot),
            (
                "kernel/drivers/net/ethernet/intel/e1000/e1000.ko",
                Kind::Network,
            ),
            ("kernel/drivers/net/virtio_net.ko", Kind::Network),
            ("kernel/sound/pci/hda/snd-hda-intel.ko", Kind::Sound),
            ("kernel/drivers/gpu/drm/tiny/bochs.ko", Kind::Graphics),
            ("kernel/drivers/input/mouse/psmouse.ko", Kind::Pointer),
            ("kernel/drivers/input/evdev.ko", Kind::Pointer),
            ("kernel/drivers/input/keyboard/atkbd.ko", Kind::Other),
            ("kernel/drivers/input/serio/i8042.ko", Kind::Other),
            ("kernel/drivers/hid/usbhid/usbhid.ko", Kind::Other),
            ("kernel/drivers/hid/hid-generic.ko", Kind::Other),
            ("kernel/drivers/i2c/busses/i2c-piix4.ko", Kind::Platform),
            ("kernel/drivers/watchdog/i6300esb.ko", Kind::Platform),
            ("kernel/drivers/char/hw_random/virtio-rng.ko", Kind::Other),
            ("kernel/drivers/misc/cardreader/rtsx_pci.ko", Kind::Other),
            ("/lib/modules/6.1/kernel/drivers/scsi/sd_mod.ko", Kind::Boot),
            ("updates/dkms/zfs.ko", Kind::Other),
        ];
        for (path, want) in cases {
            assert_eq!(kind_of_path(path), want, "{path}");
        }
    }

    #[test]
    fn usb_hosts_and_storage_settle_slowly() {
        let cases = [
            ("kernel/drivers/usb/host/xhci-pci.ko", true),
            ("kernel/drivers/usb/host/ehci-hcd.ko.xz", true),
            (
                "/lib/modules/6.1/kernel/drivers/usb/storage/usb-storage.ko",
                true,
            ),
            ("kernel/drivers/usb/storage/uas.ko", true),
            ("kernel/drivers/usb/core/usbcore.ko", false),
            ("kernel/drivers/ata/ata_piix.ko", false),
            ("kernel/drivers/block/virtio_blk.ko", false),
            ("updates/drivers/usb/host/out-of-tree.ko", false),
        ];
        for (path, want) in cases {
            assert_eq!(slow_to_settle(path), want, "{path}");
        }
    }

    #[test]
    fn deferral_table() {
        let off = Deferral::default();
        let local = Deferral {
            enabled: true,
            network: false,
        };
        let net = Deferral {
            enabled: true,
            network: true,
        };
        for kind in [Kind::Sound, Kind::Pointer, Kind::Platform, Kind::CpuFeature] {
            assert!(local.defers(kind) && net.defers(kind), "{kind:?}");
            assert!(!off.defers(kind), "{kind:?}");
        }
        assert!(local.defers(Kind::Network));
        assert!(!net.defers(Kind::Network), "a network boot needs its NIC");
        assert!(net.critical(Kind::Network) && !local.critical(Kind::Network));
        for kind in [Kind::Boot, Kind::Graphics, Kind::Other] {
            assert!(!local.defers(kind) && !net.defers(kind), "{kind:?}");
        }
        assert!(local.critical(Kind::Boot) && !local.critical(Kind::Other));
    }
}
