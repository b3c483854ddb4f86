//! Public keys in PEM: `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo, what
//! `openssl pkey -pubout` writes, RSA or Ed25519) and `-----BEGIN RSA PUBLIC
//! KEY-----` (PKCS#1). Only what a public key needs is parsed: the base64 body
//! and a few DER headers, every length checked against what is left.

/// A key file is at most this big (an 8192-bit RSA key in PEM is under 1.5 KiB).
pub const MAX_PEM_BYTES: usize = 16 * 1024;

/// DER of `rsaEncryption` (1.2.840.113549.1.1.1).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// DER of `id-Ed25519` (1.3.101.112).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSA PKCS#1 v1.5 with SHA-256; the key is an `RSAPublicKey` DER.
    RsaSha256,
    /// Ed25519; the key is the 32 raw bytes.
    Ed25519,
}

/// A parsed public key: the bytes `ring` takes for its algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub algorithm: Algorithm,
    pub key: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    #[error("larger than {MAX_PEM_BYTES} bytes")]
    TooLarge,
    #[error("no -----BEGIN PUBLIC KEY----- or -----BEGIN RSA PUBLIC KEY----- block")]
    NoBlock,
    #[error("the block has no matching -----END ...----- line")]
    NoEnd,
    #[error("bad base64 at byte {0} of the block")]
    Base64(usize),
    #[error("bad DER: {0}")]
    Der(&'static str),
    #[error("not an RSA or Ed25519 key")]
    Algorithm,
}

/// Parses the first public key block of `text`.
pub fn parse(text: &[u8]) -> Result<PublicKey, PemError> {
    if text.len() > MAX_PEM_BYTES {
        return Err(PemError::TooLarge);
    }
    for (label, pkcs1) in [("PUBLIC KEY", false), ("RSA PUBLIC KEY", true)] {
        let begin = format!("-----BEGIN {label}-----");
        let Some(at) = find(text, begin.as_bytes()) else {
            continue;
        };
        let body = &text[at + begin.len()..];
        let end = format!("-----END {label}-----");
        let stop = find(body, end.as_bytes()).ok_or(PemError::NoEnd)?;
        let der = base64(&body[..stop])?;
        return if pkcs1 {
            rsa_public_key(&der)?;
            Ok(PublicKey {
                algorithm: Algorithm::RsaSha256,
                key: der,
            })
        } else {
            spki(&der)
        };
    }
    Err(PemError::NoBlock)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Standard base64 with `=` padding; whitespace between characters is skipped.
fn base64(body: &[u8]) -> Result<Vec<u8>, PemError> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    let (mut acc, mut bits, mut pad) = (0u32, 0u32, 0usize);
    for (i, &c) in body.iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return Err(PemError::Base64(i)),
        };
        if pad > 0 {
            return Err(PemError::Base64(i));
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 2 or 4 bits left over are the zero fill before `==` or `=`.
    if pad > 2 || bits >= 6 || acc != 0 || (pad > 0 && pad * 2 != bits as usize) {
        return Err(PemError::Base64(body.len()));
    }
    Ok(out)
}

