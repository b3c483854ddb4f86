//! LUKS1 and LUKS2 in process: read the header (both LUKS2 copies, checksums, the JSON
//! metadata through a bounded reader of our own), derive a key slot's key from a
//! passphrase or key file (PBKDF2, Argon2i, Argon2id, with costs bounded by
//! [`Limits`]), decrypt the key slot area, merge the anti-forensic stripes, check the
//! volume key against the digest, and describe the data segment for dm-crypt
//! ([`dm`] loads it).
//!
//! Everything read from the device is untrusted: offsets and sizes are checked before
//! any read or allocation, and the work a header can ask for is capped.
//!
//! What is not supported fails with [`LuksError::Unsupported`] naming the feature
//! (integrity, other ciphers, reencryption, ...), so a caller can hand the volume to
//! cryptsetup instead.

use std::io::{self, Read, Seek, SeekFrom};

use zeroize::Zeroizing;

mod base64;
pub mod crypto;
pub mod dm;
pub mod json;
mod luks1;
mod luks2;
mod unlock;

pub use crypto::{mem_available, CryptoError, Limits};
pub use unlock::SlotSkip;

/// The largest single read the header code does: a LUKS2 header copy (4 MiB) or a key
/// slot area (key size × 4000 stripes, at most 512 KiB).
const MAX_READ: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LuksError {
    #[error("read {len} bytes at offset {offset}: {source}")]
    Read {
        offset: u64,
        len: usize,
        source: io::Error,
    },
    #[error("not a LUKS volume (no LUKS magic)")]
    NotLuks,
    #[error("unsupported LUKS version {0}")]
    Version(u16),
    #[error("LUKS1 header: {what}")]
    Luks1Header { what: String },
    #[error("no valid LUKS2 header: primary: {primary}; secondary: {secondary}")]
    NoValidLuks2Header {
        primary: luks2::CopyError,
        secondary: luks2::CopyError,
    },
    #[error("LUKS2 metadata: {what}")]
    Metadata { what: String },
    #[error("unsupported LUKS feature: {feature}")]
    Unsupported { feature: String },
    #[error("{}", unlock::describe_no_match(.tried, .skipped))]
    NoKeyslotMatched {
        tried: Vec<String>,
        skipped: Vec<(String, SlotSkip)>,
    },
}

/// The data segment as dm-crypt needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// dm-crypt cipher specification, e.g. `aes-xts-plain64`.
    pub cipher: String,
    /// Start of the encrypted data on the data device, bytes.
    pub offset: u64,
    /// Length in bytes; `None` is LUKS2's "dynamic" (to the end of the device).
    pub size: Option<u64>,
    /// Encryption sector size, bytes (512 or 4096).
    pub sector_size: u32,
    /// Added to the sector number for the IV (LUKS2 `iv_tweak`).
    pub iv_tweak: u64,
    /// dm-crypt optional parameters the header asks for (LUKS2 persistent flags), in
    /// cryptsetup's table order, e.g. `allow_discards`.
    pub flags: Vec<&'static str>,
}

/// A volume key that opened the volume, and where the data is.
#[derive(Debug)]
pub struct Unlocked {
    pub volume_key: Zeroizing<Vec<u8>>,
    /// The key slot that matched (`"0"`..).
    pub keyslot: String,
    pub segment: Segment,
}

/// A parsed LUKS header.
#[derive(Debug, Clone)]
pub struct Header {
    inner: Inner,
    uuid: String,
}

#[derive(Debug, Clone)]
enum Inner {
    V1(luks1::Header),
    V2(luks2::Metadata),
}

/// Read `len` bytes at `offset`; `len` is bounded by the callers to [`MAX_READ`].
pub(crate) fn read_at<R: Read + Seek>(
    dev: &mut R,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, LuksError> {
    let err = |source| LuksError::Read {
        offset,
        len,
        source,
    };
    if len > MAX_READ {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "read larger than 4 MiB",
        )));
    }
    dev.seek(SeekFrom::Start(offset)).map_err(err)?;
    let mut buf = vec![0u8; len];
    dev.read_exact(&mut buf).map_err(err)?;
    Ok(buf)
}

impl Header {
    /// Read the header at the start of `dev` (a LUKS device or a detached header file).
    pub fn read<R: Read + Seek>(dev: &mut R) -> Result<Header, LuksError> {
        let first = read_at(dev, 0, luks1::HEADER_LEN);
        if let Ok(b) = &first {
            if &b[..6] == b"LUKS\xba\xbe" {
                match u16::from_be_bytes([b[6], b[7]]) {
                    1 => {
                        let h = luks1::parse(b)?;
                        let uuid = h.uuid.clone();
                        return Ok(Header {
                            inner: Inner::V1(h),
                            uuid,
                        });
                    }
                    2 => {}
                    v => return Err(LuksError::Version(v)),
                }
            }
        }
        // LUKS2, or a LUKS2 device whose primary header was damaged: the secondary
        // copy may still be there.
        match luks2::read(dev) {
            Ok(copy) => {
                let meta = luks2::Metadata::from_json(&copy.json)?;
                Ok(Header {
                    inner: Inner::V2(meta),
                    uuid: copy.uuid,
                })
            }
            Err(LuksError::NoValidLuks2Header {
                primary: luks2::CopyError::Magic,
                secondary: luks2::CopyError::Magic | luks2::CopyError::Io(_),
            }) => match first {
                Err(e) => Err(e),
                Ok(_) => Err(LuksError::NotLuks),
            },
            Err(e) => Err(e),
        }
    }

    /// 1 or 2.
    pub fn version(&self) -> u8 {
        match self.inner {
            Inner::V1(_) => 1,
            Inner::V2(_) => 2,
        }
    }

    /// The volume UUID as written in the header.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The data segment, or [`LuksError::Unsupported`] naming what this crate cannot
    /// open. Checked before any key derivation, so a caller can fall back to
    /// cryptsetup without asking for a passphrase first.
    pub fn segment(&self) -> Result<Segment, LuksError> {
        match &self.inner {
            Inner::V1(h) => unlock::luks1_segment(h),
            Inner::V2(m) => unlock::luks2_segment(m).map(|(_, s)| s),
        }
    }

    /// Try `passphrase` (or key file contents) on every usable key slot, highest
    /// priority first, and return the volume key of the first that matches.
    /// `dev` holds the key slot areas: the device, or the detached header.
    pub fn unlock<R: Read + Seek>(
        &self,
        dev: &mut R,
        passphrase: &[u8],
        limits: &Limits,
    ) -> Result<Unlocked, LuksError> {
        match &self.inner {
            Inner::V1(h) => unlock::luks1(h, dev, passphrase, limits),
            Inner::V2(m) => unlock::luks2(m, dev, passphrase, limits),
        }
    }
}
