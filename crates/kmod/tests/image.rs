//! Module images produced by the real compression tools, as kmod's build does it.

use std::path::Path;
use std::process::Command;

use alpinit_kmod::{open_module, read_image, Insmod, KernelInsmod, ModuleSource};

fn tool_output(tool: &str, args: &[&str], input: &Path) -> Option<Vec<u8>> {
    let out = Command::new(tool).args(args).arg(input).output();
    match out {
        Ok(out) if out.status.success() => Some(out.stdout),
        Ok(out) => panic!("{tool} failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => {
            eprintln!("note: {tool} not installed, skipping");
            None
        }
    }
}

#[test]
fn decodes_tool_compressed_modules() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    // Enough data for several blocks, with some structure so it actually compresses.
    let data: Vec<u8> = (0..300_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    std::fs::write(&plain, &data).unwrap();
    // The flags the kernel build uses for compressed modules.
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "xz",
            &["--check=crc32", "--lzma2=dict=1MiB", "-c"],
            "m.ko.xz",
        ),
        ("zstd", &["-T0", "--ultra", "-19", "-c", "-q"], "m.ko.zst"),
        ("gzip", &["-9", "-n", "-c"], "m.ko.gz"),
    ];
    for (tool, args, file) in cases {
        let Some(packed) = tool_output(tool, args, &plain) else {
            continue;
        };
        let path = tmp.path().join(file);
        std::fs::write(&path, packed).unwrap();
        assert_eq!(read_image(&path).unwrap(), data, "{tool}");
    }
}

#[test]
fn kernel_insmod_rejects_bad_input() {
    // A NUL in the parameters is refused before any syscall.
    let err = KernelInsmod
        .insmod("x", b"\x7fELF", "a=1\0b=2")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // The kernel never accepts a non-ELF image: EPERM unprivileged, ENOEXEC/EINVAL as root,
    // ENOSYS or EPERM under a seccomp sandbox. Either way it must come back as an error.
    assert!(KernelInsmod
        .insmod("x", b"definitely not a module", "")
        .is_err());
}

#[test]
fn kernel_insmod_file_rejects_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bogus.ko");
    std::fs::write(&path, b"definitely not a module").unwrap();
    let ModuleSource::File(file) = open_module(&path).unwrap() else {
        panic!("a plain .ko must be opened, not read");
    };
    let err = KernelInsmod
        .insmod_file("x", &file, "a=1\0b=2")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // As for init_module: EPERM unprivileged, ENOEXEC as root, ENOSYS/EPERM sandboxed (then
    // the fallback's init_module fails the same way).
    assert!(KernelInsmod.insmod_file("x", &file, "").is_err());
}

#[test]
fn open_module_names_a_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["gone.ko", "gone.ko.zst"] {
        let path = tmp.path().join(name);
        let err = open_module(&path).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
}
