//! The alias half of the index: `modules.alias` patterns and the modules they name, kept in
//! a form that costs few allocations to build (the boot builds it once, on its critical path)
//! and is matched without sorting.

use super::hash::FxHashMap;
use crate::name::{normalize_alias_into, normalize_cow};
use crate::pattern::fnmatch;

#[derive(Debug, Clone, Copy)]
struct Alias {
    /// Byte range of the normalised pattern in [`AliasTable::patterns`].
    start: usize,
    end: usize,
    /// Index into [`AliasTable::targets`].
    target: usize,
}

/// Aliases grouped by the bus prefix before the first `:`, so a modalias is matched only
/// against patterns that can possibly match it (the generic kernel has ~30 000 aliases).
#[derive(Debug, Default)]
pub(super) struct AliasTable {
    /// Every normalised pattern (see [`crate::normalize_alias`]), back to back: one buffer
    /// instead of a String per line.
    patterns: String,
    entries: Vec<Alias>,
    /// Distinct normalised module names; thousands of aliases name a few hundred modules.
    targets: Vec<String>,
    target_ids: FxHashMap<String, usize>,
    /// Per bus prefix, its bucket in `buckets`.
    by_prefix: FxHashMap<String, usize>,
    /// Ids of the entries per bus prefix, ascending (file order).
    buckets: Vec<Vec<usize>>,
    /// Patterns whose prefix itself contains a wildcard (`acpi*:...`, `char_major_10_*`),
    /// ascending.
    wild: Vec<usize>,
    /// The bucket and target of the last line: depmod writes a module's aliases together and
    /// most of a bus's aliases in runs, so comparing with the last line saves most hashing.
    last_bucket: Option<(String, usize)>,
    last_target: Option<usize>,
}

impl AliasTable {
    /// Room for the aliases of an index text of `len` bytes, so the buffers grow once.
    pub(super) fn reserve(&mut self, len: usize) {
        self.patterns.reserve(len);
        // A modules.alias line is rarely shorter than 40 bytes.
        self.entries.reserve(len / 40);
    }

    pub(super) fn push(&mut self, pattern: &str, target: &str) {
        let start = self.patterns.len();
        normalize_alias_into(pattern, &mut self.patterns);
        let end = self.patterns.len();
        let id = self.entries.len();
        let prefix = bucket_key(&self.patterns[start..end]);
        if prefix
            .bytes()
            .any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        {
            self.wild.push(id);
        } else {
            let bucket = match &self.last_bucket {
                Some((last, bucket)) if last == prefix => *bucket,
                _ => {
                    let bucket = match self.by_prefix.get(prefix) {
                        Some(&bucket) => bucket,
                        None => {
                            self.buckets.push(Vec::new());
                            self.by_prefix
                                .insert(prefix.to_owned(), self.buckets.len() - 1);
                            self.buckets.len() - 1
                        }
                    };
                    self.last_bucket = Some((prefix.to_owned(), bucket));
                    bucket
                }
            };
            self.buckets[bucket].push(id);
        }
        let target = self.target_id(target);
        self.entries.push(Alias { start, end, target });
    }

    /// The id of the normalised `target`, added on first sight.
    fn target_id(&mut self, target: &str) -> usize {
        let name = normalize_cow(target);
        if let Some(last) = self.last_target {
            if self.targets[last] == *name {
                return last;
            }
        }
        let id = match self.target_ids.get(&*name) {
            Some(&id) => id,
            None => {
                let id = self.targets.len();
                let name = name.into_owned();
                self.targets.push(name.clone());
                self.target_ids.insert(name, id);
                id
            }
        };
        self.last_target = Some(id);
        id
    }

