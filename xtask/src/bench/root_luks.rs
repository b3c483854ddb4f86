//! The LUKS2 variant of `cargo xtask bench root`: the same root inside
//! LUKS2 on the whole virtio disk, made on the host by `cryptsetup
//! reencrypt --encrypt` (no device-mapper needed, as
//! `qemu-tests/src/scenarios/luks.rs` does), unlocked by a key file in
//! every image. The volume's UUID and key are fixed so that the peers'
//! cached images keep matching it; the key is a benchmark constant, not a
//! secret.
//!
//! Key derivation is Argon2id (64 MiB, 4 passes, 1 lane): the KDF of a
//! LUKS2 header as cryptsetup makes it by default, with a cost fixed so
//! every image does the same work (cryptsetup's default benchmarks the
//! host and would give the VM seconds of TCG time per try).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use alpinit_qemu_tests::media;
use anyhow::{bail, Context, Result};

use super::parse;
use super::peers::Luks;

/// Every image: the mapping is the root.
pub const CMDLINE: &str = "console=ttyS0 panic=-1 root=/dev/mapper/root";
/// Ours: the volume, the mapping's name, the key file in the image.
pub const OURS: &str = "cryptroot=/dev/vda cryptdm=root cryptkey";
/// Where our image has the key (bare `cryptkey` reads it).
pub const OUR_KEY: &str = "/crypto_keyfile.bin";
const UUID: &str = "6c1b2f4e-9a7d-4c3e-8b21-5f0d9e7a1c42";
const KEY: &[u8; 64] = b"alpinit bench root: a fixed benchmark key, not a secret. 0123456";
/// dm_mod announcing itself: the first device-mapper work of any image.
pub const DM_LOADED: &str = "device-mapper: ioctl:";
/// The root mounted from the mapping.
pub const DM_MOUNTED: &str = "EXT4-fs (dm-0): mounted filesystem";
/// Ours: the key slot opened.
pub const OURS_UNLOCKED: &str = "unlocked (key slot";
/// initramfs-tools' shell after `break=mount`.
pub const ITOOLS_PROMPT: &str = "(initramfs) ";
/// Kernel lines around cryptsetup's unlock in that shell.
pub const CRYPTSETUP_START: &str = "bench-cryptsetup-start";
pub const CRYPTSETUP_END: &str = "bench-cryptsetup-end 0";
/// Typed into that shell: the marks go through /dev/kmsg so they carry the
/// printk clock the boots are timed on; the key file is where
/// cryptsetup-initramfs puts it.
pub const TEST_PASSPHRASE: &str = "echo '<5>bench-cryptsetup-start' > /dev/kmsg; \
    cryptsetup open --test-passphrase --key-file /cryptroot/keyfiles/root.key /dev/vda; \
    echo \"<5>bench-cryptsetup-end $?\" > /dev/kmsg\n";

/// The LUKS2 disk holding the benchmark root, and what the images need
/// to open it.
pub fn disk(report_init: &Path, dir: &Path) -> Result<(PathBuf, Luks)> {
    let tree = dir.join("root.tree");
    media::write_tree(&tree, &super::root_files(report_init, "/dev/mapper/root")?)?;
    let img = dir.join("luks.img");
    let _ = fs::remove_file(&img);
    tool(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "ROOT", "-d"])
            .arg(&tree)
            .arg(&img)
            .arg("24M"),
    )?;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .with_context(|| format!("opening {}", img.display()))?;
    f.set_len(32 << 20)
        .with_context(|| format!("sizing {}", img.display()))?;
    drop(f);
    let key = dir.join("root.key");
    fs::write(&key, KEY).with_context(|| format!("writing {}", key.display()))?;
    tool(
        Command::new("cryptsetup")
            .args(["reencrypt", "--encrypt", "--type", "luks2", "--batch-mode"])
            .args(["--reduce-device-size", "8M", "--uuid", UUID])
            .args(["--cipher", "aes-xts-plain64", "--key-size", "512"])
            .args(["--pbkdf", "argon2id", "--pbkdf-memory", "65536"])
            .args(["--pbkdf-parallel", "1", "--pbkdf-force-iterations", "4"])
            .arg("--key-file")
            .arg(&key)
            .arg(&img),
    )?;
    Ok((
        img,
        Luks {
            uuid: UUID.to_string(),
            key,
        },
    ))
}

fn tool(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The unlock, per image, from the logs the rounds left in DIR: dm_mod's
/// line → the root mounted from the mapping (module loading, the key
/// derivation, the table and the mount: the same marks for every image),
/// ours alone dm_mod → `unlocked (key slot N)`, and CRYPTSETUP, the spans
/// of `cryptsetup open --test-passphrase` on the same header.
pub fn print_unlock(dir: &Path, runs: usize, mut cryptsetup: Vec<f64>) {
    println!("unlock (medians, printk s): `{DM_LOADED}` -> `{DM_MOUNTED}`");
    for name in ["alpinit", "initramfs-tools", "dracut"] {
        let logs: Vec<String> = (1..=runs)
            .filter_map(|round| fs::read_to_string(dir.join(format!("{name}-{round}.log"))).ok())
            .collect();
        let mut spans: Vec<f64> = logs
            .iter()
            .filter_map(|log| parse::span(log, DM_LOADED, DM_MOUNTED).ok())
            .collect();
        let shown =
            crate::bench::median(&mut spans).map_or("-".to_string(), |m| format!("{m:.3}s"));
        print!("  {name:<16} {shown:>9} ({} of {runs})", spans.len());
        if name == "alpinit" {
            let mut own: Vec<f64> = logs
                .iter()
                .filter_map(|log| parse::span(log, DM_LOADED, OURS_UNLOCKED).ok())
                .collect();
            if let Some(m) = crate::bench::median(&mut own) {
                print!("; to the key slot opened: {m:.3}s");
            }
        }
        println!();
    }
    let shown =
        crate::bench::median(&mut cryptsetup).map_or("-".to_string(), |m| format!("{m:.3}s"));
    println!(
        "  cryptsetup open --test-passphrase of the same header (initramfs-tools' shell): {shown} ({} of {runs})",
        cryptsetup.len()
    );
}
