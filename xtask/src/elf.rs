//! The image builder's check that `/init` can run on the machine the image
//! is for: a 64-bit little-endian ELF executable of the image's
//! architecture with no program interpreter (the initramfs has no dynamic
//! loader, so a dynamic init would fail with a bare `ENOENT` from the
//! kernel). Cross builds make a wrong-architecture binary an easy mistake.

use std::path::{Path, PathBuf};

use crate::kernel::Arch;

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a 64-bit little-endian ELF file")]
    NotElf64 { path: PathBuf },
    #[error("{path} is cut short: its {what} lies beyond its {len} bytes")]
    Truncated {
        path: PathBuf,
        what: &'static str,
        len: usize,
    },
    #[error("{path} is not an executable (ELF type {kind})")]
    NotExecutable { path: PathBuf, kind: u16 },
    #[error("{path} is built for ELF machine {found} ({found_name}), the image is for {want}")]
    WrongArch {
        path: PathBuf,
        found: u16,
        found_name: &'static str,
        want: Arch,
    },
    #[error(
        "{path} is dynamically linked (it names a program interpreter); the init must be static"
    )]
    Dynamic { path: PathBuf },
}

fn machine(arch: Arch) -> u16 {
    match arch {
        Arch::X86_64 => EM_X86_64,
        Arch::Aarch64 => EM_AARCH64,
    }
}

fn machine_name(em: u16) -> &'static str {
    match em {
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        3 => "i386",
        40 => "arm",
        243 => "riscv",
        _ => "other",
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Checks that BYTES (the file at PATH) is a static executable for ARCH.
pub fn check_static_executable(path: &Path, bytes: &[u8], arch: Arch) -> Result<(), ElfError> {
    let path = path.to_path_buf();
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return Err(ElfError::NotElf64 { path });
    }
    let truncated = |what| ElfError::Truncated {
        path: path.clone(),
        what,
        len: bytes.len(),
    };
    let kind = u16_at(bytes, 16).ok_or_else(|| truncated("type"))?;
    // A static-pie is ET_DYN without an interpreter.
    if kind != ET_EXEC && kind != ET_DYN {
        return Err(ElfError::NotExecutable { path, kind });
    }
    let em = u16_at(bytes, 18).ok_or_else(|| truncated("machine"))?;
    if em != machine(arch) {
        return Err(ElfError::WrongArch {
            path,
            found: em,
            found_name: machine_name(em),
            want: arch,
        });
    }
    let phoff = u64_at(bytes, 32).ok_or_else(|| truncated("program header offset"))?;
    let phentsize = u16_at(bytes, 54).ok_or_else(|| truncated("program header size"))?;
    let phnum = u16_at(bytes, 56).ok_or_else(|| truncated("program header count"))?;
    for i in 0..u64::from(phnum) {
        let at = phoff
            .checked_add(i * u64::from(phentsize))
            .and_then(|at| usize::try_from(at).ok())
            .ok_or_else(|| truncated("program header table"))?;
        let p_type = u32_at(bytes, at).ok_or_else(|| truncated("program header table"))?;
        if p_type == PT_INTERP {
            return Err(ElfError::Dynamic { path });
        }
    }
    Ok(())
}

/// [`check_static_executable`] on the file at PATH.
pub fn check_file(path: &Path, arch: Arch) -> Result<(), ElfError> {
    let bytes = std::fs::read(path).map_err(|source| ElfError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    check_static_executable(path, &bytes, arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with PHNUM program headers of the given types.
    fn elf(kind: u16, em: u16, headers: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&kind.to_le_bytes());
        b[18..20].copy_from_slice(&em.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        for p_type in headers {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&p_type.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn a_static_aarch64_init_passes_only_for_aarch64() {
        let p = Path::new("/init");
        let static_arm = elf(ET_EXEC, EM_AARCH64, &[1, 1, 4]);
        assert!(check_static_executable(p, &static_arm, Arch::Aarch64).is_ok());
        let err = check_static_executable(p, &static_arm, Arch::X86_64).unwrap_err();
        assert!(matches!(
            err,
            ElfError::WrongArch {
                found: EM_AARCH64,
                want: Arch::X86_64,
                ..
            }
        ));
        assert!(err.to_string().contains("aarch64"), "{err}");
        // static-pie: ET_DYN without PT_INTERP
        let pie = elf(ET_DYN, EM_X86_64, &[6, 1, 2]);
        assert!(check_static_executable(p, &pie, Arch::X86_64).is_ok());
    }

    #[test]
    fn a_dynamic_or_broken_init_is_refused_with_the_reason() {
        let p = Path::new("/init");
        let dynamic = elf(ET_DYN, EM_AARCH64, &[6, PT_INTERP, 1]);
        assert!(matches!(
            check_static_executable(p, &dynamic, Arch::Aarch64),
            Err(ElfError::Dynamic { .. })
        ));
        let object = elf(1, EM_AARCH64, &[]);
        assert!(matches!(
            check_static_executable(p, &object, Arch::Aarch64),
            Err(ElfError::NotExecutable { kind: 1, .. })
        ));
        assert!(matches!(
            check_static_executable(p, b"#!/bin/sh\n", Arch::Aarch64),
            Err(ElfError::NotElf64 { .. })
        ));
        let mut cut = elf(ET_EXEC, EM_AARCH64, &[1, 1]);
        cut.truncate(64 + 56 + 2);
        assert!(matches!(
            check_static_executable(p, &cut, Arch::Aarch64),
            Err(ElfError::Truncated { .. })
        ));
    }

    /// The test binary itself is a dynamic x86_64 (glibc) executable: the
    /// parser reads real headers, not only the ones built above.
    #[test]
    fn the_host_test_binary_reads_as_dynamic_x86_64() {
        let me = std::env::current_exe().expect("current exe");
        let bytes = std::fs::read(&me).expect("read self");
        if cfg!(all(target_arch = "x86_64", target_env = "gnu")) {
            assert!(matches!(
                check_static_executable(&me, &bytes, Arch::X86_64),
                Err(ElfError::Dynamic { .. })
            ));
            assert!(matches!(
                check_static_executable(&me, &bytes, Arch::Aarch64),
                Err(ElfError::WrongArch { .. })
            ));
        }
    }
}
