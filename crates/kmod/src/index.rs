//! The depmod text indexes of one kernel release: `modules.dep`, `modules.alias`,
//! `modules.softdep`, `modules.builtin` (and, when present, `modules.builtin.modinfo` for the
//! aliases of built-in modules).

use std::io;
use std::path::{Path, PathBuf};

use crate::class::{kind_of_path, slow_to_settle, Kind};
use crate::config::ModprobeConfig;
use crate::name::{module_name_cow, module_stem, normalize, normalize_alias, normalize_cow};

mod alias;
mod hash;
mod words;

use alias::AliasTable;
use hash::{FxHashMap, FxHashSet};
use words::words;

/// Failure to load the indexes of a module directory.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot read module index {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Soft dependencies of one module: names (module names or aliases) to load before and after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Softdep {
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

impl Softdep {
    pub(crate) fn extend(&mut self, other: &Softdep) {
        for name in &other.pre {
            if !self.pre.contains(name) {
                self.pre.push(name.clone());
            }
        }
        for name in &other.post {
            if !self.post.contains(name) {
                self.post.push(name.clone());
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Module {
    pub(crate) name: String,
    /// Path as written in modules.dep, relative to the module directory unless absolute.
    pub(crate) path: String,
    /// Dependencies as module ids, in modules.dep order (load order is the reverse).
    pub(crate) deps: Vec<usize>,
}

/// The parsed indexes of `<root>/lib/modules/<release>`.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    moddir: PathBuf,
    pub(crate) modules: Vec<Module>,
    pub(crate) by_name: FxHashMap<String, usize>,
    aliases: AliasTable,
    softdeps: FxHashMap<String, Softdep>,
    builtin: FxHashSet<String>,
    builtin_aliases: AliasTable,
}

impl ModuleIndex {
    /// Loads the text indexes from `moddir` = `<root>/lib/modules/<release>`. Missing
    /// modules.softdep/builtin are fine; missing modules.dep is an error.
    pub fn load(moddir: &Path) -> Result<Self, IndexError> {
        let dep = read_index(moddir, "modules.dep", true)?;
        let alias = read_index(moddir, "modules.alias", false)?;
        let softdep = read_index(moddir, "modules.softdep", false)?;
        let builtin = read_index(moddir, "modules.builtin", false)?;
        let mut index = Self::parse(moddir, &dep, &alias, &softdep, &builtin);
        let modinfo_path = moddir.join("modules.builtin.modinfo");
        match std::fs::read(&modinfo_path) {
            Ok(data) => index.add_builtin_modinfo(&data),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IndexError::Read {
                    path: modinfo_path,
                    source,
                })
            }
        }
        Ok(index)
    }

    /// Builds an index from index texts already in memory. Malformed lines are skipped, as
    /// modprobe does; module paths are resolved against `moddir`.
    pub fn parse(moddir: &Path, dep: &str, alias: &str, softdep: &str, builtin: &str) -> Self {
        let mut index = ModuleIndex {
            moddir: moddir.to_path_buf(),
            ..ModuleIndex::default()
        };
        index.parse_dep(dep);
        index.aliases.reserve(alias.len());
        for (pattern, target) in alias.lines().filter_map(parse_alias_line) {
            index.aliases.push(pattern, target);
        }
        for (name, soft) in softdep.lines().filter_map(parse_softdep_line) {
            index.softdeps.entry(name).or_default().extend(&soft);
        }
        for name in builtin
            .lines()
            .filter_map(|line| module_name_cow(line.trim()))
        {
            if !index.builtin.contains(&*name) {
                index.builtin.insert(name.into_owned());
            }
        }
        index
    }

    /// Adds the aliases of built-in modules from `modules.builtin.modinfo` (NUL-separated
    /// `module.key=value` records), so `fs-ext4` resolves on a kernel with ext4 built in.
    pub fn add_builtin_modinfo(&mut self, data: &[u8]) {
        // Most records are other keys (license, description, parm, ...): the key is checked
        // on the bytes, and only alias records are decoded. Cutting a record at its first `.`
        // and after `alias=` (ASCII) keeps "both halves are UTF-8" the same as "the record is".
        for record in data.split(|&b| b == 0) {
            let Some(dot) = record.iter().position(|&b| b == b'.') else {
                continue;
            };
            let Some(alias) = record[dot + 1..].strip_prefix(b"alias=") else {
                continue;
            };
            let (Ok(module), Ok(alias)) = (
                std::str::from_utf8(&record[..dot]),
                std::str::from_utf8(alias),
            ) else {
                continue;
            };
            if !module.is_empty() && !alias.is_empty() {
                self.builtin_aliases.push(alias, module);
                let name = normalize_cow(module);
                if !self.builtin.contains(&*name) {
                    self.builtin.insert(name.into_owned());
                }
            }
        }
    }

    fn parse_dep(&mut self, dep: &str) {
        for (path, deps) in dep.lines().filter_map(parse_dep_line) {
            let Some(id) = self.intern(path) else {
                continue;
            };
            let dep_ids: Vec<usize> = deps.iter().filter_map(|d| self.intern(d)).collect();
            let module = &mut self.modules[id];
            // The first line for a module wins, like a hash lookup in kmod would.
            if module.deps.is_empty() {
                module.deps = dep_ids;
            }
        }
    }

    /// Module id for a path, created on first sight (a dependency may be named before its own
    /// line). `None` for paths that are not module files.
    fn intern(&mut self, path: &str) -> Option<usize> {
        let name = module_name_cow(path)?;
        if let Some(&id) = self.by_name.get(&*name) {
            return Some(id);
        }
        let name = name.into_owned();
        let id = self.modules.len();
        self.by_name.insert(name.clone(), id);
        self.modules.push(Module {
            name,
            path: path.to_owned(),
            deps: Vec::new(),
        });
        Some(id)
    }

    /// The module directory the index was loaded from.
    pub fn moddir(&self) -> &Path {
        &self.moddir
    }

    /// Number of loadable modules listed in modules.dep.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// Whether modules.dep lists no module at all.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The loadable modules as `(normalised name, path as written in modules.dep)`, in order
    /// of first mention in modules.dep. Lets an image builder select modules by name or path
    /// pattern.
    pub fn modules(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.modules
            .iter()
            .map(|module| (module.name.as_str(), module.path.as_str()))
    }

    /// Whether `name` (either spelling) is a loadable module of this release.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(&*normalize_cow(name))
    }

