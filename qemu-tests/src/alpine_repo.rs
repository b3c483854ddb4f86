//! A real, signed Alpine boot repository built from the mini root's
//! installed packages: `.apk` files in apk v2 format and a signed
//! `APKINDEX.tar.gz`, for the scenarios where Alpine's own `apk` fills the
//! new root.
//!
//! The v2 format, as apk-tools 2.14 reads it (`src/package.c`,
//! `apk_sign_ctx_mpart_cb`): three gzip streams read as one tar.
//! 1. the signature: a tar holding `.SIGN.RSA.<key>.rsa.pub` (an RSA SHA-1
//!    signature of the compressed control stream), with no end-of-archive
//!    blocks so the tar goes on in the next stream;
//! 2. the control: `.PKGINFO` (and the install scripts), also cut; its
//!    compressed bytes hashed with SHA-1 are the package identity (`C:Q1…`
//!    in the index);
//! 3. the data: the files, each with an `APK-TOOLS.checksum.SHA1` PAX
//!    record, ending the archive; its compressed bytes hashed with SHA-256
//!    are `.PKGINFO`'s `datahash`.
//!
//! An index is a signature stream followed by the gzip tar of `APKINDEX`
//! and `DESCRIPTION`.

mod db;
mod key;

pub use db::{parse_installed, Entry, Installed};
use key::sign;
pub use key::{cached_key, key_in, Key};

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::fixtures;
use crate::qemu::Arch;

pub fn sha1(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding (apk's `Q1` checksums).
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A tar member of a package or index stream.
pub enum Member {
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// A ustar archive of MEMBERS, data members carrying apk's SHA-1 PAX
/// record when `checksums`; `cut` drops the end-of-archive blocks.
pub fn tar(members: &[Member], mtime: u64, checksums: bool, cut: bool) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        let (path, data): (&str, &[u8]) = match m {
            Member::File { path, mode, data } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                (path, data)
            }
            Member::Dir { path, mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                (path, &[])
            }
            Member::Symlink { path, target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                h.set_link_name(target)
                    .with_context(|| format!("link name of {path}"))?;
                (path, target.as_bytes())
            }
        };
        if checksums && !matches!(m, Member::Dir { .. }) {
            // Named, unlike the tar crate's own PAX headers: apk takes a
            // header with an empty name for the end of the archive.
            let record = pax_record("APK-TOOLS.checksum.SHA1", &hex(&sha1(data)));
            let mut x = tar::Header::new_ustar();
            x.set_entry_type(tar::EntryType::XHeader);
            x.set_mode(0o644);
            x.set_mtime(mtime);
            x.set_size(record.len() as u64);
            let short: String = path
                .chars()
                .rev()
                .take(80)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            x.set_path(format!("PaxHeaders/{short}"))
                .with_context(|| format!("PAX header of {path}"))?;
            x.set_cksum();
            b.append(&x, record.as_bytes())
                .with_context(|| format!("PAX header of {path}"))?;
        }
        let body: &[u8] = if matches!(m, Member::File { .. }) {
            data
        } else {
            &[]
        };
        b.append_data(&mut h, path, body)
            .with_context(|| format!("adding {path}"))?;
    }
    let mut out = b.into_inner().context("finishing a tar")?;
    if cut {
        // The end-of-archive marker: two zero blocks the builder wrote.
        out.truncate(out.len() - 1024);
    }
    Ok(out)
}

/// One PAX record: `LEN KEY=VALUE\n`, LEN counting the whole record.
pub fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 2;
    let mut len = body + 1;
    while len.to_string().len() + 1 + body != len {
        len += 1;
    }
    format!("{len} {key}={value}\n")
}

pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(9));
    gz.write_all(data).context("gzip")?;
    gz.finish().context("gzip")
}

/// The signature stream over STREAM (compressed bytes).
fn signature_stream(key: &Key, stream: &[u8], mtime: u64) -> Result<Vec<u8>> {
    let sig = sign(key, stream)?;
    gzip(&tar(
        &[Member::File {
            path: format!(".SIGN.RSA.{}", key.name),
            mode: 0o644,
            data: sig,
        }],
        mtime,
        false,
        true,
    )?)
}

