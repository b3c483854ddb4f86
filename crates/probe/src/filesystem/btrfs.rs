//! btrfs: the primary superblock at 64 KiB.

use crate::bytes::{field, label, uuid};
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

const SB_OFFSET: u64 = 64 * 1024;
const MAGIC: &[u8] = b"_BHRfS_M";

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    let Some(sb) = m.read(SB_OFFSET, 0x12B + 256)? else {
        return Ok(None);
    };
    if field(&sb, 0x40, 8) != MAGIC {
        return Ok(None);
    }
    Ok(Some(Superblock {
        fstype: "btrfs",
        uuid: uuid(field(&sb, 0x20, 16)),
        label: label(field(&sb, 0x12B, 256)),
    }))
}
