//! squashfs: magic and version only; the format has neither UUID nor label.

use crate::bytes::{field, le16};
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    let Some(sb) = m.read(0, 32)? else {
        return Ok(None);
    };
    if field(&sb, 0, 4) != b"hsqs" {
        return Ok(None);
    }
    // Version 3 and older (blkid's "squashfs3") cannot be mounted by current kernels.
    let fstype = if le16(&sb, 28) >= 4 {
        "squashfs"
    } else {
        "squashfs3"
    };
    Ok(Some(Superblock::new(fstype)))
}
