//! `nlplug-findfs` compatibility: the same binary, called by that name,
//! takes nlplug's options so Alpine's shell init (or a user's script) can
//! use it as a stand-in for the C helper.
//!
//! Differences on purpose: `-p PROG` (the per-event handler, always mdev in
//! Alpine) is accepted and not run, since the links mdev made are created
//! here; the LUKS options are accepted and reported as unsupported; `-f`
//! filters as nlplug's code does (keep only that subsystem) and is ignored
//! for module loading.

use crate::discovery::{self, DeviceSpec};
use crate::layout::Layout;
use crate::wait::WaitPolicy;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub apkovls_file: Option<PathBuf>,
    pub repos_file: Option<PathBuf>,
    pub allow_not_found: bool,
    pub debug: bool,
    pub timeout_ms: Option<u64>,
    pub uevent_buf_size: Option<usize>,
    pub device: Option<String>,
    pub ignored: Vec<String>,
}

const USAGE: &str = "coldplug system til given device is found\n\
usage: nlplug-findfs [options] DEVICE\n\
 -a OUTFILE  add found apkovls to OUTFILE\n\
 -b OUTFILE  add found boot repositories to OUTFILE\n\
 -n          do not exit with error if no device was found\n\
 -d          enable debugging output\n\
 -t TIMEOUT  how long to keep waiting for settling USB storage (ms)\n\
 -U SIZE     uevent receive buffer size\n\
 -p PROG     accepted for compatibility; links are made internally\n\
 -c -H -k -m -o -D  LUKS options: not supported by this version\n";

#[derive(Debug, PartialEq, Eq)]
pub enum ParseOutcome {
    Run(Args),
    Help,
    Usage(String),
}

pub fn parse(argv: &[String]) -> ParseOutcome {
    let mut a = Args::default();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let takes_value = |flag: &str| {
            matches!(
                flag,
                "-a" | "-b" | "-c" | "-H" | "-k" | "-m" | "-o" | "-f" | "-p" | "-t" | "-U"
            )
        };
        // The flag is the dash and one character, which may be several bytes
        // long (`-é`): split at a character boundary, never inside one.
        let split = arg
            .strip_prefix('-')
            .filter(|rest| !rest.starts_with('-'))
            .and_then(|rest| rest.chars().next())
            .map(|c| 1 + c.len_utf8())
            .filter(|&at| at < arg.len());
        let (flag, inline) = match split {
            Some(at) => (&arg[..at], Some(arg[at..].to_owned())),
            None => (arg.as_str(), None),
        };
        let value = if takes_value(flag) {
            match inline.or_else(|| it.next().cloned()) {
                Some(v) => Some(v),
                None => return ParseOutcome::Usage(format!("option {flag} needs a value")),
            }
        } else {
            None
        };
        match (flag, value) {
            ("-h", _) => return ParseOutcome::Help,
            ("-a", Some(v)) => a.apkovls_file = Some(v.into()),
            ("-b", Some(v)) => a.repos_file = Some(v.into()),
            ("-n", _) => a.allow_not_found = true,
            ("-d", _) => a.debug = true,
            ("-D", _) => a.ignored.push("-D".into()),
            ("-t", Some(v)) => match v.parse() {
                Ok(ms) => a.timeout_ms = Some(ms),
                Err(_) => return ParseOutcome::Usage(format!("-t: not a number of ms: {v}")),
            },
            ("-U", Some(v)) => match v.parse() {
                Ok(n) => a.uevent_buf_size = Some(n),
                Err(_) => return ParseOutcome::Usage(format!("-U: not a size: {v}")),
            },
            (f @ ("-c" | "-H" | "-k" | "-m" | "-o" | "-f" | "-p"), Some(v)) => {
                a.ignored.push(format!("{f} {v}"));
            }
            (f, _) if f.starts_with('-') && f.len() > 1 => {
                return ParseOutcome::Usage(format!("unknown option {f}"));
            }
            (_, _) => {
                if a.device.is_none() {
                    a.device = Some(arg.clone());
                }
            }
        }
    }
    ParseOutcome::Run(a)
}

