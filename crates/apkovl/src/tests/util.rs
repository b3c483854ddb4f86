//! Test helpers: a raw tar writer that can express hostile headers, gzip, and tree
//! snapshots.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

/// Header fields a test may want to set; everything else gets sane defaults.
#[derive(Clone)]
pub(crate) struct H<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) flag: u8,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) mtime: u64,
    pub(crate) link: &'a [u8],
}

impl Default for H<'_> {
    fn default() -> Self {
        H {
            name: b"",
            flag: b'0',
            size: 0,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            link: b"",
        }
    }
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}\0", v, width = field.len() - 1);
    if s.len() <= field.len() {
        field.copy_from_slice(s.as_bytes());
    } else {
        // GNU base-256 for values that do not fit in octal.
        field.fill(0);
        field[0] = 0x80;
        let bytes = v.to_be_bytes();
        // The first byte holds the marker, so an 8-byte field carries 7 value bytes.
        let k = (field.len() - 1).min(8);
        let n = field.len();
        field[n - k..].copy_from_slice(&bytes[8 - k..]);
    }
}

/// Builds an uncompressed tar stream block by block.
#[derive(Default)]
pub(crate) struct Tar {
    pub(crate) buf: Vec<u8>,
}

impl Tar {
    pub(crate) fn header(&mut self, h: &H) -> &mut Self {
        self.header_patched(h, |_| {})
    }

    /// A header with `patch` applied to the block before the checksum is computed.
    pub(crate) fn header_patched(
        &mut self,
        h: &H,
        patch: impl FnOnce(&mut [u8; 512]),
    ) -> &mut Self {
        let mut b = [0u8; 512];
        assert!(h.name.len() <= 100 && h.link.len() <= 100, "use long names");
        b[..h.name.len()].copy_from_slice(h.name);
        octal(&mut b[100..108], u64::from(h.mode));
        octal(&mut b[108..116], h.uid);
        octal(&mut b[116..124], h.gid);
        octal(&mut b[124..136], h.size);
        octal(&mut b[136..148], h.mtime);
        b[156] = h.flag;
        b[157..157 + h.link.len()].copy_from_slice(h.link);
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        patch(&mut b);
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.buf.extend_from_slice(&b);
        self
    }

    pub(crate) fn data(&mut self, data: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub(crate) fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(
            &H {
                name: name.as_bytes(),
                size: data.len() as u64,
                ..H::default()
            },
            data,
        )
    }

    pub(crate) fn entry(&mut self, h: &H, data: &[u8]) -> &mut Self {
        self.header(h).data(data)
    }

    pub(crate) fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.header(&H {
            name: name.as_bytes(),
            flag: b'5',
            mode,
            ..H::default()
        })
    }

    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(&H {
            name: name.as_bytes(),
            flag: b'2',
            mode: 0o777,
            link: target.as_bytes(),
            ..H::default()
        })
    }

    pub(crate) fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(&H {
            name: name.as_bytes(),
            flag: b'1',
            link: target.as_bytes(),
            ..H::default()
        })
    }

    /// A PAX extended header applying to the next member.
    pub(crate) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = 1 + k.len() + 1 + v.len() + 1;
            let mut len = rest + 1;
            while format!("{len}").len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.entry(
            &H {
                name: b"PaxHeaders/x",
                flag: b'x',
                size: body.len() as u64,
                ..H::default()
            },
            &body,
        )
    }

    /// A GNU `././@LongLink` record naming the next member.
    pub(crate) fn long_name(&mut self, name: &[u8]) -> &mut Self {
        let mut data = name.to_vec();
        data.push(0);
        self.entry(
            &H {
                name: b"././@LongLink",
                flag: b'L',
                size: data.len() as u64,
                ..H::default()
            },
            &data,
        )
    }

    /// The stream with the two zero end blocks.
    pub(crate) fn finish(&self) -> Vec<u8> {
        let mut v = self.buf.clone();
        v.extend([0u8; 1024]);
        v
    }
}

pub(crate) fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Everything observable about a tree: type, mode, owner, size, content, link target.
pub(crate) fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let what = if m.file_type().is_symlink() {
                format!("link {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                todo.push(p.clone());
                "dir".to_owned()
            } else {
                format!("file {:?}", fs::read(&p).unwrap())
            };
            // A directory's mtime moves when a rolled-back entry was added and removed
            // again; its entries are compared instead.
            let mtime = if m.is_dir() { 0 } else { m.mtime() };
            let meta = format!(
                "{:o} {}:{} {} {}",
                m.mode(),
                m.uid(),
                m.gid(),
                mtime,
                m.nlink()
            );
            out.insert(rel, format!("{what} {meta}"));
        }
    }
    out
}

/// Makes every directory under `root` writable again so the temp dir can be removed.
pub(crate) fn unlock(root: &Path) {
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(e.path());
                }
            }
        }
    }
}
