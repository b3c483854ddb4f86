//! Serial consoles (Alpine §3.9, `initramfs-init.in` 106-171 and 1092): a
//! getty line in the new root's `/etc/inittab` (and an entry in
//! `/etc/securetty`) for every console the kernel was given and every
//! serial line detected, and `autodetect_serial=setconsole[=RE,..]`, which
//! moves the console onto the detected line (on every machine, or only on
//! those whose DMI modalias matches one of the patterns).

use crate::in_root::{NewRoot, NewRootError};
use crate::layout::Layout;
use crate::log;
use crate::platform::Platform;
use alpinit_cmdline::Cmdline;
use std::path::PathBuf;

/// `/sys/class/tty/X/active` names other ttys (`console` → `tty0` → `tty1`);
/// the kernel's chains are two deep, a loop in a broken tree stops here.
const ACTIVE_DEPTH: usize = 8;

/// The terminal type of the getty lines, as in Alpine.
const TERM: &str = "vt100";

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console {tty}: adding it to the new root's /etc/inittab")]
    Inittab {
        tty: String,
        #[source]
        source: NewRootError,
    },
    #[error("console {tty}: adding it to the new root's /etc/securetty")]
    Securetty {
        tty: String,
        #[source]
        source: NewRootError,
    },
    #[error("autodetect_serial=setconsole: pattern {pattern:?} is not a valid regular expression")]
    Pattern {
        pattern: String,
        #[source]
        source: crate::ere::EreError,
    },
    #[error("setconsole {path}")]
    SetConsole {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `autodetect_serial` as given: detection is on unless it is `no`.
fn autodetect(cmdline: &Cmdline) -> bool {
    cmdline.get("autodetect_serial") != Some("no")
}

/// A name that can stand in `/dev/NAME` and an inittab id field.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', ':', '#'])
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `detect_serial_consoles`: the `ttyS<n>` lines of
/// `/proc/tty/driver/serial` whose modem status (7th field) shows CTS or DSR,
/// then every `/sys/class/tty/*` with a `device` link, in name order.
/// Nothing when an apkovl file was found or `autodetect_serial=no`.
pub fn detect_serial(layout: &Layout, cmdline: &Cmdline, ovl_found: bool) -> Vec<String> {
    if ovl_found || !autodetect(cmdline) {
        return Vec::new();
    }
    let mut found = Vec::new();
    let serial =
        std::fs::read_to_string(layout.path("/proc/tty/driver/serial")).unwrap_or_default();
    found.extend(serial_lines_with_peer(&serial));
    let class = layout.path("/sys/class/tty");
    let mut names: Vec<String> = std::fs::read_dir(&class)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    alpinit_sort::sort(&mut names);
    found.extend(
        names
            .into_iter()
            .filter(|n| class.join(n).join("device").exists()),
    );
    found
}

/// `awk '$7 ~ /CTS/ || $7 ~ /DSR/ { print $1 }'`, each match as `ttyS<n>`.
/// Alpine glues several matches into one malformed name; each is kept here.
pub fn serial_lines_with_peer(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let status = fields.get(6)?;
            if !(status.contains("CTS") || status.contains("DSR")) {
                return None;
            }
            let n = fields.first()?.strip_suffix(':').unwrap_or(fields[0]);
            Some(format!("ttyS{n}"))
        })
        .collect()
}

/// `list_console_devices`: `name`, or what its `active` file lists,
/// resolved again (`console` → `tty0 ttyS0` → `tty1 ttyS0`).
pub fn resolve(layout: &Layout, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    resolve_into(layout, name, 0, &mut out);
    out
}

fn resolve_into(layout: &Layout, name: &str, depth: usize, out: &mut Vec<String>) {
    let active = layout.path("/sys/class/tty").join(name).join("active");
    let listed = match std::fs::read_to_string(&active) {
        Ok(text) if depth < ACTIVE_DEPTH && plain_name(name) => text,
        _ => return out.push(name.to_owned()),
    };
    for dev in listed.split_whitespace() {
        resolve_into(layout, dev, depth + 1, out);
    }
}

/// The getty lines to add: for `console`, each `console=` and each detected
/// serial tty, resolved, that answers `stty -g` and is not in the inittab.
/// Returns the ttys that got a line or a securetty entry.
pub fn setup_inittab(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    ovl_found: bool,
) -> Vec<String> {
    let wanted: Vec<String> = std::iter::once("console".to_owned())
        .chain(cmdline.consoles().iter().cloned())
        .chain(detect_serial(layout, cmdline, ovl_found))
        .flat_map(|c| resolve(layout, &c))
        .collect();
    let root = match NewRoot::open(&layout.sysroot()) {
        Ok(r) => r,
        Err(e) => {
            log::warn(&crate::failure::chain(&e));
            return Vec::new();
        }
    };
    let mut done = Vec::new();
    for tty in wanted {
        if !plain_name(&tty) {
            log::warn(&format!("console {tty:?}: not a tty name, no getty line"));
            continue;
        }
        // Alpine: "ignore tty devices that gives I/O error".
        if let Err(e) = p.console.probe_tty(&layout.dev().join(&tty)) {
            log::debug(&format!("console {tty}: {e}; no getty line"));
            continue;
        }
        match add_console(&root, layout, &tty) {
            Ok(true) => done.push(tty),
            Ok(false) => {}
            Err(e) => log::warn(&crate::failure::chain(&e)),
        }
    }
    done
}

