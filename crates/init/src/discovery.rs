//! Device discovery, replacing `nlplug-findfs`: uevents from the kernel,
//! modules by MODALIAS, block devices probed, boot media mounted and
//! scanned, until the wait rules in [`crate::wait`] say stop.

use crate::devices::{self, Identity};
use crate::failure::chain;
use crate::layout::Layout;
use crate::log;
use crate::media::{self, Medium};
use crate::platform::{Platform, UeventStream};
use crate::wait::{Decision, Snapshot, WaitPolicy};
use alpinit_kmod::{Loader, Requested};
use alpinit_uevent::{Action, Uevent};
use std::collections::HashSet;
use std::time::Instant;

mod preload;
mod spec;

pub use spec::DeviceSpec;

#[derive(Debug, Clone)]
pub struct Options {
    pub uevent_buf_size: usize,
    pub dev_is_tmpfs: bool,
    pub policy: WaitPolicy,
    pub wanted: Option<DeviceSpec>,
    /// Mount file systems and look for apkovls and boot repositories
    /// (diskless mode); root mode only looks for `wanted`.
    pub scan_media: bool,
    /// Load loop and squashfs while a USB stick settles
    /// ([`Discovery::use_usb_delay`]): the init's diskless boot, which
    /// needs them for the modloop. Not nlplug-findfs: its caller, Alpine's
    /// init, loads them itself.
    pub modloop_modules: bool,
    /// `aoe=`: ATA over Ethernet set up while discovery runs ([`crate::aoe`]).
    pub aoe: Option<alpinit_cmdline::Aoe>,
}

/// What discovery found.
#[derive(Debug, Default)]
pub struct Findings {
    pub media: Vec<Medium>,
    /// Every device the wanted specification matched (several: ambiguous).
    pub wanted: devices::Matches,
    pub block_devices: usize,
}

impl Findings {
    pub fn found_anything(&self) -> bool {
        !self.media.is_empty() || !self.wanted.is_empty()
    }
}

struct Discovery<'a> {
    p: &'a Platform<'a>,
    layout: &'a Layout,
    loader: &'a Loader,
    opts: &'a Options,
    aliases_seen: HashSet<String>,
    blocks_seen: HashSet<(String, u32, u32)>,
    mounted_at_start: Vec<String>,
    findings: Findings,
    first_finding: Option<Instant>,
    first_block_logged: bool,
    last_event: Instant,
    last_usb_event: Option<Instant>,
    preloaded: HashSet<&'static str>,
    /// A USB device was seen ([`Discovery::preload_usb_storage`]).
    usb_device_seen: bool,
    /// [`Discovery::use_usb_delay`] requested loop and squashfs.
    after_discovery_requested: bool,
    /// The evidence last seen, and whether it was logged as holding the
    /// wait: once per piece of evidence, so that the loader going busy and
    /// idle again during one wait does not repeat the line (as
    /// nlplug-findfs under Alpine's init, each line counts against the
    /// kernel's /dev/kmsg burst of 10).
    last_pending: (Option<crate::pending::Pending>, bool),
    /// nlplug-findfs' `-f`: events of any other subsystem are dropped.
    only_subsystem: Option<&'a str>,
    assembler: crate::assemble::Assembler,
    aoe: Option<crate::aoe::Setup>,
}

pub fn discover(p: &Platform<'_>, layout: &Layout, loader: &Loader, opts: &Options) -> Findings {
    discover_only(p, layout, loader, opts, None)
}

