//! What the https test image adds to the standard one: the init built with
//! its `https` feature, and a CA bundle holding the harness's test CA.

use std::path::{Path, PathBuf};

use alpinit_qemu_tests::test_ca::{self, TestCa};
use anyhow::{bail, Result};

use crate::paths;
use crate::process::run;

/// Where the init expects its CA bundle.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A target dir of its own, so the feature build never replaces the
/// default init at `target/<musl>/release/alpinit` that other commands use.
fn target_dir() -> PathBuf {
    paths::target_dir().join("alpinit-https")
}

/// Builds the init with `--features https` (release, musl, stripped by the
/// release profile) and returns its path.
pub fn init() -> Result<PathBuf> {
    let mut cmd = crate::build::cargo_release("alpinit");
    cmd.args(["--bin", "alpinit", "--features", "https", "--target"])
        .arg(paths::MUSL_TARGET)
        .arg("--target-dir")
        .arg(target_dir());
    run(&mut cmd)?;
    let path = target_dir()
        .join(paths::MUSL_TARGET)
        .join("release")
        .join("alpinit");
    if !path.is_file() {
        bail!(
            "cargo built alpinit with https but {} is missing",
            path.display()
        );
    }
    Ok(path)
}

/// A fresh test CA for this run, saved where the scenarios load it;
/// returns the certificate file to install as [`CA_BUNDLE`].
pub fn ca_bundle(out_dir: &Path) -> Result<PathBuf> {
    let ca = TestCa::generate(test_ca::IMAGE_CA_NAME)?;
    ca.save(&test_ca::ca_dir(out_dir))
}
