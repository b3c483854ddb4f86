//! `/dev/mapper/NAME` and `/dev/VG/LV` for device-mapper devices. Without
//! udev nothing else makes them (lvm runs with `--noudevsync`), and
//! `root=/dev/vg0/root`, `/dev/mapper/...` and fstab entries name them.

use crate::devices;
use crate::layout::Layout;
use alpinit_uevent::Uevent;
use std::path::PathBuf;

/// The dm name and UUID: from the uevent when it carries them (`DM_NAME`,
/// `DM_UUID`), else from `/sys/.../dm/{name,uuid}`.
fn identity(layout: &Layout, ev: &Uevent) -> (Option<String>, Option<String>) {
    let sysfs = |file: &str| {
        std::fs::read_to_string(layout.path(&format!("/sys{}/dm/{file}", ev.devpath)))
            .ok()
            .map(|s| s.trim_end_matches('\n').to_owned())
            .filter(|s| !s.is_empty())
    };
    let name = ev
        .get("DM_NAME")
        .map(str::to_owned)
        .or_else(|| sysfs("name"));
    let uuid = ev
        .get("DM_UUID")
        .map(str::to_owned)
        .or_else(|| sysfs("uuid"));
    (name, uuid)
}

/// LVM's dm name `VG-LV`, where a `-` inside either name is doubled
/// (`my--vg-root` is VG `my-vg`, LV `root`), split as `dmsetup splitname`.
pub fn split_lvm_name(name: &str) -> Option<(String, String)> {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'-' {
            if bytes.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            let (vg, lv) = (&name[..i], &name[i + 1..]);
            if vg.is_empty() || lv.is_empty() {
                return None;
            }
            return Some((vg.replace("--", "-"), lv.replace("--", "-")));
        }
        i += 1;
    }
    None
}

/// Whether the dm UUID is an LVM logical volume users name (`LVM-` and the
/// 64 characters of VG and LV UUID); internal volumes (`-tpool`, `-real`,
/// `-cow`, ...) carry a suffix and get no `/dev/VG/LV` link, as with udev.
fn is_top_level_lv(uuid: &str) -> bool {
    uuid.strip_prefix("LVM-")
        .is_some_and(|rest| rest.len() == 64 && !rest.contains('-'))
}

/// The links for `devname` (`dm-N`), each pointing at `../dm-N`. Names
/// are escaped as one path component each, so a name cannot climb out of
/// `/dev`; an existing node is never replaced.
pub fn links(layout: &Layout, ev: &Uevent, devname: &str) -> Vec<PathBuf> {
    if !devname.starts_with("dm-") {
        return Vec::new();
    }
    let (name, uuid) = identity(layout, ev);
    let Some(name) = name else {
        return Vec::new();
    };
    let target = format!("../{devname}");
    let mut wanted = vec![layout
        .dev()
        .join("mapper")
        .join(devices::escape_component(&name))];
    let vg_lv = match (ev.get("DM_VG_NAME"), ev.get("DM_LV_NAME")) {
        (Some(vg), Some(lv)) if !vg.is_empty() && !lv.is_empty() => {
            Some((vg.to_owned(), lv.to_owned()))
        }
        _ if uuid.as_deref().is_some_and(is_top_level_lv) => split_lvm_name(&name),
        _ => None,
    };
    if let Some((vg, lv)) = vg_lv {
        wanted.push(
            layout
                .dev()
                .join(devices::escape_component(&vg))
                .join(devices::escape_component(&lv)),
        );
    }
    let mut made = Vec::new();
    for link in wanted {
        match devices::relink(&link, &target) {
            Ok(()) => made.push(link),
            Err(e) => crate::log::warn(&format!("linking {}: {e}", link.display())),
        }
    }
    made
}
