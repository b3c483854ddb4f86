//! Building this workspace's static musl binaries (the init and the test
//! programs the overlays carry).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::kernel::Arch;
use crate::process::run;
use crate::{cross, paths};

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // Into the workspace's own target dir, whatever the caller's is, so
    // users find the init where the docs say.
    cmd.env_remove("CARGO_TARGET_DIR")
        .current_dir(paths::workspace_root());
    cmd
}

/// `cargo build --release --quiet -p PACKAGE` into the workspace's target
/// dir ([`cargo`]); the caller adds what to build and where.
pub(crate) fn cargo_release(package: &str) -> Command {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--quiet", "-p", package]);
    cmd
}

/// `cargo build --release -p PACKAGE --bin B... --target ARCH-musl`
/// (cross-built for aarch64, see `cross`); returns the paths of the binaries.
pub fn musl_bins_for(package: &str, bins: &[&str], arch: Arch) -> Result<Vec<PathBuf>> {
    let mut cmd = cargo_release(package);
    cross::apply(&mut cmd, arch);
    cmd.arg("--target").arg(arch.musl_target());
    for bin in bins {
        cmd.args(["--bin", bin]);
    }
    run(&mut cmd)?;
    let mut out = Vec::new();
    for bin in bins {
        let path = paths::musl_binary_for(bin, arch);
        if !path.is_file() {
            bail!("cargo built {package} but {} is missing", path.display());
        }
        out.push(path);
    }
    Ok(out)
}

/// `cargo build --release -p PACKAGE --example EXAMPLE --target x86_64-musl`, built
/// with the init's release profile (`Cargo.toml`); returns the binary's path.
pub fn musl_example(package: &str, example: &str) -> Result<PathBuf> {
    let mut cmd = cargo_release(package);
    cmd.args(["--example", example, "--target", paths::MUSL_TARGET]);
    run(&mut cmd)?;
    let path = paths::target_dir()
        .join(paths::MUSL_TARGET)
        .join("release/examples")
        .join(example);
    if !path.is_file() {
        bail!("cargo built {package} but {} is missing", path.display());
    }
    Ok(path)
}

/// Which init: the default one fetches `https://` (the `https` feature, on by
/// default), the small one (`--no-tls`) only `http://`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    With,
    Without,
}

impl Tls {
    pub fn label(self) -> &'static str {
        match self {
            Tls::With => "with TLS",
            Tls::Without => "without TLS",
        }
    }
}

/// The x86_64 init for images, with TLS. See [`init_with`].
pub fn init() -> Result<PathBuf> {
    init_with(Arch::X86_64, Tls::With)
}

/// [`init`] for ARCH.
pub fn init_for(arch: Arch) -> Result<PathBuf> {
    init_with(arch, Tls::With)
}

/// The init for images. Where a nightly toolchain with `rust-src` and the
/// musl target is installed, std is rebuilt with the init for size
/// (`-Z build-std`, `optimize_for_size`, panic=abort so the panic hook still
/// runs): the prebuilt std of stable carries the backtrace machinery.
/// Otherwise, or when that build fails, or with `ALPINIT_STABLE_INIT=1`, the
/// stable build, which is what a distribution package builds. Each kind has
/// a target dir of its own so building one never replaces the other.
///
/// An init with TLS above [`TLS_INIT_BUDGET`] is an error, whichever
/// toolchain built it.
pub fn init_with(arch: Arch, tls: Tls) -> Result<PathBuf> {
    let path = build_init(arch, tls)?;
    if tls == Tls::With {
        let size = std::fs::metadata(&path)
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        check_budget(size, &path)?;
    }
    Ok(path)
}

/// The most a stripped init with TLS may weigh: 2 MiB (issue 12; README.md,
/// "Measured").
pub const TLS_INIT_BUDGET: u64 = 2 * 1024 * 1024;

/// Refuses an init with TLS above [`TLS_INIT_BUDGET`], naming its size and path.
pub fn check_budget(size: u64, path: &Path) -> Result<()> {
    if size > TLS_INIT_BUDGET {
        bail!(
            "the init with TLS is {size} bytes stripped, over its budget of {TLS_INIT_BUDGET} \
             bytes (2 MiB) by {} bytes: {}",
            size - TLS_INIT_BUDGET,
            path.display()
        );
    }
    Ok(())
}

