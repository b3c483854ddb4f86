//! Device nodes and the links users rely on: `/dev/disk/by-{uuid,label,partuuid}`,
//! `/dev/usbdisk`, `/dev/cdrom` (what mdev and its helper scripts made for
//! Alpine's init, and what fstab relocation compares against).

use crate::layout::Layout;
use crate::log;
use alpinit_sys::{NodeKind, Sys};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Two devices carry the same identity (a cloned stick): picking either
    /// silently could boot the wrong system, so none is picked.
    #[error("{what} {spec} is ambiguous: {}", matched(devices))]
    Ambiguous {
        what: &'static str,
        spec: String,
        devices: Vec<String>,
    },
}

/// `/dev/sda1 and /dev/sdb1 both match`, `/dev/a, /dev/b and /dev/c all match`.
fn matched(devices: &[String]) -> String {
    let names: Vec<String> = devices.iter().map(|d| format!("/dev/{d}")).collect();
    match names.split_last() {
        Some((last, [one])) => format!("{one} and {last} both match"),
        Some((last, rest)) if !rest.is_empty() => {
            format!("{} and {last} all match", rest.join(", "))
        }
        Some((last, _)) => format!("{last} matches"),
        None => "nothing matches".to_owned(),
    }
}

/// Every device a command-line specification (`root=`, `apkovl=DEV:`)
/// matched, in natural name order, each once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Matches(Vec<String>);

impl Matches {
    pub fn add(&mut self, devname: &str) {
        if let Err(at) = self
            .0
            .binary_search_by(|d| alpinit_apkovl::device_order(d, devname))
        {
            self.0.insert(at, devname.to_owned());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The one matching device; `None` when nothing matched; an error
    /// naming every candidate when several did.
    pub fn unique(&self, what: &'static str, spec: &str) -> Result<Option<&str>, DeviceError> {
        match self.0.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            several => Err(DeviceError::Ambiguous {
                what,
                spec: spec.to_owned(),
                devices: several.to_vec(),
            }),
        }
    }
}

/// Escapes a device-supplied string for use as one path component, the way
/// udev does for `/dev/disk/by-label`: anything outside a safe set becomes
/// `\xNN`, so a label can never add a component or hide as `..`.
pub fn escape_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '#' | '+' | '-' | '.' | ':' | '=' | '@' | '_' => {
                out.push(c)
            }
            c if !c.is_ascii() && !c.is_control() => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
        }
    }
    match out.as_str() {
        "" => "\\x00".to_owned(),
        "." => "\\x2e".to_owned(),
        ".." => "\\x2e\\x2e".to_owned(),
        _ => out,
    }
}

/// Creates `/dev/<devname>` when `/dev` is a plain tmpfs (no devtmpfs).
pub fn make_node(
    sys: &dyn Sys,
    layout: &Layout,
    devname: &str,
    block: bool,
    major: u32,
    minor: u32,
) -> std::io::Result<()> {
    if devname.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    let path = layout.dev().join(devname);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::symlink_metadata(&path).is_ok() {
        return Ok(());
    }
    let kind = if block {
        NodeKind::Block
    } else {
        NodeKind::Char
    };
    sys.mknod(&path, kind, 0o660, major, minor)
}

/// Replaces `link` by a symlink to `target` (relative to the link's dir).
pub(crate) fn relink(link: &Path, target: &str) -> std::io::Result<()> {
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(link) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(link)?,
        Ok(_) => return Ok(()), // never replace a real node
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, link)
}

/// nlplug-findfs' `is_same_device`: a specification given as a path
/// (`/dev/mapper/root`, `/dev/vg0/root`, `/dev/disk/by-id/...`, `/dev/md0`)
/// names the block device whose number its node has. A path that resolves
/// to `/dev/<devname>` itself also names it (a link made before the node
/// was, or a tree without real nodes).
pub fn same_node(layout: &Layout, spec_path: &str, devname: &str, major: u32, minor: u32) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let path = layout.path(spec_path);
    if let Ok(meta) = std::fs::metadata(&path) {
        if same_number(
            meta.file_type().is_block_device(),
            meta.rdev(),
            major,
            minor,
        ) {
            return true;
        }
    }
    match (
        std::fs::canonicalize(&path),
        std::fs::canonicalize(layout.dev().join(devname)),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether a node (block or not, with `rdev`) is block device `major:minor`.
pub fn same_number(is_block: bool, rdev: u64, major: u32, minor: u32) -> bool {
    is_block && rdev == libc::makedev(major, minor)
}

/// What the prober learned about one block device.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub partuuid: Option<String>,
}

