//! Hostile and hand-built inputs: every case must end quickly in `Ok` or a clean error.

use super::*;

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn mbr(signature: u32, parts: &[(u8, u8, u32, u32)]) -> Vec<u8> {
    let mut d = vec![0u8; 1 << 20];
    put(&mut d, 440, &signature.to_le_bytes());
    for (i, &(boot, kind, start, size)) in parts.iter().enumerate() {
        let at = 446 + i * 16;
        d[at] = boot;
        d[at + 4] = kind;
        put(&mut d, at + 8, &start.to_le_bytes());
        put(&mut d, at + 12, &size.to_le_bytes());
    }
    put(&mut d, 510, &[0x55, 0xAA]);
    d
}

fn partuuid(data: &[u8], partn: u32) -> Option<String> {
    partition_uuid(&mut Cursor::new(data), data.len() as u64, partn).unwrap()
}

#[test]
fn empty_and_tiny_inputs_match_nothing() {
    for len in [0usize, 1, 511, 512, 1024, 2047, 4096, 70_000] {
        assert_eq!(
            probe_bytes(&vec![0u8; len]).unwrap(),
            Probe::default(),
            "len {len}"
        );
        assert_eq!(partuuid(&vec![0u8; len], 1), None);
    }
}

#[test]
fn every_truncation_of_a_real_header_is_harmless() {
    let mut full = vec![0u8; 128 * 1024];
    // An ext4 superblock, a btrfs magic and an iso9660 descriptor in one image.
    put(&mut full, 1024 + 0x38, &0xEF53u16.to_le_bytes());
    put(&mut full, 0x10040, b"_BHRfS_M");
    put(&mut full, 0x8000, b"\x01CD001\x01");
    for len in (0..full.len()).step_by(997) {
        let _ = probe_bytes(&full[..len]).unwrap();
    }
    assert_eq!(probe_bytes(&full).unwrap().fstype.as_deref(), Some("ext2"));
}

#[test]
fn dos_table_and_partuuids() {
    let mut d = mbr(
        0x1234_abcd,
        &[(0x80, 0x83, 2048, 100), (0, 0, 0, 0), (0, 0x05, 1024, 1000)],
    );
    // First EBR at 4096: logical at +100, link to a second EBR at ext+300.
    let ebr1 = 1024 * 512;
    put(&mut d, ebr1 + 446 + 4, &[0x83]);
    put(&mut d, ebr1 + 446 + 8, &100u32.to_le_bytes());
    put(&mut d, ebr1 + 446 + 12, &50u32.to_le_bytes());
    put(&mut d, ebr1 + 462 + 4, &[0x05]);
    put(&mut d, ebr1 + 462 + 8, &300u32.to_le_bytes());
    put(&mut d, ebr1 + 462 + 12, &200u32.to_le_bytes());
    put(&mut d, ebr1 + 510, &[0x55, 0xAA]);
    let ebr2 = (1024 + 300) * 512;
    put(&mut d, ebr2 + 446 + 4, &[0x83]);
    put(&mut d, ebr2 + 446 + 8, &10u32.to_le_bytes());
    put(&mut d, ebr2 + 446 + 12, &20u32.to_le_bytes());
    put(&mut d, ebr2 + 510, &[0x55, 0xAA]);

    let p = probe_bytes(&d).unwrap();
    assert_eq!(p.pttype.as_deref(), Some("dos"));
    assert_eq!(p.ptuuid.as_deref(), Some("1234abcd"));
    assert_eq!(p.fstype, None);
    let want = [
        (1, Some("1234abcd-01")),
        (2, None),
        (3, Some("1234abcd-03")),
        (4, None),
        (5, Some("1234abcd-05")),
        (6, Some("1234abcd-06")),
        (7, None),
        (0, None),
    ];
    for (n, w) in want {
        assert_eq!(partuuid(&d, n).as_deref(), w, "partition {n}");
    }
}

