//! The primitives a key slot needs: the hashes LUKS names, PBKDF2 and Argon2 with
//! bounded costs, the key slot area decryption and the anti-forensic merge.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockCipher, BlockDecrypt, BlockEncrypt, BlockSizeUser, KeyInit};
use aes::{Aes128, Aes192, Aes256};
use ring::{digest, pbkdf2};
use std::num::NonZeroU32;
use zeroize::{Zeroize, Zeroizing};

/// LUKS key slot areas are always encrypted in 512-byte sectors, numbered from 0 at
/// the start of the area (cryptsetup's `docs/on-disk-format-luks2.pdf` §3.2, LUKS1 §2.4).
pub const AREA_SECTOR: usize = 512;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("unsupported hash {0:?}")]
    UnsupportedHash(String),
    #[error("unsupported cipher {0:?} (supported: aes-xts-plain64, aes-xts-plain, aes-cbc-essiv:sha256, aes-cbc-plain64, aes-cbc-plain)")]
    UnsupportedCipher(String),
    #[error("cipher {cipher} cannot use a {bits}-bit key")]
    KeySize { cipher: String, bits: usize },
    #[error("{kdf}: {what} is {value}, above what this machine allows ({limit}{unit}); {why}")]
    CostTooHigh {
        kdf: &'static str,
        what: &'static str,
        value: u64,
        limit: u64,
        unit: &'static str,
        why: &'static str,
    },
    #[error("{kdf}: invalid parameters: {what}")]
    BadKdfParams { kdf: &'static str, what: String },
    #[error("Argon2 needs {kib} KiB of memory, which could not be allocated")]
    OutOfMemory { kib: u64 },
}

/// The hash functions LUKS headers name for PBKDF2, the anti-forensic split and the
/// header checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha512,
}

impl Hash {
    pub fn from_name(name: &str) -> Result<Hash, CryptoError> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Ok(Hash::Sha1),
            "sha256" => Ok(Hash::Sha256),
            "sha512" => Ok(Hash::Sha512),
            _ => Err(CryptoError::UnsupportedHash(name.to_string())),
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha512 => 64,
        }
    }

    // The hashes and PBKDF2 are ring's: ring is in the init already for the
    // overlay signatures and TLS (crates/init/Cargo.toml), so a second
    // SHA-1/SHA-2/HMAC implementation would only add to the binary.
    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    /// Hash the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        let mut h = digest::Context::new(self.digest_algorithm());
        for p in parts {
            h.update(p);
        }
        h.finish().as_ref().to_vec()
    }

    /// PBKDF2-HMAC into `out`. 0 rounds derive as 1 round, as cryptsetup's
    /// and RustCrypto's PBKDF2 do (the first block is always computed).
    pub fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
        let algorithm = match self {
            Hash::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
            Hash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Hash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        };
        let rounds = NonZeroU32::new(rounds).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(algorithm, rounds, salt, password, out);
    }
}

/// What the key derivation may cost PID 1. A header is attacker-controlled: without
/// these a header asking for 4 GiB of Argon2 memory or 2^32 PBKDF2 rounds would take
/// the machine down or hang the boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Argon2 memory, KiB.
    pub argon2_memory_kib: u64,
    /// Argon2 memory (KiB) times passes: the work of one derivation.
    pub argon2_work: u64,
    pub argon2_lanes: u32,
    pub pbkdf2_iterations: u32,
}

