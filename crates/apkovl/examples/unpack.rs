//! `unpack OVERLAY SYSROOT`: unpacks a plain apkovl and prints the report (for manual
//! checks and benchmarks against `tar -xzf`).

use std::path::Path;
use std::process::ExitCode;

use alpinit_apkovl::{unpack_file, Limits};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, ovl, root] = &args[..] else {
        eprintln!("usage: unpack OVERLAY SYSROOT");
        return ExitCode::from(2);
    };
    match unpack_file(Path::new(ovl), Path::new(root), &Limits::default()) {
        Ok(r) => {
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            println!("{} entries, {} bytes", r.entries, r.bytes);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
