//! Scenarios with nothing to boot: the recovery shell, or a panic when asked.

use std::cell::Cell;
use std::time::{Duration, Instant};

use std::path::Path;

use anyhow::Result;

use super::checks::*;
use super::*;

/// Seconds the recovery shell must stay up (no panic) before the harness
/// kills QEMU.
pub(super) const SHELL_GRACE: Duration = Duration::from_secs(3);

pub(super) fn setup_no_media(assets: &Assets, _dir: &Path) -> Result<Setup> {
    // No panic= here: with it the init gives up instead (see no-media-panic).
    let vm = kernel_vm_with(assets, ImageKind::Standard, "console=ttyS0")?;
    let prompt_seen: Cell<Option<Instant>> = Cell::new(None);
    let stop = move |log: &str| {
        if log.contains("Kernel panic") {
            return true;
        }
        if prompt_seen.get().is_none() && shell_prompt_after_failure(log) {
            prompt_seen.set(Some(Instant::now()));
        }
        prompt_seen
            .get()
            .is_some_and(|t| t.elapsed() >= SHELL_GRACE)
    };
    Ok(Setup {
        vm,
        stop: Some(Box::new(stop)),
        timeout: assets.accel.boot_timeout(),
    })
}

pub(super) fn check_no_media(outcome: &Outcome, _report: Option<&Report>) -> Vec<String> {
    let mut failures = Vec::new();
    if outcome.log.contains("Kernel panic") {
        failures.push("kernel panic on the console".to_string());
    }
    if !outcome.log.contains("Mounting boot media") || !outcome.log.contains("failed.") {
        failures.push("no ` * Mounting boot media: failed.` on the console".to_string());
    }
    if !shell_prompt_after_failure(&outcome.log) {
        failures.push("no recovery shell prompt after the failure".to_string());
    }
    if !outcome.stopped {
        failures.push(if outcome.timed_out {
            "timed out before the recovery shell came up".to_string()
        } else {
            "QEMU ended by itself instead of waiting in the recovery shell".to_string()
        });
    }
    failures
}

pub(super) fn setup_no_media_panic(assets: &Assets, _dir: &Path) -> Result<Setup> {
    let vm = kernel_vm_with(assets, ImageKind::Standard, "console=ttyS0 panic=10")?;
    Ok(Setup {
        vm,
        stop: None,
        timeout: assets.accel.boot_timeout(),
    })
}

/// With `panic=10` the init gives up, the kernel panics and reboots after
/// 10 s, and `-no-reboot` turns that into QEMU exiting.
pub(super) fn check_no_media_panic(outcome: &Outcome, _report: Option<&Report>) -> Vec<String> {
    let mut failures = Vec::new();
    if !outcome.log.contains("Mounting boot media") || !outcome.log.contains("failed.") {
        failures.push("no ` * Mounting boot media: failed.` on the console".to_string());
    }
    if !outcome.log.contains("Kernel panic") {
        failures.push("no kernel panic although panic=10 was given".to_string());
    }
    if outcome.status.is_none() {
        failures.push("QEMU did not exit (the kernel did not reboot after the panic)".to_string());
    }
    failures
}
