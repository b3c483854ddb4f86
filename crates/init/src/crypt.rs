//! LUKS root (`cryptroot=`, `cryptdm=`, `cryptkey`, `cryptheader=`, `cryptoffset=`,
//! `cryptdiscards`): unlock the volume in process (alpinit-luks) and create the
//! dm-crypt mapping through device-mapper ioctls; no cryptsetup, no libraries.
//!
//! As nlplug-findfs (`../shared/reference/alpine-initramfs.md` §2.6.2): a key file is
//! tried first, then up to 5 passphrases with Alpine's texts. Where nlplug-findfs only
//! verifies the passphrase without `cryptdm=`, the mapping is named `root` here, so
//! `cryptroot=` alone is enough to boot. A header using something alpinit-luks does
//! not support is handed to the image's `/sbin/cryptsetup` when there is one.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use alpinit_cmdline::Cmdline;
use alpinit_luks::{dm, Header, Limits, LuksError, Unlocked};
use zeroize::Zeroizing;

use crate::layout::Layout;
use crate::log;
use crate::platform::{Platform, Stdin};

/// nlplug-findfs' number of passphrase attempts.
pub const TRIES: usize = 5;
/// The bare `cryptkey` (mkinitfs feature `cryptkey`).
pub const DEFAULT_KEY_FILE: &str = "/crypto_keyfile.bin";
/// cryptsetup's default key file size limit.
const MAX_KEY_FILE: u64 = 8 << 20;
/// Modules a mapping needs; built-in ones fail to load and that is fine.
const MODULES: &[&str] = &["dm-crypt", "xts", "ecb", "essiv", "sha512_generic"];

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("crypt device {spec} not found ({block_devices} block devices seen)")]
    NotFound { spec: String, block_devices: usize },
    #[error(transparent)]
    Ambiguous(#[from] crate::devices::DeviceError),
    #[error("cryptkey={0}: EXEC= keys are not supported")]
    ExecKey(String),
    #[error("cryptkey={value}: {what} is not a number")]
    KeyField { value: String, what: &'static str },
    #[error("cryptoffset={0} is not a number of sectors")]
    Offset(String),
    #[error("read key file {path}: {source}")]
    KeyFile { path: PathBuf, source: io::Error },
    #[error("open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("LUKS header of {path}: {source}")]
    Header { path: PathBuf, source: LuksError },
    #[error("unlocking {device}: {source}")]
    Unlock { device: String, source: LuksError },
    #[error("no passphrase for {0} (end of console input)")]
    NoPassphrase(String),
    #[error("Mounting {0} failed, amount of tries exhausted.")]
    TriesExhausted(String),
    #[error("{path}: {source}")]
    Sysfs { path: PathBuf, source: io::Error },
    #[error("{path}: unexpected content {text:?}")]
    SysfsFormat { path: PathBuf, text: String },
    #[error("mapping {name}: {source}")]
    Dm { name: String, source: dm::DmError },
    #[error("/sbin/cryptsetup open {device} {name}: {source}")]
    Cryptsetup {
        device: String,
        name: String,
        source: io::Error,
    },
    #[error("/sbin/cryptsetup open {device} {name} failed: {status}")]
    CryptsetupStatus {
        device: String,
        name: String,
        status: std::process::ExitStatus,
    },
}

/// A key file: the whole file, or `size` bytes at `offset` (`cryptkey=PATH:OFF:SIZE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySource {
    pub path: PathBuf,
    pub offset: u64,
    pub size: Option<u64>,
}

/// The `crypt*` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptOptions {
    /// `cryptroot=`: the device specification of the LUKS volume.
    pub device: String,
    /// `cryptdm=`, else `root`.
    pub name: String,
    pub key: Option<KeySource>,
    /// `cryptheader=`: a detached header file in the image.
    pub header: Option<PathBuf>,
    /// `cryptoffset=`: data start in 512-byte sectors (with a detached header).
    pub offset: Option<u64>,
    pub discards: bool,
}

