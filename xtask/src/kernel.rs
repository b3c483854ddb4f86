//! Debian kernels: fetching the current package into the cache, finding the
//! release and module tree of an unpacked package, and extracting the ELF
//! `vmlinux` that QEMU boots ~5 s faster than the XZ bzImage under TCG.
//! Packages of the other architecture (arm64 on an amd64 host) are fetched
//! the same way with `apt-get download PKG:arm64` once
//! `dpkg --add-architecture arm64` is in place (`cargo xtask deps`); they
//! are unpacked into the cache, never installed.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

pub use alpinit_qemu_tests::qemu::Arch;

use crate::paths;
use crate::process::run;

/// Which kernel an image is built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    Generic,
    Cloud,
    Dir(PathBuf),
}

impl KernelSpec {
    pub fn parse(s: &str) -> KernelSpec {
        match s {
            "generic" => KernelSpec::Generic,
            "cloud" => KernelSpec::Cloud,
            other => KernelSpec::Dir(PathBuf::from(other)),
        }
    }

    fn metapackage(&self, arch: Arch) -> Option<String> {
        match self {
            KernelSpec::Generic => Some(format!("linux-image-{}", arch.debian())),
            KernelSpec::Cloud => Some(format!("linux-image-cloud-{}", arch.debian())),
            KernelSpec::Dir(_) => None,
        }
    }

    /// A short name used in image and log file names.
    pub fn label(&self) -> String {
        match self {
            KernelSpec::Generic => "generic".into(),
            KernelSpec::Cloud => "cloud".into(),
            KernelSpec::Dir(dir) => dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "dir".into()),
        }
    }
}

/// An unpacked kernel package with its module indexes in place.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub release: String,
    /// The root of the unpacked package (`boot/`, `lib/modules/`).
    pub root: PathBuf,
    pub vmlinuz: PathBuf,
    /// The ELF kernel, when it could be extracted from the bzImage.
    pub vmlinux: Option<PathBuf>,
}

impl Kernel {
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }

    /// What QEMU's `-kernel` should get: the ELF when there is one.
    pub fn boot_image(&self) -> &Path {
        self.vmlinux.as_deref().unwrap_or(&self.vmlinuz)
    }
}

/// Resolves a spec to a usable x86_64 kernel (see [`resolve_for`]).
pub fn resolve(spec: &KernelSpec) -> Result<Kernel> {
    resolve_for(spec, Arch::X86_64)
}

/// Resolves a spec to a usable kernel of ARCH, fetching and indexing it if
/// needed. Only x86_64's XZ bzImage gets an ELF extracted: arm64's
/// `vmlinuz` is a gzip'd `Image`, which QEMU's `-kernel` unpacks itself.
pub fn resolve_for(spec: &KernelSpec, arch: Arch) -> Result<Kernel> {
    let root = match spec {
        KernelSpec::Dir(dir) => dir.clone(),
        _ => fetch(spec, arch)?,
    };
    let release = release_of(&root)?;
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.is_file() {
        bail!("{} is missing", vmlinuz.display());
    }
    let kernel_cache_dir = match spec {
        KernelSpec::Dir(_) => paths::kernel_cache().join(format!("local-{release}")),
        _ => root.join("boot"),
    };
    let vmlinux = match arch {
        Arch::X86_64 => extract_vmlinux_cached(
            &vmlinuz,
            &kernel_cache_dir.join(format!("vmlinux-{release}")),
        )?,
        Arch::Aarch64 => None,
    };
    let kernel = Kernel {
        release,
        root,
        vmlinuz,
        vmlinux,
    };
    ensure_module_index(&kernel)?;
    Ok(kernel)
}

/// The single `lib/modules/<release>` directory of an unpacked package.
fn release_of(root: &Path) -> Result<String> {
    let dir = root.join("lib/modules");
    let mut releases = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            releases.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    releases.sort();
    match releases.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no kernel release under {}", dir.display()),
        many => bail!(
            "several kernel releases under {}: {}",
            dir.display(),
            many.join(", ")
        ),
    }
}

