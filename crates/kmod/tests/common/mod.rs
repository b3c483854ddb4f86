//! A fake `lib/modules/<release>` tree and a recording `Insmod` for the loader tests.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use alpinit_kmod::{Insmod, ModprobeConfig, ModuleIndex};

pub const RELEASE: &str = "6.1.0-test";

/// (path in modules.dep, dependencies). Compressed files exercise every decoder.
const MODULES: &[(&str, &[&str])] = &[
    (
        "kernel/fs/ext4/ext4.ko",
        &[
            "kernel/lib/crc16.ko.zst",
            "kernel/fs/mbcache.ko.xz",
            "kernel/fs/jbd2/jbd2.ko.gz",
        ],
    ),
    ("kernel/lib/crc16.ko.zst", &[]),
    ("kernel/fs/mbcache.ko.xz", &[]),
    ("kernel/fs/jbd2/jbd2.ko.gz", &[]),
    ("kernel/crypto/crc32c_generic.ko", &[]),
    ("kernel/arch/x86/crypto/crc32c-intel.ko", &[]),
    (
        "kernel/drivers/usb/storage/usb-storage.ko",
        &[
            "kernel/drivers/scsi/scsi_mod.ko",
            "kernel/drivers/usb/core/usbcore.ko",
            "kernel/drivers/usb/common/usb-common.ko",
        ],
    ),
    (
        "kernel/drivers/usb/storage/uas.ko",
        &[
            "kernel/drivers/usb/storage/usb-storage.ko",
            "kernel/drivers/scsi/scsi_mod.ko",
            "kernel/drivers/usb/core/usbcore.ko",
            "kernel/drivers/usb/common/usb-common.ko",
        ],
    ),
    ("kernel/drivers/scsi/scsi_mod.ko", &[]),
    (
        "kernel/drivers/usb/core/usbcore.ko",
        &["kernel/drivers/usb/common/usb-common.ko"],
    ),
    ("kernel/drivers/usb/common/usb-common.ko", &[]),
    (
        "kernel/drivers/block/virtio_blk.ko",
        &[
            "kernel/drivers/virtio/virtio_ring.ko",
            "kernel/drivers/virtio/virtio.ko",
        ],
    ),
    ("kernel/drivers/virtio/virtio_ring.ko", &[]),
    ("kernel/drivers/virtio/virtio.ko", &[]),
    ("kernel/fs/nls/nls_cp437.ko", &[]),
    ("kernel/fs/nls/nls_ascii.ko", &[]),
    ("kernel/fs/fat/vfat.ko", &["kernel/fs/fat/fat.ko"]),
    ("kernel/fs/fat/fat.ko", &[]),
    ("kernel/drivers/missing/gone.ko", &[]),
    ("kernel/drivers/ata/ata_piix.ko", &[]),
    ("kernel/drivers/net/ethernet/intel/e1000/e1000.ko", &[]),
    ("kernel/sound/pci/snd-ens1370.ko", &[]),
    ("kernel/drivers/gpu/drm/tiny/bochs.ko", &[]),
    ("kernel/drivers/input/mouse/psmouse.ko", &[]),
    ("kernel/drivers/input/evdev.ko", &[]),
    ("kernel/drivers/hid/hid-generic.ko", &[]),
    ("kernel/drivers/i2c/busses/i2c-piix4.ko", &[]),
    ("kernel/drivers/watchdog/i6300esb.ko", &[]),
    ("kernel/drivers/hwmon/coretemp.ko", &[]),
    (
        "kernel/arch/x86/crypto/aesni-intel.ko",
        &["kernel/crypto/crypto_simd.ko", "kernel/crypto/cryptd.ko"],
    ),
    ("kernel/crypto/crypto_simd.ko", &["kernel/crypto/cryptd.ko"]),
    ("kernel/crypto/cryptd.ko", &[]),
];

const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias fs-ext4 ext4
alias fs-vfat vfat
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip62in* uas
alias usb:v0BC2p2[0-2]*d*dc*dsc*dp*ic*isc*ip*in* usb_storage
alias virtio:d00000002v* virtio_blk
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip*in* usb-storage
alias pci:v00008086d00007010sv*sd*bc*sc*i* ata_piix
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias pci:v00001274d00005000sv*sd*bc*sc*i* snd_ens1370
alias pci:v00001234d00001111sv*sd*bc03sc00i00* bochs
alias serio:ty01pr*id*ex* psmouse
alias input:b*v*p*e*-e*k*r*a*m*l*s*f*w* evdev
alias hid:b*g0001v*p* hid_generic
alias pci:v00008086d00007113sv*sd*bc*sc*i* i2c_piix4
alias pci:v00008086d000025ABsv*sd*bc*sc*i* i6300esb
alias cpu:type:x86,ven*fam*mod*:feature:*0054* coretemp
alias cpu:type:x86,ven*fam*mod*:feature:*0099* aesni_intel
alias sound-mixed:* snd_ens1370
alias sound-mixed:* ata_piix
";

const SOFTDEP: &str =
    "# Soft dependencies extracted from modules themselves.\nsoftdep ext4 pre: crypto-crc32c\n";

const BUILTIN: &str = "kernel/fs/squashfs/squashfs.ko\nkernel/drivers/block/loop.ko\n";

pub const USB_STORAGE_MODALIAS: &str = "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00";
pub const VIRTIO_BLK_MODALIAS: &str = "virtio:d00000002v00001AF4";

