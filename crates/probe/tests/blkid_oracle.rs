//! Compares the prober with util-linux blkid on images made by the real mkfs tools.
//!
//! Every case builds a small (mostly sparse) image in a temp dir, runs
//! `blkid -p -o export` on it and expects the same TYPE, UUID, LABEL, PTTYPE and PTUUID.
//! Partition UUIDs are checked against `partx`, which uses libblkid. A case whose tool is
//! missing (or refuses to run here) prints a note and passes: the oracle is optional,
//! the hand-built unit tests are not.

mod common;

use std::fs;
use std::io::{Seek, SeekFrom, Write};

use common::{compare, compare_partuuids, iso_tree, run, sfdisk, sparse, tempdir};

#[test]
fn ext2_ext3_ext4() {
    let dir = tempdir();
    let cases = [
        ("mkfs.ext2", vec![], "ext2"),
        ("mkfs.ext3", vec![], "ext3"),
        ("mkfs.ext4", vec![], "ext4"),
        ("mkfs.ext4", vec!["-O", "^has_journal"], "ext4"),
        ("mkfs.ext3", vec!["-O", "extent"], "ext4"),
    ];
    for (i, (mkfs, extra, want)) in cases.into_iter().enumerate() {
        let img = sparse(dir.path(), &format!("{i}.img"), 16 << 20);
        let uuid = format!("0123456{i}-89ab-cdef-0123-456789abcdef");
        let label = format!("{want}-label{i}");
        let mut args = vec!["-q", "-F", "-L", &label, "-U", &uuid];
        args.extend(extra.iter().copied());
        let img_s = img.to_string_lossy().into_owned();
        args.push(&img_s);
        if run(mkfs, &args).is_none() {
            continue;
        }
        let got = compare(&img, Some(want));
        if let Some(got) = got {
            assert_eq!(got.uuid.as_deref(), Some(uuid.as_str()));
        }
    }
}

#[test]
fn vfat_12_16_32() {
    let dir = tempdir();
    let cases = [
        ("12", 8u64 << 20, Some("FAT12LBL"), "1234ABCD"),
        ("16", 32 << 20, Some("Mixed Case"), "0a0b0c0d"),
        ("16", 32 << 20, None, "deadbeef"),
        ("32", 40 << 20, Some("BIG LABEL"), "cafe0001"),
        ("32", 40 << 20, None, "cafe0002"),
    ];
    for (i, (bits, size, label, serial)) in cases.into_iter().enumerate() {
        let img = sparse(dir.path(), &format!("{i}.img"), size);
        let img_s = img.to_string_lossy().into_owned();
        let mut args = vec!["-F", bits, "-i", serial];
        if let Some(l) = label {
            args.extend(["-n", l]);
        }
        args.push(&img_s);
        if run("mkfs.vfat", &args).is_none() {
            return;
        }
        compare(&img, Some("vfat"));
    }
}

/// With the root-directory label entry deleted, blkid (and we) ignore the boot-sector
/// copy of the label.
#[test]
fn vfat_boot_sector_label_only() {
    let dir = tempdir();
    let img = sparse(dir.path(), "f.img", 32 << 20);
    let img_s = img.to_string_lossy().into_owned();
    if run("mkfs.vfat", &["-F", "16", "-n", "BOOTONLY", &img_s]).is_none() {
        return;
    }
    let bs = fs::read(&img).unwrap();
    let le16 = |at: usize| usize::from(u16::from_le_bytes([bs[at], bs[at + 1]]));
    let root = (le16(14) + usize::from(bs[16]) * le16(22)) * le16(11);
    assert_eq!(bs[root + 11], 0x08, "mkfs.vfat put the label entry first");
    let mut f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.seek(SeekFrom::Start(root as u64)).unwrap();
    f.write_all(&[0xE5]).unwrap();
    drop(f);
    let got = compare(&img, Some("vfat"));
    if let Some(got) = got {
        assert_eq!(got.label, None);
    }
}

#[test]
fn iso9660_plain_joliet_and_hybrid() {
    let dir = tempdir();
    let tree = iso_tree(dir.path());
    let tree_s = tree.to_string_lossy().into_owned();
    let cases: [(&str, &[&str]); 6] = [
        ("ALPINE_STD", &[]),
        ("alpine lower no joliet", &[]),
        ("Alpine Std x86_64 Long Label", &["-J"]),
        ("Grüße Disk é", &["-J"]),
        ("short", &["-J"]),
        ("HYBRID", &["-partition_offset", "16"]),
    ];
    for (i, (label, extra)) in cases.into_iter().enumerate() {
        let img = dir.path().join(format!("{i}.iso"));
        let img_s = img.to_string_lossy().into_owned();
        let mut args = vec!["-as", "mkisofs", "-quiet", "-o", &img_s, "-V", label];
        args.extend(extra.iter().copied());
        args.push(&tree_s);
        if run("xorriso", &args).is_none() {
            return;
        }
        compare(&img, Some("iso9660"));
        compare_partuuids(&img);
    }
}

