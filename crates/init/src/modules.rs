//! Module loading setup: the index of this kernel's modules, modprobe.d and
//! command-line configuration, and the explicit requests of `modules=`,
//! `rootfstype=` and `/etc/modules` (Alpine §3.4 step 12).

use crate::failure::chain;
use crate::layout::Layout;
use crate::log;
use alpinit_cmdline::Cmdline;
use alpinit_kmod::{Deferral, Insmod, Loader, ModprobeConfig, ModuleIndex};
use std::sync::Arc;

pub fn config(layout: &Layout, cmdline: &Cmdline) -> ModprobeConfig {
    let etc = layout.path("/etc/modprobe.d");
    let lib = layout.path("/lib/modprobe.d");
    let mut config =
        ModprobeConfig::load_dirs(&[etc.as_path(), lib.as_path()]).unwrap_or_else(|e| {
            log::warn(&format!("modprobe configuration: {}", chain(&e)));
            ModprobeConfig::default()
        });
    let blacklist = cmdline.blacklist();
    for b in &blacklist {
        config.add_blacklist(b);
    }
    if !blacklist.is_empty() {
        // Alpine writes the same file; later modprobe runs in the new root do not see it, but tools in the initramfs do.
        let text: String = blacklist
            .iter()
            .map(|b| format!("blacklist {b}\n"))
            .collect();
        let _ = std::fs::create_dir_all(&etc);
        let _ = std::fs::write(etc.join("boot-opt-blacklist.conf"), text);
    }
    let words: Vec<&str> = cmdline.other_words().iter().map(String::as_str).collect();
    config.add_cmdline(&words);
    config
}

/// Modules the new root needs but finding the boot media does not: loop
/// and squashfs, to mount the modloop (Alpine loads them up front).
/// Requested after discovery, waited for before switch_root.
pub fn request_after_discovery(loader: &Loader) {
    for m in ["loop", "squashfs"] {
        loader.request(m);
    }
}

/// The module loader over `insmod` (the platform's module insertion), with
/// the explicit requests of the command line and `/etc/modules` queued.
/// The modules phase: the loader over the platform's module insertion, with
/// the explicit requests queued, behind Alpine's progress line.
pub fn start(p: &crate::platform::Platform<'_>, layout: &Layout, cmdline: &Cmdline) -> Loader {
    let drivers = log::Progress::begin("Loading boot drivers");
    let loader = setup(layout, cmdline, p.insmod);
    drivers.ok();
    loader
}

pub fn setup(layout: &Layout, cmdline: &Cmdline, insmod: &Arc<dyn Insmod>) -> Loader {
    let etc_modules = std::fs::read_to_string(layout.path("/etc/modules"))
        .map(|t| alpinit_kmod::parse_etc_modules(&t))
        .unwrap_or_default();
    let mut config = config(layout, cmdline);
    let memdisk = crate::memdisk::configure(layout, cmdline, &mut config);
    for (name, args) in &etc_modules {
        if !args.is_empty() {
            config.add_options(name, args);
        }
    }
    if let Some(options) = cmdline.aoe().as_ref().and_then(crate::aoe::module_options) {
        config.add_options("aoe", &options);
    }
    if cmdline.nbd().is_some() {
        config.add_options("nbd", crate::nbd::MODULE_OPTIONS);
    }
    let config = Arc::new(config);
    let index = match layout.modules_dir().map(|d| ModuleIndex::load(&d)) {
        Some(Ok(i)) => i,
        Some(Err(e)) => {
            log::warn(&format!(
                "module index: {}; relying on built-in drivers",
                chain(&e)
            ));
            ModuleIndex::parse(std::path::Path::new("/lib/modules"), "", "", "", "")
        }
        None => {
            log::warn("cannot read the kernel release; relying on built-in drivers");
            ModuleIndex::parse(std::path::Path::new("/lib/modules"), "", "", "", "")
        }
    };
    let mut wanted = cmdline.modules();
    // The drivers an installed system or an image was told it boots with
    // (`rootfstype=` alone names no driver).
    let named = !wanted.is_empty() || !etc_modules.is_empty();
    let loader = Loader::new(Arc::new(index), config, Arc::clone(insmod))
        .with_deferral(deferral(cmdline))
        .with_named(named);
    if let Some(fs) = cmdline.rootfstype() {
        wanted.push(fs.to_owned());
    }
    for m in &wanted {
        loader.request(m);
    }
    for (name, _) in &etc_modules {
        loader.request(name);
    }
    if memdisk {
        for m in ["phram", "mtdblock"] {
            loader.request(m);
        }
    }
    loader
}