/// Reads one DER TLV with tag `tag` from the front of `der`: (contents, rest).
fn tlv(der: &[u8], tag: u8) -> Result<(&[u8], &[u8]), PemError> {
    let (&t, rest) = der.split_first().ok_or(PemError::Der("ends early"))?;
    if t != tag {
        return Err(PemError::Der("unexpected tag"));
    }
    let (&first, mut rest) = rest.split_first().ok_or(PemError::Der("ends early"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return Err(PemError::Der("bad length"));
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if len > rest.len() {
        return Err(PemError::Der("length past the end"));
    }
    Ok(rest.split_at(len))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
const NULL: u8 = 0x05;

/// `SubjectPublicKeyInfo ::= SEQUENCE { SEQUENCE { OID, params }, BIT STRING }`.
fn spki(der: &[u8]) -> Result<PublicKey, PemError> {
    let (info, trailing) = tlv(der, SEQUENCE)?;
    if !trailing.is_empty() {
        return Err(PemError::Der("data after the key"));
    }
    let (alg, rest) = tlv(info, SEQUENCE)?;
    let (bits, rest) = tlv(rest, BIT_STRING)?;
    if !rest.is_empty() {
        return Err(PemError::Der("data after the key bits"));
    }
    let (&unused, key) = bits
        .split_first()
        .ok_or(PemError::Der("empty bit string"))?;
    if unused != 0 {
        return Err(PemError::Der("key bits not whole bytes"));
    }
    let (oid, params) = tlv(alg, OID)?;
    if oid == OID_RSA {
        // The parameters are NULL (RFC 3279 2.3.1).
        let (null, rest) = tlv(params, NULL)?;
        if !null.is_empty() || !rest.is_empty() {
            return Err(PemError::Der("RSA parameters are not NULL"));
        }
        rsa_public_key(key)?;
        Ok(PublicKey {
            algorithm: Algorithm::RsaSha256,
            key: key.to_vec(),
        })
    } else if oid == OID_ED25519 {
        // No parameters (RFC 8410 3), and the key is 32 bytes.
        if !params.is_empty() || key.len() != 32 {
            return Err(PemError::Der(
                "Ed25519 key is not 32 bytes without parameters",
            ));
        }
        Ok(PublicKey {
            algorithm: Algorithm::Ed25519,
            key: key.to_vec(),
        })
    } else {
        Err(PemError::Algorithm)
    }
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`;
/// the sizes are left to `ring` (2048 to 8192 bits).
fn rsa_public_key(der: &[u8]) -> Result<(), PemError> {
    let (seq, trailing) = tlv(der, SEQUENCE)?;
    let (_, rest) = tlv(seq, INTEGER)?;
    let (_, rest) = tlv(rest, INTEGER)?;
    if !rest.is_empty() || !trailing.is_empty() {
        return Err(PemError::Der("RSA key has extra fields"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ed25519 key as `openssl pkey -pubout` writes it.
    const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAMxrFs4uCZc8v4DGlszM7XzZgQ65aJhVe3X7E6Ob5PaY=\n\
        -----END PUBLIC KEY-----\n";

    #[test]
    fn ed25519_spki_gives_the_raw_key() {
        let k = parse(ED25519_PEM.as_bytes()).unwrap();
        assert_eq!(k.algorithm, Algorithm::Ed25519);
        assert_eq!(k.key.len(), 32);
        assert_eq!(&k.key[..4], &[0x33, 0x1a, 0xc5, 0xb3]);
    }

    #[test]
    fn base64_rules() {
        assert_eq!(base64(b"TWFu").unwrap(), b"Man");
        assert_eq!(base64(b"TWE=").unwrap(), b"Ma");
        assert_eq!(base64(b"TQ==").unwrap(), b"M");
        assert_eq!(base64(b"TW\nFu").unwrap(), b"Man");
        assert!(base64(b"TQ=").is_err());
        assert!(base64(b"TWE=TWFu").is_err());
        assert!(base64(b"TW!u").is_err());
        assert!(base64(b"TR==").is_err(), "non-zero fill bits");
    }

    #[test]
    fn malformed_keys_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"-----BEGIN PUBLIC KEY-----\nMCow",
            b"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----",
            b"-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----",
            b"-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----",
            b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VxAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----",
        ];
        for c in cases {
            assert!(parse(c).is_err(), "{:?}", String::from_utf8_lossy(c));
        }
        assert_eq!(
            parse(&vec![b'A'; MAX_PEM_BYTES + 1]),
            Err(PemError::TooLarge)
        );
    }

    #[test]
    fn der_lengths_past_the_end_are_rejected() {
        assert!(tlv(&[0x30, 0x82, 0xff, 0xff, 0], SEQUENCE).is_err());
        assert!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1], SEQUENCE).is_err());
        assert!(tlv(&[0x30, 0x80], SEQUENCE).is_err());
        assert_eq!(
            tlv(&[0x30, 1, 7, 9], SEQUENCE).unwrap(),
            (&[7u8][..], &[9u8][..])
        );
    }
}
