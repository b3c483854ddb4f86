//! `cargo xtask initramfs`: the init, the module closure with regenerated
//! indexes, Alpine's fstab and directories, as a reproducible gzip newc cpio.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use flate2::{Compression, GzBuilder};

use crate::cpio::Archive;
use crate::features;
use crate::kernel::{self, Arch, Kernel, KernelSpec};
use crate::modules::ModuleIndex;
use crate::process::run;
use crate::{build, elf, paths};

mod applets;

/// Alpine's initramfs fstab (mkinitfs): what relocates sr0 and the stick.
/// The files the image carries verbatim live under `initramfs/`.
pub const FSTAB: &str = include_str!("../../initramfs/etc/fstab");

/// `usr/bin` and `usr/sbin` are where `busybox --install -s` puts half of
/// its applet links (as in mkinitfs' images); without them it prints an
/// error per applet at every boot.
const DIRS: &[&str] = &[
    "usr/bin",
    "usr/sbin",
    "dev",
    "proc",
    "sys",
    "tmp",
    "run",
    "media/cdrom",
    "media/usb",
    "sysroot",
    "etc/apk/keys",
    "etc/modprobe.d",
];

const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// Where the busybox of an image for ARCH comes from: the host's
/// busybox-static on x86_64, Debian's `busybox-static:arm64` unpacked into
/// the cache for aarch64.
fn busybox(arch: Arch) -> Result<PathBuf> {
    match arch {
        Arch::X86_64 => BUSYBOX_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .context("--busybox needs Debian's busybox-static (/bin/busybox)"),
        Arch::Aarch64 => {
            let root = kernel::package("busybox-static", arch)?;
            let path = root.join("bin/busybox");
            if !path.is_file() {
                bail!("busybox-static:{} has no {}", arch.debian(), path.display());
            }
            Ok(path)
        }
    }
}

/// Index files depmod writes that the image carries; the binary `.bin`
/// twins are left out since the init reads the text ones.
const INDEX_FILES: &[&str] = &[
    "modules.dep",
    "modules.alias",
    "modules.softdep",
    "modules.symbols",
    "modules.devname",
    "modules.builtin",
    "modules.order",
];

#[derive(Debug, Clone)]
pub struct Options {
    /// The machine the image is for: its kernel, init and busybox.
    pub arch: Arch,
    pub kernel: KernelSpec,
    pub features: Vec<String>,
    pub busybox: bool,
    /// (source on the host, destination path in the image)
    pub extras: Vec<(PathBuf, String)>,
    pub output: Option<PathBuf>,
    /// A prebuilt file to install as `/init` instead of building alpinit.
    pub init: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            arch: Arch::X86_64,
            kernel: KernelSpec::Generic,
            features: features::all_names()
                .iter()
                .filter(|n| !crate::feature_files::OPT_IN.contains(n))
                .map(|s| s.to_string())
                .collect(),
            busybox: true,
            extras: Vec::new(),
            output: None,
            init: None,
        }
    }
}

pub struct Image {
    pub path: PathBuf,
    pub size: u64,
    /// Bytes of the init in it.
    pub init_size: u64,
    pub kernel: Kernel,
    pub modules: usize,
}

pub fn build(opts: &Options) -> Result<Image> {
    let kernel = kernel::resolve_for(&opts.kernel, opts.arch)?;
    let init = match &opts.init {
        Some(path) => path.clone(),
        None => build::init_for(opts.arch)?,
    };
    check_init(&init, opts.arch, opts.init.is_none())?;
    let output = opts.output.clone().unwrap_or_else(|| {
        let arch = match opts.arch {
            Arch::X86_64 => String::new(),
            other => format!("-{other}"),
        };
        paths::image_dir().join(format!("initramfs-{}{arch}.gz", opts.kernel.label()))
    });
    let (archive, modules) = assemble(&kernel, &init, opts)?;
    let size = write_image(&archive, &output, source_date_epoch())?;
    Ok(Image {
        path: output,
        size,
        init_size: fs::metadata(&init)
            .with_context(|| format!("reading {}", init.display()))?
            .len(),
        kernel,
        modules,
    })
}

/// The init must be a static executable for the image's machine. A file
/// given with `--init` that is not ELF at all (a test script) is let
/// through; the built one always is checked.
fn check_init(init: &Path, arch: Arch, built: bool) -> Result<()> {
    if !built {
        let mut magic = [0u8; 4];
        let is_elf = fs::File::open(init)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && &magic == b"\x7fELF";
        if !is_elf {
            return Ok(());
        }
    }
    elf::check_file(init, arch)?;
    Ok(())
}

