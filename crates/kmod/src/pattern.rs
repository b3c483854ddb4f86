//! Shell-style wildcard matching for `modules.alias` patterns (`*`, `?`, `[...]`), the same
//! subset modprobe uses through fnmatch(3) with no flags.

/// Whether `text` matches the wildcard `pattern`.
///
/// `*` matches any run of bytes, `?` one byte, `[abc]`, `[a-z]` and the negated `[!a-z]` /
/// `[^a-z]` one byte from a set, and `\x` the literal `x`. A `[` without a closing `]` is a
/// literal. Matching is on bytes; aliases are ASCII.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the last `*`: pattern index after the star, and the text index it
    // currently stands for. One resume point suffices because a later star supersedes it.
    let mut resume: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some(b'*') => {
                resume = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match_class(&p[pi..], t[ti]),
            Some(b'\\') if pi + 1 < p.len() => (p[pi + 1] == t[ti]).then_some(2),
            Some(&c) => (c == t[ti]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                pi += len;
                ti += 1;
            }
            None => match resume {
                Some((rp, rt)) => {
                    pi = rp;
                    ti = rt + 1;
                    resume = Some((rp, rt + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches one byte against the class at the start of `p` (which begins with `[`). Returns the
/// class length in pattern bytes when `c` matches. A class without `]` is a literal `[`.
fn match_class(p: &[u8], c: u8) -> Option<usize> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    // A `]` right after the opening (or the negation) is a member, not the end.
    let body_start = i;
    let close = p
        .get(body_start + 1..)
        .and_then(|rest| rest.iter().position(|&b| b == b']'))
        .map(|pos| pos + body_start + 1);
    let Some(close) = close else {
        return (c == b'[').then_some(1);
    };
    let body = &p[body_start..close];
    let mut found = false;
    let mut j = 0;
    while j < body.len() {
        if j + 2 < body.len() && body[j + 1] == b'-' {
            found |= body[j] <= c && c <= body[j + 2];
            j += 3;
        } else {
            found |= body[j] == c;
            j += 1;
        }
    }
    (found != negate).then_some(close + 1)
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn table() {
        let cases = [
            (
                "pci:v00001AF4d00001001sv*sd*bc*sc*i*",
                "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
                true,
            ),
            (
                "pci:v00001AF4d00001001sv*sd*bc*sc*i*",
                "pci:v00001AF4d00001042sv00001AF4sd00001042bc01sc80i00",
                false,
            ),
            (
                "pci:v*d*sv*sd*bc01sc06i01*",
                "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01",
                true,
            ),
            (
                "pci:v*d*sv*sd*bc01sc06i01*",
                "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i02",
                false,
            ),
            (
                "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
                "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00",
                true,
            ),
            (
                "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
                "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip62in00",
                false,
            ),
            ("usb:v0BC2p2[0-2]*", "usb:v0BC2p2100", true),
            ("usb:v0BC2p2[0-2]*", "usb:v0BC2p2300", false),
            ("usb:v0BC2p2[!0-2]*", "usb:v0BC2p2300", true),
            ("usb:v0BC2p2[^0-2]*", "usb:v0BC2p2100", false),
            ("d[0-9A-F]x", "dBx", true),
            ("d[0-9A-F]x", "dbx", false),
            ("a[]]b", "a]b", true),
            ("a[!]]b", "a]b", false),
            ("a[-x]b", "a-b", true),
            ("a[x-]b", "a-b", true),
            ("a[bc", "a[bc", true),
            ("a[bc", "ab", false),
            ("[", "[", true),
            ("[!", "[!", true),
            ("x[", "x", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("x", "", false),
            ("a*", "a", true),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c", "xxaxxbxxcxx", false),
            ("a*b*a", "abababa", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("fs_ext4", "fs_ext4", true),
            ("fs_ext4", "fs_ext3", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(fnmatch(pattern, text), want, "{pattern:?} vs {text:?}");
        }
    }
}
