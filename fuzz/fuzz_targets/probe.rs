//! Filesystem and partition-table probing of a device image; any panic is a bug.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = alpinit_probe::probe_bytes(data);
    for partn in 1..=4 {
        let _ = alpinit_probe::partition_uuid(&mut Cursor::new(data), data.len() as u64, partn);
    }
});
