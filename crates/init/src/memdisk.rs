//! `memdisk`: a disk image syslinux' MEMDISK left in low memory, mapped as
//! an MTD block device. `initramfs-init` runs
//! `modprobe phram phram=memdisk,$(memdiskfind)` and `modprobe mtdblock`;
//! `memdiskfind` (syslinux, mkinitfs' `memdisk` feature) is done here in
//! process: the mBFT table MEMDISK installs is searched for in base memory
//! through `/dev/mem`, from the top of the BIOS' free base memory (or of
//! the low "System RAM" of `/proc/iomem`, whichever is higher) to 640 KiB,
//! on 16-byte boundaries.

use crate::layout::Layout;
use crate::log;
use alpinit_cmdline::Cmdline;
use alpinit_kmod::ModprobeConfig;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// End of conventional memory: the search never reads past it.
const BASE_END: u64 = 0xa0000;
/// BIOS data area: free base memory in KiB.
const BDA_FREE_BASE_KIB: u64 = 0x413;
const PAGE: u64 = 4096;
/// ACPI header (36) + safe hook (4) + the MEMDISK info fields up to
/// `olddosmem` (26).
const MBFT_MIN_LENGTH: usize = 36 + 4 + 26;
/// Offsets in the mBFT: ACPI length, then the MEMDISK info structure.
const MDI: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum MemdiskError {
    #[error("reading {path}: {source}")]
    Iomem {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} shows no System RAM below 640 KiB")]
    NoBaseMemory { path: PathBuf },
    #[error("opening {path}: {source}")]
    OpenMem {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path} at {at:#x}: {source}")]
    ReadMem {
        path: PathBuf,
        at: u64,
        source: std::io::Error,
    },
    #[error("free base memory {kib} KiB is outside 64-640 KiB: no MEMDISK")]
    BaseMemory { kib: u64 },
    #[error("no MEMDISK table (mBFT) in base memory")]
    NotFound,
}

/// Where the disk is: `phram`'s `START,LEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    pub start: u32,
    pub len: u64,
}

impl Disk {
    /// The `phram=` module parameter Alpine passes.
    pub fn phram_param(&self) -> String {
        format!("phram=memdisk,{:#x},{:#x}", self.start, self.len)
    }
}

