//! Helpers shared by the blkid comparison tests: finding tools, building images and
//! asking blkid/partx what they see. A case whose tool is missing (or refuses to run
//! here) prints a note and passes: the oracle is optional, the unit tests are not.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use alpinit_probe::{partition_uuid_path, probe_path, Probe};

pub const SBIN: [&str; 2] = ["/usr/sbin", "/sbin"];

pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs `name args…`; `None` (after printing why) when the tool is missing or fails.
pub fn run(name: &str, args: &[&str]) -> Option<()> {
    let Some(exe) = tool(name) else {
        println!("SKIP: {name} is not installed");
        return None;
    };
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        println!(
            "SKIP: {name} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    Some(())
}

pub fn sparse(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    File::create(&path).unwrap().set_len(size).unwrap();
    path
}

/// Undo blkid's export escaping: `\c` for shell-special characters and `M-`/`^`
/// notation for bytes that are not printable ASCII.
pub fn unescape(value: &str) -> String {
    let raw = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let mut high = 0u8;
        if raw[i..].starts_with(b"M-") {
            high = 0x80;
            i += 2;
        }
        let byte = match raw.get(i) {
            Some(b'\\') => {
                i += 1;
                raw.get(i).copied().unwrap_or(b'\\')
            }
            Some(b'^') if i + 1 < raw.len() => {
                i += 1;
                raw[i] ^ 0x40
            }
            Some(&b) => b,
            None => break,
        };
        out.push(byte | high);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn blkid(path: &Path) -> Option<BTreeMap<String, String>> {
    let Some(exe) = tool("blkid") else {
        println!("SKIP: blkid is not installed");
        return None;
    };
    let out = Command::new(exe)
        .args(["-p", "-o", "export"])
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), unescape(v)))
            .collect(),
    )
}

/// Probe `path` with both and compare; `want_type` guards against both sides silently
/// finding nothing.
pub fn compare(path: &Path, want_type: Option<&str>) -> Option<Probe> {
    let tags = blkid(path)?;
    let expected = Probe {
        fstype: tags.get("TYPE").cloned(),
        uuid: tags.get("UUID").cloned(),
        label: tags.get("LABEL").cloned(),
        pttype: tags.get("PTTYPE").cloned(),
        ptuuid: tags.get("PTUUID").cloned(),
    };
    assert_eq!(
        expected.fstype.as_deref(),
        want_type,
        "blkid on {path:?}: {tags:?}"
    );
    let ours = probe_path(path).unwrap();
    assert_eq!(ours, expected, "{path:?}");
    Some(ours)
}

/// PARTUUIDs of partitions 1..=8 as partx reports them, compared with ours.
pub fn compare_partuuids(path: &Path) {
    let Some(exe) = tool("partx") else {
        println!("SKIP: partx is not installed");
        return;
    };
    let out = Command::new(exe)
        .args(["-g", "-o", "NR,UUID"])
        .arg(path)
        .output()
        .unwrap();
    let mut expected: BTreeMap<u32, Option<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut words = line.split_whitespace();
        if let Some(nr) = words.next().and_then(|n| n.parse().ok()) {
            expected.insert(nr, words.next().map(str::to_string));
        }
    }
    for partn in 1..=8 {
        let want = expected.get(&partn).cloned().flatten();
        let got = partition_uuid_path(path, partn).unwrap();
        assert_eq!(got, want, "{path:?} partition {partn}");
    }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn iso_tree(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("boot")).unwrap();
    fs::write(tree.join("boot/file.txt"), b"hello").unwrap();
    tree
}

pub fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

pub fn sfdisk(img: &Path, script: &str) -> Option<()> {
    let exe = tool("sfdisk").or_else(|| {
        println!("SKIP: sfdisk is not installed");
        None
    })?;
    let mut child = Command::new(exe)
        .arg("-q")
        .arg(img)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(script.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        println!(
            "SKIP: sfdisk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(())
}