/// Points `link` at `../../devname` unless it already points at a device
/// that comes first in natural order: with two devices of the same UUID or
/// label the link names the lowest, whatever the arrival order, and the
/// duplicate is logged.
fn link_first(link: &Path, devname: &str) -> std::io::Result<bool> {
    if let Ok(current) = std::fs::read_link(link) {
        let current = current.to_string_lossy();
        let current = current.rsplit('/').next().unwrap_or_default().to_owned();
        if current == devname {
            return Ok(false);
        }
        let keep = alpinit_apkovl::device_order(&current, devname) == std::cmp::Ordering::Less;
        let (kept, other) = if keep {
            (current.as_str(), devname)
        } else {
            (devname, current.as_str())
        };
        log::warn(&format!(
            "{} is on both /dev/{kept} and /dev/{other}; the link names /dev/{kept}",
            link.display()
        ));
        if keep {
            return Ok(false);
        }
    }
    relink(link, &format!("../../{devname}"))?;
    Ok(true)
}

/// `/dev/disk/by-*` links for one block device.
pub fn disk_links(layout: &Layout, devname: &str, id: &Identity) -> Vec<PathBuf> {
    let mut made = Vec::new();
    let by = layout.dev().join("disk");
    for (dir, value) in [
        ("by-uuid", &id.uuid),
        ("by-label", &id.label),
        ("by-partuuid", &id.partuuid),
    ] {
        if let Some(v) = value {
            let link = by.join(dir).join(escape_component(v));
            if link_first(&link, devname).unwrap_or(false) {
                made.push(link);
            }
        }
    }
    made
}

/// Whether the sysfs device path sits behind a USB controller.
pub fn is_usb(devpath: &str) -> bool {
    devpath.split('/').any(|c| c.starts_with("usb"))
}

