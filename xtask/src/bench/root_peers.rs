//! The peers' images for `cargo xtask bench root`: Debian 12's
//! initramfs-tools, dracut and tiny-initramfs, each run by its own
//! generator for the test kernel inside a throwaway Debian root in the
//! cache (`target/alpinit-cache/peers/`), never on the host's /boot or
//! /lib/modules.
//!
//! Two roots, because `initramfs-tools` and `dracut` conflict:
//! - `itools`: `initramfs-tools`, `busybox`, `zstd`, `cryptsetup-initramfs`
//!   (what `apt-get install initramfs-tools cryptsetup-initramfs` gives a
//!   Debian 12 system with its recommends);
//! - `dracut`: `dracut`, `systemd` (Debian's init, so dracut builds the
//!   systemd-based image it builds on an installed system), `zstd`,
//!   `cryptsetup`, and `tiny-initramfs-core` (mktirfs; its own package
//!   conflicts with dracut's, the generator does not).
//!
//! What each generator is asked for, and why:
//! - initramfs-tools: its defaults (`MODULES=most`, `COMPRESS=zstd`): what
//!   Debian installs; it needs no host detection;
//! - dracut: `--no-hostonly`. Host-only mode inspects the machine running
//!   dracut (here the build host through the chroot's /sys), not the VM,
//!   so its module set would be an accident of the build machine;
//! - tiny-initramfs: `-m no` with `--include-modules` naming the VM's root
//!   path (virtio_pci, virtio_blk, ext4, crc32c): its auto-detection also
//!   looks at the build host, and the image has no udev to find drivers.
//!
//! The images are cached under `images/KVER_GENERATOR_VERSION/`, named
//! by the peer, the variant and a hash of the recipe below and the key.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::kernel::Kernel;
use crate::paths;
use crate::process::run;

/// The modules of the VM's root path, as tiny-initramfs is told them
/// (`--include-modules`) and `alpinit-min` its `/etc/modules`.
pub const VM_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "ext4",
    "crc32c_generic",
    "crc32c_intel",
];

const MIRROR: &str = "http://deb.debian.org/debian";
const SUITE: &str = "bookworm";

/// A throwaway Debian root with some generators in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuildRoot {
    Itools,
    Dracut,
}

impl BuildRoot {
    fn name(self) -> &'static str {
        match self {
            BuildRoot::Itools => "itools",
            BuildRoot::Dracut => "dracut",
        }
    }

    fn packages(self) -> &'static str {
        match self {
            BuildRoot::Itools => "initramfs-tools,busybox,zstd,cryptsetup,cryptsetup-initramfs",
            BuildRoot::Dracut => "dracut,systemd,zstd,cryptsetup,tiny-initramfs-core",
        }
    }
}

/// The generators compared against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    InitramfsTools,
    Dracut,
    TinyInitramfs,
}

impl Peer {
    pub const ALL: [Peer; 3] = [Peer::InitramfsTools, Peer::Dracut, Peer::TinyInitramfs];

