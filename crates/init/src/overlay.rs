//! Loading the apkovl into the new root (Alpine §3.7): where it comes from
//! (`apkovl=` or the discovery's candidates), unpacking it safely, and what
//! the rest of the boot needs from it (member list, world packages).

use crate::discovery::DeviceSpec;
use crate::layout::Layout;
use crate::log;
use crate::media::Medium;
use alpinit_apkovl::{Limits, MemberList};
use alpinit_cmdline::ApkovlSpec;
use alpinit_sys::Sys;
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
    sys: &dyn Sys,
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
        Some(ApkovlSpec::Url(u)) => match crate::network::fetch_apkovl(layout, net, u) {
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
            crate::media::load_fs_modules(loader, &fstype);
            match crate::media::mount(sys, layout, &devname, &fstype) {
                Ok(mnt) => Source {
                    path: Some(mnt.join(path.trim_start_matches('/'))),
                    unmount: Some(mnt),
                },
                Err(e) => {
                    log::error(&format!("apkovl={device}: {e}"));
                    Source::default()
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("{0}")]
    Unpack(#[from] alpinit_apkovl::UnpackError),
    #[error("{0}")]
    Encrypted(#[from] alpinit_apkovl::enc::EncError),
    #[error("no password given for {0}")]
    NoPassword(String),
}

/// Unpacks `path` into the sysroot and returns the member list.
pub fn unpack(layout: &Layout, path: &Path) -> Result<MemberList, OverlayError> {
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
        Some(cipher) => crate::password::unpack_encrypted(path, cipher, &sysroot, &limits)?,
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
    std::fs::read_to_string(layout.in_sysroot("/etc/apk/world"))
        .map(|t| t.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}
