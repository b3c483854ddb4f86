//! apkovl unpacking into a scratch sysroot. Invariants: no panic; nothing outside the
//! sysroot is created, removed or changed (content, mode, owner, mtime); everything or
//! nothing is applied (a rejected overlay leaves the sysroot exactly as it was, an
//! accepted one has every listed member in place); no staging entry survives.
//!
//! Input layout: if the first byte is `T`, the rest is a raw tar stream that the harness
//! gzips before unpacking, so mutations reach the tar and path logic instead of dying on
//! the gzip CRC; any other input is passed to the unpacker verbatim (gzip layer included).
//!
//! Each run gets a fresh directory (on tmpfs when `/dev/shm` exists) laid out as:
//!
//! ```text
//! root/                 the sysroot
//! root/usr/bin/
//! root/bin -> usr/bin   usr-merge symlink that must be followed but clamped
//! root/up -> ../outside pre-existing symlink that points out of the sysroot
//! outside/sentinel      must be untouched
//! ```
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const SENTINEL: &[u8] = b"sentinel: must not change\n";
/// Prefix of the unpacker's staging directory (see `crates/apkovl/src/unpack/stage.rs`).
const STAGE_PREFIX: &[u8] = b".apkovl-stage-";

/// What must not change about a path outside the sysroot.
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    file_type: String,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    ino: u64,
}

fn stamp(path: &Path) -> Stamp {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Stamp {
        file_type: format!("{:?}", meta.file_type()),
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        ino: meta.ino(),
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Everything observable about the tree under `dir` (directory mtimes excepted: a
/// rolled-back entry moves them), keyed by path bytes.
fn tree(dir: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let entry = entry.unwrap();
            let p = entry.path();
            // Looked up from the open directory (fstatat), not by a path walk from the
            // top: the archives make trees thousands of levels deep.
            let m = entry.metadata().unwrap();
            let what = if m.file_type().is_symlink() {
                format!("link {:?}", fs::read_link(&p).unwrap())
            } else if m.is_dir() {
                todo.push(p.clone());
                "dir".to_owned()
            } else {
                format!("file {:?} {}", fs::read(&p).unwrap(), m.mtime())
            };
            let meta = format!("{what} {:o} {}:{} {}", m.mode(), m.uid(), m.gid(), m.nlink());
            let rel = p.strip_prefix(dir).unwrap().as_os_str().as_bytes().to_vec();
            out.insert(rel, meta);
        }
    }
    out
}

fn scratch_parent() -> &'static PathBuf {
    static PARENT: OnceLock<PathBuf> = OnceLock::new();
    PARENT.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
}

/// `tar` as a gzip member of stored (uncompressed) deflate blocks: a valid stream for
/// any input, made without a compressor's state (setting one up per run cost more
/// than the unpack of most inputs).
fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tar.len() + tar.len() / 65535 * 5 + 32);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut blocks = tar.chunks(65535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let last = u8::from(blocks.peek().is_none());
        let len = block.len() as u16;
        out.push(last);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let mut crc = flate2::Crc::new();
    crc.update(tar);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(tar.len() as u32).to_le_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let wrapped;
    let overlay = match data.split_first() {
        Some((b'T', tar)) => {
            wrapped = gzip(tar);
            &wrapped[..]
        }
        _ => data,
    };

    let scratch = tempfile::Builder::new()
        .prefix("alpinit-fuzz-unpack-")
        .tempdir_in(scratch_parent())
        .unwrap();
    let top = scratch.path();
    let root = top.join("root");
    let outside = top.join("outside");
    let sentinel = outside.join("sentinel");
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    symlink("usr/bin", root.join("bin")).unwrap();
    symlink("../outside", root.join("up")).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(&sentinel, SENTINEL).unwrap();
    let before = (stamp(&outside), stamp(&sentinel));
    let root_before = tree(&root);

    let result = alpinit_apkovl::fuzz_unpack(overlay, &root);

    let root_after = tree(&root);
    for path in root_after.keys() {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
        let listed = result
            .as_ref()
            .is_ok_and(|r| r.members.iter().any(|m| m.ends_with(name)));
        assert!(
            !name.starts_with(STAGE_PREFIX) || listed,
            "staging entry left: {}",
            String::from_utf8_lossy(path)
        );
    }
    match &result {
        Err(e) => assert!(
            root_after == root_before,
            "rejected ({e}) but the sysroot changed"
        ),
        Ok(report) => {
            for m in report.members.iter() {
                // The member's path with empty and "." components dropped, so that the
                // last component is looked at itself (a symlink is not followed).
                let path = m
                    .split(|&b| b == b'/')
                    .filter(|c| !c.is_empty() && *c != b".")
                    .fold(root.clone(), |p, c| p.join(OsStr::from_bytes(c)));
                assert!(
                    fs::symlink_metadata(&path).is_ok(),
                    "accepted, but member {} is missing",
                    String::from_utf8_lossy(m)
                );
            }
        }
    }

    let expected_top: BTreeSet<String> = ["outside", "root"].map(String::from).into();
    assert_eq!(
        names(top),
        expected_top,
        "entries appeared next to the sysroot"
    );
    assert_eq!(
        names(&outside),
        BTreeSet::from(["sentinel".to_owned()]),
        "outside/ changed"
    );
    assert_eq!(
        (stamp(&outside), stamp(&sentinel)),
        before,
        "metadata outside changed"
    );
    assert_eq!(
        fs::read(&sentinel).unwrap(),
        SENTINEL,
        "sentinel content changed"
    );
});
