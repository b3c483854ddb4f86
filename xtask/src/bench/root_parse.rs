//! Timing one root-mode boot from its serial log, and the table of medians.
//!
//! Every image is timed on the kernel's printk clock, from the kernel's
//! `Run /init as init process` line to the start of the root's
//! `/sbin/init` (`report-init`, whose first report line is its
//! CLOCK_MONOTONIC reading). The two clocks differ by a few tens of ms
//! under TCG; our phase lines carry both (`[ 5.369 ] alpinit: phase
//! switch-root 5.411`), so each of our boots measures the offset and the
//! peers booted in the same round borrow it (as `vs_alpine/parse.rs`
//! does). The peers print nothing that carries both clocks, and the
//! host's wall clock would add QEMU's start-up and the kernel's own boot,
//! which are the same for every image but noisy.

use anyhow::{bail, Context, Result};

use alpinit_qemu_tests::report::Report;

use crate::bench::median;
use crate::bench::vs_alpine::parse::{clock_offset, printk_time};

const RUN_INIT: &str = "Run /init as init process";

/// The printk time of the kernel's `Run /init` line.
pub fn run_init(log: &str) -> Result<f64> {
    mark(log, RUN_INIT).context("the kernel never started the image")
}

/// The new root booted is the benchmark's: its init reported HOSTNAME and a
/// `/` mounted from a device whose name starts with SOURCE (`/dev/vda1`,
/// `/dev/dm-` or `/dev/mapper/` for the LUKS root).
pub fn booted_root(log: &str, hostname: &str, sources: &[&str]) -> Result<()> {
    let report = Report::parse(log).context("the new root's init printed no report")?;
    match report.get("hostname") {
        Some(name) if name == hostname => {}
        other => bail!("the new root's hostname is {other:?}, not {hostname:?}"),
    }
    match report.mount_at("/") {
        Some(m) if sources.iter().any(|s| m.source.starts_with(s)) => Ok(()),
        other => bail!("/ is {other:?}, not mounted from one of {sources:?}"),
    }
}

/// `Run /init` → the new root's init, for our boot, and the clock offset
/// (CLOCK_MONOTONIC - printk) it measured.
pub fn ours(log: &str) -> Result<(f64, f64)> {
    let offset = clock_offset(log).context("no `alpinit: phase` line to compare the clocks")?;
    Ok((to_new_root(log, offset)?, offset))
}

/// `Run /init` → the new root's init for a boot that measures no clock
/// offset itself: OFFSET is borrowed from our boot of the same round.
pub fn to_new_root(log: &str, offset: f64) -> Result<f64> {
    let start = run_init(log)?;
    let new_root = Report::parse(log)
        .and_then(|r| r.monotonic())
        .context("the new root's init printed no report with its start time")?
        - offset;
    if new_root < start {
        bail!("the new root's init ({new_root:.3}) started before `Run /init` ({start:.3})");
    }
    Ok(new_root - start)
}

/// What a column of the table is held to: our median at most `max_ratio`
/// times the peer's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub max_ratio: f64,
}

/// One image's boots.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// Seconds of each boot that could be measured.
    pub secs: Vec<f64>,
    /// Boots tried.
    pub runs: usize,
    /// None for alpinit itself, or a peer without a target.
    pub target: Option<Target>,
}

impl Column {
    pub fn median(&self) -> Option<f64> {
        median(&mut self.secs.clone())
    }

    /// The fastest boot: what the host's load disturbed least.
    pub fn best(&self) -> Option<f64> {
        self.secs.iter().copied().reduce(f64::min)
    }
}

/// Our median over the peer's, when both booted.
pub fn ratio(ours: &Column, peer: &Column) -> Option<f64> {
    match (ours.median(), peer.median()) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// `met`, `missed` or `-` (no target, or nothing measured).
pub fn verdict(ours: &Column, peer: &Column) -> &'static str {
    match (peer.target, ratio(ours, peer)) {
        (Some(t), Some(r)) if r <= t.max_ratio => "met",
        (Some(_), Some(_)) => "MISSED",
        _ => "-",
    }
}

/// The table: a line per image, ours first, with ratios against it.
pub fn table(title: &str, ours: &Column, peers: &[Column]) -> String {
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}s"));
    let mut out = format!("{title}\n");
    out.push_str(&format!(
        "  {:<16} {:>9} {:>9} {:>6} {:>14} {:>8}\n",
        "image", "median", "best", "ok", "alpinit/peer", "target"
    ));
    let ok = |c: &Column| format!("{}/{}", c.secs.len(), c.runs);
    out.push_str(&format!(
        "  {:<16} {:>9} {:>9} {:>6} {:>14} {:>8}\n",
        ours.name,
        show(ours.median()),
        show(ours.best()),
        ok(ours),
        "",
        ""
    ));
    for peer in peers {
        let ratio = ratio(ours, peer).map_or("-".to_string(), |r| format!("{r:.2}"));
        let target = match peer.target {
            Some(t) => format!("<= {:.1} {}", t.max_ratio, verdict(ours, peer)),
            None => "-".to_string(),
        };
        out.push_str(&format!(
            "  {:<16} {:>9} {:>9} {:>6} {:>14} {:>8}\n",
            peer.name,
            show(peer.median()),
            show(peer.best()),
            ok(peer),
            ratio,
            target
        ));
    }
    out
}

/// The printk time of the first kernel line holding NEEDLE.
pub fn mark(log: &str, needle: &str) -> Result<f64> {
    timed(log, needle)
        .next()
        .with_context(|| format!("no timed kernel line with {needle:?}"))
}

/// The printk times of the kernel lines holding NEEDLE. Control
/// characters before the `[` are skipped: our init rings the console's
/// bell (`\x07`) before asking for a passphrase, and the next kernel line
/// lands right after it.
fn timed<'a>(log: &'a str, needle: &'a str) -> impl Iterator<Item = f64> + 'a {
    log.lines()
        .filter(move |l| l.contains(needle))
        .filter_map(|l| printk_time(l.trim_start_matches(|c: char| c.is_control())))
}

/// From the first line with FROM to the first line with TO after it.
pub fn span(log: &str, from: &str, to: &str) -> Result<f64> {
    let start = mark(log, from)?;
    let end = timed(log, to)
        .find(|t| *t >= start)
        .with_context(|| format!("no timed kernel line with {to:?} after {from:?}"))?;
    Ok(end - start)
}