fn source_date_epoch() -> u32 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub fn assemble(kernel: &Kernel, init: &Path, opts: &Options) -> Result<(Archive, usize)> {
    let mut archive = Archive::new();
    for dir in DIRS {
        archive.add_dir(dir, 0o755);
    }
    archive.add_dir("tmp", 0o1777);
    archive.add_file("init", 0o755, read(init)?);
    archive.add_file("etc/fstab", 0o644, FSTAB.as_bytes().to_vec());
    // The init answers to this name too: a stand-in for Alpine's C helper.
    archive.add_symlink("sbin/nlplug-findfs", "../init");
    let busybox = if opts.busybox {
        let path = busybox(opts.arch)?;
        let bytes = read(&path)?;
        archive.add_file("bin/busybox", 0o755, bytes.clone());
        archive.add_symlink("bin/sh", "busybox");
        Some((path, bytes))
    } else {
        None
    };
    let modules = add_modules(&mut archive, kernel, &opts.features)?;
    crate::feature_files::add(&mut archive, &opts.features)?;
    for (src, dest) in &opts.extras {
        add_tree(&mut archive, src, dest)?;
    }
    // Last, so that no link replaces what the image has (the init, the
    // feature files, `--extra`).
    if let Some((path, bytes)) = busybox {
        match applets::add(&mut archive, &path, &bytes, opts.arch) {
            applets::Outcome::Made(n) => {
                eprintln!("busybox applet links: {n}, listed in /{}", applets::MARKER)
            }
            applets::Outcome::AtBoot(reason) => eprintln!(
                "note: no busybox applet links in the image, the init makes them at boot \
                 (busybox --install -s): {reason:#}"
            ),
        }
    }
    Ok((archive, modules))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Copies the closure into a staging tree, runs depmod there and adds the
/// modules plus the regenerated indexes. Returns the module count.
fn add_modules(archive: &mut Archive, kernel: &Kernel, names: &[String]) -> Result<usize> {
    let src = kernel.modules_dir();
    let index = ModuleIndex::load(&src)?;
    let closure = index.closure(&features::entries(names)?);
    for missing in &closure.missing {
        eprintln!(
            "warning: module {missing} is not in kernel {}",
            kernel.release
        );
    }
    let staging = tempfile::tempdir().context("creating a staging dir")?;
    let rel = Path::new("lib/modules").join(&kernel.release);
    let dest = staging.path().join(&rel);
    fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    for path in &closure.paths {
        let from = src.join(path);
        let to = dest.join(path);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
    }
    for name in ["modules.builtin", "modules.builtin.modinfo"] {
        let from = src.join(name);
        if from.is_file() {
            fs::copy(&from, dest.join(name))
                .with_context(|| format!("copying {}", from.display()))?;
        }
    }
    // Only the staged modules: the full list is 160 kB of names the image lacks.
    let order = fs::read_to_string(src.join("modules.order")).unwrap_or_default();
    let order: String = order
        .lines()
        .filter(|line| closure.paths.contains(line.trim()))
        .map(|line| format!("{line}\n"))
        .collect();
    fs::write(dest.join("modules.order"), order).context("writing modules.order")?;
    // An empty config dir keeps the host's /etc/depmod.d out of the result.
    let config = staging.path().join("depmod.d");
    fs::create_dir_all(&config).context("creating the depmod config dir")?;
    run(Command::new("depmod")
        .arg("-b")
        .arg(staging.path())
        .arg("-C")
        .arg(&config)
        .arg(&kernel.release))?;
    let rel_str = rel.to_string_lossy();
    for path in &closure.paths {
        archive.add_file(&format!("{rel_str}/{path}"), 0o644, read(&dest.join(path))?);
    }
    for name in INDEX_FILES {
        let file = dest.join(name);
        if file.is_file() {
            archive.add_file(&format!("{rel_str}/{name}"), 0o644, read(&file)?);
        } else if *name == "modules.dep" {
            bail!("depmod wrote no {}", file.display());
        }
    }
    Ok(closure.paths.len())
}

/// Adds a host file or directory tree at DEST. Modes keep only the
/// executable distinction so the host's umask does not leak in.
fn add_tree(archive: &mut Archive, src: &Path, dest: &str) -> Result<()> {
    let meta = fs::symlink_metadata(src).with_context(|| format!("reading {}", src.display()))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(src).with_context(|| format!("reading {}", src.display()))?;
        archive.add_symlink(dest, &target.to_string_lossy());
    } else if meta.is_dir() {
        archive.add_dir(dest, 0o755);
        let mut children: Vec<_> = fs::read_dir(src)
            .with_context(|| format!("reading {}", src.display()))?
            .collect::<Result<_, _>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let name = child.file_name().to_string_lossy().into_owned();
            add_tree(
                archive,
                &child.path(),
                &format!("{}/{name}", dest.trim_end_matches('/')),
            )?;
        }
    } else {
        use std::os::unix::fs::PermissionsExt;
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        archive.add_file(dest, mode, read(src)?);
    }
    Ok(())
}

/// gzip at a fixed level with a zero mtime and no file name in the header.
pub fn compress(archive: &Archive, mtime: u32) -> Result<Vec<u8>> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::new(6));
    archive.write(&mut gz, mtime).context("writing the cpio")?;
    gz.finish().context("finishing the gzip stream")
}