/// Runs as `nlplug-findfs`; returns the exit code.
pub fn main(argv: &[String]) -> i32 {
    let args = match parse(argv) {
        ParseOutcome::Run(a) => a,
        ParseOutcome::Help => {
            print!("{USAGE}");
            return 0;
        }
        ParseOutcome::Usage(why) => {
            eprint!("nlplug-findfs: {why}\n{USAGE}");
            return 1;
        }
    };
    crate::log::set_debug(args.debug);
    for i in &args.ignored {
        if !i.starts_with("-p ") {
            eprintln!("nlplug-findfs: {i}: not supported by this version, ignored");
        }
    }
    let layout = Layout::new("/");
    crate::log::open_kmsg(&layout.dev().join("kmsg"));
    let cmdline = alpinit_cmdline::Cmdline::parse(
        &std::fs::read_to_string(layout.proc().join("cmdline")).unwrap_or_default(),
    );
    let kernel = crate::platform::Kernel::default();
    let platform = kernel.platform();
    let loader = crate::modules::setup(&layout, &cmdline, platform.insmod);
    let scan = args.apkovls_file.is_some() || args.repos_file.is_some();
    let mut policy = WaitPolicy {
        allow_not_found: args.allow_not_found,
        ..WaitPolicy::default()
    };
    if let Some(ms) = args.timeout_ms {
        policy.settle_limit = Duration::from_millis(ms);
        policy.usbdelay = Some(policy.settle_limit);
    }
    let findings = discovery::discover(
        &platform,
        &layout,
        &loader,
        &discovery::Options {
            uevent_buf_size: args
                .uevent_buf_size
                .unwrap_or(alpinit_cmdline::DEFAULT_UEVENT_BUF_SIZE),
            dev_is_tmpfs: false,
            policy,
            wanted: args.device.as_deref().map(DeviceSpec::parse),
            scan_media: scan,
        },
    );
    let mut apkovls: Vec<String> = Vec::new();
    let mut repos: Vec<String> = Vec::new();
    let mut media = findings.media.clone();
    media.sort_by(|a, b| alpinit_apkovl::device_order(&a.devname, &b.devname));
    for m in &media {
        apkovls.extend(m.apkovls.iter().map(|p| p.display().to_string()));
        repos.extend(m.repos.iter().map(|p| p.display().to_string()));
    }
    // The first line is what Alpine's init uses: put the chosen one first.
    if let Some(chosen) = crate::media::choose_apkovl(&findings.media) {
        let chosen = chosen.display().to_string();
        apkovls.retain(|p| *p != chosen);
        apkovls.insert(0, chosen);
    }
    for (file, lines) in [(&args.apkovls_file, &apkovls), (&args.repos_file, &repos)] {
        if let Some(f) = file {
            if let Err(e) = append_lines(f, lines) {
                eprintln!("nlplug-findfs: writing {}: {e}", f.display());
                return 1;
            }
        }
    }
    if let Some(spec) = &args.device {
        if let Err(e) = findings.wanted.unique("device", spec) {
            eprintln!("nlplug-findfs: {e}");
            return 1;
        }
    }
    if findings.found_anything() || args.allow_not_found {
        0
    } else {
        1
    }
}

fn append_lines(path: &std::path::Path, lines: &[String]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)?;
    for l in lines {
        writeln!(f, "{l}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn alpine_diskless_invocation() {
        let ParseOutcome::Run(a) = parse(&argv(
            "-p /sbin/mdev -t 3000 -b /tmp/repositories -a /tmp/apkovls",
        )) else {
            panic!()
        };
        assert_eq!(
            a.apkovls_file.as_deref(),
            Some(std::path::Path::new("/tmp/apkovls"))
        );
        assert_eq!(
            a.repos_file.as_deref(),
            Some(std::path::Path::new("/tmp/repositories"))
        );
        assert_eq!(a.timeout_ms, Some(3000));
        assert_eq!(a.ignored, ["-p /sbin/mdev"]);
        assert_eq!(a.device, None);
    }

    #[test]
    fn alpine_root_invocation_with_device_and_inline_values() {
        let ParseOutcome::Run(a) = parse(&argv("-p /sbin/mdev -d -U8388608 -n UUID=1234 extra"))
        else {
            panic!()
        };
        assert!(a.debug && a.allow_not_found);
        assert_eq!(a.uevent_buf_size, Some(8 << 20));
        assert_eq!(a.device.as_deref(), Some("UUID=1234"));
    }

    #[test]
    fn bad_options_are_usage_errors() {
        for bad in ["-Z", "-a", "-t abc", "-U x"] {
            assert!(matches!(parse(&argv(bad)), ParseOutcome::Usage(_)), "{bad}");
        }
        assert_eq!(parse(&argv("-h")), ParseOutcome::Help);
    }

    /// Regression: `-é` was sliced at byte 2, inside the `é`, and panicked.
    #[test]
    fn non_ascii_options_are_usage_errors_not_panics() {
        for (bad, flag) in [("-é", "-é"), ("-éx", "-é"), ("-€", "-€")] {
            assert_eq!(
                parse(&[bad.to_owned()]),
                ParseOutcome::Usage(format!("unknown option {flag}")),
                "{bad}"
            );
        }
        let ParseOutcome::Run(a) = parse(&["-aé".to_owned()]) else {
            panic!()
        };
        assert_eq!(a.apkovls_file.as_deref(), Some(std::path::Path::new("é")));
        let ParseOutcome::Run(a) = parse(&["é".to_owned()]) else {
            panic!()
        };
        assert_eq!(a.device.as_deref(), Some("é"));
    }

    #[test]
    fn output_files_are_appended_not_truncated() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("out");
        append_lines(&f, &["a".into()]).unwrap();
        append_lines(&f, &["b".into()]).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "a\nb\n");
    }
}
