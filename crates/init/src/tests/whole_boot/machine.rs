//! The fake machine a whole boot runs on: a temp tree with `/proc`, `/sys`,
//! `/dev`, a module index and the initramfs files, plus the recording
//! platform ([`Fake`]). [`Machine::boot`] runs the real `boot::boot` on it.

use crate::layout::Layout;
use crate::platform::fake::{Fake, Step};
use alpinit_uevent::Uevent;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::record::Boot;

pub const RELEASE: &str = "6.1.0-test";

/// A medium's file that makes it a boot repository (`apks/.boot_repository`).
pub const BOOT_REPOSITORY: (&str, &[u8]) = ("apks/.boot_repository", b"");

/// Modules of the fake kernel: `path: deps` lines of modules.dep.
const MODULES_DEP: &str = "\
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/e1000.ko:
kernel/drivers/usb/storage/usb-storage.ko:
kernel/drivers/input/evbug.ko:
kernel/drivers/misc/dummy.ko:
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
kernel/fs/fat/fat.ko:
kernel/fs/nls/nls_cp437.ko:
kernel/fs/nls/nls_ascii.ko:
kernel/fs/ext4/ext4.ko:
kernel/fs/isofs/isofs.ko:
kernel/drivers/block/loop.ko:
kernel/fs/squashfs/squashfs.ko:
";

const MODULES_ALIAS: &str = "\
alias virtio:d00000002v* virtio_blk
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias input:b0019v0000p0001e0000* evbug
alias input:b0019v0000p0001e0000* dummy
";

/// Where a block device sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    Virtio,
    Usb,
    Cdrom,
    /// A virtual block device (`nbd`).
    Virtual,
}

/// A file system image the prober recognises.
#[derive(Debug, Clone)]
pub enum Fs {
    Ext4 {
        label: &'static str,
    },
    Vfat {
        label: &'static str,
    },
    Iso {
        label: &'static str,
    },
    /// No recognisable file system.
    Blank,
}

pub struct Machine {
    pub tmp: tempfile::TempDir,
    pub fake: Fake,
    pub layout: Layout,
    next_minor: std::cell::Cell<u32>,
}

