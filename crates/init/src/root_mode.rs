//! Root mode (`root=`; Alpine §3.5), step by step: with `cryptroot=`,
//! unlock and map the LUKS volume (`crate::crypt`), wait for the root
//! device, `single`'s shell, hibernation resume, mount the root (plain or
//! `overlaytmpfs`), then `/usr` from the new root's fstab. A root that
//! cannot be found or mounted is retried after the recovery shell until it
//! works (or `panic=` gives up).

pub mod overlay;
pub mod usr;

use crate::devices::{Identity, Matches};
use crate::discovery::{self, DeviceSpec};
use crate::early::Early;
use crate::failure::{chain, End, Failure, Policy};
use crate::layout::Layout;
use crate::log::Progress;
use crate::platform::Platform;
use crate::rootfs::{self, RootError};
use crate::wait::WaitPolicy;
use alpinit_cmdline::Cmdline;
use alpinit_kmod::Loader;

/// Discovery that waits for the one device `spec` names (no media scan),
/// with the command line's uevent buffer: for the root, `resume=` and the
/// `/usr` of the new root's fstab.
pub fn device_options(cmdline: &Cmdline, early: &Early, spec: &str) -> discovery::Options {
    discovery::Options {
        uevent_buf_size: cmdline.uevent_buf_size().unwrap_or(4 << 20),
        dev_is_tmpfs: early.dev_is_tmpfs,
        policy: WaitPolicy::default(),
        wanted: Some(DeviceSpec::parse(spec)),
        scan_media: false,
        modloop_modules: false,
        aoe: cmdline.aoe(),
    }
}

/// The devices `spec` names: those the kernel has now when any match
/// (after the root's wait the storage is up, and a second discovery would
/// sweep every bus again), else what a discovery waiting for it finds
/// (bounded by its wait rules). Also the number of block devices seen,
/// for the message when nothing matched.
pub fn wait_device(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &Loader,
    cmdline: &Cmdline,
    early: &Early,
    spec: &str,
) -> (Matches, usize) {
    let wanted = DeviceSpec::parse(spec);
    let (now, seen) = present(layout, &wanted);
    if !now.is_empty() {
        return (now, seen);
    }
    let findings = discovery::discover(p, layout, loader, &device_options(cmdline, early, spec));
    (findings.wanted, findings.block_devices)
}

/// The block devices in sysfs matching `wanted`, probed as discovery
/// probes them (which made their nodes), and how many were probed.
pub(crate) fn present(layout: &Layout, wanted: &DeviceSpec) -> (Matches, usize) {
    let (found, seen) = present_typed(layout, wanted);
    let mut matches = Matches::default();
    for (devname, _) in &found {
        matches.add(devname);
    }
    (matches, seen)
}

/// [`present`], with the file system type each match was probed with.
fn present_typed(layout: &Layout, wanted: &DeviceSpec) -> (Vec<(String, Option<String>)>, usize) {
    let mut found = Vec::new();
    let mut seen = 0;
    for ev in alpinit_uevent::sweep_block(&layout.sys()) {
        let Some(devname) = ev.devname.as_deref() else {
            continue;
        };
        if ["ram", "loop", "zram"]
            .iter()
            .any(|p| devname.starts_with(p))
        {
            continue;
        }
        let Ok(probe) = alpinit_probe::probe_path(&layout.dev().join(devname)) else {
            continue;
        };
        seen += 1;
        let partuuid = ev.partn.and_then(|n| {
            let parent = discovery::parent_disk(&ev.devpath)?;
            alpinit_probe::partition_uuid_path(&layout.dev().join(parent), n)
                .ok()
                .flatten()
        });
        let id = Identity {
            uuid: probe.uuid,
            label: probe.label,
            partuuid,
        };
        if wanted.matches(devname, &id) {
            found.push((devname.to_owned(), probe.fstype));
        }
    }
    (found, seen)
}

/// How long the first root wait lets the modules named by `modules=`,
/// `rootfstype=` and the image's `/etc/modules` finish loading before it
/// sweeps every bus: far more than they take on hardware (milliseconds
/// each) or under emulation (a virtio disk's and ext4's, 0.4 s), and short
/// enough that a named module which hangs costs the boot little.
const NAMED_MODULES_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The root, when it is already there once the modules the command line
/// and the image name are loaded. Alpine's `modprobe -a` of those returns
/// before nlplug-findfs starts (reference §3.4 step 12, §3.5 step 1), so
/// the root wait begins in the same place; a root they brought (its
/// driver named, as tiny-initramfs is told its modules) then needs no
/// sweep of every bus and no coldplug: the new root's own device manager
/// (mdev or udev, Alpine's `hwdrivers`) loads the rest, as it does after
/// nlplug-findfs stopped at the root. `None` when nothing is named, when
/// the root is not there or the named modules are still loading: the
/// usual discovery follows. (Without named modules a root already there
/// goes through discovery too, as before: its drivers are built in, and
/// coldplug is what loads the others.)
///
/// Only a root on one device with a file system of its own: a btrfs
/// member may need its siblings registered, and a LUKS, LVM or RAID
/// member its assembly, which discovery does.
fn brought_by_named_modules(
    loader: &Loader,
    layout: &Layout,
    spec: &str,
) -> Option<(Matches, usize)> {
    if !loader.named() || !loader.wait_idle(std::time::Instant::now() + NAMED_MODULES_WAIT) {
        return None;
    }
    let (found, seen) = present_typed(layout, &DeviceSpec::parse(spec));
    let [(devname, Some(fstype))] = found.as_slice() else {
        return None;
    };
    let plain = fstype != "btrfs" && alpinit_probe::mount_fstype(fstype).is_some();
    plain.then(|| {
        let mut matched = Matches::default();
        matched.add(devname);
        (matched, seen)
    })
}

