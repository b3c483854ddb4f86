//! A reproducible newc cpio writer: entries sorted by path, fixed inode
//! numbers, uid/gid 0 and one mtime for everything.

use std::collections::BTreeMap;
use std::io::{self, Write};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const TRAILER: &str = "TRAILER!!!";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// The archive's contents keyed by path relative to `/` (no leading slash).
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Node>,
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.entries.get(normalise(path).as_str())
    }

    pub fn add_dir(&mut self, path: &str, mode: u32) {
        let path = normalise(path);
        self.add_parents(&path);
        self.entries.insert(
            path,
            Node::Dir {
                mode: mode & 0o7777,
            },
        );
    }

    /// Adds or replaces a file; later additions win, so `--extra` can
    /// override anything staged before it.
    pub fn add_file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        let path = normalise(path);
        self.add_parents(&path);
        self.entries.insert(
            path,
            Node::File {
                mode: mode & 0o7777,
                data,
            },
        );
    }

    pub fn add_symlink(&mut self, path: &str, target: &str) {
        let path = normalise(path);
        self.add_parents(&path);
        self.entries.insert(
            path,
            Node::Symlink {
                target: target.to_string(),
            },
        );
    }

    fn add_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(pos) = path[end..].find('/') {
            let parent = &path[..end + pos];
            self.entries
                .entry(parent.to_string())
                .or_insert(Node::Dir { mode: 0o755 });
            end += pos + 1;
        }
    }

    /// Writes the archive. Sorted order puts every directory before its
    /// contents because a path sorts before any path it prefixes.
    pub fn write<W: Write>(&self, out: &mut W, mtime: u32) -> io::Result<()> {
        let mut written = 0u64;
        for (index, (path, node)) in self.entries.iter().enumerate() {
            let ino = u32::try_from(index + 1).map_err(|_| too_many())?;
            let (mode, nlink, data): (u32, u32, &[u8]) = match node {
                Node::Dir { mode } => (S_IFDIR | mode, 2, &[]),
                Node::File { mode, data } => (S_IFREG | mode, 1, data),
                Node::Symlink { target } => (S_IFLNK | 0o777, 1, target.as_bytes()),
            };
            written += write_entry(out, path, ino, mode, nlink, mtime, data)?;
        }
        written += write_entry(out, TRAILER, 0, 0, 1, 0, &[])?;
        // The kernel does not need it, but cpio(1) conventionally pads to 512.
        let pad = (512 - written % 512) % 512;
        out.write_all(&vec![0u8; pad as usize])?;
        Ok(())
    }
}

fn too_many() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "too many cpio entries")
}