impl Machine {
    /// An initramfs with busybox (the recovery shell), a module index, no
    /// apk, an empty command line and a new root that has `/sbin/init`.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let layout = Layout::new(tmp.path());
        let m = Self {
            tmp,
            fake: Fake::default(),
            layout,
            next_minor: std::cell::Cell::new(0),
        };
        m.fake.set_sys(&m.layout.sys());
        m.write("/proc/cmdline", "\n");
        m.write(
            "/proc/mounts",
            "rootfs / rootfs rw 0 0\nsysfs /sys sysfs rw,nosuid,nodev,noexec 0 0\n\
             devtmpfs /dev devtmpfs rw,nosuid 0 0\nproc /proc proc rw,nosuid,nodev,noexec 0 0\n",
        );
        m.write("/proc/sys/kernel/osrelease", format!("{RELEASE}\n"));
        let moddir = format!("/lib/modules/{RELEASE}");
        m.write(&format!("{moddir}/modules.dep"), MODULES_DEP);
        m.write(&format!("{moddir}/modules.alias"), MODULES_ALIAS);
        for line in MODULES_DEP.lines() {
            if let Some((path, _)) = line.split_once(':') {
                m.write(&format!("{moddir}/{path}"), "\x7fELF");
            }
        }
        for d in [
            "/sys/devices",
            "/sys/class/block",
            "/sys/bus",
            "/dev",
            "/media",
            "/tmp",
            "/etc",
        ] {
            m.mkdir(d);
        }
        m.exe("/bin/busybox");
        m.sysroot_init();
        m
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.layout.path(rel)
    }
    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.path(rel)).expect("mkdir");
    }
    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
    }
    pub fn exe(&self, rel: &str) {
        self.write(rel, "#!/bin/sh\n");
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }
    pub fn exists(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.path(rel)).is_ok()
    }
    /// Adds the module at PATH (under `kernel/`, with DEPS) to the machine's
    /// index, matched by ALIAS when there is one.
    pub fn add_module(&self, path: &str, deps: &[&str], alias: Option<&str>) {
        let moddir = format!("/lib/modules/{RELEASE}");
        let dep = self.read(&format!("{moddir}/modules.dep"));
        self.write(
            &format!("{moddir}/modules.dep"),
            format!("{dep}{path}: {}\n", deps.join(" ")),
        );
        self.write(&format!("{moddir}/{path}"), "\x7fELF");
        if let Some(alias) = alias {
            let name = alpinit_kmod::module_name_from_path(path).expect("module name");
            let aliases = self.read(&format!("{moddir}/modules.alias"));
            self.write(
                &format!("{moddir}/modules.alias"),
                format!("{aliases}alias {alias} {name}\n"),
            );
        }
    }
    /// A machine booting CMDLINE, with the module at PATH (no alias) in its
    /// index and a root to hand over to.
    pub fn with_module(cmdline: &str, path: &str) -> Machine {
        let m = Machine::new();
        m.cmdline(cmdline);
        m.add_module(path, &[], None);
        m.sysroot_init();
        m
    }
    pub fn cmdline(&self, text: &str) -> &Self {
        self.write("/proc/cmdline", format!("{text}\n"));
        self
    }
    /// `/sbin/init` in the new root (upstream's `fake_sysroot_init`).
    pub fn sysroot_init(&self) {
        self.exe("/sysroot/sbin/init");
    }
    /// apk in the initramfs: the boot then runs it.
    pub fn with_apk(&self) {
        self.exe("/sbin/apk");
    }

    /// A bus device with a MODALIAS, present at coldplug.
    pub fn modalias_device(&self, bus: &str, devpath: &str, modalias: &str) {
        self.write(
            &format!("/sys{devpath}/uevent"),
            format!("MODALIAS={modalias}\n"),
        );
        let name = devpath.rsplit('/').next().expect("name");
        let link = self.path(&format!("/sys/bus/{bus}/devices/{name}"));
        std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
        let _ = std::os::unix::fs::symlink(format!("../../..{devpath}"), link);
    }

    /// A block device (`vda`, `vda1`, `sda1`, `sr0`) with a file system,
    /// whose mount shows `files`. Present at coldplug unless `hotplug`
    /// scripts it later; returns its add event.
    pub fn block(&self, name: &str, bus: Bus, fs: Fs, files: &[(&str, &[u8])]) -> Uevent {
        self.block_devno(name, bus, fs, files, None)
    }

    /// [`Machine::block`] with a given device number. The nodes of this
    /// tree are regular files (rdev 0), so only a `0:0` device matches its
    /// node when the boot compares device numbers (fstab relocation).
    pub fn block_devno(
        &self,
        name: &str,
        bus: Bus,
        fs: Fs,
        files: &[(&str, &[u8])],
        devno: Option<(u32, u32)>,
    ) -> Uevent {
        let (disk, partn) = split_partition(name);
        let base = match bus {
            Bus::Virtio => "/devices/pci0000:00/0000:00:05.0/virtio2/block".to_owned(),
            Bus::Usb => {
                "/devices/pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0/host0/target0:0:0/0:0:0:0/block"
                    .to_owned()
            }
            Bus::Cdrom => {
                "/devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block".to_owned()
            }
            Bus::Virtual => "/devices/virtual/block".to_owned(),
        };
        let devpath = match partn {
            Some(_) => format!("{base}/{disk}/{name}"),
            None => format!("{base}/{name}"),
        };
        let (major, minor) = devno.unwrap_or_else(|| {
            let minor = self.next_minor.get();
            self.next_minor.set(minor + 1);
            let major = match bus {
                Bus::Cdrom => 11,
                Bus::Usb => 8,
                Bus::Virtio => 254,
                Bus::Virtual => 43,
            };
            (major, minor)
        });
        let mut uevent = format!("MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\n");
        match partn {
            Some(n) => uevent.push_str(&format!("DEVTYPE=partition\nPARTN={n}\n")),
            None => uevent.push_str("DEVTYPE=disk\n"),
        }
        self.write(&format!("/sys{devpath}/uevent"), &uevent);
        self.write(&format!("/sys{devpath}/size"), "2048\n");
        let _ = std::os::unix::fs::symlink(
            "../../../class/block",
            self.path(&format!("/sys{devpath}/subsystem")),
        );
        let _ = std::os::unix::fs::symlink(
            format!("../..{devpath}"),
            self.path(&format!("/sys/class/block/{name}")),
        );
        let node = self.path(&format!("/dev/{name}"));
        write_image(&node, &fs);
        let image = self.path(&format!("/.images/{name}"));
        std::fs::create_dir_all(image.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&node, &image).expect("image");
        self.fake.set_node_data(&node, &image);
        if !files.is_empty() {
            let dir = self.path(&format!("/.contents/{name}"));
            for (rel, data) in files {
                let p = dir.join(rel);
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::fs::write(p, data).expect("write");
            }
            self.fake.set_contents(&format!("/dev/{name}"), &dir);
        }
        let mut datagram = format!(
            "add@{devpath}\0SUBSYSTEM=block\0DEVNAME={name}\0MAJOR={major}\0MINOR={minor}\0"
        );
        match partn {
            Some(n) => datagram.push_str(&format!("DEVTYPE=partition\0PARTN={n}\0")),
            None => datagram.push_str("DEVTYPE=disk\0"),
        }
        alpinit_uevent::parse(datagram.as_bytes()).expect("valid uevent")
    }

    /// An ext4 partition `name` on a virtio disk holding `files`.
    pub fn disk(&self, name: &str, label: &'static str, files: &[(&str, &[u8])]) -> Uevent {
        self.block(name, Bus::Virtio, Fs::Ext4 { label }, files)
    }

    /// A FAT partition `name` on a USB stick holding `files`.
    pub fn stick(&self, name: &str, label: &'static str, files: &[(&str, &[u8])]) -> Uevent {
        self.block(name, Bus::Usb, Fs::Vfat { label }, files)
    }

    /// `vda1` holding only a boot repository: the media scan succeeds and
    /// there is no overlay to apply.
    pub fn repo_disk(&self) -> Uevent {
        self.disk("vda1", "A", &[BOOT_REPOSITORY])
    }

    /// Takes a block device made by [`Machine::block`] out of sysfs and
    /// `/dev`; the returned function puts it back (the device arrives).
    pub fn hide(&self, ev: &Uevent) -> impl FnOnce() + Send + 'static {
        let name = ev.devname.clone().expect("devname");
        let hidden = self.path("/.hidden").join(&name);
        let moves = [
            (
                self.path(&format!("/sys{}", ev.devpath)),
                hidden.join("sys"),
            ),
            (
                self.path(&format!("/sys/class/block/{name}")),
                hidden.join("class"),
            ),
            (self.path(&format!("/dev/{name}")), hidden.join("node")),
        ];
        std::fs::create_dir_all(&hidden).expect("mkdir");
        for (from, to) in &moves {
            std::fs::rename(from, to).expect("hide");
        }
        move || {
            for (to, from) in &moves {
                let _ = std::fs::rename(from, to);
            }
        }
    }

    /// Like [`Machine::block`], but the device appears after the boot
    /// waited `pauses` times (hotplug): its sysfs entry first, then the add
    /// event, unless `lost` (ENOBUFS: the kernel dropped the event).
    pub fn hotplug(&self, pauses: usize, ev: Uevent, lost: bool) {
        let reveal = self.hide(&ev);
        let mut steps: Vec<Step> = (0..pauses).map(|_| Step::Pause).collect();
        steps.push(Step::Run(Box::new(reveal)));
        steps.push(if lost {
            Step::Overflow
        } else {
            Step::Event(ev)
        });
        self.fake.script(steps);
    }

    /// A USB stick whose interface usb-storage has bound but not yet
    /// scanned (its `delay_use`): the interface is in sysfs with
    /// `DRIVER=usb-storage` and no SCSI host below it; after `pauses`
    /// waits of the boot its host, disk and the FAT partition `name`
    /// holding `files` appear.
    pub fn settling_stick(&self, pauses: usize, name: &str, files: &[(&str, &[u8])]) {
        const INTERFACE: &str = "/devices/pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0";
        const MODALIAS: &str = "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00";
        self.modalias_device("usb", INTERFACE, MODALIAS);
        self.write(
            &format!("/sys{INTERFACE}/uevent"),
            format!("DEVTYPE=usb_interface\nDRIVER=usb-storage\nMODALIAS={MODALIAS}\n"),
        );
        self.mkdir("/sys/bus/usb/drivers/usb-storage");
        std::os::unix::fs::symlink(
            self.path(&format!("/sys{INTERFACE}")),
            self.path("/sys/bus/usb/drivers/usb-storage/1-1:1.0"),
        )
        .expect("driver link");
        let ev = self.stick(name, "STICK", files);
        let reveal = self.hide(&ev);
        let host = self.path(&format!("/sys{INTERFACE}/host0"));
        let parked = self.path("/.parked-host0");
        std::fs::rename(&host, &parked).expect("park the SCSI host");
        let mut steps: Vec<Step> = (0..pauses).map(|_| Step::Pause).collect();
        steps.push(Step::Run(Box::new(move || {
            std::fs::rename(&parked, &host).expect("SCSI host back");
            reveal();
        })));
        steps.push(Step::Event(ev));
        self.fake.script(steps);
    }

    /// A network interface in sysfs (`physical`: it has a `device` link).
    pub fn nic(&self, name: &str, index: u32, up: bool, physical: bool) -> String {
        let mac = format!("02:00:00:00:00:{index:02x}");
        let dir = format!("/sys/class/net/{name}");
        self.write(&format!("{dir}/ifindex"), format!("{index}\n"));
        self.write(
            &format!("{dir}/operstate"),
            if up { "up\n" } else { "down\n" },
        );
        self.write(&format!("{dir}/carrier"), if up { "1\n" } else { "0\n" });
        self.write(&format!("{dir}/address"), format!("{mac}\n"));
        if physical {
            self.mkdir(&format!("{dir}/device"));
        }
        mac
    }

    /// The DHCP server answers with 10.0.2.15/24 via 10.0.2.2.
    pub fn dhcp_server(&self, iface: &str, mac: &str) {
        self.fake.set_lease(Ok(lease(iface, mac)));
    }

    /// A physical NIC `name` with carrier whose DHCP server answers
    /// ([`Machine::dhcp_server`]); returns its MAC.
    pub fn dhcp_nic(&self, name: &str, index: u32) -> String {
        let mac = self.nic(name, index, true, true);
        self.dhcp_server(name, &mac);
        mac
    }

    /// Every mount matching `which` fails with `errno`.
    pub fn fail_mount(&self, which: alpinit_sys::Match, errno: i32) {
        self.fake
            .recorder
            .fail(alpinit_sys::Kind::Mount, which, errno);
    }

    /// Runs the boot to its end on this machine.
    pub fn boot(&self) -> Boot {
        crate::log::set_thread_sink(Some(Arc::clone(&self.fake.out) as Arc<dyn crate::log::Sink>));
        let end = crate::boot::boot(
            &self.fake.platform(),
            &self.layout,
            std::time::Duration::ZERO,
        );
        crate::log::set_thread_sink(None);
        Boot {
            end,
            events: self.fake.events(),
            console: self.fake.out.console.lock().expect("console").clone(),
            kmsg: self.fake.out.kmsg.lock().expect("kmsg").join(""),
            root: self.tmp.path().to_owned(),
        }
    }
}