/// What coldplug leaves to the new root: every kind of module that cannot
/// lead to boot media (`alpinit_kmod::Kind::deferrable`: CPU features,
/// sound, pointers, sensors), and network drivers unless the
/// command line makes the boot use the network (`ip=`, an `apkovl=` or
/// `alpine_repo=` URL). Only requests by modalias are deferred: `modules=`,
/// `rootfstype=` and `/etc/modules` always load.
pub fn deferral(cmdline: &Cmdline) -> Deferral {
    Deferral {
        enabled: true,
        network: cmdline.uses_nics(),
    }
}

/// Where a module comes from when an image lacks it: the mkinitfs feature
/// whose `features.d/NAME.modules` globs cover it (mkinitfs 3.13; `None`
/// when no stock feature does), and the `cargo xtask initramfs --features`
/// name (`xtask/src/features.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub module: &'static str,
    pub mkinitfs: Option<&'static str>,
    pub xtask: Option<&'static str>,
}

const fn src(
    module: &'static str,
    mkinitfs: Option<&'static str>,
    xtask: Option<&'static str>,
) -> Source {
    Source {
        module,
        mkinitfs,
        xtask,
    }
}

/// The drivers and file systems a boot medium needs, with their features.
/// mkinitfs puts FAT and the code pages in `usb` (`kernel/fs/fat`,
/// `kernel/fs/nls`), isofs in `cdrom`, `sd_mod`/`sr_mod` in `scsi`
/// (`kernel/drivers/scsi/*`).
pub const SOURCES: &[Source] = &[
    src("virtio_blk", Some("virtio"), Some("virtio")),
    src("virtio_scsi", Some("virtio"), Some("virtio")),
    src("virtio_pci", Some("virtio"), Some("virtio")),
    src("virtio_net", Some("virtio"), Some("virtio")),
    src("nvme", Some("nvme"), Some("nvme")),
    src("ahci", Some("ata"), Some("ata")),
    src("ata_piix", Some("ata"), Some("ata")),
    src("sd_mod", Some("scsi"), Some("scsi")),
    src("sr_mod", Some("scsi"), Some("cdrom")),
    src("xhci_pci", Some("usb"), Some("usb")),
    src("ehci_pci", Some("usb"), Some("usb")),
    src("ohci_pci", Some("usb"), Some("usb")),
    src("uhci_hcd", Some("usb"), Some("usb")),
    src("usb_storage", Some("usb"), Some("usb")),
    src("uas", Some("usb"), Some("usb")),
    src("sdhci_pci", Some("mmc"), Some("mmc")),
    src("mmc_block", Some("mmc"), Some("mmc")),
    src("vfat", Some("usb"), Some("vfat")),
    src("fat", Some("usb"), Some("vfat")),
    src("nls_cp437", Some("usb"), Some("vfat")),
    src("nls_ascii", Some("usb"), Some("vfat")),
    src("isofs", Some("cdrom"), Some("iso9660")),
    src("ext4", Some("ext4"), Some("ext4")),
    src("btrfs", Some("btrfs"), Some("btrfs")),
    src("xfs", Some("xfs"), Some("xfs")),
    src("f2fs", Some("f2fs"), None),
    src("squashfs", Some("squashfs"), Some("squashfs")),
    src("nbd", Some("nbd"), Some("nbd")),
    src("exfat", None, Some("exfat")),
    src("ntfs3", None, None),
];

