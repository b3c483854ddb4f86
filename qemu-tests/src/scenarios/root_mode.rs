//! Root mode: `root=` names an installed root file system; the init waits
//! for it, mounts it (read-only unless `rootflags=` says otherwise) and
//! switch_roots without scanning for boot media.

use std::path::Path;

use anyhow::{Context, Result};

use super::checks::*;
use super::*;

pub(super) const HOST_ROOT: &str = "alpinit-root";

/// An installed root labelled ROOT whose /sbin/init is the report init.
pub(super) fn root_disk(assets: &Assets, dir: &Path) -> Result<std::path::PathBuf> {
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    disk(
        dir,
        "root",
        Filesystem::Ext4,
        &[
            FileSpec::new("etc/hostname", 0o644, format!("{HOST_ROOT}\n")),
            FileSpec::new("sbin/init", 0o755, init),
            FileSpec::new("etc/alpinit-test/inspect", 0o644, "/sbin/init\n"),
            // An installed root has the API mount points (read-only root: the init cannot make them).
            FileSpec::new("proc/.keep", 0o644, ""),
            FileSpec::new("sys/.keep", 0o644, ""),
            FileSpec::new("dev/.keep", 0o644, ""),
            // An apkovl on the root must be ignored: root mode does not scan media.
            FileSpec::new("decoy.apkovl.tar.gz", 0o644, "not used"),
        ],
    )
}

pub(super) fn setup_root_label(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = root_disk(assets, dir)?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "root=LABEL=ROOT")?;
    vm.virtio_disk(&img);
    Ok(reported(assets, vm))
}

pub(super) fn check_root_label(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = Vec::new();
    if outcome.log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    let Some(report) = report else {
        failures.push("no report from the new root's init".to_string());
        return failures;
    };
    if report.pid() != Some(1) {
        failures.push(format!(
            "report-init pid is {:?}, want 1",
            report.get("pid")
        ));
    }
    want_hostname(&mut failures, report, HOST_ROOT);
    match report.mount_at("/") {
        Some(m) if m.source == "/dev/vda1" && m.fstype == "ext4" && m.is_read_only() => {}
        other => failures.push(format!("/ is {other:?}, want /dev/vda1 ext4 read-only")),
    }
    if !outcome.log.contains("Mounting root: ") || !outcome.log.contains("Mounting root: ok.") {
        failures.push("no `Mounting root: ok.` in the kernel log".to_string());
    }
    if outcome.log.contains("decoy.apkovl.tar.gz") {
        failures.push("root mode scanned the root for apkovls".to_string());
    }
    failures
}