fn split_partition(name: &str) -> (&str, Option<u32>) {
    if name.starts_with("sr") {
        return (name, None);
    }
    let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
    match digits.parse() {
        Ok(n) => (&name[..name.len() - digits.len()], Some(n)),
        Err(_) => (name, None),
    }
}

fn put(f: &std::fs::File, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    f.write_all_at(bytes, at).expect("write image");
}

/// A sparse image with just the superblock the prober reads.
fn write_image(path: &Path, fs: &Fs) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let f = std::fs::File::create(path).expect("image");
    f.set_len(1 << 20).expect("size");
    match fs {
        Fs::Ext4 { label } => {
            put(&f, 1024 + 0x38, &0xEF53u16.to_le_bytes());
            put(&f, 1024 + 0x60, &0x40u32.to_le_bytes());
            put(&f, 1024 + 0x68, &[0x11; 16]);
            put(&f, 1024 + 0x78, label.as_bytes());
        }
        Fs::Vfat { label } => {
            put(&f, 0, &[0xEB, 0x3C, 0x90]);
            put(&f, 11, &512u16.to_le_bytes());
            put(&f, 13, &[4]);
            put(&f, 14, &1u16.to_le_bytes());
            put(&f, 16, &[2]);
            put(&f, 17, &512u16.to_le_bytes());
            put(&f, 19, &2048u16.to_le_bytes());
            put(&f, 21, &[0xF8]);
            put(&f, 22, &2u16.to_le_bytes());
            put(&f, 38, &[0x29, 0x78, 0x56, 0x34, 0x12]);
            put(&f, 43, format!("{label:<11}").as_bytes());
            put(&f, 0x36, b"FAT12   ");
            put(&f, 510, &[0x55, 0xAA]);
        }
        Fs::Iso { label } => {
            put(&f, 0x8000, b"\x01CD001\x01");
            put(&f, 0x8000 + 40, format!("{label:<32}").as_bytes());
            put(&f, 0x8800, b"\xFFCD001\x01");
        }
        Fs::Blank => {}
    }
}

