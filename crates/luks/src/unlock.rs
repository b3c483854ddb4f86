//! Key slot unlocking for both versions, and the data segment description.

use std::io::{Read, Seek};

use zeroize::Zeroizing;

use crate::crypto::{
    self, Argon2Cost, Argon2Kind, CipherSpec, CryptoError, Hash, Limits, AREA_SECTOR,
};
use crate::json::Value;
use crate::luks2::{field, meta_err, number, string, u64_string, Metadata};
use crate::{base64, luks1, read_at, LuksError, Segment, Unlocked};

/// Why a key slot was not (or not only) tried.
#[derive(Debug, thiserror::Error)]
pub enum SlotSkip {
    #[error("{0}")]
    Cost(#[source] CryptoError),
    #[error("uses {0}, which is not supported")]
    Unsupported(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("bound to token {token} ({kind}), which is not supported")]
    Token { token: String, kind: String },
    #[error("has priority 0 (ignore)")]
    Ignored,
}

pub(crate) fn describe_no_match(tried: &[String], skipped: &[(String, SlotSkip)]) -> String {
    let mut s = if tried.is_empty() {
        "no key slot could be tried".to_string()
    } else {
        format!(
            "no key slot matches the passphrase (tried {})",
            tried.join(", ")
        )
    };
    for (slot, why) in skipped {
        s.push_str(&format!("; key slot {slot} {why}"));
    }
    s
}

fn unsupported(feature: impl Into<String>) -> LuksError {
    LuksError::Unsupported {
        feature: feature.into(),
    }
}

/// The segment check shared by `segment()` and `unlock()`.
fn cipher_spec(cipher: &str) -> Result<CipherSpec, LuksError> {
    CipherSpec::parse(cipher).map_err(|_| unsupported(format!("cipher {cipher}")))
}

fn round_up(len: usize) -> usize {
    len.div_ceil(AREA_SECTOR) * AREA_SECTOR
}

pub(crate) fn luks1_segment(h: &luks1::Header) -> Result<Segment, LuksError> {
    let cipher = format!("{}-{}", h.cipher_name, h.cipher_mode);
    let spec = cipher_spec(&cipher)?;
    if !spec.key_len_ok(h.key_bytes as usize) {
        return Err(unsupported(format!(
            "cipher {cipher} with a {}-bit key",
            h.key_bytes * 8
        )));
    }
    Hash::from_name(&h.hash_spec).map_err(|_| unsupported(format!("hash {}", h.hash_spec)))?;
    Ok(Segment {
        cipher,
        offset: u64::from(h.payload_offset) * 512,
        size: None,
        sector_size: 512,
        iv_tweak: 0,
        flags: Vec::new(),
    })
}

pub(crate) fn luks1<R: Read + Seek>(
    h: &luks1::Header,
    dev: &mut R,
    passphrase: &[u8],
    limits: &Limits,
) -> Result<Unlocked, LuksError> {
    let segment = luks1_segment(h)?;
    let spec = cipher_spec(&segment.cipher)?;
    let hash =
        Hash::from_name(&h.hash_spec).map_err(|_| unsupported(format!("hash {}", h.hash_spec)))?;
    let digest_iter = crypto::check_pbkdf2(h.mk_digest_iter.into(), limits).map_err(|e| {
        LuksError::Luks1Header {
            what: e.to_string(),
        }
    })?;
    let key_len = h.key_bytes as usize;
    let mut tried = Vec::new();
    let mut skipped = Vec::new();
    for slot in &h.slots {
        let id = slot.index.to_string();
        if slot.stripes != luks1::STRIPES {
            skipped.push((id, SlotSkip::Invalid(format!("{} stripes", slot.stripes))));
            continue;
        }
        let rounds = match crypto::check_pbkdf2(slot.iterations.into(), limits) {
            Ok(r) => r,
            Err(e) => {
                skipped.push((id, SlotSkip::Cost(e)));
                continue;
            }
        };
        tried.push(id.clone());
        let mut derived = Zeroizing::new(vec![0u8; key_len]);
        hash.pbkdf2(passphrase, &slot.salt, rounds, &mut derived);
        let len = key_len * luks1::STRIPES as usize;
        let offset = u64::from(slot.key_material_offset) * 512;
        let mut area = Zeroizing::new(read_at(dev, offset, round_up(len))?);
        spec.decrypt_area(&segment.cipher, &derived, &mut area)
            .map_err(|e| LuksError::Luks1Header {
                what: e.to_string(),
            })?;
        let key = crypto::af_merge(hash, &area[..len], luks1::STRIPES as usize, key_len);
        let mut check = [0u8; 20];
        hash.pbkdf2(&key, &h.mk_digest_salt, digest_iter, &mut check);
        if crypto::ct_eq(&check, &h.mk_digest) {
            return Ok(Unlocked {
                volume_key: key,
                keyslot: id,
                segment,
            });
        }
    }
    Err(LuksError::NoKeyslotMatched { tried, skipped })
}

/// dm-crypt optional parameters for LUKS2 persistent flags, in cryptsetup's table
/// order (`lib/libdevmapper.c` `get_dm_crypt_params` in cryptsetup).
const FLAG_PARAMS: [(&str, &str); 6] = [
    ("allow-discards", "allow_discards"),
    ("same-cpu-crypt", "same_cpu_crypt"),
    ("submit-from-crypt-cpus", "submit_from_crypt_cpus"),
    ("no-read-workqueue", "no_read_workqueue"),
    ("no-write-workqueue", "no_write_workqueue"),
    ("high_priority", "high_priority"),
];

/// The single crypt segment: its id and description.
pub(crate) fn luks2_segment(m: &Metadata) -> Result<(String, Segment), LuksError> {
    if let Some(r) = m.requirements.first() {
        return Err(if r.starts_with("online-reencrypt") {
            unsupported(format!("reencryption in progress (requirement {r})"))
        } else {
            unsupported(format!("mandatory requirement {r}"))
        });
    }
    let (id, seg) = match m.segments.as_slice() {
        [] => return Err(meta_err("no data segment")),
        [one] => one,
        more => {
            return Err(unsupported(format!(
                "{} data segments (reencryption)",
                more.len()
            )))
        }
    };
    let path = format!("segments.{id}");
    let kind = string(seg, &path, "type")?;
    if kind != "crypt" {
        return Err(unsupported(format!("segment type {kind}")));
    }
    if let Some(integrity) = seg.get("integrity") {
        let t = integrity.get("type").and_then(Value::as_str).unwrap_or("?");
        return Err(unsupported(format!("integrity protection ({t})")));
    }
    let cipher = string(seg, &path, "encryption")?;
    cipher_spec(cipher)?;
    let sector_size = number(seg, &path, "sector_size")?;
    if !matches!(sector_size, 512 | 1024 | 2048 | 4096) {
        return Err(meta_err(format!("{path}.sector_size is {sector_size}")));
    }
    let offset = u64_string(seg, &path, "offset")?;
    if !offset.is_multiple_of(512) {
        return Err(meta_err(format!(
            "{path}.offset {offset} is not a multiple of 512"
        )));
    }
    let size = match string(seg, &path, "size")? {
        "dynamic" => None,
        _ => {
            let s = u64_string(seg, &path, "size")?;
            if !s.is_multiple_of(sector_size) {
                return Err(meta_err(format!(
                    "{path}.size {s} is not a multiple of the sector size"
                )));
            }
            Some(s)
        }
    };
    let iv_tweak = u64_string(seg, &path, "iv_tweak")?;
    let flags = FLAG_PARAMS
        .iter()
        .filter(|(luks, _)| m.flags.iter().any(|f| f == luks))
        .map(|&(_, dm)| dm)
        .collect();
    Ok((
        id.clone(),
        Segment {
            cipher: cipher.to_string(),
            offset,
            size,
            // One of four values checked above.
            sector_size: sector_size as u32,
            iv_tweak,
            flags,
        },
    ))
}

fn salt(v: &Value, path: &str, name: &str) -> Result<Vec<u8>, LuksError> {
    base64::decode(string(v, path, name)?)
        .ok_or_else(|| meta_err(format!("{path}.{name} is not base64")))
}

pub(crate) fn luks2<R: Read + Seek>(
    m: &Metadata,
    dev: &mut R,
    passphrase: &[u8],
    limits: &Limits,
) -> Result<Unlocked, LuksError> {
    let (seg_id, segment) = luks2_segment(m)?;
    let spec = cipher_spec(&segment.cipher)?;
    let digest = m
        .digests
        .iter()
        .find(|d| d.segments.contains(&seg_id))
        .ok_or_else(|| meta_err(format!("no digest covers segment {seg_id}")))?;
    if digest.kind != "pbkdf2" {
        return Err(unsupported(format!("digest type {}", digest.kind)));
    }
    let dpath = format!("digests.{}", digest.id);
    let dhash_name = string(&digest.json, &dpath, "hash")?;
    let dhash =
        Hash::from_name(dhash_name).map_err(|_| unsupported(format!("hash {dhash_name}")))?;
    let diter = crypto::check_pbkdf2(number(&digest.json, &dpath, "iterations")?, limits)
        .map_err(|e| meta_err(format!("{dpath}: {e}")))?;
    let dsalt = salt(&digest.json, &dpath, "salt")?;
    let dvalue = salt(&digest.json, &dpath, "digest")?;
    if dvalue.is_empty() || dvalue.len() > 64 {
        return Err(meta_err(format!(
            "{dpath}.digest has {} bytes",
            dvalue.len()
        )));
    }

    let mut slots: Vec<_> = m
        .keyslots
        .iter()
        .filter(|k| digest.keyslots.contains(&k.id))
        .collect();
    // Highest priority first, then by number, as cryptsetup tries them.
    alpinit_sort::sort_by_key(&mut slots, |k| {
        (
            std::cmp::Reverse(k.priority),
            k.id.parse::<u32>().unwrap_or(u32::MAX),
        )
    });
    let mut tried = Vec::new();
    let mut skipped = Vec::new();
    for ks in slots {
        if ks.priority == 0 {
            skipped.push((ks.id.clone(), SlotSkip::Ignored));
            continue;
        }
        if let Some((token, kind, _)) = m.tokens.iter().find(|(_, _, slots)| slots.contains(&ks.id))
        {
            skipped.push((
                ks.id.clone(),
                SlotSkip::Token {
                    token: token.clone(),
                    kind: kind.clone(),
                },
            ));
        }
        let key = match try_slot(ks, dev, passphrase, limits, spec, &segment.cipher) {
            Ok(key) => key,
            Err(Attempt::Skip(why)) => {
                skipped.push((ks.id.clone(), why));
                continue;
            }
            Err(Attempt::Fatal(e)) => return Err(e),
        };
        tried.push(ks.id.clone());
        let mut check = Zeroizing::new(vec![0u8; dvalue.len()]);
        dhash.pbkdf2(&key, &dsalt, diter, &mut check);
        if crypto::ct_eq(&check, &dvalue) {
            return Ok(Unlocked {
                volume_key: key,
                keyslot: ks.id.clone(),
                segment,
            });
        }
    }
    Err(LuksError::NoKeyslotMatched { tried, skipped })
}

enum Attempt {
    Skip(SlotSkip),
    Fatal(LuksError),
}

impl From<LuksError> for Attempt {
    fn from(e: LuksError) -> Attempt {
        match e {
            LuksError::Unsupported { feature } => Attempt::Skip(SlotSkip::Unsupported(feature)),
            LuksError::Metadata { what } => Attempt::Skip(SlotSkip::Invalid(what)),
            e => Attempt::Fatal(e),
        }
    }
}

/// Derive, decrypt and merge one LUKS2 key slot: the candidate volume key.
fn try_slot<R: Read + Seek>(
    ks: &crate::luks2::Keyslot,
    dev: &mut R,
    passphrase: &[u8],
    limits: &Limits,
    segment_spec: CipherSpec,
    segment_cipher: &str,
) -> Result<Zeroizing<Vec<u8>>, Attempt> {
    let path = format!("keyslots.{}", ks.id);
    let v = &ks.json;
    if ks.kind != "luks2" {
        return Err(Attempt::Skip(SlotSkip::Unsupported(format!(
            "key slot type {}",
            ks.kind
        ))));
    }
    let key_size = number(v, &path, "key_size")? as usize;
    if !segment_spec.key_len_ok(key_size) {
        return Err(unsupported(format!(
            "cipher {segment_cipher} with a {}-bit key",
            key_size * 8
        ))
        .into());
    }
    let af = field(v, &path, "af")?;
    let af_path = format!("{path}.af");
    let af_type = string(af, &af_path, "type")?;
    if af_type != "luks1" {
        return Err(unsupported(format!("anti-forensic splitter {af_type}")).into());
    }
    let stripes = number(af, &af_path, "stripes")?;
    if stripes == 0 || stripes > u64::from(luks1::STRIPES) {
        return Err(Attempt::Skip(SlotSkip::Invalid(format!(
            "{stripes} stripes"
        ))));
    }
    let af_hash_name = string(af, &af_path, "hash")?;
    let af_hash =
        Hash::from_name(af_hash_name).map_err(|_| unsupported(format!("hash {af_hash_name}")))?;

    let area = field(v, &path, "area")?;
    let area_path = format!("{path}.area");
    let area_type = string(area, &area_path, "type")?;
    if area_type != "raw" {
        return Err(unsupported(format!("key slot area type {area_type}")).into());
    }
    let area_offset = u64_string(area, &area_path, "offset")?;
    let area_size = u64_string(area, &area_path, "size")?;
    let area_cipher = string(area, &area_path, "encryption")?;
    let area_spec = cipher_spec(area_cipher)?;
    let area_key_size = number(area, &area_path, "key_size")? as usize;
    if !area_spec.key_len_ok(area_key_size) {
        return Err(unsupported(format!(
            "cipher {area_cipher} with a {}-bit key",
            area_key_size * 8
        ))
        .into());
    }
    // stripes ≤ 4000 and key_size ≤ 64: at most 256,000 bytes.
    let len = key_size * stripes as usize;
    if round_up(len) as u64 > area_size {
        return Err(Attempt::Skip(SlotSkip::Invalid(format!(
            "area of {area_size} bytes holds no {len}-byte split key"
        ))));
    }

    let kdf = field(v, &path, "kdf")?;
    let kdf_path = format!("{path}.kdf");
    let kdf_type = string(kdf, &kdf_path, "type")?;
    let kdf_salt = salt(kdf, &kdf_path, "salt")?;
    let mut derived = Zeroizing::new(vec![0u8; area_key_size]);
    match kdf_type {
        "pbkdf2" => {
            let h = string(kdf, &kdf_path, "hash")?;
            let hash = Hash::from_name(h).map_err(|_| unsupported(format!("hash {h}")))?;
            let rounds = crypto::check_pbkdf2(number(kdf, &kdf_path, "iterations")?, limits)
                .map_err(|e| Attempt::Skip(SlotSkip::Cost(e)))?;
            hash.pbkdf2(passphrase, &kdf_salt, rounds, &mut derived);
        }
        "argon2i" | "argon2id" => {
            let kind = if kdf_type == "argon2i" {
                Argon2Kind::I
            } else {
                Argon2Kind::Id
            };
            let time = number(kdf, &kdf_path, "time")?;
            let memory = number(kdf, &kdf_path, "memory")?;
            let cpus = number(kdf, &kdf_path, "cpus")?;
            let cost = Argon2Cost {
                kind,
                time,
                memory_kib: memory,
                lanes: cpus,
            };
            crypto::argon2(&cost, passphrase, &kdf_salt, limits, &mut derived)
                .map_err(|e| Attempt::Skip(SlotSkip::Cost(e)))?;
        }
        other => return Err(unsupported(format!("key derivation {other}")).into()),
    }
    let mut buf = Zeroizing::new(read_at(dev, area_offset, round_up(len))?);
    area_spec
        .decrypt_area(area_cipher, &derived, &mut buf)
        .map_err(|e| Attempt::Skip(SlotSkip::Cost(e)))?;
    Ok(crypto::af_merge(
        af_hash,
        &buf[..len],
        stripes as usize,
        key_size,
    ))
}