    pub fn name(self) -> &'static str {
        match self {
            Peer::InitramfsTools => "initramfs-tools",
            Peer::Dracut => "dracut",
            Peer::TinyInitramfs => "tiny-initramfs",
        }
    }

    fn root(self) -> BuildRoot {
        match self {
            Peer::InitramfsTools => BuildRoot::Itools,
            Peer::Dracut | Peer::TinyInitramfs => BuildRoot::Dracut,
        }
    }

    /// The package whose version keys the cache.
    fn package(self) -> &'static str {
        match self {
            Peer::InitramfsTools => "initramfs-tools-core",
            Peer::Dracut => "dracut-core",
            Peer::TinyInitramfs => "tiny-initramfs-core",
        }
    }

    /// Whether the generator can unlock a LUKS root (tiny-initramfs cannot).
    pub fn has_luks(self) -> bool {
        self != Peer::TinyInitramfs
    }

    /// The shell run in the build root to write the image to OUT; with
    /// LUKS, the key file is at [`KEY_IN_ROOT`] in the build root.
    fn recipe(self, kver: &str, out: &str, luks: Option<&Luks>) -> String {
        match (self, luks) {
            (Peer::InitramfsTools, None) => format!(
                "rm -f /etc/crypttab\n\
                 printf '/dev/vda1 / ext4 ro 0 0\\n' > /etc/fstab\n\
                 mkinitramfs -o {out} {kver}\n"
            ),
            // cryptsetup-initramfs copies key files matching KEYFILE_PATTERN
            // (and then wants a private image, UMASK); `initramfs` in crypttab
            // puts the volume in the image without looking for the root
            // device, which the chroot does not have.
            (Peer::InitramfsTools, Some(luks)) => format!(
                "mkdir -p /etc/cryptsetup-initramfs\n\
                 echo 'KEYFILE_PATTERN=\"{KEY_IN_ROOT}\"' > /etc/cryptsetup-initramfs/conf-hook\n\
                 grep -qx 'UMASK=0077' /etc/initramfs-tools/initramfs.conf || \
                 echo 'UMASK=0077' >> /etc/initramfs-tools/initramfs.conf\n\
                 printf 'root UUID={uuid} {KEY_IN_ROOT} luks,initramfs\\n' > /etc/crypttab\n\
                 printf '/dev/mapper/root / ext4 ro 0 0\\n' > /etc/fstab\n\
                 mkinitramfs -o {out} {kver}\n\
                 rm -f /etc/crypttab\n",
                uuid = luks.uuid
            ),
            (Peer::Dracut, None) => format!("dracut --force --no-hostonly --kver {kver} {out}\n"),
            // The volume and key are named on the kernel command line
            // (`rd.luks.*`, see [`Peer::luks_cmdline`]).
            (Peer::Dracut, Some(_)) => format!(
                "dracut --force --no-hostonly --add crypt --install {KEY_IN_ROOT} --kver {kver} {out}\n"
            ),
            (Peer::TinyInitramfs, _) => format!(
                "mktirfs -o {out} -m no -M no -d no --include-modules={} {kver}\n",
                VM_MODULES.join(",")
            ),
        }
    }

    /// What the peer's image needs on the kernel command line besides
    /// `root=/dev/mapper/root` to unlock the LUKS root.
    pub fn luks_cmdline(self, luks: &Luks) -> String {
        match self {
            Peer::Dracut => format!(
                "rd.luks.uuid={u} rd.luks.name={u}=root rd.luks.key={KEY_IN_ROOT}",
                u = luks.uuid
            ),
            Peer::InitramfsTools | Peer::TinyInitramfs => String::new(),
        }
    }
}

/// Where the key file is in the build roots and in the dracut image.
pub const KEY_IN_ROOT: &str = "/etc/keys/root.key";

/// The LUKS2 volume the images are built for.
#[derive(Debug, Clone)]
pub struct Luks {
    pub uuid: String,
    /// The key file on the host.
    pub key: PathBuf,
}

/// A peer's image, built for the kernel.
#[derive(Debug, Clone)]
pub struct PeerImage {
    pub peer: Peer,
    pub path: PathBuf,
    pub size: u64,
    /// The generator's package and version (`dracut-core 059-4`).
    pub version: String,
}

fn cache() -> PathBuf {
    paths::target_dir().join("alpinit-cache").join("peers")
}

/// The images of PEERS for KERNEL (with LUKS: unlocking that volume),
/// built once per kernel, generator version, recipe and key.
pub fn images(kernel: &Kernel, peers: &[Peer], luks: Option<&Luks>) -> Result<Vec<PeerImage>> {
    let mut out = Vec::new();
    for peer in peers {
        let root = build_root(peer.root())?;
        let version = format!(
            "{} {}",
            peer.package(),
            package_version(&root, peer.package())?
        );
        let mut recipe = peer.recipe(&kernel.release, "OUT", luks).into_bytes();
        if let Some(luks) = luks {
            recipe.extend(
                fs::read(&luks.key).with_context(|| format!("reading {}", luks.key.display()))?,
            );
        }
        let dir = cache().join("images").join(format!(
            "{}_{}",
            kernel.release,
            version.replace([' ', '/', ':', '~'], "_")
        ));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let variant = if luks.is_some() { "luks2" } else { "ext4" };
        let path = dir.join(format!(
            "{}-{variant}-{:016x}.img",
            peer.name(),
            fnv1a(&recipe)
        ));
        if !path.is_file() {
            build(kernel, *peer, luks, &path)?;
        }
        let size = fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        out.push(PeerImage {
            peer: *peer,
            path,
            size,
            version,
        });
    }
    Ok(out)
}

