//! `cargo xtask bench boot`: boots one scenario N times and prints the
//! median time of each `alpinit: phase` line, plus the init and image sizes.

use std::collections::BTreeMap;
use std::fs;

use alpinit_qemu_tests::report;
use alpinit_qemu_tests::scenarios::{self, ImageKind, Verdict};
use anyhow::{bail, Context, Result};

use crate::{deps, suite};

pub(crate) mod argon2;
pub(crate) mod root;
pub(crate) mod trace;
mod unpack;
pub(crate) mod vs_alpine;
pub(crate) use unpack::build_unpack_example;
pub use unpack::unpack;

/// Boot order of the phase names (the contract with the init).
pub const PHASES: &[&str] = &[
    "start",
    "early-mounts",
    "coldplug-done",
    "first-block",
    "media-found",
    "link-up",
    "dhcp-lease",
    "download",
    "apkovl-chosen",
    "unpacked",
    "packages",
    "switch-root",
];

pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

pub fn boot(arch: crate::kernel::Arch, scenario: &str, runs: usize) -> Result<()> {
    deps::check()?;
    let chosen = scenarios::select_for(arch, &[scenario.to_string()])?;
    let Some(scenario) = chosen.first() else {
        bail!("no scenario selected");
    };
    let assets = suite::prepare(arch, &chosen, None)?;
    let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut to_new_init = Vec::new();
    let mut peak_kib = Vec::new();
    let mut after_partition = Vec::new();
    let mut ok = 0;
    let mut chart = None;
    for i in 1..=runs {
        let result = scenarios::run(scenario, &assets);
        let passed = matches!(result.verdict, Verdict::Pass);
        println!(
            "run {i}/{runs}: {} in {:.1}s",
            if passed { "pass" } else { "FAIL" },
            result.elapsed.as_secs_f64()
        );
        if !passed {
            println!("  log: {}", result.log_path.display());
            continue;
        }
        ok += 1;
        // The boot chart beside the log; each run's overwrites the last.
        let svg = crate::chart::default_output(&result.log_path);
        crate::chart::write_chart(&result.log_path, &svg)?;
        chart = Some(svg);
        let seen = report::phases(&result.log);
        for (name, secs) in &seen {
            phases.entry(name.clone()).or_default().push(*secs);
        }
        if let Some(kib) = peak_memory_kib(&result.log) {
            peak_kib.push(kib);
        }
        if let Some(secs) = partition_to_switch_root(&result.log) {
            after_partition.push(secs);
        }
        let start = seen.iter().find(|(n, _)| n == "start").map(|p| p.1);
        if let (Some(start), Some(new)) =
            (start, result.report.as_ref().and_then(|r| r.monotonic()))
        {
            to_new_init.push(new - start);
        }
    }
    if ok == 0 {
        bail!("no successful boot to measure");
    }
    println!("\nmedians over {ok} boot(s), CLOCK_MONOTONIC seconds:");
    let start = phases.get_mut("start").and_then(|v| median(v));
    let mut names: Vec<&str> = PHASES.to_vec();
    let extra: Vec<String> = phases
        .keys()
        .filter(|k| !PHASES.contains(&k.as_str()))
        .cloned()
        .collect();
    names.extend(extra.iter().map(String::as_str));
    for name in names {
        let Some(m) = phases.get_mut(name).and_then(|v| median(v)) else {
            continue;
        };
        match start {
            Some(s) => println!("  {name:<14} {m:>9.3}  (+{:.3} from start)", m - s),
            None => println!("  {name:<14} {m:>9.3}"),
        }
    }
    if let Some(m) = median(&mut to_new_init) {
        println!("  init start -> new root's init: {m:.3}");
    }
    if let Some(m) = median(&mut after_partition) {
        println!("  apkovl partition announced by the kernel -> switch_root: {m:.3}");
    }
    if let Some(m) = median(&mut peak_kib) {
        println!("init peak memory (VmHWM at switch_root): {m:.0} kB");
    }
    if let Some(svg) = &chart {
        println!("boot chart of the last run: {}", svg.display());
    }
    let init = crate::build::init_for(arch)?;
    let init_size = fs::metadata(&init)
        .with_context(|| format!("reading {}", init.display()))?
        .len();
    println!(
        "init binary (stripped): {init_size} bytes ({})",
        init.display()
    );
    if let Some(image) = assets
        .images
        .get(&ImageKind::Standard)
        .or(assets.images.values().next())
    {
        let size = fs::metadata(image)
            .with_context(|| format!("reading {}", image.display()))?
            .len();
        println!("image: {size} bytes ({})", image.display());
    }
    Ok(())
}

