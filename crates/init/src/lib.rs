//! alpinit: Alpine's `initramfs-init` and `nlplug-findfs` as one static
//! program. [`entry`] is PID 1's `main`; [`boot`] reads as the list of boot
//! phases.

pub mod aoe;
pub mod assemble;
pub mod boot;
pub mod bootchart;
pub mod cloud;
pub mod consoles;
pub mod crypt;
pub mod devices;
pub mod discovery;
pub mod early;
pub mod emergency;
pub mod ere;
pub mod explain;
pub mod failure;
pub mod findfs_cli;
pub mod free_initramfs;
pub mod fstab;
pub mod handover;
pub mod in_root;
pub mod install;
pub mod keymap;
pub mod keys;
pub mod layout;
pub mod log;
pub mod media;
pub mod memdisk;
pub mod modules;
pub mod nbd;
pub mod network;
pub mod new_root;
pub mod options;
pub mod overlay;
pub mod packages;
pub mod password;
pub mod pending;
pub mod platform;
pub mod reap;
pub mod resume;
pub mod rollback;
pub mod root_mode;
pub mod rootfs;
pub mod signature;
pub mod splash;
pub mod switch;
pub mod sysroot;
pub mod wait;
pub mod wireguard;

#[cfg(test)]
mod tests;

use layout::Layout;

/// Process entry point.
pub fn entry() {
    let t_start = log::monotonic();
    let argv: Vec<String> = std::env::args().collect();
    let called = argv
        .first()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or("");
    if called == "nlplug-findfs" {
        std::process::exit(findfs_cli::main(&argv[1..]));
    }
    if called == free_initramfs::NAME {
        std::process::exit(free_initramfs::main(&argv[1..]));
    }
    emergency::install_panic_hook();
    if std::process::id() != 1 {
        eprintln!("alpinit: this is the initramfs /init and must run as PID 1");
        std::process::exit(2);
    }
    let layout = Layout::new("/");
    let kernel = platform::Kernel::default();
    boot::run(&kernel.platform(), &layout, t_start);
}