/// Alpine's fstab names USB media `/dev/usbdisk` and CD-ROMs `/dev/cdrom`.
/// With several candidates the lowest kernel name wins, so the link does not
/// depend on which device happened to come up first.
pub fn media_alias(layout: &Layout, alias: &str, devname: &str) -> std::io::Result<bool> {
    let link = layout.dev().join(alias);
    if let Ok(current) = std::fs::read_link(&link) {
        let current = current.to_string_lossy().into_owned();
        if alpinit_apkovl::device_order(&current, devname) != std::cmp::Ordering::Greater {
            return Ok(false);
        }
    }
    relink(&link, devname)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_number_table() {
        let dev = |ma, mi| libc::makedev(ma, mi);
        for (is_block, rdev, want) in [
            (true, dev(253, 0), true),
            (true, dev(253, 1), false),
            (true, dev(8, 0), false),
            // /dev/null's number as a character device is never a disk.
            (false, dev(253, 0), false),
        ] {
            assert_eq!(
                same_number(is_block, rdev, 253, 0),
                want,
                "{is_block} {rdev}"
            );
        }
    }

    /// Regression: `root=/dev/vg0/lv_root`, `/dev/mapper/x` and
    /// `/dev/disk/by-*` paths never matched: the spec was compared as a name.
    #[test]
    fn a_path_matches_the_device_it_leads_to() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let dev = layout.dev();
        std::fs::create_dir_all(dev.join("mapper")).unwrap();
        std::fs::create_dir_all(dev.join("vg0")).unwrap();
        std::fs::create_dir_all(dev.join("disk/by-uuid")).unwrap();
        for n in ["dm-0", "dm-1", "sda1", "md0"] {
            std::fs::write(dev.join(n), "").unwrap();
        }
        std::os::unix::fs::symlink("../dm-0", dev.join("mapper/root")).unwrap();
        std::os::unix::fs::symlink("../dm-1", dev.join("vg0/lv_root")).unwrap();
        std::os::unix::fs::symlink("../../sda1", dev.join("disk/by-uuid/1234")).unwrap();
        std::os::unix::fs::symlink("../mapper/root", dev.join("vg0/chain")).unwrap();
        for (spec, devname, want) in [
            ("/dev/mapper/root", "dm-0", true),
            ("/dev/mapper/root", "dm-1", false),
            ("/dev/vg0/lv_root", "dm-1", true),
            ("/dev/vg0/lv_root", "dm-0", false),
            ("/dev/vg0/chain", "dm-0", true),
            ("/dev/disk/by-uuid/1234", "sda1", true),
            ("/dev/disk/by-uuid/1234", "md0", false),
            ("/dev/md0", "md0", true),
            ("/dev/mapper/missing", "dm-0", false),
            ("/dev/md0", "missing", false),
        ] {
            assert_eq!(
                same_node(&layout, spec, devname, 253, 0),
                want,
                "{spec} {devname}"
            );
        }
    }

    #[test]
    fn escape_table() {
        for (input, want) in [
            ("ALPINE", "ALPINE"),
            ("my disk", "my\\x20disk"),
            ("a/b", "a\\x2fb"),
            ("..", "\\x2e\\x2e"),
            (".", "\\x2e"),
            ("", "\\x00"),
            ("x\ny", "x\\x0ay"),
            ("Ünï", "Ünï"),
            ("1234-ABCD", "1234-ABCD"),
        ] {
            assert_eq!(escape_component(input), want, "{input:?}");
        }
    }

    #[test]
    fn hostile_label_cannot_escape_by_label() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let id = Identity {
            label: Some("../../../etc/passwd".into()),
            ..Default::default()
        };
        let made = disk_links(&layout, "sda1", &id);
        assert_eq!(made.len(), 1);
        assert_eq!(
            made[0].parent().unwrap(),
            tmp.path().join("dev/disk/by-label")
        );
        assert!(!tmp.path().join("etc").exists());
    }

    #[test]
    fn by_links_point_at_the_device() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let id = Identity {
            uuid: Some("1234-ABCD".into()),
            label: Some("ALPINE".into()),
            partuuid: Some("0a0b0c0d-01".into()),
        };
        disk_links(&layout, "sda1", &id);
        for l in [
            "by-uuid/1234-ABCD",
            "by-label/ALPINE",
            "by-partuuid/0a0b0c0d-01",
        ] {
            let p = tmp.path().join("dev/disk").join(l);
            assert_eq!(
                std::fs::read_link(&p).unwrap(),
                Path::new("../../sda1"),
                "{l}"
            );
        }
    }

    #[test]
    fn usbdisk_prefers_the_lowest_name_whatever_the_arrival_order() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        std::fs::create_dir_all(layout.dev()).unwrap();
        assert!(media_alias(&layout, "usbdisk", "sdb1").unwrap());
        assert!(media_alias(&layout, "usbdisk", "sda1").unwrap());
        assert!(!media_alias(&layout, "usbdisk", "sdc1").unwrap());
        assert_eq!(
            std::fs::read_link(layout.dev().join("usbdisk")).unwrap(),
            Path::new("sda1")
        );
    }

    /// Regression: a cloned stick (same UUID) re-pointed by-uuid to
    /// whichever device came last, silently.
    #[test]
    fn by_uuid_keeps_the_lowest_name_whatever_the_arrival_order() {
        let id = Identity {
            uuid: Some("1234-ABCD".into()),
            label: Some("ALPINE".into()),
            partuuid: None,
        };
        for order in [["sdb1", "sda1", "sdc1"], ["sda1", "sdc1", "sdb1"]] {
            let tmp = tempfile::tempdir().unwrap();
            let layout = Layout::new(tmp.path());
            for dev in order {
                disk_links(&layout, dev, &id);
            }
            for l in ["by-uuid/1234-ABCD", "by-label/ALPINE"] {
                let p = tmp.path().join("dev/disk").join(l);
                assert_eq!(
                    std::fs::read_link(&p).unwrap(),
                    Path::new("../../sda1"),
                    "{order:?} {l}"
                );
            }
        }
    }

    /// Regression: `root=UUID=` took whichever clone sysfs listed last.
    #[test]
    fn a_specification_matching_two_devices_names_both_and_picks_none() {
        let mut m = Matches::default();
        assert_eq!(m.unique("root device", "UUID=1").unwrap(), None);
        m.add("sdb1");
        assert_eq!(m.unique("root device", "UUID=1").unwrap(), Some("sdb1"));
        m.add("sdb1");
        assert_eq!(m.unique("root device", "UUID=1").unwrap(), Some("sdb1"));
        m.add("sda1");
        let err = m.unique("root device", "UUID=1234-ABCD").unwrap_err();
        assert_eq!(
            err.to_string(),
            "root device UUID=1234-ABCD is ambiguous: /dev/sda1 and /dev/sdb1 both match"
        );
        m.add("sda10");
        m.add("sda2");
        assert_eq!(
            m.unique("apkovl device", "LABEL=X").unwrap_err().to_string(),
            "apkovl device LABEL=X is ambiguous: /dev/sda1, /dev/sda2, /dev/sda10 and /dev/sdb1 all match"
        );
    }

    #[test]
    fn usb_detection_by_devpath() {
        assert!(is_usb("/devices/pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0/host0/target0:0:0/0:0:0:0/block/sda/sda1"));
        assert!(!is_usb(
            "/devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda1"
        ));
    }

    #[test]
    fn make_node_refuses_traversal() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = alpinit_sys::Recorder::new();
        let layout = Layout::new(tmp.path());
        assert!(make_node(&rec, &layout, "../x", true, 8, 1).is_err());
        make_node(&rec, &layout, "sda1", true, 8, 1).unwrap();
        assert_eq!(rec.calls().len(), 1);
    }
}
