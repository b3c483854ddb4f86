//! `cargo xtask bench vs-alpine [SCENARIO...] [-n N]`: our default image
//! against Alpine's real init (`crate::alpine_init`: mkinitfs 3.13.0's
//! `initramfs-init` and `nlplug-findfs` with the same modules), booted
//! alternately on the same media, `Run /init` → the new root's first line
//! (how each side is timed: `vs_alpine/parse.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alpinit_qemu_tests::file_server::FileServer;
use alpinit_qemu_tests::media::{self, FileSpec, Filesystem};
use alpinit_qemu_tests::netboot;
use alpinit_qemu_tests::qemu::{self, Accel, Vm};
use alpinit_qemu_tests::report::END;
use anyhow::{bail, Context, Result};

use crate::bench::median;
use crate::initramfs::{self, Options};
use crate::kernel::{self, KernelSpec};
use crate::{alpine_init, build, deps, mkinitfs, paths, suite};

pub(crate) mod parse;
mod real_apk;
use parse::{Timeline, SPANS};

/// The kernel command line of both images (the QEMU suite's).
const CMDLINE: &str = "console=ttyS0 panic=-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Medium {
    /// An ext4 virtio disk.
    Virtio,
    /// A FAT32 USB stick on xhci.
    Usb,
    /// An isolinux ISO (kernel and image) plus the FAT32 stick.
    IsoUsb,
    /// pxelinux over QEMU's TFTP, `ip=dhcp`, the apkovl by `{MAC}` over
    /// HTTP from the host; no disk.
    Pxe,
    /// An ext4 virtio disk with a real signed boot repository, installed
    /// by the mini root's apk on both sides (`vs_alpine/real_apk.rs`).
    RealApk,
}

impl Medium {
    /// The partition holding the apkovl (`None`: fetched over the network).
    fn partition(self) -> Option<&'static str> {
        match self {
            Medium::Virtio | Medium::RealApk => Some("vda1"),
            Medium::Usb | Medium::IsoUsb => Some("sda1"),
            Medium::Pxe => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    medium: Medium,
    /// `apks/.boot_repository` on the boot medium (the ISO for ISO + USB).
    repository: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "virtio-repo",
        medium: Medium::Virtio,
        repository: true,
    },
    Scenario {
        name: "virtio",
        medium: Medium::Virtio,
        repository: false,
    },
    Scenario {
        name: "usb-repo",
        medium: Medium::Usb,
        repository: true,
    },
    Scenario {
        name: "usb",
        medium: Medium::Usb,
        repository: false,
    },
    Scenario {
        name: "iso-usb-repo",
        medium: Medium::IsoUsb,
        repository: true,
    },
    Scenario {
        name: "iso-usb",
        medium: Medium::IsoUsb,
        repository: false,
    },
    Scenario {
        name: "pxe",
        medium: Medium::Pxe,
        repository: false,
    },
    Scenario {
        name: "real-apk",
        medium: Medium::RealApk,
        repository: true,
    },
];

/// The PXE scenario's NIC.
const PXE_MAC: &str = "52:54:00:12:34:56";

struct Args {
    scenarios: Vec<Scenario>,
    runs: usize,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut runs = 3;
    let mut scenarios = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-n" => runs = crate::bench::runs_value(&mut iter, arg)?,
            name if !name.starts_with('-') => {
                let found = SCENARIOS.iter().find(|s| s.name == name).with_context(|| {
                    let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
                    format!("unknown scenario {name:?}; known: {}", known.join(", "))
                })?;
                scenarios.push(*found);
            }
            other => bail!("unknown bench vs-alpine option {other:?}"),
        }
    }
    if scenarios.is_empty() {
        scenarios = SCENARIOS.to_vec();
    }
    Ok(Args { scenarios, runs })
}

