//! An initramfs built by Alpine's own `mkinitfs` (3.13.0, unchanged) with
//! alpinit as `/init`, on this Debian machine, the way an Alpine user gets
//! it: the packages from `initramfs/alpine/APKBUILD` (`alpinit` and
//! `alpinit-mkinitfs`, see `package.rs`) installed by the real `apk` of
//! Alpine's x86_64 mini root, chrooted into it, then the installed
//! `mkinitfs` run with no `-i`, as the kernel trigger runs it. The mini root
//! has no mkinitfs package: a stand-in built from the source fixture
//! installs its scripts and `features.d` (`package/stand_in.rs`). After the
//! image is built, `apk del alpinit-mkinitfs` must give back the stock
//! `mkinitfs.conf` and an image whose `/init` is Alpine's `initramfs-init`.
//!
//! Off Alpine, mkinitfs runs with `DATADIR` and `SYSCONFDIR` pointing into
//! the base, the base as `-b BASE/` (trailing slash: feature globs are
//! prefixed with it verbatim), the test kernel's modules in
//! `lib/modules/KVER`, and an `lddtree` that lists files as Alpine's does
//! (`mkinitfs/lddtree.sh`). The image is cached until the init, kernel,
//! recipe or features change.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use alpinit_qemu_tests::alpine_repo::chroot_apk;
use alpinit_qemu_tests::fixtures;
use anyhow::{bail, Context, Result};

use crate::kernel::{self, Kernel, KernelSpec};
use crate::package::{self, Package};
use crate::paths;
use crate::process::run;

/// Alpine's default `features=` (mkinitfs.conf on Alpine 3.20: `ata base
/// ide scsi usb virtio ext4`; 3.13.0 has no `ide`) plus `cdrom` for the ISO
/// scenarios. `usb` brings vfat and nls, `cdrom` isofs.
pub const FEATURES: &str = "ata base cdrom ext4 scsi usb virtio";

/// Where the README installs the init on Alpine.
pub const INSTALLED_INIT: &str = "usr/share/alpinit/init";

const VERSION: &str = "3.13.0";
const LDDTREE: &str = include_str!("mkinitfs/lddtree.sh");

/// Binaries of the base the image must be able to run, with every library
/// they need (Debian's own lddtree leaves out `libz.so.1.3.1`).
const MUST_RUN: &[&str] = &["usr/bin/busybox", "usr/sbin/apk"];

pub struct Built {
    pub path: PathBuf,
    pub kernel: Kernel,
    /// What the image holds at `/sbin/nlplug-findfs`, in words.
    pub nlplug_findfs: String,
}

fn work_dir() -> PathBuf {
    paths::target_dir().join("alpinit-cache").join("mkinitfs")
}

/// Builds (or reuses) the mkinitfs image for `init` at `output`.
pub fn build(init: &Path, output: &Path) -> Result<Built> {
    let kernel = kernel::resolve(&KernelSpec::Generic)?;
    let init_bytes = fs::read(init).with_context(|| format!("reading {}", init.display()))?;
    let key = cache_key(&init_bytes, &kernel.release);
    let stamp = output.with_extension("key");
    let work = work_dir();
    let base = work.join("base");
    if output.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) {
        let nlplug_findfs = describe_nlplug(&list(output)?, &base);
        return Ok(Built {
            path: output.to_path_buf(),
            kernel,
            nlplug_findfs,
        });
    }
    let packages = work.join("packages");
    let built = package::build(init, &packages)?;
    let stand_in = package::mkinitfs_package(&packages, &built.key, FEATURES)?;
    prepare_base(&base, &kernel)?;
    let bin = work.join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    write_executable(&bin.join("lddtree"), LDDTREE)?;
    if let Some(parent) = output.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let _ = fs::remove_file(&stamp);
    install_packages(&base, &built, &stand_in)?;
    run_mkinitfs(&work, &base, &kernel, output)?;
    let names = list(output)?;
    check_image(output, &names, &init_bytes)?;
    removal_restores_the_stock_init(&work, &base, &kernel)?;
    fs::write(&stamp, &key).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(Built {
        path: output.to_path_buf(),
        kernel,
        nlplug_findfs: describe_nlplug(&names, &base),
    })
}