impl KeySource {
    /// `yes` (the bare option), `PATH` or `PATH:OFFSET:SIZE`.
    pub fn parse(value: &str) -> Result<KeySource, CryptError> {
        if value.starts_with("EXEC=") {
            return Err(CryptError::ExecKey(value.to_string()));
        }
        if value == "yes" || value.is_empty() {
            return Ok(KeySource {
                path: DEFAULT_KEY_FILE.into(),
                offset: 0,
                size: None,
            });
        }
        let parts: Vec<&str> = value.rsplitn(3, ':').collect();
        if let [size, offset, path] = parts[..] {
            if !path.is_empty()
                && offset.bytes().all(|b| b.is_ascii_digit())
                && size.bytes().all(|b| b.is_ascii_digit())
            {
                let num = |s: &str, what| {
                    s.parse::<u64>().map_err(|_| CryptError::KeyField {
                        value: value.to_string(),
                        what,
                    })
                };
                let size = num(size, "the size")?;
                return Ok(KeySource {
                    path: path.into(),
                    offset: num(offset, "the offset")?,
                    size: (size > 0).then_some(size),
                });
            }
        }
        Ok(KeySource {
            path: value.into(),
            offset: 0,
            size: None,
        })
    }

    /// The key bytes (at most 8 MiB, as cryptsetup), from the image at `root`.
    pub fn read(&self, root: &Path) -> Result<Zeroizing<Vec<u8>>, CryptError> {
        let path = root.join(self.path.strip_prefix("/").unwrap_or(&self.path));
        let err = |source| CryptError::KeyFile {
            path: path.clone(),
            source,
        };
        let mut f = File::open(&path).map_err(err)?;
        f.seek(SeekFrom::Start(self.offset)).map_err(err)?;
        let limit = self.size.unwrap_or(MAX_KEY_FILE).min(MAX_KEY_FILE);
        let mut key = Zeroizing::new(Vec::new());
        f.take(limit).read_to_end(&mut key).map_err(err)?;
        if self.size.is_some_and(|s| (key.len() as u64) < s) {
            return Err(err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "shorter than the size given",
            )));
        }
        Ok(key)
    }
}

impl CryptOptions {
    /// None without `cryptroot=`.
    pub fn from_cmdline(cmdline: &Cmdline) -> Result<Option<CryptOptions>, CryptError> {
        let Some(device) = cmdline.get("cryptroot") else {
            return Ok(None);
        };
        let key = cmdline
            .get("cryptkey")
            .filter(|v| *v != "no")
            .map(KeySource::parse)
            .transpose()?;
        let offset = cmdline
            .get("cryptoffset")
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| CryptError::Offset(v.to_string()))
            })
            .transpose()?;
        Ok(Some(CryptOptions {
            device: device.to_string(),
            name: cmdline
                .get("cryptdm")
                .filter(|n| !n.is_empty())
                .unwrap_or("root")
                .to_string(),
            key,
            header: cmdline.get("cryptheader").map(PathBuf::from),
            offset,
            discards: cmdline.get("cryptdiscards").is_some_and(|v| v != "no"),
        }))
    }
}

/// Unlock with the key file, then with up to [`TRIES`] passphrases from `ask`; `say`
/// prints Alpine's messages. Only a passphrase that matches no key slot is asked again.
pub fn unlock(
    header: &Header,
    dev: &mut (impl Read + Seek),
    devnode: &str,
    key: Option<&[u8]>,
    limits: &Limits,
    mut ask: impl FnMut(&str) -> Option<Vec<u8>>,
    mut say: impl FnMut(&str),
) -> Result<Unlocked, CryptError> {
    let failed = |source| CryptError::Unlock {
        device: devnode.to_string(),
        source,
    };
    if let Some(key) = key {
        match header.unlock(dev, key, limits) {
            Ok(u) => return Ok(u),
            Err(LuksError::NoKeyslotMatched { .. }) => {
                log::warn(&format!("the key file does not open {devnode}"))
            }
            Err(e) => return Err(failed(e)),
        }
    }
    for _ in 0..TRIES {
        let Some(pass) = ask(&format!("Enter passphrase for {devnode}: ")).map(Zeroizing::new)
        else {
            return Err(CryptError::NoPassphrase(devnode.to_string()));
        };
        match header.unlock(dev, &pass, limits) {
            Ok(u) => return Ok(u),
            Err(LuksError::NoKeyslotMatched { .. }) => {
                say("No key available with this passphrase.\n")
            }
            Err(e) => return Err(failed(e)),
        }
    }
    Err(CryptError::TriesExhausted(devnode.to_string()))
}

