//! The LUKS1 header: 592 big-endian bytes at offset 0 with eight key slots
//! (cryptsetup's `docs/on-disk-format.pdf`, "LUKS On-Disk Format Specification 1.2.3").

use crate::LuksError;

pub const HEADER_LEN: usize = 592;
/// The anti-forensic stripe count LUKS1 fixes; cryptsetup refuses any other.
pub const STRIPES: u32 = 4000;
const SLOT_ACTIVE: u32 = 0x00AC_71F3;
/// Longest key any supported cipher takes (AES-256-XTS).
pub const MAX_KEY_BYTES: u32 = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub cipher_name: String,
    pub cipher_mode: String,
    pub hash_spec: String,
    /// Data start, 512-byte sectors.
    pub payload_offset: u32,
    pub key_bytes: u32,
    pub mk_digest: [u8; 20],
    pub mk_digest_salt: [u8; 32],
    pub mk_digest_iter: u32,
    pub uuid: String,
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub index: u32,
    pub iterations: u32,
    pub salt: [u8; 32],
    /// Key material start, 512-byte sectors.
    pub key_material_offset: u32,
    pub stripes: u32,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A NUL-terminated field; non-UTF-8 bytes are replaced (they can only be names we
/// reject anyway).
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Parse the first [`HEADER_LEN`] bytes of a LUKS1 device (magic and version checked by
/// the caller). Invalid key slots are left out; a key size no cipher takes is an error.
pub fn parse(b: &[u8]) -> Result<Header, LuksError> {
    if b.len() < HEADER_LEN {
        return Err(LuksError::Luks1Header {
            what: "header shorter than 592 bytes".into(),
        });
    }
    let key_bytes = be32(b, 108);
    if key_bytes == 0 || key_bytes > MAX_KEY_BYTES {
        return Err(LuksError::Luks1Header {
            what: format!("key size {key_bytes} bytes"),
        });
    }
    let mut mk_digest = [0u8; 20];
    mk_digest.copy_from_slice(&b[112..132]);
    let mut mk_digest_salt = [0u8; 32];
    mk_digest_salt.copy_from_slice(&b[132..164]);
    let mut slots = Vec::new();
    for index in 0..8u32 {
        let s = 208 + 48 * index as usize;
        if be32(b, s) != SLOT_ACTIVE {
            continue;
        }
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&b[s + 8..s + 40]);
        slots.push(Slot {
            index,
            iterations: be32(b, s + 4),
            salt,
            key_material_offset: be32(b, s + 40),
            stripes: be32(b, s + 44),
        });
    }
    Ok(Header {
        cipher_name: cstr(&b[8..40]),
        cipher_mode: cstr(&b[40..72]),
        hash_spec: cstr(&b[72..104]),
        payload_offset: be32(b, 104),
        key_bytes,
        mk_digest,
        mk_digest_salt,
        mk_digest_iter: be32(b, 164),
        uuid: cstr(&b[168..208]),
        slots,
    })
}