/// `cargo xtask mkinitfs [--init FILE] [-o FILE]`.
pub fn command(args: &[String]) -> Result<()> {
    let mut init = None;
    let mut output = paths::image_dir().join("initramfs-mkinitfs.gz");
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--init" => init = Some(PathBuf::from(value()?)),
            "-o" | "--output" => output = PathBuf::from(value()?),
            other => bail!("unknown mkinitfs option {other:?}"),
        }
    }
    let init = match init {
        Some(path) => path,
        None => crate::build::init()?,
    };
    let built = build(&init, &output)?;
    println!("image: {}", built.path.display());
    println!("kernel release: {}", built.kernel.release);
    println!("kernel: {}", built.kernel.boot_image().display());
    println!("features: {FEATURES}");
    println!("/sbin/nlplug-findfs: {}", built.nlplug_findfs);
    Ok(())
}

fn cache_key(init: &[u8], release: &str) -> String {
    let mut h = DefaultHasher::new();
    init.hash(&mut h);
    release.hash(&mut h);
    FEATURES.hash(&mut h);
    LDDTREE.hash(&mut h);
    for name in package::RECIPE_FILES {
        fs::read(package::recipe_dir().join(name))
            .unwrap_or_default()
            .hash(&mut h);
    }
    fixtures::MKINITFS.sha512.hash(&mut h);
    fixtures::MINIROOT_X86_64.sha512.hash(&mut h);
    format!("{:016x}\n", h.finish())
}

