//! One kernel uevent: the datagram format and the validated fields the init acts on.

use std::fmt;

/// Most `KEY=VALUE` pairs kept from one event; the kernel sends at most 64.
pub const MAX_PAIRS: usize = 128;

/// Longest accepted value (and header); the kernel's whole environment is 2 KiB.
pub const MAX_VALUE_LEN: usize = 4096;

/// Prefix of the messages libudev re-broadcasts; they are not kernel events.
const LIBUDEV_MAGIC: &[u8] = b"libudev\0";

/// Longest excerpt of hostile input quoted in an error message.
const QUOTE_LEN: usize = 128;

/// What happened to the device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Add,
    Remove,
    Change,
    Move,
    Online,
    Offline,
    Bind,
    Unbind,
    Other(String),
}

impl Action {
    fn parse(text: &str) -> Self {
        match text {
            "add" => Self::Add,
            "remove" => Self::Remove,
            "change" => Self::Change,
            "move" => Self::Move,
            "online" => Self::Online,
            "offline" => Self::Offline,
            "bind" => Self::Bind,
            "unbind" => Self::Unbind,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The kernel's spelling (`add`, `remove`, …).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Change => "change",
            Self::Move => "move",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Bind => "bind",
            Self::Unbind => "unbind",
            Self::Other(text) => text,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A parsed and validated uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    pub action: Action,
    /// Path below `/sys`, e.g. `/devices/pci0000:00/…/block/vda/vda1`.
    pub devpath: String,
    pub subsystem: Option<String>,
    /// `disk` or `partition` for block devices.
    pub devtype: Option<String>,
    /// Node name below `/dev` (`vda1`, `bus/usb/001/002`); never absolute, never with `..`.
    pub devname: Option<String>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub modalias: Option<String>,
    pub partn: Option<u32>,
    pub seqnum: Option<u64>,
    /// Every accepted `KEY=VALUE` pair in arrival order, at most [`MAX_PAIRS`].
    pub env: Vec<(String, String)>,
}

impl Uevent {
    /// The last value of `key` in [`Uevent::env`] (e.g. `DRIVER`, `ID_FS_TYPE`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

/// Why a datagram (or a sysfs `uevent` file) was not turned into a [`Uevent`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("empty uevent")]
    Empty,
    #[error("libudev message, not a kernel uevent")]
    Libudev,
    #[error("malformed uevent header {header:?}")]
    Header { header: String },
    #[error("uevent has no action")]
    MissingAction,
    #[error("uevent DEVPATH {devpath:?} is not an absolute path without '..'")]
    Devpath { devpath: String },
    #[error("uevent DEVNAME {devname:?} would leave /dev")]
    Devname { devname: String },
    #[error("uevent {key}={value:?} is not a valid number")]
    Number { key: &'static str, value: String },
}

/// Parses a kernel datagram `ACTION@DEVPATH\0KEY=VALUE\0…`.
///
/// Malformed pairs (no `=`, bad key, not UTF-8, too long) are skipped, pairs beyond
/// [`MAX_PAIRS`] are ignored, and `ACTION=`/`DEVPATH=` pairs take precedence over the header.
pub fn parse(datagram: &[u8]) -> Result<Uevent, ParseError> {
    if datagram.starts_with(LIBUDEV_MAGIC) {
        return Err(ParseError::Libudev);
    }
    let mut chunks = datagram.split(|byte| *byte == 0);
    let header = chunks.next().unwrap_or_default();
    if header.is_empty() {
        return Err(ParseError::Empty);
    }
    let (action, devpath) = std::str::from_utf8(header)
        .ok()
        .filter(|text| text.len() <= MAX_VALUE_LEN)
        .and_then(|text| text.split_once('@'))
        .filter(|(action, devpath)| !action.is_empty() && !devpath.is_empty())
        .ok_or_else(|| ParseError::Header {
            header: quote(header),
        })?;
    let mut fields = Fields::default();
    for chunk in chunks {
        if let Some((key, value)) = split_pair(chunk) {
            fields.push(key, value);
        }
    }
    fields.finish(Some(action), Some(devpath))
}

/// A quoted, length-limited rendering of untrusted bytes for error messages.
fn quote(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTE_LEN)]).into_owned()
}

/// Splits one `KEY=VALUE` chunk; `None` for anything malformed.
pub(crate) fn split_pair(chunk: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(chunk).ok()?;
    let (key, value) = text.split_once('=')?;
    let key_ok = !key.is_empty()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    (key_ok && value.len() <= MAX_VALUE_LEN).then_some((key, value))
}

/// Accumulates pairs from a datagram or a sysfs `uevent` file, then validates them.
#[derive(Default)]
pub(crate) struct Fields {
    pairs: Vec<(String, String)>,
}

impl Fields {
    /// Keeps a pair unless the cap is reached.
    pub(crate) fn push(&mut self, key: &str, value: &str) {
        if self.pairs.len() < MAX_PAIRS {
            self.pairs.push((key.to_owned(), value.to_owned()));
        }
    }

    /// Builds the event; `action`/`devpath` are fallbacks for missing pairs.
    pub(crate) fn finish(
        self,
        action: Option<&str>,
        devpath: Option<&str>,
    ) -> Result<Uevent, ParseError> {
        let last = |key: &str| {
            self.pairs
                .iter()
                .rev()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.as_str())
        };
        let action = last("ACTION")
            .or(action)
            .filter(|action| !action.is_empty())
            .ok_or(ParseError::MissingAction)?;
        let devpath = last("DEVPATH").or(devpath).unwrap_or_default();
        if !devpath.starts_with('/') || devpath.split('/').any(|part| part == "..") {
            return Err(ParseError::Devpath {
                devpath: quote(devpath.as_bytes()),
            });
        }
        let devname = last("DEVNAME");
        if let Some(name) = devname {
            if name.is_empty() || name.starts_with('/') || name.contains("..") {
                return Err(ParseError::Devname {
                    devname: quote(name.as_bytes()),
                });
            }
        }
        let owned = |value: Option<&str>| value.map(str::to_owned);
        Ok(Uevent {
            action: Action::parse(action),
            devpath: devpath.to_owned(),
            subsystem: owned(last("SUBSYSTEM")),
            devtype: owned(last("DEVTYPE")),
            devname: owned(devname),
            major: number(last("MAJOR"), "MAJOR")?,
            minor: number(last("MINOR"), "MINOR")?,
            modalias: owned(last("MODALIAS")),
            partn: number(last("PARTN"), "PARTN")?,
            seqnum: number(last("SEQNUM"), "SEQNUM")?,
            env: self.pairs,
        })
    }
}

/// Parses a decimal field; out-of-range or garbage values reject the whole event.
fn number<T: std::str::FromStr>(
    value: Option<&str>,
    key: &'static str,
) -> Result<Option<T>, ParseError> {
    value
        .map(|text| {
            let digits = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
            digits
                .then(|| text.parse().ok())
                .flatten()
                .ok_or_else(|| ParseError::Number {
                    key,
                    value: quote(text.as_bytes()),
                })
        })
        .transpose()
}
