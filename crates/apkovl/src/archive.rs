//! A small streaming tar reader (ustar, GNU long names, PAX) with hard memory bounds.
//!
//! Written here instead of using a general tar library so that every extension record is
//! size-checked before it is read and the PAX `size` rule is ours: a PAX `size` always
//! wins over the ustar field.

use std::io::{self, Read};

use crate::gzip::GzipError;

const BLOCK: u64 = 512;
/// Old GNU header: "another sparse map block follows" flag (after four map entries of
/// 24 bytes at offset 386).
const GNU_SPARSE_EXTENDED: usize = 482;
/// The same flag in a sparse extension block (after 21 map entries of 24 bytes).
const GNU_SPARSE_EXT_EXTENDED: usize = 504;

/// Failures of the tar layer.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The gzip layer below failed.
    #[error(transparent)]
    Gzip(#[from] GzipError),
    /// Header checksum mismatch.
    #[error("tar header at byte {offset} has a bad checksum")]
    Checksum {
        /// Offset of the header in the decompressed stream.
        offset: u64,
    },
    /// The stream ended inside a header or member data.
    #[error("archive truncated in {what} at byte {offset}")]
    Truncated {
        /// `"a header"`, `"member data"`, ...
        what: &'static str,
        /// Offset in the decompressed stream.
        offset: u64,
    },
    /// A numeric header field is malformed, negative or out of range.
    #[error("bad {field} field in the tar header at byte {offset}")]
    Number {
        /// Field name.
        field: &'static str,
        /// Offset of the header.
        offset: u64,
    },
    /// A PAX record does not follow the `LEN KEY=VALUE\n` syntax.
    #[error("malformed PAX record in the header at byte {offset}")]
    Pax {
        /// Offset of the header.
        offset: u64,
    },
    /// A PAX header or GNU long name/link is larger than `max_pax_bytes`.
    #[error("{what} of {size} bytes at byte {offset} exceeds the limit max_pax_bytes ({limit})")]
    Extension {
        /// Kind of record.
        what: &'static str,
        /// Declared size.
        size: u64,
        /// The limit in force.
        limit: usize,
        /// Offset of the header.
        offset: u64,
    },
    /// The decompressed archive is larger than `max_total_bytes`.
    #[error("archive exceeds the limit max_total_bytes ({limit} bytes)")]
    TotalBytes {
        /// The limit in force.
        limit: u64,
    },
}

/// The entry types this crate distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
    /// Not created; the string names the type for the warning.
    Skipped(&'static str),
}

/// One archive member with all extension records applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Entry {
    pub(crate) name: Vec<u8>,
    pub(crate) link: Vec<u8>,
    pub(crate) kind: Kind,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: i64,
    /// Offset of the member's header, for messages.
    pub(crate) offset: u64,
}

#[derive(Default)]
struct Overrides {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<i64>,
    sparse: bool,
}

/// Streaming reader over a decompressed tar stream.
pub(crate) struct TarReader<R> {
    inner: R,
    pos: u64,
    data_left: u64,
    pad_left: u64,
    limit: u64,
    max_ext: usize,
    ended: bool,
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(inner: R, max_total_bytes: u64, max_pax_bytes: usize) -> Self {
        TarReader {
            inner,
            pos: 0,
            data_left: 0,
            pad_left: 0,
            limit: max_total_bytes,
            max_ext: max_pax_bytes,
            ended: false,
        }
    }