/// One built package.
pub struct Built {
    pub name: String,
    pub version: String,
    pub bytes: Vec<u8>,
    /// SHA-1 of the control stream: the package identity.
    pub identity: Vec<u8>,
    pub index_entry: String,
}

impl Built {
    pub fn file_name(&self) -> String {
        format!("{}-{}.apk", self.name, self.version)
    }

    /// The name apk gives it in a package cache: identity's first 4 bytes.
    pub fn cache_name(&self) -> String {
        format!(
            "{}-{}.{}.apk",
            self.name,
            self.version,
            hex(&self.identity[..4])
        )
    }
}

/// `.PKGINFO` field names for the installed database's header letters.
const PKGINFO_FIELDS: &[(char, &str)] = &[
    ('P', "pkgname"),
    ('V', "pkgver"),
    ('T', "pkgdesc"),
    ('U', "url"),
    ('t', "builddate"),
    ('I', "size"),
    ('A', "arch"),
    ('o', "origin"),
    ('c', "commit"),
    ('m', "maintainer"),
    ('L', "license"),
    ('k', "provider_priority"),
];

/// Multi-valued letters (space separated in the database), one line per
/// value in `.PKGINFO`.
const PKGINFO_LISTS: &[(char, &str)] = &[
    ('r', "replaces"),
    ('p', "provides"),
    ('D', "depend"),
    ('i', "install_if"),
];

/// Builds PKG's `.apk` from the files under ROOT, signed with KEY.
pub fn build_package(pkg: &Installed, root: &Path, key: &Key) -> Result<Built> {
    let mtime: u64 = pkg.get('t').and_then(|t| t.parse().ok()).unwrap_or(0);
    let mut data_members = Vec::new();
    for e in &pkg.entries {
        data_members.push(match e {
            Entry::Dir { path, mode } => Member::Dir {
                path: format!("{path}/"),
                mode: *mode,
            },
            Entry::File { path, mode } => {
                let src = root.join(path);
                let meta = fs::symlink_metadata(&src)
                    .with_context(|| format!("{} lists {}", pkg.name(), src.display()))?;
                if meta.file_type().is_symlink() {
                    let target = fs::read_link(&src)
                        .with_context(|| format!("reading {}", src.display()))?;
                    Member::Symlink {
                        path: path.clone(),
                        target: target.to_string_lossy().into_owned(),
                    }
                } else {
                    Member::File {
                        path: path.clone(),
                        mode: *mode,
                        data: fs::read(&src)
                            .with_context(|| format!("reading {}", src.display()))?,
                    }
                }
            }
        });
    }
    let data = gzip(&tar(&data_members, mtime, true, false)?)?;
    let mut info = String::from("# Generated by alpinit's test repository builder\n");
    for (letter, field) in PKGINFO_FIELDS {
        if let Some(v) = pkg.get(*letter) {
            info.push_str(&format!("{field} = {v}\n"));
        }
    }
    for (letter, field) in PKGINFO_LISTS {
        for v in pkg.get(*letter).unwrap_or("").split_whitespace() {
            info.push_str(&format!("{field} = {v}\n"));
        }
    }
    info.push_str(&format!("datahash = {}\n", hex(&sha256(&data))));
    let mut control_members = vec![Member::File {
        path: ".PKGINFO".into(),
        mode: 0o644,
        data: info.into_bytes(),
    }];
    for (kind, script) in &pkg.scripts {
        control_members.push(Member::File {
            path: format!(".{kind}"),
            mode: 0o755,
            data: script.clone(),
        });
    }
    let control = gzip(&tar(&control_members, mtime, false, true)?)?;
    let identity = sha1(&control);
    let mut bytes = signature_stream(key, &control, mtime)?;
    bytes.extend_from_slice(&control);
    bytes.extend_from_slice(&data);
    let index_entry = index_entry(pkg, &identity, bytes.len());
    Ok(Built {
        name: pkg.name().to_string(),
        version: pkg.get('V').unwrap_or("0").to_string(),
        bytes,
        identity,
        index_entry,
    })
}

