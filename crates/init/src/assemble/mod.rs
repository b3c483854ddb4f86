//! Assembled storage, as nlplug-findfs does it
//! (`nlplug-findfs/nlplug-findfs.c` `searchdev`, `start_lvm2`, `start_mdadm`
//! in mkinitfs; see `/work/shared/reference/alpine-initramfs.md` §2.6):
//! a block device that no specification matched and that probes as
//! `LVM2_member` gets `lvm vgchange`, one that probes as
//! `linux_raid_member` gets `mdadm --incremental`, when the image has the
//! tool. The resulting `dm-N`/`mdN` devices arrive as ordinary block
//! uevents and are probed like any disk; [`dm`] gives them their
//! `/dev/mapper` and `/dev/VG/LV` links. btrfs members are registered with
//! the kernel in process. `root=ZFS=` is in [`zfs`].

pub mod dm;
pub mod zfs;

use crate::layout::Layout;
use crate::log;
use crate::platform::Platform;
use alpinit_kmod::Loader;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// How long one lvm, mdadm or zpool run may take before it is killed.
/// Activation is a few hundred milliseconds even under emulation; a
/// helper still running after this is hung (a device that stopped
/// answering), and PID 1 must go on to its failure policy.
pub const HELPER_LIMIT: Duration = Duration::from_secs(30);

pub const LVM: &str = "/sbin/lvm";
pub const MDADM: &str = "/sbin/mdadm";

/// nlplug-findfs' `start_lvm2` arguments, exactly.
pub const LVM_ARGS: [&str; 7] = [
    "vgchange",
    "--activate",
    "ay",
    "--noudevsync",
    "--sysinit",
    "-q",
    "-q",
];

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("{member} is {what} but the image has no {tool} (mkinitfs feature {feature})")]
    MissingTool {
        member: String,
        what: &'static str,
        tool: &'static str,
        feature: &'static str,
    },
    #[error("running {tool}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} {args} was still running after {}s and was killed", limit.as_secs())]
    Killed {
        tool: String,
        args: String,
        limit: Duration,
    },
    #[error("{tool} {args} failed ({status})")]
    Failed {
        tool: String,
        args: String,
        status: ExitStatus,
    },
    #[error("registering {device} as a btrfs member")]
    BtrfsScan {
        device: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs a helper of the image with [`HELPER_LIMIT`]; its stdout on success.
pub fn helper(
    p: &Platform<'_>,
    layout: &Layout,
    tool: &str,
    args: &[&str],
) -> Result<Vec<u8>, AssembleError> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let joined = args.join(" ");
    log::info(&format!("running {tool} {joined}"));
    let ran = p
        .spawn
        .run_bounded(&layout.path(tool), &args, HELPER_LIMIT)
        .map_err(|source| AssembleError::Spawn {
            tool: tool.to_owned(),
            source,
        })?;
    match ran.status {
        None => Err(AssembleError::Killed {
            tool: tool.to_owned(),
            args: joined,
            limit: HELPER_LIMIT,
        }),
        Some(s) if !s.success() => Err(AssembleError::Failed {
            tool: tool.to_owned(),
            args: joined,
            status: s,
        }),
        Some(_) => Ok(ran.stdout),
    }
}

