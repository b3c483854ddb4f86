//! `cargo xtask bench root [-n N]`: root mode against Debian 12's
//! initramfs-tools, dracut and tiny-initramfs. The same ext4 root disk on
//! virtio, the same kernel and QEMU command line; each image boots it in
//! turn (the order rotates every round, so a change of load on the host
//! hits every image), and the table gives medians of `Run /init` → the
//! root's `/sbin/init` (how that is timed: `root_parse.rs`; how the peers'
//! images are made: `root_peers.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alpinit_qemu_tests::media::{self, FileSpec, Filesystem};
use alpinit_qemu_tests::qemu::{self, Accel, Vm};
use alpinit_qemu_tests::report::END;
use anyhow::{bail, Context, Result};

use crate::initramfs::{self, Options};
use crate::kernel::{self, KernelSpec};
use crate::{build, deps, paths, suite};

#[path = "root_parse.rs"]
pub(crate) mod parse;
#[path = "root_peers.rs"]
mod peers;
#[path = "root_luks.rs"]
mod root_luks;
#[cfg(test)]
#[path = "root_tests.rs"]
mod tests;

use parse::{Column, Target};
use peers::Peer;

/// Our image with only what the ext4 root on virtio needs and the VM's
/// modules named in its `/etc/modules`, the like-for-like of
/// tiny-initramfs (which is told them when it is built).
const MIN_NAME: &str = "alpinit-min";
const MIN_FEATURES: &[&str] = &["base", "virtio", "ext4"];

/// The QEMU suite's console and panic behaviour, then the root.
const CMDLINE: &str = "console=ttyS0 panic=-1 root=/dev/vda1";
/// The root's hostname: the report proves the boot reached this disk.
const HOSTNAME: &str = "alpinit-bench-root";
/// Console lines after which a boot will not reach the root: stop at once
/// instead of waiting for the timeout.
const GAVE_UP: &[&str] = &[
    "Kernel panic",
    END,
    "Gave up waiting for root",
    "ALERT!",
    "Entering emergency mode",
    "dracut Warning: Could not boot",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// ext4 on the first partition of a virtio disk.
    Ext4,
    /// The same ext4 inside LUKS2 on the whole virtio disk, unlocked by a
    /// key file in each image.
    Luks2,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Ext4 => "ext4",
            Variant::Luks2 => "luks2",
        }
    }

    /// What the root's `/` may be mounted from.
    fn sources(self) -> &'static [&'static str] {
        match self {
            Variant::Ext4 => &["/dev/vda1"],
            Variant::Luks2 => &["/dev/dm-", "/dev/mapper/"],
        }
    }
}

struct Args {
    runs: usize,
    variants: Vec<Variant>,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut runs = 5;
    let mut variants = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-n" => runs = crate::bench::runs_value(&mut iter, arg)?,
            "ext4" => variants.push(Variant::Ext4),
            "luks2" => variants.push(Variant::Luks2),
            other => bail!("unknown bench root argument {other:?} (ext4, luks2, -n N)"),
        }
    }
    if variants.is_empty() {
        variants = vec![Variant::Ext4, Variant::Luks2];
    }
    Ok(Args { runs, variants })
}

/// One image booted in the benchmark.
struct Side {
    name: String,
    image: PathBuf,
    /// None for alpinit, which measures the clock offset itself.
    peer: Option<Peer>,
    /// The kernel command line.
    cmdline: String,
}

