//! `cargo xtask test`: the hermetic unit tests, then every QEMU scenario,
//! one line each and a closing `N passed, N failed` line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use alpinit_qemu_tests::qemu::{self, Accel, Arch};
use alpinit_qemu_tests::report;
use alpinit_qemu_tests::scenarios::{self, Assets, ImageKind, Scenario, ScenarioResult, Verdict};
use anyhow::{Context, Result};

use crate::initramfs::{self, Options};
use crate::kernel::{self, Kernel, KernelSpec};
use crate::{alpine_init, build, deps, https_image, mkinitfs, paths};

#[derive(Debug, Default)]
pub struct TestArgs {
    pub unit_only: bool,
    pub qemu_only: bool,
    pub scenarios: Vec<String>,
    /// Use this file as /init instead of building alpinit.
    pub init: Option<PathBuf>,
    /// `--arch`: only this machine's scenarios.
    pub arch: Option<Arch>,
}

impl TestArgs {
    /// The machines whose scenarios run: the one given with `--arch`;
    /// x86_64 alone when scenarios or an init are named without it (they
    /// name x86_64 scenarios and an x86_64 binary); otherwise both.
    pub fn arches(&self) -> Vec<Arch> {
        match self.arch {
            Some(arch) => vec![arch],
            None if !self.scenarios.is_empty() || self.init.is_some() => vec![Arch::X86_64],
            None => Arch::ALL.to_vec(),
        }
    }
}

/// Why ARCH's scenarios cannot run on this host, if they cannot.
fn missing_for(arch: Arch) -> Option<String> {
    let qemu = arch.qemu();
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(qemu).is_file()))
        .unwrap_or(false);
    (!found).then(|| format!("{qemu} is not installed (`cargo xtask deps` installs it)"))
}

pub fn run(args: &TestArgs) -> Result<bool> {
    deps::check()?;
    if !args.qemu_only && !unit_tests()? {
        println!("unit tests failed; QEMU scenarios not run");
        return Ok(false);
    }
    if args.unit_only {
        return Ok(true);
    }
    let (mut passed, mut failed) = (0, 0);
    let mut skipped = Vec::new();
    for arch in args.arches() {
        if let Some(why) = missing_for(arch) {
            if args.arch == Some(arch) {
                anyhow::bail!("cannot run the {arch} scenarios: {why}");
            }
            println!("SKIPPED: the {arch} QEMU scenarios: {why}");
            skipped.push(arch);
            continue;
        }
        let chosen = scenarios::select_for(arch, &args.scenarios)?;
        let assets = prepare(arch, &chosen, args.init.clone())?;
        println!(
            "running {} {arch} QEMU scenario(s) with {} (logs under {})",
            chosen.len(),
            assets.accel.name(),
            assets.out_dir.display()
        );
        for scenario in &chosen {
            let result = scenarios::run(scenario, &assets);
            print_result(arch, &result);
            match result.verdict {
                Verdict::Pass => passed += 1,
                Verdict::Fail(_) => failed += 1,
            }
        }
    }
    let skipped: Vec<&str> = skipped.iter().map(|a| a.name()).collect();
    if skipped.is_empty() {
        println!("{passed} passed, {failed} failed");
    } else {
        println!(
            "{passed} passed, {failed} failed; {} scenarios SKIPPED (see above)",
            skipped.join(", ")
        );
    }
    Ok(failed == 0)
}

fn unit_tests() -> Result<bool> {
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--workspace"])
        .current_dir(paths::workspace_root())
        .status()
        .context("running cargo test --workspace")?;
    Ok(status.success())
}