    /// Reads until `buf` is full or the input ends; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(GzipError::from_io(e).into()),
            }
        }
        self.pos += got as u64;
        if self.pos > self.limit {
            return Err(ArchiveError::TotalBytes { limit: self.limit });
        }
        Ok(got)
    }

    /// Fails early when a member that claims `size` bytes cannot fit in the budget, so a
    /// bomb is stopped before it is decompressed.
    fn reserve(&self, size: u64) -> Result<(), ArchiveError> {
        let padded = size.div_ceil(BLOCK).saturating_mul(BLOCK);
        if self.pos.saturating_add(padded) > self.limit {
            return Err(ArchiveError::TotalBytes { limit: self.limit });
        }
        Ok(())
    }

    /// Reads member data; `Ok(0)` once the member's data is complete.
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        if self.data_left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
        let n = self.fill(&mut buf[..want])?;
        if n == 0 {
            return Err(ArchiveError::Truncated {
                what: "member data",
                offset: self.pos,
            });
        }
        self.data_left -= n as u64;
        Ok(n)
    }

    /// Skips the rest of the current member's data and its block padding.
    fn skip_rest(&mut self) -> Result<(), ArchiveError> {
        let mut scratch = [0u8; 8192];
        while self.data_left > 0 {
            self.read_data(&mut scratch)?;
        }
        while self.pad_left > 0 {
            let want = scratch.len().min(self.pad_left as usize);
            let n = self.fill(&mut scratch[..want])?;
            if n == 0 {
                return Err(ArchiveError::Truncated {
                    what: "member padding",
                    offset: self.pos,
                });
            }
            self.pad_left -= n as u64;
        }
        Ok(())
    }

    /// Reads `size` bytes of an extension record into memory, bounded by `max_pax_bytes`.
    fn read_extension(
        &mut self,
        what: &'static str,
        size: u64,
        offset: u64,
    ) -> Result<Vec<u8>, ArchiveError> {
        if size > self.max_ext as u64 {
            return Err(ArchiveError::Extension {
                what,
                size,
                limit: self.max_ext,
                offset,
            });
        }
        self.reserve(size)?;
        let mut data = vec![0u8; size as usize];
        if self.fill(&mut data)? != data.len() {
            return Err(ArchiveError::Truncated {
                what,
                offset: self.pos,
            });
        }
        self.pad_left = pad(size);
        self.skip_rest()?;
        Ok(data)
    }

    /// The next member, or `None` at the end of the archive. Any data of the previous
    /// member that was not read is skipped (and still verified by the layers below).
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, ArchiveError> {
        if self.ended {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut ov = Overrides::default();
        loop {
            let offset = self.pos;
            let mut hdr = [0u8; BLOCK as usize];
            match self.fill(&mut hdr)? {
                0 => return self.end(false),
                n if n < hdr.len() => {
                    return Err(ArchiveError::Truncated {
                        what: "a header",
                        offset,
                    })
                }
                _ => {}
            }
            if hdr.iter().all(|&b| b == 0) {
                return self.end(true);
            }
            check_checksum(&hdr, offset)?;
            let size = number(&hdr[124..136], "size", offset)?;
            match hdr[156] {
                b'x' => {
                    let data = self.read_extension("PAX header", size, offset)?;
                    parse_pax(&data, &mut ov, offset)?;
                }
                b'g' => {
                    // Global defaults: bounded and ignored (lbu never writes them).
                    self.read_extension("PAX global header", size, offset)?;
                }
                b'L' => {
                    let data = self.read_extension("GNU long name", size, offset)?;
                    ov.path = Some(trim_nul(data));
                }
                b'K' => {
                    let data = self.read_extension("GNU long link", size, offset)?;
                    ov.link = Some(trim_nul(data));
                }
                flag => return self.member(&hdr, flag, size, ov, offset).map(Some),
            }
        }
    }

    fn member(
        &mut self,
        hdr: &[u8; 512],
        flag: u8,
        size: u64,
        ov: Overrides,
        offset: u64,
    ) -> Result<Entry, ArchiveError> {
        let ustar = &hdr[257..263] == b"ustar\0";
        let name = match ov.path {
            Some(p) => p,
            None => {
                let base = cstr(&hdr[0..100]);
                let prefix = cstr(&hdr[345..500]);
                if ustar && !prefix.is_empty() {
                    [prefix, b"/", base].concat()
                } else {
                    base.to_vec()
                }
            }
        };
        let link = ov.link.unwrap_or_else(|| cstr(&hdr[157..257]).to_vec());
        let size = ov.size.unwrap_or(size);
        let mode = (number(&hdr[100..108], "mode", offset)? & 0o7777) as u32;
        let uid = match ov.uid {
            Some(u) => u,
            None => id(&hdr[108..116], "uid", offset)?,
        };
        let gid = match ov.gid {
            Some(g) => g,
            None => id(&hdr[116..124], "gid", offset)?,
        };
        let mtime = match ov.mtime {
            Some(t) => t,
            None => i64::try_from(number(&hdr[136..148], "mtime", offset)?).map_err(|_| {
                ArchiveError::Number {
                    field: "mtime",
                    offset,
                }
            })?,
        };
        if flag == b'S' && hdr[GNU_SPARSE_EXTENDED] != 0 {
            self.skip_sparse_extensions(offset)?;
        }
        let kind = match flag {
            _ if ov.sparse => Kind::Skipped("sparse file"),
            b'0' | 0 | b'7' if name.ends_with(b"/") => Kind::Dir,
            b'0' | 0 | b'7' => Kind::File,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Skipped("character device"),
            b'4' => Kind::Skipped("block device"),
            b'5' => Kind::Dir,
            b'6' => Kind::Skipped("FIFO"),
            b'S' => Kind::Skipped("sparse file"),
            _ => Kind::Skipped("entry of unknown type"),
        };
        self.reserve(size)?;
        self.data_left = size;
        self.pad_left = pad(size);
        Ok(Entry {
            name,
            link,
            kind,
            size,
            mode,
            uid,
            gid,
            mtime,
            offset,
        })
    }

    /// Old GNU sparse members with more than four fragments continue their map in
    /// 512-byte blocks between the header and the data; each block says in its last
    /// flag byte whether another follows. They are read (and counted against
    /// `max_total_bytes`) but not kept, since sparse members are skipped.
    fn skip_sparse_extensions(&mut self, offset: u64) -> Result<(), ArchiveError> {
        let mut block = [0u8; BLOCK as usize];
        loop {
            if self.fill(&mut block)? != block.len() {
                return Err(ArchiveError::Truncated {
                    what: "a GNU sparse extension header",
                    offset,
                });
            }
            if block[GNU_SPARSE_EXT_EXTENDED] == 0 {
                return Ok(());
            }
        }
    }

    /// End of archive: with `marker` after a zero block, otherwise at a clean EOF on a
    /// header boundary. What follows the marker is read (the gzip layer must verify it)
    /// but ignored, like tar does.
    fn end(&mut self, marker: bool) -> Result<Option<Entry>, ArchiveError> {
        self.ended = true;
        if marker {
            let mut scratch = vec![0u8; crate::gzip::BUF_SIZE];
            while self.fill(&mut scratch)? > 0 {}
        }
        Ok(None)
    }
}

