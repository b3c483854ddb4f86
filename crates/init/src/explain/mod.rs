//! `alpinit explain`: on a running system, what a boot would do, without
//! changing anything. The same code as the boot decides each answer: the
//! command-line parser, the prober, the media scan, the apkovl choice, the
//! module index; only mounting is different (an already mounted medium is
//! read where it is, any other is mounted read-only in a private directory
//! and released at once).
//!
//! Exit status: 0 when a boot would find an overlay, 1 when it would not,
//! 2 on error (see `docs/alpinit.8`).

mod hardware;
mod media;
mod options;
#[cfg(test)]
mod tests;

use crate::layout::Layout;
use alpinit_sys::Sys;
use std::io::{self, Write};
use std::path::PathBuf;

pub use media::{Device, State, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("reading {path}: {source}")]
    Cmdline { path: PathBuf, source: io::Error },
    #[error("listing block devices in {path}: {source}")]
    Blocks { path: PathBuf, source: io::Error },
    #[error("creating the private mount directory {path}: {source}")]
    MountDir { path: PathBuf, source: io::Error },
    #[error("writing the report: {0}")]
    Output(#[source] io::Error),
}

/// What `explain` was asked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    /// The module tree to check the hardware against (default: the running
    /// kernel's `/lib/modules/RELEASE`).
    pub modules: Option<PathBuf>,
}

pub const USAGE: &str = "usage: alpinit explain [--modules DIR]\n\
Says, without changing anything, what a diskless boot of this machine would do:\n\
the kernel options in effect and ignored, the block devices scanned, the apkovl\n\
candidates and the one chosen, the repositories, and the modules missing for\n\
the present hardware (checked against DIR, default /lib/modules/$(uname -r)).\n\
Exit status: 0 an overlay would be found, 1 it would not, 2 error.\n";

/// Parses the arguments after `explain`; `Err` is the message to print
/// with the usage (`Ok(None)` asks for the usage itself).
pub fn parse_args(argv: &[String]) -> Result<Option<Args>, String> {
    let mut args = Args::default();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--modules" => match it.next() {
                Some(dir) => args.modules = Some(PathBuf::from(dir)),
                None => return Err("--modules needs a directory".to_owned()),
            },
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(Some(args))
}

/// `explain` as the first argument runs the report, except in the
/// initramfs' own `/init` as PID 1: the kernel passes command-line words
/// without `=` to init, and a stray `explain` there must not stop a boot.
/// Called as `nlplug-findfs`, `explain` is a device name.
pub fn wanted(argv: &[String], pid: u32) -> bool {
    let called = argv
        .first()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or("");
    argv.get(1).is_some_and(|a| a == "explain")
        && called != "nlplug-findfs"
        && (pid != 1 || called != "init")
}

/// The exit status of `alpinit explain ...` when `argv` asks for it.
pub fn from_argv(argv: &[String]) -> Option<i32> {
    wanted(argv, std::process::id()).then(|| main(&argv[2..]))
}

/// `alpinit explain ARGS`: the report on stdout, the exit status.
pub fn main(argv: &[String]) -> i32 {
    let args = match parse_args(argv) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return 0;
        }
        Err(msg) => {
            eprint!("alpinit explain: {msg}\n{USAGE}");
            return 2;
        }
    };
    let layout = Layout::new("/");
    let mut out = io::stdout().lock();
    match run(&layout, &alpinit_sys::Kernel, &args, &mut out) {
        Ok(verdict) => verdict.exit_status(),
        Err(e) => {
            let _ = out.flush();
            eprintln!("alpinit explain: {}", crate::failure::chain(&e));
            2
        }
    }
}

/// The whole report on `out`: options, devices, overlay, repositories,
/// hardware, then the verdict line.
pub fn run(
    layout: &Layout,
    sys: &dyn Sys,
    args: &Args,
    out: &mut dyn Write,
) -> Result<Verdict, ExplainError> {
    let cmdline_path = layout.proc().join("cmdline");
    let text = std::fs::read_to_string(&cmdline_path).map_err(|source| ExplainError::Cmdline {
        path: cmdline_path,
        source,
    })?;
    let cmdline = alpinit_cmdline::Cmdline::parse(&text);
    let mut report = String::new();
    report.push_str(&format!(
        "alpinit {} explain: what a boot of this machine would do\n",
        crate::boot::VERSION
    ));
    options::report(&cmdline, &mut report);
    // The keys the image would carry (`/etc/alpinit/keys`): a broken key
    // directory is reported as "no key usable", as the boot treats it.
    let keys = match crate::signature::Keys::load(&layout.path(crate::signature::KEYS_DIR)) {
        Ok(k) => k,
        Err(_) => Some(crate::signature::Keys::none_usable()),
    };
    let devices = media::devices(layout, sys, &cmdline, keys.as_ref())?;
    media::report_devices(&devices, &mut report);
    let verdict = media::report_overlay(&cmdline, &devices, keys.as_ref(), &mut report);
    media::report_repositories(&cmdline, &devices, &mut report);
    hardware::report(layout, args.modules.as_deref(), &mut report);
    report.push_str(&format!("\n{}\n", verdict.summary()));
    out.write_all(report.as_bytes())
        .and_then(|()| out.flush())
        .map_err(ExplainError::Output)?;
    Ok(verdict)
}
