//! `cargo xtask bench argon2 [-n N] [--no-vm]`: the init's Argon2id
//! (`crates/argon2`) against RustCrypto's `argon2`, which the init used before,
//! both built by `crates/argon2/examples/argon2_bench.rs` with the init's
//! release profile. On this machine, alternating, for three LUKS2 key slot
//! shapes; then (unless `--no-vm`) as `/init` of a TCG VM with one CPU (the
//! bench root VM) on the bench root LUKS2 header's costs. Prints medians and the
//! ratio ours / RustCrypto's; both must derive the same key.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use alpinit_qemu_tests::qemu::{self, Vm};
use anyhow::{bail, Context, Result};

use crate::cpio::Archive;
use crate::kernel::{self, KernelSpec};
use crate::{build, deps, paths, suite};

/// Key slot costs (memory KiB, passes, lanes): the bench root header's; one
/// with cryptsetup's default four lanes; cryptsetup's largest default memory.
const SHAPES: [(u32, u32, u32); 3] = [(65536, 4, 1), (262144, 4, 4), (1048576, 4, 4)];

/// One timed derivation, as the program prints it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub which: String,
    pub shape: (u32, u32, u32),
    pub secs: f64,
    pub tag: String,
    /// Which G ours ran (`portable`, `avx2`).
    pub engine: String,
}

/// `argon2-bench impl=ours m=65536 t=4 p=1 secs=1.234567 tag=00..` → a sample;
/// None for any other line.
pub(crate) fn parse_line(line: &str) -> Option<Sample> {
    let rest = line.trim().strip_prefix("argon2-bench ")?;
    let mut fields = BTreeMap::new();
    for word in rest.split_whitespace() {
        let (key, value) = word.split_once('=')?;
        fields.insert(key, value);
    }
    let number = |key: &str| fields.get(key)?.parse::<u32>().ok();
    Some(Sample {
        which: fields.get("impl")?.to_string(),
        shape: (number("m")?, number("t")?, number("p")?),
        secs: fields.get("secs")?.parse().ok()?,
        tag: fields.get("tag")?.to_string(),
        engine: fields.get("engine").unwrap_or(&"").to_string(),
    })
}

pub fn run(args: &[String]) -> Result<()> {
    let mut runs = 5;
    let mut vm = true;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-n" => runs = super::runs_value(&mut iter, arg)?,
            "--no-vm" => vm = false,
            other => bail!("unknown bench argon2 argument {other:?} (-n N, --no-vm)"),
        }
    }
    let program = build::musl_example("alpinit-argon2", "argon2_bench")?;
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let mut samples = Vec::new();
    for shape in SHAPES {
        samples.extend(native(&program, runs, shape)?);
    }
    println!(
        "\nArgon2id on this machine ({cpus} CPUs), medians of {runs}, alternating:\n{}",
        table(&samples)?
    );
    if vm {
        let samples = in_vm(&program, runs)?;
        println!(
            "\nArgon2id as /init of the bench root VM (TCG, -smp 1), medians of {runs}:\n{}",
            table(&samples)?
        );
    }
    println!(
        "reproduce: cargo xtask bench argon2 -n {runs}{}",
        if vm { "" } else { " --no-vm" }
    );
    Ok(())
}

/// RUNS alternating rounds of both derivations with one shape's costs.
fn native(program: &Path, runs: usize, (m, t, p): (u32, u32, u32)) -> Result<Vec<Sample>> {
    let out = Command::new(program)
        .args([runs as u32, m, t, p].map(|n| n.to_string()))
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let samples: Vec<Sample> = text.lines().filter_map(parse_line).collect();
    if samples.len() != 2 * runs {
        bail!(
            "m={m} t={t} p={p}: {} of {} results: {text}",
            samples.len(),
            2 * runs
        );
    }
    Ok(samples)
}

fn in_vm(program: &Path, runs: usize) -> Result<Vec<Sample>> {
    deps::check()?;
    let kernel = kernel::resolve(&KernelSpec::Generic)?;
    let dir = paths::qemu_tests_dir().join("bench-argon2");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let accel = suite::accel(&kernel, &paths::qemu_tests_dir());
    let mut archive = Archive::new();
    let init = fs::read(program).with_context(|| format!("reading {}", program.display()))?;
    archive.add_file("init", 0o755, init);
    let image = dir.join("initramfs.gz");
    fs::write(&image, crate::initramfs::compress(&archive, 0)?)
        .with_context(|| format!("writing {}", image.display()))?;
    let mut vm = Vm::new(accel);
    vm.kernel_boot(
        kernel.boot_image(),
        &image,
        &format!("console=ttyS0 quiet panic=-1 ARGON2_BENCH_RUNS={runs}"),
    );
    let log = dir.join("vm.log");
    // Two derivations a round, a few seconds each under TCG.
    let timeout = accel.boot_timeout() + Duration::from_secs(30 * runs as u64);
    let stop = |text: &str| text.contains("argon2-bench done") || text.contains("Kernel panic");
    let outcome = qemu::run(&vm, &log, timeout, Some(&stop))?;
    let samples: Vec<Sample> = outcome.log.lines().filter_map(parse_line).collect();
    if samples.len() != 2 * runs {
        bail!(
            "the VM printed {} of {} results (log: {})",
            samples.len(),
            2 * runs,
            log.display()
        );
    }
    Ok(samples)
}

