//! Cross-building the static aarch64 binaries on the x86_64 host: rustc's
//! own `rust-lld` links them against the self-contained musl of the
//! `aarch64-unknown-linux-musl` rust-std (no aarch64 C toolchain needed for
//! Rust code), and Debian's `gcc-aarch64-linux-gnu` compiles the C and
//! assembly of `ring` (the https feature, the test server's crates).

use std::process::Command;

use crate::kernel::Arch;

/// The cross C compiler package `cargo xtask deps` installs.
pub const CROSS_GCC_PACKAGE: &str = "gcc-aarch64-linux-gnu";
pub const CROSS_CC: &str = "aarch64-linux-gnu-gcc";

/// The environment a cargo build for ARCH needs on this host; empty for
/// the host's own architecture.
pub fn env(arch: Arch) -> Vec<(&'static str, &'static str)> {
    match arch {
        Arch::X86_64 => Vec::new(),
        Arch::Aarch64 => vec![
            ("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld"),
            ("CC_aarch64_unknown_linux_musl", CROSS_CC),
            ("AR_aarch64_unknown_linux_musl", "aarch64-linux-gnu-ar"),
        ],
    }
}

/// Sets [`env`] on CMD, leaving what the caller's environment already
/// chose (another linker or compiler) alone.
pub fn apply(cmd: &mut Command, arch: Arch) {
    for (key, value) in env(arch) {
        if std::env::var_os(key).is_none() {
            cmd.env(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aarch64_builds_link_with_rust_lld_and_compile_c_with_the_cross_gcc() {
        assert!(env(Arch::X86_64).is_empty());
        let vars = env(Arch::Aarch64);
        let get = |k: &str| vars.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        // The variable names carry the triple: a typo would silently fall
        // back to the host's cc.
        let triple = Arch::Aarch64.musl_target();
        let upper = triple.to_uppercase().replace('-', "_");
        let lower = triple.replace('-', "_");
        assert_eq!(
            get(&format!("CARGO_TARGET_{upper}_LINKER")),
            Some("rust-lld")
        );
        assert_eq!(get(&format!("CC_{lower}")), Some(CROSS_CC));
        assert!(CROSS_CC.starts_with(CROSS_GCC_PACKAGE.trim_start_matches("gcc-")));
    }
}
