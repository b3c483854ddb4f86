//! The six disks of upstream's nlplug-findfs matrix (mkinitfs'
//! `nlplug-findfs/test.sh`), written by one build boot that runs upstream's
//! own `nlplug-findfs/init.sh` in build mode, read from the mkinitfs
//! fixture at test time: three 32 MiB partitions per disk, vfat file
//! systems with the marker files, LUKS (key file), LVM on LUKS, a LUKS
//! volume with a detached header, and a RAID1 over a partition and a
//! second disk. The host has no device-mapper or md, so the guest does it
//! with Debian's cryptsetup, lvm and mdadm. The disks are cached under
//! `target/qemu-tests/nlplug-matrix-disks/KEY`, KEY naming every input, so
//! a suite run builds them once.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::luks::module_closure;
use super::*;
use crate::fixtures;

/// Where upstream's test keeps its files in the guest (`nlpffs_path=`):
/// `build/key`, and `nlplug-findfs` for the case runs.
pub(super) const TEST_PATH: &str = "/nlpmatrix";
/// The disks, `disk0.img` .. `disk5.img`, 128 MiB each as test.sh makes them.
pub(super) const DISKS: usize = 6;
const DISK_MIB: u64 = 128;
/// The key file of every LUKS volume. test.sh takes 32 bytes of
/// /dev/urandom; a fixed key keeps the cached disks valid across runs.
pub(super) const KEY: [u8; 32] = *b"alpinit nlplug-findfs matrix key";
/// Modules the build needs that nothing loads on demand here: virtio
/// disks, device-mapper and dm-crypt, md RAID1, vfat, and AF_ALG, through
/// which cryptsetup encrypts the key slots.
pub(super) const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "dm-crypt",
    "xts",
    "ecb",
    "algif_skcipher",
    "algif_hash",
    "raid1",
    "vfat",
    "nls_cp437",
    "nls_iso8859-1",
];

/// The build boot's `rdinit`: what upstream's initramfs has before its
/// init.sh runs (mkinitfs' busybox, the modules, lvm without udev), then
/// init.sh itself with `nlpffs_mode=build`. init.sh runs `fdisk` on
/// /dev/vdX before its `mdev -s`, so /dev is a devtmpfs here; upstream's
/// case runs have no devtmpfs and neither do ours (see nlplug_matrix.rs).
const BUILD_WRAPPER: &str = "#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /run/lock/lvm /run/lvm /run/cryptsetup /etc/lvm /usr/bin
/bin/busybox mount -t devtmpfs dev /dev
while read -r m; do /bin/busybox insmod \"$m\" || echo \"nlpmatrix: insmod $m failed\"; done < /nlpmatrix/modules
export DM_DISABLE_UDEV=1
exec /bin/busybox sh /nlpmatrix/init.sh
";

/// init.sh's `set -ex` part ends with `poweroff -f`: its trace line means
/// every step before it worked (each `umount`, `cryptsetup close` and
/// `mdadm -S` has flushed what it wrote).
const BUILT: &str = "\n+ poweroff -f";

/// Alpine's busybox has the applet under both names, Debian's only as
/// `mkdosfs` (the same code, busybox's `mkfs_vfat.c`).
const MKFS_VFAT: &str = "#!/bin/busybox sh
exec /bin/busybox mkdosfs \"$@\"
";

