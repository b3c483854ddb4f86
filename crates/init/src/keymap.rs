//! The keymap (Alpine §3.4 step 5): the first regular file in the image's
//! `/etc/keymap/` is a gzipped busybox binary keymap (what `zcat | loadkmap`
//! reads), loaded before anything can prompt (the apkovl password, the
//! recovery shell). Parsed completely before the first entry is loaded, so
//! a short or hostile file loads nothing; the keymap is advisory: a failure
//! is a warning and the boot goes on.
//!
//! The format is busybox's `loadkmap`: the magic `bkeymap`, one flag byte
//! for each of the `MAX_NR_KEYMAPS` tables, then for each table whose flag
//! is 1, `NR_KEYS` key values as native-endian u16.

use crate::layout::Layout;
use crate::log;
use crate::platform::Platform;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 7] = b"bkeymap";
/// Tables a keymap can hold (`MAX_NR_KEYMAPS` of the kernel's keyboard.h).
pub const MAX_NR_KEYMAPS: usize = 256;
/// Keys in one table (`NR_KEYS` of the kernel's keyboard.h).
pub const NR_KEYS: usize = 128;
/// The largest valid file: every table present. Decompression stops one
/// byte after it, so a gzip bomb costs no more memory than this.
pub const MAX_LEN: usize = MAGIC.len() + MAX_NR_KEYMAPS + MAX_NR_KEYMAPS * NR_KEYS * 2;

/// One `KDSKBENT` request: key `index` of table `table` gets `value`
/// (the layout of the kernel's `struct kbentry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct KbEntry {
    pub table: u8,
    pub index: u8,
    pub value: u16,
}

/// Why a binary keymap's bytes are not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BmapError {
    #[error("not a valid binary keymap (no \"bkeymap\" magic)")]
    Magic,
    #[error("truncated: {need} bytes needed for {what}, {have} present")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("longer than the {MAX_LEN} bytes a binary keymap can have")]
    TooLong,
}

#[derive(Debug, thiserror::Error)]
pub enum KeymapError {
    #[error("reading the keymap directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening keymap {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("decompressing keymap {path}: {source}")]
    Gunzip {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keymap {path}: {source}")]
    Format { path: PathBuf, source: BmapError },
    #[error("loading keymap {path} on the console: {source}")]
    Load {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Parses a decompressed binary keymap into the entries to load, in
/// `loadkmap`'s order. Bytes after the last table are ignored, as
/// `loadkmap` does; nothing is returned unless every flagged table is whole.
pub fn parse(data: &[u8]) -> Result<Vec<KbEntry>, BmapError> {
    if data.len() > MAX_LEN {
        return Err(BmapError::TooLong);
    }
    let have = data.len();
    if data.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return if have < MAGIC.len() && MAGIC.starts_with(data) {
            Err(BmapError::Truncated {
                what: "the magic",
                need: MAGIC.len(),
                have,
            })
        } else {
            Err(BmapError::Magic)
        };
    }
    let flags_end = MAGIC.len() + MAX_NR_KEYMAPS;
    let flags = data
        .get(MAGIC.len()..flags_end)
        .ok_or(BmapError::Truncated {
            what: "the table flags",
            need: flags_end,
            have,
        })?;
    let mut entries = Vec::new();
    let mut at = flags_end;
    for (table, _) in (0u8..=u8::MAX).zip(flags).filter(|(_, f)| **f == 1) {
        let end = at + NR_KEYS * 2;
        let keys = data.get(at..end).ok_or(BmapError::Truncated {
            what: "a key table",
            need: end,
            have,
        })?;
        for (index, v) in (0u8..).zip(keys.chunks_exact(2)) {
            entries.push(KbEntry {
                table,
                index,
                value: u16::from_ne_bytes([v[0], v[1]]),
            });
        }
        at = end;
    }
    Ok(entries)
}

/// The first regular file (symlinks followed, as the script's `-f` does)
/// of `/etc/keymap` in name order, if any.
pub fn find(layout: &Layout) -> Result<Option<PathBuf>, KeymapError> {
    let dir = layout.path("/etc/keymap");
    let read = match std::fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KeymapError::Dir { path: dir, source }),
    };
    let mut names: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    alpinit_sort::sort(&mut names);
    Ok(names.into_iter().find(|p| p.is_file()))
}

/// Decompresses and parses the keymap at `path`.
pub fn read(path: &Path) -> Result<Vec<KbEntry>, KeymapError> {
    let file = std::fs::File::open(path).map_err(|source| KeymapError::Open {
        path: path.to_owned(),
        source,
    })?;
    let mut data = Vec::new();
    flate2::read::MultiGzDecoder::new(file)
        .take(MAX_LEN as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|source| KeymapError::Gunzip {
            path: path.to_owned(),
            source,
        })?;
    parse(&data).map_err(|source| KeymapError::Format {
        path: path.to_owned(),
        source,
    })
}

/// Loads the image's keymap, if it has one; a failure is a warning.
pub fn load(p: &Platform<'_>, layout: &Layout) {
    let path = match find(layout) {
        Ok(Some(path)) => path,
        Ok(None) => return,
        Err(e) => return log::warn(&crate::failure::chain(&e)),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let progress = log::Progress::begin(&format!("Setting keymap {name}"));
    let loaded = read(&path).and_then(|entries| {
        p.console
            .load_keymap(&entries)
            .map_err(|source| KeymapError::Load {
                path: path.clone(),
                source,
            })
    });
    match loaded {
        Ok(rejected) => {
            if rejected > 0 {
                // As with loadkmap: values the kernel refuses (K_ALLOCATED
                // markers saved by dumpkmap) are skipped.
                log::info(&format!("keymap {name}: {rejected} entries refused"));
            }
            progress.ok();
        }
        Err(e) => progress.failed(&crate::failure::chain(&e)),
    }
}

#[cfg(test)]
#[path = "keymap_tests.rs"]
mod tests;
