//! Which top-level files are apkovls, and which one of several to use.

use std::cmp::Ordering;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

const MARKER: &str = ".apkovl.tar.gz";

/// Cipher families `openssl enc` offers; a suffix starting with one of these makes an
/// encrypted overlay a primary name (see the crate docs).
const CIPHER_FAMILIES: &[&str] = &[
    "aes", "aria", "bf", "blowfish", "camellia", "cast", "chacha20", "des", "idea", "rc2", "rc4",
    "rc5", "seed", "sm4",
];

/// `fnmatch("*.apkovl.tar.gz*", name, 0)` on a top-level file name, as nlplug does.
///
/// Without `FNM_PERIOD` a leading `*` also matches hidden names, so this is a plain
/// substring test.
///
/// One exception: a detached signature (`x.apkovl.tar.gz.sig`, see the README's
/// "Signed overlays") sits beside the overlay it signs and is never an overlay itself.
pub fn is_apkovl_name(name: &str) -> bool {
    name.contains(MARKER) && !name.ends_with(SIG_SUFFIX)
}

/// The suffix of a detached signature: `X.sig` signs `X`.
pub const SIG_SUFFIX: &str = ".sig";

/// The host part of an lbu overlay name: `myhost` for `myhost.apkovl.tar.gz` and
/// `myhost.apkovl.tar.gz.aes-256-cbc`. `None` for names lbu does not write as the
/// current overlay (`x.apkovl.tar.gz.bak`, no marker, an empty host).
pub fn overlay_host(name: &str) -> Option<&str> {
    let at = name.find(MARKER)?;
    let rest = &name[at + MARKER.len()..];
    let plain_or_cipher = rest.is_empty()
        || rest
            .strip_prefix('.')
            .is_some_and(|c| !c.is_empty() && !c.contains('.') && c != "sig");
    (at > 0 && plain_or_cipher).then_some(&name[..at])
}

/// The timestamp of an lbu backup of `host`: `20261130194643` for
/// `host.20261130194643.tar.gz` or `host.20261130194643.tar.gz.aes-256-cbc`.
///
/// `lbu commit` with `BACKUP_LIMIT` renames the previous overlay by replacing
/// `.apkovl.tar.gz` with `.YYYYmmddHHMMSS.tar.gz` (the old file's mtime in UTC), and
/// keeps the cipher suffix (alpine-initramfs.md §5.4 in the shared reference). The
/// stamp is exactly 14 digits; signatures (`.sig`) and other suffixes with a dot are
/// not backups.
pub fn backup_stamp<'a>(host: &str, name: &'a str) -> Option<&'a str> {
    let rest = name.strip_prefix(host)?.strip_prefix('.')?;
    let (stamp, tail) = rest.split_at_checked(14)?;
    if !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let suffix = tail.strip_prefix(".tar.gz")?;
    let ok = suffix.is_empty()
        || suffix
            .strip_prefix('.')
            .is_some_and(|c| !c.is_empty() && !c.contains('.') && c != "sig");
    ok.then_some(stamp)
}

/// One apkovl found on a mounted medium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Full path of the file, e.g. `/media/sda1/host.apkovl.tar.gz`.
    pub path: PathBuf,
    /// Kernel name of the device it was found on, e.g. `sda1`.
    pub device: String,
    /// The same device also holds a boot repository.
    pub device_has_boot_repo: bool,
    /// The device is removable media.
    pub removable: bool,
}

/// Deterministic choice among candidates; the rules are in the crate docs.
pub fn choose(cands: &[Candidate]) -> Option<&Candidate> {
    cands.iter().min_by(|a, b| rank(a, b))
}

/// [`choose`], telling `log` every candidate and then the choice, so the
/// boot log shows what was considered.
pub fn choose_logged<'a>(
    cands: &'a [Candidate],
    log: &mut dyn FnMut(&str),
) -> Option<&'a Candidate> {
    for c in cands {
        log(&format!(
            "apkovl candidate {} (device {}{})",
            c.path.display(),
            c.device,
            if c.device_has_boot_repo {
                ", holds a boot repository"
            } else {
                ""
            }
        ));
    }
    let chosen = choose(cands)?;
    log(&format!("apkovl chosen: {}", chosen.path.display()));
    Some(chosen)
}

fn rank(a: &Candidate, b: &Candidate) -> Ordering {
    b.device_has_boot_repo
        .cmp(&a.device_has_boot_repo)
        .then_with(|| is_primary(b).cmp(&is_primary(a)))
        .then_with(|| natural_cmp(a.device.as_bytes(), b.device.as_bytes()))
        .then_with(|| file_name(a).cmp(file_name(b)))
        .then_with(|| {
            a.path
                .as_os_str()
                .as_bytes()
                .cmp(b.path.as_os_str().as_bytes())
        })
}

