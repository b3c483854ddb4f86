//! Loading the apkovl into the new root (Alpine §3.7): where it comes from
//! (`apkovl=` or the discovery's candidates), unpacking it safely, and what
//! the rest of the boot needs from it (member list, world packages).

use crate::discovery::DeviceSpec;
use crate::layout::Layout;
use crate::log;
use crate::media::Medium;
use crate::platform::Platform;
use alpinit_apkovl::{Limits, MemberList};
use alpinit_cmdline::ApkovlSpec;
use std::path::{Path, PathBuf};

/// Where the overlay file is, and what to undo afterwards.
#[derive(Debug, Default)]
pub struct Source {
    pub path: Option<PathBuf>,
    /// `apkovl=DEV:..` mounted this; unmounted after packages.
    pub unmount: Option<PathBuf>,
}

/// Picks the overlay file. `found_dev` is the device discovery matched for
/// `apkovl=DEV:..`, already probed.
pub fn locate(
    p: &Platform<'_>,
    layout: &Layout,
    spec: Option<&ApkovlSpec>,
    media: &[Medium],
    found_dev: Option<&str>,
    net: &crate::network::Network,
    loader: &alpinit_kmod::Loader,
) -> Source {
    match spec {
        None => Source {
            path: crate::media::choose_apkovl(media),
            unmount: None,
        },
        Some(ApkovlSpec::Path(p)) => Source {
            path: Some(layout.path(p)),
            unmount: None,
        },
        Some(ApkovlSpec::Url(u)) => match crate::network::fetch_apkovl(p, layout, net, u) {
            Some(path) => Source {
                path: Some(path),
                unmount: None,
            },
            None => Source {
                path: crate::media::choose_apkovl(media),
                unmount: None,
            },
        },
        Some(ApkovlSpec::Device {
            device,
            fstype,
            path,
        }) => {
            let devname =
                found_dev
                    .map(str::to_owned)
                    .unwrap_or_else(|| match DeviceSpec::parse(device) {
                        DeviceSpec::Name(n) => n,
                        _ => device.clone(),
                    });
            // Already mounted by the scan (it had findings): reuse it.
            if let Some(m) = media.iter().find(|m| m.devname == devname) {
                return Source {
                    path: Some(m.mountpoint.join(path.trim_start_matches('/'))),
                    unmount: None,
                };
            }
            let Some(fstype) = fstype
                .clone()
                .or_else(|| crate::media::fstype_of(layout, &devname))
            else {
                log::error(&format!(
                    "apkovl={device}:..: cannot tell the file system of /dev/{devname}"
                ));
                return Source::default();
            };
            crate::media::load_fs_modules(loader, layout, &fstype);
            match crate::media::mount(p.fs, layout, &devname, &fstype) {
                Ok(mnt) => Source {
                    path: Some(mnt.join(path.trim_start_matches('/'))),
                    unmount: Some(mnt),
                },
                Err(e) => {
                    log::error(&format!("apkovl={device}: {}", crate::failure::chain(&e)));
                    Source::default()
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error(transparent)]
    Unpack(#[from] alpinit_apkovl::UnpackError),
    #[error(transparent)]
    Encrypted(#[from] alpinit_apkovl::enc::EncError),
    #[error("no password given for {0}")]
    NoPassword(String),
}

/// Unpacks `path` into the sysroot and returns the member list.
pub fn unpack(p: &Platform<'_>, layout: &Layout, path: &Path) -> Result<MemberList, OverlayError> {
    let sysroot = layout.sysroot();
    let mut limits = Limits::default();
    if let Some(free) = crate::sysroot::free_bytes(&sysroot) {
        limits.max_total_bytes = limits.max_total_bytes.min(free);
        // The verified plan sits in RAM beside the tmpfs root: an eighth of its space.
        let plan = usize::try_from(free / 8).unwrap_or(usize::MAX).max(4 << 20);
        limits.max_plan_bytes = limits.max_plan_bytes.min(plan);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let report = match alpinit_apkovl::enc::cipher_from_suffix(&name)? {
        None => alpinit_apkovl::unpack_file(path, &sysroot, &limits)?,
        Some(cipher) => {
            crate::password::unpack_encrypted(p.console, path, cipher, &sysroot, &limits)?
        }
    };
    for w in &report.warnings {
        log::warn(w);
    }
    log::info(&format!(
        "unpacked {} entries, {} bytes from {}",
        report.entries,
        report.bytes,
        path.display()
    ));
    Ok(report.members)
}

/// Package names listed in the overlay's `/etc/apk/world`.
pub fn world(layout: &Layout) -> Vec<String> {
    crate::in_root::NewRoot::open(&layout.sysroot())
        .and_then(|root| root.read_to_string("etc/apk/world"))
        .map(|t| t.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The overlay phase's result: where the overlay came from and what it held.
#[derive(Debug, Default)]
pub struct Applied {
    pub source: Source,
    /// The unpacked member list (None: no overlay applied).
    pub members: Option<MemberList>,
}

impl Applied {
    /// An apkovl file was located (whether or not it was applied).
    pub fn found(&self) -> bool {
        self.source.path.as_deref().is_some_and(Path::is_file)
    }
}

/// The overlay phase: locate the apkovl, let apk create its database,
/// unpack, and close `/root`. A rejected overlay is a failure; nothing of
/// it was written, and the boot may go on without it.
pub fn apply(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &alpinit_cmdline::Cmdline,
    findings: &crate::discovery::Findings,
    net: &crate::network::Network,
    loader: &alpinit_kmod::Loader,
) -> crate::failure::Partial<Applied> {
    let spec = cmdline.apkovl();
    // Two devices match `apkovl=DEV:..` (a cloned stick): pick neither; after
    // the shell the boot goes on without an overlay.
    let found_dev = match &spec {
        Some(ApkovlSpec::Device { device, .. }) => {
            match findings.wanted.unique("apkovl device", device) {
                Ok(d) => d.map(str::to_owned),
                Err(e) => {
                    log::phase("apkovl-chosen");
                    log::phase("unpacked");
                    return Err(Box::new((Applied::default(), e.into())));
                }
            }
        }
        _ => None,
    };
    let source = locate(
        p,
        layout,
        spec.as_ref(),
        &findings.media,
        found_dev.as_deref(),
        net,
        loader,
    );
    log::phase("apkovl-chosen");
    let mut applied = Applied {
        source,
        members: None,
    };
    let Some(path) = applied.source.path.clone() else {
        log::phase("unpacked");
        return Ok(applied);
    };
    if !path.is_file() {
        log::error(&format!(
            "apkovl {} does not exist or is not a file",
            path.display()
        ));
        log::phase("unpacked");
        return Ok(applied);
    }
    let shown = crate::packages::unroot(layout, &path);
    let progress = log::Progress::begin(&format!("Loading user settings from {shown}"));
    let apk = layout.path("/sbin/apk");
    if apk.is_file() {
        let args = ["add", "--root", "/sysroot", "--initdb", "--quiet"].map(str::to_owned);
        match p.spawn.run(&apk, &args, &[], crate::platform::Stdin::Null) {
            Ok(s) if s.success() => {}
            Ok(s) => log::warn(&format!("{} {}: {s}", apk.display(), args.join(" "))),
            Err(e) => log::warn(&format!("{}: {e}", apk.display())),
        }
    }
    let result = unpack(p, layout, &path);
    let failure = match result {
        Ok(m) => {
            progress.ok();
            applied.members = Some(m);
            None
        }
        Err(source) => {
            progress.failed(&crate::failure::chain(&source));
            Some(crate::failure::Failure::OverlayRejected { shown, source })
        }
    };
    // Alpine: the overlay may carry /root with any mode; it is private.
    crate::in_root::restrict_root_home(layout);
    log::phase("unpacked");
    match failure {
        None => Ok(applied),
        Some(f) => Err(Box::new((applied, f))),
    }
}

/// Unmounts what `apkovl=DEV:..` mounted, once packages are installed.
pub fn release(p: &Platform<'_>, applied: &Applied) {
    if let Some(m) = &applied.source.unmount {
        if let Err(e) = p.fs.umount(m, false) {
            log::warn(&format!("unmounting {}: {e}", m.display()));
        }
    }
}
