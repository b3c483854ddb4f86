//! Kernel module loading for PID 1: the depmod text indexes, modprobe.d configuration,
//! modalias matching, dependency/softdep planning and a loader that inserts modules on a few
//! worker threads.
//!
//! The init builds a [`ModuleIndex`] from `/lib/modules/<release>`, a [`ModprobeConfig`] from
//! modprobe.d plus the kernel command line, and hands both to a [`Loader`] together with the
//! [`Insmod`] implementation ([`KernelInsmod`] in production, a recorder in tests).

mod class;
mod config;
mod image;
mod index;
mod insmod;
mod loader;
mod name;
mod pattern;
mod plan;
mod queue;

pub use class::{kind_of_path, slow_to_settle, Deferral, Kind};
pub use config::{ConfigError, ModprobeConfig};
pub use image::{
    open_module, read_file_image, read_image, ImageError, ModuleSource, MAX_IMAGE_SIZE,
};
pub use index::{
    parse_alias_line, parse_dep_line, parse_softdep_line, IndexError, ModuleIndex, Softdep,
};
pub use insmod::{Insmod, KernelInsmod};
pub use loader::{Hold, LoadError, LoadEvent, Loader, Requested};
pub use name::{module_name_from_path, normalize, normalize_alias};
pub use pattern::fnmatch;
pub use plan::{LoadStep, PlanError, FUTILE_REQUESTS_AFTER};

/// What to load before mounting a filesystem of type `fstype` (a blkid / mount type name).
///
/// vfat needs the code page and the default io charset as modules (FAT_DEFAULT_IOCHARSET is
/// `ascii` on Debian), because without a userspace modprobe the kernel cannot fetch them
/// itself. Softdeps such as ext4's crc32c come through [`ModuleIndex::plan`]. Unknown types
/// give an empty list; callers may then try the `fs-<type>` alias.
pub fn fs_modules(fstype: &str) -> Vec<&'static str> {
    match fstype {
        "vfat" | "fat" => vec!["vfat", "nls_cp437", "nls_ascii"],
        "msdos" => vec!["msdos", "nls_cp437"],
        "iso9660" | "isofs" => vec!["isofs"],
        "udf" => vec!["udf"],
        "ext2" | "ext3" | "ext4" => vec!["ext4"],
        "exfat" => vec!["exfat"],
        "ntfs" | "ntfs3" => vec!["ntfs3"],
        "btrfs" => vec!["btrfs"],
        "xfs" => vec!["xfs"],
        "f2fs" => vec!["f2fs"],
        "squashfs" => vec!["squashfs"],
        "erofs" => vec!["erofs"],
        "overlay" => vec!["overlay"],
        _ => Vec::new(),
    }
}

/// Parses `/etc/modules`: one `name [args...]` per line. Everything after a `#` is a comment
/// (as the shell init's `sed 's/#.*//'`), blank lines are skipped, and argument whitespace
/// collapses to single spaces as the shell's word splitting did.
pub fn parse_etc_modules(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let name = words.next()?;
            Some((name.to_owned(), words.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

/// Entry point for a fuzz target: parses arbitrary index texts and runs lookups and plans
/// derived from them. Must never panic or loop forever.
pub fn fuzz_parse_indexes(alias: &str, dep: &str, softdep: &str) {
    let index = ModuleIndex::parse(std::path::Path::new("/m"), dep, alias, softdep, alias);
    let mut config = ModprobeConfig::default();
    config.add_conf(softdep);
    config.add_conf(alias);
    for line in alias.lines().chain(dep.lines()).take(64) {
        let _ = index.lookup(line, &config);
        for word in line.split_whitespace().take(4) {
            let _ = fnmatch(word, line);
            let _ = index.plan(word, &config);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_modules() {
        let text = "# /etc/modules\n\naf_packet\nipv6 # trailing comment\n  loop   max_loop=8   foo=bar  \n#loop\nnbd\tmax_part=8\n   \n";
        let got = parse_etc_modules(text);
        let want = [
            ("af_packet", ""),
            ("ipv6", ""),
            ("loop", "max_loop=8 foo=bar"),
            ("nbd", "max_part=8"),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((name, args), (want_name, want_args)) in got.iter().zip(want) {
            assert_eq!((name.as_str(), args.as_str()), (want_name, want_args));
        }
    }

    #[test]
    fn fs_module_table() {
        let cases: [(&str, &[&str]); 8] = [
            ("vfat", &["vfat", "nls_cp437", "nls_ascii"]),
            ("iso9660", &["isofs"]),
            ("ext2", &["ext4"]),
            ("ext4", &["ext4"]),
            ("ntfs", &["ntfs3"]),
            ("exfat", &["exfat"]),
            ("squashfs", &["squashfs"]),
            ("no-such-fs", &[]),
        ];
        for (fstype, want) in cases {
            assert_eq!(fs_modules(fstype), want, "{fstype}");
        }
    }

    #[test]
    fn fuzz_entry_survives_odd_input() {
        let inputs = [
            (
                "alias [ x\nalias * y\nalias \\",
                "a.ko: a.ko\nb.ko: c.ko\nc.ko: b.ko",
                "softdep a pre: a post: a\nsoftdep y pre: x",
            ),
            (
                "alias x[!-] a\nalias a-b a",
                ":\n\0.ko:\n",
                "softdep\nsoftdep a pre:",
            ),
            ("", "", ""),
        ];
        for (alias, dep, softdep) in inputs {
            fuzz_parse_indexes(alias, dep, softdep);
        }
    }
}
