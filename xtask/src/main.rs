//! Developer commands: `cargo xtask initramfs|run|test|deps|bench`.

mod alpine_init;
mod bench;
mod bench_hostile;
mod build;
mod chart;
mod cpio;
mod cross;
mod demo;
mod deps;
mod elf;
mod feature_files;
mod features;
mod https_image;
mod initramfs;
mod kernel;
mod mkinitfs;
mod modules;
mod package;
mod paths;
mod process;
mod suite;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::kernel::{Arch, KernelSpec};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  initramfs [--arch x86_64|aarch64] [--kernel generic|cloud|DIR] [--features a,b,..]
            [--busybox|--no-busybox] [--no-tls] [--extra SRC:DEST ...] [--init FILE] [-o FILE]
  mkinitfs  [--init FILE] [-o FILE]   (an image built by Alpine's own mkinitfs)
  package   [--init FILE] [-o DIR]    (.apk packages from initramfs/alpine/APKBUILD)
  run       [--kernel generic|cloud|DIR]
  test      [--arch x86_64|aarch64] [--unit-only | --qemu-only [SCENARIO...]] [--init FILE]
  deps
  bench boot [--arch x86_64|aarch64] [SCENARIO] [-n N]
  bench unpack [-n N] [--mb M]
  bench vs-alpine [SCENARIO...] [-n N]
  bench hostile [SHAPE..] [--timeout S] [--mem-cap-mb M]
  bench root [ext4] [luks2] [-n N]
  bench argon2 [-n N] [--no-vm]
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return Ok(ExitCode::FAILURE);
    };
    match command.as_str() {
        "initramfs" => initramfs_command(rest).map(|()| ExitCode::SUCCESS),
        "test" => {
            let args = parse_test_args(rest)?;
            deps::ensure_host()?;
            let ok = suite::run(&args)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        "run" => {
            let mut kernel = KernelSpec::Generic;
            let mut iter = rest.iter();
            while let Some(arg) = iter.next() {
                match arg.as_str() {
                    "--kernel" => kernel = KernelSpec::parse(value(&mut iter, arg)?),
                    other => bail!("unknown run option {other:?}\n{USAGE}"),
                }
            }
            deps::ensure_host()?;
            demo::run(kernel).map(|()| ExitCode::SUCCESS)
        }
        "mkinitfs" => mkinitfs::command(rest).map(|()| ExitCode::SUCCESS),
        "package" => package::command(rest).map(|()| ExitCode::SUCCESS),
        "bench" => bench_command(rest).map(|()| ExitCode::SUCCESS),
        "deps" => deps::install().map(|()| ExitCode::SUCCESS),
        "chart" => chart::command(rest)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// Pulls the value of an option that takes one.
fn value<'a>(iter: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String> {
    iter.next().with_context(|| format!("{flag} needs a value"))
}

/// `--arch NAME`.
fn arch_value<'a>(iter: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<Arch> {
    let name = value(iter, flag)?;
    Arch::parse(name)
        .with_context(|| format!("unknown architecture {name:?}; known: x86_64, aarch64"))
}

/// The host's CA bundle (Debian's ca-certificates), put into images whose
/// init has TLS (the default).
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `--no-tls`: the small init without TLS; `--https` (the default) insists
/// on the CA bundle.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct TlsChoice {
    no_tls: bool,
    https: bool,
}

fn parse_initramfs_options(args: &[String]) -> Result<(initramfs::Options, TlsChoice)> {
    let mut opts = initramfs::Options::default();
    let mut https = TlsChoice::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--arch" => opts.arch = arch_value(&mut iter, arg)?,
            "--kernel" => opts.kernel = KernelSpec::parse(value(&mut iter, arg)?),
            "--features" => {
                opts.features = value(&mut iter, arg)?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "--busybox" => opts.busybox = true,
            "--no-busybox" => opts.busybox = false,
            "--https" => https.https = true,
            "--no-tls" => https.no_tls = true,
            "--extra" => opts
                .extras
                .push(initramfs::parse_extra(value(&mut iter, arg)?)?),
            "--init" => opts.init = Some(PathBuf::from(value(&mut iter, arg)?)),
            "-o" | "--output" => opts.output = Some(PathBuf::from(value(&mut iter, arg)?)),
            other => bail!("unknown initramfs option {other:?}\n{USAGE}"),
        }
    }
    Ok((opts, https))
}

