//! modules.alias / modules.dep / modules.softdep texts, then lookups and load plans.
//!
//! Input layout: `alias NUL dep NUL softdep`; missing parts are empty, so a file without
//! NUL bytes fuzzes the alias index alone.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (alias, dep, softdep) = (next(), next(), next());
    alpinit_kmod::fuzz_parse_indexes(&alias, &dep, &softdep);
});
