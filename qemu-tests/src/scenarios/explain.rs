//! `alpinit explain` in a booted guest: the usual diskless boot from a
//! virtio disk, then the new root runs the image's own init binary (carried
//! by the overlay) as `alpinit explain` through `init=`/`init_args=`. Its
//! report goes to the console; its exit status is the one the kernel
//! prints when PID 1 exits.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::boot_media::{boot_repository, top_apkovl};
use super::{disk, kernel_vm, overlay, reported, Assets, ImageKind, Setup};
use crate::media::{FileSpec, Filesystem};
use crate::qemu::Outcome;
use crate::report::Report;

pub(super) const HOST_EXPLAIN: &str = "alpinit-explain";

/// Where the overlay puts the init binary in the new root.
const EXPLAIN_BIN: &str = "usr/bin/alpinit";

/// The `init` member of a gzip newc cpio (the image `cargo xtask
/// initramfs` wrote).
pub fn init_from_image(image: &Path) -> Result<Vec<u8>> {
    let gz = fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let mut cpio = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut cpio)
        .with_context(|| format!("decompressing {}", image.display()))?;
    let field = |at: usize| -> Result<usize> {
        let hex = cpio.get(at..at + 8).context("truncated cpio header")?;
        let text = std::str::from_utf8(hex).context("cpio header is not ASCII")?;
        usize::from_str_radix(text, 16).context("cpio header field is not hex")
    };
    let pad = |n: usize| (n + 3) & !3;
    let mut at = 0;
    while at + 110 <= cpio.len() {
        if &cpio[at..at + 6] != b"070701" {
            bail!("{}: no newc header at byte {at}", image.display());
        }
        let size = field(at + 54)?;
        let namesize = field(at + 94)?;
        let name_end = at + 110 + namesize;
        let name = cpio
            .get(at + 110..name_end.saturating_sub(1))
            .context("truncated cpio name")?;
        let data = pad(name_end);
        if name == b"init" {
            return Ok(cpio
                .get(data..data + size)
                .context("truncated cpio data")?
                .to_vec());
        }
        if name == b"TRAILER!!!" {
            break;
        }
        at = pad(data + size);
    }
    bail!("{} has no /init", image.display())
}

pub(super) fn setup_explain(assets: &Assets, dir: &Path) -> Result<Setup> {
    let init = init_from_image(assets.image(ImageKind::Standard)?)?;
    let ovl = overlay(
        assets,
        HOST_EXPLAIN,
        &[],
        vec![FileSpec::new(EXPLAIN_BIN, 0o755, init)],
    )?;
    let img = disk(
        dir,
        "vda",
        Filesystem::Ext4,
        &[top_apkovl(ovl), boot_repository()],
    )?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        &format!("quiet init=/{EXPLAIN_BIN} init_args=explain dasd=0.0.0100"),
    )?;
    vm.virtio_disk(&img);
    Ok(reported(assets, vm))
}

pub(super) fn check_explain(outcome: &Outcome, _report: Option<&Report>) -> Vec<String> {
    let log = &outcome.log;
    let mut failures = Vec::new();
    for want in [
        "alpinit 0.1.0 explain: what a boot of this machine would do",
        "  in effect: init=/usr/bin/alpinit init_args=explain panic=-1 quiet console=ttyS0",
        "  ignored (parsed, not supported by this version): dasd=0.0.0100",
        "  vda1 label=\"VDA\"",
        "ext4, scanned (mounted at /media/vda1): 1 apkovl(s), 1 boot repository",
        "  chosen: /media/vda1/host.apkovl.tar.gz",
        "  /media/vda1/apks (boot repository)",
        "A boot would use the apkovl /media/vda1/host.apkovl.tar.gz (exit status 0).",
        // PID 1 (explain) exited with status 0.
        "exitcode=0x00000000",
    ] {
        if !log.contains(want) {
            failures.push(format!("console lacks {want:?}"));
        }
    }
    failures
}
