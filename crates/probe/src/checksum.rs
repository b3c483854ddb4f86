//! The CRC-32 variants that on-disk headers use to protect themselves.

/// Bit-reflected CRC-32 update with `poly`, no pre- or post-inversion: callers choose
/// the initial value and whether to invert, since GPT, LVM and ext4 all differ there.
fn update(poly: u32, mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (poly & mask);
        }
    }
    crc
}

/// IEEE 802.3 polynomial as used by zlib and GPT.
pub(crate) fn crc32_raw(crc: u32, data: &[u8]) -> u32 {
    update(0xEDB8_8320, crc, data)
}

/// Standard CRC-32 (GPT headers and entry arrays).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    !crc32_raw(!0, data)
}

/// Castagnoli polynomial without final inversion, as ext4 stores it.
pub(crate) fn crc32c_raw(crc: u32, data: &[u8]) -> u32 {
    update(0x82F6_3B78, crc, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_check_values() {
        // The standard "123456789" check values of both polynomials.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
    }
}
