//! Module names: the kernel treats `-` and `_` in module names as the same character, and
//! file names on disk use either, so every comparison goes through [`normalize`].

/// Module name with every `-` turned into `_`, the spelling the kernel reports.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Normalises an alias or alias pattern: `-` becomes `_` except inside `[...]`, where a `-`
/// is a range operator and must survive. This matches what depmod does to the alias index, so
/// `fs-ext4` and `fs_ext4` find the same module.
pub fn normalize_alias(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    let mut in_class = false;
    for c in alias.chars() {
        match c {
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '-' if !in_class => out.push('_'),
            _ => out.push(c),
        }
    }
    out
}

/// Suffixes of module files, longest first so `.ko.gz` is not mistaken for `.ko`.
const MODULE_SUFFIXES: [&str; 4] = [".ko.zst", ".ko.gz", ".ko.xz", ".ko"];

/// The normalised module name for a module file path from `modules.dep` or `modules.builtin`
/// (`kernel/drivers/usb/storage/usb-storage.ko` -> `usb_storage`), or `None` when the file
/// name does not end in a module suffix or has an empty stem.
pub fn module_name_from_path(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = MODULE_SUFFIXES
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))?;
    if stem.is_empty() {
        return None;
    }
    Some(normalize(stem))
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
}
