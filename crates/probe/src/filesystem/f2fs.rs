//! F2FS: superblock at 1 KiB with a UTF-16LE volume name.

use crate::bytes::{field, label_utf16, le16, le32, u8_at, uuid};
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

const SB_OFFSET: u64 = 1024;
const MAGIC: u32 = 0xF2F5_2010;
const NAME_AT: usize = 124;
const NAME_LEN: usize = 1024;

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    let Some(sb) = m.read(SB_OFFSET, NAME_AT + NAME_LEN)? else {
        return Ok(None);
    };
    if le32(&sb, 0) != MAGIC {
        return Ok(None);
    }
    let mut found = Superblock::new("f2fs");
    // Version 1.0 predates the uuid and volume_name fields.
    if le16(&sb, 4) == 1 && le16(&sb, 6) == 0 {
        return Ok(Some(found));
    }
    // blkid only looks at the first byte to decide whether a name is set.
    if u8_at(&sb, NAME_AT) != 0 {
        found.label = label_utf16(field(&sb, NAME_AT, NAME_LEN), true);
    }
    found.uuid = uuid(field(&sb, 108, 16));
    Ok(Some(found))
}