    /// Whether `name` (either spelling) is built into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&*normalize_cow(name))
    }

    /// Module names (normalised with '_') whose alias pattern matches `modalias`, in
    /// modules.alias order, deduplicated. Blacklisted names removed when `config` says so.
    ///
    /// Aliases from the modprobe configuration take precedence: when one matches, the
    /// index's aliases are not consulted, as in modprobe.
    pub fn lookup(&self, modalias: &str, config: &ModprobeConfig) -> Vec<String> {
        let mut names = self.raw_alias_matches(&normalize_alias(modalias), config);
        names.retain(|name| !config.is_blacklisted(name));
        names
    }

    /// Whether `modalias` matches an alias of a built-in module.
    pub(crate) fn builtin_alias_matches(&self, alias: &str) -> bool {
        !self.builtin_aliases.matches(alias).is_empty()
    }

    /// Alias matches before blacklist filtering, used to tell "blacklisted" from "unknown".
    pub(crate) fn raw_alias_matches(&self, alias: &str, config: &ModprobeConfig) -> Vec<String> {
        let from_config = config.alias_targets(alias);
        let names = if from_config.is_empty() {
            self.aliases.matches(alias)
        } else {
            from_config
        };
        names.into_iter().map(str::to_owned).collect()
    }

    pub(crate) fn softdep(&self, name: &str) -> Option<&Softdep> {
        self.softdeps.get(name)
    }

    /// What the module `name` (either spelling) drives, from its path in
    /// modules.dep; `None` when the index has no such module.
    pub fn kind(&self, name: &str) -> Option<Kind> {
        let id = *self.by_name.get(&*normalize_cow(name))?;
        Some(self.kind_of_id(id))
    }

    pub(crate) fn kind_of_id(&self, id: usize) -> Kind {
        kind_of_path(&self.modules[id].path)
    }

    /// Whether the module with this id drives a bus whose devices take
    /// long to appear ([`slow_to_settle`]).
    pub(crate) fn slow_to_settle_id(&self, id: usize) -> bool {
        slow_to_settle(&self.modules[id].path)
    }

    /// [`Self::slow_to_settle_id`] by name (either spelling); false for a
    /// module the index does not list.
    pub(crate) fn slow_to_settle(&self, name: &str) -> bool {
        self.by_name
            .get(&*normalize_cow(name))
            .is_some_and(|&id| self.slow_to_settle_id(id))
    }

    pub(crate) fn module_path(&self, id: usize) -> PathBuf {
        self.moddir.join(&self.modules[id].path)
    }
}

