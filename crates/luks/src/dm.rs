//! dm-crypt mappings through the device-mapper ioctls on `/dev/mapper/control`
//! (the kernel's `include/uapi/linux/dm-ioctl.h`): create the device, load a one-target
//! crypt table, resume it; remove it again if any step fails.
//!
//! The ioctl buffers are built byte by byte (no `repr(C)` casts), so the layout is
//! visible and unit-tested without a kernel.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::Segment;

/// `sizeof(struct dm_ioctl)`.
pub const DM_IOCTL_SIZE: usize = 312;
/// `sizeof(struct dm_target_spec)`.
pub const DM_TARGET_SPEC_SIZE: usize = 40;
const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
/// The interface major version this code speaks; the kernel refuses another major.
const DM_VERSION_MAJOR: u32 = 4;

const DM_READONLY_FLAG: u32 = 1 << 0;
/// Ask the kernel to wipe its copy of the buffer (the table holds the key).
const DM_SECURE_DATA_FLAG: u32 = 1 << 15;

/// The ioctl numbers: `_IOWR(0xfd, nr, struct dm_ioctl)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Version = 0,
    DevCreate = 3,
    DevRemove = 4,
    DevSuspend = 6,
    TableLoad = 9,
}

impl Command {
    pub fn request(self) -> u32 {
        (3 << 30) | ((DM_IOCTL_SIZE as u32) << 16) | (0xfd << 8) | self as u32
    }