#[test]
fn ebr_loop_terminates() {
    let mut d = mbr(0x1, &[(0, 0x05, 8, 100)]);
    // The EBR links to itself and holds one logical partition.
    let ebr = 8 * 512;
    put(&mut d, ebr + 446 + 4, &[0x83]);
    put(&mut d, ebr + 446 + 8, &1u32.to_le_bytes());
    put(&mut d, ebr + 446 + 12, &1u32.to_le_bytes());
    put(&mut d, ebr + 462 + 4, &[0x05]);
    put(&mut d, ebr + 462 + 8, &0u32.to_le_bytes());
    put(&mut d, ebr + 462 + 12, &100u32.to_le_bytes());
    put(&mut d, ebr + 510, &[0x55, 0xAA]);
    assert_eq!(partuuid(&d, 5).as_deref(), Some("00000001-05"));
    assert_eq!(partuuid(&d, 6), None);
    assert_eq!(partuuid(&d, u32::MAX), None);
}

#[test]
fn mbr_rejections() {
    // Bad boot indicator: not a partition table.
    assert_eq!(
        probe_bytes(&mbr(5, &[(0x12, 0x83, 1, 1)])).unwrap().pttype,
        None
    );
    // Zero signature: a table but no PTUUID and no PARTUUIDs.
    let d = mbr(0, &[(0, 0x83, 1, 1)]);
    let p = probe_bytes(&d).unwrap();
    assert_eq!((p.pttype.as_deref(), p.ptuuid), (Some("dos"), None));
    assert_eq!(partuuid(&d, 1), None);
}

fn gpt_disk(count: u32, entry_size: u32) -> Vec<u8> {
    let mut d = mbr(0, &[(0, 0xEE, 1, u32::MAX)]);
    let entries_len = (count as usize * entry_size as usize).min(16 * 1024);
    let mut entries = vec![0u8; entries_len];
    if entries_len >= 128 {
        entries[0] = 0xAF; // any non-zero type GUID
        put(&mut entries, 16, &[0x11; 16]);
        put(&mut entries, 32, &64u64.to_le_bytes());
        put(&mut entries, 40, &100u64.to_le_bytes());
    }
    put(&mut d, 1024, &entries);
    let mut h = vec![0u8; 92];
    put(&mut h, 0, b"EFI PART");
    put(&mut h, 8, &0x0001_0000u32.to_le_bytes());
    put(&mut h, 12, &92u32.to_le_bytes());
    put(&mut h, 24, &1u64.to_le_bytes());
    put(&mut h, 40, &34u64.to_le_bytes());
    put(&mut h, 48, &2000u64.to_le_bytes());
    put(&mut h, 56, &[0x22; 16]);
    put(&mut h, 72, &2u64.to_le_bytes());
    put(&mut h, 80, &count.to_le_bytes());
    put(&mut h, 84, &entry_size.to_le_bytes());
    put(&mut h, 88, &checksum::crc32(&entries).to_le_bytes());
    let crc = checksum::crc32(&h);
    put(&mut h, 16, &crc.to_le_bytes());
    put(&mut d, 512, &h);
    d
}

#[test]
fn gpt_table_and_partuuids() {
    let d = gpt_disk(128, 128);
    let p = probe_bytes(&d).unwrap();
    assert_eq!(p.pttype.as_deref(), Some("gpt"));
    assert_eq!(
        p.ptuuid.as_deref(),
        Some("22222222-2222-2222-2222-222222222222")
    );
    assert_eq!(
        partuuid(&d, 1).as_deref(),
        Some("11111111-1111-1111-1111-111111111111")
    );
    assert_eq!(partuuid(&d, 2), None);
    assert_eq!(partuuid(&d, 129), None);
}

