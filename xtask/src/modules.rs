//! The kernel's module indexes (modules.dep, .softdep, .alias, .builtin) and
//! the dependency closure of a set of requested modules.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use glob::Pattern;

/// `usb-storage` and `usb_storage` name the same module.
pub fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a path like `kernel/drivers/usb/storage/usb-storage.ko`.
pub fn name_of_path(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .unwrap_or(file);
    normalise(stem)
}

#[derive(Debug, Default)]
pub struct ModuleIndex {
    /// name -> path relative to the release dir
    paths: BTreeMap<String, String>,
    /// name -> names it depends on (modules.dep is already transitive)
    deps: BTreeMap<String, Vec<String>>,
    /// name -> softdep names or aliases (pre and post alike)
    softdeps: BTreeMap<String, Vec<String>>,
    /// (alias pattern, module name)
    aliases: Vec<(String, String)>,
    builtin: BTreeSet<String>,
}

/// What a request for modules came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Closure {
    /// Paths relative to the release dir, sorted.
    pub paths: BTreeSet<String>,
    /// Requests that matched a built-in module (nothing to copy).
    pub builtin: BTreeSet<String>,
    /// Requests that matched nothing and were not marked optional.
    pub missing: Vec<String>,
}

impl ModuleIndex {
    pub fn load(release_dir: &Path) -> Result<ModuleIndex> {
        let read = |name: &str| -> Result<String> {
            let path = release_dir.join(name);
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let optional = |name: &str| fs::read_to_string(release_dir.join(name)).unwrap_or_default();
        Ok(ModuleIndex::parse(
            &read("modules.dep")?,
            &optional("modules.softdep"),
            &optional("modules.alias"),
            &optional("modules.builtin"),
        ))
    }

    pub fn parse(dep: &str, softdep: &str, alias: &str, builtin: &str) -> ModuleIndex {
        let mut index = ModuleIndex::default();
        for line in dep.lines() {
            let Some((module, rest)) = line.split_once(':') else {
                continue;
            };
            let name = name_of_path(module.trim());
            index.paths.insert(name.clone(), module.trim().to_string());
            index
                .deps
                .insert(name, rest.split_whitespace().map(name_of_path).collect());
        }
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next() else { continue };
            let list = index.softdeps.entry(normalise(module)).or_default();
            list.extend(
                words
                    .filter(|w| *w != "pre:" && *w != "post:")
                    .map(str::to_string),
            );
        }
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(module)) =
                (words.next(), words.next(), words.next())
            {
                index.aliases.push((pattern.to_string(), normalise(module)));
            }
        }
        index.builtin = builtin.lines().map(name_of_path).collect();
        index
    }

    /// Modules matching a feature entry (see `features`).
    fn matching(&self, entry: &str) -> Vec<String> {
        if entry.contains('/') {
            let Ok(pattern) = Pattern::new(entry.trim_end_matches('/')) else {
                return Vec::new();
            };
            let dir_prefix = format!("{}/", entry.trim_end_matches('/'));
            return self
                .paths
                .iter()
                .filter(|(_, path)| pattern.matches(path) || path.starts_with(&dir_prefix))
                .map(|(name, _)| name.clone())
                .collect();
        }
        let wanted = normalise(entry);
        match Pattern::new(&wanted) {
            Ok(pattern) if wanted.contains(['*', '?', '[']) => self
                .paths
                .keys()
                .filter(|name| pattern.matches(name))
                .cloned()
                .collect(),
            _ if self.paths.contains_key(&wanted) => vec![wanted],
            _ => Vec::new(),
        }
    }

    /// A softdep names a module or an alias (`crypto-crc32c`).
    fn resolve_soft(&self, name: &str) -> Vec<String> {
        let direct = normalise(name);
        if self.paths.contains_key(&direct) {
            return vec![direct];
        }
        self.aliases
            .iter()
            .filter(|(pattern, _)| {
                pattern == name || Pattern::new(pattern).is_ok_and(|p| p.matches(name))
            })
            .map(|(_, module)| module.clone())
            .filter(|module| self.paths.contains_key(module))
            .collect()
    }

    pub fn closure(&self, entries: &[&str]) -> Closure {
        let mut closure = Closure::default();
        let mut queue = VecDeque::new();
        for entry in entries {
            let (entry, optional) = match entry.strip_suffix('?') {
                Some(e) => (e, true),
                None => (*entry, false),
            };
            let found = self.matching(entry);
            if found.is_empty() {
                if self.builtin.contains(&normalise(entry)) {
                    closure.builtin.insert(normalise(entry));
                } else if !optional {
                    closure.missing.push(entry.to_string());
                }
            }
            queue.extend(found);
        }
        let mut seen = BTreeSet::new();
        while let Some(name) = queue.pop_front() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(path) = self.paths.get(&name) {
                closure.paths.insert(path.clone());
            }
            queue.extend(self.deps.get(&name).into_iter().flatten().cloned());
            for soft in self.softdeps.get(&name).into_iter().flatten() {
                queue.extend(self.resolve_soft(soft));
            }
        }
        closure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/usb/core/usbcore.ko
