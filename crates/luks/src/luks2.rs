//! The LUKS2 header: two copies of a 4096-byte binary header, each followed by its JSON
//! metadata area and covered by a checksum (cryptsetup's `docs/on-disk-format-luks2.pdf`).

use std::io::{Read, Seek};

use crate::crypto::Hash;
use crate::json::{self, Value};
use crate::{read_at, LuksError};

pub const BINARY_LEN: usize = 4096;
/// The sizes a header copy (binary header + JSON area) may have, which are also the
/// offsets where the second copy may sit.
pub const AREA_SIZES: [u64; 9] = [
    0x4000, 0x8000, 0x1_0000, 0x2_0000, 0x4_0000, 0x8_0000, 0x10_0000, 0x20_0000, 0x40_0000,
];
const MAGIC_1: &[u8; 6] = b"LUKS\xba\xbe";
const MAGIC_2: &[u8; 6] = b"SKUL\xba\xbe";
const CSUM_AT: usize = 448;
const CSUM_LEN: usize = 64;

/// One valid header copy.
#[derive(Debug, Clone)]
pub struct Copy {
    pub seqid: u64,
    pub uuid: String,
    pub json: Value,
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Why one header copy was not used.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("no LUKS2 magic")]
    Magic,
    #[error("header size {0:#x} is not one LUKS2 allows")]
    Size(u64),
    #[error("header says it is at {found:#x}, read at {at:#x}")]
    Offset { found: u64, at: u64 },
    #[error("unsupported checksum algorithm {0:?}")]
    ChecksumAlg(String),
    #[error("checksum mismatch")]
    Checksum,
    #[error("metadata: {0}")]
    Json(#[from] json::JsonError),
    #[error(transparent)]
    Io(#[from] Box<LuksError>),
}

/// Read and verify the copy whose binary header is at `at`.
pub fn read_copy<R: Read + Seek>(dev: &mut R, at: u64, primary: bool) -> Result<Copy, CopyError> {
    let bin = read_at(dev, at, BINARY_LEN).map_err(|e| CopyError::Io(Box::new(e)))?;
    let magic = if primary { MAGIC_1 } else { MAGIC_2 };
    if &bin[..6] != magic || bin[6..8] != [0, 2] {
        return Err(CopyError::Magic);
    }
    let size = be64(&bin, 8);
    if !AREA_SIZES.contains(&size) {
        return Err(CopyError::Size(size));
    }
    let hdr_offset = be64(&bin, 256);
    if hdr_offset != at {
        return Err(CopyError::Offset {
            found: hdr_offset,
            at,
        });
    }
    let alg = cstr(&bin[72..104]);
    let hash = Hash::from_name(&alg).map_err(|_| CopyError::ChecksumAlg(alg.clone()))?;
    // `size` is at most 4 MiB (checked above).
    let mut area = read_at(dev, at, size as usize).map_err(|e| CopyError::Io(Box::new(e)))?;
    let mut stored = [0u8; CSUM_LEN];
    stored.copy_from_slice(&area[CSUM_AT..CSUM_AT + CSUM_LEN]);
    area[CSUM_AT..CSUM_AT + CSUM_LEN].fill(0);
    let sum = hash.digest(&[&area]);
    if sum[..] != stored[..hash.output_len()] {
        return Err(CopyError::Checksum);
    }
    let text = &area[BINARY_LEN..];
    let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
    let json = json::parse(&text[..end])?;
    Ok(Copy {
        seqid: be64(&bin, 16),
        uuid: cstr(&bin[168..208]),
        json,
    })
}

/// Both copies: the primary at 0, the secondary where the primary's size says, or,
/// when the primary is unusable, at each offset LUKS2 allows. The newer valid copy
/// (higher sequence id) wins, as in cryptsetup.
pub fn read<R: Read + Seek>(dev: &mut R) -> Result<Copy, LuksError> {
    let primary = read_copy(dev, 0, true);
    let mut secondary = Err(CopyError::Magic);
    for &at in &AREA_SIZES {
        secondary = read_copy(dev, at, false);
        if !matches!(secondary, Err(CopyError::Magic | CopyError::Io(_))) {
            break;
        }
    }
    match (primary, secondary) {
        (Ok(p), Ok(s)) => Ok(if s.seqid > p.seqid { s } else { p }),
        (Ok(p), Err(_)) => Ok(p),
        (Err(_), Ok(s)) => Ok(s),
        (Err(primary), Err(secondary)) => Err(LuksError::NoValidLuks2Header { primary, secondary }),
    }
}

/// The parts of the metadata unlocking uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub keyslots: Vec<Keyslot>,
    pub segments: Vec<(String, Value)>,
    pub digests: Vec<Digest>,
    /// (token id, type, key slots it serves)
    pub tokens: Vec<(String, String, Vec<String>)>,
    pub flags: Vec<String>,
    pub requirements: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyslot {
    pub id: String,
    pub kind: String,
    /// 0 ignore, 1 normal, 2 high.
    pub priority: u64,
    pub json: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub id: String,
    pub kind: String,
    pub keyslots: Vec<String>,
    pub segments: Vec<String>,
    pub json: Value,
}

pub(crate) fn meta_err(what: impl Into<String>) -> LuksError {
    LuksError::Metadata { what: what.into() }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a [(String, Value)], LuksError> {
    v.as_object()
        .ok_or_else(|| meta_err(format!("{path} is not an object")))
}

pub(crate) fn field<'a>(v: &'a Value, path: &str, name: &str) -> Result<&'a Value, LuksError> {
    v.get(name)
        .ok_or_else(|| meta_err(format!("{path} has no {name:?}")))
}

