//! One netlink uevent datagram; any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    alpinit_uevent::fuzz(data);
});