fn read_index(moddir: &Path, file: &str, required: bool) -> Result<String, IndexError> {
    let path = moddir.join(file);
    match std::fs::read(&path) {
        // Index files are ASCII; a stray invalid byte must not cost the whole index.
        Ok(bytes) => Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        Err(e) if !required && e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(IndexError::Read { path, source }),
    }
}

/// Parses `alias PATTERN MODULE` from modules.alias or a modprobe.d file. Returns the raw
/// pattern and module name; `None` for comments, other directives and malformed lines.
pub fn parse_alias_line(line: &str) -> Option<(&str, &str)> {
    let mut words = words(line);
    if words.next()? != "alias" {
        return None;
    }
    let pattern = words.next()?;
    let module = words.next()?;
    words.next().is_none().then_some((pattern, module))
}

/// Parses `PATH: DEP DEP ...` from modules.dep. Paths containing a `..` component are
/// rejected so an index cannot point outside the module directory.
pub fn parse_dep_line(line: &str) -> Option<(&str, Vec<&str>)> {
    let (path, deps) = line.split_once(':')?;
    let path = path.trim();
    if !safe_module_path(path) {
        return None;
    }
    let deps: Vec<&str> = words(deps).collect();
    deps.iter()
        .all(|d| safe_module_path(d))
        .then_some((path, deps))
}

fn safe_module_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && !path.split('/').any(|part| part == "..")
        && module_stem(path).is_some()
}