/// Downloads the metapackage to learn the current ABI package, then that
/// package, and unpacks it into `target/alpinit-cache/kernels/<pkg>/`.
fn fetch(spec: &KernelSpec, arch: Arch) -> Result<PathBuf> {
    let Some(meta) = spec.metapackage(arch) else {
        bail!("not a downloadable kernel: {spec:?}");
    };
    let cache = paths::kernel_cache();
    let downloads = cache.join("downloads");
    fs::create_dir_all(&downloads).with_context(|| format!("creating {}", downloads.display()))?;

    let abi = match download(&meta, arch, &downloads).and_then(|deb| abi_package(&deb)) {
        Ok(abi) => abi,
        Err(err) => {
            // Offline: fall back to whatever matching package was fetched before.
            let cached = newest_cached(&cache, spec, arch)?;
            eprintln!("warning: {err:#}; using cached {}", cached.display());
            return Ok(cached);
        }
    };
    let dest = cache.join(&abi);
    if dest.join(".complete").is_file() {
        return Ok(dest);
    }
    eprintln!("fetching kernel package {abi}");
    let deb = download(&abi, arch, &downloads)?;
    unpack_deb(&deb, &dest)?;
    Ok(dest)
}

/// The unpacked tree of Debian's package PKG for ARCH, fetched once into
/// `target/alpinit-cache/packages/PKG-ARCH/` (busybox-static for a guest
/// of another architecture); once there, apt is not asked again.
pub fn package(pkg: &str, arch: Arch) -> Result<PathBuf> {
    let cache = paths::target_dir().join("alpinit-cache").join("packages");
    let dest = cache.join(format!("{pkg}-{}", arch.debian()));
    if dest.join(".complete").is_file() {
        return Ok(dest);
    }
    let downloads = cache.join("downloads");
    fs::create_dir_all(&downloads).with_context(|| format!("creating {}", downloads.display()))?;
    eprintln!("fetching package {}", apt_name(pkg, arch));
    let deb = download(pkg, arch, &downloads)?;
    unpack_deb(&deb, &dest)?;
    Ok(dest)
}

/// `dpkg-deb -x DEB` into DEST through a `.partial` twin, marked complete,
/// then the .deb removed: the unpacked tree is the cache.
fn unpack_deb(deb: &Path, dest: &Path) -> Result<()> {
    // Appended, not `with_extension`: `6.1.0-57` would lose its `.0-57`.
    let mut partial = dest.as_os_str().to_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial))?;
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    fs::rename(&partial, dest).with_context(|| format!("renaming to {}", dest.display()))?;
    fs::write(dest.join(".complete"), b"").context("marking the package cache complete")?;
    // The unpacked tree is the cache; the 70 MB .deb is not needed again.
    fs::remove_file(deb).with_context(|| format!("removing {}", deb.display()))?;
    Ok(())
}

/// What apt calls PKG of ARCH on this (amd64) host: `PKG:arm64` for the
/// foreign architecture, which `dpkg --add-architecture arm64` enables.
pub fn apt_name(pkg: &str, arch: Arch) -> String {
    match arch {
        Arch::X86_64 => pkg.to_string(),
        Arch::Aarch64 => format!("{pkg}:{}", arch.debian()),
    }
}

