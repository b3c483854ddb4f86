//! Hand-made ustar archives for the hostile-overlay scenarios.
//!
//! The `tar` crate refuses to write `..` members and normalises names, which
//! is right for real overlays and useless for attacking the unpacker: here
//! every header field is written exactly as given.

use std::io::{self, Write};

use anyhow::{bail, Context, Result};

const BLOCK: usize = 512;

/// What a member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    /// A regular file of N zero bytes, streamed (for gzip bombs).
    Zeros(u64),
    Dir,
    Symlink(String),
    CharDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One archive member; `name` goes into the header verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub mode: u32,
    pub kind: Kind,
}

impl Member {
    pub fn file(name: &str, mode: u32, data: impl Into<Vec<u8>>) -> Member {
        Member {
            name: name.to_string(),
            mode,
            kind: Kind::File(data.into()),
        }
    }

    pub fn new(name: &str, mode: u32, kind: Kind) -> Member {
        Member {
            name: name.to_string(),
            mode,
            kind,
        }
    }

    fn size(&self) -> u64 {
        match &self.kind {
            Kind::File(data) => data.len() as u64,
            Kind::Zeros(n) => *n,
            _ => 0,
        }
    }

    fn type_flag(&self) -> u8 {
        match self.kind {
            Kind::File(_) | Kind::Zeros(_) => b'0',
            Kind::Symlink(_) => b'2',
            Kind::CharDevice { .. } => b'3',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// Writes `value` as zero-padded octal filling `field` but its last byte (NUL).
fn octal(field: &mut [u8], value: u64) -> Result<()> {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    if text.len() > width {
        bail!("{value} does not fit a {width}-digit octal field");
    }
    field[..width].copy_from_slice(text.as_bytes());
    field[width] = 0;
    Ok(())
}

fn text(field: &mut [u8], value: &str, what: &str) -> Result<()> {
    if value.len() > field.len() {
        bail!("{what} {value:?} is longer than {} bytes", field.len());
    }
    field[..value.len()].copy_from_slice(value.as_bytes());
    Ok(())
}

fn header(member: &Member) -> Result<[u8; BLOCK]> {
    let mut h = [0u8; BLOCK];
    text(&mut h[0..100], &member.name, "member name")?;
    octal(&mut h[100..108], u64::from(member.mode & 0o7777))?;
    octal(&mut h[108..116], 0)?;
    octal(&mut h[116..124], 0)?;
    octal(&mut h[124..136], member.size())?;
    octal(&mut h[136..148], 0)?;
    h[156] = member.type_flag();
    if let Kind::Symlink(target) = &member.kind {
        text(&mut h[157..257], target, "link target")?;
    }
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    let (major, minor) = match member.kind {
        Kind::CharDevice { major, minor } => (major, minor),
        _ => (0, 0),
    };
    octal(&mut h[329..337], u64::from(major))?;
    octal(&mut h[337..345], u64::from(minor))?;
    // The checksum is computed with its own field read as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum)?;
    h[155] = b' ';
    Ok(h)
}

/// Streams the archive (headers, data, padding, two end blocks) into OUT.
pub fn write<W: Write>(out: &mut W, members: &[Member]) -> Result<()> {
    let zeros = [0u8; 64 * 1024];
    for member in members {
        let h = header(member).with_context(|| format!("header of {:?}", member.name))?;
        out.write_all(&h)?;
        match &member.kind {
            Kind::File(data) => out.write_all(data)?,
            Kind::Zeros(n) => {
                let mut left = *n;
                while left > 0 {
                    let chunk = left.min(zeros.len() as u64) as usize;
                    out.write_all(&zeros[..chunk])?;
                    left -= chunk as u64;
                }
            }
            _ => {}
        }
        let pad = (BLOCK - (member.size() % BLOCK as u64) as usize) % BLOCK;
        out.write_all(&zeros[..pad])?;
    }
    out.write_all(&[0u8; 2 * BLOCK])?;
    Ok(())
}

/// The archive, gzip'd.
pub fn tar_gz(members: &[Member]) -> Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    write(&mut gz, members)?;
    gz.finish().context("finishing the gzip")
}

/// Like `io::sink` but counting, for sizes without a buffer.
#[derive(Debug, Default)]
pub struct Counter(pub u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<Member> {
        vec![
            Member::file("etc/marker", 0o644, "hi\n"),
            Member::new("evil", 0o777, Kind::Symlink("/".into())),
            Member::file("../dev/escape", 0o644, "x"),
            Member::new("etc/null", 0o666, Kind::CharDevice { major: 1, minor: 3 }),
            Member::new("run/fifo", 0o600, Kind::Fifo),
            Member::new("var/zeros", 0o644, Kind::Zeros(1000)),
            Member::new("var/", 0o755, Kind::Dir),
        ]
    }

    #[test]
    fn names_and_types_survive_verbatim() {
        let gz = tar_gz(&sample()).expect("tar");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut raw)
            .expect("gunzip");
        assert_eq!(raw.len() % BLOCK, 0);
        let mut archive = tar::Archive::new(raw.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry (checksum must be valid)");
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("data");
            seen.push((
                name,
                header.entry_type().as_byte(),
                header.mode().expect("mode"),
                data.len(),
                header.link_name_bytes().map(|l| l.into_owned()),
                header.device_major().expect("major"),
            ));
        }
        let want = [
            ("etc/marker", b'0', 0o644, 3, None, Some(0)),
            ("evil", b'2', 0o777, 0, Some(b"/".to_vec()), Some(0)),
            ("../dev/escape", b'0', 0o644, 1, None, Some(0)),
            ("etc/null", b'3', 0o666, 0, None, Some(1)),
            ("run/fifo", b'6', 0o600, 0, None, Some(0)),
            ("var/zeros", b'0', 0o644, 1000, None, Some(0)),
            ("var/", b'5', 0o755, 0, None, Some(0)),
        ];
        assert_eq!(seen.len(), want.len());
        for (got, want) in seen.iter().zip(want) {
            assert_eq!(got.0, want.0);
            assert_eq!(
                (got.1, got.2, got.3),
                (want.1, want.2, want.3),
                "{}",
                want.0
            );
            assert_eq!(got.4, want.4, "{}", want.0);
            assert_eq!(got.5, want.5, "{}", want.0);
        }
    }

    #[test]
    fn streamed_zeros_are_counted_exactly() {
        let mut count = Counter::default();
        let members = [Member::new("z", 0o644, Kind::Zeros(3 * 64 * 1024 + 7))];
        write(&mut count, &members).expect("write");
        // header + data rounded up to a block + two end blocks
        let data = (3 * 64 * 1024 + 7u64).div_ceil(BLOCK as u64) * BLOCK as u64;
        assert_eq!(count.0, BLOCK as u64 + data + 2 * BLOCK as u64);
    }

    #[test]
    fn oversized_fields_are_errors() {
        let long = "a/".repeat(60);
        assert!(tar_gz(&[Member::file(&long, 0o644, "")]).is_err());
        let mut field = [0u8; 4];
        assert!(octal(&mut field, 0o7777).is_err());
        octal(&mut field, 0o777).expect("fits");
        assert_eq!(&field, b"777\0");
    }
}
