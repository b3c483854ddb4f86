//! The public key parser of signed overlays (PEM, SubjectPublicKeyInfo,
//! PKCS#1): any panic is a bug; an accepted key has the shape its algorithm
//! needs, and verifying with it never panics.
#![no_main]

use alpinit::signature::pem::{parse, Algorithm, MAX_PEM_BYTES};
use libfuzzer_sys::fuzz_target;
use ring::signature::{UnparsedPublicKey, ED25519, RSA_PKCS1_2048_8192_SHA256};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = parse(data) {
        assert!(data.len() <= MAX_PEM_BYTES);
        let ok = match key.algorithm {
            Algorithm::Ed25519 => {
                assert_eq!(key.key.len(), 32);
                UnparsedPublicKey::new(&ED25519, &key.key).verify(b"m", &[0; 64])
            }
            Algorithm::RsaSha256 => {
                assert_eq!(key.key.first(), Some(&0x30));
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.key).verify(b"m", &[0; 256])
            }
        };
        assert!(ok.is_err(), "a zero signature must never verify");
    }
});
