//! `/init` of the initramfs. Also answers to the name `nlplug-findfs`, and
//! runs `alpinit explain` on a running system.

fn main() {
    if let Some(status) = alpinit::explain::from_argv(&std::env::args().collect::<Vec<_>>()) {
        std::process::exit(status);
    }
    alpinit::entry();
}