/// [`discover`], dropping every uevent whose subsystem is set and is not
/// ONLY_SUBSYSTEM, before anything else looks at it (nlplug-findfs' `-f`,
/// reference §2.1: modaliases of such events are not loaded either).
pub fn discover_only(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &Loader,
    opts: &Options,
    only_subsystem: Option<&str>,
) -> Findings {
    let started = p.clock.now();
    // Bind before the sweep: whatever appears meanwhile is seen twice
    // (and de-duplicated), never missed.
    let socket = match p.uevents.open(opts.uevent_buf_size) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn(&format!(
                "uevent socket unavailable ({}); falling back to sysfs polling",
                chain(&e)
            ));
            None
        }
    };
    let mounts = std::fs::read_to_string(layout.proc().join("mounts")).unwrap_or_default();
    let mut d = Discovery {
        p,
        layout,
        loader,
        opts,
        aliases_seen: HashSet::new(),
        blocks_seen: HashSet::new(),
        mounted_at_start: media::mounted_sources(&mounts),
        findings: Findings::default(),
        first_finding: None,
        first_block_logged: false,
        last_event: started,
        last_usb_event: None,
        preloaded: HashSet::new(),
        usb_device_seen: false,
        after_discovery_requested: false,
        last_pending: (None, false),
        only_subsystem,
        assembler: crate::assemble::Assembler::default(),
        aoe: opts.aoe.clone().map(crate::aoe::Setup::new),
    };
    let swept = alpinit_uevent::sweep_buses(&layout.sys());
    let sweep_ms = p.clock.now().duration_since(started).as_millis();
    // The whole sweep is queued before any of it loads, so that it loads
    // in the loader's order (USB hosts first) and not in PCI address order.
    let hold = loader.hold();
    for ev in &swept {
        d.handle(ev, false);
    }
    if let Some(aoe) = d.aoe.as_mut() {
        aoe.start(p, layout, loader);
    }
    drop(hold);
    log::info(&format!(
        "coldplug: {} devices swept in {sweep_ms} ms, {} modaliases requested",
        swept.len(),
        d.aliases_seen.len()
    ));
    let mut coldplug_logged = false;
    loop {
        p.spawn.reap();
        if let Some(sock) = &socket {
            d.drain(sock.as_ref());
        } else {
            for ev in alpinit_uevent::sweep_block(&layout.sys()) {
                d.handle(&ev, false);
            }
        }
        d.log_modules();
        d.preload_usb_storage();
        if let Some(aoe) = d.aoe.as_mut() {
            aoe.tick(p, layout);
        }
        let busy = loader.busy();
        if !busy && !coldplug_logged {
            coldplug_logged = true;
            log::phase("coldplug-done");
        }
        let pending = d.pending(coldplug_logged && !busy);
        d.use_usb_delay(&pending, busy);
        let snap = Snapshot {
            now: p.clock.now(),
            started,
            coldplug_done: coldplug_logged,
            busy,
            last_event: d.last_event,
            last_usb_event: d.last_usb_event,
            storage_pending: pending.is_some(),
            first_finding: d.first_finding,
            apkovl_found: d.findings.media.iter().any(|m| !m.apkovls.is_empty()),
            wanted_found: !d.findings.wanted.is_empty(),
        };
        match opts.policy.decide(&snap) {
            // Whether anything was found is in the findings themselves.
            Decision::Done | Decision::GiveUp => {
                if !d.assembler.start_degraded(p, layout) {
                    break;
                }
            }
            Decision::Wait(dur) => p.uevents.wait(socket.as_deref(), loader, dur),
        }
    }
    d.log_modules();
    d.findings
}

