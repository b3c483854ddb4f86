//! `nlplug-findfs` compatibility: the same binary, called by that name,
//! takes nlplug's options so Alpine's shell init (or a user's script) can
//! use it as a stand-in for the C helper.
//!
//! Differences on purpose: `-p PROG` (the per-event handler, always mdev in
//! Alpine) is accepted and not run, since the links mdev made are created
//! here (and the nodes, when `/dev` is no devtmpfs); `-f` filters as
//! nlplug's code does (keep only that subsystem) and is ignored for module
//! loading. The LUKS options open the volume in process (`crypt.rs`).

use crate::discovery::{self, DeviceSpec};
use crate::layout::Layout;
use crate::platform::Platform;
use crate::wait::WaitPolicy;
use std::io::Write;
use std::time::Duration;

mod args;
mod crypt;

pub use args::{parse, Args, Crypt, ParseOutcome};

const USAGE: &str = "coldplug system til given device is found\n\
usage: nlplug-findfs [options] DEVICE\n\
 -a, --apkovls-file OUTFILE            add found apkovls to OUTFILE\n\
 -b, --boot-repositories-file OUTFILE  add found boot repositories to OUTFILE\n\
 -n, --allow-not-found                 do not exit with error if no device was found\n\
 -d, --debug                           debugging output on stderr\n\
 -f, --filter SUBSYSTEM                only handle uevents of SUBSYSTEM\n\
 -t, --timeout TIMEOUT                 how long to keep waiting for settling USB storage (ms)\n\
 -U, --uevent-buffer-size SIZE         uevent receive buffer size\n\
 -p, --event-handler PROG              accepted for compatibility; links are made internally\n\
 -c -H -k -m -o -D                     LUKS options (--crypt-device, --crypt-header,\n\
                                       --crypt-key, --crypt-name, --crypt-offset,\n\
                                       --crypt-discards)\n\
 -h, --help                            this text\n";

/// Where nlplug-findfs mode's messages go: debug records (with `-d`),
/// warnings and errors to stderr as `nlplug-findfs: MSG`, as the C helper
/// prints them; the rest to the kernel log as in the boot.
struct FindfsSink {
    kmsg: std::sync::Mutex<Option<std::fs::File>>,
}

/// Where one kmsg record goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Stderr(String),
    Kmsg,
}

fn route(record: &str) -> Route {
    let level = record
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .and_then(|(l, _)| l.parse::<u8>().ok());
    let text = record
        .split_once("alpinit: ")
        .map_or(record, |(_, t)| t)
        .trim_end_matches('\n');
    match level {
        Some(l) if l == crate::log::Level::Debug as u8 || l <= crate::log::Level::Warn as u8 => {
            Route::Stderr(format!("nlplug-findfs: {text}\n"))
        }
        _ => Route::Kmsg,
    }
}

impl crate::log::Sink for FindfsSink {
    fn console(&self, text: &str) {
        print!("{text}");
    }

    fn kmsg(&self, record: &str) {
        match route(record) {
            Route::Stderr(line) => eprint!("{line}"),
            Route::Kmsg => {
                let mut kmsg = self.kmsg.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(f) = kmsg.as_mut() {
                    let _ = f.write_all(record.as_bytes());
                }
            }
        }
    }
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
    let layout = Layout::new("/");
    let kmsg = std::fs::OpenOptions::new()
        .write(true)
        .open(layout.dev().join("kmsg"))
        .ok();
    crate::log::set_thread_sink(Some(std::sync::Arc::new(FindfsSink {
        kmsg: std::sync::Mutex::new(kmsg),
    })));
    let kernel = crate::platform::Kernel::default();
    run(&kernel.platform(), &layout, &args)
}

/// The work of `nlplug-findfs` on platform P: coldplug, wait, write the
/// `-a`/`-b` files; returns the exit status (reference §2.9: 0 when
/// anything was found or with `-n`, else 1; 1 on an error).
pub fn run(p: &Platform<'_>, layout: &Layout, args: &Args) -> i32 {
    let _unlimited = KmsgUnlimited::lift(layout);
    run_lifted(p, layout, args)
}

/// Lifts the kernel's limit on /dev/kmsg writers (`kernel.printk_devkmsg`
/// at its default `ratelimit`: a burst of 10 lines per 5 s per open file)
/// while nlplug-findfs runs, and puts it back when dropped. Alpine's init
/// leaves the limit on, and the lines that matter (`found apkovl`) come
/// after a dozen probe and wait lines: they were dropped. The init lifts
/// it for the whole boot (`early.rs`); a helper that may also be run by
/// hand on an installed system restores what it found. `off` is left
/// alone: no line goes to the kernel log then anyway.
struct KmsgUnlimited {
    path: std::path::PathBuf,
    restore: Option<String>,
}

impl KmsgUnlimited {
    fn lift(layout: &Layout) -> Self {
        let path = layout.proc().join("sys/kernel/printk_devkmsg");
        let restore = match std::fs::read_to_string(&path) {
            Ok(mode) if mode.trim() == "ratelimit" && std::fs::write(&path, "on\n").is_ok() => {
                Some(mode)
            }
            _ => None,
        };
        KmsgUnlimited { path, restore }
    }
}

impl Drop for KmsgUnlimited {
    fn drop(&mut self) {
        if let Some(mode) = &self.restore {
            let _ = std::fs::write(&self.path, mode);
        }
    }
}