/// The kernel, images, test programs and accelerator ARCH's scenarios
/// need; aarch64's go under `target/qemu-tests/aarch64/`.
pub fn prepare(arch: Arch, chosen: &[Scenario], init: Option<PathBuf>) -> Result<Assets> {
    let programs = build::test_programs_for(arch)?;
    // The new root runs them on ARCH: a host binary would fail there with
    // only `exec format error` to show for it.
    for program in [&programs.report_init, &programs.fake_apk] {
        crate::elf::check_file(program, arch)?;
    }
    let kernel = kernel::resolve_for(&KernelSpec::Generic, arch)?;
    let out_dir = match arch {
        Arch::X86_64 => paths::qemu_tests_dir(),
        other => paths::qemu_tests_dir().join(other.name()),
    };
    let mut images = BTreeMap::new();
    for kind in chosen.iter().map(|s| s.image) {
        if images.contains_key(&kind) {
            continue;
        }
        let path = build_image(arch, kind, &programs, init.clone(), &out_dir)?;
        images.insert(kind, path);
    }
    let accel = match arch {
        Arch::X86_64 => accel(&kernel, &out_dir),
        Arch::Aarch64 => {
            println!("accelerator: tcg (an aarch64 guest on this host)");
            Accel::Tcg
        }
    };
    Ok(Assets {
        arch,
        kernel: kernel.boot_image().to_path_buf(),
        vmlinuz: kernel.vmlinuz.clone(),
        images,
        report_init: programs.report_init,
        accel,
        out_dir,
    })
}

fn build_image(
    arch: Arch,
    kind: ImageKind,
    programs: &build::TestPrograms,
    init: Option<PathBuf>,
    out_dir: &std::path::Path,
) -> Result<PathBuf> {
    if arch != Arch::X86_64 && !matches!(kind, ImageKind::Standard | ImageKind::RealApk) {
        anyhow::bail!(
            "{kind:?} images are built for x86_64 only (aarch64 builds Standard and RealApk)"
        );
    }
    if kind == ImageKind::Mkinitfs {
        let init = match init {
            Some(path) => path,
            None => build::init()?,
        };
        let built = mkinitfs::build(&init, &out_dir.join("images").join("initramfs-mkinitfs.gz"))?;
        println!(
            "image {kind:?}: {} (Alpine's mkinitfs {}, kernel {}; /sbin/nlplug-findfs: {})",
            built.path.display(),
            mkinitfs::FEATURES,
            built.kernel.release,
            built.nlplug_findfs
        );
        return Ok(built.path);
    }
    if kind == ImageKind::ShellInit {
        let built = alpine_init::shell_init_image(init, &out_dir.join("images"))?;
        println!(
            "image {kind:?}: {} ({} bytes; Alpine's initramfs-init, our init as /sbin/nlplug-findfs)",
            built.path.display(),
            built.size
        );
        return Ok(built.path);
    }
    let mut opts = Options {
        arch,
        init,
        ..Options::default()
    };
    let name = match kind {
        ImageKind::Mkinitfs => unreachable!("built by mkinitfs above"),
        ImageKind::ShellInit => unreachable!("built by alpine_init above"),
        ImageKind::Standard => "initramfs-standard.gz",
        ImageKind::FakeApk => {
            opts.extras
                .push((programs.fake_apk.clone(), "/sbin/apk".to_string()));
            "initramfs-fake-apk.gz"
        }
        ImageKind::FakeApkInit => {
            let inspect = out_dir.join("images").join("fake-apk-inspect");
            std::fs::create_dir_all(out_dir.join("images")).context("creating images/")?;
            std::fs::write(&inspect, scenarios::REJECTED_INSPECT.join("\n") + "\n")
                .with_context(|| format!("writing {}", inspect.display()))?;
            opts.extras.extend([
                (programs.fake_apk.clone(), "/sbin/apk".to_string()),
                (
                    programs.report_init.clone(),
                    "/usr/share/fake-apk/init".to_string(),
                ),
                (inspect, "/usr/share/fake-apk/inspect".to_string()),
            ]);
            "initramfs-fake-apk-init.gz"
        }
        ImageKind::Https => {
            if opts.init.is_none() {
                opts.init = Some(https_image::init()?);
            }
            opts.extras.push((
                https_image::ca_bundle(out_dir)?,
                https_image::CA_BUNDLE.to_string(),
            ));
            "initramfs-https.gz"
        }
        ImageKind::Mactab => {
            let mactab = out_dir.join("images").join("mactab");
            std::fs::create_dir_all(out_dir.join("images")).context("creating images/")?;
            std::fs::write(&mactab, scenarios::MACTAB)
                .with_context(|| format!("writing {}", mactab.display()))?;
            opts.extras.push((mactab, "/etc/mactab".to_string()));
            "initramfs-mactab.gz"
        }
        ImageKind::Assemble => {
            opts.features
                .extend(["lvm", "raid", "aoe", "wireguard", "nbd"].map(String::from));
            let conf = out_dir.join("images").join("wireguard-initrd.conf");
            std::fs::create_dir_all(out_dir.join("images")).context("creating images/")?;
            std::fs::write(&conf, scenarios::WIREGUARD_CONF)
                .with_context(|| format!("writing {}", conf.display()))?;
            // Where Alpine's init looks without a third field
            // (`alpinit_cmdline::DEFAULT_WIREGUARD_CONFIG`).
            opts.extras
                .push((conf, "/etc/wireguard/initrd.conf".to_string()));
            "initramfs-assemble.gz"
        }
        ImageKind::Signed => {
            let key = scenarios::signed_image_key(&out_dir.join("images"))?;
            opts.extras
                .push((key, scenarios::SIGNED_KEY_IN_IMAGE.to_string()));
            "initramfs-signed.gz"
        }
        ImageKind::RealApk => {
            opts.extras
                .extend(alpinit_qemu_tests::alpine_repo::image_files(
                    &out_dir.join("images"),
                    arch,
                )?);
            "initramfs-real-apk.gz"
        }
    };
    opts.output = Some(out_dir.join("images").join(name));
    let image = initramfs::build(&opts)?;
    println!(
        "image {kind:?}: {} ({} bytes, init {} bytes, kernel {})",
        image.path.display(),
        image.size,
        image.init_size,
        image.kernel.release
    );
    Ok(image.path)
}