/// Everything of root mode before the hand-over.
pub fn mount(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &Loader,
    root: &str,
    early: &Early,
    policy: &Policy,
) -> Result<(), End> {
    let mut options = device_options(cmdline, early, root);
    // cryptroot=: unlock and map first, as nlplug-findfs does during the
    // device wait; root=/dev/mapper/NAME is then the mapping.
    let mut root = root.to_owned();
    // The mapping just made when it is the root: see the first root wait below.
    let mut mapping = None;
    let crypt = crate::crypt::CryptOptions::from_cmdline(cmdline)
        .or_else(|source| policy.handle(p, &Failure::Crypt { source }).map(|()| None))?;
    if let Some(crypt) = crypt {
        loop {
            match crate::crypt::find_and_open(p, layout, loader, &crypt, &options) {
                Ok(dm) => {
                    if root == format!("/dev/mapper/{}", crypt.name) {
                        root = format!("/dev/{dm}");
                        options.wanted = Some(DeviceSpec::parse(&root));
                        mapping = Some(dm);
                    }
                    break;
                }
                Err(source) => policy.handle(p, &Failure::Crypt { source })?,
            }
        }
    }
    let mut single = cmdline.single();
    let mut resume = true;
    let mut first_wait = true;
    if let Some(dataset) = root.strip_prefix("ZFS=") {
        // No device to wait for first: the pool is imported by zpool.
        if single {
            policy.handle(p, &Failure::Single)?;
        }
        crate::resume::from_disk(p, layout, cmdline, loader, early);
        let force = crate::assemble::zfs::force_requested(layout);
        while let Err(source) = crate::assemble::zfs::mount_root(
            p,
            layout,
            loader,
            dataset,
            force,
            cmdline.rootfstype(),
            cmdline.get("rootflags"),
            options.clone(),
        ) {
            policy.handle(p, &Failure::Root { source })?;
        }
        return usr::mount(p, layout, cmdline, loader, early, policy);
    }
    loop {
        let progress = Progress::begin("Mounting root");
        // The mapping exists once its table is loaded, and the crypt device's
        // wait let coldplug settle: no second discovery (a sweep of every bus,
        // about 30 ms under TCG) unless its node is missing (a /dev without
        // devtmpfs, where discovery makes it).
        let mapped = mapping.take().filter(|dm| layout.dev().join(dm).exists());
        // `single`'s shell comes after the wait, with the keyboards'
        // drivers coldplug loads.
        let first = !single && std::mem::take(&mut first_wait);
        let now = match mapped {
            Some(dm) => {
                let mut matched = Matches::default();
                matched.add(&dm);
                Some((matched, 1))
            }
            None if first => brought_by_named_modules(loader, layout, &root),
            None => None,
        };
        let found = match now {
            Some((matched, seen)) => {
                rootfs::root_device(layout, loader, &root, cmdline.rootfstype(), &matched, seen)
            }
            None => rootfs::find_root(p, layout, loader, &root, cmdline.rootfstype(), &options),
        };
        let dev = match found {
            Ok(dev) => dev,
            Err(source) => {
                failed(p, policy, progress, source)?;
                continue;
            }
        };
        // Where Alpine opens it: after the device wait (keyboard drivers
        // are loaded by then), before anything is mounted.
        if std::mem::take(&mut single) {
            policy.handle(p, &Failure::Single)?;
        }
        // Before the root is mounted: a hibernated system's file systems
        // must not be touched (ext4 replays its journal even read-only).
        if std::mem::take(&mut resume) {
            crate::resume::from_disk(p, layout, cmdline, loader, early);
        }
        let mounted = if cmdline.is_yes("overlaytmpfs") {
            overlay::mount(
                p,
                layout,
                loader,
                &dev,
                cmdline.get("rootflags"),
                cmdline.get("overlaytmpfsflags"),
            )
        } else {
            let (flags, data) = rootfs::root_mount_options(cmdline.get("rootflags"));
            rootfs::mount_device(p, layout, &dev, &layout.sysroot(), flags, &data)
        };
        match mounted {
            Ok(()) => {
                progress.ok();
                break;
            }
            Err(source) => failed(p, policy, progress, source)?,
        }
    }
    usr::mount(p, layout, cmdline, loader, early, policy)
}

/// The cause on the progress line, then the failure policy (after the
/// shell the caller tries again).
fn failed(
    p: &Platform<'_>,
    policy: &Policy,
    progress: Progress,
    source: RootError,
) -> Result<(), End> {
    progress.failed(&chain(&source));
    policy.handle(p, &Failure::Root { source })
}
