//! ext2, ext3, ext4 (and ext4dev, jbd), told apart by feature flags the way blkid does:
//! a journal makes ext3, any feature ext3 does not know makes ext4 (with or without a
//! journal), and an external journal device is `jbd`.

use crate::bytes::{field, label, le16, le32, uuid};
use crate::checksum::crc32c_raw;
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

const SB_OFFSET: u64 = 1024;
const SB_LEN: usize = 1024;
const MAGIC: u16 = 0xEF53;

const COMPAT_HAS_JOURNAL: u32 = 0x0004;
const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
const RO_COMPAT_METADATA_CSUM: u32 = 0x0400;
/// Features ext2 and ext3 understand; anything else needs ext4.
const EXT2_RO_COMPAT_SUPP: u32 = 0x0001 | 0x0002 | 0x0004;
const EXT2_INCOMPAT_SUPP: u32 = 0x0002 | 0x0010;
const EXT3_RO_COMPAT_SUPP: u32 = EXT2_RO_COMPAT_SUPP;
const EXT3_INCOMPAT_SUPP: u32 = 0x0002 | 0x0004 | 0x0010;
const FLAGS_TEST_FILESYS: u32 = 0x0004;

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    let Some(sb) = m.read(SB_OFFSET, SB_LEN)? else {
        return Ok(None);
    };
    Ok(classify(&sb).map(|fstype| Superblock {
        fstype,
        uuid: uuid(field(&sb, 0x68, 16)),
        label: label(field(&sb, 0x78, 16)),
    }))
}

fn classify(sb: &[u8]) -> Option<&'static str> {
    if le16(sb, 0x38) != MAGIC {
        return None;
    }
    let compat = le32(sb, 0x5C);
    let incompat = le32(sb, 0x60);
    let ro_compat = le32(sb, 0x64);
    if ro_compat & RO_COMPAT_METADATA_CSUM != 0
        && crc32c_raw(!0, field(sb, 0, 0x3FC)) != le32(sb, 0x3FC)
    {
        return None;
    }
    if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        return Some("jbd");
    }
    if le32(sb, 0x160) & FLAGS_TEST_FILESYS != 0 {
        return Some("ext4dev");
    }
    let beyond_ext3 = ro_compat & !EXT3_RO_COMPAT_SUPP != 0 || incompat & !EXT3_INCOMPAT_SUPP != 0;
    if beyond_ext3 {
        return Some("ext4");
    }
    if compat & COMPAT_HAS_JOURNAL != 0 {
        return Some("ext3");
    }
    let beyond_ext2 = ro_compat & !EXT2_RO_COMPAT_SUPP != 0 || incompat & !EXT2_INCOMPAT_SUPP != 0;
    // Without a journal, the only ext3-only bit left is RECOVER, which nothing claims.
    (!beyond_ext2).then_some("ext2")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(compat: u32, incompat: u32, ro: u32, flags: u32) -> Vec<u8> {
        let mut b = vec![0u8; SB_LEN];
        b[0x38..0x3A].copy_from_slice(&MAGIC.to_le_bytes());
        b[0x5C..0x60].copy_from_slice(&compat.to_le_bytes());
        b[0x60..0x64].copy_from_slice(&incompat.to_le_bytes());
        b[0x64..0x68].copy_from_slice(&ro.to_le_bytes());
        b[0x160..0x164].copy_from_slice(&flags.to_le_bytes());
        b
    }

    #[test]
    fn feature_flags_select_the_type() {
        let cases = [
            ((0, 0x2, 0x3, 0), Some("ext2")),
            ((COMPAT_HAS_JOURNAL, 0x2, 0x3, 0), Some("ext3")),
            ((COMPAT_HAS_JOURNAL, 0x2 | 0x40, 0x3, 0), Some("ext4")), // extents
            ((0, 0x2 | 0x40, 0x3, 0), Some("ext4")),                  // no journal
            ((COMPAT_HAS_JOURNAL, 0x2, 0x3 | 0x8, 0), Some("ext4")),  // huge_file
            ((0, 0x2 | 0x4, 0x3, 0), None),                           // RECOVER, no journal
            ((0, INCOMPAT_JOURNAL_DEV, 0, 0), Some("jbd")),
            (
                (COMPAT_HAS_JOURNAL, 0x40, 0, FLAGS_TEST_FILESYS),
                Some("ext4dev"),
            ),
        ];
        for ((c, i, r, f), want) in cases {
            assert_eq!(
                classify(&sb(c, i, r, f)),
                want,
                "{c:#x} {i:#x} {r:#x} {f:#x}"
            );
        }
    }

    #[test]
    fn metadata_csum_must_verify() {
        let mut b = sb(COMPAT_HAS_JOURNAL, 0x40, RO_COMPAT_METADATA_CSUM, 0);
        assert_eq!(classify(&b), None);
        let csum = crc32c_raw(!0, &b[..0x3FC]);
        b[0x3FC..].copy_from_slice(&csum.to_le_bytes());
        assert_eq!(classify(&b), Some("ext4"));
    }

    #[test]
    fn short_or_wrong_magic_is_no_match() {
        assert_eq!(classify(&[0u8; 10]), None);
        assert_eq!(classify(&vec![0u8; SB_LEN]), None);
    }
}
