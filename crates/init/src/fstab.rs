//! fstab: the `/` tmpfs options of the overlay, and relocating boot media to
//! the mount points users configured (Alpine's `remount_fstab_entry`):
//! the stick found at `/media/sda1` moves to `/media/usb` because fstab
//! says `/dev/usbdisk /media/usb` and `/dev/usbdisk` points at `sda1`.

use crate::devices::escape_component;
use crate::layout::Layout;
use crate::log;
use crate::media::Medium;
use alpinit_sys::{MountFlags, Sys};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub spec: String,
    pub file: String,
    pub vfstype: String,
    pub options: String,
}

/// fstab fields are whitespace separated; `\040` and friends are octal escapes.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(unescape);
            Some(Entry {
                spec: f.next()?,
                file: f.next()?,
                vfstype: f.next().unwrap_or_default(),
                options: f.next().unwrap_or_else(|| "defaults".to_owned()),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Three octal digits make one byte, so the first is at most 3: `\400`
        // and above are not escapes and stay as written (their value would not
        // fit the byte: in u8 arithmetic it overflowed, fuzz target `fstab`).
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/mounts`, its fields unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    pub source: String,
    pub target: String,
    pub fstype: String,
}

/// `/proc/mounts` (same syntax and octal escapes as fstab: a space in a
/// mount point is `\040`). The one parser of that file.
pub fn proc_mounts(text: &str) -> Vec<Mounted> {
    parse(text)
        .into_iter()
        .map(|e| Mounted {
            source: e.spec,
            target: e.file,
            fstype: e.vfstype,
        })
        .collect()
}

/// The new root's `/etc/fstab` (looked up inside it), if it has one.
pub fn read_new_root(layout: &Layout) -> Option<String> {
    let root = crate::in_root::NewRoot::open(&layout.sysroot()).ok()?;
    if !root.exists("etc/fstab") {
        return None;
    }
    match root.read_to_string("etc/fstab") {
        Ok(t) => Some(t),
        Err(e) => {
            log::warn(&e.to_string());
            None
        }
    }
}

/// Options of a `/` tmpfs line, applied to the sysroot by remount.
pub fn root_tmpfs_options(entries: &[Entry]) -> Option<&str> {
    entries
        .iter()
        .find(|e| e.file == "/" && e.vfstype == "tmpfs")
        .map(|e| e.options.as_str())
}

/// Splits mount options into flags and file-system data, dropping the
/// fstab-only words.
pub fn split_options(opts: &str) -> (MountFlags, String) {
    let mut flags = MountFlags::NONE;
    let mut data = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags = flags | MountFlags::RDONLY,
            "nosuid" => flags = flags | MountFlags::NOSUID,
            "nodev" => flags = flags | MountFlags::NODEV,
            "noexec" => flags = flags | MountFlags::NOEXEC,
            "noatime" => flags = flags | MountFlags(libc::MS_NOATIME),
            "nodiratime" => flags = flags | MountFlags(libc::MS_NODIRATIME),
            "relatime" => flags = flags | MountFlags(libc::MS_RELATIME),
            "sync" => flags = flags | MountFlags(libc::MS_SYNCHRONOUS),
            "dirsync" => flags = flags | MountFlags(libc::MS_DIRSYNC),
            "rw" | "defaults" | "auto" | "noauto" | "user" | "nouser" | "users" | "nofail"
            | "suid" | "dev" | "exec" | "async" => {}
            o if o.starts_with("x-") || o.starts_with("comment=") => {}
            o => data.push(o),
        }
    }
    (flags, data.join(","))
}

/// The block device an fstab spec names, resolved through our `/dev` links.
fn spec_rdev(layout: &Layout, spec: &str) -> Option<u64> {
    let path: PathBuf = if let Some(u) = spec.strip_prefix("UUID=") {
        layout.dev().join("disk/by-uuid").join(escape_component(u))
    } else if let Some(l) = spec.strip_prefix("LABEL=") {
        layout.dev().join("disk/by-label").join(escape_component(l))
    } else if let Some(p) = spec.strip_prefix("PARTUUID=") {
        layout
            .dev()
            .join("disk/by-partuuid")
            .join(escape_component(p))
    } else if spec.starts_with("/dev/") {
        layout.path(spec)
    } else {
        return None;
    };
    let md = std::fs::metadata(path).ok()?;
    Some(md.rdev())
}

fn makedev(major: u32, minor: u32) -> u64 {
    nix::sys::stat::makedev(u64::from(major), u64::from(minor))
}

/// Moves each medium to its fstab mount point and applies the fstab options.
/// Paths inside the media (apkovl, repositories) are rewritten to match.
pub fn relocate(sys: &dyn Sys, layout: &Layout, entries: &[Entry], media: &mut [Medium]) {
    for m in media.iter_mut() {
        let want = makedev(m.major, m.minor);
        let Some(e) = entries
            .iter()
            .find(|e| e.file.starts_with('/') && spec_rdev(layout, &e.spec) == Some(want))
        else {
            continue;
        };
        // The fstab may come from the overlay: its mount point must be a
        // plain path of the initramfs, never one that climbs with `..` or
        // lands in the new root (whose symlinks the overlay chose).
        let sysroot = crate::packages::unroot(layout, &layout.sysroot());
        if e.file.split('/').any(|c| c == "..")
            || e.file == sysroot
            || e.file.starts_with(&format!("{sysroot}/"))
        {
            log::warn(&format!(
                "fstab mount point {} for /dev/{} refused: not a plain path outside the new root",
                e.file, m.devname
            ));
            continue;
        }
        let target = layout.path(&e.file);
        if target != m.mountpoint {
            if let Err(err) = std::fs::create_dir_all(&target) {
                log::warn(&format!("creating {}: {err}", target.display()));
                continue;
            }
            let src = m.mountpoint.to_string_lossy().into_owned();
            if let Err(err) = sys.mount(&src, &target, None, MountFlags::MOVE, None) {
                log::warn(&format!("moving {src} to {}: {err}", target.display()));
                continue;
            }
            log::info(&format!(
                "moved /dev/{} from {src} to {}",
                m.devname, e.file
            ));
            rebase(m, &target);
        }
        let (flags, data) = split_options(&e.options);
        if !e.options.is_empty() && e.options != "defaults" {
            // Boot media stay read-only and inert unless fstab says rw.
            let keep_ro = !e.options.split(',').any(|o| o == "rw");
            let mut f = flags | MountFlags::REMOUNT | MountFlags::NOSUID | MountFlags::NODEV;
            if keep_ro {
                f = f | MountFlags::RDONLY;
            }
            let data = (!data.is_empty()).then_some(data.as_str());
            if let Err(err) = sys.mount("", &m.mountpoint, None, f, data) {
                log::warn(&format!(
                    "remounting {} with {}: {err}",
                    m.mountpoint.display(),
                    e.options
                ));
            }
        }
    }
}

fn rebase(m: &mut Medium, new: &Path) {
    let old = std::mem::replace(&mut m.mountpoint, new.to_owned());
    let fix = |p: &mut PathBuf| {
        if let Ok(rest) = p.strip_prefix(&old) {
            *p = new.join(rest);
        }
    };
    m.apkovls.iter_mut().for_each(fix);
    m.repos.iter_mut().for_each(fix);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpinit_sys::{Call, Recorder};

    const INITRAMFS_FSTAB: &str = "/dev/cdrom\t/media/cdrom\tiso9660\tnoauto,ro 0 0\n/dev/usbdisk\t/media/usb\tvfat\tnoauto,ro 0 0\n";

    /// Fuzz target `fstab`: `\400` overflowed the u8 arithmetic (a panic
    /// where overflow is checked); above `\377` is not an escape.
    #[test]
    fn octal_escape_above_0o377_stays_as_written() {
        let e = parse("/dev/sda1 /m\\400x\\377\\777 ext4\n");
        assert_eq!(e[0].file.as_bytes(), b"/m\\400x\xef\xbf\xbd\\777");
        assert_eq!(parse("\\400 /\n")[0].spec, "\\400");
    }

    #[test]
    fn parse_table() {
        let e = parse(
            "# c\n\nUUID=1\t/media/my\\040disk vfat ro 0 0\ntmpfs / tmpfs size=2g 0 0\nbogus\n",
        );
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].file, "/media/my disk");
        assert_eq!(root_tmpfs_options(&e), Some("size=2g"));
    }

    #[test]
    fn proc_mounts_fields_are_unescaped() {
        let m = proc_mounts("/dev/sda1 /media/my\\040stick vfat ro 0 0\nproc /proc proc rw 0 0\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].source, "/dev/sda1");
        assert_eq!(m[0].target, "/media/my stick");
        assert_eq!(m[0].fstype, "vfat");
        assert_eq!(m[1].target, "/proc");
    }

    #[test]
    fn split_options_drops_fstab_words() {
        let (f, d) = split_options("noauto,ro,customopts,utf8");
        assert!(f.contains(MountFlags::RDONLY));
        assert_eq!(d, "customopts,utf8");
    }

    fn medium(layout: &Layout, dev: &str, major: u32, minor: u32) -> Medium {
        let mnt = layout.media().join(dev);
        Medium {
            devname: dev.into(),
            major,
            minor,
            fstype: "iso9660".into(),
            mountpoint: mnt.clone(),
            usb: false,
            apkovls: vec![],
            repos: vec![mnt.join("apks")],
        }
    }

    /// Stands in for a device node: a symlink to a real node with the same
    /// rdev (/dev/null is 1:3 everywhere).
    #[test]
    fn relocates_cdrom_to_media_cdrom_and_remounts_with_fstab_options() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        std::fs::create_dir_all(layout.dev()).unwrap();
        std::os::unix::fs::symlink("/dev/null", layout.dev().join("cdrom")).unwrap();
        let mut media = vec![medium(&layout, "sr0", 1, 3)];
        let rec = Recorder::new();
        let fstab = parse("/dev/cdrom /media/cdrom iso9660 noauto,ro,customopts 0 0\n");
        relocate(&rec, &layout, &fstab, &mut media);
        let calls = rec.calls();
        assert!(
            matches!(&calls[0], Call::Mount { flags, target, .. } if flags.contains(MountFlags::MOVE) && target.ends_with("media/cdrom")),
            "{calls:?}"
        );
        assert!(
            matches!(&calls[1], Call::Mount { flags, data, .. } if flags.contains(MountFlags::REMOUNT) && data.as_deref() == Some("customopts")),
            "{calls:?}"
        );
        assert_eq!(media[0].repos[0], layout.media().join("cdrom/apks"));
    }

    #[test]
    fn no_matching_fstab_line_leaves_media_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        std::fs::create_dir_all(layout.dev()).unwrap();
        let mut media = vec![medium(&layout, "vda1", 253, 1)];
        let rec = Recorder::new();
        relocate(&rec, &layout, &parse(INITRAMFS_FSTAB), &mut media);
        assert!(rec.calls().is_empty());
    }

    /// Regression: an overlay fstab line could move a boot medium onto a
    /// path in the new root (through its planted symlinks) or climb out of
    /// /media with `..`.
    #[test]
    fn fstab_mount_points_in_the_new_root_or_with_dotdot_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        std::fs::create_dir_all(layout.dev()).unwrap();
        std::fs::create_dir_all(layout.sysroot()).unwrap();
        std::os::unix::fs::symlink("/dev/null", layout.dev().join("cdrom")).unwrap();
        for file in [
            "/sysroot/etc",
            "/sysroot",
            "/media/../sysroot/x",
            "/media/../../x",
        ] {
            let mut media = vec![medium(&layout, "sr0", 1, 3)];
            let rec = Recorder::new();
            let fstab = parse(&format!("/dev/cdrom {file} iso9660 ro 0 0\n"));
            relocate(&rec, &layout, &fstab, &mut media);
            assert!(rec.calls().is_empty(), "{file}: {:?}", rec.calls());
            assert_eq!(media[0].mountpoint, layout.media().join("sr0"));
        }
        assert!(!layout.sysroot().join("etc").exists());
        assert!(!tmp.path().parent().unwrap().join("x").exists());
    }
}