pub fn run(args: &[String]) -> Result<()> {
    let args = parse_args(args)?;
    deps::check()?;
    let programs = build::test_programs_for(crate::kernel::Arch::X86_64)?;
    let kernel = kernel::resolve(&KernelSpec::Generic)?;
    let out_dir = paths::qemu_tests_dir().join("bench-root");
    let accel = suite::accel(&kernel, &paths::qemu_tests_dir());
    let mut tables = Vec::new();
    for variant in &args.variants {
        let dir = out_dir.join(variant.name());
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        println!("\n== {} root", variant.name());
        let (disk, sides) = match variant {
            Variant::Ext4 => (
                root_disk(&programs.report_init, &dir)?,
                sides(&kernel, &dir, None)?,
            ),
            Variant::Luks2 => {
                let (disk, luks) = root_luks::disk(&programs.report_init, &dir)?;
                (disk, sides(&kernel, &dir, Some(&luks))?)
            }
        };
        let boot = |side: &Side, log: &Path| -> Result<String> {
            let mut vm = Vm::new(accel);
            vm.kernel_boot(kernel.boot_image(), &side.image, &side.cmdline)
                .virtio_disk(&disk);
            boot_once(&vm, accel, log)
        };
        let columns = rounds(&sides, args.runs, &dir, *variant, boot)?;
        let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let title = format!(
            "{} root on virtio, `Run /init` -> the root's /sbin/init (TCG, -smp 1, kernel {}), {} round(s), load average after: {}",
            variant.name(),
            kernel.release,
            args.runs,
            load.trim()
        );
        let (table, min_table) = tables_of(&title, columns);
        println!("\n{table}");
        if let Some(min) = &min_table {
            println!("\n{min}");
        }
        if *variant == Variant::Luks2 {
            let theirs = cryptsetup_unlocks(&sides, args.runs, &dir, |side, log| {
                let mut vm = Vm::new(accel);
                vm.kernel_boot(
                    kernel.boot_image(),
                    &side.image,
                    // Without `panic=`: initramfs-tools' break would reboot.
                    &format!("{} break=mount", side.cmdline.replace("panic=-1 ", "")),
                )
                .virtio_disk(&disk)
                .type_after(root_luks::ITOOLS_PROMPT, root_luks::TEST_PASSPHRASE);
                let timeout = accel.boot_timeout() + Duration::from_secs(60);
                let stop = |text: &str| {
                    text.contains(root_luks::CRYPTSETUP_END) || text.contains("Kernel panic")
                };
                Ok(qemu::run(&vm, log, timeout, Some(&stop))?.log)
            })?;
            root_luks::print_unlock(&dir, args.runs, theirs);
        }
        tables.push(table);
        tables.extend(min_table);
    }
    if tables.len() > 1 {
        println!("\n{}", tables.join("\n"));
    }
    let names: Vec<&str> = args.variants.iter().map(|v| v.name()).collect();
    println!(
        "reproduce: cargo xtask bench root {} -n {}",
        names.join(" "),
        args.runs
    );
    Ok(())
}

/// alpinit's image and each peer's, for the variant (LUKS: with the key).
fn sides(kernel: &kernel::Kernel, dir: &Path, luks: Option<&peers::Luks>) -> Result<Vec<Side>> {
    let mut extras = Vec::new();
    let mut ours_cmdline = CMDLINE.to_string();
    if let Some(luks) = luks {
        extras.push((luks.key.clone(), root_luks::OUR_KEY.to_string()));
        ours_cmdline = format!("{} {}", root_luks::CMDLINE, root_luks::OURS);
    }
    let ours = initramfs::build(&Options {
        output: Some(dir.join("initramfs-alpinit.gz")),
        extras,
        ..Options::default()
    })?;
    println!("alpinit: {} ({} bytes)", ours.path.display(), ours.size);
    let mut sides = vec![Side {
        name: "alpinit".into(),
        image: ours.path.clone(),
        peer: None,
        cmdline: ours_cmdline.clone(),
    }];
    if luks.is_none() {
        // tiny-initramfs is told the VM's modules (root_peers.rs): its
        // like-for-like is our image with only the features this root
        // needs, as mkinitfs.conf's `features=` would give, and the same
        // modules named in its /etc/modules (which Alpine's init loads
        // before it looks for the root, as ours does).
        let etc_modules = dir.join("alpinit-min.modules");
        let text: String = peers::VM_MODULES.iter().map(|m| format!("{m}\n")).collect();
        fs::write(&etc_modules, text)
            .with_context(|| format!("writing {}", etc_modules.display()))?;
        let min = initramfs::build(&Options {
            output: Some(dir.join("initramfs-alpinit-min.gz")),
            features: MIN_FEATURES.iter().map(|f| f.to_string()).collect(),
            extras: vec![(etc_modules, "/etc/modules".to_string())],
            ..Options::default()
        })?;
        println!(
            "{MIN_NAME} (features {}, /etc/modules {}): {} ({} bytes)",
            MIN_FEATURES.join(","),
            peers::VM_MODULES.join(" "),
            min.path.display(),
            min.size
        );
        sides.push(Side {
            name: MIN_NAME.into(),
            image: min.path.clone(),
            peer: None,
            cmdline: ours_cmdline,
        });
    }
    let peers: Vec<Peer> = Peer::ALL
        .into_iter()
        .filter(|p| luks.is_none() || p.has_luks())
        .collect();
    if luks.is_some() {
        println!("tiny-initramfs: left out, it has no LUKS support");
    }
    for image in peers::images(kernel, &peers, luks)? {
        println!(
            "{}: {} ({} bytes, {})",
            image.peer.name(),
            image.path.display(),
            image.size,
            image.version
        );
        let cmdline = match luks {
            None => CMDLINE.to_string(),
            Some(luks) => format!("{} {}", root_luks::CMDLINE, image.peer.luks_cmdline(luks))
                .trim_end()
                .to_string(),
        };
        sides.push(Side {
            name: image.peer.name().into(),
            image: image.path.clone(),
            peer: Some(image.peer),
            cmdline,
        });
    }
    Ok(sides)
}