impl Limits {
    /// Limits for a machine with `mem_available` bytes free (`MemAvailable` of
    /// `/proc/meminfo`): Argon2 may take three quarters of it, so the init and the
    /// kernel keep the rest. cryptsetup sizes Argon2 at half the RAM of the machine that
    /// formatted the volume (at most 1 GiB), so a volume made on the machine that boots
    /// it fits.
    pub fn for_mem_available(mem_available: u64) -> Limits {
        Limits {
            argon2_memory_kib: mem_available / 1024 / 4 * 3,
            // 64 GiB of block passes: minutes on a slow machine, never hours.
            argon2_work: 64 * 1024 * 1024,
            argon2_lanes: 64,
            // cryptsetup benchmarks PBKDF2 to 2 s; even 10 s on a fast machine is far
            // below this (about 50 million SHA-256 rounds).
            pbkdf2_iterations: 200_000_000,
        }
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    kib.checked_mul(1024)
}

pub fn check_pbkdf2(iterations: u64, limits: &Limits) -> Result<u32, CryptoError> {
    if iterations == 0 {
        return Err(CryptoError::BadKdfParams {
            kdf: "pbkdf2",
            what: "0 iterations".into(),
        });
    }
    if iterations > u64::from(limits.pbkdf2_iterations) {
        return Err(CryptoError::CostTooHigh {
            kdf: "pbkdf2",
            what: "the iteration count",
            value: iterations,
            limit: limits.pbkdf2_iterations.into(),
            unit: "",
            why: "the derivation would hold the boot for too long",
        });
    }
    // limits.pbkdf2_iterations is a u32, so this fits.
    Ok(iterations as u32)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Argon2Kind {
    I,
    Id,
}

/// An Argon2 key slot's costs as the header gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    pub kind: Argon2Kind,
    /// Passes.
    pub time: u64,
    pub memory_kib: u64,
    /// Lanes (LUKS2 `cpus`).
    pub lanes: u64,
}

/// Argon2 (version 0x13, as cryptsetup uses) into `out`, refusing costs above `limits`
/// before allocating anything; the memory is reserved fallibly.
pub fn argon2(
    cost: &Argon2Cost,
    password: &[u8],
    salt: &[u8],
    limits: &Limits,
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let Argon2Cost {
        kind,
        time,
        memory_kib,
        lanes,
    } = *cost;
    let kdf = match kind {
        Argon2Kind::I => "argon2i",
        Argon2Kind::Id => "argon2id",
    };
    if memory_kib > limits.argon2_memory_kib {
        return Err(CryptoError::CostTooHigh {
            kdf,
            what: "the memory cost",
            value: memory_kib,
            limit: limits.argon2_memory_kib,
            unit: " KiB",
            why: "three quarters of MemAvailable",
        });
    }
    if lanes > u64::from(limits.argon2_lanes) {
        return Err(CryptoError::CostTooHigh {
            kdf,
            what: "the parallel cost",
            value: lanes,
            limit: limits.argon2_lanes.into(),
            unit: "",
            why: "more lanes than any header cryptsetup writes",
        });
    }
    let work = memory_kib.saturating_mul(time);
    if work > limits.argon2_work {
        return Err(CryptoError::CostTooHigh {
            kdf,
            what: "memory × time",
            value: work,
            limit: limits.argon2_work,
            unit: " KiB passes",
            why: "the derivation would hold the boot for too long",
        });
    }
    let bad = |what: String| CryptoError::BadKdfParams { kdf, what };
    let m = u32::try_from(memory_kib).map_err(|_| bad(format!("memory {memory_kib}")))?;
    let t = u32::try_from(time).map_err(|_| bad(format!("time {time}")))?;
    let p = u32::try_from(lanes).map_err(|_| bad(format!("cpus {lanes}")))?;
    let cost = alpinit_argon2::Cost {
        variant: match kind {
            Argon2Kind::I => alpinit_argon2::Variant::I,
            Argon2Kind::Id => alpinit_argon2::Variant::Id,
        },
        memory_kib: m,
        passes: t,
        lanes: p,
    };
    alpinit_argon2::derive(&cost, password, salt, out).map_err(|e| match e {
        alpinit_argon2::ParamError::OutOfMemory { .. } => {
            CryptoError::OutOfMemory { kib: memory_kib }
        }
        e => bad(e.to_string()),
    })
}

/// A cipher specification in dm-crypt's form, `aes-xts-plain64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherSpec {
    mode: Mode,
    iv: Iv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Xts,
    Cbc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iv {
    Plain,
    Plain64,
    EssivSha256,
}

impl CipherSpec {
    /// Parse `aes-xts-plain64` and the other supported forms; anything else is an
    /// error naming the cipher.
    pub fn parse(spec: &str) -> Result<CipherSpec, CryptoError> {
        let unsupported = || CryptoError::UnsupportedCipher(spec.to_string());
        let mut parts = spec.splitn(3, '-');
        let (Some(cipher), Some(mode), Some(iv)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(unsupported());
        };
        if cipher != "aes" {
            return Err(unsupported());
        }
        let mode = match mode {
            "xts" => Mode::Xts,
            "cbc" => Mode::Cbc,
            _ => return Err(unsupported()),
        };
        let iv = match iv {
            "plain" => Iv::Plain,
            "plain64" => Iv::Plain64,
            "essiv:sha256" if mode == Mode::Cbc => Iv::EssivSha256,
            _ => return Err(unsupported()),
        };
        Ok(CipherSpec { mode, iv })
    }

