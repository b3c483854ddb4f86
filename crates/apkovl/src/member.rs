//! Member names: normalisation and the rules that reject a name outright.

/// Why a member name (or hard-link target) is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// Nothing but `/` and `.` components where a file is needed, or an empty name.
    #[error("the name is empty")]
    Empty,
    /// A NUL byte (possible through PAX records).
    #[error("the name contains a NUL byte")]
    Nul,
    /// Control characters would corrupt the member list handed to apk and the logs.
    #[error("the name contains a control character")]
    Control,
    /// A `..` component: lbu never writes one, so it means tampering.
    #[error("the name contains a '..' component")]
    DotDot,
    /// The whole name is longer than `max_path_len`.
    #[error("the name is {len} bytes long, over the limit max_path_len ({limit})")]
    TooLong {
        /// Length of the name.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// One component is longer than `max_component_len`.
    #[error("a component is {len} bytes long, over the limit max_component_len ({limit})")]
    ComponentTooLong {
        /// Length of the component.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
}

/// A member path relative to the sysroot: components joined with single `/`, no
/// leading `/`, no `.` or empty components. Empty means the sysroot itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MemberPath(pub(crate) Vec<u8>);

impl MemberPath {
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Splits into the parent path and the last component.
    pub(crate) fn split_last(&self) -> (&[u8], &[u8]) {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => (&self.0[..i], &self.0[i + 1..]),
            None => (&[], &self.0),
        }
    }
}

/// Result of [`normalize`].
pub(crate) struct Normalized {
    pub(crate) path: MemberPath,
    /// A leading `/` was removed.
    pub(crate) was_absolute: bool,
}

/// Applies the path rules of the crate docs to a raw member name.
pub(crate) fn normalize(
    raw: &[u8],
    max_path: usize,
    max_component: usize,
) -> Result<Normalized, NameError> {
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    if raw.len() > max_path {
        return Err(NameError::TooLong {
            len: raw.len(),
            limit: max_path,
        });
    }
    if raw.contains(&0) {
        return Err(NameError::Nul);
    }
    // Folds without an early exit compile to vector code: a name is up to 4 KiB and an
    // overlay up to 100 000 of them.
    if raw.iter().fold(false, |a, &b| a | (b < 0x20) | (b == 0x7f)) {
        return Err(NameError::Control);
    }
    let out = match canonical(raw, max_component) {
        Some(body) => body.to_vec(),
        None => {
            let mut out = Vec::with_capacity(raw.len());
            for comp in raw.split(|&b| b == b'/') {
                match comp {
                    b"" | b"." => continue,
                    b".." => return Err(NameError::DotDot),
                    _ if comp.len() > max_component => {
                        return Err(NameError::ComponentTooLong {
                            len: comp.len(),
                            limit: max_component,
                        })
                    }
                    _ => {
                        if !out.is_empty() {
                            out.push(b'/');
                        }
                        out.extend_from_slice(comp);
                    }
                }
            }
            out
        }
    };
    Ok(Normalized {
        path: MemberPath(out),
        was_absolute: raw.first() == Some(&b'/'),
    })
}

/// `raw` without its trailing `/` when that is already the normalised name: no empty,
/// `.` or `..` component and none longer than `max_component`. `None` sends the name
/// through the component loop of [`normalize`], which also finds the errors. This is the
/// common case (tar writes names so), checked in a few passes over the bytes instead of
/// a step per component: a member 2,000 directories deep has 2,000 of them.
fn canonical(raw: &[u8], max_component: usize) -> Option<&[u8]> {
    let body = &raw[..raw.iter().rposition(|&b| b != b'/')? + 1];
    // With a `/` added at both ends, every empty, `.` or `..` component shows as `//`,
    // `/./` or `/../`; two more bytes let four-byte windows reach the end.
    let mut p = Vec::with_capacity(body.len() + 4);
    p.push(b'/');
    p.extend_from_slice(body);
    p.extend_from_slice(b"/\0\0");
    let n = p.len() - 3;
    let (w0, w1, w2, w3) = (&p[..n], &p[1..n + 1], &p[2..n + 2], &p[3..n + 3]);
    let bad = w0
        .iter()
        .zip(w1)
        .zip(w2)
        .zip(w3)
        .fold(false, |acc, (((&a, &b), &c), &d)| {
            let (s1, s2, s3) = (b == b'/', c == b'/', d == b'/');
            let (d1, d2) = (b == b'.', c == b'.');
            acc | ((a == b'/') & (s1 | (d1 & (s2 | (d2 & s3)))))
        });
    if bad {
        return None;
    }
    // A component longer than `max_component` holds a whole aligned block of
    // ⌈max_component / 2⌉ bytes, so a `/` in every such block rules one out.
    let block = max_component.div_ceil(2);
    if block == 0 || body.chunks_exact(block).any(|c| !c.contains(&b'/')) {
        return None;
    }
    Some(body)
}