/// The uncompressed image of a fake module: unique per name so tests can check which bytes
/// reached the kernel.
pub fn image_of(name: &str) -> Vec<u8> {
    format!("\x7fELF fake module {name} ")
        .repeat(40)
        .into_bytes()
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub moddir: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let moddir = dir.path().join("lib/modules").join(RELEASE);
        std::fs::create_dir_all(&moddir).unwrap();
        let mut dep = String::new();
        for (path, deps) in MODULES {
            dep.push_str(&format!("{path}: {}\n", deps.join(" ")));
            if path.contains("missing") {
                continue;
            }
            let name = alpinit_kmod::module_name_from_path(path).unwrap();
            write_module(&moddir.join(path), &image_of(&name));
        }
        std::fs::write(moddir.join("modules.dep"), dep).unwrap();
        std::fs::write(moddir.join("modules.alias"), ALIAS).unwrap();
        std::fs::write(moddir.join("modules.softdep"), SOFTDEP).unwrap();
        std::fs::write(moddir.join("modules.builtin"), BUILTIN).unwrap();
        Fixture { dir, moddir }
    }

    pub fn index(&self) -> ModuleIndex {
        ModuleIndex::load(&self.moddir).unwrap()
    }
}

fn write_module(path: &Path, image: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data = match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(image).unwrap();
            enc.finish().unwrap()
        }
        Some("xz") => {
            let mut out = Vec::new();
            lzma_rs::xz_compress(&mut &image[..], &mut out).unwrap();
            out
        }
        Some("zst") => {
            ruzstd::encoding::compress_to_vec(image, ruzstd::encoding::CompressionLevel::Fastest)
        }
        _ => image.to_vec(),
    };
    std::fs::write(path, data).unwrap();
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub params: String,
    pub image: Vec<u8>,
    /// Through `insmod_file` (a plain module the kernel would read itself) rather than
    /// `insmod` (an image decompressed by the loader).
    pub from_file: bool,
    /// Inside `refusing_requests`.
    pub refused: bool,
}

/// Records insmod calls; fails the modules it is told to; optionally holds every call until
/// released so concurrent requests pile up on a module being loaded.
#[derive(Default)]
pub struct Recorder {
    pub calls: Mutex<Vec<Call>>,
    fail: HashSet<String>,
    panic: HashSet<String>,
    gate: Option<(Mutex<bool>, Condvar)>,
    entered: Mutex<usize>,
    entered_cv: Condvar,
    /// Insertions in progress, and inside `refusing_requests` now.
    active: AtomicUsize,
    refusing: AtomicBool,
    /// How often an insertion ran beside one with requests refused.
    pub overlaps: AtomicUsize,
    /// How long each insertion takes, so that concurrent ones meet.
    hold: Option<std::time::Duration>,
}

impl Recorder {
    pub fn failing(names: &[&str]) -> Recorder {
        Recorder {
            fail: names.iter().map(|n| n.to_string()).collect(),
            ..Recorder::default()
        }
    }

    /// insmod of these modules panics (a bug inside a worker job).
    pub fn panicking(names: &[&str]) -> Recorder {
        Recorder {
            panic: names.iter().map(|n| n.to_string()).collect(),
            ..Recorder::default()
        }
    }

    /// Each insertion takes `hold`, so that concurrent ones meet.
    pub fn slow(hold: std::time::Duration) -> Recorder {
        Recorder {
            hold: Some(hold),
            ..Recorder::default()
        }
    }

    pub fn gated() -> Recorder {
        Recorder {
            gate: Some((Mutex::new(false), Condvar::new())),
            ..Recorder::default()
        }
    }

    pub fn open_gate(&self) {
        if let Some((open, cv)) = &self.gate {
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
    }

    /// Blocks until at least one insmod call has started.
    pub fn wait_entered(&self) {
        let mut entered = self.entered.lock().unwrap();
        while *entered == 0 {
            entered = self.entered_cv.wait(entered).unwrap();
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Insmod for Recorder {
    fn insmod(&self, name: &str, image: &[u8], params: &str) -> std::io::Result<()> {
        self.record(name, image, params, false)
    }

    fn insmod_file(&self, name: &str, file: &std::fs::File, params: &str) -> std::io::Result<()> {
        self.record(name, &alpinit_kmod::read_file_image(file)?, params, true)
    }

    fn refusing_requests(
        &self,
        insert: &mut dyn FnMut() -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        self.refusing.store(true, Ordering::SeqCst);
        let result = insert();
        self.refusing.store(false, Ordering::SeqCst);
        result
    }
}

impl Recorder {
    fn record(
        &self,
        name: &str,
        image: &[u8],
        params: &str,
        from_file: bool,
    ) -> std::io::Result<()> {
        *self.entered.lock().unwrap() += 1;
        self.entered_cv.notify_all();
        let refused = self.refusing.load(Ordering::SeqCst);
        if self.active.fetch_add(1, Ordering::SeqCst) > 0 && refused {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(hold) = self.hold {
            std::thread::sleep(hold);
        }
        if !refused && self.refusing.load(Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        self.active.fetch_sub(1, Ordering::SeqCst);
        if let Some((open, cv)) = &self.gate {
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
        }
        if self.panic.contains(name) {
            panic!("test panic in insmod of {name}");
        }
        self.calls.lock().unwrap().push(Call {
            name: name.to_owned(),
            params: params.to_owned(),
            image: image.to_vec(),
            from_file,
            refused,
        });
        if self.fail.contains(name) {
            return Err(std::io::Error::from_raw_os_error(libc::ENOEXEC));
        }
        Ok(())
    }
}

pub fn config() -> ModprobeConfig {
    ModprobeConfig::default()
}
