//! Modules loaded before a device asks for them: what a medium or the
//! wanted device will need next, loaded while the boot waits on something
//! else ([`super::Discovery`]'s loop calls these).

use super::Discovery;
use alpinit_uevent::Uevent;

impl Discovery<'_> {
    /// A USB storage interface takes a second (usb-storage's delay_use) to
    /// show its disk, a CD drive its disc: load the disk driver and the
    /// file system such media usually carry meanwhile, while the CPU would
    /// otherwise idle, so that neither the disk's appearance nor the mount
    /// waits for them. The stick's disk is a SCSI disk: without this its
    /// `sd_mod` (with the T10 checksum modules it needs) is asked for only
    /// when the scan finds it, about 230 ms of loading under TCG
    /// (`README.md`, "Where the time goes").
    pub(super) fn preload_media_modules(&mut self, ev: &Uevent) {
        let (disk, fstype) = match ev.get("DRIVER") {
            Some("usb-storage" | "uas") => (Some("sd_mod"), "vfat"),
            Some("sr") => (None, "iso9660"),
            _ => return,
        };
        if self.preloaded.insert(fstype) {
            for m in disk
                .into_iter()
                .chain(alpinit_kmod::fs_modules(fstype).iter().copied())
            {
                self.loader.request(m);
            }
        }
    }

    /// A USB host controller is up (a USB device, its root hub, exists)
    /// and no host controller driver is loading any more: the stick's
    /// drivers load while the hubs debounce and reset their ports (0.34 s
    /// under TCG, the CPU idle for half of it), so that a stick is bound
    /// as soon as it is enumerated and usb-storage's `delay_use` second
    /// starts then. Asked for when the stick's interface showed up,
    /// usb-storage bound it 52-72 ms after its enumeration; loaded
    /// meanwhile, 30-37 ms (ISO + USB boots under TCG, `README.md`, "The
    /// critical path first"). Not at the root hub's uevent itself: that
    /// comes while the controller's probe still registers its second
    /// hub, and loading beside it delayed that hub by 37 ms. Alpine's
    /// media load `usb-storage` up front too (`modules=` in their boot
    /// configuration). `uas` as well: usb-storage leaves a UAS stick to
    /// it. Only modules the image has: this is a guess, not a need; and
    /// in root mode only while the wanted device is still to be found.
    /// Called on every turn of the discovery loop: the checks that need
    /// no lock come first, the loader's state last.
    pub(super) fn preload_usb_storage(&mut self) {
        let root_found = !self.opts.scan_media && !self.findings.wanted.is_empty();
        if !self.usb_device_seen
            || root_found
            || self.preloaded.contains("usb-storage")
            || self.loader.settling_drivers_pending()
        {
            return;
        }
        self.preloaded.insert("usb-storage");
        for m in USB_STORAGE {
            if self.loader.index().contains(m) {
                self.loader.request(m);
            }
        }
    }

    /// The wanted device was found (root mode, the crypt device): what
    /// the boot does with it next needs its modules (the file system, or
    /// dm-crypt and its ciphers). Queue them now, ahead of the storage
    /// drivers still loading, instead of after the wait for coldplug to
    /// settle: they load while that wait runs. Diskless mode loads the
    /// file system of each medium as it mounts it ([`Self::scan`]).
    pub(super) fn preload_for_wanted(&self, fstype: Option<&str>) {
        if self.opts.scan_media {
            return;
        }
        let modules = match fstype {
            Some("crypto_LUKS") => crate::crypt::MODULES.to_vec(),
            Some(t) => alpinit_probe::mount_fstype(t)
                .map(alpinit_kmod::fs_modules)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        for m in modules {
            self.loader.request(m);
        }
    }
}

/// The drivers of USB sticks ([`Discovery::preload_usb_storage`]).
const USB_STORAGE: [&str; 2] = ["usb-storage", "uas"];

/// A USB device, not one of its interfaces (`DEVTYPE=usb_device` on the
/// `usb` bus): a root hub, a hub, a stick.
pub(super) fn is_usb_device(ev: &Uevent) -> bool {
    ev.subsystem.as_deref() == Some("usb") && ev.get("DEVTYPE") == Some("usb_device")
}
