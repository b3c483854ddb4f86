//! XFS: big-endian superblock at offset 0, accepted only when its geometry is sane
//! (the same consistency checks blkid applies before trusting the magic).

use crate::bytes::{be16, be32, be64, field, label, u8_at, uuid};
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    let Some(sb) = m.read(0, 512)? else {
        return Ok(None);
    };
    if field(&sb, 0, 4) != b"XFSB" || !sane(&sb) {
        return Ok(None);
    }
    let mut found = Superblock::new("xfs");
    found.uuid = uuid(field(&sb, 32, 16));
    if u8_at(&sb, 108) != 0 {
        found.label = label(field(&sb, 108, 12));
    }
    Ok(Some(found))
}

fn sane(sb: &[u8]) -> bool {
    let pow2 = |size: u64, log: u8, lo: u8, hi: u8| (lo..=hi).contains(&log) && size == 1u64 << log;
    let blocksize = u64::from(be32(sb, 4));
    let sectsize = u64::from(be16(sb, 102));
    let inodesize = u64::from(be16(sb, 104));
    let (blocklog, sectlog, inodelog, inopblog) = (
        u8_at(sb, 120),
        u8_at(sb, 121),
        u8_at(sb, 122),
        u8_at(sb, 123),
    );
    be32(sb, 88) != 0
        && be64(sb, 8) != 0
        && pow2(sectsize, sectlog, 9, 15)
        && pow2(blocksize, blocklog, 9, 16)
        && pow2(inodesize, inodelog, 8, 11)
        && blocklog.checked_sub(inodelog) == Some(inopblog)
        && u8_at(sb, 127) <= 100
}