/// Storage drivers by the MODALIAS of the device they drive (fnmatch
/// patterns; PCI by class, USB mass storage by interface class, SCSI by
/// peripheral type): enough to name the module of a device that stays
/// without a driver when the image's own `modules.alias` cannot.
pub const DRIVERS: &[(&str, &str)] = &[
    ("virtio:d00000002v*", "virtio_blk"),
    ("virtio:d00000008v*", "virtio_scsi"),
    ("pci:v00001AF4d*", "virtio_pci"),
    ("pci:v*d*sv*sd*bc01sc08i02*", "nvme"),
    ("pci:v*d*sv*sd*bc01sc06i01*", "ahci"),
    ("pci:v00008086d*sv*sd*bc01sc01*", "ata_piix"),
    ("pci:v*d*sv*sd*bc0Csc03i30*", "xhci_pci"),
    ("pci:v*d*sv*sd*bc0Csc03i20*", "ehci_pci"),
    ("pci:v*d*sv*sd*bc0Csc03i10*", "ohci_pci"),
    ("pci:v*d*sv*sd*bc0Csc03i00*", "uhci_hcd"),
    ("usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*", "usb_storage"),
    ("usb:v*p*d*dc*dsc*dp*ic08isc06ip62in*", "uas"),
    ("scsi:t-0x00*", "sd_mod"),
    ("scsi:t-0x0e*", "sd_mod"),
    ("scsi:t-0x05*", "sr_mod"),
    ("pci:v*d*sv*sd*bc08sc05*", "sdhci_pci"),
    ("mmc:block", "mmc_block"),
];

/// The storage driver [`DRIVERS`] names for `modalias`.
pub fn driver_for(modalias: &str) -> Option<&'static str> {
    DRIVERS
        .iter()
        .find(|(pattern, _)| alpinit_kmod::fnmatch(pattern, modalias))
        .map(|(_, module)| *module)
}

/// `(mkinitfs feature usb; cargo xtask initramfs feature vfat)`: what
/// brings `module` into an image.
pub fn bring_with(module: &str) -> String {
    let name = alpinit_kmod::normalize(module);
    let found = SOURCES.iter().find(|s| s.module == name);
    let mkinitfs = match found.and_then(|s| s.mkinitfs) {
        Some(f) => format!("mkinitfs feature {f}"),
        None => "no stock mkinitfs feature: list its .ko in a features.d/*.modules file".to_owned(),
    };
    match found.and_then(|s| s.xtask) {
        Some(x) => format!("{mkinitfs}; cargo xtask initramfs feature {x}"),
        None => mkinitfs,
    }
}

/// `module M is not in this image (mkinitfs feature F; ...)`.
pub fn not_in_image(module: &str) -> String {
    format!(
        "module {module} is not in this image ({})",
        bring_with(module)
    )
}

/// A device that stays without a driver because the image lacks its module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingDriver {
    /// The device under `/sys/devices` (as the kernel names it).
    pub device: String,
    pub modalias: String,
    pub module: &'static str,
}

impl std::fmt::Display for MissingDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "device {} ({}) has no driver: {}",
            self.device,
            self.modalias,
            not_in_image(self.module)
        )
    }
}

/// Buses whose devices carry the storage chain.
const STORAGE_BUSES: &[&str] = &["pci", "virtio", "usb", "scsi", "mmc"];

/// Loads `modules` now, in order. One that fails is only logged (debug):
/// the callers (device-mapper, md, zfs) go on and report what then fails.
pub fn load_now_all(loader: &Loader, modules: &[&str]) {
    for m in modules {
        if let Err(e) = loader.load_now(m) {
            crate::log::debug(&format!("module {m}: {e}"));
        }
    }
}

