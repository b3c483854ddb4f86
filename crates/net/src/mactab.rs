//! `/etc/mactab` (busybox `nameif -s`): interfaces renamed by MAC address
//! before one is chosen, so `ip=...:eth-lan:...` and `{MAC}` see the names
//! the user configured.

use std::io;
use std::path::Path;

use crate::interface::Links;
use crate::NetError;

/// `NAME MAC` lines; `#` starts a comment. Lines with an unusable name or
/// MAC are skipped.
pub fn parse_mactab(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?;
            let mac = f.next()?.to_ascii_lowercase();
            // The rule `ip=`'s device follows: a name the kernel could give an
            // interface (printable ASCII; a NUL would cut it in netlink).
            let valid_name = crate::ipconfig::valid_ifname(name).is_ok();
            let valid_mac = crate::interface::parse_mac(&mac).is_some();
            (valid_name && valid_mac).then(|| (name.to_owned(), mac))
        })
        .collect()
}

/// Renames interfaces per `entries`; returns `(old, new)` for each rename
/// done and an error line for each that failed.
pub fn apply_mactab(
    sys: &Path,
    links: &dyn Links,
    entries: &[(String, String)],
) -> (Vec<(String, String)>, Vec<NetError>) {
    let mut done = Vec::new();
    let mut errors = Vec::new();
    let net = sys.join("class/net");
    for (name, mac) in entries {
        let Ok(dir) = std::fs::read_dir(&net) else {
            break;
        };
        let mut found = None;
        for e in dir.flatten() {
            let ifname = e.file_name().to_string_lossy().into_owned();
            let addr = std::fs::read_to_string(e.path().join("address")).unwrap_or_default();
            if addr.trim().eq_ignore_ascii_case(mac) {
                found = Some(ifname);
                break;
            }
        }
        let Some(current) = found else { continue };
        if current == *name {
            continue;
        }
        let result: io::Result<()> = links
            .set_up(&current, false)
            .and_then(|()| links.rename(&current, name));
        match result {
            Ok(()) => done.push((current, name.clone())),
            Err(source) => errors.push(NetError::Rename {
                from: current,
                to: name.clone(),
                mac: mac.clone(),
                source,
            }),
        }
    }
    (done, errors)
}