fn build_init(arch: Arch, tls: Tls) -> Result<PathBuf> {
    if std::env::var_os("ALPINIT_STABLE_INIT").is_none() && nightly_has_build_std(arch) {
        match small_init(arch, tls) {
            Ok(path) => return Ok(path),
            Err(err) => {
                eprintln!("note: the size-optimised init did not build ({err:#}); using stable")
            }
        }
    }
    stable_init(arch, tls)
}

fn stable_init(arch: Arch, tls: Tls) -> Result<PathBuf> {
    if tls == Tls::With {
        let mut bins = musl_bins_for("alpinit", &["alpinit"], arch)?;
        return bins.pop().ok_or_else(|| anyhow::anyhow!("no init binary"));
    }
    let dir = paths::target_dir().join("alpinit-notls");
    let mut cmd = cargo_release("alpinit");
    cross::apply(&mut cmd, arch);
    cmd.args(["--bin", "alpinit", "--no-default-features"])
        .arg("--target")
        .arg(arch.musl_target())
        .arg("--target-dir")
        .arg(&dir);
    run(&mut cmd)?;
    built(dir.join(arch.musl_target()).join("release/alpinit"))
}

fn built(path: PathBuf) -> Result<PathBuf> {
    if !path.is_file() {
        bail!("cargo built alpinit but {} is missing", path.display());
    }
    Ok(path)
}

/// Where [`init_with`] leaves each kind of x86_64 init: (nightly, stable).
pub fn init_paths(tls: Tls) -> [PathBuf; 2] {
    let arch = Arch::X86_64;
    let release = |dir: PathBuf| dir.join(arch.musl_target()).join("release/alpinit");
    match tls {
        Tls::With => [
            release(small_target_dir(tls)),
            paths::musl_binary_for("alpinit", arch),
        ],
        Tls::Without => [
            release(small_target_dir(tls)),
            release(paths::target_dir().join("alpinit-notls")),
        ],
    }
}

fn small_target_dir(tls: Tls) -> PathBuf {
    match tls {
        Tls::With => paths::target_dir().join("alpinit-small"),
        Tls::Without => paths::target_dir().join("alpinit-small-notls"),
    }
}

fn nightly_has_build_std(arch: Arch) -> bool {
    let Ok(out) = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
    else {
        return false;
    };
    if !out.status.success() {
        return false;
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let rustlib = sysroot.join("lib/rustlib");
    rustlib.join("src/rust/library/std").is_dir() && rustlib.join(arch.musl_target()).is_dir()
}

fn small_init(arch: Arch, tls: Tls) -> Result<PathBuf> {
    let dir = small_target_dir(tls);
    let mut cmd = Command::new("rustup");
    cross::apply(&mut cmd, arch);
    cmd.env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .current_dir(paths::workspace_root())
        .args(["run", "nightly", "cargo", "build", "--release", "--quiet"])
        .args(["-p", "alpinit", "--bin", "alpinit", "--target"])
        .arg(arch.musl_target())
        .args(["-Z", "build-std=std,panic_abort"])
        .args(["-Z", "build-std-features=optimize_for_size"])
        .arg("--target-dir")
        .arg(&dir);
    if tls == Tls::Without {
        cmd.arg("--no-default-features");
    }
    run(&mut cmd)?;
    built(dir.join(arch.musl_target()).join("release/alpinit"))
}

pub struct TestPrograms {
    pub report_init: PathBuf,
    pub fake_apk: PathBuf,
}

pub fn test_programs_for(arch: Arch) -> Result<TestPrograms> {
    // luks-oracle is found beside report-init by the luks-oracle scenario.
    let bins = musl_bins_for(
        "alpinit-qemu-tests",
        &["report-init", "fake-apk", "luks-oracle"],
        arch,
    )?;
    match bins.as_slice() {
        [report_init, fake_apk, _luks_oracle] => Ok(TestPrograms {
            report_init: report_init.clone(),
            fake_apk: fake_apk.clone(),
        }),
        _ => bail!("expected three test programs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_init_with_tls_over_2_mib_is_refused_with_its_size_and_path() {
        let path = Path::new("target/x/alpinit");
        assert!(check_budget(2_000_000, path).is_ok());
        assert!(check_budget(TLS_INIT_BUDGET, path).is_ok());
        let err = check_budget(2_220_864, path).unwrap_err().to_string();
        assert!(err.contains("2220864 bytes"), "{err}");
        assert!(err.contains("by 123712 bytes"), "{err}");
        assert!(err.contains("target/x/alpinit"), "{err}");
    }
}
