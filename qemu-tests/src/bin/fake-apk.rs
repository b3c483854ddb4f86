//! A recording stand-in for `/sbin/apk`: appends each call's arguments to
//! `<root>/var/log/fake-apk.argv` (one per line, calls separated by `--`
//! lines) and, when `--overlay-from-stdin` is given, its stdin to
//! `<root>/var/log/fake-apk.stdin`. Always exits 0.
//!
//! When the initramfs carries `/usr/share/fake-apk/init` (and `inspect`),
//! a package install (any call but `--initdb`) also "installs" them as
//! `<root>/sbin/init` and `<root>/etc/alpinit-test/inspect` unless the root
//! already has them: a boot whose overlay was rejected still reaches a new
//! root that reports.

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;

fn root_of(args: &[String]) -> PathBuf {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--root" || arg == "-p" {
            if let Some(root) = iter.next() {
                return PathBuf::from(root);
            }
        } else if let Some(root) = arg.strip_prefix("--root=") {
            return PathBuf::from(root);
        }
    }
    PathBuf::from("/")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--print-arch") {
        println!("x86_64");
        return;
    }
    let root = root_of(&args);
    let log = root.join("var/log");
    if let Err(err) = record(&log, &args) {
        eprintln!("fake-apk: {}: {err}", log.display());
    }
    if !args.iter().any(|a| a == "--initdb") {
        if let Err(err) = install_extras(std::path::Path::new(SHARE), &root) {
            eprintln!("fake-apk: installing into {}: {err}", root.display());
        }
    }
}

const SHARE: &str = "/usr/share/fake-apk";

/// (file under SHARE, destination in the root, mode)
const EXTRAS: &[(&str, &str, u32)] = &[
    ("init", "sbin/init", 0o755),
    ("inspect", "etc/alpinit-test/inspect", 0o644),
];

fn install_extras(share: &std::path::Path, root: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (name, dest, mode) in EXTRAS {
        let src = share.join(name);
        let dest = root.join(dest);
        if !src.is_file() || fs::symlink_metadata(&dest).is_ok() {
            continue;
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&src, &dest)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(*mode))?;
    }
    Ok(())
}

fn record(log: &std::path::Path, args: &[String]) -> std::io::Result<()> {
    fs::create_dir_all(log)?;
    let mut argv = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log.join("fake-apk.argv"))?;
    let mut text: String = args.iter().map(|a| format!("{a}\n")).collect();
    text.push_str("--\n");
    argv.write_all(text.as_bytes())?;
    // Only then: otherwise stdin is the console and reading would hang.
    if args.iter().any(|a| a == "--overlay-from-stdin") {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input)?;
        fs::write(log.join("fake-apk.stdin"), input)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_the_root() {
        let cases: [(&[&str], &str); 4] = [
            (&["add", "--root", "/sysroot", "x"], "/sysroot"),
            (&["add", "--root=/r"], "/r"),
            (&["add", "-p", "/p"], "/p"),
            (&["add", "x"], "/"),
        ];
        for (argv, want) in cases {
            assert_eq!(root_of(&args(argv)), PathBuf::from(want), "{argv:?}");
        }
    }

    #[test]
    fn records_calls_and_only_reads_stdin_when_told() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("var/log");
        record(&log, &args(&["add", "--initdb"])).expect("record");
        record(&log, &args(&["add", "--quiet"])).expect("record");
        let argv = fs::read_to_string(log.join("fake-apk.argv")).expect("argv");
        assert_eq!(argv, "add\n--initdb\n--\nadd\n--quiet\n--\n");
        assert!(!log.join("fake-apk.stdin").exists());
    }

    #[test]
    fn installs_extras_only_where_the_root_has_none() {
        use std::os::unix::fs::PermissionsExt;
        let share = tempfile::tempdir().expect("share");
        let root = tempfile::tempdir().expect("root");
        // Nothing to install: nothing happens.
        install_extras(share.path(), root.path()).expect("empty share");
        assert!(!root.path().join("sbin").exists());
        fs::write(share.path().join("init"), "new init").expect("init");
        fs::write(share.path().join("inspect"), "/etc/passwd\n").expect("inspect");
        fs::create_dir_all(root.path().join("etc/alpinit-test")).expect("dir");
        fs::write(root.path().join("etc/alpinit-test/inspect"), "mine\n").expect("own");
        install_extras(share.path(), root.path()).expect("install");
        let init = root.path().join("sbin/init");
        assert_eq!(fs::read_to_string(&init).expect("init"), "new init");
        let mode = fs::metadata(&init).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let inspect = root.path().join("etc/alpinit-test/inspect");
        assert_eq!(fs::read_to_string(inspect).expect("inspect"), "mine\n");
    }
}