    /// Whether the mode is CBC (`aes-cbc-*`).
    pub fn is_cbc(&self) -> bool {
        self.mode == Mode::Cbc
    }

    /// Whether the IV is ESSIV (`essiv:sha256`).
    pub fn is_essiv(&self) -> bool {
        self.iv == Iv::EssivSha256
    }

    /// Whether `key_len` bytes are a valid key for this cipher.
    pub fn key_len_ok(&self, key_len: usize) -> bool {
        match self.mode {
            Mode::Xts => matches!(key_len, 32 | 48 | 64),
            Mode::Cbc => matches!(key_len, 16 | 24 | 32),
        }
    }

    /// Decrypt `buf` (whole 512-byte sectors, the first numbered 0) in place.
    pub fn decrypt_area(&self, name: &str, key: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
        if !self.key_len_ok(key.len()) {
            return Err(CryptoError::KeySize {
                cipher: name.to_string(),
                bits: key.len() * 8,
            });
        }
        match (self.mode, key.len()) {
            (Mode::Xts, 32) => xts::<Aes128>(key, self.iv, buf),
            (Mode::Xts, 48) => xts::<Aes192>(key, self.iv, buf),
            (Mode::Xts, _) => xts::<Aes256>(key, self.iv, buf),
            (Mode::Cbc, 16) => cbc::<Aes128>(key, self.iv, buf),
            (Mode::Cbc, 24) => cbc::<Aes192>(key, self.iv, buf),
            (Mode::Cbc, _) => cbc::<Aes256>(key, self.iv, buf),
        }
        Ok(())
    }
}

fn sector_iv(iv: Iv, sector: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    match iv {
        // plain: the low 32 bits of the sector number.
        Iv::Plain => out[..4].copy_from_slice(&(sector as u32).to_le_bytes()),
        Iv::Plain64 | Iv::EssivSha256 => out[..8].copy_from_slice(&sector.to_le_bytes()),
    }
    out
}

fn xts<C>(key: &[u8], iv: Iv, buf: &mut [u8])
where
    C: BlockCipher
        + BlockEncrypt
        + BlockDecrypt
        + KeyInit
        + BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
{
    let half = key.len() / 2;
    let (k1, k2) = key.split_at(half);
    let xts = xts_mode::Xts128::new(
        C::new(GenericArray::from_slice(k1)),
        C::new(GenericArray::from_slice(k2)),
    );
    for (n, sector) in buf.chunks_exact_mut(AREA_SECTOR).enumerate() {
        xts.decrypt_sector(sector, sector_iv(iv, n as u64));
    }
}

fn cbc<C>(key: &[u8], iv: Iv, buf: &mut [u8])
where
    C: BlockCipher
        + BlockEncrypt
        + BlockDecrypt
        + KeyInit
        + BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
{
    let cipher = C::new(GenericArray::from_slice(key));
    // ESSIV: the IV is the sector number encrypted under the hash of the key.
    let essiv = match iv {
        Iv::EssivSha256 => {
            let salt = Zeroizing::new(Hash::Sha256.digest(&[key]));
            Some(Aes256::new(GenericArray::from_slice(&salt[..])))
        }
        _ => None,
    };
    for (n, sector) in buf.chunks_exact_mut(AREA_SECTOR).enumerate() {
        let mut prev = GenericArray::from(sector_iv(iv, n as u64));
        if let Some(e) = &essiv {
            e.encrypt_block(&mut prev);
        }
        for block in sector.chunks_exact_mut(16) {
            let ct = GenericArray::clone_from_slice(block);
            let b = GenericArray::from_mut_slice(block);
            cipher.decrypt_block(b);
            for (x, p) in b.iter_mut().zip(prev.iter()) {
                *x ^= p;
            }
            prev = ct;
        }
    }
}

/// The anti-forensic merge (LUKS1 spec §2.4, `AF-merge`): `stripes` blocks of
/// `key.len()` bytes in `split` become the key.
pub fn af_merge(hash: Hash, split: &[u8], stripes: usize, key_len: usize) -> Zeroizing<Vec<u8>> {
    let mut d = Zeroizing::new(vec![0u8; key_len]);
    for i in 0..stripes {
        let block = &split[i * key_len..(i + 1) * key_len];
        for (x, s) in d.iter_mut().zip(block) {
            *x ^= s;
        }
        if i + 1 < stripes {
            diffuse(hash, &mut d);
        }
    }
    d
}

/// Hash each digest-sized chunk of `d` with its big-endian index in front.
fn diffuse(hash: Hash, d: &mut [u8]) {
    let n = hash.output_len();
    for (i, chunk) in d.chunks_mut(n).enumerate() {
        let mut h = hash.digest(&[&(i as u32).to_be_bytes(), chunk]);
        let len = chunk.len();
        chunk.copy_from_slice(&h[..len]);
        h.zeroize();
    }
}

/// Equality without an early exit on the first differing byte.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn pbkdf2_matches_rfc6070_style_vectors_for_each_luks_hash() {
        // P = "password", S = "salt" (RFC 6070 for SHA-1; the same inputs for SHA-256
        // and SHA-512 as Python's hashlib.pbkdf2_hmac gives them), 1 and 2 rounds, and
        // an output longer than one SHA-256 block (LUKS derives 64-byte XTS keys that way).
        let cases: [(Hash, u32, usize, &str); 7] = [
            (Hash::Sha1, 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6"),
            (Hash::Sha1, 2, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"),
            (Hash::Sha256, 1, 32, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"),
            (Hash::Sha256, 2, 32, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"),
            (Hash::Sha256, 1, 40, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b4dbf3a2f3dad3377"),
            (Hash::Sha512, 1, 64, "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"),
            (Hash::Sha512, 2, 64, "e1d9c16aa681708a45f5c7c4e215ceb66e011a2e9f0040713f18aefdb866d53cf76cab2868a39b9f7840edce4fef5a82be67335c77a6068e04112754f27ccf4e"),
        ];
        for (hash, rounds, len, want) in cases {
            let mut out = vec![0u8; len];
            hash.pbkdf2(b"password", b"salt", rounds, &mut out);
            assert_eq!(hex(&out), want, "{hash:?} {rounds} rounds");
        }
    }

    #[test]
    fn pbkdf2_with_zero_rounds_derives_as_one_round() {
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha512] {
            let mut zero = [0u8; 48];
            let mut one = [0u8; 48];
            hash.pbkdf2(b"pw", b"salt", 0, &mut zero);
            hash.pbkdf2(b"pw", b"salt", 1, &mut one);
            assert_eq!(zero, one, "{hash:?}");
            assert_ne!(zero, [0u8; 48]);
        }
    }

    #[test]
    fn digests_of_split_parts_match_the_whole() {
        // SHA-1("abc"), SHA-256("abc"), SHA-512("abc") from FIPS 180-2, given in parts.
        let parts: [&[u8]; 2] = [b"a", b"bc"];
        assert_eq!(
            hex(&Hash::Sha1.digest(&parts)),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&Hash::Sha256.digest(&parts)),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&Hash::Sha512.digest(&parts)),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha512] {
            assert_eq!(hash.digest(&parts).len(), hash.output_len());
        }
    }

    #[test]
    fn af_merge_of_one_stripe_is_identity() {
        let key = [7u8; 32];
        assert_eq!(&af_merge(Hash::Sha256, &key, 1, 32)[..], &key[..]);
    }

    #[test]
    fn af_merge_inverts_a_split() {
        // Build a split by hand as the spec describes: random stripes s_1..s_{n-1},
        // then s_n = key XOR diffuse(... s_{n-1}).
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha512] {
            let key: Vec<u8> = (0..48u8).collect();
            let stripes = 5;
            let mut split = Vec::new();
            let mut d = vec![0u8; key.len()];
            for i in 0..stripes - 1 {
                let s: Vec<u8> = (0..key.len()).map(|j| (i * 31 + j * 7) as u8).collect();
                for (x, y) in d.iter_mut().zip(&s) {
                    *x ^= y;
                }
                diffuse(hash, &mut d);
                split.extend_from_slice(&s);
            }
            split.extend(d.iter().zip(&key).map(|(a, b)| a ^ b));
            assert_eq!(&af_merge(hash, &split, stripes, key.len())[..], &key[..]);
        }
    }

