//! Kernel command line parsing and every accessor; any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // /proc/cmdline is bytes; the init reads it lossily, so exercise the same text.
    alpinit_cmdline::fuzz(&String::from_utf8_lossy(data));
});