/// Parses `softdep MODULE pre: A B post: C` (modules.softdep or modprobe.d). Returns the
/// normalised module name and its soft dependencies as written (they may be aliases).
pub fn parse_softdep_line(line: &str) -> Option<(String, Softdep)> {
    let mut words = words(line);
    if words.next()? != "softdep" {
        return None;
    }
    let module = normalize(words.next()?);
    let mut soft = Softdep::default();
    let mut list: Option<&mut Vec<String>> = None;
    for word in words {
        match word {
            "pre:" => list = Some(&mut soft.pre),
            "post:" => list = Some(&mut soft.post),
            name => list.as_mut()?.push(name.to_owned()),
        }
    }
    Some((module, soft))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_lines() {
        let cases = [
            (
                "alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk",
                Some(("pci:v00001AF4d00001001sv*sd*bc*sc*i*", "virtio_blk")),
            ),
            ("alias  fs-ext4\text4 ", Some(("fs-ext4", "ext4"))),
            ("# Aliases extracted from modules themselves.", None),
            ("alias only-pattern", None),
            ("alias a b c", None),
            ("options ext4 x=1", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_alias_line(line), want, "{line:?}");
        }
    }

    #[test]
    fn dep_lines() {
        let (path, deps) = parse_dep_line(
            "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko",
        )
        .unwrap();
        assert_eq!(path, "kernel/fs/ext4/ext4.ko");
        assert_eq!(
            deps,
            [
                "kernel/lib/crc16.ko",
                "kernel/fs/mbcache.ko",
                "kernel/fs/jbd2/jbd2.ko"
            ]
        );
        assert_eq!(
            parse_dep_line("kernel/lib/crc16.ko:"),
            Some(("kernel/lib/crc16.ko", vec![]))
        );
        for bad in [
            "no colon here",
            ": kernel/a.ko",
            "../../etc/evil.ko:",
            "kernel/a.ko: ../b.ko",
            "kernel/readme.txt:",
        ] {
            assert_eq!(parse_dep_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn softdep_lines() {
        let (name, soft) = parse_softdep_line("softdep ext4 pre: crc32c").unwrap();
        assert_eq!(name, "ext4");
        assert_eq!(soft.pre, ["crc32c"]);
        assert!(soft.post.is_empty());
        let (name, soft) =
            parse_softdep_line("softdep usb-storage pre: a b post: c pre: d").unwrap();
        assert_eq!(name, "usb_storage");
        assert_eq!(soft.pre, ["a", "b", "d"]);
        assert_eq!(soft.post, ["c"]);
        assert_eq!(parse_softdep_line("softdep ext4 crc32c"), None);
        assert_eq!(parse_softdep_line("softdep"), None);
        assert_eq!(parse_softdep_line("alias x y"), None);
    }

    fn sample() -> ModuleIndex {
        ModuleIndex::parse(
            Path::new("/lib/modules/6.1.0-test"),
            "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n\
             kernel/fs/jbd2/jbd2.ko:\nkernel/lib/crc16.ko:\nkernel/fs/mbcache.ko:\n\
             kernel/drivers/usb/storage/usb-storage.ko:\n",
            "alias fs-ext4 ext4\nalias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb-storage\n\
             alias usb:v0BC2p2[0-2]*d*dc*dsc*dp*ic*isc*ip*in* usb_storage\n\
             alias acpi*:PNP0A03:* pci_root\nalias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* ext4\n",
            "",
            "kernel/fs/vfat/vfat.ko\n",
        )
    }

    #[test]
    fn lookup_order_dedup_and_buckets() {
        let index = sample();
        let config = ModprobeConfig::default();
        let cases: [(&str, &[&str]); 7] = [
            (
                "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00",
                &["usb_storage", "ext4"],
            ),
            (
                "usb:v0BC2p2100d0000dc00dsc00dp00ic08isc06ip62in00",
                &["usb_storage"],
            ),
            ("usb:v0BC2p2300d0000dc00dsc00dp00ic08isc06ip62in00", &[]),
            ("fs-ext4", &["ext4"]),
            ("fs_ext4", &["ext4"]),
            ("acpi:PNP0A03:", &["pci_root"]),
            ("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", &[]),
        ];
        for (modalias, want) in cases {
            assert_eq!(index.lookup(modalias, &config), want, "{modalias}");
        }
        assert_eq!(index.len(), 5);
        assert!(index.contains("usb-storage") && index.contains("usb_storage"));
        assert!(index.is_builtin("vfat") && !index.is_builtin("ext4"));
        let jbd2 = index.by_name["jbd2"];
        assert_eq!(
            index.module_path(jbd2),
            Path::new("/lib/modules/6.1.0-test/kernel/fs/jbd2/jbd2.ko")
        );
    }

    #[test]
    fn modules_lists_names_and_paths_in_dep_order() {
        let index = sample();
        let got: Vec<(&str, &str)> = index.modules().collect();
        assert_eq!(
            got,
            [
                ("ext4", "kernel/fs/ext4/ext4.ko"),
                ("crc16", "kernel/lib/crc16.ko"),
                ("mbcache", "kernel/fs/mbcache.ko"),
                ("jbd2", "kernel/fs/jbd2/jbd2.ko"),
                ("usb_storage", "kernel/drivers/usb/storage/usb-storage.ko"),
            ]
        );
        assert_eq!(got.len(), index.len());
    }

    #[test]
    fn builtin_modinfo_aliases() {
        let mut index = sample();
        index.add_builtin_modinfo(
            b"ext2.alias=fs-ext2\0ext2.license=GPL\0\xff\xfe\0noalias\0.alias=x\0",
        );
        assert!(index.is_builtin("ext2"));
        assert!(index.builtin_alias_matches("fs_ext2"));
        assert!(!index.builtin_alias_matches("fs_ext3"));
    }

    #[test]
    fn builtin_modinfo_records_only_valid_alias_records_count() {
        // (record, module that must be built in afterwards or None, alias that must match)
        let cases: [(&[u8], Option<&str>, Option<&str>); 8] = [
            (
                b"crc-t10dif.alias=crypto-crct10dif",
                Some("crc_t10dif"),
                Some("crypto_crct10dif"),
            ),
            (b"a.b.alias=x", None, None),
            (b"m.alias=", None, None),
            (b".alias=x", None, None),
            (b"m\xff.alias=x", None, None),
            (b"m.alias=x\xff", None, None),
            (b"m.aliasx=y", None, None),
            (
                b"\xffjunk.license=GPL\0n.alias=pci:v*d1*",
                Some("n"),
                Some("pci:v0d1"),
            ),
        ];
        for (record, module, alias) in cases {
            let mut index = ModuleIndex::default();
            index.add_builtin_modinfo(record);
            let name = String::from_utf8_lossy(record);
            match module {
                Some(m) => assert!(index.is_builtin(m), "{name}: {m} built in"),
                None => assert!(index.builtin.is_empty(), "{name}: {:?}", index.builtin),
            }
            match alias {
                Some(a) => assert!(index.builtin_alias_matches(a), "{name}: {a} matches"),
                None => assert!(!index.builtin_alias_matches("x"), "{name}"),
            }
        }
    }
}