/// Top of the low "System RAM" in `/proc/iomem`, page aligned (memdiskfind's
/// `memlimit`).
fn memlimit(iomem: &str) -> u64 {
    let mut maxram = 0;
    for line in iomem.lines() {
        let Some((range, user)) = line.trim_start().split_once(" : ") else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        if user != "System RAM" || start >= BASE_END {
            continue;
        }
        maxram = if end >= BASE_END { BASE_END } else { end + 1 };
    }
    maxram & !(PAGE - 1)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The disk an mBFT at the start of `b` describes, if it is a valid one.
fn mbft(b: &[u8]) -> Option<Disk> {
    if b.len() < MBFT_MIN_LENGTH || &b[..4] != b"mBFT" {
        return None;
    }
    let length = u32_at(b, 4) as usize;
    if length < MBFT_MIN_LENGTH || length > b.len() {
        return None;
    }
    if length != usize::from(u16_at(b, MDI)) + MDI {
        return None;
    }
    if b[..length].iter().fold(0u8, |s, x| s.wrapping_add(*x)) != 0 {
        return None;
    }
    let shift = match b[MDI + 27] {
        0 => 9,
        s => u32::from(s),
    };
    Some(Disk {
        start: u32_at(b, MDI + 4),
        len: u64::from(u32_at(b, MDI + 8)).checked_shl(shift)?,
    })
}

/// memdiskfind: the MEMDISK disk of this machine.
pub fn find(layout: &Layout) -> Result<Disk, MemdiskError> {
    let iomem_path = layout.proc().join("iomem");
    let iomem = std::fs::read_to_string(&iomem_path).map_err(|source| MemdiskError::Iomem {
        path: iomem_path.clone(),
        source,
    })?;
    let mapbase = memlimit(&iomem);
    if mapbase == 0 {
        return Err(MemdiskError::NoBaseMemory { path: iomem_path });
    }
    let mem_path = layout.dev().join("mem");
    let mem = File::open(&mem_path).map_err(|source| MemdiskError::OpenMem {
        path: mem_path.clone(),
        source,
    })?;
    let read = |at: u64, buf: &mut [u8]| {
        mem.read_exact_at(buf, at)
            .map_err(|source| MemdiskError::ReadMem {
                path: mem_path.clone(),
                at,
                source,
            })
    };
    let mut kib = [0u8; 2];
    read(BDA_FREE_BASE_KIB, &mut kib)?;
    let kib = u64::from(u16::from_le_bytes(kib));
    let fbm = (kib << 10).max(mapbase);
    if !(64 << 10..640 << 10).contains(&fbm) {
        return Err(MemdiskError::BaseMemory { kib: fbm >> 10 });
    }
    // At most 640 KiB, read once.
    let mut base = vec![0u8; (BASE_END - mapbase) as usize];
    read(mapbase, &mut base)?;
    let from = (fbm - mapbase) as usize;
    (from..base.len())
        .step_by(16)
        .find_map(|at| mbft(&base[at..]))
        .ok_or(MemdiskError::NotFound)
}

/// `memdisk`: when MEMDISK's table is found, `phram` gets the disk as its
/// parameter; returns whether `phram` and `mtdblock` are to be loaded.
/// Said once when there is no MEMDISK.
pub fn configure(layout: &Layout, cmdline: &Cmdline, config: &mut ModprobeConfig) -> bool {
    if !cmdline.is_yes("memdisk") {
        return false;
    }
    match find(layout) {
        Ok(disk) => {
            log::info(&format!("memdisk: {}", disk.phram_param()));
            config.add_options("phram", &disk.phram_param());
            true
        }
        Err(e) => {
            log::warn(&format!("memdisk: {}", crate::failure::chain(&e)));
            false
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A valid mBFT for a disk of `sectors` 512-byte sectors at `start`.
    pub fn table(start: u32, sectors: u32) -> Vec<u8> {
        let mut t = vec![0u8; MDI + 30];
        t[..4].copy_from_slice(b"mBFT");
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[MDI..MDI + 2].copy_from_slice(&30u16.to_le_bytes());
        t[MDI + 4..MDI + 8].copy_from_slice(&start.to_le_bytes());
        t[MDI + 8..MDI + 12].copy_from_slice(&sectors.to_le_bytes());
        let sum = t.iter().fold(0u8, |s, x| s.wrapping_add(*x));
        t[9] = 0u8.wrapping_sub(sum);
        t
    }

    /// `/dev/mem` (the first 640 KiB) with free base memory `kib` and
    /// `table` at `at`.
    pub fn base_memory(kib: u16, table: &[u8], at: usize) -> Vec<u8> {
        let mut mem = vec![0u8; BASE_END as usize];
        mem[0x413..0x415].copy_from_slice(&kib.to_le_bytes());
        mem[at..at + table.len()].copy_from_slice(table);
        mem
    }

    pub const IOMEM: &str = "00000000-00000fff : Reserved\n\
        00001000-0009efff : System RAM\n\
        0009f000-000fffff : Reserved\n\
        00100000-7ffdffff : System RAM\n  01000000-01e00000 : Kernel code\n";

    fn machine(mem: &[u8], iomem: &str) -> (tempfile::TempDir, Layout) {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        std::fs::create_dir_all(layout.dev()).unwrap();
        std::fs::create_dir_all(layout.proc()).unwrap();
        std::fs::write(layout.dev().join("mem"), mem).unwrap();
        std::fs::write(layout.proc().join("iomem"), iomem).unwrap();
        (tmp, layout)
    }

    #[test]
    fn memlimit_is_the_top_of_low_system_ram() {
        assert_eq!(memlimit(IOMEM), 0x9f000);
        assert_eq!(memlimit("00100000-7ffdffff : System RAM\n"), 0);
    }

    #[test]
    fn finds_the_table_above_free_base_memory() {
        let t = table(0x7f00_0000, 2880);
        let (_tmp, layout) = machine(&base_memory(636, &t, 0x9f000 + 0x40), IOMEM);
        let disk = find(&layout).unwrap();
        assert_eq!(
            disk,
            Disk {
                start: 0x7f00_0000,
                len: 2880 * 512
            }
        );
        assert_eq!(disk.phram_param(), "phram=memdisk,0x7f000000,0x168000");
    }

    #[test]
    fn a_table_with_a_bad_checksum_or_below_the_search_is_not_a_memdisk() {
        let mut t = table(0x7f00_0000, 2880);
        t[9] ^= 1;
        let (_tmp, layout) = machine(&base_memory(636, &t, 0x9f000), IOMEM);
        assert!(matches!(find(&layout), Err(MemdiskError::NotFound)));
        // Below the start of the search (the free base memory).
        let t = table(0x7f00_0000, 2880);
        let (_tmp, layout) = machine(&base_memory(636, &t, 0x8000), IOMEM);
        assert!(matches!(find(&layout), Err(MemdiskError::NotFound)));
    }

    #[test]
    fn missing_dev_mem_names_it() {
        let (_tmp, layout) = machine(&[], IOMEM);
        std::fs::remove_file(layout.dev().join("mem")).unwrap();
        let e = find(&layout).unwrap_err();
        assert!(e.to_string().contains("dev/mem"), "{e}");
    }
}