struct Assets {
    kernel: PathBuf,
    vmlinuz: PathBuf,
    ours: PathBuf,
    alpine: PathBuf,
    report_init: PathBuf,
    /// Ours and Alpine's real-apk images, when a scenario needs them.
    real_apk: Option<[PathBuf; 2]>,
    images: PathBuf,
    accel: Accel,
    out_dir: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Alpine,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Ours => "alpinit",
            Side::Alpine => "alpine",
        }
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let args = parse_args(args)?;
    deps::check()?;
    let programs = build::test_programs_for(crate::kernel::Arch::X86_64)?;
    let release = kernel::resolve(&KernelSpec::Generic)?;
    let out_dir = paths::qemu_tests_dir().join("vs-alpine");
    let images = paths::qemu_tests_dir().join("images");
    let ours = initramfs::build(&Options {
        output: Some(images.join("initramfs-standard.gz")),
        ..Options::default()
    })?;
    let alpine = alpine_init::build(
        &ours.path,
        &ours.kernel.release,
        &images.join("initramfs-alpine-init.gz"),
    )?;
    let real_apk = if args.scenarios.iter().any(|s| s.medium == Medium::RealApk) {
        Some(real_apk::images(&images, &ours.kernel.release)?)
    } else {
        None
    };
    let accel = suite::accel(&release, &paths::qemu_tests_dir());
    let assets = Assets {
        kernel: release.boot_image().to_path_buf(),
        vmlinuz: release.vmlinuz.clone(),
        ours: ours.path.clone(),
        alpine: alpine.path.clone(),
        report_init: programs.report_init,
        real_apk,
        images,
        accel,
        out_dir,
    };
    println!(
        "alpinit image: {} ({} bytes)",
        ours.path.display(),
        ours.size
    );
    println!(
        "Alpine's init (mkinitfs 3.13.0, same modules): {} ({} bytes)",
        alpine.path.display(),
        alpine.size
    );
    let mut rows = Vec::new();
    for scenario in &args.scenarios {
        println!("\n== {} ({} boots each)", scenario.name, args.runs);
        rows.push(bench_scenario(&assets, scenario, args.runs)?);
    }
    println!(
        "\n`Run /init` -> the new root's first line (TCG, -smp 1): medians, then the fastest boots"
    );
    println!(
        "  {:<14} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}   ok (alpinit/alpine)",
        "scenario", "alpinit", "alpine", "ratio", "best", "best", "ratio"
    );
    for row in &rows {
        row.print_total();
    }
    println!("\nwhere the time goes (medians, s): alpinit | alpine");
    println!(
        "  {:<14} {}",
        "scenario",
        SPANS.map(|s| format!("{s:>19}")).join("")
    );
    for row in &rows {
        row.print_spans();
    }
    println!(
        "\nthe apkovl's partition announced by the kernel -> the new root's first line (medians)"
    );
    println!("  {:<14} {:>9} {:>9}", "scenario", "alpinit", "alpine");
    for row in &rows {
        row.print_announced();
    }
    sizes(&ours.path, ours.size, alpine.size);
    let names: Vec<&str> = args.scenarios.iter().map(|s| s.name).collect();
    println!(
        "reproduce: cargo xtask bench vs-alpine {} -n {}",
        names.join(" "),
        args.runs
    );
    Ok(())
}

/// Point 4 of the comparison: our image, Alpine's init with our modules,
/// and what Alpine's own mkinitfs builds for its feature set.
fn sizes(ours: &Path, ours_size: u64, alpine_size: u64) {
    println!("\nimage sizes (gzip cpio):");
    println!(
        "  alpinit default image (all features, busybox): {ours_size} bytes ({})",
        ours.display()
    );
    println!("  Alpine's init with the same modules (glibc libraries for nlplug-findfs): {alpine_size} bytes");
    let mkinitfs_image = paths::qemu_tests_dir()
        .join("images")
        .join("initramfs-mkinitfs.gz");
    match build::init().and_then(|init| mkinitfs::build(&init, &mkinitfs_image)) {
        Ok(built) => match fs::metadata(&built.path) {
            Ok(meta) => println!(
                "  Alpine's mkinitfs, features \"{}\" (Alpine's busybox and apk): {} bytes",
                mkinitfs::FEATURES,
                meta.len()
            ),
            Err(err) => println!("  Alpine's mkinitfs image: {err}"),
        },
        Err(err) => println!("  Alpine's mkinitfs image could not be built: {err:#}"),
    }
}

struct Row {
    name: &'static str,
    ours: Vec<Timeline>,
    alpine: Vec<Timeline>,
    /// The apkovl's partition announced by the kernel -> the new root, s.
    ours_announced: Vec<f64>,
    alpine_announced: Vec<f64>,
    runs: usize,
}

impl Row {
    fn total(list: &[Timeline]) -> Option<f64> {
        median(&mut list.iter().map(Timeline::total).collect::<Vec<_>>())
    }

