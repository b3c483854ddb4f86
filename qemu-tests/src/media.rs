//! Boot media built without root or loop devices: MBR disk images with one
//! ext4 or FAT32 partition, isolinux ISOs, and apkovl archives.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// A file to place in a tree or archive.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Relative path (`etc/hostname`).
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

impl FileSpec {
    pub fn new(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> FileSpec {
        FileSpec {
            path: path.trim_start_matches('/').to_string(),
            mode,
            data: data.into(),
        }
    }
}

/// Writes files under DIR, creating parents.
pub fn write_tree(dir: &Path, files: &[FileSpec]) -> Result<()> {
    for file in files {
        let dest = dir.join(&file.path);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&dest, &file.data).with_context(|| format!("writing {}", dest.display()))?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(file.mode))
            .with_context(|| format!("chmod {}", dest.display()))?;
    }
    Ok(())
}

/// An apkovl as lbu makes one: a gzip tar of relative paths, directories
/// listed before their contents, numeric owner root.
pub fn apkovl(files: &[FileSpec]) -> Result<Vec<u8>> {
    let mut files = files.to_vec();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    let mut dirs_done: Vec<String> = Vec::new();
    for file in &files {
        let mut prefix = String::new();
        for component in file
            .path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d.to_vec())
            .unwrap_or_default()
        {
            prefix.push_str(component);
            prefix.push('/');
            if !dirs_done.contains(&prefix) {
                let mut header = tar::Header::new_ustar();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_uid(0);
                header.set_gid(0);
                header.set_mtime(0);
                header.set_size(0);
                builder
                    .append_data(&mut header, &prefix, std::io::empty())
                    .with_context(|| format!("adding {prefix}"))?;
                dirs_done.push(prefix.clone());
            }
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(file.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(file.data.len() as u64);
        builder
            .append_data(&mut header, &file.path, file.data.as_slice())
            .with_context(|| format!("adding {}", file.path))?;
    }
    let gz = builder.into_inner().context("finishing the tar")?;
    gz.finish().context("finishing the gzip")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filesystem {
    Ext4,
    Fat32,
}

impl Filesystem {
    fn mbr_type(self) -> &'static str {
        match self {
            Filesystem::Ext4 => "83",
            Filesystem::Fat32 => "c",
        }
    }
}

const PART_START_SECTORS: u64 = 2048;
const MIB: u64 = 1024 * 1024;

fn tool(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A disk image with an MBR and one partition at 1 MiB holding `contents`.
pub fn disk_image(
    out: &Path,
    fs_kind: Filesystem,
    label: &str,
    size_mib: u64,
    contents: &Path,
) -> Result<()> {
    let part_mib = size_mib.saturating_sub(2).max(1);
    let part = out.with_extension("part");
    filesystem_image(&part, fs_kind, label, part_mib, contents)?;
    let disk = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    disk.set_len(size_mib * MIB)
        .with_context(|| format!("sizing {}", out.display()))?;
    drop(disk);
    let script = format!(
        "label: dos\nstart={PART_START_SECTORS}, size={}, type={}, bootable\n",
        part_mib * MIB / 512,
        fs_kind.mbr_type()
    );
    let mut child = Command::new("sfdisk")
        .arg("--no-reread")
        .arg("--no-tell-kernel")
        .arg("-q")
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting sfdisk")?;
    child
        .stdin
        .take()
        .context("sfdisk stdin")?
        .write_all(script.as_bytes())
        .context("writing the sfdisk script")?;
    let result = child.wait_with_output().context("waiting for sfdisk")?;
    if !result.status.success() {
        bail!(
            "sfdisk failed: {}",
            String::from_utf8_lossy(&result.stderr).trim()
        );
    }
    // Like `dd conv=notrunc seek=2048`.
    let mut src = fs::File::open(&part).with_context(|| format!("opening {}", part.display()))?;
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .open(out)
        .with_context(|| format!("opening {}", out.display()))?;
    dst.seek(SeekFrom::Start(PART_START_SECTORS * 512))
        .context("seeking to the partition")?;
    std::io::copy(&mut src, &mut dst).context("copying the partition")?;
    drop(dst);
    fs::remove_file(&part).with_context(|| format!("removing {}", part.display()))?;
    Ok(())
}

fn filesystem_image(
    out: &Path,
    fs_kind: Filesystem,
    label: &str,
    size_mib: u64,
    contents: &Path,
) -> Result<()> {
    if out.exists() {
        fs::remove_file(out).with_context(|| format!("removing {}", out.display()))?;
    }
    match fs_kind {
        Filesystem::Ext4 => tool(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", label, "-d"])
                .arg(contents)
                .arg(out)
                .arg(format!("{size_mib}M")),
        ),
        Filesystem::Fat32 => {
            tool(
                Command::new("mkfs.vfat")
                    .args(["-F", "32", "-n", label, "-C"])
                    .arg(out)
                    .arg((size_mib * 1024).to_string()),
            )?;
            let mut entries: Vec<PathBuf> = fs::read_dir(contents)
                .with_context(|| format!("reading {}", contents.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            entries.sort();
            if entries.is_empty() {
                return Ok(());
            }
            tool(
                Command::new("mcopy")
                    .args(["-s", "-m", "-i"])
                    .arg(out)
                    .args(&entries)
                    .arg("::/"),
            )
        }
    }
}

pub const ISOLINUX_BIN: &str = "/usr/lib/ISOLINUX/isolinux.bin";
pub const ISOHYBRID_MBR: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";
pub const LDLINUX_C32: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";

/// An isolinux ISO booting `boot/vmlinuz` + `boot/initramfs` with APPEND,
/// plus whatever else is already in ROOT.
pub fn iso_image(
    out: &Path,
    root: &Path,
    vmlinuz: &Path,
    initramfs: &Path,
    append: &str,
) -> Result<()> {
    let boot = root.join("boot");
    let isolinux = boot.join("isolinux");
    fs::create_dir_all(&isolinux).with_context(|| format!("creating {}", isolinux.display()))?;
    for (src, name) in [(ISOLINUX_BIN, "isolinux.bin"), (LDLINUX_C32, "ldlinux.c32")] {
        fs::copy(src, isolinux.join(name))
            .with_context(|| format!("copying {src} (install isolinux, syslinux-common)"))?;
    }
    fs::copy(vmlinuz, boot.join("vmlinuz"))
        .with_context(|| format!("copying {}", vmlinuz.display()))?;
    fs::copy(initramfs, boot.join("initramfs"))
        .with_context(|| format!("copying {}", initramfs.display()))?;
    let cfg = format!(
        "SERIAL 0 115200\nPROMPT 0\nTIMEOUT 0\nDEFAULT alpinit\n\
         LABEL alpinit\n  KERNEL /boot/vmlinuz\n  INITRD /boot/initramfs\n  APPEND {append}\n"
    );
    fs::write(isolinux.join("isolinux.cfg"), cfg).context("writing isolinux.cfg")?;
    tool(
        Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-o"])
            .arg(out)
            .args(["-isohybrid-mbr", ISOHYBRID_MBR])
            .args(["-V", "ALPINIT"])
            .args([
                "-b",
                "boot/isolinux/isolinux.bin",
                "-c",
                "boot/isolinux/boot.cat",
            ])
            .args([
                "-no-emul-boot",
                "-boot-load-size",
                "4",
                "-boot-info-table",
                "-R",
                "-J",
            ])
            .arg(root),
    )
}

/// A plain (not bootable) ISO 9660 image holding ROOT, for a data CD.
pub fn data_iso(out: &Path, root: &Path) -> Result<()> {
    tool(
        Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-o"])
            .arg(out)
            .args(["-V", "ALPINE_DATA", "-R", "-J"])
            .arg(root),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn apkovl_lists_directories_before_files_with_root_owner() {
        let data = apkovl(&[
            FileSpec::new("etc/hostname", 0o644, "h\n"),
            FileSpec::new("bin/foo", 0o755, "#!/bin/sh\n"),
            FileSpec::new("etc/apk/world", 0o644, ""),
        ])
        .expect("apkovl");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(data.as_slice())
            .read_to_end(&mut raw)
            .expect("gunzip");
        let mut archive = tar::Archive::new(raw.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let header = entry.header();
            assert_eq!(header.uid().expect("uid"), 0);
            assert_eq!(header.gid().expect("gid"), 0);
            seen.push((
                entry.path().expect("path").to_string_lossy().into_owned(),
                header.mode().expect("mode"),
            ));
        }
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin/",
                "bin/foo",
                "etc/",
                "etc/apk/",
                "etc/apk/world",
                "etc/hostname"
            ]
        );
        assert_eq!(seen[1].1, 0o755);
    }

    fn have(tool: &str) -> bool {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    }

    #[test]
    fn ext4_disk_has_a_partition_at_one_mib() {
        if !have("mkfs.ext4") || !have("sfdisk") {
            eprintln!("note: mkfs.ext4/sfdisk missing, skipping");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("tree");
        write_tree(&tree, &[FileSpec::new("x.apkovl.tar.gz", 0o644, "data")]).expect("tree");
        let img = dir.path().join("disk.img");
        disk_image(&img, Filesystem::Ext4, "TEST", 16, &tree).expect("disk");
        let bytes = fs::read(&img).expect("read");
        assert_eq!(bytes.len() as u64, 16 * MIB);
        assert_eq!(&bytes[510..512], &[0x55, 0xaa], "MBR signature");
        assert_eq!(bytes[446 + 4], 0x83, "partition type");
        let start = u32::from_le_bytes([bytes[454], bytes[455], bytes[456], bytes[457]]);
        assert_eq!(u64::from(start), PART_START_SECTORS);
        // ext4 superblock magic 0xEF53 at offset 1024+56 of the partition
        let sb = (PART_START_SECTORS * 512 + 1024 + 56) as usize;
        assert_eq!(&bytes[sb..sb + 2], &[0x53, 0xef]);
        if have("debugfs") {
            let out = Command::new("debugfs")
                .arg("-R")
                .arg("ls -l /")
                .arg(format!(
                    "{}?offset={}",
                    img.display(),
                    PART_START_SECTORS * 512
                ))
                .output()
                .expect("debugfs");
            assert!(String::from_utf8_lossy(&out.stdout).contains("x.apkovl.tar.gz"));
        }
    }

    #[test]
    fn fat32_disk_holds_the_files() {
        if !have("mkfs.vfat") || !have("mcopy") || !have("sfdisk") {
            eprintln!("note: dosfstools/mtools/sfdisk missing, skipping");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("tree");
        write_tree(
            &tree,
            &[
                FileSpec::new("host.apkovl.tar.gz", 0o644, "data"),
                FileSpec::new("apks/.boot_repository", 0o644, ""),
            ],
        )
        .expect("tree");
        let img = dir.path().join("usb.img");
        disk_image(&img, Filesystem::Fat32, "STICK", 40, &tree).expect("disk");
        let bytes = fs::read(&img).expect("read");
        assert_eq!(bytes[446 + 4], 0x0c, "partition type");
        let out = Command::new("mdir")
            .args(["-/", "-b", "-i"])
            .arg(format!("{}@@{}", img.display(), PART_START_SECTORS * 512))
            .arg("::/")
            .output()
            .expect("mdir");
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("host.apkovl.tar.gz"), "{listing}");
        assert!(listing.contains(".boot_repository"), "{listing}");
    }
}