/// The mkinitfs source tree, unpacked afresh.
pub(crate) fn unpack_source(work: &Path) -> Result<PathBuf> {
    let src = work.join(format!("mkinitfs-{VERSION}"));
    if src.exists() {
        fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    fixtures::unpack(&fixtures::MKINITFS, work)?;
    if !src.join("mkinitfs.in").is_file() {
        bail!(
            "{} has no mkinitfs.in after unpacking {}",
            src.display(),
            fixtures::MKINITFS.name
        );
    }
    Ok(src)
}

/// The mini root and the kernel's modules (hard links into the kernel
/// cache, copies across file systems).
fn prepare_base(base: &Path, kernel: &Kernel) -> Result<()> {
    if base.exists() {
        fs::remove_dir_all(base).with_context(|| format!("removing {}", base.display()))?;
    }
    fixtures::unpack(&fixtures::MINIROOT_X86_64, base)?;
    let modules = base.join("lib/modules");
    fs::create_dir_all(&modules).with_context(|| format!("creating {}", modules.display()))?;
    let linked = Command::new("cp")
        .arg("-al")
        .arg(kernel.modules_dir())
        .arg(&modules)
        .status()
        .is_ok_and(|s| s.success());
    if !linked {
        let _ = fs::remove_dir_all(modules.join(&kernel.release));
        run(Command::new("cp")
            .arg("-a")
            .arg(kernel.modules_dir())
            .arg(&modules))?;
    }
    Ok(())
}

/// What `alpinit-mkinitfs`'s install script prints, and the mark of the
/// line it adds to `mkinitfs.conf` (`initramfs/alpine/`).
const INSTALLED_NOTICE: &str = "mkinitfs now builds images with alpinit as /init";
const REMOVED_NOTICE: &str = "mkinitfs builds images with its own init again";
const CONF_MARK: &str = "# alpinit-mkinitfs";
const CONF: &str = "etc/mkinitfs/mkinitfs.conf";

/// `apk add` of the stand-in mkinitfs, alpinit and alpinit-mkinitfs by the
/// base's real apk, chrooted, trusting the packager key as a user would.
fn install_packages(base: &Path, built: &package::Built, stand_in: &Package) -> Result<()> {
    let stage = base.join("tmp/alpinit-packages");
    fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    let keys = base.join("etc/apk/keys");
    fs::copy(&built.key.public, keys.join(&built.key.name)).with_context(|| {
        format!(
            "copying {} into {}",
            built.key.public.display(),
            keys.display()
        )
    })?;
    // No repositories: everything comes from the files named.
    fs::write(stage.join("repositories"), "").context("writing an empty repositories file")?;
    let mut args: Vec<String> = [
        "add",
        "--no-network",
        "--repositories-file",
        "/tmp/alpinit-packages/repositories",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for pkg in [
        stand_in,
        built.get("alpinit")?,
        built.get("alpinit-mkinitfs")?,
    ] {
        let name = pkg.path.file_name().context("a package file has no name")?;
        fs::copy(&pkg.path, stage.join(name))
            .with_context(|| format!("copying {}", pkg.path.display()))?;
        args.push(format!("/tmp/alpinit-packages/{}", name.to_string_lossy()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = chroot_apk(base, &args)?;
    if !output.contains(INSTALLED_NOTICE) {
        bail!("apk add ran no alpinit-mkinitfs post-install script:\n{output}");
    }
    let conf =
        fs::read_to_string(base.join(CONF)).context("reading the installed mkinitfs.conf")?;
    if !conf.lines().any(|l| l.ends_with(CONF_MARK)) {
        bail!("alpinit-mkinitfs left mkinitfs.conf without its line:\n{conf}");
    }
    let init = base.join(INSTALLED_INIT);
    if !init.is_file() {
        bail!("apk add alpinit installed no {}", init.display());
    }
    Ok(())
}

/// The base's installed mkinitfs, run as the kernel trigger runs it (no
/// `-i`), with its data and config directories inside the base and `-b`.
fn run_mkinitfs(work: &Path, base: &Path, kernel: &Kernel, output: &Path) -> Result<()> {
    let bin = work.join("bin");
    run(Command::new(base.join("sbin/mkinitfs"))
        .arg("-b")
        .arg(format!("{}/", base.display()))
        .arg("-o")
        .arg(output)
        .arg(&kernel.release)
        .current_dir(work)
        .env("DATADIR", base.join("usr/share/mkinitfs"))
        .env("SYSCONFDIR", base.join("etc/mkinitfs"))
        // Debian's depmod, cpio and gzip; the lddtree above.
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
        )
        .env("SOURCE_DATE_EPOCH", "0")
        // cargo's, for the host tools; lddtree warns about it under -R.
        .env_remove("LD_LIBRARY_PATH"))
    .context("running Alpine's mkinitfs")
}

/// `apk del alpinit-mkinitfs` gives back mkinitfs.conf byte for byte, and
/// mkinitfs then puts its own `initramfs-init` at `/init`.
fn removal_restores_the_stock_init(work: &Path, base: &Path, kernel: &Kernel) -> Result<()> {
    let output = chroot_apk(base, &["del", "--no-network", "alpinit-mkinitfs"])?;
    if !output.contains(REMOVED_NOTICE) {
        bail!("apk del ran no alpinit-mkinitfs pre-deinstall script:\n{output}");
    }
    let conf = fs::read_to_string(base.join(CONF)).context("reading mkinitfs.conf")?;
    let want = package::stand_in_conf(FEATURES);
    if conf != want {
        bail!("after apk del alpinit-mkinitfs, mkinitfs.conf is\n{conf}\ninstead of\n{want}");
    }
    let stock = work.join("initramfs-stock.gz");
    run_mkinitfs(work, base, kernel, &stock)?;
    let init = image_init(&stock)?;
    let want = fs::read(base.join("usr/share/mkinitfs/initramfs-init"))
        .context("reading the stock initramfs-init")?;
    if init != want {
        bail!("after apk del alpinit-mkinitfs, mkinitfs still puts another /init in the image");
    }
    let _ = fs::remove_file(&stock);
    Ok(())
}

/// The image's `/init`.
fn image_init(image: &Path) -> Result<Vec<u8>> {
    let tree = tempfile::tempdir().context("creating a temp dir")?;
    run(Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$1\" | cpio -idm --quiet --no-absolute-filenames init")
        .arg("sh")
        .arg(image)
        .current_dir(tree.path()))?;
    fs::read(tree.path().join("init")).with_context(|| format!("{} has no /init", image.display()))
}

pub(crate) fn substitute(text: &str, datadir: &str) -> String {
    text.replace("@VERSION@", VERSION)
        .replace("@sysconfdir@", "/etc/mkinitfs")
        .replace("@datadir@", datadir)
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

/// The image's member names (`gzip -dc | cpio -it`), without `./`.
fn list(image: &Path) -> Result<Vec<String>> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$1\" | cpio -it --quiet")
        .arg("sh")
        .arg(image)
        .output()
        .context("listing the image with gzip and cpio")?;
    if !out.status.success() {
        bail!(
            "listing {}: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect())
}

/// The init is ours, and busybox and apk have every library they need.
fn check_image(image: &Path, names: &[String], init: &[u8]) -> Result<()> {
    let tree = tempfile::tempdir().context("creating a temp dir")?;
    run(Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$1\" | cpio -idm --quiet --no-absolute-filenames")
        .arg("sh")
        .arg(image)
        .current_dir(tree.path()))?;
    let got = fs::read(tree.path().join("init")).context("the image has no /init")?;
    if got != init {
        bail!("the image's /init is not the init given to mkinitfs -i");
    }
    for bin in MUST_RUN {
        if !names.iter().any(|n| n == bin) {
            bail!("the image has no /{bin}");
        }
        for lib in needed(&tree.path().join(bin))? {
            let found = ["usr/lib", "lib"]
                .iter()
                .any(|dir| tree.path().join(dir).join(&lib).is_file());
            if !found {
                bail!("/{bin} needs {lib}, which the image lacks");
            }
        }
    }
    Ok(())
}

/// The interpreter's and DT_NEEDED libraries' file names (`scanelf`).
fn needed(elf: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    // `#F`: without the file name after the value.
    for format in ["%i#F", "%n#F"] {
        let out = Command::new("scanelf")
            .args(["-q", "-F", format])
            .arg(elf)
            .output()
            .context("running scanelf (pax-utils)")?;
        if !out.status.success() {
            bail!("scanelf {} failed", elf.display());
        }
        names.extend(parse_needed(&String::from_utf8_lossy(&out.stdout)));
    }
    Ok(names)
}

fn parse_needed(scanelf: &str) -> Vec<String> {
    scanelf
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "-")
        .map(|s| s.rsplit('/').next().unwrap_or(s).to_string())
        .collect()
}

/// mkinitfs' `base` feature copies the base's `/sbin/nlplug-findfs`
/// (Alpine's C helper, from its mkinitfs package) when there is one; the
/// init never runs it, and only this repository's own builder links that
/// name to the init.
fn describe_nlplug(names: &[String], base: &Path) -> String {
    let in_image = names.iter().any(|n| n == "usr/sbin/nlplug-findfs");
    let in_base = base.join("sbin/nlplug-findfs").exists();
    match (in_image, in_base) {
        (true, _) => "the base system's (copied by the base feature)".into(),
        (false, false) => "none (the base system has no nlplug-findfs)".into(),
        (false, true) => "none, though the base system has one".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in() {
        let text = "VERSION=@VERSION@\nsysconfdir=\"${SYSCONFDIR:-@sysconfdir@}\"\ndatadir=\"${DATADIR:-@datadir@}\"\n";
        let out = substitute(text, "/src");
        assert_eq!(
            out,
            "VERSION=3.13.0\nsysconfdir=\"${SYSCONFDIR:-/etc/mkinitfs}\"\ndatadir=\"${DATADIR:-/src}\"\n"
        );
    }

    #[test]
    fn scanelf_output_gives_library_names() {
        assert_eq!(
            parse_needed("libcrypto.so.3,libz.so.1,libc.musl-x86_64.so.1\n"),
            ["libcrypto.so.3", "libz.so.1", "libc.musl-x86_64.so.1"]
        );
        assert_eq!(
            parse_needed("/lib/ld-musl-x86_64.so.1\n"),
            ["ld-musl-x86_64.so.1"]
        );
    }

    /// Debian's lddtree drops non-ELF files (`/etc/modprobe.d/*.conf`) and
    /// does not follow library symlinks (`libz.so.1` -> `libz.so.1.3.1`);
    /// the wrapper lists both, relative and absolute links inside the root.
    #[test]
    fn lddtree_wrapper_lists_non_elf_files_and_symlink_targets() {
        if !Path::new("/usr/bin/lddtree").is_file() {
            eprintln!("note: pax-utils missing, skipping");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let etc = root.join("etc");
        fs::create_dir_all(&etc).expect("mkdir");
        fs::write(etc.join("b.conf"), "options x y\n").expect("write");
        std::os::unix::fs::symlink("b.conf", etc.join("a.conf")).expect("symlink");
        std::os::unix::fs::symlink("/etc/b.conf", etc.join("c.conf")).expect("symlink");
        let wrapper = dir.path().join("lddtree");
        write_executable(&wrapper, LDDTREE).expect("wrapper");
        let out = Command::new(&wrapper)
            .arg("-R")
            .arg(format!("{}/", root.display()))
            .args(["-l", "--no-auto-root"])
            .arg(etc.join("a.conf"))
            .arg(etc.join("c.conf"))
            .output()
            .expect("run the wrapper");
        let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                l.replace(&root.display().to_string(), "")
                    .replace("//", "/")
            })
            .collect();
        assert_eq!(
            listed,
            ["/etc/a.conf", "/etc/b.conf", "/etc/c.conf", "/etc/b.conf"],
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn the_cache_key_follows_the_init() {
        assert_eq!(cache_key(b"a", "6.1"), cache_key(b"a", "6.1"));
        assert_ne!(cache_key(b"a", "6.1"), cache_key(b"b", "6.1"));
        assert_ne!(cache_key(b"a", "6.1"), cache_key(b"a", "6.2"));
    }
}