fn run_lifted(p: &Platform<'_>, layout: &Layout, args: &Args) -> i32 {
    crate::log::set_debug(args.debug);
    let cmdline = alpinit_cmdline::Cmdline::parse(
        &std::fs::read_to_string(layout.proc().join("cmdline")).unwrap_or_default(),
    );
    let loader = crate::modules::setup(layout, &cmdline, p.insmod);
    let scan = args.apkovls_file.is_some() || args.repos_file.is_some();
    let mut policy = WaitPolicy {
        allow_not_found: args.allow_not_found,
        ..WaitPolicy::default()
    };
    if let Some(ms) = args.timeout_ms {
        policy.settle_limit = Duration::from_millis(ms);
        policy.usbdelay = Some(policy.settle_limit);
    }
    let options = discovery::Options {
        uevent_buf_size: args
            .uevent_buf_size
            .unwrap_or(alpinit_cmdline::DEFAULT_UEVENT_BUF_SIZE),
        dev_is_tmpfs: !dev_is_devtmpfs(
            &std::fs::read_to_string(layout.proc().join("mounts")).unwrap_or_default(),
        ),
        policy,
        wanted: args.device.as_deref().map(DeviceSpec::parse),
        scan_media: scan,
        modloop_modules: false,
        aoe: None,
    };
    match crypt::open(p, layout, &loader, args, &options) {
        Ok(crypt::Opened::Nothing) => {}
        Ok(crypt::Opened::NoName) => crate::log::warn(
            "-c without -m (the mapping's name): the crypt device is not unlocked, as nlplug",
        ),
        Ok(crypt::Opened::Mapped(dm)) => crate::log::debug(&format!("crypt device mapped: {dm}")),
        Err(e) => crate::log::error(&crate::failure::chain(&e)),
    }
    let findings = discovery::discover_only(p, layout, &loader, &options, args.filter.as_deref());
    crate::modules::report_missing_drivers(layout, loader.index());
    let mut apkovls: Vec<String> = Vec::new();
    let mut repos: Vec<String> = Vec::new();
    let mut media = findings.media.clone();
    alpinit_sort::sort_by(&mut media, |a, b| {
        alpinit_apkovl::device_order(&a.devname, &b.devname)
    });
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
                crate::log::error(&format!("writing {}: {e}", f.display()));
                return 1;
            }
        }
    }
    if let Some(spec) = &args.device {
        if let Err(e) = findings.wanted.unique("device", spec) {
            crate::log::error(&e.to_string());
            return 1;
        }
    }
    if findings.found_anything() || args.allow_not_found {
        0
    } else {
        1
    }
}

/// Whether `/dev` is a devtmpfs by MOUNTS (`/proc/mounts`, the last mount
/// on `/dev` counts): the kernel then makes the device nodes. Otherwise
/// they are made here, as nlplug's `-p /sbin/mdev` made them in a caller
/// that mounted no devtmpfs (mkinitfs' `nlplug-findfs/init.sh` mounts only
/// /proc and /sys); an unreadable MOUNTS counts as no devtmpfs, and a node
/// that exists is never replaced.
fn dev_is_devtmpfs(mounts: &str) -> bool {
    mounts.lines().rev().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_source, at, fstype) = (f.next()?, f.next()?, f.next()?);
        (at == "/dev").then_some(fstype)
    }) == Some("devtmpfs")
}

/// Appends LINES to PATH, creating it only when there is something to
/// write: nlplug opens its `-a`/`-b` files per finding, so a script's
/// `[ -f /tmp/apkovls ]` means something was found.
fn append_lines(path: &std::path::Path, lines: &[String]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if lines.is_empty() {
        return Ok(());
    }
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

    #[test]
    fn output_files_are_appended_not_truncated() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("out");
        append_lines(&f, &["a".into()]).unwrap();
        append_lines(&f, &["b".into()]).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "a\nb\n");
    }

    #[test]
    fn device_nodes_are_made_when_dev_is_no_devtmpfs() {
        let devtmpfs =
            "rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\n";
        assert!(dev_is_devtmpfs(devtmpfs));
        // init.sh's guest: /proc and /sys only, /dev is the initramfs' own directory.
        assert!(!dev_is_devtmpfs(
            "rootfs / rootfs rw 0 0\nnone /proc proc rw 0 0\nnone /sys sysfs rw 0 0\n"
        ));
        // A tmpfs mounted over the devtmpfs hides it.
        assert!(!dev_is_devtmpfs(&format!(
            "{devtmpfs}tmpfs /dev tmpfs rw 0 0\n"
        )));
        assert!(!dev_is_devtmpfs(""));
        assert!(!dev_is_devtmpfs("devtmpfs /dev/pts devtmpfs rw 0 0\n"));
    }

    #[test]
    fn nothing_found_leaves_no_empty_output_file() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("apkovls");
        append_lines(&f, &[]).unwrap();
        assert!(!f.exists());
    }

    #[test]
    fn debug_warnings_and_errors_go_to_stderr_the_rest_to_the_kernel_log() {
        let cases = [
            (
                "<7>alpinit: uevent: action='Add'\n",
                Some("nlplug-findfs: uevent: action='Add'\n"),
            ),
            (
                "<3>alpinit: mount failed\n",
                Some("nlplug-findfs: mount failed\n"),
            ),
            ("<4>alpinit: overflow\n", Some("nlplug-findfs: overflow\n")),
            ("<6>alpinit: coldplug: 3 devices\n", None),
            ("<5>alpinit: phase x 1.0\n", None),
        ];
        for (record, want) in cases {
            let got = route(record);
            match want {
                Some(line) => assert_eq!(got, Route::Stderr(line.into()), "{record}"),
                None => assert_eq!(got, Route::Kmsg, "{record}"),
            }
        }
    }
}