/// The tables of one variant: our default image against every peer
/// (tiny-initramfs without a target there), then, when the variant has
/// it, our minimal image against tiny-initramfs, the one held to "no
/// slower".
fn tables_of(title: &str, mut columns: Vec<Column>) -> (String, Option<String>) {
    let min = columns
        .iter()
        .position(|c| c.name == MIN_NAME)
        .map(|i| columns.remove(i));
    let tiny = columns
        .iter()
        .find(|c| c.name == Peer::TinyInitramfs.name())
        .cloned();
    let min_table = match (min, tiny) {
        (Some(min), Some(tiny)) => Some(parse::table(
            &format!(
                "{title}\nthe same, {MIN_NAME} (features {}, /etc/modules naming {}) against tiny-initramfs",
                MIN_FEATURES.join(","),
                peers::VM_MODULES.join(" ")
            ),
            &min,
            &[tiny],
        )),
        _ => None,
    };
    if min_table.is_some() {
        for c in columns
            .iter_mut()
            .filter(|c| c.name == Peer::TinyInitramfs.name())
        {
            c.target = None;
        }
    }
    (parse::table(title, &columns[0], &columns[1..]), min_table)
}

/// The target each peer is held to (issue 10): no slower than
/// tiny-initramfs, at most 0.3x initramfs-tools and dracut.
pub fn target(peer: Peer) -> Target {
    match peer {
        Peer::TinyInitramfs => Target { max_ratio: 1.0 },
        Peer::InitramfsTools | Peer::Dracut => Target { max_ratio: 0.3 },
    }
}

fn boot_once(vm: &Vm, accel: Accel, log: &Path) -> Result<String> {
    let timeout = accel.boot_timeout() + Duration::from_secs(60);
    let stop = |text: &str| GAVE_UP.iter().any(|s| text.contains(s));
    Ok(qemu::run(vm, log, timeout, Some(&stop))?.log)
}

