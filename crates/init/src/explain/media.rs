//! Block devices, boot media, the apkovl a boot would choose and the
//! repositories, decided by the boot's own code: `discovery::never_media`,
//! the prober, `media::scan` (apkovls and boot repositories) and
//! `alpinit_apkovl::choose` over `media::apkovl_candidates`.

use super::ExplainError;
use crate::devices::Identity;
use crate::discovery::DeviceSpec;
use crate::failure::chain;
use crate::layout::Layout;
use crate::media::{Medium, MEDIA_FLAGS};
use alpinit_cmdline::{ApkovlSpec, Cmdline};
use alpinit_sys::Sys;
use std::path::{Path, PathBuf};

/// One entry of `/sys/class/block` and what a boot would do with it.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub state: State,
    pub id: Identity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// ram, loop, zram.
    Never,
    /// Size 0: a drive without a medium.
    Empty,
    ProbeFailed(String),
    /// No file system (a whole disk with a partition table, or blank).
    NoFs {
        pttype: Option<String>,
    },
    /// A signature the boot does not mount (swap, LUKS, LVM, md).
    NotMountable {
        fstype: String,
    },
    /// Mounted and scanned, as the boot would.
    Scanned {
        fstype: String,
        scan: Box<Scan>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Where it was read: an existing mount point, or `None` for the
    /// private read-only mount (released again).
    pub mounted_at: Option<PathBuf>,
    /// The findings as `Medium` (paths as the boot names them,
    /// `/media/DEV/...`), or why the scan failed.
    pub medium: Result<Medium, String>,
    pub skipped: Vec<String>,
    /// `apkovl=DEV:PATH` matched this device and PATH is a regular file.
    pub wanted_path: Option<bool>,
    /// Releasing the private mount failed (the findings still hold).
    pub cleanup: Option<String>,
    /// With keys in the image's key directory: each apkovl (as the boot
    /// names it) and what its detached signature check says.
    pub signatures: Vec<(PathBuf, Signed)>,
}

/// The signature check of one apkovl, as the boot would do it
/// (`crate::signature`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    /// Verified by this key file.
    Valid(String),
    /// Missing, unreadable or not matching: the boot rejects the file.
    Rejected(String),
}