/// A gzip tar of `files` (directories are implied), as `lbu` writes.
pub fn overlay(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _) in files {
        let mut acc = String::new();
        let Some((parent, _)) = path.rsplit_once('/') else {
            continue;
        };
        for comp in parent.split('/').take_while(|c| *c != "..") {
            acc.push_str(comp);
            acc.push('/');
            dirs.insert(acc.clone());
        }
    }
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1);
        tar.append_data(&mut h, d, std::io::empty()).expect("dir");
    }
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1);
        // Raw name bytes: hostile names (`..`) must reach the archive.
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        tar.append(&h, *data).expect("file");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

/// A file of the apkovl crate's test fixtures
/// (`crates/apkovl/tests/fixtures/NAME`), e.g. an encrypted overlay.
pub fn apkovl_fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../apkovl/tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn lease(iface: &str, mac: &str) -> alpinit_net::Lease {
    alpinit_net::Lease {
        iface: iface.to_owned(),
        mac: mac.to_owned(),
        address: std::net::Ipv4Addr::new(10, 0, 2, 15),
        prefix_len: 24,
        router: Some(std::net::Ipv4Addr::new(10, 0, 2, 2)),
        dns: vec![std::net::Ipv4Addr::new(10, 0, 2, 3)],
        domain: None,
        hostname: None,
        server: Some(std::net::Ipv4Addr::new(10, 0, 2, 2)),
    }
}