/// Why [`choose`] puts `a` before `b`: the first rule of its order that
/// tells them apart (`None` when it does not).
pub fn deciding_rule(a: &Candidate, b: &Candidate) -> Option<&'static str> {
    if a.device_has_boot_repo != b.device_has_boot_repo {
        Some("its device also holds a boot repository")
    } else if is_primary(a) != is_primary(b) {
        Some("a plain NAME.apkovl.tar.gz[.cipher] name wins over .bak/.new variants")
    } else if a.device != b.device {
        Some("the lower device name in natural order")
    } else if rank(a, b) != Ordering::Equal {
        Some("the file name, in byte order")
    } else {
        None
    }
}

fn file_name(c: &Candidate) -> &[u8] {
    c.path.file_name().map(|n| n.as_bytes()).unwrap_or_default()
}

fn is_primary(c: &Candidate) -> bool {
    let name = String::from_utf8_lossy(file_name(c));
    let Some(at) = name.rfind(MARKER) else {
        return false;
    };
    let rest = &name[at + MARKER.len()..];
    if rest.is_empty() {
        return true;
    }
    match rest.strip_prefix('.') {
        Some(cipher) if !cipher.contains('.') => {
            let cipher = cipher.to_ascii_lowercase();
            CIPHER_FAMILIES.iter().any(|f| cipher.starts_with(f))
        }
        _ => false,
    }
}

/// The order in which kernel device names are taken (`sda2 < sda10 < sdb1 <
/// sr0 < vda1`): the tie-break of [`choose`], also used for device links.
pub fn device_order(a: &str, b: &str) -> Ordering {
    natural_cmp(a.as_bytes(), b.as_bytes())
}

/// Natural order: runs of digits compare by numeric value, everything else bytewise.
fn natural_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let (na, ea) = digit_run(a, i);
            let (nb, eb) = digit_run(b, j);
            // Without leading zeros, a longer run is a larger number.
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
            (i, j) = (ea, eb);
        } else {
            let ord = a[i].cmp(&b[j]);
            if ord != Ordering::Equal {
                return ord;
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j)).then_with(|| a.cmp(b))
}

