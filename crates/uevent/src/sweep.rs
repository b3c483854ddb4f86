//! Passive coldplug: synthesize `add` events from the `uevent` files in sysfs.

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::event::{split_pair, Fields};
use crate::Uevent;

/// Deepest directory level below `<sys>/devices` that is visited; real trees stay far below.
pub const MAX_DEPTH: usize = 32;

/// A sysfs attribute is at most one page; anything bigger is not a `uevent` file.
const MAX_UEVENT_FILE: u64 = 16 * 1024;

/// Keys that the sweep itself supplies; a file cannot override them.
const SYNTHETIC_KEYS: [&str; 4] = ["ACTION", "DEVPATH", "SUBSYSTEM", "SEQNUM"];

/// An `add` event for every device below `<sys>/devices`, parents before children.
///
/// Symlinks are never followed, the walk stops at [`MAX_DEPTH`], and directories or files
/// that cannot be read (or describe an invalid device) are skipped.
pub fn sweep(sys: &Path) -> Vec<Uevent> {
    let mut events = Vec::new();
    walk(&sys.join("devices"), "/devices", 0, &mut events);
    events
}

fn walk(dir: &Path, devpath: &str, depth: usize, events: &mut Vec<Uevent>) {
    if let Some(event) = device_event(dir, devpath) {
        events.push(event);
    }
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    // `DirEntry::file_type` does not follow symlinks, so links such as `subsystem`, `driver`
    // or a loop back to an ancestor are never entered.
    let mut children: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    alpinit_sort::sort(&mut children);
    for name in children {
        walk(
            &dir.join(&name),
            &format!("{devpath}/{name}"),
            depth + 1,
            events,
        );
    }
}

/// An `add` event for every entry of `<sys>/class/block`, sorted by DEVPATH so that disks
/// come before their partitions.
///
/// The class links are followed, but only to targets inside `<sys>/devices`.
pub fn sweep_block(sys: &Path) -> Vec<Uevent> {
    let Ok(sys) = fs::canonicalize(sys) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(sys.join("class/block")) else {
        return Vec::new();
    };
    let mut events: Vec<Uevent> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let target = fs::canonicalize(entry.path()).ok()?;
            let relative = target.strip_prefix(&sys).ok()?;
            if !relative.starts_with("devices") {
                return None;
            }
            let devpath = format!("/{}", relative.to_str()?);
            device_event(&target, &devpath)
        })
        .collect();
    alpinit_sort::sort_by(&mut events, |left, right| left.devpath.cmp(&right.devpath));
    events.dedup_by(|left, right| left.devpath == right.devpath);
    events
}

/// A quicker coldplug for boot: an `add` event for every device that sits on
/// a bus (`<sys>/bus/*/devices/*`, which is where every MODALIAS lives) and
/// every block device (`<sys>/class/block/*`), sorted by DEVPATH so parents
/// come before children and disks before partitions.
///
/// Unlike [`sweep`] it does not read every directory below `<sys>/devices`
/// (most of them are attribute groups): a few syscalls per device instead
/// of a readdir of each, which matters under emulation. Links are resolved
/// lexically and must stay inside `<sys>/devices`.
pub fn sweep_buses(sys: &Path) -> Vec<Uevent> {
    let mut links = Vec::new();
    if let Ok(buses) = fs::read_dir(sys.join("bus")) {
        for bus in buses.filter_map(Result::ok) {
            let Ok(name) = bus.file_name().into_string() else {
                continue;
            };
            links.push((format!("bus/{name}/devices"), bus.path().join("devices")));
        }
    }
    links.push(("class/block".to_owned(), sys.join("class/block")));
    let mut events = Vec::new();
    for (rel_dir, dir) in links {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            let Some(devpath) = lexical_devpath(&rel_dir, &target) else {
                continue;
            };
            if let Some(event) = device_event(&sys.join(&devpath[1..]), &devpath) {
                events.push(event);
            }
        }
    }
    alpinit_sort::sort_by(&mut events, |left, right| left.devpath.cmp(&right.devpath));
    events.dedup_by(|left, right| left.devpath == right.devpath);
    events
}

/// `class/block` + `../../devices/pci0000:00/.../vda` → `/devices/pci0000:00/.../vda`;
/// None unless the result lies below `/devices` with no `..` left.
fn lexical_devpath(link_dir: &str, target: &Path) -> Option<String> {
    let mut parts: Vec<&str> = link_dir.split('/').filter(|p| !p.is_empty()).collect();
    for comp in target.to_str()?.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    if target.is_absolute() || parts.first() != Some(&"devices") || parts.len() < 2 {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

/// The synthetic `add` event of the device directory `dir`, if it has a usable `uevent` file.
fn device_event(dir: &Path, devpath: &str) -> Option<Uevent> {
    let path = dir.join("uevent");
    if !fs::symlink_metadata(&path).ok()?.is_file() {
        return None;
    }
    let mut contents = Vec::new();
    fs::File::open(&path)
        .ok()?
        .take(MAX_UEVENT_FILE)
        .read_to_end(&mut contents)
        .ok()?;
    let subsystem = fs::read_link(dir.join("subsystem"))
        .ok()
        .and_then(|target| Some(target.file_name()?.to_str()?.to_owned()));

    let mut fields = Fields::default();
    fields.push("ACTION", "add");
    fields.push("DEVPATH", devpath);
    if let Some(subsystem) = &subsystem {
        fields.push("SUBSYSTEM", subsystem);
    }
    for line in contents.split(|byte| *byte == b'\n') {
        if let Some((key, value)) = split_pair(line) {
            if !SYNTHETIC_KEYS.contains(&key) {
                fields.push(key, value);
            }
        }
    }
    fields.finish(None, None).ok()
}
