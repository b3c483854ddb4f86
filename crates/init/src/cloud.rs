//! tiny-cloud enablement (Alpine's `want_tiny_cloud`): when the new root
//! gets the default services, a machine that looks like a cloud instance
//! also gets tiny-cloud's packages and its four services.

use crate::in_root::{NewRoot, NewRootError};
use crate::layout::Layout;
use alpinit_cmdline::Cmdline;

/// Packages Alpine adds for tiny-cloud.
pub const PACKAGES: &[&str] = &["tiny-cloud", "ifupdown-ng", "doas"];

/// tiny-cloud's services and their runlevels, in Alpine's order.
pub const SERVICES: &[(&str, &str)] = &[
    ("tiny-cloud-boot", "boot"),
    ("tiny-cloud-early", "default"),
    ("tiny-cloud-main", "default"),
    ("tiny-cloud-final", "default"),
];

/// Why tiny-cloud is wanted (logged), or None.
pub fn wanted(layout: &Layout, root: &NewRoot, cmdline: &Cmdline) -> Option<&'static str> {
    // An overlay can turn it off for good.
    if root.exists("etc/tiny-cloud.disabled") {
        return None;
    }
    if cmdline.get("ds").is_some_and(|v| !v.is_empty()) {
        return Some("ds= on the command line");
    }
    // Alpine tests only that the option is set; `notinycloud` (and
    // `tinycloud=no`) is read here as the "no" it says.
    if cmdline
        .get("tinycloud")
        .is_some_and(|v| !v.is_empty() && v != "no")
    {
        return Some("tinycloud= on the command line");
    }
    let serial = layout.sys().join("class/dmi/id/product_serial");
    if read_head(&serial).is_some_and(|s| s.starts_with(b"ds=")) {
        return Some("the DMI product serial starts with ds=");
    }
    // `findfs LABEL=cidata || findfs LABEL=CIDATA`: a volume discovery
    // probed and linked under /dev/disk/by-label.
    let by_label = layout.dev().join("disk/by-label");
    if ["cidata", "CIDATA"]
        .iter()
        .any(|l| std::fs::symlink_metadata(by_label.join(l)).is_ok())
    {
        return Some("a volume labelled cidata");
    }
    None
}

/// The first bytes of a sysfs attribute (bounded: sysfs files are small,
/// but PID 1 never reads an unbounded file).
fn read_head(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// Adds tiny-cloud's services to the new root when it is wanted; returns
/// the packages to install.
pub fn enable(
    layout: &Layout,
    root: &NewRoot,
    cmdline: &Cmdline,
    rc_add: impl Fn(&NewRoot, &str, &str) -> Result<(), NewRootError>,
) -> Result<Vec<String>, NewRootError> {
    let Some(why) = wanted(layout, root, cmdline) else {
        return Ok(Vec::new());
    };
    crate::log::info(&format!("tiny-cloud enabled: {why}"));
    for (svc, level) in SERVICES {
        rc_add(root, svc, level)?;
    }
    Ok(PACKAGES.iter().map(|p| (*p).to_owned()).collect())
}