/// blkid takes the UUID from the modification date when it differs from creation.
#[test]
fn iso9660_uuid_date() {
    let dir = tempdir();
    let tree = iso_tree(dir.path());
    let img = dir.path().join("d.iso");
    let outdev = img.to_string_lossy().into_owned();
    let args = [
        "-outdev",
        &outdev,
        "-volid",
        "DATES",
        "-joliet",
        "on",
        "-volume_date",
        "c",
        "2020010203040506",
        "-volume_date",
        "m",
        "2021111213141516",
        "-map",
        &tree.to_string_lossy(),
        "/",
    ];
    if run("xorriso", &args).is_none() {
        return;
    }
    let got = compare(&img, Some("iso9660"));
    if let Some(got) = got {
        assert!(got
            .uuid
            .is_some_and(|u| u.starts_with("2021-11-12-13-14-15")));
    }
}

fn mkfs_case(name: &str, size: u64, want: &str, mkfs: &str, args: &[&str]) {
    let dir = tempdir();
    let img = sparse(dir.path(), name, size);
    let img_s = img.to_string_lossy().into_owned();
    let mut all: Vec<&str> = args.to_vec();
    all.push(&img_s);
    if run(mkfs, &all).is_none() {
        return;
    }
    compare(&img, Some(want));
}

#[test]
fn btrfs() {
    mkfs_case(
        "b.img",
        128 << 20,
        "btrfs",
        "mkfs.btrfs",
        &["-q", "-f", "-L", "btrfs label"],
    );
}

#[test]
fn xfs() {
    mkfs_case(
        "x.img",
        300 << 20,
        "xfs",
        "mkfs.xfs",
        &["-q", "-f", "-L", "xfslbl"],
    );
}

#[test]
fn exfat() {
    mkfs_case(
        "e.img",
        16 << 20,
        "exfat",
        "mkfs.exfat",
        &["-L", "ExFat Lbl"],
    );
    mkfs_case("e2.img", 16 << 20, "exfat", "mkfs.exfat", &[]);
}

#[test]
fn f2fs() {
    mkfs_case(
        "f.img",
        64 << 20,
        "f2fs",
        "mkfs.f2fs",
        &["-q", "-f", "-l", "f2fs-label"],
    );
}

#[test]
fn ntfs() {
    mkfs_case(
        "n.img",
        16 << 20,
        "ntfs",
        "mkntfs",
        &["-q", "-f", "-F", "-L", "Ntfs Label"],
    );
}

#[test]
fn swap() {
    mkfs_case(
        "s.img",
        16 << 20,
        "swap",
        "mkswap",
        &[
            "-L",
            "swaplbl",
            "-U",
            "11111111-2222-3333-4444-555555555555",
        ],
    );
    mkfs_case("s2.img", 16 << 20, "swap", "mkswap", &[]);
}

#[test]
fn squashfs() {
    let dir = tempdir();
    let tree = iso_tree(dir.path());
    let img = dir.path().join("q.sqfs");
    let (t, i) = (tree.to_string_lossy(), img.to_string_lossy());
    if run("mksquashfs", &[&t, &i, "-quiet", "-noappend"]).is_none() {
        return;
    }
    compare(&img, Some("squashfs"));
}

#[test]
fn luks1_and_luks2() {
    let dir = tempdir();
    let key = dir.path().join("key");
    fs::write(&key, b"0123456789abcdef0123456789abcdef").unwrap();
    let key_s = key.to_string_lossy().into_owned();
    for (kind, label) in [
        ("luks1", None),
        ("luks2", Some("cryptlbl")),
        ("luks2", None),
    ] {
        let img = sparse(dir.path(), &format!("{kind}.img"), 20 << 20);
        let img_s = img.to_string_lossy().into_owned();
        let mut args = vec![
            "luksFormat",
            "-q",
            "--type",
            kind,
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--key-file",
            &key_s,
        ];
        if let Some(l) = label {
            args.extend(["--label", l]);
        }
        args.push(&img_s);
        if run("cryptsetup", &args).is_none() {
            return;
        }
        compare(&img, Some("crypto_LUKS"));
    }
}

#[test]
fn dos_partition_table_with_logical_partitions() {
    let dir = tempdir();
    let img = sparse(dir.path(), "dos.img", 64 << 20);
    let script = "label: dos\nlabel-id: 0x1234abcd\n,8M,83\n,8M,83\n,,5\n,4M,83\n,4M,83\n";
    if sfdisk(&img, script).is_none() {
        return;
    }
    compare(&img, None);
    compare_partuuids(&img);
}

#[test]
fn gpt_partition_table() {
    let dir = tempdir();
    let img = sparse(dir.path(), "gpt.img", 64 << 20);
    let script = "label: gpt\n,8M\n,8M\n,8M\n";
    if sfdisk(&img, script).is_none() {
        return;
    }
    let got = compare(&img, None);
    if let Some(got) = got {
        assert_eq!(got.pttype.as_deref(), Some("gpt"));
    }
    compare_partuuids(&img);

    // With the primary header destroyed the backup at the end still counts.
    let mut f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.seek(SeekFrom::Start(512)).unwrap();
    f.write_all(&[0u8; 512]).unwrap();
    drop(f);
    compare(&img, None);
    compare_partuuids(&img);
}
