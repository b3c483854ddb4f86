//! Prints the load plan for names or modaliases against a module directory, in the format of
//! `modprobe --show-depends` (paths relative to the module directory), for comparing the two:
//! `cargo run -p alpinit-kmod --example plan -- /lib/modules/$(uname -r) ext4 fs-vfat`.

use std::path::Path;
use std::process::ExitCode;

use alpinit_kmod::{ModprobeConfig, ModuleIndex};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((moddir, names)) = args.split_first() else {
        eprintln!("usage: plan MODDIR NAME...");
        return ExitCode::FAILURE;
    };
    let moddir = Path::new(moddir);
    let index = match ModuleIndex::load(moddir) {
        Ok(index) => index,
        Err(e) => {
            eprintln!("{e}: {}", e.source_text());
            return ExitCode::FAILURE;
        }
    };
    let config = ModprobeConfig::default();
    for name in names {
        println!("== {name}");
        match index.plan(name, &config) {
            Ok(steps) => {
                for step in steps {
                    let path = step.path.strip_prefix(moddir).unwrap_or(&step.path);
                    println!("insmod {} {}", path.display(), step.params);
                }
            }
            Err(e) => println!("error: {e}"),
        }
    }
    ExitCode::SUCCESS
}

trait SourceText {
    fn source_text(&self) -> String;
}

impl<E: std::error::Error> SourceText for E {
    fn source_text(&self) -> String {
        self.source().map(ToString::to_string).unwrap_or_default()
    }
}
