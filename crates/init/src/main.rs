//! `/init` of the initramfs. Also answers to the name `nlplug-findfs`.

fn main() {
    alpinit::entry();
}