/// A device with a MODALIAS and no driver bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbound {
    pub bus: &'static str,
    /// Its name under `/sys/bus/BUS/devices`.
    pub name: String,
    pub modalias: String,
}

/// The devices on `buses` of `sys` with a MODALIAS and no driver bound, in
/// bus order (the boot's report and `alpinit explain` both read them).
pub fn unbound_devices(sys: &std::path::Path, buses: &[&'static str]) -> Vec<Unbound> {
    let mut out = Vec::new();
    for &bus in buses {
        let Ok(entries) = std::fs::read_dir(sys.join("bus").join(bus).join("devices")) else {
            continue;
        };
        for e in entries.flatten() {
            let dir = e.path();
            if dir.join("driver").exists() {
                continue;
            }
            if let Some(modalias) = device_modalias(&dir) {
                out.push(Unbound {
                    bus,
                    name: e.file_name().to_string_lossy().into_owned(),
                    modalias,
                });
            }
        }
    }
    out
}

/// Devices on the storage buses of `sys` with no driver bound whose
/// [`DRIVERS`] module `index` neither has nor builds in, sorted.
pub fn missing_drivers(sys: &std::path::Path, index: &ModuleIndex) -> Vec<MissingDriver> {
    let mut out: Vec<MissingDriver> = unbound_devices(sys, STORAGE_BUSES)
        .into_iter()
        .filter_map(|u| {
            let module = driver_for(&u.modalias)?;
            (!index.contains(module) && !index.is_builtin(module)).then_some(MissingDriver {
                device: u.name,
                modalias: u.modalias,
                module,
            })
        })
        .collect();
    alpinit_sort::sort_by(&mut out, |a, b| a.device.cmp(&b.device));
    out
}

/// A device's MODALIAS: its `modalias` file, else the `MODALIAS=` line of
/// its `uevent` (what the boot's sysfs sweep reads).
pub fn device_modalias(dir: &std::path::Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("modalias")) {
        let text = text.trim();
        if !text.is_empty() {
            return Some(text.to_owned());
        }
    }
    let uevent = std::fs::read_to_string(dir.join("uevent")).ok()?;
    uevent
        .lines()
        .find_map(|l| l.strip_prefix("MODALIAS="))
        .map(str::to_owned)
}

