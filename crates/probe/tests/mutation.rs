//! Real images with random bytes flipped in their metadata areas: probing must always
//! come back. Results are not compared, since corrupted input has no oracle.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{iso_tree, run, sfdisk, sparse, tempdir};

/// Real images with random bytes flipped in their metadata areas: probing must always
/// come back (the results are not compared; corrupted input has no oracle).
#[test]
fn mutated_real_images_never_panic() {
    let dir = tempdir();
    let tree = iso_tree(dir.path());
    let mut images: Vec<PathBuf> = Vec::new();
    let mut make = |name: &str, size: u64, mkfs: &str, args: &[&str]| {
        let img = sparse(dir.path(), name, size);
        let img_s = img.to_string_lossy().into_owned();
        let mut all = args.to_vec();
        all.push(&img_s);
        if run(mkfs, &all).is_some() {
            images.push(img);
        }
    };
    make("ext4.img", 8 << 20, "mkfs.ext4", &["-q", "-F"]);
    make("fat32.img", 40 << 20, "mkfs.vfat", &["-F", "32"]);
    make("fat12.img", 2 << 20, "mkfs.vfat", &["-F", "12"]);
    make("exfat.img", 8 << 20, "mkfs.exfat", &[]);
    make("ntfs.img", 8 << 20, "mkntfs", &["-q", "-f", "-F"]);
    make("swap.img", 8 << 20, "mkswap", &[]);
    let iso = dir.path().join("j.iso");
    let (iso_s, tree_s) = (iso.to_string_lossy(), tree.to_string_lossy());
    if run(
        "xorriso",
        &["-as", "mkisofs", "-quiet", "-J", "-o", &iso_s, &tree_s],
    )
    .is_some()
    {
        images.push(iso);
    }
    let gpt = sparse(dir.path(), "gpt.img", 8 << 20);
    if sfdisk(&gpt, "label: gpt\n,1M\n,1M\n").is_some() {
        images.push(gpt);
    }
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for img in images {
        let mut data = fs::read(&img).unwrap();
        data.truncate(4 << 20);
        // Metadata of all these formats sits in the first 72 KiB (or the GPT backup).
        let hot = data.len().min(72 * 1024);
        for _ in 0..300 {
            let flips: Vec<(usize, u8)> = (0..1 + next() % 8)
                .map(|_| ((next() as usize) % hot, next() as u8))
                .collect();
            let saved: Vec<u8> = flips.iter().map(|&(at, _)| data[at]).collect();
            for &(at, v) in &flips {
                data[at] = v;
            }
            let _ = alpinit_probe::probe_bytes(&data).unwrap();
            let _ = alpinit_probe::partition_uuid(
                &mut std::io::Cursor::new(&data[..]),
                data.len() as u64,
                (next() % 10) as u32,
            )
            .unwrap();
            for (&(at, _), &v) in flips.iter().zip(&saved).rev() {
                data[at] = v;
            }
        }
    }
}