fn sysfs(layout: &Layout, devname: &str, file: &str) -> Result<String, CryptError> {
    let path = layout.sys().join("class/block").join(devname).join(file);
    std::fs::read_to_string(&path).map_err(|source| CryptError::Sysfs { path, source })
}

/// `MAJOR:MINOR` and the size in bytes of a block device, from sysfs.
pub fn device_numbers(layout: &Layout, devname: &str) -> Result<(u32, u32, u64), CryptError> {
    let bad = |file: &str, text: &str| CryptError::SysfsFormat {
        path: layout.sys().join("class/block").join(devname).join(file),
        text: text.to_string(),
    };
    let dev = sysfs(layout, devname, "dev")?;
    let (major, minor) = dev
        .trim()
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| bad("dev", &dev))?;
    let size = sysfs(layout, devname, "size")?;
    let sectors: u64 = size.trim().parse().map_err(|_| bad("size", &size))?;
    Ok((major, minor, sectors.saturating_mul(512)))
}

/// What the kernel calls the device `major:minor` (`dm-0`).
fn kernel_name(layout: &Layout, major: u32, minor: u32) -> Result<String, CryptError> {
    let path = layout
        .sys()
        .join(format!("dev/block/{major}:{minor}/uevent"));
    let text = std::fs::read_to_string(&path).map_err(|source| CryptError::Sysfs {
        path: path.clone(),
        source,
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .map(str::to_string)
        .ok_or(CryptError::SysfsFormat { path, text })
}

/// Open the LUKS volume on `/dev/<devname>` and map it as `/dev/mapper/<name>`;
/// returns the mapping's kernel name (`dm-0`) for the root search.
pub fn open(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    opts: &CryptOptions,
    devname: &str,
) -> Result<String, CryptError> {
    crate::modules::load_now_all(loader, MODULES);
    let devnode = format!("/dev/{devname}");
    let data_path = layout.dev().join(devname);
    let header_path = match &opts.header {
        Some(h) => layout.root().join(h.strip_prefix("/").unwrap_or(h)),
        None => data_path.clone(),
    };
    let open = |path: &Path| {
        File::open(path).map_err(|source| CryptError::Open {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut hdr = open(&header_path)?;
    let header = Header::read(&mut hdr).map_err(|source| CryptError::Header {
        path: header_path.clone(),
        source,
    })?;
    let mut segment = match header.segment() {
        Ok(s) => s,
        Err(source @ LuksError::Unsupported { .. }) => {
            let cryptsetup = layout.root().join("sbin/cryptsetup");
            if !cryptsetup.is_file() {
                return Err(CryptError::Header {
                    path: header_path,
                    source,
                });
            }
            log::warn(&format!("{devnode}: {source}; using /sbin/cryptsetup"));
            return run_cryptsetup(p, layout, opts, devname, &cryptsetup);
        }
        Err(source) => {
            return Err(CryptError::Header {
                path: header_path,
                source,
            })
        }
    };
    if let (Some(sectors), Some(_)) = (opts.offset, &opts.header) {
        segment.offset = sectors.saturating_mul(512);
    }
    let key = opts
        .key
        .as_ref()
        .map(|k| k.read(layout.root()))
        .transpose()?;
    let meminfo = std::fs::read_to_string(layout.proc().join("meminfo")).unwrap_or_default();
    // Without /proc/meminfo, assume a small machine.
    let limits =
        Limits::for_mem_available(alpinit_luks::mem_available(&meminfo).unwrap_or(256 << 20));
    log::console("\x07");
    let mut unlocked = unlock(
        &header,
        &mut hdr,
        &devnode,
        key.as_deref().map(|k| &k[..]),
        &limits,
        |prompt| p.console.read_secret(prompt),
        log::console,
    )?;
    unlocked.segment = segment;
    let (major, minor, size) = device_numbers(layout, devname)?;
    let dm_err = |source| CryptError::Dm {
        name: opts.name.clone(),
        source,
    };
    let table = dm::crypt_table(
        &unlocked.segment,
        &unlocked.volume_key,
        major,
        minor,
        size,
        opts.discards,
    )
    .map_err(dm_err)?;
    let control_path = layout.dev().join("mapper/control");
    if !control_path.exists() {
        // A tmpfs /dev (no devtmpfs) has no node for it: device-mapper's control
        // device is misc 10:236 (the kernel's include/linux/miscdevice.h).
        let _ = std::fs::create_dir_all(layout.dev().join("mapper"));
        if let Err(e) =
            p.fs.mknod(&control_path, alpinit_sys::NodeKind::Char, 0o600, 10, 236)
        {
            log::debug(&format!("{}: {e}", control_path.display()));
        }
    }
    let control = dm::Control::open(&control_path).map_err(dm_err)?;
    let uuid = dm::luks_uuid(header.version(), header.uuid(), &opts.name);
    let (dmaj, dmin) = control
        .create_crypt(&opts.name, &uuid, &table, false)
        .map_err(dm_err)?;
    let node = layout.dev().join("mapper").join(&opts.name);
    if let Err(e) =
        p.fs.mknod(&node, alpinit_sys::NodeKind::Block, 0o600, dmaj, dmin)
    {
        log::warn(&format!("{}: {e}", node.display()));
    }
    log::info(&format!(
        "{devnode} unlocked (key slot {}), mapped as /dev/mapper/{}",
        unlocked.keyslot, opts.name
    ));
    kernel_name(layout, dmaj, dmin)
}

/// Wait for the device `opts.device` names (as the root device is waited for), then
/// [`open`] it.
pub fn find_and_open(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    opts: &CryptOptions,
    discovery: &crate::discovery::Options,
) -> Result<String, CryptError> {
    let mut search = discovery.clone();
    search.wanted = Some(crate::discovery::DeviceSpec::parse(&opts.device));
    let findings = crate::discovery::discover(p, layout, loader, &search);
    let devname = match findings.wanted.unique("crypt device", &opts.device)? {
        Some(d) => d.to_owned(),
        None => {
            return Err(CryptError::NotFound {
                spec: opts.device.clone(),
                block_devices: findings.block_devices,
            })
        }
    };
    open(p, layout, loader, opts, &devname)
}

/// The fallback for headers alpinit-luks does not support.
fn run_cryptsetup(
    p: &Platform<'_>,
    layout: &Layout,
    opts: &CryptOptions,
    devname: &str,
    prog: &Path,
) -> Result<String, CryptError> {
    let device = format!("/dev/{devname}");
    let mut args = vec!["open".to_string(), "--type".into(), "luks".into()];
    if let Some(h) = &opts.header {
        args.extend(["--header".into(), h.display().to_string()]);
    }
    if let Some(k) = &opts.key {
        args.extend(["--key-file".into(), k.path.display().to_string()]);
        args.extend(["--keyfile-offset".into(), k.offset.to_string()]);
        if let Some(s) = k.size {
            args.extend(["--keyfile-size".into(), s.to_string()]);
        }
    }
    if let Some(o) = opts.offset {
        args.extend(["--offset".into(), o.to_string()]);
    }
    if opts.discards {
        args.push("--allow-discards".into());
    }
    args.extend([device.clone(), opts.name.clone()]);
    let status = p
        .spawn
        .run(prog, &args, &[], Stdin::Inherit)
        .map_err(|source| CryptError::Cryptsetup {
            device: device.clone(),
            name: opts.name.clone(),
            source,
        })?;
    if !status.success() {
        return Err(CryptError::CryptsetupStatus {
            device,
            name: opts.name.clone(),
            status,
        });
    }
    // cryptsetup made the node itself (no udev in the initramfs).
    let node = layout.dev().join("mapper").join(&opts.name);
    let rdev = std::fs::metadata(&node)
        .map_err(|source| CryptError::Open { path: node, source })?
        .rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    kernel_name(layout, major, minor)
}

#[cfg(test)]
#[path = "crypt_tests.rs"]
pub(crate) mod tests;
