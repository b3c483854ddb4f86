//! Module loading setup: the index of this kernel's modules, modprobe.d and
//! command-line configuration, and the explicit requests of `modules=`,
//! `rootfstype=` and `/etc/modules` (Alpine §3.4 step 12).

use crate::failure::chain;
use crate::layout::Layout;
use crate::log;
use alpinit_cmdline::Cmdline;
use alpinit_kmod::{Insmod, Loader, ModprobeConfig, ModuleIndex};
use std::sync::Arc;

pub fn config(layout: &Layout, cmdline: &Cmdline) -> ModprobeConfig {
    let etc = layout.path("/etc/modprobe.d");
    let lib = layout.path("/lib/modprobe.d");
    let mut config =
        ModprobeConfig::load_dirs(&[etc.as_path(), lib.as_path()]).unwrap_or_else(|e| {
            log::warn(&format!("modprobe configuration: {}", chain(&e)));
            ModprobeConfig::default()
        });
    let blacklist = cmdline.blacklist();
    for b in &blacklist {
        config.add_blacklist(b);
    }
    if !blacklist.is_empty() {
        // Alpine writes the same file; later modprobe runs in the new root do not see it, but tools in the initramfs do.
        let text: String = blacklist
            .iter()
            .map(|b| format!("blacklist {b}\n"))
            .collect();
        let _ = std::fs::create_dir_all(&etc);
        let _ = std::fs::write(etc.join("boot-opt-blacklist.conf"), text);
    }
    let words: Vec<&str> = cmdline.other_words().iter().map(String::as_str).collect();
    config.add_cmdline(&words);
    config
}

/// Modules the new root needs but finding the boot media does not: loop
/// and squashfs, to mount the modloop (Alpine loads them up front).
/// Requested after discovery, waited for before switch_root.
pub fn request_after_discovery(loader: &Loader) {
    for m in ["loop", "squashfs"] {
        loader.request(m);
    }
}

/// The module loader over `insmod` (the platform's module insertion), with
/// the explicit requests of the command line and `/etc/modules` queued.
/// The modules phase: the loader over the platform's module insertion, with
/// the explicit requests queued, behind Alpine's progress line.
pub fn start(p: &crate::platform::Platform<'_>, layout: &Layout, cmdline: &Cmdline) -> Loader {
    let drivers = log::Progress::begin("Loading boot drivers");
    let loader = setup(layout, cmdline, p.insmod);
    drivers.ok();
    loader
}

pub fn setup(layout: &Layout, cmdline: &Cmdline, insmod: &Arc<dyn Insmod>) -> Loader {
    let etc_modules = std::fs::read_to_string(layout.path("/etc/modules"))
        .map(|t| alpinit_kmod::parse_etc_modules(&t))
        .unwrap_or_default();
    let mut config = config(layout, cmdline);
    let memdisk = crate::memdisk::configure(layout, cmdline, &mut config);
    for (name, args) in &etc_modules {
        if !args.is_empty() {
            config.add_options(name, args);
        }
    }
    let config = Arc::new(config);
    let index = match layout.modules_dir().map(|d| ModuleIndex::load(&d)) {
        Some(Ok(i)) => i,
        Some(Err(e)) => {
            log::warn(&format!(
                "module index: {}; relying on built-in drivers",
                chain(&e)
            ));
            ModuleIndex::parse(std::path::Path::new("/lib/modules"), "", "", "", "")
        }
        None => {
            log::warn("cannot read the kernel release; relying on built-in drivers");
            ModuleIndex::parse(std::path::Path::new("/lib/modules"), "", "", "", "")
        }
    };
    let loader = Loader::new(Arc::new(index), config, Arc::clone(insmod));
    let mut wanted = cmdline.modules();
    if let Some(fs) = cmdline.rootfstype() {
        wanted.push(fs.to_owned());
    }
    for m in &wanted {
        loader.request(m);
    }
    for (name, _) in &etc_modules {
        loader.request(name);
    }
    if memdisk {
        for m in ["phram", "mtdblock"] {
            loader.request(m);
        }
    }
    loader
}
