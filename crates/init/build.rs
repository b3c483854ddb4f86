//! Link options for the static init, both size only:
//!
//! * `no-eh-frame.ld` drops the unwind tables. Only for release builds for
//!   musl: the workspace's release profile has panic=abort (build scripts
//!   cannot see the profile's panic strategy; `CARGO_CFG_PANIC` is the
//!   target's default), so a panic runs the hook and aborts and nothing
//!   walks the stack. `ALPINIT_KEEP_EH_FRAME=1` keeps them.
//! * `-z pack-relative-relocs` (DT_RELR) packs the static-pie's relative
//!   relocations (about 75 kB as RELA) into a few kB, the binary staying
//!   position independent. The startup code applies them only from musl
//!   1.2.4 on: on by default with Rust's own musl (1.2.5 since Rust 1.93),
//!   otherwise (a distribution's musl) only with `ALPINIT_RELR=1`;
//!   `ALPINIT_RELR=0` turns it off. A linker without the option ignores it.
//!
//! The options are given as the C compiler driver takes them (`-Wl,...`),
//! or bare when the target links with lld directly (the aarch64 cross
//! build, `xtask/src/cross.rs`: `rust-lld`).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=no-eh-frame.ld");
    println!("cargo:rerun-if-env-changed=ALPINIT_KEEP_EH_FRAME");
    println!("cargo:rerun-if-env-changed=ALPINIT_RELR");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_ENV") != "musl" || var("PROFILE") != "release" {
        return;
    }
    let linker = var("RUSTC_LINKER");
    let direct = linker.ends_with("rust-lld") || linker.ends_with("ld.lld");
    if std::env::var_os("ALPINIT_KEEP_EH_FRAME").is_none() {
        let dir = var("CARGO_MANIFEST_DIR");
        if direct {
            println!("cargo:rustc-link-arg-bins=--script={dir}/no-eh-frame.ld");
        } else {
            println!("cargo:rustc-link-arg-bins=-Wl,-T,{dir}/no-eh-frame.ld");
        }
    }
    let relr = match var("ALPINIT_RELR").as_str() {
        "1" => true,
        "0" => false,
        _ => var("CARGO_CFG_TARGET_VENDOR") == "unknown" && rustc_minor() >= Some(93),
    };
    if relr && direct {
        println!("cargo:rustc-link-arg-bins=-zpack-relative-relocs");
    } else if relr {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The minor version of the compiler building this (`rustc 1.95.0 (...)`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}
