//! modprobe configuration: `/etc/modprobe.d/*.conf`, `/lib/modprobe.d/*.conf` and the module
//! words of the kernel command line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::index::{parse_alias_line, parse_softdep_line, Softdep};
use crate::name::{normalize, normalize_alias};
use crate::pattern::fnmatch;

/// Failure to read a modprobe configuration directory or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot list modprobe config directory {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read modprobe config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Blacklist, options, softdeps and aliases that modify how modules are looked up and loaded.
#[derive(Debug, Default, Clone)]
pub struct ModprobeConfig {
    blacklist: HashSet<String>,
    /// Parameter strings per normalised module name, in the order they were added; later
    /// ones win in the kernel because it parses parameters left to right.
    options: HashMap<String, Vec<String>>,
    softdeps: HashMap<String, Softdep>,
    /// (normalised pattern, normalised module) in file order.
    aliases: Vec<(String, String)>,
}

impl ModprobeConfig {
    /// Reads `*.conf` in each dir. A file name in an earlier dir hides the same name in later
    /// dirs (so /etc overrides /lib, as in modprobe); the surviving files are read sorted by
    /// file name. Missing directories are skipped.
    pub fn load_dirs(dirs: &[&Path]) -> Result<Self, ConfigError> {
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        for dir in dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(ConfigError::ReadDir {
                        path: dir.to_path_buf(),
                        source,
                    })
                }
            };
            for entry in entries {
                let entry = entry.map_err(|source| ConfigError::ReadDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if name.ends_with(".conf") {
                    files.entry(name).or_insert_with(|| entry.path());
                }
            }
        }
        let mut config = ModprobeConfig::default();
        for path in files.into_values() {
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                // A dangling symlink (e.g. to /dev/null masking) just hides the file.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(ConfigError::Read { path, source }),
            };
            config.add_conf(&String::from_utf8_lossy(&bytes));
        }
        Ok(config)
    }

    /// Applies the text of one modprobe.d file. Unknown directives (`install`, `remove`,
    /// ...) are ignored: there is no shell to run them in.
    pub fn add_conf(&mut self, text: &str) {
        for line in logical_lines(text) {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("blacklist") => {
                    if let Some(name) = words.next() {
                        self.add_blacklist(name);
                    }
                }
                Some("options") => {
                    if let Some(name) = words.next() {
                        let params: Vec<&str> = words.collect();
                        self.add_options(name, &params.join(" "));
                    }
                }
                Some("softdep") => {
                    if let Some((name, soft)) = parse_softdep_line(&line) {
                        self.softdeps.entry(name).or_default().extend(&soft);
                    }
                }
                Some("alias") => {
                    if let Some((pattern, module)) = parse_alias_line(&line) {
                        self.aliases
                            .push((normalize_alias(pattern), normalize(module)));
                    }
                }
                _ => {}
            }
        }
    }

    /// Blacklists `name` (either spelling) for alias lookups.
    pub fn add_blacklist(&mut self, name: &str) {
        if !name.is_empty() {
            self.blacklist.insert(normalize(name));
        }
    }

    /// Adds parameters for `name`, appended after any already configured (used for
    /// `/etc/modules` arguments and `options` lines).
    pub fn add_options(&mut self, name: &str, params: &str) {
        let params = params.trim();
        if !name.is_empty() && !params.is_empty() {
            self.options
                .entry(normalize(name))
                .or_default()
                .push(params.to_owned());
        }
    }

    /// Applies kernel command line words: `modprobe.blacklist=a,b`, Alpine's `blacklist=a,b`,
    /// the kernel's `module_blacklist=a,b`, and `NAME.param=value` module parameters. Other
    /// words are ignored.
    pub fn add_cmdline(&mut self, words: &[&str]) {
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            match key {
                "modprobe.blacklist" | "blacklist" | "module_blacklist" => {
                    for name in value.split(',') {
                        self.add_blacklist(name.trim());
                    }
                }
                _ => {
                    let Some((module, param)) = key.split_once('.') else {
                        continue;
                    };
                    if module.is_empty() || param.is_empty() || module == "modprobe" {
                        continue;
                    }
                    self.add_options(module, &format_param(param, value));
                }
            }
        }
    }

    /// Whether `name` (either spelling) is blacklisted.
    pub fn is_blacklisted(&self, name: &str) -> bool {
        self.blacklist.contains(&normalize(name))
    }

    /// The parameter string for module `name`: every configured set, space separated.
    pub fn options(&self, name: &str) -> String {
        self.options
            .get(&normalize(name))
            .map(|sets| sets.join(" "))
            .unwrap_or_default()
    }

    pub(crate) fn softdep(&self, name: &str) -> Option<&Softdep> {
        self.softdeps.get(name)
    }

    /// Modules named by config aliases matching the normalised `alias`, in file order.
    pub(crate) fn alias_targets(&self, alias: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (pattern, module) in &self.aliases {
            if !out.contains(&module.as_str()) && fnmatch(pattern, alias) {
                out.push(module);
            }
        }
        out
    }
}

