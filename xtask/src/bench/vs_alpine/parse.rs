//! Where a boot's time goes, from its serial console log alone.
//!
//! Both inits are timed on the kernel's printk clock (the `[ secs ]` prefix
//! of kernel lines): from the kernel's `Run /init as init process` to the
//! first line the new root's init prints. That init (`report-init`) prints
//! its CLOCK_MONOTONIC reading first, which runs ahead of the printk clock
//! by a few tens of ms on this kernel under TCG. Our phase lines carry both
//! clocks (`[ 5.369 ] alpinit: phase switch-root 5.411`), so each of our
//! boots measures the offset; Alpine's boot of the same round, which has no
//! such line, uses the offset of our boot next to it.
//!
//! The marks, on each side (console lines; Alpine's are what its `ebegin`
//! and `eend` write to `/dev/kmsg`, shown on the console because neither
//! `quiet` nor a console loglevel is given):
//!
//! | span | alpinit | Alpine's initramfs-init |
//! |---|---|---|
//! | early | `Run /init` → `phase early-mounts` | `Run /init` → `Loading boot drivers...` |
//! | boot media | → `phase apkovl-chosen` | → `Loading user settings from …...` |
//! | unpack | → `phase unpacked` | → `Loading user settings from …: ok.` |
//! | packages | → `phase packages` | → `Installing packages to root filesystem: ok.` |
//! | hand-over | → new root's first line | → new root's first line |

use anyhow::{bail, Context, Result};

use alpinit_qemu_tests::report::{self, Report};

/// The spans of [`Timeline::spans`], in boot order.
pub const SPANS: [&str; 5] = ["early", "boot media", "unpack", "packages", "hand-over"];

const RUN_INIT: &str = "Run /init as init process";

/// One boot, in printk seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// The kernel's `Run /init` line.
    pub run_init: f64,
    /// Ends of the early, boot-media, unpack and packages spans.
    pub marks: [f64; 4],
    /// The new root's first line.
    pub new_root: f64,
}

impl Timeline {
    /// `Run /init` → the new root's first line.
    pub fn total(&self) -> f64 {
        self.new_root - self.run_init
    }

    /// The length of each of [`SPANS`].
    pub fn spans(&self) -> [f64; 5] {
        let mut points = [self.run_init; 6];
        points[1..5].copy_from_slice(&self.marks);
        points[5] = self.new_root;
        let mut out = [0.0; 5];
        for (i, span) in out.iter_mut().enumerate() {
            *span = points[i + 1] - points[i];
        }
        out
    }
}

/// The `[ secs ]` prefix of a kernel line.
pub fn printk_time(line: &str) -> Option<f64> {
    let rest = line.trim_start().strip_prefix('[')?;
    rest.split(']').next()?.trim().parse().ok()
}

/// The printk time of the first kernel line holding NEEDLE. A kernel
/// line may start inside a console line (after apk's or tar's progress
/// bar, which ends without a newline): its `[ secs ]` is the last one
/// before NEEDLE.
fn mark(log: &str, needle: &str, what: &str) -> Result<f64> {
    log.lines()
        .filter_map(|l| Some((l, l.find(needle)?)))
        .find_map(|(l, at)| {
            let head = &l[..at];
            head.rfind('[')
                .and_then(|open| printk_time(&head[open..]))
                .or_else(|| printk_time(l))
        })
        .with_context(|| format!("no timed kernel line with {needle:?} ({what}) on the console"))
}

/// The new root's init's CLOCK_MONOTONIC reading (its first line).
fn new_root_monotonic(log: &str) -> Result<f64> {
    Report::parse(log)
        .and_then(|r| r.monotonic())
        .context("the new root's init printed no report with its start time")
}

/// The new root is the overlay's: its init reported the overlay's
/// hostname (the scenario's name), so the boot did what is being timed.
pub fn booted_with_overlay(log: &str, hostname: &str) -> Result<()> {
    let report = Report::parse(log).context("the new root's init printed no report")?;
    match report.get("hostname") {
        Some(name) if name == hostname => Ok(()),
        other => bail!("the new root's hostname is {other:?}, not the overlay's {hostname:?}"),
    }
}

/// CLOCK_MONOTONIC minus the printk clock, from our phase lines (median).
pub fn clock_offset(log: &str) -> Option<f64> {
    let mut offsets: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("alpinit: phase "))
        .filter_map(|l| {
            let printk = printk_time(l)?;
            let (_, value) = report::phases(l).into_iter().next()?;
            Some(value - printk)
        })
        .collect();
    crate::bench::median(&mut offsets)
}

/// Our boot: its timeline and its clock offset.
pub fn ours(log: &str) -> Result<(Timeline, f64)> {
    let run_init = mark(log, RUN_INIT, "the kernel starting the init")?;
    let phase = |name: &str| mark(log, &format!("alpinit: phase {name} "), name);
    let marks = [
        phase("early-mounts")?,
        phase("apkovl-chosen")?,
        phase("unpacked")?,
        phase("packages")?,
    ];
    let offset = clock_offset(log).context("no `alpinit: phase` line to compare the clocks")?;
    let new_root = new_root_monotonic(log)? - offset;
    Ok((checked(run_init, marks, new_root)?, offset))
}

/// Alpine's boot, its new root's time moved to the printk clock by OFFSET.
pub fn alpine(log: &str, offset: f64) -> Result<Timeline> {
    let run_init = mark(log, RUN_INIT, "the kernel starting the init")?;
    // `ebegin` names the apkovl: `Loading user settings from PATH...`.
    let (chosen, overlay) = log
        .lines()
        .find_map(|l| {
            let at = printk_time(l)?;
            let (_, rest) = l.split_once("Loading user settings from ")?;
            let path = rest.trim_end().strip_suffix("...")?;
            Some((at, format!("Loading user settings from {path}: ok.")))
        })
        .context("no `Loading user settings from ...` line: Alpine's init found no apkovl")?;
    let marks = [
        mark(log, "Loading boot drivers...", "drivers")?,
        chosen,
        mark(log, &overlay, "apkovl")?,
        mark(
            log,
            "Installing packages to root filesystem: ok.",
            "packages",
        )?,
    ];
    let new_root = new_root_monotonic(log)? - offset;
    checked(run_init, marks, new_root)
}

/// The printk time of the kernel's partition-table line for PARTITION
/// (`[ 9.720047]  vda: vda1`): the medium announced, the same kernel line
/// on both sides.
pub fn announced(log: &str, partition: &str) -> Option<f64> {
    let disk = partition.trim_end_matches(|c: char| c.is_ascii_digit());
    log.lines().find_map(|l| {
        let (_, rest) = l.split_once(']')?;
        let (name, parts) = rest.trim_start().split_once(": ")?;
        (name == disk && parts.split_whitespace().any(|p| p == partition))
            .then(|| printk_time(l))
            .flatten()
    })
}

/// The marks must come in boot order.
fn checked(run_init: f64, marks: [f64; 4], new_root: f64) -> Result<Timeline> {
    let t = Timeline {
        run_init,
        marks,
        new_root,
    };
    let mut last = run_init;
    for (name, at) in SPANS.iter().zip(marks.iter().chain([&new_root])) {
        if *at < last {
            bail!("the end of {name} ({at:.3}) is before the previous mark ({last:.3})");
        }
        last = *at;
    }
    Ok(t)
}
