//! Module names: the kernel treats `-` and `_` in module names as the same character, and
//! file names on disk use either, so every comparison goes through [`normalize`].

use std::borrow::Cow;

/// Module name with every `-` turned into `_`, the spelling the kernel reports.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// [`normalize`] without a copy when the name has no `-` (most names do not), for the index
/// parsers that only look the name up.
pub(crate) fn normalize_cow(name: &str) -> Cow<'_, str> {
    if name.contains('-') {
        Cow::Owned(normalize(name))
    } else {
        Cow::Borrowed(name)
    }
}

/// Normalises an alias or alias pattern: `-` becomes `_` except inside `[...]`, where a `-`
/// is a range operator and must survive. This matches what depmod does to the alias index, so
/// `fs-ext4` and `fs_ext4` find the same module.
pub fn normalize_alias(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    normalize_alias_into(alias, &mut out);
    out
}

/// [`normalize_alias`] appended to `out`, so the alias index can keep every pattern in one
/// buffer. Works on bytes and copies the runs between the `-` it replaces: `-`, `[` and `]`
/// are ASCII, so every cut is on a character boundary.
pub(crate) fn normalize_alias_into(alias: &str, out: &mut String) {
    let mut in_class = false;
    let mut run = 0;
    for (i, b) in alias.bytes().enumerate() {
        match b {
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'-' if !in_class => {
                out.push_str(&alias[run..i]);
                out.push('_');
                run = i + 1;
            }
            _ => {}
        }
    }
    out.push_str(&alias[run..]);
}

/// Suffixes of module files, longest first so `.ko.gz` is not mistaken for `.ko`.
const MODULE_SUFFIXES: [&str; 4] = [".ko.zst", ".ko.gz", ".ko.xz", ".ko"];

/// The normalised module name for a module file path from `modules.dep` or `modules.builtin`
/// (`kernel/drivers/usb/storage/usb-storage.ko` -> `usb_storage`), or `None` when the file
/// name does not end in a module suffix or has an empty stem.
pub fn module_name_from_path(path: &str) -> Option<String> {
    module_name_cow(path).map(Cow::into_owned)
}

/// [`module_name_from_path`] borrowing from `path` when the stem has no `-`.
pub(crate) fn module_name_cow(path: &str) -> Option<Cow<'_, str>> {
    let stem = module_stem(path)?;
    Some(normalize_cow(stem))
}

/// The file name of `path` without its module suffix, as written; `None` when it is not a
/// module file name.
pub(crate) fn module_stem(path: &str) -> Option<&str> {
    let file = path.rsplit('/').next()?;
    let stem = MODULE_SUFFIXES
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))?;
    (!stem.is_empty()).then_some(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_from_paths() {
        let cases = [
            ("kernel/fs/ext4/ext4.ko", Some("ext4")),
            (
                "kernel/drivers/usb/storage/usb-storage.ko",
                Some("usb_storage"),
            ),
            ("kernel/fs/nls/nls_iso8859-1.ko.xz", Some("nls_iso8859_1")),
            (
                "kernel/arch/x86/crypto/crc32c-intel.ko.zst",
                Some("crc32c_intel"),
            ),
            ("kernel/drivers/usb/host/xhci-pci.ko.gz", Some("xhci_pci")),
            ("vfat.ko", Some("vfat")),
            ("kernel/fs/x/.ko", None),
            ("kernel/fs/x/readme.txt", None),
            ("kernel/fs/x/ext4.ko.bz2", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(module_name_from_path(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn alias_normalisation_keeps_ranges() {
        let cases = [
            ("fs-ext4", "fs_ext4"),
            ("crypto-crc32c", "crypto_crc32c"),
            ("of:N*T*Cfoo-bar[a-c]x-y", "of:N*T*Cfoo_bar[a-c]x_y"),
            ("pci:v00001AF4d*", "pci:v00001AF4d*"),
            ("[-]-", "[-]_"),
        ];
        for (alias, want) in cases {
            assert_eq!(normalize_alias(alias), want, "{alias}");
        }
        assert_eq!(normalize("usb-storage"), "usb_storage");
    }

    #[test]
    fn alias_normalisation_appends_and_keeps_non_ascii() {
        let cases = [
            ("", "pre", "pre"),
            ("fs-ext4", "x:", "x:fs_ext4"),
            ("a-[b-c]-d", "", "a_[b-c]_d"),
            (
                "\u{e9}-\u{e9}[\u{e9}-z]",
                "\u{e9}",
                "\u{e9}\u{e9}_\u{e9}[\u{e9}-z]",
            ),
            ("]-[", "", "]_["),
            ("---", "", "___"),
        ];
        for (alias, before, want) in cases {
            let mut out = before.to_owned();
            normalize_alias_into(alias, &mut out);
            assert_eq!(out, want, "{alias:?}");
            assert_eq!(normalize_alias(alias), want[before.len()..], "{alias:?}");
        }
    }

    #[test]
    fn borrowed_names_equal_owned_ones() {
        for name in [
            "ext4",
            "usb-storage",
            "crc32c-intel",
            "-",
            "",
            "nls_iso8859-1",
        ] {
            let cow = normalize_cow(name);
            assert_eq!(cow, normalize(name), "{name}");
            assert_eq!(
                matches!(cow, Cow::Borrowed(_)),
                !name.contains('-'),
                "{name}"
            );
        }
        for path in [
            "kernel/fs/ext4/ext4.ko",
            "kernel/drivers/usb/storage/usb-storage.ko.xz",
            "kernel/fs/x/.ko",
            "readme.txt",
            "",
        ] {
            assert_eq!(
                module_name_cow(path).map(Cow::into_owned),
                module_name_from_path(path),
                "{path}"
            );
        }
        assert_eq!(
            module_stem("kernel/a/usb-storage.ko.zst"),
            Some("usb-storage")
        );
        assert_eq!(module_stem("kernel/a/.ko"), None);
    }
}
