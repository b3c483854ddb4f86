//! Hibernation resume (`resume=`, `resume_offset=`; Alpine's
//! `resume_from_disk`, reference §3.3): the device's `major:minor` goes to
//! `/sys/power/resume`, which makes the kernel look for an image there at
//! once and restore it (never returning) when there is one. It runs before
//! anything is mounted: in root mode after the root device wait, in
//! diskless mode before the boot media are looked for.
//!
//! The device is waited for like `root=` (`UUID=`, `LABEL=`, `PARTUUID=`
//! or a path), bounded by the discovery's wait rules; one that never
//! appears, or matches twice, is said and the boot goes on without resume.

use crate::early::Early;
use crate::failure::chain;
use crate::layout::Layout;
use crate::log;
use crate::platform::Platform;
use alpinit_cmdline::Cmdline;
use alpinit_kmod::Loader;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("resume_offset={value:?} is not a number of pages")]
    Offset {
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
    #[error("resume device {spec} not found ({block_devices} block devices seen)")]
    NotFound { spec: String, block_devices: usize },
    #[error(transparent)]
    Ambiguous(#[from] crate::devices::DeviceError),
    #[error("reading the device number of /dev/{devname} from {path}")]
    DevNumber {
        devname: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no MAJOR= and MINOR=")]
    NoDevNumber { path: PathBuf },
    #[error("writing {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
}

/// `resume=`: said and done as Alpine's `resume_from_disk`; a failure is
/// said (console and kernel log) and the boot goes on.
pub fn from_disk(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &Loader,
    early: &Early,
) {
    let Some(spec) = cmdline.get("resume").filter(|s| !s.is_empty()) else {
        return;
    };
    let power = layout.sys().join("power");
    if !power.join("resume").exists() {
        say("resume: no hibernation support found");
        return;
    }
    say("Resume from disk");
    let offset = cmdline.get("resume_offset").filter(|s| !s.is_empty());
    if let Err(e) = resume(p, layout, cmdline, loader, early, spec, offset) {
        let msg = format!("resume: {}; booting without resuming", chain(&e));
        log::warn(&msg);
        log::console(&format!("{msg}\n"));
    }
}

fn say(msg: &str) {
    log::info(msg);
    log::console(&format!("{msg}\n"));
}

fn resume(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &Loader,
    early: &Early,
    spec: &str,
    offset: Option<&str>,
) -> Result<(), ResumeError> {
    let offset = offset
        .map(|v| {
            v.parse::<u64>().map_err(|source| ResumeError::Offset {
                value: v.to_owned(),
                source,
            })
        })
        .transpose()?;
    let (matches, block_devices) =
        crate::root_mode::wait_device(p, layout, loader, cmdline, early, spec);
    let Some(devname) = matches.unique("resume device", spec)? else {
        return Err(ResumeError::NotFound {
            spec: spec.to_owned(),
            block_devices,
        });
    };
    let (major, minor) = dev_number(layout, devname)?;
    let power = layout.sys().join("power");
    let write = |attr: &str, value: String| {
        let path = power.join(attr);
        p.sysfs
            .write_attr(&path, &value)
            .map_err(|source| ResumeError::Write {
                path,
                value,
                source,
            })
    };
    // The offset first: writing `resume` starts the resume at once, and it
    // reads the image header at the offset set by then.
    if let Some(offset) = offset {
        write("resume_offset", format!("{offset}\n"))?;
    }
    write("resume", format!("{major}:{minor}"))?;
    log::info(&format!(
        "resume: no hibernation image on /dev/{devname} ({major}:{minor}{}); booting on",
        offset.map(|o| format!(", offset {o}")).unwrap_or_default()
    ));
    Ok(())
}

/// The device number from sysfs (`MAJOR=`/`MINOR=` of its uevent file),
/// the kernel's own record whatever `/dev` holds.
fn dev_number(layout: &Layout, devname: &str) -> Result<(u32, u32), ResumeError> {
    let path = layout
        .sys()
        .join("class/block")
        .join(devname.replace('/', "!"))
        .join("uevent");
    let text = std::fs::read_to_string(&path).map_err(|source| ResumeError::DevNumber {
        devname: devname.to_owned(),
        path: path.clone(),
        source,
    })?;
    parse_dev_number(&text).ok_or(ResumeError::NoDevNumber { path })
}

fn parse_dev_number(uevent: &str) -> Option<(u32, u32)> {
    let field = |key: &str| {
        uevent
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
    };
    Some((field("MAJOR=")?, field("MINOR=")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_number_comes_from_the_uevent_file() {
        assert_eq!(
            parse_dev_number("MAJOR=254\nMINOR=33\nDEVNAME=vdc1\nDEVTYPE=partition\n"),
            Some((254, 33))
        );
        assert_eq!(parse_dev_number("DEVNAME=vdc1\n"), None);
        assert_eq!(parse_dev_number("MAJOR=x\nMINOR=1\n"), None);
    }
}