/// Probed once per run.
pub fn accel(kernel: &Kernel, out_dir: &std::path::Path) -> Accel {
    let accel = qemu::probe_accel(kernel.boot_image(), &out_dir.join("kvm-probe.log"));
    match accel {
        Accel::Tcg => println!("accelerator: tcg (no working KVM)"),
        Accel::Kvm => println!("accelerator: kvm (the probe boot printed a banner)"),
    }
    accel
}

fn print_result(arch: Arch, result: &ScenarioResult) {
    let secs = result.elapsed.as_secs_f64();
    // x86_64 lines read as before; other machines' names carry the arch.
    let name = match arch {
        Arch::X86_64 => result.name.to_string(),
        other => format!("{other}/{}", result.name),
    };
    match &result.verdict {
        Verdict::Pass => println!("PASS {name} ({secs:.1}s)"),
        Verdict::Fail(failures) => {
            println!("FAIL {name} ({secs:.1}s)");
            for failure in failures {
                println!("  - {failure}");
            }
            println!("  last lines of the serial log:");
            print!("{}", report::tail(&result.log, 40));
            println!("  full log: {}", result.log_path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_test_runs_both_machines_and_names_mean_x86_64() {
        assert_eq!(TestArgs::default().arches(), Arch::ALL.to_vec());
        let named = TestArgs {
            scenarios: vec!["virtio-ext4".into()],
            ..TestArgs::default()
        };
        assert_eq!(named.arches(), [Arch::X86_64]);
        let arm = TestArgs {
            arch: Some(Arch::Aarch64),
            scenarios: vec!["virtio-ext4".into()],
            ..TestArgs::default()
        };
        assert_eq!(arm.arches(), [Arch::Aarch64]);
    }
}