/// RUNS rounds of every side booting once, the order rotating each round;
/// a column per side, in the order of SIDES.
fn rounds(
    sides: &[Side],
    runs: usize,
    dir: &Path,
    variant: Variant,
    boot: impl Fn(&Side, &Path) -> Result<String>,
) -> Result<Vec<Column>> {
    let mut columns: Vec<Column> = sides
        .iter()
        .map(|s| Column {
            name: s.name.clone(),
            secs: Vec::new(),
            runs,
            target: s.peer.map(target),
        })
        .collect();
    let mut offsets: Vec<f64> = Vec::new();
    for round in 1..=runs {
        let mut logs = Vec::new();
        for k in 0..sides.len() {
            let index = (k + round - 1) % sides.len();
            let side = &sides[index];
            let path = dir.join(format!("{}-{round}.log", side.name));
            logs.push((index, boot(side, &path)?, path));
        }
        // Ours first: the peers of the round borrow its clock offset.
        logs.sort_by_key(|(index, _, _)| sides[*index].peer.is_some());
        let mut round_offset = None;
        for (index, log, path) in logs {
            let side = &sides[index];
            let measured = parse::booted_root(&log, HOSTNAME, variant.sources()).and_then(|()| {
                match side.peer {
                    None => parse::ours(&log).map(|(secs, offset)| {
                        round_offset = Some(offset);
                        offsets.push(offset);
                        secs
                    }),
                    Some(_) => match round_offset.or(offsets.last().copied()) {
                        Some(offset) => parse::to_new_root(&log, offset),
                        None => bail!("no clock offset: none of our boots could be measured yet"),
                    },
                }
            });
            match measured {
                Ok(secs) => {
                    println!(
                        "round {round}: {:<16} {secs:.3}s  ({})",
                        side.name,
                        path.display()
                    );
                    columns[index].secs.push(secs);
                }
                Err(err) => println!(
                    "round {round}: {:<16} FAILED: {err:#} ({})",
                    side.name,
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
    Ok(columns)
}

/// cryptsetup's own unlock of the benchmark's header, RUNS times: the
/// initramfs-tools image stopped before it mounts the root (`break=mount`:
/// its shell, with cryptsetup, the key file and the disk), where
/// `cryptsetup open --test-passphrase` (key derivation and key slot, no
/// mapping) is typed between two `/dev/kmsg` marks.
fn cryptsetup_unlocks(
    sides: &[Side],
    runs: usize,
    dir: &Path,
    boot: impl Fn(&Side, &Path) -> Result<String>,
) -> Result<Vec<f64>> {
    let Some(side) = sides.iter().find(|s| s.peer == Some(Peer::InitramfsTools)) else {
        return Ok(Vec::new());
    };
    let mut spans = Vec::new();
    for round in 1..=runs {
        let path = dir.join(format!("cryptsetup-{round}.log"));
        let log = boot(side, &path)?;
        match parse::span(&log, root_luks::CRYPTSETUP_START, root_luks::CRYPTSETUP_END) {
            Ok(secs) => {
                println!(
                    "cryptsetup --test-passphrase {round}: {secs:.3}s ({})",
                    path.display()
                );
                spans.push(secs);
            }
            Err(err) => println!(
                "cryptsetup --test-passphrase {round}: FAILED: {err:#} ({})",
                path.display()
            ),
        }
    }
    Ok(spans)
}

/// The installed root every image boots: report-init as /sbin/init, the
/// API mount points, `/run` (initramfs-tools moves its /run there) and an
/// os-release (systemd's switch-root refuses a root without one).
fn root_files(report_init: &Path, device: &str) -> Result<Vec<FileSpec>> {
    let init =
        fs::read(report_init).with_context(|| format!("reading {}", report_init.display()))?;
    Ok(vec![
        FileSpec::new("etc/hostname", 0o644, format!("{HOSTNAME}\n")),
        FileSpec::new("sbin/init", 0o755, init),
        FileSpec::new(
            "etc/os-release",
            0o644,
            "NAME=alpinit-bench\nID=alpinit-bench\n",
        ),
        FileSpec::new("etc/fstab", 0o644, format!("{device} / ext4 ro 0 0\n")),
        FileSpec::new("proc/.keep", 0o644, ""),
        FileSpec::new("sys/.keep", 0o644, ""),
        FileSpec::new("dev/.keep", 0o644, ""),
        FileSpec::new("run/.keep", 0o644, ""),
        FileSpec::new("tmp/.keep", 0o644, ""),
    ])
}

fn root_disk(report_init: &Path, dir: &Path) -> Result<PathBuf> {
    let tree = dir.join("root.tree");
    media::write_tree(&tree, &root_files(report_init, "/dev/vda1")?)?;
    let disk = dir.join("root.img");
    media::disk_image(&disk, Filesystem::Ext4, "ROOT", 32, &tree)?;
    Ok(disk)
}
