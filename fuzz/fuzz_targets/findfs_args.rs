//! nlplug-findfs' command line (`crates/init/src/findfs_cli/args.rs`):
//! NUL-separated arguments, as a script could pass them. Invariants: no
//! panic; a parsed `-k` range never leaves an empty key path.
#![no_main]

use alpinit::findfs_cli::{parse, ParseOutcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let argv: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if let ParseOutcome::Run(args) = parse(&argv) {
        if args.crypt.key_range.is_some() {
            assert!(args.crypt.key.as_deref().is_some_and(|k| !k.is_empty()));
        }
    }
});
