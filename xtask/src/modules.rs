//! The module closure of an image: feature entries (see `features`) matched
//! against the kernel's module index, then expanded through dependencies and
//! softdeps by `alpinit_kmod`, the same planner the init loads with.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use alpinit_kmod::{fnmatch, normalize, ModprobeConfig};
use anyhow::Result;

pub struct ModuleIndex {
    index: alpinit_kmod::ModuleIndex,
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
        Ok(ModuleIndex {
            index: alpinit_kmod::ModuleIndex::load(release_dir)?,
        })
    }

    /// Names of the modules a feature entry selects: a path pattern (or a
    /// directory) when it contains a `/`, else a name pattern. Aliases are
    /// not consulted, so an entry never pulls in a module it does not name.
    fn matching(&self, entry: &str) -> Vec<&str> {
        if entry.contains('/') {
            let pattern = entry.trim_end_matches('/');
            let dir_prefix = format!("{pattern}/");
            return self
                .index
                .modules()
                .filter(|(_, path)| fnmatch(pattern, path) || path.starts_with(&dir_prefix))
                .map(|(name, _)| name)
                .collect();
        }
        let wanted = normalize(entry);
        self.index
            .modules()
            .filter(|(name, _)| fnmatch(&wanted, name))
            .map(|(name, _)| name)
            .collect()
    }

    pub fn closure(&self, entries: &[&str]) -> Closure {
        // The image carries no modprobe.d, so the plan must not depend on one.
        let config = ModprobeConfig::default();
        let paths: HashMap<&str, &str> = self.index.modules().collect();
        let mut closure = Closure::default();
        for entry in entries {
            let (entry, optional) = match entry.strip_suffix('?') {
                Some(e) => (e, true),
                None => (*entry, false),
            };
            let found = self.matching(entry);
            if found.is_empty() {
                if self.index.is_builtin(entry) {
                    closure.builtin.insert(normalize(entry));
                } else if !optional {
                    closure.missing.push(entry.to_string());
                }
            }
            for name in found {
                // Names come from the index itself, so this fails only if kmod
                // stops resolving its own module names; report it, don't hide it.
                let Ok(steps) = self.index.plan(name, &config) else {
                    closure.missing.push(name.to_string());
                    continue;
                };
                closure.paths.extend(
                    steps
                        .iter()
                        .filter_map(|step| paths.get(step.name.as_str()))
                        .map(|path| path.to_string()),
                );
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
        ModuleIndex {
            index: alpinit_kmod::ModuleIndex::parse(
                Path::new("/lib/modules/6.1.0-test"),
                DEP,
                ALIAS,
                SOFTDEP,
                BUILTIN,
            ),
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
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
                // a path glob, with the dependencies of what it selects
                entries: &["kernel/drivers/usb/*/usb-*.ko"],
                paths: &[
                    "kernel/drivers/scsi/scsi_mod.ko",
                    "kernel/drivers/usb/core/usbcore.ko",
                    "kernel/drivers/usb/storage/usb-storage.ko",
                ],
                builtin: &[],
                missing: &[],
            },
            Case {
                // an alias is not a module name: entries name modules only
                entries: &["crypto-crc32c-generic?", "virtio", "nope", "optional?"],
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