fn pad(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn check_checksum(hdr: &[u8; 512], offset: u64) -> Result<(), ArchiveError> {
    let stored = number(&hdr[148..156], "checksum", offset)?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in hdr.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    // Some historic writers summed signed chars; GNU tar accepts both.
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(ArchiveError::Checksum { offset })
    }
}

/// Octal (space/NUL terminated) or GNU base-256; negative base-256 values are refused.
fn number(field: &[u8], name: &'static str, offset: u64) -> Result<u64, ArchiveError> {
    let bad = || ArchiveError::Number {
        field: name,
        offset,
    };
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return Err(bad());
        }
        let mut v = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(bad)?;
        }
        return Ok(v);
    }
    let mut v: u64 = 0;
    let mut digits = field.iter().skip_while(|&&b| b == b' ').peekable();
    while let Some(&b) = digits.next_if(|b| (b'0'..=b'7').contains(*b)) {
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(bad)?;
    }
    if digits.any(|&b| b != b' ' && b != 0) {
        return Err(bad());
    }
    Ok(v)
}

fn id(field: &[u8], name: &'static str, offset: u64) -> Result<u32, ArchiveError> {
    u32::try_from(number(field, name, offset)?).map_err(|_| ArchiveError::Number {
        field: name,
        offset,
    })
}

