//! A recording stand-in for `/sbin/apk`: appends each call's arguments to
//! `<root>/var/log/fake-apk.argv` (one per line, calls separated by `--`
//! lines) and, when `--overlay-from-stdin` is given, its stdin to
//! `<root>/var/log/fake-apk.stdin`. Always exits 0.

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
    let log = root_of(&args).join("var/log");
    if let Err(err) = record(&log, &args) {
        eprintln!("fake-apk: {}: {err}", log.display());
    }
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
}