/// The package's `APKINDEX` paragraph (`S:` is the `.apk` size).
pub fn index_entry(pkg: &Installed, identity: &[u8], size: usize) -> String {
    let mut s = format!("C:Q1{}\n", base64(identity));
    for letter in ['P', 'V', 'A'] {
        if let Some(v) = pkg.get(letter) {
            s.push_str(&format!("{letter}:{v}\n"));
        }
    }
    s.push_str(&format!("S:{size}\n"));
    for letter in ['I', 'T', 'U', 'L', 'o', 'm', 't', 'c', 'k', 'D', 'p', 'i'] {
        if let Some(v) = pkg.get(letter) {
            s.push_str(&format!("{letter}:{v}\n"));
        }
    }
    s.push('\n');
    s
}

/// A signed `APKINDEX.tar.gz` listing PACKAGES.
pub fn index(packages: &[&Built], key: &Key, description: &str) -> Result<Vec<u8>> {
    let text: String = packages.iter().map(|p| p.index_entry.as_str()).collect();
    let body = gzip(&tar(
        &[
            Member::File {
                path: "DESCRIPTION".into(),
                mode: 0o644,
                data: description.as_bytes().to_vec(),
            },
            Member::File {
                path: "APKINDEX".into(),
                mode: 0o644,
                data: text.into_bytes(),
            },
        ],
        0,
        false,
        false,
    )?)?;
    let mut out = signature_stream(key, &body, 0)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// A meta package with no files: `alpine-base` stands for the real one
/// (whose closure, openrc and alpine-conf, the mini root lacks) and
/// depends on just what boots busybox init. Built for ARCH.
pub fn meta_package(name: &str, version: &str, depends: &[&str], arch: Arch) -> Installed {
    let mut header = vec![
        ('P', name.to_string()),
        ('V', version.to_string()),
        ('A', arch.name().to_string()),
        ('I', "0".to_string()),
        ('T', format!("{name} for alpinit's tests")),
        ('U', "https://alpinelinux.org".to_string()),
        ('L', "MIT".to_string()),
        ('o', name.to_string()),
        ('t', "1718003507".to_string()),
    ];
    if !depends.is_empty() {
        header.push(('D', depends.join(" ")));
    }
    Installed {
        header,
        entries: Vec::new(),
        scripts: Vec::new(),
    }
}

/// ARCH's unpacked mini root, once per directory. The x86_64 one keeps
/// its old place (`DIR/miniroot`); the others get `DIR/miniroot-ARCH`, so
/// one directory can hold both (an aarch64 repository is checked by the
/// x86_64 root's apk, see [`verify`]).
pub fn miniroot(dir: &Path, arch: Arch) -> Result<PathBuf> {
    let (root, fixture) = match arch {
        Arch::X86_64 => (dir.join("miniroot"), fixtures::MINIROOT_X86_64),
        Arch::Aarch64 => (dir.join("miniroot-aarch64"), fixtures::MINIROOT_AARCH64),
    };
    if !root.join("lib/apk/db/installed").is_file() {
        fixtures::unpack(&fixture, &root)?;
    }
    Ok(root)
}

/// Runs the mini root's real `apk ARGS` chrooted into ROOT (mounting
/// nothing); returns the combined output, or an error carrying it.
pub fn chroot_apk(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("chroot")
        .arg(root)
        .arg("/sbin/apk")
        .args(args)
        .output()
        .with_context(|| format!("running chroot {} apk", root.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("apk {args:?} in {}: {}\n{text}", root.display(), out.status);
    }
    Ok(text)
}

/// Prefix of the key the real-apk image trusts.
pub const TRUSTED_KEY: &str = "alpinit-test";

/// What the real-apk image adds (host file, path in the image): ARCH's
/// mini root's dynamic `apk`, the musl loader and the libraries it links,
/// and the trusted test key in `/etc/apk/keys`.
pub fn image_files(work: &Path, arch: Arch) -> Result<Vec<(PathBuf, String)>> {
    let root = miniroot(work, arch)?;
    let mut files: Vec<(PathBuf, String)> = image_paths(arch)
        .iter()
        .map(|p| (root.join(p), format!("/{p}")))
        .collect();
    let key = cached_key(TRUSTED_KEY)?;
    files.push((key.public.clone(), format!("/etc/apk/keys/{}", key.name)));
    Ok(files)
}

/// The mini root's files that run its `apk`, relative to the root: the
/// musl loader is named after the architecture (`ld-musl-ARCH.so.1`).
pub fn image_paths(arch: Arch) -> Vec<String> {
    let a = arch.name();
    let mut paths = vec![
        "sbin/apk".to_string(),
        format!("lib/ld-musl-{a}.so.1"),
        format!("lib/libc.musl-{a}.so.1"),
    ];
    paths.extend(
        [
            "lib/libapk.so.2.14.0",
            "lib/libcrypto.so.3",
            "lib/libssl.so.3",
            "lib/libz.so.1",
            "lib/libz.so.1.3.1",
        ]
        .map(String::from),
    );
    paths
}

/// The packages of the boot repository: just what boots busybox init from
/// a tmpfs root, and the `alpine-base` every boot asks for.
pub const BOOT_PACKAGES: &[&str] = &[
    "alpine-baselayout",
    "alpine-baselayout-data",
    "busybox",
    "busybox-binsh",
    "musl",
];

/// Builds NAMES from the installed packages of ROOT (plus the `alpine-base`
/// meta package for ARCH when `with_base`), signed with KEY.
pub fn build_packages(
    root: &Path,
    names: &[&str],
    key: &Key,
    with_base: bool,
    arch: Arch,
) -> Result<Vec<Built>> {
    let installed = parse_installed(root)?;
    let mut out = Vec::new();
    for name in names {
        let pkg = installed
            .iter()
            .find(|p| p.name() == *name)
            .with_context(|| format!("{name} is not installed in {}", root.display()))?;
        out.push(build_package(pkg, root, key)?);
    }
    if with_base {
        let base = meta_package("alpine-base", "3.20.3-r0", BOOT_PACKAGES, arch);
        out.push(build_package(&base, root, key)?);
    }
    Ok(out)
}

/// Writes `DIR/ARCH/*.apk` and `DIR/ARCH/APKINDEX.tar.gz` signed by
/// INDEX_KEY, and the `.boot_repository` marker: apk looks for the index
/// under its own architecture's name.
pub fn write_repository(
    dir: &Path,
    packages: &[&Built],
    index_key: &Key,
    arch: Arch,
) -> Result<PathBuf> {
    let arch = dir.join(arch.name());
    fs::create_dir_all(&arch).with_context(|| format!("creating {}", arch.display()))?;
    for p in packages {
        let f = arch.join(p.file_name());
        fs::write(&f, &p.bytes).with_context(|| format!("writing {}", f.display()))?;
    }
    let idx = arch.join("APKINDEX.tar.gz");
    fs::write(&idx, index(packages, index_key, "alpinit test repository")?)
        .with_context(|| format!("writing {}", idx.display()))?;
    fs::write(dir.join(".boot_repository"), "")
        .with_context(|| format!("writing {}", dir.join(".boot_repository").display()))?;
    Ok(idx)
}

/// `apk verify` by the mini root's real apk, chrooted into ROOT with KEY
/// trusted, of every file in FILES (copied into ROOT's `/tmp`). ROOT is
/// the x86_64 mini root whatever the packages' architecture: this host
/// runs no other architecture's binaries, and `apk verify` checks
/// signatures and hashes only, which do not depend on the architecture.
pub fn verify(root: &Path, key: &Key, files: &[PathBuf]) -> Result<String> {
    let keys = root.join("etc/apk/keys");
    fs::copy(&key.public, keys.join(&key.name))
        .with_context(|| format!("copying {} into {}", key.public.display(), keys.display()))?;
    let stage = root.join("tmp/verify");
    fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    let mut args = vec!["verify".to_string()];
    for f in files {
        let name = f.file_name().context("a file to verify has no name")?;
        fs::copy(f, stage.join(name)).with_context(|| format!("copying {}", f.display()))?;
        args.push(format!("/tmp/verify/{}", name.to_string_lossy()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = chroot_apk(root, &args);
    let _ = fs::remove_dir_all(&stage);
    let _ = fs::remove_file(keys.join(&key.name));
    result
}

#[cfg(test)]
mod tests;
