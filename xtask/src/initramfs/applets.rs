//! Busybox's applet links, made when the image is built instead of by
//! `/bin/busybox --install -s` at every boot: a symlink to `/bin/busybox`
//! at each path `busybox --list-full` names, where the image has nothing
//! yet, and a marker listing them that tells the init the spawn is not
//! needed (`crates/init/src/early.rs`, `install_applets`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cpio::{Archive, Node};
use crate::kernel::Arch;

/// The marker in the image (relative to `/`). Its first line is
/// `busybox TARGET SIZE BANNER`, then a `boot PATH` line per link left to
/// the init ([`AT_BOOT`]), then one line per link made, each an absolute
/// path. The init compares TARGET and SIZE with the image's
/// busybox before it trusts the links (`APPLETS_MARKER` in
/// `crates/init/src/early.rs` names the same path).
pub const MARKER: &str = "lib/alpinit/applets";

/// What the links point to: the path `busybox --install -s` links to is
/// the one busybox was run as (it reads `/proc/self/exe`), and the init
/// runs `/bin/busybox`.
pub const TARGET: &str = "/bin/busybox";

/// Applets the kernel itself executes: `CONFIG_MODPROBE_PATH`
/// (`/sbin/modprobe`) for its own `request_module()` calls. In the image
/// it would run during the kernel's boot, before `/init` (six busybox
/// spawns under QEMU, for `crypto-hmac(sha256)` and the like, where a
/// missing file fails at once); `--install -s` at boot made it only after
/// the init had started. The marker names it on a `boot PATH` line and
/// the init makes that link when it skips the spawn.
const AT_BOOT: [&str; 1] = ["sbin/modprobe"];

/// The directories `busybox --install -s` puts applets in (`/` is the one
/// of `linuxrc`); `--list-full` names each applet's with its path.
const INSTALL_DIRS: [&str; 5] = ["", "bin", "sbin", "usr/bin", "usr/sbin"];

/// More applets than any busybox configuration has: a listing longer than
/// this is not a busybox applet list.
const MAX_APPLETS: usize = 2000;

/// What became of the links.
#[derive(Debug)]
pub enum Outcome {
    /// The links were added; the marker lists this many.
    Made(usize),
    /// No links and no marker: the init runs `busybox --install -s` at boot,
    /// for this reason.
    AtBoot(anyhow::Error),
}

/// Adds the applet links of the image's busybox (BYTES, read from PATH)
/// and the marker to ARCHIVE, which must hold everything else already
/// (`--extra` included) so that no entry is replaced. The host's own
/// busybox candidates are tried when the image's cannot run here.
pub fn add(archive: &mut Archive, path: &Path, bytes: &[u8], arch: Arch) -> Outcome {
    let host = Arch::parse(std::env::consts::ARCH);
    let candidates: Vec<PathBuf> = super::BUSYBOX_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .collect();
    add_with(archive, path, bytes, arch, host, &candidates)
}

fn add_with(
    archive: &mut Archive,
    path: &Path,
    bytes: &[u8],
    arch: Arch,
    host: Option<Arch>,
    candidates: &[PathBuf],
) -> Outcome {
    let made = (|| {
        if archive.get(MARKER).is_some() {
            bail!("the image already has /{MARKER}");
        }
        match archive.get(TARGET) {
            Some(Node::File { data, .. }) if data.as_slice() == bytes => {}
            _ => bail!(
                "{TARGET} in the image is not the busybox from {}",
                path.display()
            ),
        }
        let lister = lister(path, bytes, arch, host, candidates)?;
        let applets = list(&lister)?;
        let banner = banner(bytes).unwrap_or_else(|| "BusyBox".to_owned());
        Ok(add_links(archive, &applets, bytes.len() as u64, &banner))
    })();
    match made {
        Ok(n) => Outcome::Made(n),
        Err(e) => Outcome::AtBoot(e),
    }
}

