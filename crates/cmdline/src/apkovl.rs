//! The `apkovl=` option: where the diskless boot finds its overlay archive.

/// Schemes that make the script download a value with `wget` (its `is_url`).
const URL_SCHEMES: [&str; 3] = ["http://", "https://", "ftp://"];

/// Whether `value` starts with one of the schemes Alpine treats as a URL.
pub(crate) fn is_url(value: &str) -> bool {
    URL_SCHEMES.iter().any(|scheme| value.starts_with(scheme))
}

/// A parsed `apkovl=` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApkovlSpec {
    /// `http://`, `https://` or `ftp://`; `{MAC}` and `{UUID}` are still unexpanded.
    Url(String),
    /// `DEV:PATH` or `DEV:FSTYPE:PATH`: mount `device` (optionally as `fstype`) and read
    /// `path` relative to the mount point. `device` may be `LABEL=`/`UUID=` style.
    Device {
        device: String,
        fstype: Option<String>,
        path: String,
    },
    /// Anything else: a path inside the initramfs.
    Path(String),
}

impl ApkovlSpec {
    /// Classifies a raw `apkovl=` value the way the script's `prepare_apkovl` does.
    ///
    /// Exactly two or three `:`-separated fields make a device spec. A device spec with an
    /// empty device or path cannot be mounted, so it is kept as a plain path instead: the file
    /// will simply not be found and the boot goes on without an overlay. An empty file system
    /// type means "let mount detect it".
    pub fn parse(value: &str) -> Self {
        if is_url(value) {
            return Self::Url(value.to_owned());
        }
        let fields: Vec<&str> = value.split(':').collect();
        let (device, fstype, path) = match fields.as_slice() {
            [device, path] => (*device, "", *path),
            [device, fstype, path] => (*device, *fstype, *path),
            _ => return Self::Path(value.to_owned()),
        };
        if device.is_empty() || path.is_empty() {
            return Self::Path(value.to_owned());
        }
        Self::Device {
            device: device.to_owned(),
            fstype: (!fstype.is_empty()).then(|| fstype.to_owned()),
            path: path.to_owned(),
        }
    }
}