/// The significant digits of the run starting at `start`, and the index after the run.
fn digit_run(s: &[u8], start: usize) -> (&[u8], usize) {
    let end = s[start..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(s.len(), |p| start + p);
    let first = s[start..end]
        .iter()
        .position(|&c| c != b'0')
        .map_or(end, |p| start + p);
    (&s[first..end], end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apkovl_name_matches_like_fnmatch() {
        let cases = [
            ("host.apkovl.tar.gz", true),
            ("host.apkovl.tar.gz.aes-256-cbc", true),
            ("x.apkovl.tar.gz.bak", true),
            (".hidden.apkovl.tar.gz", true),
            (".apkovl.tar.gz", true),
            ("host.apkovl.tar", false),
            ("host.20240101120000.tar.gz", false),
            ("host.APKOVL.tar.gz", false),
            ("apkovl.tar.gz", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_apkovl_name(name), want, "{name}");
        }
    }

    #[test]
    fn a_detached_signature_is_never_an_overlay_candidate() {
        assert!(!is_apkovl_name("host.apkovl.tar.gz.sig"));
        assert!(!is_apkovl_name("host.apkovl.tar.gz.aes-256-cbc.sig"));
        assert!(is_apkovl_name("host.apkovl.tar.gz.signed"));
    }

    #[test]
    fn overlay_host_of_lbu_names() {
        let cases = [
            ("myhost.apkovl.tar.gz", Some("myhost")),
            ("my.host.apkovl.tar.gz.aes-256-cbc", Some("my.host")),
            ("myhost.apkovl.tar.gz.bak.x", None),
            ("myhost.apkovl.tar.gz.sig", None),
            (".apkovl.tar.gz", None),
            ("myhost.tar.gz", None),
        ];
        for (name, want) in cases {
            assert_eq!(overlay_host(name), want, "{name}");
        }
    }

    #[test]
    fn backup_names_as_lbu_writes_them() {
        let cases = [
            ("h.20261130194643.tar.gz", Some("20261130194643")),
            (
                "h.20261130194643.tar.gz.aes-256-cbc",
                Some("20261130194643"),
            ),
            ("h.20261130194643.tar.gz.sig", None),
            ("h.2026113019464.tar.gz", None),
            ("h.202611301946430.tar.gz", None),
            ("h.2026113019464x.tar.gz", None),
            ("hh.20261130194643.tar.gz", None),
            ("h.20261130194643.tar", None),
            ("h.20261130194643.tar.gz.a.b", None),
            ("h.apkovl.tar.gz", None),
        ];
        for (name, want) in cases {
            assert_eq!(backup_stamp("h", name), want, "{name}");
        }
    }

    #[test]
    fn natural_order_of_device_names() {
        let sorted = [
            "mmcblk0p1",
            "mmcblk0p2",
            "mmcblk1p1",
            "nvme0n1p2",
            "nvme0n1p10",
            "nvme1n1p1",
            "sda",
            "sda1",
            "sda2",
            "sda10",
            "sdb1",
            "sr0",
            "vda1",
            "vdb1",
        ];
        for (x, a) in sorted.iter().enumerate() {
            for (y, b) in sorted.iter().enumerate() {
                assert_eq!(
                    natural_cmp(a.as_bytes(), b.as_bytes()),
                    x.cmp(&y),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn leading_zeros_do_not_make_names_equal() {
        assert_ne!(natural_cmp(b"sda01", b"sda1"), Ordering::Equal);
        assert_eq!(natural_cmp(b"sda01", b"sda2"), Ordering::Less);
    }

    #[test]
    fn primary_names() {
        let cases = [
            ("h.apkovl.tar.gz", true),
            ("h.apkovl.tar.gz.aes-256-cbc", true),
            ("h.apkovl.tar.gz.des3", true),
            ("h.apkovl.tar.gz.bak", false),
            ("h.apkovl.tar.gz.new", false),
            ("h.apkovl.tar.gz.old", false),
            ("h.apkovl.tar.gz.aes-256-cbc.bak", false),
            ("h.apkovl.tar.gzip", false),
        ];
        for (name, want) in cases {
            let c = cand(&format!("/media/sda1/{name}"), "sda1", false);
            assert_eq!(is_primary(&c), want, "{name}");
        }
    }

    /// Each set lists candidates as (path, device, has boot repo) and the expected winner.
    #[test]
    fn choice_rules_and_order_independence() {
        type Set<'a> = &'a [(&'a str, &'a str, bool)];
        let sets: &[(Set, &str)] = &[
            (&[], ""),
            (
                &[
                    ("/media/sdb1/a.apkovl.tar.gz", "sdb1", false),
                    ("/media/sda1/z.apkovl.tar.gz", "sda1", false),
                ],
                "/media/sda1/z.apkovl.tar.gz",
            ),
            (
                &[
                    ("/media/sda1/a.apkovl.tar.gz", "sda1", false),
                    ("/media/vda1/h.apkovl.tar.gz", "vda1", true),
                ],
                "/media/vda1/h.apkovl.tar.gz",
            ),
            (
                &[
                    ("/media/sda1/a.apkovl.tar.gz.bak", "sda1", true),
                    ("/media/sda1/b.apkovl.tar.gz.aes-256-cbc", "sda1", true),
                    ("/media/sdb1/c.apkovl.tar.gz", "sdb1", false),
                ],
                "/media/sda1/b.apkovl.tar.gz.aes-256-cbc",
            ),
            (
                &[
                    ("/media/sda1/a.apkovl.tar.gz.old", "sda1", false),
                    ("/media/sdb1/b.apkovl.tar.gz.new", "sdb1", false),
                    ("/media/sr0/c.apkovl.tar.gz", "sr0", false),
                ],
                "/media/sr0/c.apkovl.tar.gz",
            ),
            (
                &[
                    ("/media/nvme0n1p10/a.apkovl.tar.gz", "nvme0n1p10", false),
                    ("/media/nvme0n1p2/b.apkovl.tar.gz", "nvme0n1p2", false),
                ],
                "/media/nvme0n1p2/b.apkovl.tar.gz",
            ),
            (
                &[
                    ("/media/sda1/b.apkovl.tar.gz", "sda1", false),
                    ("/media/sda1/a.apkovl.tar.gz", "sda1", false),
                ],
                "/media/sda1/a.apkovl.tar.gz",
            ),
            (
                &[
                    ("/media/sda1/x.apkovl.tar.gz.bak", "sda1", false),
                    ("/media/sda1/x.apkovl.tar.gz.aaa", "sda1", false),
                ],
                "/media/sda1/x.apkovl.tar.gz.aaa",
            ),
        ];
        for (set, want) in sets {
            let mut cands: Vec<Candidate> = set.iter().map(|(p, d, r)| cand(p, d, *r)).collect();
            for _ in 0..cands.len().max(1) {
                let got = choose(&cands).map(|c| c.path.to_str().unwrap());
                assert_eq!(got.unwrap_or(""), *want, "{cands:?}");
                if !cands.is_empty() {
                    cands.rotate_left(1);
                }
                cands.reverse();
            }
        }
    }

    #[test]
    fn choose_logged_lists_every_candidate_then_the_choice() {
        let cands = [
            cand("/media/sdb1/a.apkovl.tar.gz", "sdb1", true),
            cand("/media/sda1/b.apkovl.tar.gz", "sda1", false),
        ];
        let mut lines = Vec::new();
        let chosen = choose_logged(&cands, &mut |l| lines.push(l.to_owned())).unwrap();
        assert_eq!(chosen.device, "sdb1");
        assert_eq!(
            lines,
            [
                "apkovl candidate /media/sdb1/a.apkovl.tar.gz (device sdb1, holds a boot repository)",
                "apkovl candidate /media/sda1/b.apkovl.tar.gz (device sda1)",
                "apkovl chosen: /media/sdb1/a.apkovl.tar.gz",
            ]
        );
        assert!(choose_logged(&[], &mut |_| panic!("nothing to log")).is_none());
    }

    fn cand(path: &str, device: &str, repo: bool) -> Candidate {
        Candidate {
            path: PathBuf::from(path),
            device: device.to_owned(),
            device_has_boot_repo: repo,
            removable: false,
        }
    }
}