/// A `param=value` word for init_module. The command line tokenizer may have removed the
/// quotes around a value with spaces; the kernel needs them back to keep it one parameter.
fn format_param(param: &str, value: &str) -> String {
    if value.contains(char::is_whitespace) && !value.starts_with('"') {
        format!("{param}=\"{value}\"")
    } else {
        format!("{param}={value}")
    }
}

/// Lines with `#` comments dropped and trailing-backslash continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        if pending.is_empty() && raw.trim_start().starts_with('#') {
            continue;
        }
        match raw.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(raw);
                out.push(std::mem::take(&mut pending));
            }
        }
    }
    if !pending.is_empty() {
        out.push(pending);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_directives() {
        let mut config = ModprobeConfig::default();
        config.add_conf(
            "# comment\n\
             blacklist pcspkr\n\
             blacklist  usb-storage # trailing words are ignored\n\
             options usb-storage delay_use=0 \\\n   quirks=abc:u\n\
             options usb_storage foo=1\n\
             softdep ext4 pre: crc32c post: nls-utf8\n\
             alias my-net e1000\n\
             install evil /bin/sh -c reboot\n\
             garbage\n",
        );
        assert!(config.is_blacklisted("pcspkr"));
        assert!(config.is_blacklisted("usb_storage") && config.is_blacklisted("usb-storage"));
        assert!(!config.is_blacklisted("evil"));
        assert_eq!(
            config.options("usb-storage"),
            "delay_use=0 quirks=abc:u foo=1"
        );
        assert_eq!(config.options("ext4"), "");
        let soft = config.softdep("ext4").unwrap();
        assert_eq!(soft.pre, ["crc32c"]);
        assert_eq!(soft.post, ["nls-utf8"]);
        assert_eq!(config.alias_targets("my_net"), ["e1000"]);
        assert!(config.alias_targets("evil").is_empty());
    }

    #[test]
    fn cmdline_words() {
        let mut config = ModprobeConfig::default();
        config.add_cmdline(&[
            "BOOT_IMAGE=/boot/vmlinuz-6.1",
            "modprobe.blacklist=nouveau,snd-hda-intel",
            "blacklist=floppy",
            "module_blacklist=pcspkr",
            "usb-storage.delay_use=0",
            "usb_storage.quirks=0bc2:2100:u",
            "ext4.weird=a b",
            "quiet",
            ".x=1",
            "mod.=1",
            "modules=ext4,loop",
            "initrd=/boot/initramfs.gz",
        ]);
        for name in ["nouveau", "snd_hda_intel", "floppy", "pcspkr"] {
            assert!(config.is_blacklisted(name), "{name}");
        }
        assert!(!config.is_blacklisted("ext4"));
        assert_eq!(
            config.options("usb_storage"),
            "delay_use=0 quirks=0bc2:2100:u"
        );
        assert_eq!(config.options("ext4"), "weird=\"a b\"");
        assert_eq!(config.options("mod"), "");
        assert_eq!(config.options("initrd"), "");
        assert_eq!(config.options("modprobe"), "");
    }

    #[test]
    fn load_dirs_order_and_override() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        let lib = tmp.path().join("lib");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        // Same name in both dirs: /etc wins, the /lib file is never read.
        std::fs::write(etc.join("local.conf"), "options loop max_loop=8\n").unwrap();
        std::fs::write(lib.join("local.conf"), "blacklist loop\n").unwrap();
        // Sorted by file name across dirs: a.conf before z.conf.
        std::fs::write(lib.join("a.conf"), "options loop first=1\n").unwrap();
        std::fs::write(etc.join("z.conf"), "options loop last=1\n").unwrap();
        std::fs::write(etc.join("ignored.txt"), "blacklist ext4\n").unwrap();
        let missing = tmp.path().join("missing");
        let config = ModprobeConfig::load_dirs(&[&etc, &lib, &missing]).unwrap();
        assert!(!config.is_blacklisted("loop"));
        assert!(!config.is_blacklisted("ext4"));
        assert_eq!(config.options("loop"), "first=1 max_loop=8 last=1");
    }

    #[test]
    fn load_dirs_reports_unreadable_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let err = ModprobeConfig::load_dirs(&[&file]).unwrap_err();
        assert!(
            matches!(err, ConfigError::ReadDir { ref path, .. } if *path == file),
            "{err:?}"
        );
    }
}