/// Whether the image has `tool` as an executable file.
pub fn has_tool(layout: &Layout, tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(layout.path(tool))
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Assembly state of one discovery run.
#[derive(Debug, Default)]
pub struct Assembler {
    /// Tools found missing, said once each.
    missing_said: HashSet<&'static str>,
    /// RAID members handed to mdadm; arrays still incomplete when the
    /// wait ends are started degraded once.
    md_members: usize,
    degraded_tried: bool,
    /// btrfs file system UUID → the first member seen.
    btrfs: HashMap<String, String>,
}

impl Assembler {
    /// A device that probed as `fstype` and matched no specification: the
    /// member of something to assemble?
    pub fn member(
        &mut self,
        p: &Platform<'_>,
        layout: &Layout,
        loader: &Loader,
        devname: &str,
        fstype: &str,
    ) {
        let result = match fstype {
            "LVM2_member" => self.lvm(p, layout, loader, devname),
            "linux_raid_member" => self.md(p, layout, loader, devname),
            _ => return,
        };
        if let Err(e) = result {
            log::warn(&crate::failure::chain(&e));
        }
    }

    fn missing(
        &mut self,
        devname: &str,
        what: &'static str,
        tool: &'static str,
        feature: &'static str,
    ) -> Result<(), AssembleError> {
        if !self.missing_said.insert(tool) {
            return Ok(());
        }
        Err(AssembleError::MissingTool {
            member: format!("/dev/{devname}"),
            what,
            tool,
            feature,
        })
    }

    fn lvm(
        &mut self,
        p: &Platform<'_>,
        layout: &Layout,
        loader: &Loader,
        devname: &str,
    ) -> Result<(), AssembleError> {
        if !has_tool(layout, LVM) {
            return self.missing(devname, "an LVM physical volume", LVM, "lvm");
        }
        // lvm opens /dev/mapper/control, which dm-mod registers.
        crate::modules::load_now_all(loader, &["dm_mod"]);
        helper(p, layout, LVM, &LVM_ARGS).map(drop)
    }

    fn md(
        &mut self,
        p: &Platform<'_>,
        layout: &Layout,
        loader: &Loader,
        devname: &str,
    ) -> Result<(), AssembleError> {
        if !has_tool(layout, MDADM) {
            return self.missing(devname, "an MD RAID member", MDADM, "raid");
        }
        if self.md_members == 0 {
            // The personalities mdadm's RUN_ARRAY asks the kernel for
            // (md-level-N aliases); no modprobe helper runs in the initramfs.
            crate::modules::load_now_all(
                loader,
                &["md_mod", "raid1", "raid0", "raid10", "raid456"],
            );
        }
        self.md_members += 1;
        let node = format!("/dev/{devname}");
        // Without --run: an array starts when its last member arrives, not
        // degraded from the first one (then resynced when the second comes
        // moments later). Incomplete arrays are started when the wait ends,
        // in `start_degraded`.
        helper(p, layout, MDADM, &["--incremental", "--quiet", &node]).map(drop)
    }

    /// The wait is about to end: start the RAID arrays still waiting for
    /// members, degraded (`mdadm --incremental --run --scan`), once. True
    /// when that ran, so the caller keeps waiting for the new md device.
    pub fn start_degraded(&mut self, p: &Platform<'_>, layout: &Layout) -> bool {
        if self.md_members == 0 || self.degraded_tried {
            return false;
        }
        let mdstat = std::fs::read_to_string(layout.proc().join("mdstat")).unwrap_or_default();
        if !mdstat.lines().any(|l| l.contains(" : inactive")) {
            return false;
        }
        self.degraded_tried = true;
        log::info("RAID arrays incomplete: starting them degraded");
        if let Err(e) = helper(
            p,
            layout,
            MDADM,
            &["--incremental", "--run", "--scan", "--quiet"],
        ) {
            log::warn(&crate::failure::chain(&e));
        }
        true
    }

    /// A btrfs device: registered with the kernel so a multi-device file
    /// system mounts from any member. True when another member of the same
    /// file system was seen before: the two are one file system, not a
    /// clone, so a `UUID=`/`LABEL=` match on it is not ambiguous.
    pub fn btrfs(
        &mut self,
        p: &Platform<'_>,
        layout: &Layout,
        loader: &Loader,
        devname: &str,
        uuid: Option<&str>,
    ) -> bool {
        if self.btrfs.is_empty() {
            // /dev/btrfs-control belongs to the btrfs module.
            crate::media::load_fs_modules(loader, layout, "btrfs");
        }
        let device = layout.dev().join(devname);
        if let Err(source) =
            p.fs.btrfs_scan_dev(&layout.dev().join("btrfs-control"), &device)
        {
            log::warn(&crate::failure::chain(&AssembleError::BtrfsScan {
                device,
                source,
            }));
        }
        let Some(uuid) = uuid else { return false };
        match self.btrfs.get(uuid) {
            Some(first) if first != devname => true,
            Some(_) => false,
            None => {
                self.btrfs.insert(uuid.to_owned(), devname.to_owned());
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