#[test]
fn gpt_with_absurd_entry_geometry_is_ignored() {
    for (count, size) in [
        (u32::MAX, 128),
        (1_000_000, 4096),
        (4, u32::MAX),
        (4, 0),
        (0, 128),
        (4, 100),
    ] {
        let d = gpt_disk(count, size);
        let p = probe_bytes(&d).unwrap();
        assert_eq!(p.pttype, None, "{count} x {size}");
        assert_eq!(partuuid(&d, 1), None);
    }
}

#[test]
fn gpt_with_corrupt_header_crc_is_ignored() {
    let mut d = gpt_disk(4, 128);
    d[512 + 60] ^= 1;
    assert_eq!(probe_bytes(&d).unwrap().pttype, None);
}

#[test]
fn iso9660_without_terminator_stops() {
    let mut d = vec![0u8; 1 << 20];
    for i in 0..200 {
        let at = 0x8000 + i * 2048;
        // Supplementary descriptors forever, never a terminator or a primary.
        put(&mut d, at, b"\x02CD001\x01");
    }
    assert_eq!(probe_bytes(&d).unwrap().fstype, None);
    put(&mut d, 0x8000 + 20 * 2048, b"\x01CD001\x01");
    // The primary lies beyond the 16 descriptors blkid examines.
    assert_eq!(probe_bytes(&d).unwrap().fstype, None);
    put(&mut d, 0x8000 + 3 * 2048, b"\x01CD001\x01");
    put(&mut d, 0x8000 + 3 * 2048 + 40, b"VOL");
    let p = probe_bytes(&d).unwrap();
    assert_eq!(
        (p.fstype.as_deref(), p.label.as_deref()),
        (Some("iso9660"), Some("VOL"))
    );
}

fn fat_boot(bytes_per_sector: u16, sectors_per_cluster: u8, fats: u8) -> Vec<u8> {
    let mut d = vec![0u8; 1 << 20];
    put(&mut d, 0, &[0xEB, 0x3C, 0x90]);
    put(&mut d, 11, &bytes_per_sector.to_le_bytes());
    d[13] = sectors_per_cluster;
    put(&mut d, 14, &1u16.to_le_bytes());
    d[16] = fats;
    put(&mut d, 17, &512u16.to_le_bytes());
    put(&mut d, 19, &2048u16.to_le_bytes());
    d[21] = 0xF8;
    put(&mut d, 22, &2u16.to_le_bytes());
    d[38] = 0x29;
    put(&mut d, 39, &[0x78, 0x56, 0x34, 0x12]);
    put(&mut d, 0x36, b"FAT12   ");
    put(&mut d, 510, &[0x55, 0xAA]);
    d
}

#[test]
fn fat_geometry_checks() {
    let ok = probe_bytes(&fat_boot(512, 4, 2)).unwrap();
    assert_eq!(ok.fstype.as_deref(), Some("vfat"));
    assert_eq!(ok.uuid.as_deref(), Some("1234-5678"));
    assert_eq!(ok.label, None);
    assert_eq!(ok.pttype, None, "a FAT boot sector is not an MBR");
    for (bps, spc, fats) in [
        (0, 4, 2),
        (513, 4, 2),
        (8192, 4, 2),
        (512, 0, 2),
        (512, 3, 2),
        (512, 4, 0),
    ] {
        let p = probe_bytes(&fat_boot(bps, spc, fats)).unwrap();
        assert_eq!(p.fstype, None, "{bps} {spc} {fats}");
    }
}

#[test]
fn fat_root_label_entry_wins_and_no_name_is_none() {
    let mut d = fat_boot(512, 4, 2);
    put(&mut d, 43, b"BOOTLABEL  ");
    // Root directory after 1 reserved + 2x2 FAT sectors.
    let root = 5 * 512;
    put(&mut d, root, b"ROOTLABEL  ");
    d[root + 11] = 0x08;
    assert_eq!(probe_bytes(&d).unwrap().label.as_deref(), Some("ROOTLABEL"));
    put(&mut d, root, b"NO NAME    ");
    assert_eq!(probe_bytes(&d).unwrap().label, None);
}