/// Every block device in natural name order, each probed and, when it holds
/// a file system the boot mounts, scanned.
pub fn devices(
    layout: &Layout,
    sys: &dyn Sys,
    cmdline: &Cmdline,
    keys: Option<&crate::signature::Keys>,
) -> Result<Vec<Device>, ExplainError> {
    let class = layout.sys().join("class/block");
    let entries = std::fs::read_dir(&class).map_err(|source| ExplainError::Blocks {
        path: class.clone(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    alpinit_sort::sort_by(&mut names, |a, b| alpinit_apkovl::device_order(a, b));
    let mounts = std::fs::read_to_string(layout.proc().join("mounts")).unwrap_or_default();
    let mounts = crate::fstab::proc_mounts(&mounts);
    let wanted = match cmdline.apkovl() {
        Some(ApkovlSpec::Device { device, path, .. }) => Some((DeviceSpec::parse(&device), path)),
        _ => None,
    };
    let mut out = Vec::new();
    for name in names {
        let mut dev = Device {
            state: State::Never,
            id: Identity::default(),
            name,
        };
        if !crate::discovery::never_media(&dev.name) {
            dev.state = probe_and_scan(layout, sys, &class, &mounts, &wanted, keys, &mut dev);
        }
        out.push(dev);
    }
    Ok(out)
}

fn probe_and_scan(
    layout: &Layout,
    sys: &dyn Sys,
    class: &Path,
    mounts: &[crate::fstab::Mounted],
    wanted: &Option<(DeviceSpec, String)>,
    keys: Option<&crate::signature::Keys>,
    dev: &mut Device,
) -> State {
    let sysdir = class.join(&dev.name);
    let read = |f: &str| std::fs::read_to_string(sysdir.join(f)).ok();
    if read("size").is_some_and(|s| s.trim() == "0") {
        return State::Empty;
    }
    let node = layout.dev().join(&dev.name);
    let probe = match alpinit_probe::probe_path(&node) {
        Ok(p) => p,
        Err(e) => return State::ProbeFailed(chain(&e)),
    };
    let real = std::fs::canonicalize(&sysdir).unwrap_or_else(|_| sysdir.clone());
    let devpath = real
        .strip_prefix(layout.sys())
        .map(|p| format!("/{}", p.display()))
        .unwrap_or_default();
    let partuuid = read("partition")
        .and_then(|n| n.trim().parse::<u32>().ok())
        .and_then(|n| {
            let parent = crate::discovery::parent_disk(&devpath)?;
            alpinit_probe::partition_uuid_path(&layout.dev().join(parent), n)
                .ok()
                .flatten()
        });
    dev.id = Identity {
        uuid: probe.uuid.clone(),
        label: probe.label.clone(),
        partuuid,
    };
    let Some(fstype) = probe.fstype.clone() else {
        return State::NoFs {
            pttype: probe.pttype,
        };
    };
    let Some(kernel_fs) = alpinit_probe::mount_fstype(&fstype) else {
        return State::NotMountable { fstype };
    };
    let (major, minor) = read("dev")
        .and_then(|d| {
            let (a, b) = d.trim().split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((0, 0));
    let source = format!("/dev/{}", dev.name);
    let mounted_at = mounts
        .iter()
        .find(|m| m.source == source)
        .map(|m| PathBuf::from(&m.target));
    let want = wanted
        .as_ref()
        .filter(|(spec, _)| spec.matches(&dev.name, &dev.id))
        .map(|(_, path)| path.as_str());
    type Read = (
        Result<Medium, String>,
        Vec<String>,
        Option<bool>,
        Vec<(PathBuf, Signed)>,
    );
    let read_at = |dir: &Path| -> Read {
        let wanted_path = want.map(|p| dir.join(p.trim_start_matches('/')).is_file());
        match crate::media::scan(dir) {
            Ok(found) => {
                let boot_dir = PathBuf::from("/media").join(&dev.name);
                let rebase = |p: &PathBuf| boot_dir.join(p.strip_prefix(dir).unwrap_or(p));
                // While the medium is still mounted: the signature files are
                // read beside each apkovl, as the boot reads them.
                let signatures = keys.map_or_else(Vec::new, |keys| {
                    found
                        .apkovls
                        .iter()
                        .map(|p| (rebase(p), check_signature(keys, p, &rebase(p))))
                        .collect()
                });
                let medium = Medium {
                    devname: dev.name.clone(),
                    major,
                    minor,
                    fstype: kernel_fs.to_owned(),
                    mountpoint: boot_dir.clone(),
                    usb: crate::devices::is_usb(&devpath),
                    apkovls: found.apkovls.iter().map(rebase).collect(),
                    repos: found.repos.iter().map(rebase).collect(),
                };
                (Ok(medium), found.skipped, wanted_path, signatures)
            }
            Err(e) => (Err(chain(&e)), Vec::new(), wanted_path, Vec::new()),
        }
    };
    let mut cleanup = None;
    let (medium, skipped, wanted_path, signatures) = match &mounted_at {
        Some(target) => read_at(&layout.path(&target.to_string_lossy())),
        None => match private_mount(layout, sys, &source, kernel_fs, &dev.name) {
            Ok(mnt) => {
                let found = read_at(&mnt.dir);
                cleanup = mnt.release(sys).err();
                found
            }
            Err(e) => (Err(e), Vec::new(), None, Vec::new()),
        },
    };
    State::Scanned {
        fstype,
        scan: Box::new(Scan {
            mounted_at,
            medium,
            skipped,
            wanted_path,
            cleanup,
            signatures,
        }),
    }
}

/// The boot's check of `path` (named `shown` in messages): its detached
/// signature read beside it and verified with `keys`.
fn check_signature(keys: &crate::signature::Keys, path: &Path, shown: &Path) -> Signed {
    let checked = crate::signature::read_sig_beside(path, shown)
        .and_then(|(name, sig)| keys.verify_file(path, shown, &name.display().to_string(), &sig));
    match checked {
        Ok(key) => Signed::Valid(key),
        Err(e) => Signed::Rejected(chain(&e)),
    }
}

/// A read-only mount in a directory of its own, made for one scan.
struct PrivateMount {
    dir: PathBuf,
}

/// Mount options that keep a read-only mount from writing: no journal
/// replay (ext3/4, xfs, btrfs replay a dirty log even on `ro` mounts).
fn no_replay(fstype: &str) -> Option<&'static str> {
    match fstype {
        "ext3" | "ext4" => Some("noload"),
        "xfs" => Some("norecovery"),
        "btrfs" => Some("nologreplay"),
        _ => None,
    }
}

fn private_mount(
    layout: &Layout,
    sys: &dyn Sys,
    source: &str,
    fstype: &str,
    name: &str,
) -> Result<PrivateMount, String> {
    let dir = layout.path(&format!(
        "/tmp/alpinit-explain.{}.{name}",
        std::process::id()
    ));
    // create_dir fails on an existing name: never a directory someone prepared.
    std::fs::create_dir(&dir).map_err(|source| {
        chain(&ExplainError::MountDir {
            path: dir.clone(),
            source,
        })
    })?;
    if let Err(e) = sys.mount(source, &dir, Some(fstype), MEDIA_FLAGS, no_replay(fstype)) {
        let _ = std::fs::remove_dir(&dir);
        return Err(format!("mounting {source} read-only: {e}"));
    }
    Ok(PrivateMount { dir })
}

impl PrivateMount {
    fn release(self, sys: &dyn Sys) -> Result<(), String> {
        sys.umount(&self.dir, false)
            .map_err(|e| format!("unmounting {}: {e}", self.dir.display()))?;
        // Only an empty directory goes: after a failed unmount the medium's
        // files would be under it.
        std::fs::remove_dir(&self.dir).map_err(|e| format!("removing {}: {e}", self.dir.display()))
    }
}

pub fn report_devices(devices: &[Device], out: &mut String) {
    out.push_str("\nBlock devices (/sys/class/block):\n");
    if devices.is_empty() {
        out.push_str("  none\n");
    }
    let never: Vec<&str> = devices
        .iter()
        .filter(|d| matches!(d.state, State::Never))
        .map(|d| d.name.as_str())
        .collect();
    if !never.is_empty() {
        out.push_str(&format!(
            "  {}: not scanned: ram, loop and zram devices are never boot media\n",
            never.join(" ")
        ));
    }
    for d in devices.iter().filter(|d| !matches!(d.state, State::Never)) {
        let mut id = String::new();
        if let Some(l) = &d.id.label {
            id.push_str(&format!(" label={l:?}"));
        }
        if let Some(u) = &d.id.uuid {
            id.push_str(&format!(" uuid={u}"));
        }
        if let Some(p) = &d.id.partuuid {
            id.push_str(&format!(" partuuid={p}"));
        }
        let what = match &d.state {
            State::Never => continue,
            State::Empty => "no medium: scanned when one arrives".to_owned(),
            State::ProbeFailed(e) => format!("not scanned: cannot probe: {e}"),
            State::NoFs { pttype: Some(t) } => format!("partition table {t}, no file system"),
            State::NoFs { pttype: None } => "no file system".to_owned(),
            State::NotMountable { fstype } => format!("{fstype}: not a boot medium"),
            State::Scanned { fstype, scan } => {
                let at = match &scan.mounted_at {
                    Some(p) => format!("mounted at {}", p.display()),
                    None => "mounted read-only for this report".to_owned(),
                };
                let found = match &scan.medium {
                    Ok(m) if m.apkovls.is_empty() && m.repos.is_empty() => {
                        "nothing for the boot".to_owned()
                    }
                    Ok(m) => format!(
                        "{} apkovl(s), {} boot repositor{}",
                        m.apkovls.len(),
                        m.repos.len(),
                        if m.repos.len() == 1 { "y" } else { "ies" }
                    ),
                    Err(e) => format!("cannot scan: {e}"),
                };
                format!("{fstype}, scanned ({at}): {found}")
            }
        };
        out.push_str(&format!("  {}{id}: {what}\n", d.name));
        if let State::Scanned { scan, .. } = &d.state {
            for s in &scan.skipped {
                out.push_str(&format!("    {s}: skipped, not a regular file\n"));
            }
            if let Some(c) = &scan.cleanup {
                out.push_str(&format!("    warning: {c}\n"));
            }
        }
    }
}

/// What a boot would do for the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Found(String),
    Fetched(String),
    NotFound(String),
}

impl Verdict {
    pub fn exit_status(&self) -> i32 {
        match self {
            Self::Found(_) | Self::Fetched(_) => 0,
            Self::NotFound(_) => 1,
        }
    }
    pub fn summary(&self) -> String {
        match self {
            Self::Found(p) => format!("A boot would use the apkovl {p} (exit status 0)."),
            Self::Fetched(u) => {
                format!("A boot would fetch the apkovl {u} (not fetched here; exit status 0).")
            }
            Self::NotFound(why) => format!("A boot would find no apkovl: {why} (exit status 1)."),
        }
    }
}

fn media(devices: &[Device]) -> Vec<Medium> {
    devices
        .iter()
        .filter_map(|d| match &d.state {
            State::Scanned { scan, .. } => scan.medium.as_ref().ok(),
            _ => None,
        })
        .filter(|m| !m.apkovls.is_empty() || !m.repos.is_empty())
        .cloned()
        .collect()
}

pub fn report_overlay(
    cmdline: &Cmdline,
    devices: &[Device],
    keys: Option<&crate::signature::Keys>,
    out: &mut String,
) -> Verdict {
    out.push_str("\nOverlay (apkovl):\n");
    out.push_str(&match keys {
        None => format!(
            "  no keys in {}: overlays are taken without a signature\n",
            crate::signature::KEYS_DIR
        ),
        Some(_) => format!(
            "  keys in {}: an overlay needs a valid detached signature (X.sig or .X.sig)\n",
            crate::signature::KEYS_DIR
        ),
    });
    match cmdline.apkovl() {
        Some(ApkovlSpec::Url(url)) => {
            out.push_str(&format!(
                "  apkovl={url}: fetched over the network at boot\n"
            ));
            return Verdict::Fetched(url);
        }
        Some(ApkovlSpec::Path(p)) => {
            out.push_str(&format!(
                "  apkovl={p}: a path in the initramfs, not visible from a running system\n"
            ));
            return Verdict::NotFound(format!("apkovl={p} cannot be checked from here"));
        }
        Some(ApkovlSpec::Device { device, path, .. }) => {
            return wanted_device(&device, &path, devices, out)
        }
        None => {}
    }
    let media = media(devices);
    let cands = crate::media::apkovl_candidates(&media);
    let signed = |path: &Path| -> Option<&Signed> {
        devices.iter().find_map(|d| match &d.state {
            State::Scanned { scan, .. } => scan
                .signatures
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, s)| s),
            _ => None,
        })
    };
    for c in &cands {
        out.push_str(&format!(
            "  candidate {} (device {}{})\n",
            c.path.display(),
            c.device,
            if c.device_has_boot_repo {
                ", holds a boot repository"
            } else {
                ""
            }
        ));
        match signed(&c.path) {
            Some(Signed::Valid(key)) => {
                out.push_str(&format!("    signature: valid (key {key})\n"))
            }
            Some(Signed::Rejected(why)) => {
                out.push_str(&format!("    signature: rejected: {why}\n"))
            }
            None => {}
        }
    }
    let Some(chosen) = alpinit_apkovl::choose(&cands) else {
        out.push_str("  no candidates\n");
        return Verdict::NotFound("no *.apkovl.tar.gz* at the top level of any medium".into());
    };
    let mut why: Vec<String> = Vec::new();
    for other in cands.iter().filter(|c| c.path != chosen.path) {
        if let Some(rule) = alpinit_apkovl::deciding_rule(chosen, other) {
            why.push(format!("over {}: {rule}", other.path.display()));
        }
    }
    if why.is_empty() {
        why.push("the only candidate".to_owned());
    }
    out.push_str(&format!("  chosen: {}\n", chosen.path.display()));
    for w in &why {
        out.push_str(&format!("    {w}\n"));
    }
    if let Some(Signed::Rejected(why)) = signed(&chosen.path) {
        // The boot would reject it and try its backups (rollback), which
        // this report does not evaluate.
        return Verdict::NotFound(format!(
            "the chosen overlay {} would be rejected: {why}",
            chosen.path.display()
        ));
    }
    Verdict::Found(chosen.path.display().to_string())
}

fn wanted_device(device: &str, path: &str, devices: &[Device], out: &mut String) -> Verdict {
    let spec = DeviceSpec::parse(device);
    let matched: Vec<&Device> = devices
        .iter()
        .filter(|d| !matches!(d.state, State::Never) && spec.matches(&d.name, &d.id))
        .collect();
    out.push_str(&format!(
        "  apkovl={device}:{path}: discovery stops when {device} appears\n"
    ));
    match matched.as_slice() {
        [] => Verdict::NotFound(format!("no device matches {device}")),
        [d] => {
            let found = match &d.state {
                State::Scanned { scan, .. } => scan.wanted_path,
                _ => None,
            };
            let file = format!("/media/{}/{}", d.name, path.trim_start_matches('/'));
            match found {
                Some(true) => {
                    out.push_str(&format!("  chosen: {file} (named on the command line)\n"));
                    Verdict::Found(file)
                }
                Some(false) => {
                    Verdict::NotFound(format!("{path} is not a file on /dev/{}", d.name))
                }
                None => Verdict::NotFound(format!("/dev/{} could not be read", d.name)),
            }
        }
        several => {
            let names: Vec<String> = several.iter().map(|d| format!("/dev/{}", d.name)).collect();
            Verdict::NotFound(format!(
                "apkovl device {device} is ambiguous: {} match",
                names.join(", ")
            ))
        }
    }
}

pub fn report_repositories(cmdline: &Cmdline, devices: &[Device], out: &mut String) {
    out.push_str("\nRepositories for apk:\n");
    let explicit = cmdline.alpine_repo();
    if !explicit.is_empty() {
        for r in explicit {
            out.push_str(&format!("  {r} (alpine_repo=)\n"));
        }
        return;
    }
    let mut repos: Vec<PathBuf> = media(devices).into_iter().flat_map(|m| m.repos).collect();
    alpinit_sort::sort(&mut repos);
    if repos.is_empty() {
        out.push_str("  none found (only the overlay's /etc/apk/repositories, if any)\n");
    }
    for r in repos {
        out.push_str(&format!("  {} (boot repository)\n", r.display()));
    }
}
