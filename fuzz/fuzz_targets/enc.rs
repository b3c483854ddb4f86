//! `openssl enc` container decryption (fixed password `fuzz`); any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    alpinit_apkovl::fuzz_decrypt(data);
});