/// `apt-get download PKG` into DIR; returns the .deb it produced.
fn download(pkg: &str, arch: Arch, dir: &Path) -> Result<PathBuf> {
    let before: Vec<PathBuf> = debs_in(dir, pkg)?;
    for old in before {
        fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    let name = apt_name(pkg, arch);
    let output = Command::new("apt-get")
        .arg("download")
        .arg(&name)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running apt-get download")?;
    if !output.status.success() {
        let hint = match arch {
            Arch::X86_64 => "",
            Arch::Aarch64 => " (is `dpkg --add-architecture arm64 && apt-get update` done? `cargo xtask deps` does it)",
        };
        bail!(
            "apt-get download {name} failed{hint}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut debs = debs_in(dir, pkg)?;
    debs.pop()
        .with_context(|| format!("apt-get download {name} produced no .deb"))
}

fn debs_in(dir: &Path, pkg: &str) -> Result<Vec<PathBuf>> {
    let prefix = format!("{pkg}_");
    let mut debs = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            debs.push(dir.join(name));
        }
    }
    debs.sort();
    Ok(debs)
}

/// The `linux-image-<abi>` package a metapackage depends on.
fn abi_package(deb: &Path) -> Result<String> {
    let output = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg("Depends")
        .output()
        .context("running dpkg-deb -f")?;
    if !output.status.success() {
        bail!("dpkg-deb -f {} Depends failed", deb.display());
    }
    let depends = String::from_utf8_lossy(&output.stdout);
    image_dependency(&depends).with_context(|| format!("no linux-image dependency in {depends:?}"))
}

/// Picks `linux-image-6.1.0-NN-amd64` out of a Depends field.
pub fn image_dependency(depends: &str) -> Option<String> {
    depends
        .split([',', '|'])
        .map(|alt| {
            alt.trim()
                .split([' ', '('])
                .next()
                .unwrap_or("")
                .to_string()
        })
        .find(|name| name.starts_with("linux-image-") && name.chars().any(|c| c.is_ascii_digit()))
}

fn newest_cached(cache: &Path, spec: &KernelSpec, arch: Arch) -> Result<PathBuf> {
    let cloud = *spec == KernelSpec::Cloud;
    let suffix = format!("-{}", arch.debian());
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir(cache) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_cloud = name.contains("-cloud-");
            if name.starts_with("linux-image-")
                && name.ends_with(&suffix)
                && is_cloud == cloud
                && entry.path().join(".complete").is_file()
            {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found.pop().context("no cached kernel package either")
}

/// depmod over the whole tree once, so the closure can be resolved: the
/// Debian package ships no modules.dep.
fn ensure_module_index(kernel: &Kernel) -> Result<()> {
    let dir = kernel.modules_dir();
    if dir.join("modules.dep").is_file() && dir.join("modules.softdep").is_file() {
        return Ok(());
    }
    eprintln!("indexing modules of {} (depmod)", kernel.release);
    run(Command::new("depmod")
        .arg("-b")
        .arg(&kernel.root)
        .arg(&kernel.release))
    .with_context(|| {
        format!(
            "{} has no modules.dep and depmod could not write one there",
            dir.display()
        )
    })
}

fn extract_vmlinux_cached(vmlinuz: &Path, dest: &Path) -> Result<Option<PathBuf>> {
    if dest.is_file() {
        return Ok(Some(dest.to_path_buf()));
    }
    let image = fs::read(vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    let Some(elf) = extract_vmlinux(&image)? else {
        return Ok(None);
    };
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = dest.with_extension("partial");
    fs::write(&tmp, &elf).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, dest).with_context(|| format!("renaming to {}", dest.display()))?;
    Ok(Some(dest.to_path_buf()))
}

const XZ_MAGIC: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Like the kernel's extract-vmlinux: try every XZ stream start until one
/// decompresses to an ELF. `None` for other compressions (the cloud kernel's
/// LZ4 boots fast enough as a bzImage).
pub fn extract_vmlinux(image: &[u8]) -> Result<Option<Vec<u8>>> {
    for start in find_all(image, XZ_MAGIC) {
        if let Ok(out) = xz_decompress(&image[start..]) {
            if out.starts_with(ELF_MAGIC) {
                return Ok(Some(out));
            }
        }
    }
    Ok(None)
}

pub fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// `xz --single-stream` stops after the first stream and ignores the rest of
/// the bzImage that follows it.
fn xz_decompress(data: &[u8]) -> Result<Vec<u8>> {
    let mut child = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running xz (install xz-utils)")?;
    let mut stdin = child.stdin.take().context("xz stdin")?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || {
        // xz exits early on a bad stream; the broken pipe is expected then.
        let _ = stdin.write_all(&input);
    });
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .context("xz stdout")?
        .read_to_end(&mut out)
        .context("reading xz output")?;
    let status = child.wait().context("waiting for xz")?;
    let _ = writer.join();
    if !status.success() {
        bail!("xz failed: {status}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_abi_package_from_depends() {
        let cases = [
            (
                "linux-image-6.1.0-56-amd64 (= 6.1.192-2)",
                Some("linux-image-6.1.0-56-amd64"),
            ),
            (
                "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2), foo",
                Some("linux-image-6.1.0-56-cloud-amd64"),
            ),
            ("initramfs-tools | linux-initramfs-tool", None),
            ("", None),
        ];
        for (depends, want) in cases {
            assert_eq!(image_dependency(depends).as_deref(), want, "{depends}");
        }
    }

    #[test]
    fn arm64_packages_are_named_for_the_foreign_architecture() {
        assert_eq!(
            KernelSpec::Generic.metapackage(Arch::Aarch64).as_deref(),
            Some("linux-image-arm64")
        );
        assert_eq!(
            KernelSpec::Cloud.metapackage(Arch::X86_64).as_deref(),
            Some("linux-image-cloud-amd64")
        );
        assert_eq!(
            apt_name("linux-image-6.1.0-57-arm64", Arch::Aarch64),
            "linux-image-6.1.0-57-arm64:arm64"
        );
        assert_eq!(apt_name("busybox-static", Arch::X86_64), "busybox-static");
        assert_eq!(
            image_dependency("linux-image-6.1.0-57-arm64 (= 6.1.192-3)").as_deref(),
            Some("linux-image-6.1.0-57-arm64")
        );
    }

    #[test]
    fn offline_fallback_keeps_to_the_architecture() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "linux-image-6.1.0-57-amd64",
            "linux-image-6.1.0-57-arm64",
            "linux-image-6.1.0-57-cloud-arm64",
        ] {
            fs::create_dir_all(dir.path().join(name)).expect("mkdir");
            fs::write(dir.path().join(name).join(".complete"), b"").expect("mark");
        }
        let pick = |spec: &KernelSpec, arch| {
            newest_cached(dir.path(), spec, arch)
                .expect("cached")
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        };
        assert_eq!(
            pick(&KernelSpec::Generic, Arch::Aarch64).as_deref(),
            Some("linux-image-6.1.0-57-arm64")
        );
        assert_eq!(
            pick(&KernelSpec::Generic, Arch::X86_64).as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        assert_eq!(
            pick(&KernelSpec::Cloud, Arch::Aarch64).as_deref(),
            Some("linux-image-6.1.0-57-cloud-arm64")
        );
        assert!(newest_cached(dir.path(), &KernelSpec::Cloud, Arch::X86_64).is_err());
    }

    #[test]
    fn spec_parsing() {
        assert_eq!(KernelSpec::parse("generic"), KernelSpec::Generic);
        assert_eq!(KernelSpec::parse("cloud"), KernelSpec::Cloud);
        assert_eq!(
            KernelSpec::parse("/x/y"),
            KernelSpec::Dir(PathBuf::from("/x/y"))
        );
    }

    #[test]
    fn finds_every_occurrence() {
        assert_eq!(find_all(b"abXZabXZ", b"XZ"), vec![2, 6]);
        assert!(find_all(b"abc", b"XZ").is_empty());
    }

    #[test]
    fn extracts_an_elf_from_an_xz_stream_inside_junk() {
        if Command::new("xz").arg("--version").output().is_err() {
            eprintln!("note: xz missing, skipping");
            return;
        }
        let payload = b"\x7fELF and the rest of a kernel".to_vec();
        let mut child = Command::new("xz")
            .args(["-c", "--check=crc32"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("xz");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&payload)
            .expect("write");
        let compressed = child.wait_with_output().expect("xz output").stdout;
        // A decoy magic that is not a valid stream, then the real one, then junk.
        let mut image = b"MZ header".to_vec();
        image.extend_from_slice(XZ_MAGIC);
        image.extend_from_slice(b"garbage");
        image.extend_from_slice(&compressed);
        image.extend_from_slice(b"trailing setup data");
        let out = extract_vmlinux(&image).expect("extract");
        assert_eq!(out.as_deref(), Some(payload.as_slice()));
        assert_eq!(extract_vmlinux(b"no stream here").expect("extract"), None);
    }
}