/// `cryptsetup`, first in init.sh's PATH: its `luksFormat` with a fixed,
/// small Argon2id cost. cryptsetup otherwise benchmarks the machine for a
/// 2-second unlock; under TCG that gave `t=4, m=64 MiB`, which made each of
/// the 14 unlocking cases take 15-25 s and the matrix 12 minutes instead
/// of 7. The key slots stay Argon2id (LUKS2's default), opened by our
/// binary in process; the LUKS scenarios cover the costs themselves.
const CRYPTSETUP: &str = "#!/bin/busybox sh
if [ \"$1\" = luksFormat ]; then
	shift
	exec /usr/sbin/cryptsetup luksFormat --pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 1024 \"$@\"
fi
exec /usr/sbin/cryptsetup \"$@\"
";

/// Upstream's matrix files, read from the mkinitfs fixture.
pub(super) struct Upstream {
    pub init_sh: String,
    pub expected: String,
}

/// `nlplug-findfs/init.sh` and `nlplug-findfs/expected` from the fixture.
pub(super) fn upstream() -> Result<Upstream> {
    let src = fixtures::path(&fixtures::MKINITFS)?;
    let file = fs::File::open(&src).with_context(|| format!("opening {}", src.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let (mut init_sh, mut expected) = (None, None);
    for entry in archive
        .entries()
        .with_context(|| format!("reading {}", src.display()))?
    {
        let mut entry = entry.with_context(|| format!("reading {}", src.display()))?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let slot = if path.ends_with("/nlplug-findfs/init.sh") {
            &mut init_sh
        } else if path.ends_with("/nlplug-findfs/expected") {
            &mut expected
        } else {
            continue;
        };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text)
            .with_context(|| format!("reading {path} in {}", src.display()))?;
        *slot = Some(text);
    }
    Ok(Upstream {
        init_sh: init_sh
            .with_context(|| format!("no nlplug-findfs/init.sh in {}", src.display()))?,
        expected: expected
            .with_context(|| format!("no nlplug-findfs/expected in {}", src.display()))?,
    })
}

/// The kernel's modules directory: `<pkg>/boot/vmlinux-REL` → `<pkg>/lib/modules/REL`.
pub(super) fn modules_dir(assets: &Assets) -> Result<PathBuf> {
    let release = assets
        .kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once('-').map(|(_, r)| r.to_string()))
        .context("kernel release from the kernel's file name")?;
    let pkg = assets
        .kernel
        .parent()
        .and_then(Path::parent)
        .context("kernel package directory")?;
    Ok(pkg.join("lib/modules").join(release))
}

/// FILES under `/nlpmatrix/modules.d/` and the list `/nlpmatrix/modules`
/// to insmod in order.
pub(super) fn module_files(assets: &Assets, names: &[&str]) -> Result<Vec<FileSpec>> {
    let dir = modules_dir(assets)?;
    let mut files = Vec::new();
    let mut list = String::new();
    for m in module_closure(&dir, names)? {
        let data = fs::read(dir.join(&m)).with_context(|| format!("reading module {m}"))?;
        let at = format!("nlpmatrix/modules.d/{}", m.rsplit('/').next().unwrap_or(&m));
        list.push_str(&format!("/{at}\n"));
        files.push(FileSpec::new(&at, 0o644, data));
    }
    files.push(FileSpec::new("nlpmatrix/modules", 0o644, list));
    Ok(files)
}

/// A host program and the libraries `ldd` lists for it, at their own paths.
pub(super) fn with_libraries(program: &str, files: &mut Vec<FileSpec>) -> Result<()> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .with_context(|| format!("running ldd {program}"))?;
    if !out.status.success() {
        bail!("ldd {program}: {}", out.status);
    }
    let mut paths = vec![program.to_string()];
    paths.extend(crate::ldd::parse(&String::from_utf8_lossy(&out.stdout)));
    for p in paths {
        if files.iter().any(|f| f.path == p.trim_start_matches('/')) {
            continue;
        }
        let data = fs::read(&p).with_context(|| format!("reading {p}"))?;
        files.push(FileSpec::new(&p, 0o755, data));
    }
    Ok(())
}

/// IMAGE with the tree at TREE appended as a second gzip cpio (the kernel
/// unpacks concatenated archives in order, later files replacing earlier).
pub(super) fn initrd_with(image: &Path, tree: &Path, out: &Path) -> Result<()> {
    let cpio = out.with_extension("cpio");
    let status = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . -mindepth 1 | sed 's|^\\./||' | cpio -o -H newc --quiet > \"$2\"")
        .arg("sh")
        .arg(tree)
        .arg(&cpio)
        .status()
        .context("running cpio")?;
    if !status.success() {
        bail!("cpio of {}: {status}", tree.display());
    }
    // Zero padding to a 4-byte boundary, then the archive gzipped: what
    // the kernel's unpacker accepts after a compressed archive.
    let mut initrd = fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    initrd.resize(initrd.len().next_multiple_of(4), 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &fs::read(&cpio)?)?;
    initrd.extend(gz.finish()?);
    fs::write(out, initrd).with_context(|| format!("writing {}", out.display()))
}