    fn spans(list: &[Timeline]) -> [Option<f64>; 5] {
        let mut out = [None; 5];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = median(&mut list.iter().map(|t| t.spans()[i]).collect::<Vec<_>>());
        }
        out
    }

    /// The fastest boot: what the host's load disturbed least.
    fn best(list: &[Timeline]) -> Option<f64> {
        list.iter().map(Timeline::total).reduce(f64::min)
    }

    fn print_total(&self) {
        // Three decimals: the targets are ratios like 0.15, and a median
        // rounded to 10 ms cannot tell 0.149 from 0.151.
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}s"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
            _ => "-".to_string(),
        };
        let (a, b) = (Self::total(&self.ours), Self::total(&self.alpine));
        let (best_a, best_b) = (Self::best(&self.ours), Self::best(&self.alpine));
        println!(
            "  {:<14} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}   {}/{} {}/{}",
            self.name,
            show(a),
            show(b),
            ratio(a, b),
            show(best_a),
            show(best_b),
            ratio(best_a, best_b),
            self.ours.len(),
            self.runs,
            self.alpine.len(),
            self.runs
        );
    }

    fn print_announced(&self) {
        let show = |list: &[f64]| {
            median(&mut list.to_vec()).map_or("-".to_string(), |v| format!("{v:.2}s"))
        };
        if self.ours_announced.is_empty() && self.alpine_announced.is_empty() {
            return;
        }
        println!(
            "  {:<14} {:>9} {:>9}",
            self.name,
            show(&self.ours_announced),
            show(&self.alpine_announced)
        );
    }

    fn print_spans(&self) {
        let a = Self::spans(&self.ours);
        let b = Self::spans(&self.alpine);
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let cells: String = a
            .iter()
            .zip(b.iter())
            .map(|(a, b)| format!("{:>19}", format!("{} | {}", show(*a), show(*b))))
            .collect();
        println!("  {:<14} {cells}", self.name);
    }
}

fn bench_scenario(assets: &Assets, scenario: &Scenario, runs: usize) -> Result<Row> {
    let dir = assets.out_dir.join(scenario.name);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let media = Media::build(assets, scenario, &dir)?;
    let mut row = Row {
        name: scenario.name,
        ours: Vec::new(),
        alpine: Vec::new(),
        ours_announced: Vec::new(),
        alpine_announced: Vec::new(),
        runs,
    };
    let mut offsets = Vec::new();
    for round in 1..=runs {
        // Who goes first alternates, so a load change on the host hits both.
        let order = if round % 2 == 1 {
            [Side::Ours, Side::Alpine]
        } else {
            [Side::Alpine, Side::Ours]
        };
        let mut logs = Vec::new();
        for side in order {
            let log_path = dir.join(format!("{}-{round}.log", side.name()));
            let vm = media.vm(assets, side)?;
            let timeout = assets.accel.boot_timeout() + Duration::from_secs(60);
            let stop = |log: &str| log.contains(END) || log.contains("Kernel panic");
            let outcome = qemu::run(&vm, &log_path, timeout, Some(&stop))?;
            logs.push((side, outcome.log, log_path));
        }
        // Ours first: Alpine's boot borrows the clock offset it measures.
        logs.sort_by_key(|(side, _, _)| *side == Side::Alpine);
        for (side, log, path) in logs {
            let parsed = match parse::booted_with_overlay(&log, scenario.name) {
                Err(err) => Err(err),
                Ok(()) if side == Side::Ours => parse::ours(&log).map(|(t, offset)| {
                    offsets.push(offset);
                    t
                }),
                Ok(()) => match offsets.last() {
                    Some(offset) => parse::alpine(&log, *offset),
                    None => Err(anyhow::anyhow!(
                        "no clock offset: none of our boots could be measured yet"
                    )),
                },
            };
            match parsed {
                Ok(t) => {
                    println!(
                        "round {round}: {:<7} {:.3}s  ({})",
                        side.name(),
                        t.total(),
                        path.display()
                    );
                    let announced = scenario
                        .medium
                        .partition()
                        .and_then(|p| parse::announced(&log, p))
                        .map(|at| t.new_root - at);
                    match side {
                        Side::Ours => {
                            row.ours.push(t);
                            row.ours_announced.extend(announced);
                        }
                        Side::Alpine => {
                            row.alpine.push(t);
                            row.alpine_announced.extend(announced);
                        }
                    }
                }
                Err(err) => println!(
                    "round {round}: {:<7} FAILED: {err:#} ({})",
                    side.name(),
                    path.display()
                ),
            }
        }
    }
    if let (Some(lo), Some(hi)) = (
        offsets.iter().copied().reduce(f64::min),
        offsets.iter().copied().reduce(f64::max),
    ) {
        println!("clock offset (monotonic - printk) of our boots: {lo:.3}..{hi:.3} s");
    }
    Ok(row)
}

/// The media of one scenario, the same files for both images (the ISO
/// differs only by the image it carries).
struct Media {
    medium: Medium,
    disk: PathBuf,
    /// The ISOs or TFTP trees, ours then Alpine's.
    boot: Option<[PathBuf; 2]>,
    /// Serves the PXE apkovl while the boots run (stops when dropped).
    _server: Option<FileServer>,
}