fn initramfs_command(args: &[String]) -> Result<()> {
    let (mut opts, choice) = parse_initramfs_options(args)?;
    if choice.no_tls && choice.https {
        bail!("--https and --no-tls contradict each other");
    }
    let tls = match (&opts.init, choice.no_tls) {
        (Some(_), _) => None,
        (None, true) => Some(build::Tls::Without),
        (None, false) => Some(build::Tls::With),
    };
    if !choice.no_tls {
        // https:// apkovls and repositories: the CA bundle the init verifies
        // servers against.
        if std::path::Path::new(HOST_CA_BUNDLE).is_file() {
            opts.extras.push((
                PathBuf::from(HOST_CA_BUNDLE),
                https_image::CA_BUNDLE.to_string(),
            ));
        } else if choice.https {
            bail!("--https needs {HOST_CA_BUNDLE} (apt-get install ca-certificates)");
        } else {
            eprintln!(
                "warning: no {HOST_CA_BUNDLE} on this host (apt-get install ca-certificates): \
                 the image cannot verify https:// servers"
            );
        }
    }
    if let Some(tls) = tls {
        opts.init = Some(build::init_with(opts.arch, tls)?);
    }
    let image = initramfs::build(&opts)?;
    println!("image: {} ({})", image.path.display(), opts.arch);
    println!("size: {} bytes", image.size);
    println!("init: {} bytes", image.init_size);
    println!("kernel release: {}", image.kernel.release);
    println!("kernel: {}", image.kernel.boot_image().display());
    println!("modules: {}", image.modules);
    if let (Some(init), Arch::X86_64) = (&opts.init, opts.arch) {
        initramfs::print_init_sizes(init, tls);
    }
    Ok(())
}

fn parse_test_args(args: &[String]) -> Result<suite::TestArgs> {
    let mut out = suite::TestArgs::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--unit-only" => out.unit_only = true,
            "--qemu-only" => out.qemu_only = true,
            "--arch" => out.arch = Some(arch_value(&mut iter, arg)?),
            "--init" => out.init = Some(PathBuf::from(value(&mut iter, arg)?)),
            name if !name.starts_with('-') => out.scenarios.push(name.to_string()),
            other => bail!("unknown test option {other:?}\n{USAGE}"),
        }
    }
    if out.unit_only && (out.qemu_only || !out.scenarios.is_empty()) {
        bail!("--unit-only runs no scenarios");
    }
    if !out.scenarios.is_empty() {
        // Naming scenarios means running just those.
        out.qemu_only = true;
    }
    Ok(out)
}

fn bench_command(args: &[String]) -> Result<()> {
    match args.split_first() {
        Some((what, rest)) if what == "boot" => {
            let mut scenario = "virtio-ext4".to_string();
            let mut runs = 5;
            let mut arch = Arch::X86_64;
            let mut iter = rest.iter();
            while let Some(arg) = iter.next() {
                match arg.as_str() {
                    "--arch" => arch = arch_value(&mut iter, arg)?,
                    "-n" => {
                        runs = value(&mut iter, arg)?
                            .parse()
                            .context("-n wants a number")?;
                    }
                    name if !name.starts_with('-') => scenario = name.to_string(),
                    other => bail!("unknown bench option {other:?}\n{USAGE}"),
                }
            }
            bench::boot(arch, &scenario, runs)
        }
        Some((what, rest)) if what == "unpack" => bench::unpack(rest),
        Some((what, rest)) if what == "vs-alpine" => bench::vs_alpine::run(rest),
        Some((what, rest)) if what == "hostile" => bench_hostile::run(rest),
        Some((what, rest)) if what == "root" => bench::root::run(rest),
        Some((what, rest)) if what == "argon2" => bench::argon2::run(rest),
        _ => bail!(
            "bench wants `boot`, `unpack`, `hostile`, `vs-alpine`, `root` or `argon2`\n{USAGE}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// TLS is the default; `--no-tls` asks for the small init, `--https`
    /// only insists on the CA bundle.
    #[test]
    fn initramfs_tls_flags() {
        let (_, choice) = parse_initramfs_options(&[]).expect("parse");
        assert_eq!(choice, TlsChoice::default());
        let (_, choice) = parse_initramfs_options(&args(&["--no-tls"])).expect("parse");
        assert!(choice.no_tls && !choice.https);
        let (_, choice) = parse_initramfs_options(&args(&["--https"])).expect("parse");
        assert!(choice.https && !choice.no_tls);
        assert!(initramfs_command(&args(&["--https", "--no-tls"])).is_err());
    }
}