/// What the cached disks depend on: upstream's init.sh, the build wrapper,
/// the kernel, and the host tools the guest runs.
fn cache_key(assets: &Assets, init_sh: &str) -> Result<String> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [init_sh, BUILD_WRAPPER, MKFS_VFAT, CRYPTSETUP] {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    ctx.update(&KEY);
    ctx.update(assets.kernel.to_string_lossy().as_bytes());
    for tool in [
        assets.kernel.as_path(),
        Path::new("/usr/sbin/cryptsetup"),
        Path::new(crate_tool("lvm")),
        Path::new(crate_tool("mdadm")),
    ] {
        let meta = fs::metadata(tool).with_context(|| format!("reading {}", tool.display()))?;
        ctx.update(&meta.len().to_le_bytes());
        ctx.update(
            &meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
                .to_le_bytes(),
        );
    }
    let digest = ctx.finish();
    Ok(digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The host's lvm and mdadm, which the Assemble image carries.
fn crate_tool(name: &str) -> &'static str {
    match name {
        "lvm" => "/sbin/lvm",
        _ => "/sbin/mdadm",
    }
}

/// The six disks, built on first use and cached.
pub(super) fn disks(assets: &Assets) -> Result<Vec<PathBuf>> {
    let up = upstream()?;
    let root = assets.out_dir.join("nlplug-matrix-disks");
    let dir = root.join(cache_key(assets, &up.init_sh)?);
    let paths: Vec<PathBuf> = (0..DISKS)
        .map(|i| dir.join(format!("disk{i}.img")))
        .collect();
    if paths.iter().all(|p| p.is_file()) {
        return Ok(paths);
    }
    let work = root.join("building");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cleaning {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    build(assets, &up, &work)?;
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cleaning {}", dir.display()))?;
    }
    fs::rename(work.join("disks"), &dir)
        .with_context(|| format!("moving the built disks to {}", dir.display()))?;
    Ok(paths)
}

fn build(assets: &Assets, up: &Upstream, work: &Path) -> Result<()> {
    let disks_dir = work.join("disks");
    fs::create_dir_all(&disks_dir)?;
    let mut disks = Vec::new();
    for i in 0..DISKS {
        let p = disks_dir.join(format!("disk{i}.img"));
        fs::File::create(&p)
            .with_context(|| format!("creating {}", p.display()))?
            .set_len(DISK_MIB << 20)?;
        disks.push(p);
    }
    let mut files = module_files(assets, MODULES)?;
    files.push(FileSpec::new("nlpmatrix/boot", 0o755, BUILD_WRAPPER));
    files.push(FileSpec::new(
        "nlpmatrix/init.sh",
        0o755,
        up.init_sh.as_str(),
    ));
    files.push(FileSpec::new("nlpmatrix/build/key", 0o600, KEY.to_vec()));
    files.push(FileSpec::new("usr/bin/mkfs.vfat", 0o755, MKFS_VFAT));
    files.push(FileSpec::new("usr/bin/cryptsetup", 0o755, CRYPTSETUP));
    with_libraries("/usr/sbin/cryptsetup", &mut files)?;
    // glibc loads libgcc_s when a thread exits (libargon2's lanes), so ldd misses it.
    let gcc_s = [
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file())
    .context("libgcc_s.so.1 not found (glibc needs it for cryptsetup's Argon2 threads)")?;
    files.push(FileSpec::new(
        "lib/x86_64-linux-gnu/libgcc_s.so.1",
        0o755,
        fs::read(gcc_s)?,
    ));
    let tree = work.join("tree");
    media::write_tree(&tree, &files)?;
    fs::set_permissions(tree.join("nlpmatrix"), fs::Permissions::from_mode(0o755))?;
    let initrd = work.join("build-initrd");
    initrd_with(assets.image(ImageKind::Assemble)?, &tree, &initrd)?;

    let mut vm = Vm::new(assets.accel);
    vm.kernel_boot(
        &assets.kernel,
        &initrd,
        &format!(
            "console=ttyS0 panic=-1 rdinit=/nlpmatrix/boot nlpffs_path={TEST_PATH} nlpffs_mode=build"
        ),
    );
    // Writable drives: `Vm::virtio_disk` attaches images with snapshot=on.
    for (i, d) in disks.iter().enumerate() {
        vm.arg("-drive")
            .arg(format!("file={},if=none,id=b{i},format=raw", d.display()))
            .args(["-device", &format!("virtio-blk-pci,drive=b{i}")]);
    }
    let log = work.join("build.log");
    // Not stopped at BUILT: QEMU exits when the guest has powered off.
    let stop = |log: &str| log.contains("Kernel panic");
    let outcome = qemu::run(&vm, &log, Duration::from_secs(900), Some(&stop))?;
    if !outcome.log.replace('\r', "").contains(BUILT) {
        bail!(
            "the build boot of the nlplug-findfs matrix disks did not finish (see {})",
            log.display()
        );
    }
    Ok(())
}
