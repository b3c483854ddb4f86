//! The guest architectures: their Rust, Debian and QEMU names.

use super::QEMU;

/// The guest architectures the scenarios boot. x86_64 is the host's own;
/// aarch64 runs under TCG on the `virt` board (there is no KVM for it here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    pub fn parse(name: &str) -> Option<Arch> {
        match name {
            "x86_64" | "amd64" | "x86-64" => Some(Arch::X86_64),
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// The name Alpine and Rust use (`/etc/apk/arch`, target triples).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Debian's architecture name (`linux-image-*-arm64`, `pkg:arm64`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The static musl target the init and the test programs are built for.
    pub fn musl_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    pub fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => QEMU,
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The kernel's name of the machine's first serial port: the 8250 on
    /// `pc`, the PL011 on `virt`.
    pub fn serial_console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        for arch in Arch::ALL {
            assert_eq!(Arch::parse(arch.name()), Some(arch));
            assert_eq!(Arch::parse(arch.debian()), Some(arch));
            assert!(arch.musl_target().starts_with(arch.name()));
        }
        assert_eq!(Arch::parse("riscv64"), None);
        assert_eq!(Arch::Aarch64.serial_console(), "ttyAMA0");
        assert_eq!(Arch::X86_64.serial_console(), "ttyS0");
    }
}
