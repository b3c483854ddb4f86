//! LVM2 physical volumes: a `LABELONE` label in one of the first four sectors pointing
//! to the PV header with its 32-character UUID, shown as 6-4-4-4-4-4-6.

use crate::bytes::{field, le32, le64};
use crate::checksum::crc32_raw;
use crate::filesystem::Superblock;
use crate::medium::Medium;
use crate::ProbeError;

const SECTOR: u64 = 512;
const LABEL_SECTORS: u64 = 4;
/// LVM seeds its CRC with this value and does not invert the result.
const CRC_SEED: u32 = 0xF597_A6CF;
const UUID_LEN: usize = 32;

pub(crate) fn probe(m: &mut Medium<'_>) -> Result<Option<Superblock>, ProbeError> {
    for sector in 0..LABEL_SECTORS {
        let Some(label) = m.read(sector * SECTOR, SECTOR as usize)? else {
            break;
        };
        if field(&label, 0, 8) != b"LABELONE" || field(&label, 24, 8) != b"LVM2 001" {
            continue;
        }
        if le64(&label, 8) != sector
            || crc32_raw(CRC_SEED, field(&label, 20, 492)) != le32(&label, 16)
        {
            continue;
        }
        let pv_at = sector * SECTOR + u64::from(le32(&label, 20));
        let Some(pv_uuid) = m.read(pv_at, UUID_LEN)? else {
            return Ok(None);
        };
        let mut sb = Superblock::new("LVM2_member");
        sb.uuid = Some(format_uuid(&pv_uuid));
        return Ok(Some(sb));
    }
    Ok(None)
}

fn format_uuid(raw: &[u8]) -> String {
    let mut out = String::with_capacity(38);
    for (i, &b) in raw.iter().enumerate() {
        if matches!(i, 6 | 10 | 14 | 18 | 22 | 26) {
            out.push('-');
        }
        out.push(char::from(b));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid_groups() {
        assert_eq!(
            super::format_uuid(b"abcdefghijklmnopqrstuvwxyz012345"),
            "abcdef-ghij-klmn-opqr-stuv-wxyz-012345"
        );
    }
}