fn write_image(archive: &Archive, output: &Path, mtime: u32) -> Result<u64> {
    let started = std::time::Instant::now();
    let bytes = compress(archive, mtime)?;
    if std::env::var_os("XTASK_TIMING").is_some() {
        eprintln!("compress: {:?}", started.elapsed());
    }
    if let Some(parent) = output.parent() {
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    let tmp = output.with_extension("partial");
    let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(&bytes)
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, output).with_context(|| format!("renaming to {}", output.display()))?;
    Ok(bytes.len() as u64)
}

/// Parses `SRC:DEST` for `--extra`.
pub fn parse_extra(arg: &str) -> Result<(PathBuf, String)> {
    match arg.rsplit_once(':') {
        Some((src, dest)) if !src.is_empty() && dest.starts_with('/') => {
            Ok((PathBuf::from(src), dest.to_string()))
        }
        _ => bail!("--extra wants SRC:/DEST, got {arg:?}"),
    }
}

/// Prints the init's size, and the size of every other x86_64 init from its
/// last build (with and without TLS, nightly `-Z build-std` and stable: the
/// stable one with TLS is what a distribution package ships), each labelled.
pub fn print_init_sizes(init: &Path, tls: Option<build::Tls>) {
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).ok();
    let label = tls.map_or("given with --init", build::Tls::label);
    match size(init) {
        Some(n) => println!("init ({label}): {n} bytes stripped ({})", init.display()),
        None => println!("init ({label}): {}", init.display()),
    }
    if tls.is_none() {
        return;
    }
    for kind in [build::Tls::With, build::Tls::Without] {
        let flag = match kind {
            build::Tls::With => "",
            build::Tls::Without => " --no-tls",
        };
        let [nightly, stable] = build::init_paths(kind);
        for (toolchain, path, rebuild) in [
            ("nightly -Z build-std", nightly, ""),
            ("stable", stable, "ALPINIT_STABLE_INIT=1 "),
        ] {
            if path == init {
                continue;
            }
            let budget = match kind {
                build::Tls::With => format!(", budget {} bytes", build::TLS_INIT_BUDGET),
                build::Tls::Without => String::new(),
            };
            match size(&path) {
                Some(n) => println!(
                    "init ({}, {toolchain}): {n} bytes stripped{budget}, from its last build \
                     ({}; `{rebuild}cargo xtask initramfs{flag}` rebuilds it)",
                    kind.label(),
                    path.display()
                ),
                None => println!(
                    "init ({}, {toolchain}): not built yet (`{rebuild}cargo xtask initramfs{flag}`)",
                    kind.label()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn compressed_images_are_reproducible_and_decompress() {
        let mut archive = Archive::new();
        archive.add_file("init", 0o755, vec![7u8; 10_000]);
        archive.add_file("etc/fstab", 0o644, FSTAB.as_bytes().to_vec());
        let a = compress(&archive, 0).expect("compress");
        let b = compress(&archive, 0).expect("compress");
        assert_eq!(a, b);
        // gzip header: magic, deflate, no flags, mtime 0
        assert_eq!(&a[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(a.as_slice())
            .read_to_end(&mut raw)
            .expect("gunzip");
        let names: Vec<String> = crate::cpio::tests::parse(&raw)
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(names, ["etc", "etc/fstab", "init"]);
    }

    #[test]
    fn fstab_has_alpines_lines() {
        assert!(FSTAB.contains("/dev/cdrom\t/media/cdrom\tiso9660\tnoauto,ro 0 0\n"));
        assert!(FSTAB.contains("/dev/usbdisk\t/media/usb\tvfat\tnoauto,ro 0 0\n"));
    }

    #[test]
    fn extra_arguments() {
        let ok = parse_extra("target/x/fake-apk:/sbin/apk").expect("parse");
        assert_eq!(
            ok,
            (PathBuf::from("target/x/fake-apk"), "/sbin/apk".to_string())
        );
        for bad in ["nocolon", ":/x", "a:relative"] {
            assert!(parse_extra(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn extra_trees_keep_only_the_exec_bit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("sub")).expect("mkdir");
        fs::write(tree.join("sub/tool"), b"x").expect("write");
        fs::set_permissions(tree.join("sub/tool"), fs::Permissions::from_mode(0o700))
            .expect("chmod");
        fs::write(tree.join("data"), b"y").expect("write");
        fs::set_permissions(tree.join("data"), fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut archive = Archive::new();
        add_tree(&mut archive, &tree, "/opt").expect("add");
        use crate::cpio::Node;
        assert_eq!(
            archive.get("opt/sub/tool"),
            Some(&Node::File {
                mode: 0o755,
                data: b"x".to_vec()
            })
        );
        assert_eq!(
            archive.get("opt/data"),
            Some(&Node::File {
                mode: 0o644,
                data: b"y".to_vec()
            })
        );
    }
}