    #[test]
    fn cipher_specs() {
        assert!(CipherSpec::parse("aes-xts-plain64").is_ok());
        assert!(CipherSpec::parse("aes-cbc-essiv:sha256").is_ok());
        for bad in [
            "serpent-xts-plain64",
            "aes-xts-essiv:sha256",
            "aes-ecb",
            "aes",
            "aes-cbc-benbi",
        ] {
            assert_eq!(
                CipherSpec::parse(bad),
                Err(CryptoError::UnsupportedCipher(bad.into()))
            );
        }
        let xts = CipherSpec::parse("aes-xts-plain64").unwrap();
        assert!(xts.key_len_ok(64) && xts.key_len_ok(32) && !xts.key_len_ok(16));
    }

    #[test]
    fn xts_plain64_matches_ieee_1619_vector_2() {
        // IEEE P1619 XTS-AES-128 vector 2 uses a 32-byte data unit; the per-sector
        // loop only needs whole 512-byte sectors, so check the tweak/IV form directly.
        let key = [0x11u8; 16];
        let key2 = [0x22u8; 16];
        let xts = xts_mode::Xts128::new(Aes128::new(&key.into()), Aes128::new(&key2.into()));
        let mut data = [0x44u8; 32];
        let mut tweak = [0u8; 16];
        tweak[..5].copy_from_slice(&[0x33, 0x33, 0x33, 0x33, 0x33]);
        xts.encrypt_sector(&mut data, tweak);
        assert_eq!(data[..8], [0xc4, 0x54, 0x18, 0x5e, 0x6a, 0x16, 0x93, 0x6e]);
    }

    #[test]
    fn cost_limits_refuse_before_work() {
        let limits = Limits::for_mem_available(64 << 20);
        let mut out = [0u8; 32];
        let cost = Argon2Cost {
            kind: Argon2Kind::Id,
            time: 4,
            memory_kib: 1 << 20,
            lanes: 4,
        };
        let e = argon2(&cost, b"p", &[0; 32], &limits, &mut out);
        assert!(
            matches!(
                e,
                Err(CryptoError::CostTooHigh {
                    what: "the memory cost",
                    ..
                })
            ),
            "{e:?}"
        );
        assert!(check_pbkdf2(u64::from(u32::MAX), &limits).is_err());
        assert_eq!(check_pbkdf2(1000, &limits), Ok(1000));
    }

    #[test]
    fn mem_available_reads_meminfo() {
        let text = "MemTotal:        2000000 kB\nMemFree:  100 kB\nMemAvailable:    1500000 kB\n";
        assert_eq!(mem_available(text), Some(1_500_000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }
}
