//! LUKS header reading, the LUKS2 JSON reader, and unlocking with a fixed passphrase
//! under tight cost limits; any panic, overflow or unbounded allocation is a bug.
#![no_main]

use std::io::Cursor;

use alpinit_luks::{json, Header, Limits};
use libfuzzer_sys::fuzz_target;

// Low enough that every derivation a mutated header can ask for takes microseconds:
// headers at cryptsetup's cheapest costs (1000 PBKDF2 iterations) stop at the cost
// check, the seeds of `luks_seeds.py` (one iteration, one Argon2 pass over 8 KiB) go on
// through the key slot decryption, the anti-forensic merge and the digest check. The
// same code paths as the boot's limits, only lower.
const LIMITS: Limits = Limits {
    argon2_memory_kib: 64,
    argon2_work: 256,
    argon2_lanes: 4,
    pbkdf2_iterations: 16,
};

fuzz_target!(|data: &[u8]| {
    let _ = json::parse(data);
    if let Ok(h) = Header::read(&mut Cursor::new(data)) {
        let _ = h.segment();
        let _ = h.unlock(&mut Cursor::new(data), b"fuzz", &LIMITS);
    }
});