/// Says once per device, on the console too, which module the image lacks
/// for storage that stayed without a driver (run when discovery stops).
pub fn report_missing_drivers(layout: &Layout, index: &ModuleIndex) {
    for m in missing_drivers(&layout.sys(), index) {
        // An error, so `quiet` (console loglevel 4) still shows it.
        log::error(&m.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::whole_boot::machine::{overlay, Bus, Fs, Machine, RELEASE};
    use std::path::Path;

    const XHCI: &str = "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30";

    fn index(dep: &str) -> ModuleIndex {
        ModuleIndex::parse(Path::new("/lib/modules/x"), dep, "", "", "")
    }

    #[test]
    fn storage_drivers_are_named_by_modalias() {
        assert_eq!(driver_for(XHCI), Some("xhci_pci"));
        assert_eq!(driver_for("virtio:d00000002v00001AF4"), Some("virtio_blk"));
        assert_eq!(driver_for("scsi:t-0x05"), Some("sr_mod"));
        assert_eq!(
            driver_for("usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"),
            Some("usb_storage")
        );
        assert_eq!(driver_for("input:b0019v0000p0001e0000-e0"), None);
    }

    #[test]
    fn every_driver_and_file_system_module_has_a_source() {
        for (_, module) in DRIVERS {
            assert!(SOURCES.iter().any(|s| s.module == *module), "{module}");
        }
        for fs in [
            "vfat", "iso9660", "ext4", "btrfs", "xfs", "squashfs", "exfat",
        ] {
            for m in alpinit_kmod::fs_modules(fs) {
                let m = alpinit_kmod::normalize(m);
                assert!(SOURCES.iter().any(|s| s.module == m), "{fs}: {m}");
            }
        }
    }

    #[test]
    fn the_message_names_the_mkinitfs_and_xtask_features() {
        assert_eq!(
            not_in_image("vfat"),
            "module vfat is not in this image (mkinitfs feature usb; cargo xtask initramfs feature vfat)"
        );
        assert!(not_in_image("exfat").contains("no stock mkinitfs feature"));
    }

    #[test]
    fn a_storage_device_without_driver_and_module_is_reported_once() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = tmp.path();
        let dev = sys.join("devices/pci0000:00/0000:00:04.0");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("modalias"), format!("{XHCI}\n")).unwrap();
        std::fs::create_dir_all(sys.join("bus/pci/devices")).unwrap();
        std::os::unix::fs::symlink(&dev, sys.join("bus/pci/devices/0000:00:04.0")).unwrap();
        let missing = missing_drivers(sys, &index(""));
        assert_eq!(
            missing,
            [MissingDriver {
                device: "0000:00:04.0".into(),
                modalias: XHCI.into(),
                module: "xhci_pci",
            }]
        );
        assert!(missing[0].to_string().contains("mkinitfs feature usb"));
        // The image has the module: loading it is the loader's business.
        let with = index("kernel/drivers/usb/host/xhci-pci.ko:\n");
        assert!(missing_drivers(sys, &with).is_empty());
        // A bound driver: nothing is missing.
        std::os::unix::fs::symlink(sys, dev.join("driver")).unwrap();
        assert!(missing_drivers(sys, &index("")).is_empty());
    }

    /// Issue 12 point 7: an image without vfat meeting a FAT boot partition.
    #[test]
    fn image_without_vfat_names_the_module_and_the_feature() {
        let m = Machine::new();
        let moddir = format!("/lib/modules/{RELEASE}");
        let dep = m.read(&format!("{moddir}/modules.dep"));
        let without: String = dep
            .lines()
            .filter(|l| !l.contains("/fat/"))
            .map(|l| format!("{l}\n"))
            .collect();
        m.write(&format!("{moddir}/modules.dep"), without);
        let ovl = overlay(&[("etc/hostname", b"stick\n")]);
        m.stick("sda1", "STICK", &[("stick.apkovl.tar.gz", &ovl)]);
        let boot = m.boot();
        boot.assert_kmsg(
            "vfat file systems cannot be mounted: module vfat is not in this image \
             (mkinitfs feature usb; cargo xtask initramfs feature vfat)",
        );
    }

    /// A file system built into the kernel needs no module: nothing is said.
    #[test]
    fn built_in_file_system_is_not_reported_missing() {
        let m = Machine::new();
        let moddir = format!("/lib/modules/{RELEASE}");
        m.write(
            &format!("{moddir}/modules.dep"),
            "kernel/fs/ext4/ext4.ko:\n",
        );
        m.write("/proc/filesystems", "nodev\tsysfs\n\tvfat\n");
        let ovl = overlay(&[("etc/hostname", b"stick\n")]);
        m.stick("sda1", "STICK", &[("stick.apkovl.tar.gz", &ovl)]);
        let boot = m.boot();
        assert!(!boot.kmsg.contains("module vfat is not in this image"));
    }

    #[test]
    fn boot_names_the_driver_a_storage_controller_lacks() {
        let m = Machine::new();
        m.modalias_device("pci", "/devices/pci0000:00/0000:00:04.0", XHCI);
        m.block("vda", Bus::Virtio, Fs::Blank, &[]);
        let boot = m.boot();
        boot.assert_kmsg(&format!(
            "device 0000:00:04.0 ({XHCI}) has no driver: module xhci_pci is not in this image \
             (mkinitfs feature usb; cargo xtask initramfs feature usb)"
        ));
    }
}
