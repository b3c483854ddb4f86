//! Building this workspace's static musl binaries (the init and the test
//! programs the overlays carry).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};

use crate::paths;
use crate::process::run;

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // Into the workspace's own target dir, whatever the caller's is, so
    // users find the init where the docs say.
    cmd.env_remove("CARGO_TARGET_DIR")
        .current_dir(paths::workspace_root());
    cmd
}

/// `cargo build --release -p PACKAGE --bin B... --target musl`; returns the
/// paths of the binaries.
pub fn musl_bins(package: &str, bins: &[&str]) -> Result<Vec<PathBuf>> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--quiet", "-p", package, "--target"])
        .arg(paths::MUSL_TARGET);
    for bin in bins {
        cmd.args(["--bin", bin]);
    }
    run(&mut cmd)?;
    let mut out = Vec::new();
    for bin in bins {
        let path = paths::musl_binary(bin);
        if !path.is_file() {
            bail!("cargo built {package} but {} is missing", path.display());
        }
        out.push(path);
    }
    Ok(out)
}

pub fn init() -> Result<PathBuf> {
    let mut bins = musl_bins("alpinit", &["alpinit"])?;
    bins.pop().ok_or_else(|| anyhow::anyhow!("no init binary"))
}

pub struct TestPrograms {
    pub report_init: PathBuf,
    pub fake_apk: PathBuf,
}

pub fn test_programs() -> Result<TestPrograms> {
    let bins = musl_bins("alpinit-qemu-tests", &["report-init", "fake-apk"])?;
    match bins.as_slice() {
        [report_init, fake_apk] => Ok(TestPrograms {
            report_init: report_init.clone(),
            fake_apk: fake_apk.clone(),
        }),
        _ => bail!("expected two test programs"),
    }
}