/// `debootstrap --variant=minbase` of the root's packages, once.
fn build_root(which: BuildRoot) -> Result<PathBuf> {
    let root = cache().join(which.name());
    if root.join(".complete").is_file() {
        return Ok(root);
    }
    let partial = cache().join(format!("{}.partial", which.name()));
    for old in [&partial, &root] {
        if old.exists() {
            fs::remove_dir_all(old).with_context(|| format!("removing {}", old.display()))?;
        }
    }
    fs::create_dir_all(cache()).with_context(|| format!("creating {}", cache().display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the peers' images are built by debootstrap and chroot, which need root: \
             run `cargo xtask bench root` as root"
        );
    }
    if !Path::new("/usr/sbin/debootstrap").is_file() {
        bail!("debootstrap is missing: apt-get install debootstrap");
    }
    eprintln!(
        "debootstrap {SUITE} with {} into {}",
        which.packages(),
        partial.display()
    );
    run(Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", which.packages()))
        .arg(SUITE)
        .arg(&partial)
        .arg(MIRROR))?;
    fs::rename(&partial, &root).with_context(|| format!("renaming to {}", root.display()))?;
    fs::write(root.join(".complete"), b"").context("marking the build root complete")?;
    Ok(root)
}

/// The installed version of PACKAGE in ROOT (dpkg's database, no chroot).
fn package_version(root: &Path, package: &str) -> Result<String> {
    let out = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f", "${Version}", package])
        .output()
        .context("running dpkg-query")?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version.is_empty() {
        bail!(
            "{package} is not installed in {}: {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(version)
}

/// Runs PEER's generator in its build root with the kernel's modules, and
/// moves the image to OUT.
fn build(kernel: &Kernel, peer: Peer, luks: Option<&Luks>, out: &Path) -> Result<()> {
    let root = build_root(peer.root())?;
    install_kernel(kernel, &root)?;
    if let Some(luks) = luks {
        let key = root.join(KEY_IN_ROOT.trim_start_matches('/'));
        if let Some(parent) = key.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::copy(&luks.key, &key).with_context(|| format!("copying {}", luks.key.display()))?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", key.display()))?;
    }
    let inside = format!("/tmp/alpinit-bench/{}.img", peer.name());
    let made = root.join(inside.trim_start_matches('/'));
    if let Some(parent) = made.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let _ = fs::remove_file(&made);
    eprintln!("building the {} image for {}", peer.name(), kernel.release);
    in_root(&root, &peer.recipe(&kernel.release, &inside, luks))?;
    if !made.is_file() {
        bail!("{} wrote no image at {}", peer.name(), made.display());
    }
    let partial = out.with_extension("img.partial");
    fs::copy(&made, &partial).with_context(|| format!("copying {}", made.display()))?;
    fs::rename(&partial, out).with_context(|| format!("renaming to {}", out.display()))?;
    Ok(())
}

/// The kernel's modules tree (with its indexes) at `/lib/modules/KVER` and
/// its config and System.map in the build root's `/boot`, once.
fn install_kernel(kernel: &Kernel, root: &Path) -> Result<()> {
    let modules = root.join("lib/modules").join(&kernel.release);
    let marker = modules.join(".alpinit-copied");
    if !marker.is_file() {
        if modules.exists() {
            fs::remove_dir_all(&modules)
                .with_context(|| format!("removing {}", modules.display()))?;
        }
        fs::create_dir_all(root.join("lib/modules"))?;
        run(Command::new("cp")
            .arg("-a")
            .arg(kernel.modules_dir())
            .arg(&modules))?;
        fs::write(&marker, b"").context("marking the modules copied")?;
    }
    let boot = root.join("boot");
    fs::create_dir_all(&boot).with_context(|| format!("creating {}", boot.display()))?;
    for name in ["config", "System.map"] {
        let file = format!("{name}-{}", kernel.release);
        let src = kernel.root.join("boot").join(&file);
        if src.is_file() {
            fs::copy(&src, boot.join(&file))
                .with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

/// SCRIPT under `sh -e` chrooted into ROOT, with /proc and /sys mounted in
/// a private mount namespace: they go away with the namespace, whatever
/// the script does.
fn in_root(root: &Path, script: &str) -> Result<()> {
    const WRAP: &str = "mount -t proc proc \"$1/proc\" && mount -t sysfs sys \"$1/sys\" && \
        exec chroot \"$1\" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        /bin/sh -ec \"$2\"";
    run(Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-ec",
            WRAP,
            "sh",
        ])
        .arg(root)
        .arg(script))
}

/// FNV-1a, 64 bits: a stable key for the recipe text.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