fn normalise(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

fn write_entry<W: Write>(
    out: &mut W,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    data: &[u8],
) -> io::Result<u64> {
    let size = u32::try_from(data.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name} is too large for cpio"),
        )
    })?;
    let namesize = u32::try_from(name.len() + 1).map_err(|_| too_many())?;
    let header = format!(
        "070701{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}\
         {devmajor:08x}{devminor:08x}{rdevmajor:08x}{rdevminor:08x}{namesize:08x}{check:08x}",
        uid = 0,
        gid = 0,
        devmajor = 0,
        devminor = 0,
        rdevmajor = 0,
        rdevminor = 0,
        check = 0,
    );
    out.write_all(header.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    let head_len = header.len() + name.len() + 1;
    let head_pad = (4 - head_len % 4) % 4;
    out.write_all(&[0u8; 3][..head_pad])?;
    out.write_all(data)?;
    let data_pad = (4 - data.len() % 4) % 4;
    out.write_all(&[0u8; 3][..data_pad])?;
    Ok((head_len + head_pad + data.len() + data_pad) as u64)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A minimal newc reader for checking what the writer produced.
    pub fn parse(mut buf: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            assert_eq!(&buf[..6], b"070701", "magic");
            let field = |i: usize| {
                let s = std::str::from_utf8(&buf[6 + i * 8..14 + i * 8]).expect("hex");
                u32::from_str_radix(s, 16).expect("hex")
            };
            let (ino, mode, size, namesize) = (field(0), field(1), field(6), field(11));
            let mtime = field(5);
            assert_eq!(field(2), 0, "uid");
            assert_eq!(field(3), 0, "gid");
            let name_end = 110 + namesize as usize;
            let name = String::from_utf8(buf[110..name_end - 1].to_vec()).expect("name");
            let data_start = name_end.div_ceil(4) * 4;
            let data_end = data_start + size as usize;
            let data = buf[data_start..data_end].to_vec();
            buf = &buf[data_end.div_ceil(4) * 4..];
            if name == TRAILER {
                assert!(
                    buf.iter().all(|b| *b == 0),
                    "only padding after the trailer"
                );
                return out;
            }
            let _ = ino;
            out.push((name, mode, mtime, data));
        }
    }

    #[test]
    fn round_trips_entries_in_sorted_order_with_parents() {
        let mut archive = Archive::new();
        archive.add_file("/lib/modules/x/a.ko", 0o644, b"abc".to_vec());
        archive.add_symlink("/bin/sh", "busybox");
        archive.add_file("/init", 0o755, b"12345".to_vec());
        archive.add_dir("/dev", 0o755);
        let mut buf = Vec::new();
        archive.write(&mut buf, 42).expect("write");
        assert_eq!(buf.len() % 512, 0);
        let entries = parse(&buf);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "dev",
                "init",
                "lib",
                "lib/modules",
                "lib/modules/x",
                "lib/modules/x/a.ko"
            ]
        );
        let get = |n: &str| entries.iter().find(|e| e.0 == n).expect("entry");
        assert_eq!(get("init").1, S_IFREG | 0o755);
        assert_eq!(get("init").3, b"12345");
        assert_eq!(get("bin/sh").1, S_IFLNK | 0o777);
        assert_eq!(get("bin/sh").3, b"busybox");
        assert_eq!(get("lib").1, S_IFDIR | 0o755);
        assert!(entries.iter().all(|e| e.2 == 42));
    }

    #[test]
    fn same_content_gives_same_bytes_regardless_of_insertion_order() {
        let mut a = Archive::new();
        a.add_file("x/1", 0o644, b"1".to_vec());
        a.add_file("y/2", 0o600, b"22".to_vec());
        let mut b = Archive::new();
        b.add_file("y/2", 0o600, b"22".to_vec());
        b.add_file("x/1", 0o644, b"1".to_vec());
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        a.write(&mut out_a, 0).expect("write");
        b.write(&mut out_b, 0).expect("write");
        assert_eq!(out_a, out_b);
    }

    #[test]
    fn later_files_replace_earlier_ones() {
        let mut archive = Archive::new();
        archive.add_file("init", 0o755, b"old".to_vec());
        archive.add_file("/init", 0o700, b"new".to_vec());
        assert_eq!(
            archive.get("init"),
            Some(&Node::File {
                mode: 0o700,
                data: b"new".to_vec()
            })
        );
        assert_eq!(archive.len(), 1);
    }

    #[test]
    fn agrees_with_gnu_cpio_when_present() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let mut archive = Archive::new();
        archive.add_file("etc/fstab", 0o644, b"line\n".to_vec());
        archive.add_symlink("bin/sh", "busybox");
        let mut buf = Vec::new();
        archive.write(&mut buf, 0).expect("write");
        let path = dir.path().join("a.cpio");
        std::fs::write(&path, &buf).expect("write");
        let listing = std::process::Command::new("cpio")
            .args(["-t", "--quiet", "-F"])
            .arg(&path)
            .output();
        match listing {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                let names: Vec<&str> = text.lines().collect();
                assert_eq!(names, ["bin", "bin/sh", "etc", "etc/fstab"]);
            }
            _ => eprintln!("note: cpio(1) not available, skipping"),
        }
    }
}
