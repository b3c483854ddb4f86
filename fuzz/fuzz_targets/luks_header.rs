//! LUKS header reading, the LUKS2 JSON reader, and unlocking with a fixed passphrase
//! under tight cost limits; any panic, overflow or unbounded allocation is a bug.
#![no_main]

use std::io::Cursor;

use alpinit_luks::{json, Header, Limits};
use libfuzzer_sys::fuzz_target;

// Small enough that a mutated header's key derivation stays fast; the same code paths
// as the boot's limits, only lower.
const LIMITS: Limits = Limits {
    argon2_memory_kib: 1024,
    argon2_work: 8192,
    argon2_lanes: 4,
    pbkdf2_iterations: 2000,
};

fuzz_target!(|data: &[u8]| {
    let _ = json::parse(data);
    if let Ok(h) = Header::read(&mut Cursor::new(data)) {
        let _ = h.segment();
        let _ = h.unlock(&mut Cursor::new(data), b"fuzz", &LIMITS);
    }
});
