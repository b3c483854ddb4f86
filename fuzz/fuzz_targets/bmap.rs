//! The busybox binary keymap parser: any panic is a bug, and an accepted
//! keymap is exactly the flagged tables, whole, in loadkmap's order.
#![no_main]

use alpinit::keymap::{parse, MAGIC, MAX_NR_KEYMAPS, NR_KEYS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = parse(data) {
        let flags = &data[MAGIC.len()..MAGIC.len() + MAX_NR_KEYMAPS];
        let tables = flags.iter().filter(|f| **f == 1).count();
        assert_eq!(entries.len(), tables * NR_KEYS);
        assert!(data.len() >= MAGIC.len() + MAX_NR_KEYMAPS + entries.len() * 2);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(usize::from(e.index), i % NR_KEYS);
            assert_eq!(flags[usize::from(e.table)], 1);
        }
    }
});
