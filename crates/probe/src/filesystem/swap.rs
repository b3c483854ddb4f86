//! Linux swap (and hibernation images, blkid's `swsuspend`): the signature sits in the
//! last 10 bytes of the first page, whose size (4-64 KiB) depends on the architecture
//! that wrote it; UUID and label live in the v1 header at 1 KiB.

use crate::bytes::{field, label, le32, u8_at, uuid};
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

const PAGE_SIZES: [u64; 5] = [4096, 8192, 16384, 32768, 65536];
const HEADER: u64 = 1024;
const HEADER_LEN: usize = 4 + 4 + 4 + 16 + 16 + 117 * 4;
/// padding[32] and padding[33] of the v1 header: non-zero means old garbage, and blkid
/// then does not trust the uuid and label.
const PADDING_CHECK: usize = 44 + 32 * 4;

enum Kind {
    /// SWAPSPACE2: version and page count are checked.
    V1,
    /// Old SWAP-SPACE or a hibernation image: no header checks.
    Other(&'static str),
}

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    for page in PAGE_SIZES {
        let Some(sig) = m.read(page - 10, 10)? else {
            break;
        };
        let kind = match &sig[..] {
            b"SWAPSPACE2" => Kind::V1,
            b"SWAP-SPACE" => Kind::Other("swap"),
            b"S1SUSPEND\0" | b"S2SUSPEND\0" | b"ULSUSPEND\0" | b"LINHIB0001" => {
                Kind::Other("swsuspend")
            }
            [0xED, 0xC3, 0x02, 0xE9, 0x98, 0x56, 0xE5, 0x0C, ..] => Kind::Other("swsuspend"),
            _ => continue,
        };
        return header(m, kind);
    }
    Ok(None)
}

fn header(m: &mut Medium<'_>, kind: Kind) -> Result<Option<Superblock>, ProbeError> {
    let Some(hdr) = m.read(HEADER, HEADER_LEN)? else {
        return Ok(None);
    };
    let fstype = match kind {
        Kind::V1 => {
            let version = le32(&hdr, 0);
            if (version != 1 && version.swap_bytes() != 1) || le32(&hdr, 4) == 0 {
                return Ok(None);
            }
            "swap"
        }
        Kind::Other(name) => name,
    };
    let mut sb = Superblock::new(fstype);
    if le32(&hdr, PADDING_CHECK) == 0 && le32(&hdr, PADDING_CHECK + 4) == 0 {
        if u8_at(&hdr, 28) != 0 {
            sb.label = label(field(&hdr, 28, 16));
        }
        sb.uuid = uuid(field(&hdr, 12, 16));
    }
    Ok(Some(sb))
}