/// Seconds from the kernel's announcement of the partition that holds the
/// chosen apkovl (` sda: sda1`) to `phase switch-root`, both read from the
/// printk timestamps so they share a clock.
fn partition_to_switch_root(log: &str) -> Option<f64> {
    let printk = |line: &str| -> Option<f64> {
        let rest = line.trim_start().strip_prefix('[')?;
        rest.split(']').next()?.trim().parse().ok()
    };
    let (_, chosen) = log.split_once("alpinit: apkovl chosen: /media/")?;
    let dev = chosen.split('/').next()?;
    let disk = dev.trim_end_matches(|c: char| c.is_ascii_digit());
    if disk == dev || disk.is_empty() {
        return None;
    }
    let announce = format!(" {disk}: ");
    let announced = log
        .lines()
        .find(|l| l.contains(&announce) && l.split_whitespace().any(|w| w == dev))
        .and_then(printk)?;
    let switched = log
        .lines()
        .find(|l| l.contains("alpinit: phase switch-root"))
        .and_then(printk)?;
    Some(switched - announced)
}

/// The init's `alpinit: peak memory N kB` line.
fn peak_memory_kib(log: &str) -> Option<f64> {
    let (_, rest) = log.split_once("alpinit: peak memory ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The value after ARG (`-n`): a number of runs, at least 1, as `bench
/// unpack`, `bench root` and `bench vs-alpine` read it.
pub(crate) fn runs_value<'a>(
    iter: &mut impl Iterator<Item = &'a String>,
    arg: &str,
) -> Result<usize> {
    let runs: usize = iter
        .next()
        .with_context(|| format!("{arg} needs a value"))?
        .parse()
        .with_context(|| format!("{arg} wants a number"))?;
    if runs == 0 {
        bail!("{arg} must be at least 1");
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_announcement_to_switch_root() {
        let log = "[    5.161678]  sda: sda1\n[    5.200000] alpinit: apkovl chosen: /media/sda1/host.apkovl.tar.gz\n[    5.369148] alpinit: phase switch-root 5.411771\n";
        let secs = partition_to_switch_root(log).unwrap();
        assert!((secs - 0.20747).abs() < 1e-6, "{secs}");
        assert_eq!(
            partition_to_switch_root("alpinit: apkovl chosen: /media/sr0/x"),
            None
        );
    }

    #[test]
    fn peak_memory_line_is_found() {
        let log = "[ 1.0] alpinit: phase packages 1.0\n[ 1.1] alpinit: peak memory 3120 kB\n";
        assert_eq!(peak_memory_kib(log), Some(3120.0));
        assert_eq!(peak_memory_kib("nothing"), None);
    }

    #[test]
    fn medians() {
        let cases: [(&[f64], Option<f64>); 4] = [
            (&[], None),
            (&[3.0], Some(3.0)),
            (&[5.0, 1.0, 3.0], Some(3.0)),
            (&[4.0, 1.0, 2.0, 3.0], Some(2.5)),
        ];
        for (input, want) in cases {
            let mut v = input.to_vec();
            assert_eq!(median(&mut v), want, "{input:?}");
        }
    }
}