/// A row per shape: medians of both and the ratio; an error when the two
/// derived different keys.
pub(crate) fn table(samples: &[Sample]) -> Result<String> {
    let mut shapes: Vec<(u32, u32, u32)> = samples.iter().map(|s| s.shape).collect();
    shapes.dedup();
    let mut text = format!(
        "  {:<28} {:>10} {:>12} {:>12}\n",
        "memory, passes, lanes", "ours", "RustCrypto", "ours/theirs"
    );
    for shape in shapes {
        let (m, t, p) = shape;
        let of = |which: &str| -> Vec<&Sample> {
            samples
                .iter()
                .filter(|s| s.shape == shape && s.which == which)
                .collect()
        };
        let (ours, theirs) = (of("ours"), of("rustcrypto"));
        let Some(first) = ours.first() else {
            bail!("m={m} t={t} p={p}: ours has no result");
        };
        if let Some(bad) = ours.iter().chain(&theirs).find(|s| s.tag != first.tag) {
            bail!(
                "m={m} t={t} p={p}: {} derived {} where ours derived {}",
                bad.which,
                bad.tag,
                first.tag
            );
        }
        let median = |v: &[&Sample]| {
            let mut secs: Vec<f64> = v.iter().map(|s| s.secs).collect();
            super::median(&mut secs)
        };
        let (Some(a), Some(b)) = (median(&ours), median(&theirs)) else {
            bail!("m={m} t={t} p={p}: a side has no result");
        };
        let label = format!("{} MiB, {t} passes, {p} lanes", m / 1024);
        text.push_str(&format!(
            "  {label:<28} {a:>9.3}s {b:>11.3}s {:>12.2}   ours ran G: {}\n",
            a / b,
            first.engine
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(which: &str, shape: (u32, u32, u32), secs: f64, tag: &str) -> Sample {
        Sample {
            which: which.into(),
            shape,
            secs,
            tag: tag.into(),
            engine: if which == "ours" { "avx2" } else { "" }.into(),
        }
    }

    #[test]
    fn result_lines_parse_and_others_do_not() {
        let cases: [(&str, Option<Sample>); 5] = [
            (
                "argon2-bench impl=ours m=65536 t=4 p=1 secs=1.250000 tag=ab12 engine=avx2",
                Some(sample("ours", (65536, 4, 1), 1.25, "ab12")),
            ),
            (
                "[    3.1] argon2-bench impl=ours m=1 t=1 p=1 secs=1 tag=x",
                None,
            ),
            ("argon2-bench impl=ours m=65536 t=4 p=1 failed", None),
            ("argon2-bench impl=ours m=big t=4 p=1 secs=1 tag=ab", None),
            ("argon2-bench done", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), want, "{line}");
        }
    }

    #[test]
    fn table_gives_medians_and_the_ratio() {
        let shape = (65536, 4, 1);
        let samples = [
            sample("ours", shape, 1.0, "t"),
            sample("rustcrypto", shape, 2.0, "t"),
            sample("ours", shape, 3.0, "t"),
            sample("rustcrypto", shape, 4.0, "t"),
            sample("ours", shape, 1.2, "t"),
            sample("rustcrypto", shape, 2.5, "t"),
        ];
        let text = table(&samples).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("  64 MiB, 4 passes, 1 lanes"), "{row}");
        assert!(
            row.contains("1.200s")
                && row.contains("2.500s")
                && row.ends_with("0.48   ours ran G: avx2"),
            "{row}"
        );
    }

    #[test]
    fn different_keys_are_an_error_naming_the_shape() {
        let shape = (8, 1, 1);
        let samples = [
            sample("ours", shape, 1.0, "aa"),
            sample("rustcrypto", shape, 1.0, "bb"),
        ];
        let e = table(&samples).unwrap_err().to_string();
        assert!(
            e.contains("m=8 t=1 p=1") && e.contains("rustcrypto derived bb"),
            "{e}"
        );
    }
}
