//! The new root's `/etc/fstab` (`crates/init/src/fstab.rs`), read lossily as
//! UTF-8, and the mount options of each entry. Invariants besides "no panic":
//!
//! * every entry comes from one line that, trimmed, is neither empty nor a
//!   `#` comment and has at least two whitespace-separated fields; each such
//!   line gives exactly one entry, in order, so there are never more entries
//!   than lines;
//! * `spec` and `file` are never empty, `options` is never empty (`defaults`
//!   when the line has no fourth field), `vfstype` is empty only when the line
//!   has two fields; fields past the fourth are ignored;
//! * a field is its word with `\ooo` octal escapes decoded (`\000` to `\377`,
//!   one byte each; `\400` and above stay as written) and invalid UTF-8 replaced; a word without `\`
//!   is copied verbatim, so whitespace in a field only ever comes from an
//!   escape, and no field is longer than its word;
//! * `proc_mounts` gives the same rows as `parse`, and `root_tmpfs_options`
//!   is the options of the first `/` tmpfs entry;
//! * `split_options` sets `MS_RDONLY` exactly when `ro` is one of the
//!   options, and its data is the remaining options that are neither mount
//!   flags nor fstab-only words, in order.
#![no_main]

use alpinit::fstab::{parse, proc_mounts, root_tmpfs_options, split_options, Entry};
use libfuzzer_sys::fuzz_target;

/// Reference decoder: a `\` followed by three octal digits, the first at most 3,
/// is one byte.
fn unescape(word: &str) -> String {
    let mut out = Vec::with_capacity(word.len());
    let mut rest = word.as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        match tail {
            [a @ b'0'..=b'3', b @ b'0'..=b'7', d @ b'0'..=b'7', ..] if c == b'\\' => {
                let v = u32::from(a - b'0') << 6 | u32::from(b - b'0') << 3 | u32::from(d - b'0');
                out.push(u8::try_from(v).expect("at most 0o377"));
                rest = &tail[3..];
            }
            _ => {
                out.push(c);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Options that `split_options` turns into flags or drops.
const FLAGS: [(&str, u64); 9] = [
    ("ro", 1),             // MS_RDONLY
    ("nosuid", 2),         // MS_NOSUID
    ("nodev", 4),          // MS_NODEV
    ("noexec", 8),         // MS_NOEXEC
    ("sync", 16),          // MS_SYNCHRONOUS
    ("dirsync", 128),      // MS_DIRSYNC
    ("noatime", 1024),     // MS_NOATIME
    ("nodiratime", 2048),  // MS_NODIRATIME
    ("relatime", 1 << 21), // MS_RELATIME
];
const DROPPED: [&str; 12] = [
    "rw", "defaults", "auto", "noauto", "user", "nouser", "users", "nofail", "suid", "dev", "exec",
    "async",
];

fn check_options(options: &str) {
    let (flags, data) = split_options(options);
    let words: Vec<&str> = options.split(',').filter(|o| !o.is_empty()).collect();
    for (word, bit) in FLAGS {
        assert_eq!(
            flags.0 & bit != 0,
            words.contains(&word),
            "{word} in {options:?}"
        );
    }
    let known = FLAGS.iter().map(|(w, _)| *w).chain(DROPPED);
    assert_eq!(flags.0 & !FLAGS.iter().fold(0, |m, (_, b)| m | b), 0);
    let kept: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !known.clone().any(|k| k == *w))
        .filter(|w| !w.starts_with("x-") && !w.starts_with("comment="))
        .collect();
    assert_eq!(data, kept.join(","), "{options:?}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let entries = parse(&text);
    assert!(entries.len() <= text.lines().count());

    let expected: Vec<(Entry, Vec<&str>)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words.len() >= 2).then(|| {
                let entry = Entry {
                    spec: unescape(words[0]),
                    file: unescape(words[1]),
                    vfstype: words.get(2).map(|w| unescape(w)).unwrap_or_default(),
                    options: words
                        .get(3)
                        .map_or_else(|| "defaults".to_owned(), |w| unescape(w)),
                };
                (entry, words)
            })
        })
        .collect();
    assert_eq!(entries.len(), expected.len());

    for (e, (want, words)) in entries.iter().zip(&expected) {
        assert_eq!(e, want);
        assert!(!e.spec.is_empty() && !e.file.is_empty() && !e.options.is_empty());
        assert_eq!(e.vfstype.is_empty(), words.len() == 2);
        let fields = [&e.spec, &e.file, &e.vfstype, &e.options];
        for (field, word) in fields.iter().zip(words.iter()) {
            assert!(field.len() <= word.len(), "{field:?} from {word:?}");
            if !word.contains('\\') {
                assert_eq!(field.as_str(), *word);
                assert!(!field.contains(char::is_whitespace));
            }
        }
        check_options(&e.options);
    }

    let mounted = proc_mounts(&text);
    assert_eq!(mounted.len(), entries.len());
    for (m, e) in mounted.iter().zip(&entries) {
        assert_eq!(
            (&m.source, &m.target, &m.fstype),
            (&e.spec, &e.file, &e.vfstype)
        );
    }
    assert_eq!(
        root_tmpfs_options(&entries),
        entries
            .iter()
            .find(|e| e.file == "/" && e.vfstype == "tmpfs")
            .map(|e| e.options.as_str())
    );
});
