//! `cargo xtask bench boot`: boots one scenario N times and prints the
//! median time of each `alpinit: phase` line, plus the init and image sizes.

use std::collections::BTreeMap;
use std::fs;

use alpinit_qemu_tests::report;
use alpinit_qemu_tests::scenarios::{self, ImageKind, Verdict};
use anyhow::{bail, Context, Result};

use crate::{deps, paths, suite};

/// Boot order of the phase names (the contract with the init).
pub const PHASES: &[&str] = &[
    "start",
    "early-mounts",
    "coldplug-done",
    "first-block",
    "media-found",
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

pub fn boot(scenario: &str, runs: usize) -> Result<()> {
    deps::check()?;
    let chosen = scenarios::select(&[scenario.to_string()])?;
    let Some(scenario) = chosen.first() else {
        bail!("no scenario selected");
    };
    let assets = suite::prepare(&chosen, None)?;
    let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut to_new_init = Vec::new();
    let mut ok = 0;
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
        let seen = report::phases(&result.log);
        for (name, secs) in &seen {
            phases.entry(name.clone()).or_default().push(*secs);
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
    let init = paths::musl_binary("alpinit");
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

pub fn unpack() -> Result<()> {
    println!("bench unpack: not yet wired");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
