//! `cargo xtask test`: the hermetic unit tests, then every QEMU scenario,
//! one line each and a closing `N passed, N failed` line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use alpinit_qemu_tests::qemu::{self, Accel};
use alpinit_qemu_tests::report;
use alpinit_qemu_tests::scenarios::{self, Assets, ImageKind, Scenario, ScenarioResult, Verdict};
use anyhow::{Context, Result};

use crate::initramfs::{self, Options};
use crate::kernel::{self, Kernel, KernelSpec};
use crate::{build, deps, https_image, mkinitfs, paths};

#[derive(Debug, Default)]
pub struct TestArgs {
    pub unit_only: bool,
    pub qemu_only: bool,
    pub scenarios: Vec<String>,
    /// Use this file as /init instead of building alpinit.
    pub init: Option<PathBuf>,
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
    let chosen = scenarios::select(&args.scenarios)?;
    let assets = prepare(&chosen, args.init.clone())?;
    println!(
        "running {} QEMU scenario(s) with {} (logs under {})",
        chosen.len(),
        assets.accel.name(),
        assets.out_dir.display()
    );
    let (mut passed, mut failed) = (0, 0);
    for scenario in &chosen {
        let result = scenarios::run(scenario, &assets);
        print_result(&result);
        match result.verdict {
            Verdict::Pass => passed += 1,
            Verdict::Fail(_) => failed += 1,
        }
    }
    println!("{passed} passed, {failed} failed");
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

/// The kernel, images, test programs and accelerator the scenarios need.
pub fn prepare(chosen: &[Scenario], init: Option<PathBuf>) -> Result<Assets> {
    let programs = build::test_programs()?;
    let kernel = kernel::resolve(&KernelSpec::Generic)?;
    let out_dir = paths::qemu_tests_dir();
    let mut images = BTreeMap::new();
    for kind in chosen.iter().map(|s| s.image) {
        if images.contains_key(&kind) {
            continue;
        }
        let path = build_image(kind, &programs, init.clone(), &out_dir)?;
        images.insert(kind, path);
    }
    let accel = accel(&kernel, &out_dir);
    Ok(Assets {
        kernel: kernel.boot_image().to_path_buf(),
        vmlinuz: kernel.vmlinuz.clone(),
        images,
        report_init: programs.report_init,
        accel,
        out_dir,
    })
}

fn build_image(
    kind: ImageKind,
    programs: &build::TestPrograms,
    init: Option<PathBuf>,
    out_dir: &std::path::Path,
) -> Result<PathBuf> {
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
    let mut opts = Options {
        init,
        ..Options::default()
    };
    let name = match kind {
        ImageKind::Mkinitfs => unreachable!("built by mkinitfs above"),
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
                )?);
            "initramfs-real-apk.gz"
        }
    };
    opts.output = Some(out_dir.join("images").join(name));
    let image = initramfs::build(&opts)?;
    println!(
        "image {kind:?}: {} ({} bytes, kernel {})",
        image.path.display(),
        image.size,
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

fn print_result(result: &ScenarioResult) {
    let secs = result.elapsed.as_secs_f64();
    match &result.verdict {
        Verdict::Pass => println!("PASS {} ({secs:.1}s)", result.name),
        Verdict::Fail(failures) => {
            println!("FAIL {} ({secs:.1}s)", result.name);
            for failure in failures {
                println!("  - {failure}");
            }
            println!("  last lines of the serial log:");
            print!("{}", report::tail(&result.log, 40));
            println!("  full log: {}", result.log_path.display());
        }
    }
}