impl Discovery<'_> {
    fn drain(&mut self, sock: &dyn UeventStream) {
        loop {
            match sock.recv() {
                Ok(Some(ev)) => self.handle(&ev, true),
                Ok(None) => break,
                Err(alpinit_uevent::RecvError::Overflow) => {
                    log::warn("uevent buffer overflow: rescanning sysfs (raise uevent_buf_size= to avoid this)");
                    for ev in alpinit_uevent::sweep(&self.layout.sys()) {
                        self.handle(&ev, true);
                    }
                }
                Err(e) => {
                    log::warn(&format!("uevent receive: {}", chain(&e)));
                    break;
                }
            }
        }
    }

    fn log_modules(&self) {
        for ev in self.loader.drain_log() {
            log::debug(&format!("module {ev:?}"));
        }
    }

    fn handle(&mut self, ev: &Uevent, live: bool) {
        if let (Some(keep), Some(subsystem)) = (self.only_subsystem, ev.subsystem.as_deref()) {
            if subsystem != keep {
                return;
            }
        }
        if live {
            self.last_event = self.p.clock.now();
        }
        log::debug(&format!(
            "uevent: action='{:?}' subsystem='{}' devname='{}' devpath='{}'",
            ev.action,
            ev.subsystem.as_deref().unwrap_or(""),
            ev.devname.as_deref().unwrap_or(""),
            ev.devpath
        ));
        // USB hubs enumerate on their own schedule: recent activity on the
        // usb bus is one of the "still settling" signals (a usb-storage
        // interface without its disk is the other, seen in sysfs). Block and
        // SCSI events of a stick do not count: they mean it has arrived.
        if ev.subsystem.as_deref() == Some("usb") {
            self.last_usb_event = Some(self.p.clock.now());
        }
        if preload::is_usb_device(ev) {
            self.usb_device_seen = true;
        }
        if let Some(aoe) = self.aoe.as_mut() {
            aoe.event(self.p, self.layout, ev);
        }
        self.preload_media_modules(ev);
        if !matches!(ev.action, Action::Add | Action::Change) {
            return;
        }
        if let Some(alias) = &ev.modalias {
            if ev.action == Action::Add {
                request_modalias(self.loader, &mut self.aliases_seen, alias);
            }
        }
        if ev.subsystem.as_deref() == Some("block") {
            self.block(ev);
        } else if self.opts.dev_is_tmpfs {
            // No devtmpfs: make character nodes mdev-style too (ttys, input, ...).
            if let (Some(name), Some(major), Some(minor)) = (&ev.devname, ev.major, ev.minor) {
                let _ = devices::make_node(self.p.fs, self.layout, name, false, major, minor);
            }
        }
    }

    fn block(&mut self, ev: &Uevent) {
        let (Some(devname), Some(major), Some(minor)) = (&ev.devname, ev.major, ev.minor) else {
            return;
        };
        if never_media(devname) {
            return;
        }
        if !self.blocks_seen.insert((devname.clone(), major, minor)) {
            return;
        }
        let size = std::fs::read_to_string(self.layout.path(&format!("/sys{}/size", ev.devpath)))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        if size == Some(0) {
            // An empty drive (a CD-ROM without a disc): a `change` event follows when media arrives.
            self.blocks_seen.remove(&(devname.clone(), major, minor));
            return;
        }
        if !self.first_block_logged {
            self.first_block_logged = true;
            log::phase("first-block");
        }
        self.findings.block_devices += 1;
        if self.opts.dev_is_tmpfs {
            if let Err(e) = devices::make_node(self.p.fs, self.layout, devname, true, major, minor)
            {
                log::warn(&format!("creating /dev/{devname}: {e}"));
            }
        }
        crate::assemble::dm::links(self.layout, ev, devname);
        let node = self.layout.dev().join(devname);
        let probe = match alpinit_probe::probe_path(&node) {
            Ok(p) => p,
            Err(e) => {
                log::warn(&format!("probing /dev/{devname}: {}", chain(&e)));
                return;
            }
        };
        let partuuid = ev.partn.and_then(|n| {
            let parent = parent_disk(&ev.devpath)?;
            alpinit_probe::partition_uuid_path(&self.layout.dev().join(parent), n)
                .ok()
                .flatten()
        });
        let id = Identity {
            uuid: probe.uuid.clone(),
            label: probe.label.clone(),
            partuuid,
        };
        log::info(&format!(
            "probe /dev/{devname}: type='{}' label='{}' uuid='{}' partuuid='{}'",
            probe.fstype.as_deref().unwrap_or(""),
            id.label.as_deref().unwrap_or(""),
            id.uuid.as_deref().unwrap_or(""),
            id.partuuid.as_deref().unwrap_or("")
        ));
        devices::disk_links(self.layout, devname, &id);
        let usb = devices::is_usb(&ev.devpath);
        let fstype = probe.fstype.as_deref();
        // A second member of a multi-device btrfs is the same file system.
        let sibling = fstype == Some("btrfs")
            && (self.assembler).btrfs(
                self.p,
                self.layout,
                self.loader,
                devname,
                id.uuid.as_deref(),
            );
        let mut matched = false;
        if let Some(w) = &self.opts.wanted {
            matched = w.matches(devname, &id)
                || w.path().is_some_and(|path| {
                    devices::same_node(self.layout, &path, devname, major, minor)
                });
            if matched && !sibling {
                self.findings.wanted.add(devname);
                self.found();
                self.preload_for_wanted(fstype);
            }
        }
        let Some(fstype) = fstype else {
            return;
        };
        if !matched {
            (self.assembler).member(self.p, self.layout, self.loader, devname, fstype);
        }
        if sibling {
            return; // mounted and scanned through its first member
        }
        let Some(kernel_fs) = alpinit_probe::mount_fstype(fstype) else {
            return;
        };
        if usb {
            let _ = devices::media_alias(self.layout, "usbdisk", devname);
        }
        if devname.starts_with("sr") {
            let _ = devices::media_alias(self.layout, "cdrom", devname);
        }
        let devnode = format!("/dev/{devname}");
        if !self.opts.scan_media || self.mounted_at_start.contains(&devnode) {
            return;
        }
        self.scan(devname, major, minor, kernel_fs, usb);
    }

    fn scan(&mut self, devname: &str, major: u32, minor: u32, fstype: &str, usb: bool) {
        media::load_fs_modules(self.loader, self.layout, fstype);
        let mnt = match media::mount(self.p.fs, self.layout, devname, fstype) {
            Ok(m) => m,
            Err(e) => {
                log::warn(&chain(&e));
                return;
            }
        };
        let found = match media::scan(&mnt) {
            Ok(s) => s,
            Err(e) => {
                log::warn(&chain(&e));
                media::Scan::default()
            }
        };
        for name in &found.skipped {
            log::warn(&format!(
                "ignoring {name} on /dev/{devname}: not a regular file"
            ));
        }
        if found.apkovls.is_empty() && found.repos.is_empty() {
            if let Err(e) = self.p.fs.umount(&mnt, false) {
                log::warn(&format!("unmounting {}: {e}", mnt.display()));
            }
            return;
        }
        for a in &found.apkovls {
            log::info(&format!("found apkovl {}", a.display()));
        }
        for r in &found.repos {
            log::info(&format!("found boot repository {}", r.display()));
        }
        self.findings.media.push(Medium {
            devname: devname.to_owned(),
            major,
            minor,
            fstype: fstype.to_owned(),
            mountpoint: mnt,
            usb,
            apkovls: found.apkovls,
            repos: found.repos,
        });
        self.found();
    }

    /// Storage the kernel is still bringing up, logged when it changes:
    /// on the console when it is what HOLDS the wait (coldplug done, no
    /// module loading), else in debug output only.
    fn pending(&mut self, holds: bool) -> Option<crate::pending::Pending> {
        let sys = self.layout.sys();
        let handled = |name: &str| self.blocks_seen.iter().any(|b| b.0 == name);
        let pending = crate::pending::storage(&sys)
            .or_else(|| crate::pending::unhandled_block(&sys, &handled))
            .or_else(|| {
                let aoe = self.aoe.as_ref()?;
                aoe.missing_target(self.layout)
                    .map(crate::pending::Pending::AoeTargetMissing)
            });
        let changed = pending != self.last_pending.0;
        if changed {
            self.last_pending = (pending.clone(), false);
        }
        if let Some(p) = &pending {
            if holds && !self.last_pending.1 {
                log::info(&format!("waiting: {p}"));
                self.last_pending.1 = true;
            } else if changed && !holds {
                log::debug(&format!("waiting: {p}"));
            }
        }
        pending
    }

    /// usb-storage waits a second (its `delay_use`) before it scans a
    /// stick: with nothing else loading, the CPU idles through it. A
    /// diskless boot loads loop and squashfs (for the modloop) then
    /// instead of after discovery, where they would compete with the
    /// overlay's unpack. Only in this wait, known to last: elsewhere a
    /// load requested while waiting would hold discovery's end until it
    /// finished.
    fn use_usb_delay(&mut self, pending: &Option<crate::pending::Pending>, busy: bool) {
        if self.opts.modloop_modules
            && !busy
            && !self.after_discovery_requested
            && matches!(
                pending,
                Some(crate::pending::Pending::UsbStorageWithoutDisk(_))
            )
        {
            self.after_discovery_requested = true;
            crate::modules::request_after_discovery(self.loader);
        }
    }

    fn found(&mut self) {
        if self.first_finding.is_none() {
            self.first_finding = Some(self.p.clock.now());
        }
    }
}