pub(crate) fn string<'a>(v: &'a Value, path: &str, name: &str) -> Result<&'a str, LuksError> {
    field(v, path, name)?
        .as_str()
        .ok_or_else(|| meta_err(format!("{path}.{name} is not a string")))
}

pub(crate) fn number(v: &Value, path: &str, name: &str) -> Result<u64, LuksError> {
    field(v, path, name)?
        .as_u64()
        .ok_or_else(|| meta_err(format!("{path}.{name} is not a non-negative integer")))
}

/// A 64-bit value LUKS2 writes as a decimal string (offsets, sizes).
pub(crate) fn u64_string(v: &Value, path: &str, name: &str) -> Result<u64, LuksError> {
    string(v, path, name)?
        .parse()
        .map_err(|_| meta_err(format!("{path}.{name} is not a decimal number")))
}

fn string_list(v: &Value, path: &str, name: &str) -> Result<Vec<String>, LuksError> {
    let list = field(v, path, name)?
        .as_array()
        .ok_or_else(|| meta_err(format!("{path}.{name} is not an array")))?;
    list.iter()
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| meta_err(format!("{path}.{name} holds a non-string")))
        })
        .collect()
}

impl Metadata {
    pub fn from_json(root: &Value) -> Result<Metadata, LuksError> {
        let mut keyslots = Vec::new();
        for (id, ks) in object(field(root, "metadata", "keyslots")?, "keyslots")? {
            let path = format!("keyslots.{id}");
            let priority = match ks.get("priority") {
                None => 1,
                Some(_) => number(ks, &path, "priority")?,
            };
            let kind = string(ks, &path, "type")?.to_string();
            keyslots.push(Keyslot {
                id: id.clone(),
                kind,
                priority,
                json: ks.clone(),
            });
        }
        let segments = object(field(root, "metadata", "segments")?, "segments")?.to_vec();
        let mut digests = Vec::new();
        for (id, d) in object(field(root, "metadata", "digests")?, "digests")? {
            let path = format!("digests.{id}");
            digests.push(Digest {
                id: id.clone(),
                kind: string(d, &path, "type")?.to_string(),
                keyslots: string_list(d, &path, "keyslots")?,
                segments: string_list(d, &path, "segments")?,
                json: d.clone(),
            });
        }
        let mut tokens = Vec::new();
        if let Some(t) = root.get("tokens") {
            for (id, tok) in object(t, "tokens")? {
                let path = format!("tokens.{id}");
                let kind = string(tok, &path, "type")?.to_string();
                tokens.push((id.clone(), kind, string_list(tok, &path, "keyslots")?));
            }
        }
        let config = field(root, "metadata", "config")?;
        let flags = match config.get("flags") {
            Some(_) => string_list(config, "config", "flags")?,
            None => Vec::new(),
        };
        let requirements = match config.get("requirements") {
            Some(r) => match r.get("mandatory") {
                Some(_) => string_list(r, "config.requirements", "mandatory")?,
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        Ok(Metadata {
            keyslots,
            segments,
            digests,
            tokens,
            flags,
            requirements,
        })
    }
}
