//! LUKS volumes (`cryptroot=`, `cryptdm=`, `cryptkey`, `cryptheader=`, `cryptoffset=`,
//! `cryptdiscards`): unlock the volume in process (alpinit-luks) and create the
//! dm-crypt mapping through device-mapper ioctls; no cryptsetup, no libraries. In root
//! mode before the root device wait, in diskless mode before the boot media scan (which
//! then finds media inside the mapping, as nlplug-findfs' does).
//!
//! As nlplug-findfs (`../shared/reference/alpine-initramfs.md` §2.6.2): a key file is
//! tried first, then up to 5 passphrases with Alpine's texts; an `EXEC=` key is the
//! only one tried. Where nlplug-findfs only verifies the passphrase without `cryptdm=`,
//! the mapping is named `root` here, so `cryptroot=` alone is enough to boot. A header
//! using something alpinit-luks does not support is handed to the image's
//! `/sbin/cryptsetup` when there is one.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use alpinit_cmdline::Cmdline;
use alpinit_luks::{dm, Header, Limits, LuksError, Unlocked};
use zeroize::Zeroizing;

use crate::failure::{End, Failure, Policy};
use crate::layout::Layout;
use crate::log;
use crate::platform::{DeviceMapper, Platform, Stdin};

#[path = "crypt_key.rs"]
mod key;
pub use key::{KeySource, DEFAULT_KEY_FILE, EXEC_LIMIT};

/// nlplug-findfs' number of passphrase attempts.
pub const TRIES: usize = 5;
/// Modules every mapping needs, queued as soon as a LUKS device is seen
/// (before its header says its cipher); built-in ones fail to load and that
/// is fine. `crypto-aes` and `crypto-xts(aes)` are the kernel's own aliases
/// for the CPU's AES (aesni_intel; aes-ce-blk, aes-neon-bs on arm64): loaded
/// before the table, the mapping gets them (it keeps what it was made with),
/// and the kernel finds `xts(aes)` registered instead of running `modprobe`
/// for it (six runs for an aes-xts-plain64 table: crypto-xts(aes),
/// crypto-aes, crypto-ecb(aes), each also with `-all`). XTS is here because
/// it is cryptsetup's default; what other modes add is [`cipher_modules`].
pub(crate) const MODULES: &[&str] = &["dm-crypt", "crypto-aes", "crypto-xts(aes)", "xts", "ecb"];

/// What the segment's `cipher` needs beyond [`MODULES`]: CBC's template, and
/// for ESSIV its template (with `authenc`, its dependency) and the hashes. An
/// XTS volume loads none of these: three modules it never uses, whose
/// loading (and, for `sha512_generic`, the kernel's self-tests of SHA-384 and
/// SHA-512 at registration) takes the one CPU of a TCG boot from the unlock.
/// Read with the luks crate's own parser; a cipher it does not know (opened
/// by cryptsetup instead) adds nothing.
pub(crate) fn cipher_modules(cipher: &str) -> &'static [&'static str] {
    match alpinit_luks::crypto::CipherSpec::parse(cipher) {
        Ok(spec) if spec.is_essiv() => &["cbc", "essiv", "sha512_generic"],
        Ok(spec) if spec.is_cbc() => &["cbc"],
        _ => &[],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("crypt device {spec} not found ({block_devices} block devices seen)")]
    NotFound { spec: String, block_devices: usize },
    #[error("{what} {spec} not found: no such file in the image, no such device ({block_devices} block devices seen)")]
    FileOrDeviceNotFound {
        what: &'static str,
        spec: String,
        block_devices: usize,
    },
    #[error(transparent)]
    Ambiguous(#[from] crate::devices::DeviceError),
    #[error("cryptkey=EXEC={prog}: {source}")]
    ExecKey { prog: PathBuf, source: io::Error },
    #[error("cryptkey=EXEC={prog}: {what}")]
    ExecKeyOutput { prog: PathBuf, what: String },
    #[error("the key {key} does not open {device} (no passphrase is asked after an EXEC= key)")]
    KeyRejected { key: String, device: String },
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

/// The `crypt*` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptOptions {
    /// `cryptroot=`: the device specification of the LUKS volume.
    pub device: String,
    /// `cryptdm=`, else `root`.
    pub name: String,
    pub key: Option<KeySource>,
    /// `cryptheader=`: a detached header, a file in the image, else a device
    /// specification waited for like `cryptroot=`.
    pub header: Option<String>,
    /// `cryptoffset=`: data start in 512-byte sectors (with a detached header).
    pub offset: Option<u64>,
    pub discards: bool,
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
            header: cmdline
                .get("cryptheader")
                .filter(|h| !h.is_empty())
                .map(str::to_string),
            offset,
            discards: cmdline.get("cryptdiscards").is_some_and(|v| v != "no"),
        }))
    }
}

