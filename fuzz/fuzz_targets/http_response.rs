//! HTTP/1.1 response head and body framing (length, chunked, close); any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    alpinit_net::fuzz_http_response(data);
});