fn decimal<T: std::str::FromStr>(v: &[u8]) -> Option<T> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn parse_pax(data: &[u8], ov: &mut Overrides, offset: u64) -> Result<(), ArchiveError> {
    let bad = || ArchiveError::Pax { offset };
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = decimal(&rest[..sp]).ok_or_else(bad)?;
        if len <= sp + 2 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let kv = &rest[sp + 1..len - 1];
        let eq = kv.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (key, value) = (&kv[..eq], &kv[eq + 1..]);
        let number_field = |field: &'static str| ArchiveError::Number { field, offset };
        match key {
            b"path" => ov.path = (!value.is_empty()).then(|| value.to_vec()),
            b"linkpath" => ov.link = (!value.is_empty()).then(|| value.to_vec()),
            b"size" => ov.size = Some(decimal(value).ok_or_else(|| number_field("PAX size"))?),
            b"uid" => ov.uid = Some(decimal(value).ok_or_else(|| number_field("PAX uid"))?),
            b"gid" => ov.gid = Some(decimal(value).ok_or_else(|| number_field("PAX gid"))?),
            b"mtime" => {
                let whole = value.split(|&b| b == b'.').next().unwrap_or_default();
                ov.mtime = Some(decimal(whole).ok_or_else(|| number_field("PAX mtime"))?);
            }
            // PAX 1.0 sparse members carry the real name here (the header names a
            // placeholder); kept only so that the skip warning names the file.
            b"GNU.sparse.name" => {
                ov.sparse = true;
                ov.path = (!value.is_empty()).then(|| value.to_vec());
            }
            // PAX 0.x and 1.0 sparse maps: the member's `size` covers the map and the
            // data, so skipping the member needs nothing else.
            k if k.starts_with(b"GNU.sparse.") => ov.sparse = true,
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let ok: &[(&[u8], u64)] = &[
            (b"0000644\0", 0o644),
            (b"  755 \0\0", 0o755),
            (b"\0\0\0\0\0\0\0\0", 0),
            (b"00000000017\0", 0o17),
            (&[0x80, 0, 0, 0, 0, 0, 1, 0], 256),
        ];
        for (field, want) in ok {
            assert_eq!(number(field, "t", 0).unwrap(), *want, "{field:?}");
        }
        let bad: &[&[u8]] = &[b"0008\0\0\0\0", b"12 x\0\0\0\0", &[0xff, 0xff, 0xff, 0xff]];
        for field in bad {
            assert!(number(field, "t", 0).is_err(), "{field:?}");
        }
        // A uid of 2^32 must not wrap to root.
        assert!(id(&[0x80, 0, 0, 1, 0, 0, 0, 0], "uid", 0).is_err());
    }

    #[test]
    fn pax_records() {
        let mut ov = Overrides::default();
        parse_pax(
            b"12 path=a/b\n12 size=999\n22 mtime=1700000000.5\n10 uid=42\n",
            &mut ov,
            0,
        )
        .unwrap();
        assert_eq!(ov.path.as_deref(), Some(&b"a/b"[..]));
        assert_eq!(ov.size, Some(999));
        assert_eq!(ov.mtime, Some(1_700_000_000));
        assert_eq!(ov.uid, Some(42));
        for bad in [
            &b"99 path=x\n"[..],
            b"5 a=b\n",
            b"x path=y\n",
            b"11 path=abc",
        ] {
            assert!(
                parse_pax(bad, &mut Overrides::default(), 0).is_err(),
                "{bad:?}"
            );
        }
    }
}