/// The member name as `tar -v` lists it for apk: as stored, minus a leading `/` or `./`.
/// Bytes, not text: a name that is not UTF-8 reaches apk unchanged.
pub(crate) fn listed_name(raw: &[u8]) -> &[u8] {
    let mut s = raw;
    loop {
        if let Some(rest) = s.strip_prefix(b"/") {
            s = rest;
        } else if let Some(rest) = s.strip_prefix(b"./").filter(|r| !r.is_empty()) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Longest part of a name shown in a message; the rest is elided so that a 64 KiB PAX
/// name cannot make every warning or error 64 KiB (or six times that once escaped).
const SHOWN_MAX: usize = 160;

/// A name made safe for messages: invalid UTF-8 replaced, control characters escaped,
/// at most [`SHOWN_MAX`] characters of the name (then `...`).
pub(crate) fn shown(raw: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in String::from_utf8_lossy(&raw[..raw.len().min(SHOWN_MAX * 4)])
        .chars()
        .enumerate()
    {
        if i == SHOWN_MAX {
            out.push_str("...");
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if raw.len() > SHOWN_MAX * 4 {
        out.push_str("...");
    }
    out
}

/// The member list handed to `apk --overlay-from-stdin`: names in archive order, each
/// followed by `\n`, in one buffer (names never contain control characters, so `\n`
/// cannot occur inside one).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MemberList {
    bytes: Vec<u8>,
    count: usize,
}

impl MemberList {
    /// Appends one name.
    pub fn push(&mut self, name: &[u8]) {
        self.bytes.extend_from_slice(name);
        self.bytes.push(b'\n');
        self.count += 1;
    }

    /// The names, one per line, each line ending in `\n`: what apk reads on stdin.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No names.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The names in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.split(|&b| b == b'\n').take(self.count)
    }
}

impl MemberList {
    /// `name` is in the list.
    pub fn contains(&self, name: impl AsRef<[u8]>) -> bool {
        self.iter().any(|n| n == name.as_ref())
    }
}

impl std::fmt::Debug for MemberList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

/// Compares with a list of UTF-8 names (convenient in tests and callers).
impl<const N: usize> PartialEq<[&str; N]> for MemberList {
    fn eq(&self, other: &[&str; N]) -> bool {
        self.len() == N && self.iter().zip(other).all(|(a, b)| a == b.as_bytes())
    }
}

impl<'a> FromIterator<&'a [u8]> for MemberList {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        let mut list = MemberList::default();
        for name in iter {
            list.push(name);
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let ok: &[(&[u8], &[u8], bool)] = &[
            (b"etc/hosts", b"etc/hosts", false),
            (b"etc//hosts", b"etc/hosts", false),
            (b"./etc/./hosts", b"etc/hosts", false),
            (b"/etc/motd", b"etc/motd", true),
            (b"//etc/motd", b"etc/motd", true),
            (b"etc/", b"etc", false),
            (b"./", b"", false),
            (b"/", b"", true),
            (b"caf\xc3\xa9/\xff", b"caf\xc3\xa9/\xff", false),
            (b"etc/hosts//", b"etc/hosts", false),
            (b"etc/.", b"etc", false),
            (b"etc/./", b"etc", false),
            (b".", b"", false),
            (b"//", b"", true),
        ];
        for (raw, want, abs) in ok {
            let n = normalize(raw, 4096, 255).unwrap();
            assert_eq!(&n.path.0[..], *want, "{}", shown(raw));
            assert_eq!(n.was_absolute, *abs, "{}", shown(raw));
        }
        let long = vec![b'a'; 256];
        let bad: &[(&[u8], NameError)] = &[
            (b"", NameError::Empty),
            (b"../../etc/passwd", NameError::DotDot),
            (b"./../x", NameError::DotDot),
            (b"a/../../x", NameError::DotDot),
            (b"//..//x", NameError::DotDot),
            (b"a/..", NameError::DotDot),
            (b"a\0b", NameError::Nul),
            (b"a\nb", NameError::Control),
            (b"a\x1bb", NameError::Control),
            (
                &long,
                NameError::ComponentTooLong {
                    len: 256,
                    limit: 255,
                },
            ),
        ];
        for (raw, want) in bad {
            assert_eq!(
                normalize(raw, 4096, 255).err().as_ref(),
                Some(want),
                "{}",
                shown(raw)
            );
        }
        let path = "a/".repeat(2500);
        assert_eq!(
            normalize(path.as_bytes(), 4096, 255).err(),
            Some(NameError::TooLong {
                len: 5000,
                limit: 4096
            })
        );
    }

    /// The rules as one loop over the components, for comparison with `normalize`.
    fn reference(raw: &[u8]) -> Result<Vec<u8>, NameError> {
        let mut out: Vec<u8> = Vec::new();
        for comp in raw.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => return Err(NameError::DotDot),
                _ if comp.len() > 3 => {
                    return Err(NameError::ComponentTooLong {
                        len: comp.len(),
                        limit: 3,
                    })
                }
                _ => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(comp);
                }
            }
        }
        Ok(out)
    }

    /// A name copied whole (nothing but trailing `/` to drop) and a name rebuilt
    /// component by component give what the plain component loop gives, errors
    /// included, for every name of up to four pieces.
    #[test]
    fn normalize_fast_copy_matches_the_component_loop() {
        let pieces: [&[u8]; 8] = [b"a", b"bc", b".", b"..", b"/", b"//", b"abcd", b".x"];
        let mut names: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = names
                .iter()
                .flat_map(|n| pieces.iter().map(move |p| [&n[..], p].concat()))
                .collect();
            names.extend(longer);
        }
        names.sort();
        names.dedup();
        for raw in names.iter().filter(|n| !n.is_empty()) {
            let got = normalize(raw, 4096, 3).map(|n| n.path.0);
            assert_eq!(got, reference(raw), "{}", shown(raw));
        }
    }

    #[test]
    fn split_last_component() {
        let p = MemberPath(b"a/b/c".to_vec());
        assert_eq!(p.split_last(), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(
            MemberPath(b"x".to_vec()).split_last(),
            (&b""[..], &b"x"[..])
        );
    }

    #[test]
    fn listed_names_drop_leading_slash_and_dot() {
        for (raw, want) in [
            ("etc/", "etc/"),
            ("/etc/motd", "etc/motd"),
            ("./etc/hosts", "etc/hosts"),
            ("./", "./"),
        ] {
            assert_eq!(listed_name(raw.as_bytes()), want.as_bytes());
        }
    }

    #[test]
    fn shown_names_are_bounded() {
        let control = vec![0x01u8; 64 * 1024];
        assert!(shown(&control).len() <= SHOWN_MAX * 6 + 3);
        let long = vec![b'a'; 64 * 1024];
        assert_eq!(shown(&long), format!("{}...", "a".repeat(SHOWN_MAX)));
        assert_eq!(shown(b"a\nb"), "a\\nb");
    }

    #[test]
    fn member_list_keeps_bytes() {
        let list: MemberList = [&b"etc/"[..], b"caf\xff"].into_iter().collect();
        assert_eq!(list.as_bytes(), b"etc/\ncaf\xff\n");
        assert_eq!(list.len(), 2);
        assert_eq!(list.iter().collect::<Vec<_>>(), [&b"etc/"[..], b"caf\xff"]);
    }
}