/// Unlock with the key, then with up to [`TRIES`] passphrases from `ask`; `say`
/// prints Alpine's messages. Only a passphrase that matches no key slot is asked again.
/// An `EXEC=` key that does not open the volume is an error: nothing is asked then.
pub fn unlock(
    header: &Header,
    dev: &mut (impl Read + Seek),
    devnode: &str,
    key: Option<(&[u8], &KeySource)>,
    limits: &Limits,
    mut ask: impl FnMut(&str) -> Option<Vec<u8>>,
    mut say: impl FnMut(&str),
) -> Result<Unlocked, CryptError> {
    let failed = |source| CryptError::Unlock {
        device: devnode.to_string(),
        source,
    };
    if let Some((bytes, source)) = key {
        match header.unlock(dev, bytes, limits) {
            Ok(u) => return Ok(u),
            Err(LuksError::NoKeyslotMatched { .. }) if source.exec => {
                return Err(CryptError::KeyRejected {
                    key: source.describe(),
                    device: devnode.to_string(),
                })
            }
            Err(LuksError::NoKeyslotMatched { .. }) => log::warn(&format!(
                "the key file {} does not open {devnode}",
                source.describe()
            )),
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

/// Where the header is read: a file of the image or a device (`cryptheader=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderAt {
    /// The data device itself.
    Data,
    /// `cryptheader=PATH`, a regular file in the image.
    File(PathBuf),
    /// `cryptheader=SPEC` naming a device, found as `/dev/<name>`.
    Device(String),
}

/// The kernel's device-mapper, the [`DeviceMapper`] of PID 1's platform.
pub struct KernelDm;

impl DeviceMapper for KernelDm {
    fn create_crypt(
        &self,
        control: &Path,
        name: &str,
        uuid: &str,
        table: &dm::CryptTable,
    ) -> Result<(u32, u32), dm::DmError> {
        dm::Control::open(control)?.create_crypt(name, uuid, table, false)
    }
}

/// Open the LUKS volume on `/dev/<devname>` (its header where `header` says) and map
/// it as `/dev/mapper/<name>`; returns the mapping's kernel name (`dm-0`).
pub fn open(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    opts: &CryptOptions,
    devname: &str,
    header_at: &HeaderAt,
) -> Result<String, CryptError> {
    crate::modules::load_now_all(loader, MODULES);
    // As nlplug-findfs names it in its prompt: the spec when it is a path
    // (`/dev/vg0/lv_crypt`), else the kernel's node.
    let devnode = match opts.device.starts_with('/') {
        true => opts.device.clone(),
        false => format!("/dev/{devname}"),
    };
    let data_path = layout.dev().join(devname);
    let header_path = match header_at {
        HeaderAt::Data => data_path.clone(),
        HeaderAt::File(f) => layout.root().join(f.strip_prefix("/").unwrap_or(f)),
        HeaderAt::Device(d) => layout.dev().join(d),
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
            return run_cryptsetup(p, layout, opts, devname, header_at, &cryptsetup);
        }
        Err(source) => {
            return Err(CryptError::Header {
                path: header_path,
                source,
            })
        }
    };
    crate::modules::load_now_all(loader, cipher_modules(&segment.cipher));
    if let (Some(sectors), false) = (opts.offset, *header_at == HeaderAt::Data) {
        segment.offset = sectors.saturating_mul(512);
    }
    let key = match &opts.key {
        Some(k) if k.exec => Some(k.run(p.spawn, layout.root(), EXEC_LIMIT)?),
        Some(k) => Some(k.read(layout.root())?),
        None => None,
    };
    let meminfo = std::fs::read_to_string(layout.proc().join("meminfo")).unwrap_or_default();
    // Without /proc/meminfo, assume a small machine.
    let limits =
        Limits::for_mem_available(alpinit_luks::mem_available(&meminfo).unwrap_or(256 << 20));
    log::console("\x07");
    let mut unlocked = unlock(
        &header,
        &mut hdr,
        &devnode,
        key.as_deref().map(|k| &k[..]).zip(opts.key.as_ref()),
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
    let uuid = dm::luks_uuid(header.version(), header.uuid(), &opts.name);
    let (dmaj, dmin) =
        p.dm.create_crypt(&control_path, &opts.name, &uuid, &table)
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

/// The one device `spec` names, waited for as the root device is.
fn wait_for(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    discovery: &crate::discovery::Options,
    what: &'static str,
    spec: &str,
) -> Result<(Option<String>, usize), CryptError> {
    let mut search = discovery.clone();
    search.wanted = Some(crate::discovery::DeviceSpec::parse(spec));
    let findings = crate::discovery::discover(p, layout, loader, &search);
    let found = findings.wanted.unique(what, spec)?.map(str::to_owned);
    Ok((found, findings.block_devices))
}

/// None when `spec` is a regular file of the image, else the device it names: one
/// already there (storage is up after the data device's wait, and a second discovery
/// would run lvm and mdadm again), or one waited for as the data device is.
fn file_or_device(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    discovery: &crate::discovery::Options,
    what: &'static str,
    spec: &str,
) -> Result<Option<String>, CryptError> {
    if layout.path(spec).is_file() {
        return Ok(None);
    }
    let (now, _) = crate::root_mode::present(layout, &crate::discovery::DeviceSpec::parse(spec));
    let (found, block_devices) = match now.unique(what, spec)? {
        Some(d) => (Some(d.to_owned()), 0),
        None => wait_for(p, layout, loader, discovery, what, spec)?,
    };
    found.map(Some).ok_or(CryptError::FileOrDeviceNotFound {
        what,
        spec: spec.to_string(),
        block_devices,
    })
}

/// Wait for the device `opts.device` names (as the root device is waited for), and,
/// for a `cryptheader=` or `cryptkey=` that is not a file of the image, for the device
/// it names too (nlplug-findfs' rule, §2 `-H` and `-k`), then [`open`] it.
pub fn find_and_open(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &alpinit_kmod::Loader,
    opts: &CryptOptions,
    discovery: &crate::discovery::Options,
) -> Result<String, CryptError> {
    let devname = match wait_for(p, layout, loader, discovery, "crypt device", &opts.device)? {
        (Some(d), _) => d,
        (None, block_devices) => {
            return Err(CryptError::NotFound {
                spec: opts.device.clone(),
                block_devices,
            })
        }
    };
    let header_at = match &opts.header {
        None => HeaderAt::Data,
        Some(h) => match file_or_device(p, layout, loader, discovery, "crypt header", h)? {
            None => HeaderAt::File(h.into()),
            Some(d) => HeaderAt::Device(d),
        },
    };
    let mut opts = opts.clone();
    if let Some(key) = opts.key.as_mut().filter(|k| !k.exec) {
        let spec = key.path.display().to_string();
        if let Some(d) = file_or_device(p, layout, loader, discovery, "crypt key", &spec)? {
            key.path = Path::new("/dev").join(d);
        }
    }
    open(p, layout, loader, &opts, &devname, &header_at)
}

/// Diskless mode with `cryptroot=`: the volume is opened before the boot media are
/// looked for, so the media scan finds what the mapping holds (an apkovl, a boot
/// repository, an LVM volume group). A failure goes through the failure policy and
/// is tried again after the shell, as in root mode.
pub fn diskless(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &alpinit_kmod::Loader,
    early: &crate::early::Early,
    policy: &Policy,
) -> Result<(), End> {
    let crypt = CryptOptions::from_cmdline(cmdline)
        .or_else(|source| policy.handle(p, &Failure::Crypt { source }).map(|()| None))?;
    let Some(crypt) = crypt else {
        return Ok(());
    };
    let options = crate::root_mode::device_options(cmdline, early, &crypt.device);
    while let Err(source) = find_and_open(p, layout, loader, &crypt, &options) {
        policy.handle(p, &Failure::Crypt { source })?;
    }
    Ok(())
}

/// The fallback for headers alpinit-luks does not support.
fn run_cryptsetup(
    p: &Platform<'_>,
    layout: &Layout,
    opts: &CryptOptions,
    devname: &str,
    header_at: &HeaderAt,
    prog: &Path,
) -> Result<String, CryptError> {
    let device = format!("/dev/{devname}");
    let mut args = vec!["open".to_string(), "--type".into(), "luks".into()];
    match header_at {
        HeaderAt::Data => {}
        HeaderAt::File(f) => args.extend(["--header".into(), f.display().to_string()]),
        HeaderAt::Device(d) => args.extend(["--header".into(), format!("/dev/{d}")]),
    }
    let mut stdin_key = None;
    if let Some(k) = &opts.key {
        if k.exec {
            // cryptsetup reads the program's output from stdin: `--key-file -`.
            stdin_key = Some(k.run(p.spawn, layout.root(), EXEC_LIMIT)?);
            args.extend(["--key-file".into(), "-".into()]);
        } else {
            args.extend(["--key-file".into(), k.path.display().to_string()]);
            args.extend(["--keyfile-offset".into(), k.offset.to_string()]);
            if let Some(s) = k.size {
                args.extend(["--keyfile-size".into(), s.to_string()]);
            }
        }
    }
    if let Some(o) = opts.offset {
        args.extend(["--offset".into(), o.to_string()]);
    }
    if opts.discards {
        args.push("--allow-discards".into());
    }
    args.extend([device.clone(), opts.name.clone()]);
    let stdin = match &stdin_key {
        Some(k) => Stdin::Bytes(k),
        None => Stdin::Inherit,
    };
    let status = p
        .spawn
        .run(prog, &args, &[], stdin)
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