kernel/drivers/scsi/scsi_mod.ko:
kernel/drivers/usb/core/usbcore.ko:
kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko
kernel/drivers/ata/libahci.ko:
kernel/fs/nls/nls_iso8859-1.ko:
kernel/fs/nls/nls_utf8.ko:
";
    const SOFTDEP: &str = "# comment\nsoftdep ext4 pre: crypto-crc32c\n";
    const ALIAS: &str = "\
alias crypto-crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crypto-crc32c-generic crc32c_generic
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
";
    const BUILTIN: &str = "kernel/drivers/virtio/virtio.ko\n";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(DEP, SOFTDEP, ALIAS, BUILTIN)
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_from_paths() {
        let cases = [
            ("kernel/drivers/usb/storage/usb-storage.ko", "usb_storage"),
            ("kernel/fs/nls/nls_iso8859-1.ko", "nls_iso8859_1"),
            ("kernel/x/y.ko.xz", "y"),
            ("plain", "plain"),
        ];
        for (path, want) in cases {
            assert_eq!(name_of_path(path), want);
        }
    }

    #[test]
    fn closures() {
        struct Case {
            entries: &'static [&'static str],
            paths: &'static [&'static str],
            builtin: &'static [&'static str],
            missing: &'static [&'static str],
        }
        let cases = [
            Case {
                // softdep through an alias brings both crc32c drivers
                entries: &["ext4"],
                paths: &[
                    "kernel/arch/x86/crypto/crc32c-intel.ko",
                    "kernel/crypto/crc32c_generic.ko",
                    "kernel/fs/ext4/ext4.ko",
                    "kernel/fs/jbd2/jbd2.ko",
                    "kernel/fs/mbcache.ko",
                    "kernel/lib/crc16.ko",
                ],
                builtin: &[],
                missing: &[],
            },
            Case {
                // dash/underscore equivalence, including in file names
                entries: &["usb_storage", "nls_iso8859-1"],
                paths: &[
                    "kernel/drivers/scsi/scsi_mod.ko",
                    "kernel/drivers/usb/core/usbcore.ko",
                    "kernel/drivers/usb/storage/usb-storage.ko",
                    "kernel/fs/nls/nls_iso8859-1.ko",
                ],
                builtin: &[],
                missing: &[],
            },
            Case {
                entries: &["kernel/drivers/ata", "nls_*"],
                paths: &[
                    "kernel/drivers/ata/ahci.ko",
                    "kernel/drivers/ata/libahci.ko",
                    "kernel/fs/nls/nls_iso8859-1.ko",
                    "kernel/fs/nls/nls_utf8.ko",
                ],
                builtin: &[],
                missing: &[],
            },
            Case {
                entries: &["virtio", "nope", "optional?"],
                paths: &[],
                builtin: &["virtio"],
                missing: &["nope"],
            },
        ];
        for case in cases {
            let closure = index().closure(case.entries);
            assert_eq!(closure.paths, set(case.paths), "{:?}", case.entries);
            assert_eq!(closure.builtin, set(case.builtin), "{:?}", case.entries);
            assert_eq!(closure.missing, case.missing, "{:?}", case.entries);
        }
    }
}