    fn name(self) -> &'static str {
        match self {
            Command::Version => "DM_VERSION",
            Command::DevCreate => "DM_DEV_CREATE",
            Command::DevRemove => "DM_DEV_REMOVE",
            Command::DevSuspend => "DM_DEV_SUSPEND",
            Command::TableLoad => "DM_TABLE_LOAD",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DmError {
    #[error("open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{cmd} {name}: {source}")]
    Ioctl {
        cmd: &'static str,
        name: String,
        source: io::Error,
    },
    #[error("device-mapper name {0:?} is empty, too long or contains '/'")]
    Name(String),
    #[error("device-mapper uuid {0:?} is too long")]
    Uuid(String),
    #[error("data device of {device_size} bytes is too small for data at offset {offset}")]
    TooSmall { device_size: u64, offset: u64 },
    #[error("data segment of {size} bytes is not a whole number of {sector_size}-byte sectors")]
    Unaligned { size: u64, sector_size: u32 },
}

/// One `crypt` target covering the whole mapping.
#[derive(Debug, PartialEq, Eq)]
pub struct CryptTable {
    /// Length, 512-byte sectors.
    pub sectors: u64,
    /// The target parameters, key included (wiped on drop).
    pub params: Zeroizing<String>,
}

/// The crypt table for `segment` on the data device `major:minor` of `device_size`
/// bytes, the form cryptsetup loads:
/// `<cipher> <hexkey> <iv_offset> <major:minor> <offset> [<n> <options>...]`.
pub fn crypt_table(
    segment: &Segment,
    key: &[u8],
    major: u32,
    minor: u32,
    device_size: u64,
    allow_discards: bool,
) -> Result<CryptTable, DmError> {
    let size = match segment.size {
        Some(s) => s,
        None => device_size
            .checked_sub(segment.offset)
            .filter(|&s| s > 0)
            .ok_or(DmError::TooSmall {
                device_size,
                offset: segment.offset,
            })?,
    };
    if !size.is_multiple_of(u64::from(segment.sector_size)) {
        return Err(DmError::Unaligned {
            size,
            sector_size: segment.sector_size,
        });
    }
    let mut options: Vec<String> = Vec::new();
    for &f in &segment.flags {
        options.push(f.to_string());
    }
    if allow_discards && !options.iter().any(|o| o == "allow_discards") {
        options.insert(0, "allow_discards".to_string());
    }
    if segment.sector_size != 512 {
        options.push(format!("sector_size:{}", segment.sector_size));
    }
    let mut params = Zeroizing::new(String::with_capacity(256));
    params.push_str(&segment.cipher);
    params.push(' ');
    for b in key {
        params.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        params.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    params.push_str(&format!(
        " {} {major}:{minor} {}",
        segment.iv_tweak,
        segment.offset / 512
    ));
    if !options.is_empty() {
        params.push_str(&format!(" {} {}", options.len(), options.join(" ")));
    }
    Ok(CryptTable {
        sectors: size / 512,
        params,
    })
}

fn check_name(name: &str) -> Result<(), DmError> {
    if name.is_empty()
        || name.len() >= DM_NAME_LEN
        || name.contains('/')
        || name == "."
        || name == ".."
    {
        return Err(DmError::Name(name.to_string()));
    }
    Ok(())
}

/// A `struct dm_ioctl` header followed by `payload`, `data_size` covering both.
fn header(
    name: &str,
    uuid: &str,
    flags: u32,
    target_count: u32,
    payload: &[u8],
) -> Zeroizing<Vec<u8>> {
    // Extra room after the payload for what the kernel writes back.
    let total = DM_IOCTL_SIZE + payload.len() + 1024;
    let mut b = Zeroizing::new(vec![0u8; total]);
    b[0..4].copy_from_slice(&DM_VERSION_MAJOR.to_ne_bytes());
    // version[1..3] (minor, patch) stay 0: any 4.x kernel accepts that.
    b[12..16].copy_from_slice(&(total as u32).to_ne_bytes()); // data_size
    b[16..20].copy_from_slice(&(DM_IOCTL_SIZE as u32).to_ne_bytes()); // data_start
    b[20..24].copy_from_slice(&target_count.to_ne_bytes());
    b[28..32].copy_from_slice(&flags.to_ne_bytes());
    // event_nr 32..36, padding 36..40, dev 40..48
    b[48..48 + name.len()].copy_from_slice(name.as_bytes());
    let u = 48 + DM_NAME_LEN;
    b[u..u + uuid.len()].copy_from_slice(uuid.as_bytes());
    b[DM_IOCTL_SIZE..DM_IOCTL_SIZE + payload.len()].copy_from_slice(payload);
    b
}

/// A `struct dm_target_spec` for `crypt` and its NUL-terminated, 8-byte padded params.
fn target_spec(start: u64, sectors: u64, params: &str) -> Zeroizing<Vec<u8>> {
    let len = (DM_TARGET_SPEC_SIZE + params.len() + 1).div_ceil(8) * 8;
    let mut b = Zeroizing::new(vec![0u8; len]);
    b[0..8].copy_from_slice(&start.to_ne_bytes());
    b[8..16].copy_from_slice(&sectors.to_ne_bytes());
    // status 16..20 stays 0; next 20..24 = 0 (one target)
    b[24..29].copy_from_slice(b"crypt");
    b[DM_TARGET_SPEC_SIZE..DM_TARGET_SPEC_SIZE + params.len()].copy_from_slice(params.as_bytes());
    b
}

/// `/dev/mapper/control`.
pub struct Control {
    file: File,
}

impl Control {
    pub fn open(path: &Path) -> Result<Control, DmError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| DmError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Control { file })
    }

    fn ioctl(&self, cmd: Command, name: &str, buf: &mut [u8]) -> Result<(), DmError> {
        debug_assert!(buf.len() >= DM_IOCTL_SIZE);
        // SAFETY: `buf` is a live, writable buffer of at least `data_size` bytes (the
        // header's data_size field is its length), which is all the kernel reads or
        // writes for device-mapper ioctls; the fd is open for the call's duration.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), cmd.request() as _, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(DmError::Ioctl {
                cmd: cmd.name(),
                name: name.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// The kernel's device-mapper interface version.
    pub fn version(&self) -> Result<[u32; 3], DmError> {
        let mut b = header("", "", 0, 0, &[]);
        self.ioctl(Command::Version, "", &mut b)?;
        let v = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok([v(0), v(4), v(8)])
    }

    /// Create `name`, load `table`, resume: the mapping is live when this returns
    /// `Ok((major, minor))`. On failure after the create the device is removed again.
    pub fn create_crypt(
        &self,
        name: &str,
        uuid: &str,
        table: &CryptTable,
        read_only: bool,
    ) -> Result<(u32, u32), DmError> {
        check_name(name)?;
        if uuid.len() >= DM_UUID_LEN {
            return Err(DmError::Uuid(uuid.to_string()));
        }
        let mut b = header(name, uuid, 0, 0, &[]);
        self.ioctl(Command::DevCreate, name, &mut b)?;
        let r = self.load_and_resume(name, table, read_only);
        if r.is_err() {
            let _ = self.remove(name);
        }
        r
    }

    fn load_and_resume(
        &self,
        name: &str,
        table: &CryptTable,
        read_only: bool,
    ) -> Result<(u32, u32), DmError> {
        let spec = target_spec(0, table.sectors, &table.params);
        let flags = DM_SECURE_DATA_FLAG | if read_only { DM_READONLY_FLAG } else { 0 };
        let mut b = header(name, "", flags, 1, &spec);
        self.ioctl(Command::TableLoad, name, &mut b)?;
        // DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes, swapping the loaded table in.
        let mut b = header(name, "", 0, 0, &[]);
        self.ioctl(Command::DevSuspend, name, &mut b)?;
        let dev = u64::from_ne_bytes([b[40], b[41], b[42], b[43], b[44], b[45], b[46], b[47]]);
        Ok((libc::major(dev), libc::minor(dev)))
    }

    pub fn remove(&self, name: &str) -> Result<(), DmError> {
        check_name(name)?;
        let mut b = header(name, "", 0, 0, &[]);
        self.ioctl(Command::DevRemove, name, &mut b)
    }
}

/// The device-mapper uuid cryptsetup gives a LUKS mapping, so tools that look for it
/// (lsblk, udev rules) see the same: `CRYPT-LUKS2-<uuid without dashes>-<name>`.
pub fn luks_uuid(version: u8, volume_uuid: &str, name: &str) -> String {
    let id: String = volume_uuid.chars().filter(|&c| c != '-').collect();
    format!("CRYPT-LUKS{version}-{id}-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_dm_ioctl_h() {
        assert_eq!(Command::Version.request(), 0xc138_fd00);
        assert_eq!(Command::DevCreate.request(), 0xc138_fd03);
        assert_eq!(Command::DevRemove.request(), 0xc138_fd04);
        assert_eq!(Command::DevSuspend.request(), 0xc138_fd06);
        assert_eq!(Command::TableLoad.request(), 0xc138_fd09);
    }

    #[test]
    fn header_layout() {
        let b = header("root", "CRYPT-x", DM_SECURE_DATA_FLAG, 1, &[0xaa; 48]);
        assert_eq!(&b[0..4], &4u32.to_ne_bytes());
        assert_eq!(
            u32::from_ne_bytes(b[12..16].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(&b[16..20], &312u32.to_ne_bytes());
        assert_eq!(&b[20..24], &1u32.to_ne_bytes());
        assert_eq!(&b[28..32], &(1u32 << 15).to_ne_bytes());
        assert_eq!(&b[48..53], b"root\0");
        assert_eq!(&b[176..184], b"CRYPT-x\0");
        assert_eq!(b[312], 0xaa);
        assert_eq!(b[359], 0xaa);
    }

    #[test]
    fn target_spec_layout() {
        let t = target_spec(0, 2048, "aes-xts-plain64 00 0 253:0 4096");
        assert_eq!(t.len() % 8, 0);
        assert_eq!(&t[8..16], &2048u64.to_ne_bytes());
        assert_eq!(&t[24..30], b"crypt\0");
        assert_eq!(&t[40..71], b"aes-xts-plain64 00 0 253:0 4096");
        assert_eq!(t[71], 0);
    }

    fn seg(sector_size: u32, size: Option<u64>, flags: Vec<&'static str>) -> Segment {
        Segment {
            cipher: "aes-xts-plain64".into(),
            offset: 16 << 20,
            size,
            sector_size,
            iv_tweak: 0,
            flags,
        }
    }

    #[test]
    fn crypt_table_text_matches_cryptsetup_form() {
        let t = crypt_table(
            &seg(512, None, vec![]),
            &[0x01, 0xab],
            253,
            0,
            (16 << 20) + 8192,
            false,
        )
        .unwrap();
        assert_eq!(t.sectors, 16);
        assert_eq!(&t.params[..], "aes-xts-plain64 01ab 0 253:0 32768");
        let t = crypt_table(
            &seg(4096, Some(8192), vec!["allow_discards"]),
            &[0xff],
            8,
            17,
            1 << 30,
            true,
        )
        .unwrap();
        assert_eq!(t.sectors, 16);
        assert_eq!(
            &t.params[..],
            "aes-xts-plain64 ff 0 8:17 32768 2 allow_discards sector_size:4096"
        );
        let t = crypt_table(
            &seg(512, None, vec!["same_cpu_crypt"]),
            &[0],
            8,
            0,
            17 << 20,
            true,
        )
        .unwrap();
        assert_eq!(
            &t.params[..],
            "aes-xts-plain64 00 0 8:0 32768 2 allow_discards same_cpu_crypt"
        );
    }

    #[test]
    fn crypt_table_refuses_bad_sizes() {
        assert!(matches!(
            crypt_table(&seg(512, None, vec![]), &[0], 8, 0, 16 << 20, false),
            Err(DmError::TooSmall { .. })
        ));
        assert!(matches!(
            crypt_table(
                &seg(4096, None, vec![]),
                &[0],
                8,
                0,
                (16 << 20) + 512,
                false
            ),
            Err(DmError::Unaligned { .. })
        ));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("root").is_ok());
        for bad in ["", "a/b", "..", &"x".repeat(128)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            luks_uuid(2, "0a1b2c3d-0000-1111-2222-333344445555", "root"),
            "CRYPT-LUKS2-0a1b2c3d000011112222333344445555-root"
        );
    }
}
