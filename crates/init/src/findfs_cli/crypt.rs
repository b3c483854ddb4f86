//! nlplug-findfs' LUKS options (`-c -H -k -m -o -D`), as its
//! `search_cryptdevs` and `cryptsetup_thread` use them
//! (`nlplug-findfs/nlplug-findfs.c` in the mkinitfs source): the data
//! device `-c` (and a header `-H` that is no regular file) is waited for,
//! opened with the key file `-k` (else a passphrase typed on the console)
//! and mapped as `/dev/mapper/NAME` (`-m`; without it nlplug maps nothing)
//! before the media scan, which then finds the mapping (`dm-N`) and what is
//! on it like any disk. A failure is reported and the scan goes on, as
//! nlplug's thread warns and the uevent loop goes on.

use std::path::PathBuf;

use super::Args;
use crate::crypt::{CryptError, CryptOptions, KeySource};
use crate::discovery::{self, DeviceSpec};
use crate::layout::Layout;
use crate::platform::Platform;

#[derive(Debug, thiserror::Error)]
pub enum FindfsCryptError {
    #[error("crypt header {spec} not found ({block_devices} block devices seen)")]
    HeaderNotFound { spec: String, block_devices: usize },
    #[error(transparent)]
    HeaderAmbiguous(#[from] crate::devices::DeviceError),
    #[error("crypt header {path}: the current directory: {source}")]
    Cwd {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Crypt(#[from] CryptError),
}

/// What `open` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// No `-c`.
    Nothing,
    /// `-c` without `-m`: nothing to map, as nlplug.
    NoName,
    /// The mapping's kernel name (`dm-0`).
    Mapped(String),
}

/// Unlocks and maps the volume ARGS name, waiting for its devices under
/// SCAN's rules (the media scan itself is not done here).
pub fn open(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    args: &Args,
    scan: &discovery::Options,
) -> Result<Opened, FindfsCryptError> {
    let c = &args.crypt;
    let Some(device) = &c.device else {
        return Ok(Opened::Nothing);
    };
    let Some(name) = &c.name else {
        return Ok(Opened::NoName);
    };
    let mut wait = scan.clone();
    wait.scan_media = false;
    let header = match c.header.as_deref() {
        Some(h) => Some(header_path(p, layout, loader, &wait, h)?),
        None => None,
    };
    // `-k EXEC=prog` runs prog for the key, as `cryptkey=EXEC=` does (nlplug
    // 1338-1363 and reference §2: no passphrase fallback after it).
    let key = c.key.as_ref().map(|k| KeySource {
        exec: k.starts_with("EXEC="),
        path: PathBuf::from(k.strip_prefix("EXEC=").unwrap_or(k)),
        offset: c.key_range.map_or(0, |(offset, _)| offset),
        size: c.key_range.map(|(_, size)| size).filter(|s| *s > 0),
    });
    let opts = CryptOptions {
        device: device.clone(),
        name: name.clone(),
        key,
        // Already resolved here (a file relative to the current directory,
        // as nlplug reads it, or the device found): passed on as a path.
        header: header.map(|h| h.to_string_lossy().into_owned()),
        offset: c.offset,
        discards: c.discards,
    };
    let dm = crate::crypt::find_and_open(p, layout, loader, &opts, &wait)?;
    Ok(Opened::Mapped(dm))
}

/// `-H`: a regular file is the header (a relative path is from the current
/// directory, as nlplug's `regular_file` reads it); anything else is a
/// device specification, waited for like `-c`.
fn header_path(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    wait: &discovery::Options,
    spec: &str,
) -> Result<PathBuf, FindfsCryptError> {
    let given = PathBuf::from(spec);
    let file = if given.is_absolute() {
        given
    } else {
        std::env::current_dir()
            .map_err(|source| FindfsCryptError::Cwd {
                path: given.clone(),
                source,
            })?
            .join(&given)
    };
    let in_layout = layout.root().join(file.strip_prefix("/").unwrap_or(&file));
    if std::fs::metadata(&in_layout).is_ok_and(|m| m.is_file()) {
        return Ok(file);
    }
    let mut w = wait.clone();
    w.wanted = Some(DeviceSpec::parse(spec));
    let findings = discovery::discover(p, layout, loader, &w);
    match findings.wanted.unique("crypt header", spec)? {
        Some(dev) => Ok(PathBuf::from(format!("/dev/{dev}"))),
        None => Err(FindfsCryptError::HeaderNotFound {
            spec: spec.to_string(),
            block_devices: findings.block_devices,
        }),
    }
}
