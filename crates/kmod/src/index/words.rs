//! Whitespace-separated words of an index line, as `str::split_whitespace` gives them, without
//! decoding characters when the line is ASCII (every line depmod writes is): the index parsers
//! split a few thousand lines on the boot's critical path, and the decoding iterator was most
//! of their time in the size-optimised init.

use std::str::SplitWhitespace;

/// The words of `line`; same items as `line.split_whitespace()`.
pub(super) fn words(line: &str) -> Words<'_> {
    if line.is_ascii() {
        Words::Ascii(line)
    } else {
        Words::Unicode(line.split_whitespace())
    }
}

pub(super) enum Words<'a> {
    /// The rest of an ASCII line.
    Ascii(&'a str),
    Unicode(SplitWhitespace<'a>),
}

/// `char::is_whitespace` restricted to ASCII: tab, line feed, vertical tab, form feed,
/// carriage return and space (`u8::is_ascii_whitespace` leaves out the vertical tab).
fn is_space(b: u8) -> bool {
    b == b' ' || (0x09..=0x0d).contains(&b)
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match self {
            Words::Ascii(rest) => {
                let bytes = rest.as_bytes();
                let Some(start) = bytes.iter().position(|&b| !is_space(b)) else {
                    *rest = "";
                    return None;
                };
                let end = bytes[start..]
                    .iter()
                    .position(|&b| is_space(b))
                    .map_or(bytes.len(), |len| start + len);
                // Both cuts are next to ASCII bytes of an ASCII line: character boundaries.
                let word = &rest[start..end];
                *rest = &rest[end..];
                Some(word)
            }
            Words::Unicode(words) => words.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_words_as_split_whitespace() {
        let lines = [
            "",
            " ",
            "alias",
            "alias fs-ext4 ext4",
            "  alias\tpci:v*d* \t ahci  ",
            "a\x0bb\x0cc\rd\ne",
            "a\x1fb",
            "alias x\u{a0}y z",
            "alias x\u{2003}y z",
            "alias \u{e9}t\u{e9} z",
            "\u{85}a\u{85}",
            "softdep ext4 pre: crc32c post:",
        ];
        for line in lines {
            let got: Vec<&str> = words(line).collect();
            let want: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn ascii_words_table() {
        let cases: [(&str, &[&str]); 5] = [
            ("alias  fs-ext4\text4 ", &["alias", "fs-ext4", "ext4"]),
            ("a\x0bb", &["a", "b"]),
            ("a\x1fb", &["a\x1fb"]),
            ("\t\r\n", &[]),
            ("x", &["x"]),
        ];
        for (line, want) in cases {
            assert!(matches!(words(line), Words::Ascii(_)), "{line:?}");
            assert_eq!(words(line).collect::<Vec<_>>(), want, "{line:?}");
        }
    }
}