#[test]
fn md_v1_superblock_is_recognised() {
    let mut d = vec![0u8; 2 << 20];
    let sb = 0x1000;
    put(&mut d, sb, &0xA92B_4EFCu32.to_le_bytes());
    put(&mut d, sb + 4, &1u32.to_le_bytes());
    put(&mut d, sb + 16, &(1..=16).collect::<Vec<u8>>());
    put(&mut d, sb + 32, b"host:root");
    put(&mut d, sb + 144, &8u64.to_le_bytes());
    put(&mut d, sb + 220, &0u32.to_le_bytes());
    let csum = filesystem_md_checksum(&d[sb..sb + 256]);
    put(&mut d, sb + 216, &csum.to_le_bytes());
    let p = probe_bytes(&d).unwrap();
    assert_eq!(p.fstype.as_deref(), Some("linux_raid_member"));
    assert_eq!(
        p.uuid.as_deref(),
        Some("01020304-0506-0708-090a-0b0c0d0e0f10")
    );
    assert_eq!(p.label.as_deref(), Some("host:root"));
    // Like blkid, floppy-sized devices are never RAID members.
    assert_eq!(probe_bytes(&d[..1440 * 1024]).unwrap().fstype, None);
    // A huge max_dev must not make the checksum read huge.
    put(&mut d, sb + 220, &u32::MAX.to_le_bytes());
    assert_eq!(probe_bytes(&d).unwrap().fstype, None);
}

fn filesystem_md_checksum(sb: &[u8]) -> u32 {
    filesystem::md_checksum(sb)
}

#[test]
fn ntfs_with_absurd_mft_offset_is_no_match() {
    let mut d = vec![0u8; 1 << 20];
    put(&mut d, 3, b"NTFS    ");
    put(&mut d, 11, &512u16.to_le_bytes());
    d[13] = 8;
    put(&mut d, 0x28, &u64::MAX.to_le_bytes());
    put(&mut d, 0x30, &(u64::MAX / 8).to_le_bytes());
    d[0x40] = 0xF6;
    assert_eq!(probe_bytes(&d).unwrap().fstype, None);
}

#[test]
fn exfat_with_hostile_root_cluster_is_harmless() {
    let mut d = vec![0u8; 1 << 20];
    put(&mut d, 0, &[0xEB, 0x76, 0x90]);
    put(&mut d, 3, b"EXFAT   ");
    put(&mut d, 72, &u64::MAX.to_le_bytes());
    put(&mut d, 80, &24u32.to_le_bytes());
    put(&mut d, 84, &1u32.to_le_bytes());
    put(&mut d, 88, &u32::MAX.to_le_bytes());
    put(&mut d, 92, &u32::MAX.to_le_bytes());
    put(&mut d, 96, &0xFFFF_FFF0u32.to_le_bytes());
    d[108] = 12;
    d[109] = 13;
    d[110] = 1;
    put(&mut d, 510, &[0x55, 0xAA]);
    // Whatever the checksum verdict, the result must come back.
    let _ = probe_bytes(&d).unwrap();
}

#[test]
fn mount_names() {
    let cases = [
        ("ext2", Some("ext2")),
        ("ext3", Some("ext3")),
        ("ext4", Some("ext4")),
        ("vfat", Some("vfat")),
        ("ntfs", Some("ntfs3")),
        ("iso9660", Some("iso9660")),
        ("swap", None),
        ("crypto_LUKS", None),
        ("LVM2_member", None),
        ("linux_raid_member", None),
        ("", None),
    ];
    for (t, want) in cases {
        assert_eq!(mount_fstype(t), want, "{t}");
    }
}

#[test]
fn probe_path_reports_open_errors() {
    let err = probe_path(Path::new("/nonexistent/alpinit-probe")).unwrap_err();
    assert!(matches!(err, ProbeError::Open { .. }), "{err}");
}
