//! `autodetect_serial=setconsole=RE` patterns (`crates/init/src/ere.rs`):
//! a pattern and a text separated by the first NUL, each at most the
//! kernel command line's 4096 bytes. Invariants: no panic, no stack
//! overflow, matching ends (libFuzzer's timeout), and a pattern of
//! letters and digits only matches exactly where it is a substring.
#![no_main]

use alpinit::ere::Ere;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let (pattern, text) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    if pattern.len() > MAX || text.len() > MAX {
        return;
    }
    let pattern = String::from_utf8_lossy(pattern);
    let text = String::from_utf8_lossy(text);
    let re = Ere::new(&pattern);
    if pattern.bytes().all(|b| b.is_ascii_alphanumeric()) {
        let re = re.expect("a literal pattern compiles");
        assert_eq!(re.is_match(&text), text.contains(&*pattern), "{pattern:?}");
    } else if let Ok(re) = re {
        re.is_match(&text);
    }
});