/// The busybox whose `--list-full` is the image busybox's: that one itself
/// when it runs on this host, else the host's own busybox-static of the
/// same version. Debian builds busybox-static from one source with one
/// configuration for every architecture (`busybox-static` on amd64 and
/// `busybox-static:arm64` are the same package), so the same version
/// lists the same applets in the same directories.
fn lister(
    path: &Path,
    bytes: &[u8],
    arch: Arch,
    host: Option<Arch>,
    candidates: &[PathBuf],
) -> Result<PathBuf> {
    if host == Some(arch) {
        return Ok(path.to_path_buf());
    }
    let want = banner(bytes)
        .with_context(|| format!("{} has no BusyBox version banner", path.display()))?;
    let Some(host_busybox) = candidates.iter().find(|p| p.is_file()) else {
        bail!("the {arch} busybox cannot run here and this host has no busybox-static to list its applets");
    };
    let host_bytes =
        fs::read(host_busybox).with_context(|| format!("reading {}", host_busybox.display()))?;
    let have = banner(&host_bytes)
        .with_context(|| format!("{} has no BusyBox version banner", host_busybox.display()))?;
    if have != want {
        bail!(
            "the host's {} is {have:?}, the image's {arch} busybox is {want:?}",
            host_busybox.display()
        );
    }
    Ok(host_busybox.clone())
}

/// `BusyBox vVERSION (DISTRIBUTION VERSION)` as busybox prints it first in
/// its help: the build's version, read from the binary without running it.
pub fn banner(bytes: &[u8]) -> Option<String> {
    const START: &[u8] = b"BusyBox v";
    let at = bytes.windows(START.len()).position(|w| w == START)?;
    let rest = &bytes[at..bytes.len().min(at + 128)];
    let end = rest.iter().position(|b| *b == b')' || *b == 0)?;
    let text = std::str::from_utf8(&rest[..=end]).ok()?;
    (text.ends_with(')') && text.bytes().all(|b| (b' '..=b'~').contains(&b)))
        .then(|| text.to_owned())
}

/// `BUSYBOX --list-full`, parsed.
fn list(busybox: &Path) -> Result<Vec<String>> {
    // ETXTBSY: a busybox written a moment ago (the tests' stand-in) can
    // still be open for writing in a child another thread forked and has
    // not yet exec'd; that passes within moments.
    let mut tries = 0;
    let out = loop {
        match Command::new(busybox).arg("--list-full").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => {
                break other
                    .with_context(|| format!("running {} --list-full", busybox.display()))?
            }
        }
    };
    if !out.status.success() {
        bail!("{} --list-full: {}", busybox.display(), out.status);
    }
    let text = String::from_utf8(out.stdout)
        .with_context(|| format!("{} --list-full printed no text", busybox.display()))?;
    parse_list(&text).with_context(|| format!("reading {} --list-full", busybox.display()))
}

/// The applets' paths relative to `/`, one per line of `--list-full`
/// (`usr/bin/[`, `sbin/mdev`, `linuxrc`), each in one of the directories
/// `--install` uses.
pub fn parse_list(text: &str) -> Result<Vec<String>> {
    let mut applets = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (dir, name) = line.rsplit_once('/').unwrap_or(("", line));
        let name_ok = !name.is_empty()
            && name != "."
            && name != ".."
            && name.bytes().all(|b| b.is_ascii_graphic());
        if !INSTALL_DIRS.contains(&dir) || !name_ok {
            bail!("{line:?} is not an applet in one of busybox's install directories");
        }
        applets.push(line.to_owned());
    }
    if applets.is_empty() {
        bail!("no applets listed");
    }
    if applets.len() > MAX_APPLETS {
        bail!("{} applets listed, more than {MAX_APPLETS}", applets.len());
    }
    Ok(applets)
}

/// A link per applet where the archive has no entry and no parent that is
/// not a directory (a symlinked `bin` of a usr-merged `--extra` tree is
/// left alone), then the marker. The [`AT_BOOT`] ones are named in the
/// marker for the init to make. Returns the number of links made.
fn add_links(archive: &mut Archive, applets: &[String], size: u64, banner: &str) -> usize {
    let mut at_boot = String::new();
    let mut links = String::new();
    let mut made = 0;
    for applet in applets {
        if archive.get(applet).is_some() || !parents_are_dirs(archive, applet) {
            continue;
        }
        if AT_BOOT.contains(&applet.as_str()) {
            at_boot.push_str(&format!("boot /{applet}\n"));
            continue;
        }
        archive.add_symlink(applet, TARGET);
        links.push_str(&format!("/{applet}\n"));
        made += 1;
    }
    let marker = format!("busybox {TARGET} {size} {banner}\n{at_boot}{links}");
    archive.add_file(MARKER, 0o644, marker.into_bytes());
    made
}

fn parents_are_dirs(archive: &Archive, path: &str) -> bool {
    let mut end = 0;
    while let Some(pos) = path[end..].find('/') {
        let parent = &path[..end + pos];
        if !matches!(archive.get(parent), None | Some(Node::Dir { .. })) {
            return false;
        }
        end += pos + 1;
    }
    true
}

#[cfg(test)]
mod tests;
