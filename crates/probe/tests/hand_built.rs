//! Formats whose tools need root or block devices (LVM, MD RAID), built byte by byte
//! and still judged by blkid, plus images that must match nothing.

mod common;

use std::fs;

use common::{compare, put, run, sparse, tempdir};

/// pvcreate needs a real block device (and root), so the PV label is built by hand and
/// blkid stays the judge.
#[test]
fn lvm2_member_hand_built() {
    let dir = tempdir();
    // Over 1440 KiB: blkid skips volume-manager signatures on floppy-sized devices.
    let mut d = vec![0u8; 4 << 20];
    let label = 512;
    put(&mut d, label, b"LABELONE");
    put(&mut d, label + 8, &1u64.to_le_bytes());
    put(&mut d, label + 20, &32u32.to_le_bytes());
    put(&mut d, label + 24, b"LVM2 001");
    put(&mut d, label + 32, b"AbCdEf0123456789ghijklMNOPqrstuv");
    // LVM's CRC: reflected CRC-32 seeded with 0xf597a6cf, no final inversion.
    let mut crc: u32 = 0xF597_A6CF;
    for &b in &d[label + 20..label + 512] {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    put(&mut d, label + 16, &crc.to_le_bytes());
    let img = dir.path().join("pv.img");
    fs::write(&img, &d).unwrap();
    let got = compare(&img, Some("LVM2_member"));
    if let Some(got) = got {
        assert_eq!(
            got.uuid.as_deref(),
            Some("AbCdEf-0123-4567-89gh-ijkl-MNOP-qrstuv")
        );
    }
}

fn md_v1(d: &mut [u8], at: usize, name: &[u8]) {
    put(d, at, &0xA92B_4EFCu32.to_le_bytes());
    put(d, at + 4, &1u32.to_le_bytes());
    put(
        d,
        at + 16,
        &[
            0x5A, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D,
            0x0E, 0xF0,
        ],
    );
    put(d, at + 32, name);
    put(d, at + 128, &2048u64.to_le_bytes());
    put(d, at + 144, &((at as u64) >> 9).to_le_bytes());
    put(d, at + 168, &[0x77; 16]);
    put(d, at + 220, &4u32.to_le_bytes());
    let mut sum: u64 = 0;
    for (i, w) in d[at..at + 256 + 8].chunks_exact(4).enumerate() {
        if i != 216 / 4 {
            sum += u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    let csum = ((sum & 0xFFFF_FFFF) + (sum >> 32)) as u32;
    put(d, at + 216, &csum.to_le_bytes());
}

/// mdadm --create needs block devices, so superblocks are built by hand.
#[test]
fn linux_raid_member_hand_built() {
    let dir = tempdir();
    let size = 4usize << 20;
    // v1.2 at 4 KiB.
    let mut d = vec![0u8; size];
    md_v1(&mut d, 0x1000, b"alpine:0");
    let img = dir.path().join("md12.img");
    fs::write(&img, &d).unwrap();
    compare(&img, Some("linux_raid_member"));
    // v1.0 near the end.
    let mut d = vec![0u8; size];
    md_v1(&mut d, size - 0x2000, b"host:data");
    let img = dir.path().join("md10.img");
    fs::write(&img, &d).unwrap();
    compare(&img, Some("linux_raid_member"));
    // v0.90 in the last 64 KiB, little-endian.
    let mut d = vec![0u8; size];
    let at = size - 0x10000;
    put(&mut d, at, &0xA92B_4EFCu32.to_le_bytes());
    put(&mut d, at + 4, &0u32.to_le_bytes());
    put(&mut d, at + 8, &90u32.to_le_bytes());
    for (i, off) in [20usize, 52, 56, 60].into_iter().enumerate() {
        put(&mut d, at + off, &(0x1122_3344u32 + i as u32).to_le_bytes());
    }
    let img = dir.path().join("md090.img");
    fs::write(&img, &d).unwrap();
    compare(&img, Some("linux_raid_member"));

    // A v1.0 member holding ext4 (a mirrored /boot): the RAID signature wins.
    let img = sparse(dir.path(), "mdext4.img", size as u64);
    let img_s = img.to_string_lossy().into_owned();
    if run("mkfs.ext4", &["-q", "-F", &img_s]).is_none() {
        return;
    }
    let mut d = fs::read(&img).unwrap();
    md_v1(&mut d, size - 0x2000, b"host:boot");
    fs::write(&img, &d).unwrap();
    compare(&img, Some("linux_raid_member"));
}

#[test]
fn blank_and_random_images_match_nothing() {
    let dir = tempdir();
    let img = sparse(dir.path(), "zero.img", 8 << 20);
    compare(&img, None);
    // Deterministic pseudo-random noise (xorshift).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..(1 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let img = dir.path().join("noise.img");
    fs::write(&img, &noise).unwrap();
    compare(&img, None);
}
