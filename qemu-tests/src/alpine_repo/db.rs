//! The mini root's package database: `lib/apk/db/installed` (one paragraph
//! per package: header letters, then `F:` folders with their `R:` files,
//! `M:`/`a:` ownership and mode lines) and `lib/apk/db/scripts.tar`
//! (`NAME-VERSION.Q1…=.KIND` scripts).

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

/// A file system object a package owns, relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { path: String, mode: u32 },
    File { path: String, mode: u32 },
}

/// One package of the installed database.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    /// Header letters in database order (`P`, `V`, `D` ...).
    pub header: Vec<(char, String)>,
    pub entries: Vec<Entry>,
    /// (`post-install`, script) pairs.
    pub scripts: Vec<(String, Vec<u8>)>,
}

impl Installed {
    pub fn get(&self, letter: char) -> Option<&str> {
        self.header
            .iter()
            .find(|(l, _)| *l == letter)
            .map(|(_, v)| v.as_str())
    }

    pub fn name(&self) -> &str {
        self.get('P').unwrap_or("")
    }
}

/// `a:`/`M:` values are `uid:gid:mode` with the mode in octal.
fn acl_mode(v: &str) -> Option<u32> {
    u32::from_str_radix(v.rsplit(':').next()?, 8).ok()
}

/// Parses the text of `lib/apk/db/installed`.
pub fn parse_db(text: &str) -> Vec<Installed> {
    let mut out = Vec::new();
    let mut cur = Installed::default();
    let mut folder = String::new();
    for line in text.lines() {
        if line.is_empty() {
            if !cur.header.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let mut chars = line.chars();
        let (Some(letter), Some(':')) = (chars.next(), chars.next()) else {
            continue;
        };
        let value = &line[2..];
        match letter {
            'F' => {
                folder = value.to_string();
                cur.entries.push(Entry::Dir {
                    path: folder.clone(),
                    mode: 0o755,
                });
            }
            'M' => {
                if let (Some(Entry::Dir { mode, .. }), Some(m)) =
                    (cur.entries.last_mut(), acl_mode(value))
                {
                    *mode = m;
                }
            }
            'R' => cur.entries.push(Entry::File {
                path: format!("{folder}/{value}")
                    .trim_start_matches('/')
                    .to_string(),
                mode: 0o644,
            }),
            'a' => {
                if let (Some(Entry::File { mode, .. }), Some(m)) =
                    (cur.entries.last_mut(), acl_mode(value))
                {
                    *mode = m;
                }
            }
            'Z' | 'q' => {}
            _ => cur.header.push((letter, value.to_string())),
        }
    }
    if !cur.header.is_empty() {
        out.push(cur);
    }
    out
}

/// Attaches `scripts.tar` members to their packages (by `NAME-VERSION.`
/// prefix); triggers are left out (they need the `triggers` field).
pub fn attach_scripts(pkgs: &mut [Installed], scripts_tar: &[u8]) -> Result<()> {
    let mut archive = tar::Archive::new(scripts_tar);
    for entry in archive.entries().context("reading scripts.tar")? {
        let mut entry = entry.context("reading scripts.tar")?;
        let name = entry
            .path()
            .context("scripts.tar member name")?
            .to_string_lossy()
            .into_owned();
        let Some((_, kind)) = name.rsplit_once('.') else {
            continue;
        };
        if kind == "trigger" {
            continue;
        }
        let mut body = Vec::new();
        entry
            .read_to_end(&mut body)
            .with_context(|| format!("reading scripts.tar member {name}"))?;
        for p in pkgs.iter_mut() {
            let prefix = format!("{}-{}.", p.name(), p.get('V').unwrap_or(""));
            if name.starts_with(&prefix) {
                p.scripts.push((kind.to_string(), body.clone()));
            }
        }
    }
    Ok(())
}

/// Every package installed in ROOT, with its scripts.
pub fn parse_installed(root: &Path) -> Result<Vec<Installed>> {
    let db = root.join("lib/apk/db/installed");
    let text = fs::read_to_string(&db).with_context(|| format!("reading {}", db.display()))?;
    let mut pkgs = parse_db(&text);
    let scripts = root.join("lib/apk/db/scripts.tar");
    if let Ok(bytes) = fs::read(&scripts) {
        attach_scripts(&mut pkgs, &bytes)?;
    }
    Ok(pkgs)
}
