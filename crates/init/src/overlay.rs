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
    /// The URL `path` was downloaded from (its signature is the URL + `.sig`).
    pub url: Option<String>,
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
            ..Source::default()
        },
        Some(ApkovlSpec::Path(p)) => Source {
            path: Some(layout.path(p)),
            ..Source::default()
        },
        Some(ApkovlSpec::Url(u)) => match crate::network::fetch_apkovl(p, layout, net, u) {
            Some(path) => Source {
                path: Some(path),
                // As fetch_apkovl substitutes it.
                url: Some(alpinit_net::substitute(
                    u,
                    net.mac(),
                    alpinit_net::machine_uuid(&layout.sys()).as_deref(),
                )),
                unmount: None,
            },
            None => Source {
                path: crate::media::choose_apkovl(media),
                ..Source::default()
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
                    ..Source::default()
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
                    url: None,
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
    #[error(transparent)]
    Signature(#[from] crate::signature::SignatureError),
}

/// Unpacks `path` into the sysroot and returns the member list. A password
/// typed for an encrypted overlay is kept in `password` for its backups.
pub fn unpack(
    p: &Platform<'_>,
    layout: &Layout,
    path: &Path,
    password: &mut Option<Vec<u8>>,
) -> Result<MemberList, OverlayError> {
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
            crate::password::unpack_encrypted(p.console, path, cipher, &sysroot, &limits, password)?
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
    let keys = load_keys(layout);
    let mut password = None;
    let mut record = crate::rollback::Record::default();
    let url = applied.source.url.clone();
    let result = verify_and_unpack(
        p,
        layout,
        net,
        keys.as_ref(),
        &path,
        url.as_deref(),
        &mut password,
    );
    let failure = match result {
        Ok(m) => {
            progress.ok();
            record.applied(&shown);
            applied.members = Some(m);
            None
        }
        Err(source) => {
            let why = crate::failure::chain(&source);
            progress.failed(&why);
            record.failed(&shown, &why);
            let fallback = cmdline.apkovl_fallback() && url.is_none();
            let rolled = if fallback && crate::rollback::is_damage(&source) {
                roll_back(
                    p,
                    layout,
                    net,
                    keys.as_ref(),
                    &path,
                    &shown,
                    &mut password,
                    &mut record,
                )
            } else {
                None
            };
            match rolled {
                Some(m) => {
                    applied.members = Some(m);
                    None
                }
                None => Some(crate::failure::Failure::OverlayRejected { shown, source }),
            }
        }
    };
    // Alpine: the overlay may carry /root with any mode; it is private.
    crate::in_root::restrict_root_home(layout);
    record.write(&layout.sysroot());
    log::phase("unpacked");
    match failure {
        None => Ok(applied),
        Some(f) => Err(Box::new((applied, f))),
    }
}

/// The image's keys (README "Signed overlays"). A key directory that
/// cannot be read keeps the check on with no usable key: fail closed.
fn load_keys(layout: &Layout) -> Option<crate::signature::Keys> {
    let dir = layout.path(crate::signature::KEYS_DIR);
    match crate::signature::Keys::load(&dir) {
        Ok(keys) => keys,
        Err(e) => {
            log::error(&crate::failure::chain(&e));
            Some(crate::signature::Keys::none_usable())
        }
    }
}

/// With keys, the signature first (on the file as stored, before any
/// decryption or unpack), then the unpack.
fn verify_and_unpack(
    p: &Platform<'_>,
    layout: &Layout,
    net: &crate::network::Network,
    keys: Option<&crate::signature::Keys>,
    path: &Path,
    url: Option<&str>,
    password: &mut Option<Vec<u8>>,
) -> Result<MemberList, OverlayError> {
    if let Some(keys) = keys {
        let shown = PathBuf::from(crate::packages::unroot(layout, path));
        let (sig_name, sig) = match url {
            Some(u) => {
                let sig_url = format!("{u}{}", alpinit_apkovl::SIG_SUFFIX);
                let sig = fetch_sig(p, layout, net, &sig_url)?;
                (sig_url, sig)
            }
            None => {
                let (sig_path, sig) = crate::signature::read_sig_beside(path, &shown)?;
                (sig_path.display().to_string(), sig)
            }
        };
        let key = keys.verify_file(path, &shown, &sig_name, &sig)?;
        log::info(&format!(
            "{}: signature {sig_name} good (key {key})",
            path.display()
        ));
    }
    unpack(p, layout, path, password)
}

/// Downloads a detached signature (at most [`crate::signature::MAX_SIG_BYTES`]).
fn fetch_sig(
    p: &Platform<'_>,
    layout: &Layout,
    net: &crate::network::Network,
    url: &str,
) -> Result<Vec<u8>, crate::signature::SignatureError> {
    let resolvers = net
        .lease
        .as_ref()
        .map(|l| l.dns.clone())
        .unwrap_or_default();
    let opts = alpinit_net::FetchOptions {
        ca_bundle: Some(layout.path(alpinit_net::FetchOptions::DEFAULT_CA_BUNDLE)),
        max_bytes: crate::signature::MAX_SIG_BYTES,
        ..alpinit_net::FetchOptions::default()
    };
    let mut sig = Vec::new();
    p.net
        .fetch(url, &resolvers, &opts, &mut sig)
        .map_err(|source| crate::signature::SignatureError::SigDownload {
            url: url.to_owned(),
            source: Box::new(source),
        })?;
    Ok(sig)
}

/// Tries the backups of the damaged overlay `failed`, newest first; the
/// first one that verifies is applied. Says which one on the console.
#[allow(clippy::too_many_arguments)]
fn roll_back(
    p: &Platform<'_>,
    layout: &Layout,
    net: &crate::network::Network,
    keys: Option<&crate::signature::Keys>,
    failed: &Path,
    shown: &str,
    password: &mut Option<Vec<u8>>,
    record: &mut crate::rollback::Record,
) -> Option<MemberList> {
    let backups = crate::rollback::backups(failed);
    if backups.is_empty() {
        log::info(&format!("{shown}: no backup beside it to fall back to"));
        return None;
    }
    for b in backups {
        let name = crate::packages::unroot(layout, &b.path);
        let date = b.date();
        let progress = log::Progress::begin(&format!("Loading backup {name} from {date}"));
        match verify_and_unpack(p, layout, net, keys, &b.path, None, password) {
            Ok(m) => {
                progress.ok();
                log::console(&format!(
                    "The overlay {shown} is damaged; booted its backup {name} from {date} instead.\n"
                ));
                record.applied(&format!("{name} (backup from {date}, instead of {shown})"));
                return Some(m);
            }
            Err(e) => {
                let why = crate::failure::chain(&e);
                progress.failed(&why);
                record.failed(&format!("{name} (backup from {date})"), &why);
            }
        }
    }
    None
}

/// Unmounts what `apkovl=DEV:..` mounted, once packages are installed.
pub fn release(p: &Platform<'_>, applied: &Applied) {
    if let Some(m) = &applied.source.unmount {
        if let Err(e) = p.fs.umount(m, false) {
            log::warn(&format!("unmounting {}: {e}", m.display()));
        }
    }
}