impl Media {
    fn build(assets: &Assets, scenario: &Scenario, dir: &Path) -> Result<Media> {
        let init = fs::read(&assets.report_init)
            .with_context(|| format!("reading {}", assets.report_init.display()))?;
        if scenario.medium == Medium::RealApk {
            return Ok(Media {
                medium: scenario.medium,
                disk: real_apk::disk(dir, &assets.images, scenario.name, init)?,
                boot: None,
                _server: None,
            });
        }
        let overlay = media::apkovl(&[
            FileSpec::new("etc/hostname", 0o644, format!("{}\n", scenario.name)),
            FileSpec::new("sbin/init", 0o755, init),
        ])?;
        let mut files = vec![FileSpec::new("host.apkovl.tar.gz", 0o644, overlay)];
        let repository = FileSpec::new("apks/.boot_repository", 0o644, "");
        if scenario.repository && scenario.medium != Medium::IsoUsb {
            files.push(repository.clone());
        }
        let (fs_kind, label, size) = match scenario.medium {
            Medium::Virtio | Medium::RealApk => (Filesystem::Ext4, "VDA", 32),
            Medium::Usb | Medium::IsoUsb | Medium::Pxe => (Filesystem::Fat32, "USB", 64),
        };
        let tree = dir.join("disk.tree");
        media::write_tree(&tree, &files)?;
        let disk = dir.join("disk.img");
        media::disk_image(&disk, fs_kind, label, size, &tree)?;
        let mut server = None;
        let boot = match scenario.medium {
            Medium::Virtio | Medium::Usb | Medium::RealApk => None,
            Medium::IsoUsb => {
                let root = dir.join("iso.tree");
                fs::create_dir_all(&root)
                    .with_context(|| format!("creating {}", root.display()))?;
                if scenario.repository {
                    media::write_tree(&root, &[repository])?;
                }
                Some(per_side(assets, |side, image| {
                    let iso = dir.join(format!("{}.iso", side.name()));
                    media::iso_image(&iso, &root, &assets.vmlinuz, image, CMDLINE)?;
                    Ok(iso)
                })?)
            }
            Medium::Pxe => {
                let www = dir.join("www");
                media::write_tree(
                    &www,
                    &[FileSpec::new(
                        &format!("{PXE_MAC}.apkovl.tar.gz"),
                        0o644,
                        files[0].data.clone(),
                    )],
                )?;
                let running = FileServer::start(&www, &dir.join("requests.log"), None)?;
                let append = format!(
                    "{CMDLINE} ip=dhcp apkovl=http://10.0.2.2:{}/{{MAC}}.apkovl.tar.gz",
                    running.port()
                );
                server = Some(running);
                Some(per_side(assets, |side, image| {
                    let tftp = dir.join(format!("{}.tftp", side.name()));
                    netboot::pxe_tree(&tftp, &assets.vmlinuz, image, &append)?;
                    Ok(tftp)
                })?)
            }
        };
        Ok(Media {
            medium: scenario.medium,
            disk,
            boot,
            _server: server,
        })
    }

    fn vm(&self, assets: &Assets, side: Side) -> Result<Vm> {
        let image = match side {
            Side::Ours => &assets.ours,
            Side::Alpine => &assets.alpine,
        };
        let mut vm = Vm::new(assets.accel);
        match self.medium {
            Medium::Virtio => {
                vm.kernel_boot(&assets.kernel, image, CMDLINE)
                    .virtio_disk(&self.disk);
            }
            Medium::Usb => {
                vm.kernel_boot(&assets.kernel, image, CMDLINE)
                    .usb_stick(&self.disk);
            }
            Medium::RealApk => {
                let images = assets
                    .real_apk
                    .as_ref()
                    .context("the real-apk images were not built")?;
                let image = if side == Side::Ours {
                    &images[0]
                } else {
                    &images[1]
                };
                let cmdline = format!("{CMDLINE} {}", real_apk::INIT_OPTION);
                vm.kernel_boot(&assets.kernel, image, &cmdline)
                    .virtio_disk(&self.disk);
            }
            Medium::IsoUsb | Medium::Pxe => {
                let boot = self
                    .boot
                    .as_ref()
                    .context("the boot media were not built")?;
                let boot = if side == Side::Ours {
                    &boot[0]
                } else {
                    &boot[1]
                };
                if self.medium == Medium::Pxe {
                    vm.pxe_boot(boot, "pxelinux.0", PXE_MAC);
                } else {
                    vm.cdrom_boot(boot).usb_stick(&self.disk);
                }
            }
        }
        Ok(vm)
    }
}

/// MAKE for our image, then for Alpine's.
fn per_side(
    assets: &Assets,
    mut make: impl FnMut(Side, &Path) -> Result<PathBuf>,
) -> Result<[PathBuf; 2]> {
    Ok([
        make(Side::Ours, &assets.ours)?,
        make(Side::Alpine, &assets.alpine)?,
    ])
}

#[cfg(test)]
mod tests;
