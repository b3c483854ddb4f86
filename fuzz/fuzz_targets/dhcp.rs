//! One DHCP reply (BOOTP header, magic cookie, options) and its lease; any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    alpinit_net::fuzz_dhcp(data);
});