/// The getty line and the securetty entry for `tty`; whether anything was
/// added.
fn add_console(root: &NewRoot, layout: &Layout, tty: &str) -> Result<bool, ConsoleError> {
    let mut added = false;
    let inittab = read_optional(root, "etc/inittab").map_err(|source| ConsoleError::Inittab {
        tty: tty.to_owned(),
        source,
    })?;
    let text = inittab.as_deref().unwrap_or_default();
    if !text.lines().any(|l| l.starts_with(&format!("{tty}:"))) {
        let line = format!(
            "# enable login on alternative console\n{tty}::respawn:/sbin/getty -L 0 {tty} {TERM}\n"
        );
        append(root, layout, "etc/inittab", text, &line, 0o644).map_err(|source| {
            ConsoleError::Inittab {
                tty: tty.to_owned(),
                source,
            }
        })?;
        added = true;
    }
    let securetty =
        read_optional(root, "etc/securetty").map_err(|source| ConsoleError::Securetty {
            tty: tty.to_owned(),
            source,
        })?;
    if let Some(text) = securetty {
        if !has_word(&text, tty) {
            append(
                root,
                layout,
                "etc/securetty",
                &text,
                &format!("{tty}\n"),
                0o644,
            )
            .map_err(|source| ConsoleError::Securetty {
                tty: tty.to_owned(),
                source,
            })?;
            added = true;
        }
    }
    Ok(added)
}

/// `grep -w WORD`: `word` bounded by non-word characters (letters, digits
/// and `_` are word characters).
pub fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == word)
}

/// The file's text, or None when the new root has no such entry (Alpine
/// appends to a missing inittab and leaves a missing securetty alone).
fn read_optional(root: &NewRoot, rel: &str) -> Result<Option<String>, NewRootError> {
    if !root.exists(rel) {
        return Ok(None);
    }
    root.read_to_string(rel).map(Some)
}

/// `echo LINE >> FILE`, keeping the file's mode, with the missing newline
/// of a last line added so the new line stays a line of its own.
fn append(
    root: &NewRoot,
    layout: &Layout,
    rel: &str,
    text: &str,
    line: &str,
    default_mode: u32,
) -> Result<(), NewRootError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = crate::in_root::resolve_in_root(&layout.sysroot(), rel)
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(default_mode, |m| m.permissions().mode() & 0o7777);
    let mut new = String::with_capacity(text.len() + line.len() + 1);
    new.push_str(text);
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(line);
    root.write_file(rel, new.as_bytes(), mode)
}

/// `autodetect_serial=setconsole[=RE,RE..]`: the console moves to the
/// first detected serial tty that answers `stty -g`; with patterns, only
/// when one matches `/sys/class/dmi/id/modalias` (`grep -E`). Returns the
/// device it moved to.
pub fn setconsole(p: &Platform<'_>, layout: &Layout, cmdline: &Cmdline) -> Option<PathBuf> {
    let value = cmdline.get("autodetect_serial")?;
    let patterns: Vec<&str> = match value.strip_prefix("setconsole") {
        Some("") => Vec::new(),
        Some(rest) => rest
            .strip_prefix('=')?
            .split(',')
            .filter(|s| !s.is_empty())
            .collect(),
        None => return None,
    };
    let mut regexes = Vec::new();
    for pattern in &patterns {
        match crate::ere::Ere::new(pattern) {
            Ok(r) => regexes.push(r),
            Err(source) => log::warn(&crate::failure::chain(&ConsoleError::Pattern {
                pattern: (*pattern).to_owned(),
                source,
            })),
        }
    }
    let modalias =
        std::fs::read_to_string(layout.path("/sys/class/dmi/id/modalias")).unwrap_or_default();
    // `setconsole=` with only empty patterns is `setconsole` with none, as in
    // the script, whose loop over no arguments sets the first tty.
    let dmi_ok = patterns.is_empty() || regexes.iter().any(|r| modalias_matches(r, &modalias));
    if !dmi_ok {
        return None;
    }
    for tty in detect_serial(layout, cmdline, false) {
        if !plain_name(&tty) {
            continue;
        }
        let dev = layout.dev().join(&tty);
        if p.console.probe_tty(&dev).is_err() {
            continue;
        }
        match p.console.set_console(&dev) {
            Ok(()) => {
                log::info(&format!("setconsole {}", dev.display()));
                return Some(dev);
            }
            Err(source) => log::warn(&crate::failure::chain(&ConsoleError::SetConsole {
                path: dev,
                source,
            })),
        }
    }
    None
}

/// `grep -E -q RE FILE`: any line matches.
fn modalias_matches(re: &crate::ere::Ere, text: &str) -> bool {
    text.lines().any(|l| re.is_match(l))
}

#[cfg(test)]
#[path = "consoles_tests.rs"]
mod tests;