/// Asks for the driver of a device's MODALIAS once per SEEN; whether it
/// was new. What cannot lead to boot media (CPU feature modules, sound,
/// pointers, sensors, network drivers when the boot does not use the
/// network) is left to the new root's own coldplug (OpenRC hwdrivers, mdev
/// or udev), which loads it from the modloop; loading it here would
/// compete for the CPU with the storage drivers and the unpack the boot is
/// waiting for (`modules::deferral`).
pub(crate) fn request_modalias(loader: &Loader, seen: &mut HashSet<String>, alias: &str) -> bool {
    if !seen.insert(alias.to_owned()) {
        return false;
    }
    if let Requested::Deferred { kind, modules } = loader.request_alias(alias) {
        log::debug(&format!(
            "left for the new root ({}): {alias}: {}",
            kind.name(),
            modules.join(" ")
        ));
    }
    true
}

/// The boot-media phase (diskless mode): discovery with the command line's
/// wait rules. Finding nothing is a failure unless networking may still
/// bring the overlay; the findings come with it either way.
pub fn find_media(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &alpinit_cmdline::Cmdline,
    loader: &Loader,
    early: &crate::early::Early,
) -> crate::failure::Partial<Findings> {
    let wanted = match cmdline.apkovl() {
        Some(alpinit_cmdline::ApkovlSpec::Device { device, .. }) => {
            Some(DeviceSpec::parse(&device))
        }
        _ => None,
    };
    let usbdelay = cmdline.usbdelay().unwrap_or_else(|e| {
        log::warn(&crate::failure::chain(&e));
        None
    });
    let buf = cmdline.uevent_buf_size().unwrap_or_else(|e| {
        log::warn(&crate::failure::chain(&e));
        alpinit_cmdline::DEFAULT_UEVENT_BUF_SIZE
    });
    let policy = WaitPolicy {
        settle_limit: usbdelay.unwrap_or(WaitPolicy::default().settle_limit),
        usbdelay,
        allow_not_found: cmdline.needs_network(),
        ..WaitPolicy::default()
    };
    let progress = log::Progress::begin("Mounting boot media");
    let findings = discover(
        p,
        layout,
        loader,
        &Options {
            uevent_buf_size: buf,
            dev_is_tmpfs: early.dev_is_tmpfs,
            policy,
            wanted,
            scan_media: true,
            modloop_modules: true,
            aoe: cmdline.aoe(),
        },
    );
    // Once per wait for boot media or root, not on every discovery (the
    // resume and /usr device waits would repeat the same lines).
    crate::modules::report_missing_drivers(layout, loader.index());
    if findings.found_anything() || cmdline.needs_network() {
        progress.ok();
        log::phase("media-found");
        return Ok(findings);
    }
    progress.failed("");
    let block_devices = findings.block_devices;
    Err(Box::new((
        findings,
        crate::failure::Failure::NoMedia { block_devices },
    )))
}

/// RAM disks, loop and zram devices are never boot media (the boot skips
/// them; `alpinit explain` says so).
pub fn never_media(devname: &str) -> bool {
    devname.starts_with("ram") || devname.starts_with("loop") || devname.starts_with("zram")
}

/// `/devices/.../block/sda/sda1` → `sda`.
pub fn parent_disk(devpath: &str) -> Option<&str> {
    let mut parts = devpath.rsplit('/');
    parts.next()?;
    parts.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_disk_of_partition() {
        assert_eq!(
            parent_disk("/devices/pci0000:00/0000:00:05.0/virtio2/block/vda/vda1"),
            Some("vda")
        );
    }
}