    /// Targets of the patterns matching the normalised `alias`, in file order, deduplicated.
    pub(super) fn matches(&self, alias: &str) -> Vec<&str> {
        let bucket = self
            .by_prefix
            .get(bucket_key(alias))
            .map_or(&[][..], |&bucket| self.buckets[bucket].as_slice());
        let mut seen: Vec<usize> = Vec::new();
        for id in MergeAscending::new(bucket, &self.wild) {
            let entry = self.entries[id];
            if !seen.contains(&entry.target)
                && fnmatch(&self.patterns[entry.start..entry.end], alias)
            {
                seen.push(entry.target);
            }
        }
        seen.iter().map(|&t| self.targets[t].as_str()).collect()
    }
}

fn bucket_key(s: &str) -> &str {
    s.split_once(':').map_or(s, |(prefix, _)| prefix)
}

/// The union of two ascending id lists, ascending: both lists are built in file order, so
/// merging them gives file order without a sort per lookup.
struct MergeAscending<'a> {
    a: &'a [usize],
    b: &'a [usize],
}

impl<'a> MergeAscending<'a> {
    fn new(a: &'a [usize], b: &'a [usize]) -> Self {
        MergeAscending { a, b }
    }
}

impl Iterator for MergeAscending<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(a), Some(b)) => a <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let list = if take_a { &mut self.a } else { &mut self.b };
        let (&first, rest) = list.split_first()?;
        *list = rest;
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_ascending_table() {
        let cases: [(&[usize], &[usize], &[usize]); 6] = [
            (&[], &[], &[]),
            (&[1, 2], &[], &[1, 2]),
            (&[], &[0, 5], &[0, 5]),
            (&[0, 3, 9], &[1, 2, 10], &[0, 1, 2, 3, 9, 10]),
            (&[4, 5, 6], &[0, 1], &[0, 1, 4, 5, 6]),
            (&[7], &[7], &[7, 7]),
        ];
        for (a, b, want) in cases {
            let got: Vec<usize> = MergeAscending::new(a, b).collect();
            assert_eq!(got, want, "{a:?} + {b:?}");
        }
    }

    fn table(lines: &[(&str, &str)]) -> AliasTable {
        let mut table = AliasTable::default();
        for (pattern, target) in lines {
            table.push(pattern, target);
        }
        table
    }

    #[test]
    fn targets_are_interned_by_normalised_name() {
        let t = table(&[
            ("usb:v1p1*", "usb-storage"),
            ("usb:v2p2*", "usb_storage"),
            ("pci:v1*", "ahci"),
            ("fs-ext4", "ext4"),
        ]);
        assert_eq!(t.targets, ["usb_storage", "ahci", "ext4"]);
        assert_eq!(t.entries.len(), 4);
        assert_eq!(t.matches("usb:v2p2d0"), ["usb_storage"]);
        assert_eq!(t.matches("usb:v1p1d0"), ["usb_storage"]);
        assert_eq!(t.matches("fs_ext4"), ["ext4"]);
    }

    #[test]
    fn patterns_share_one_buffer_normalised() {
        let t = table(&[("of:N*T*Cfoo-bar[a-c]", "a"), ("fs-ext4", "b")]);
        assert_eq!(t.patterns, "of:N*T*Cfoo_bar[a-c]fs_ext4");
        let spans: Vec<&str> = t
            .entries
            .iter()
            .map(|e| &t.patterns[e.start..e.end])
            .collect();
        assert_eq!(spans, ["of:N*T*Cfoo_bar[a-c]", "fs_ext4"]);
    }

    #[test]
    fn wildcard_prefixes_merge_into_every_bucket_in_file_order() {
        let t = table(&[
            ("acpi*:PNP0A03:*", "first"),
            ("acpi:PNP0A03:*", "second"),
            ("*", "third"),
            ("acpi:PNP0A03:", "second"),
            ("pci:v*", "fourth"),
        ]);
        assert_eq!(t.wild, [0, 2]);
        assert_eq!(t.buckets[t.by_prefix["acpi"]], [1, 3]);
        assert_eq!(t.matches("acpi:PNP0A03:"), ["first", "second", "third"]);
        assert_eq!(t.matches("pci:v0000"), ["third", "fourth"]);
        assert_eq!(t.matches("unknown"), ["third"]);
    }
}
