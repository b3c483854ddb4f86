//! Test stand-in for the new root's `/sbin/init`: prints what the initramfs
//! left behind as a structured report on the console, then powers off.
//!
//! It runs as PID 1, so it never panics on purpose: every failure becomes a
//! `error=` line in the report.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use alpinit_qemu_tests::report::{escape, BEGIN, END};

/// Regular files up to this size have their content in the report.
const CONTENT_LIMIT: u64 = 4096;
const INSPECT_LIST: &str = "/etc/alpinit-test/inspect";

fn main() {
    let start = monotonic();
    let pid = std::process::id();
    if pid == 1 {
        quiet_kernel_console();
    }
    let mut report = String::new();
    let _ = writeln!(report, "{BEGIN}");
    let _ = writeln!(report, "pid={pid}");
    let _ = writeln!(report, "monotonic={start}");
    if !Path::new("/proc/self/mounts").exists() {
        mount_proc(&mut report);
    }
    line(
        &mut report,
        "cmdline",
        read_text("/proc/cmdline").trim_end(),
    );
    match fs::read_to_string("/proc/self/mounts") {
        Ok(mounts) => mounts.lines().for_each(|m| line(&mut report, "mount", m)),
        Err(err) => line(&mut report, "error", &format!("/proc/self/mounts: {err}")),
    }
    list_media(&mut report);
    line(
        &mut report,
        "hostname",
        read_text("/etc/hostname").trim_end(),
    );
    if pid == 1 {
        children(&mut report);
    }
    if let Ok(list) = fs::read_to_string(INSPECT_LIST) {
        for path in list.lines().map(str::trim).filter(|p| !p.is_empty()) {
            inspect(&mut report, path);
        }
    }
    let _ = writeln!(report, "{END}");
    emit(&report);
    if pid == 1 {
        power_off();
    }
}

/// The initramfs' process that frees it after the hand-over, as the
/// kernel shortens its name (15 bytes).
const FREER: &str = "alpinit-free-in";
const FREER_ARGV0: &str = "alpinit-free-initramfs\0";
/// How long the freer is waited for: it deletes a few MB of RAM files.
const FREER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `child=NAME STATUS` for every process the initramfs left as a child of
/// PID 1: the freer is waited for (bounded) and reaped, so its exit status
/// shows it ran; any other child is reported `running`.
fn children(report: &mut String) {
    let started = std::time::Instant::now();
    loop {
        let kids = child_pids();
        // Running, it is known by its argv[0] (its name is the file's,
        // "exe", until it renames itself); exited, by that new name.
        let freer_running = kids.iter().any(|(pid, comm, state)| {
            state != "Z"
                && (comm == FREER
                    || read_text(&format!("/proc/{pid}/cmdline")).starts_with(FREER_ARGV0))
        });
        if !freer_running || started.elapsed() >= FREER_WAIT {
            for (pid, comm, state) in kids {
                if state == "Z" {
                    let mut status = 0;
                    // SAFETY: waitpid on a zombie child of ours writes only `status`.
                    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                    let code = if rc == pid && libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status).to_string()
                    } else {
                        format!("wait status {status:#x}")
                    };
                    line(report, "child", &format!("{comm} {code}"));
                } else {
                    line(report, "child", &format!("{comm} running"));
                }
            }
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Children of this process: pid, name and state letter from /proc.
fn child_pids() -> Vec<(i32, String, String)> {
    let me = std::process::id().to_string();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let stat = read_text(&format!("/proc/{pid}/stat"));
        // `pid (comm) state ppid ...`: comm may hold spaces, so split after
        // its closing parenthesis.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let (Some(state), Some(ppid)) = (rest.next(), rest.next()) else {
            continue;
        };
        if ppid == me {
            out.push((pid, comm, state.to_string()));
        }
    }
    out
}

fn line(report: &mut String, key: &str, value: &str) {
    let _ = writeln!(report, "{key}={}", escape(value));
}

fn read_text(path: &str) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) => format!("<{err}>"),
    }
}

fn monotonic() -> String {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return "unknown".into();
    }
    format!("{}.{:06}", ts.tv_sec, ts.tv_nsec / 1000)
}

/// Kernel messages at the default level would interleave with the report
/// on the serial line; only emergencies may print from here on.
fn quiet_kernel_console() {
    const SYSLOG_ACTION_CONSOLE_LEVEL: libc::c_int = 8;
    // SAFETY: this klogctl action takes no buffer; a null pointer is allowed.
    unsafe {
        libc::klogctl(SYSLOG_ACTION_CONSOLE_LEVEL, std::ptr::null_mut(), 1);
    }
}

fn mount_proc(report: &mut String) {
    let _ = fs::create_dir_all("/proc");
    let rc = {
        // SAFETY: all strings are NUL-terminated literals; data may be null.
        unsafe {
            libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                0,
                std::ptr::null(),
            )
        }
    };
    if rc == 0 {
        line(
            report,
            "note",
            "/proc was not mounted in the new root; mounted it",
        );
    } else {
        let err = std::io::Error::last_os_error();
        line(report, "error", &format!("mounting /proc: {err}"));
    }
}

fn list_media(report: &mut String) {
    let mut entries: Vec<_> = match fs::read_dir("/media") {
        Ok(dir) => dir.flatten().map(|e| e.path()).collect(),
        Err(err) => {
            line(report, "error", &format!("/media: {err}"));
            return;
        }
    };
    entries.sort();
    for dir in entries {
        line(report, "media", &describe(&dir));
        let mut children: Vec<_> = fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        children.sort();
        for child in children {
            line(report, "media", &describe(&child));
        }
    }
}

/// `ls -l`-like: mode uid gid size path [-> target]
fn describe(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            let mut out = format!(
                "{} {} {} {} {}",
                mode_string(&meta),
                meta.uid(),
                meta.gid(),
                meta.size(),
                path.display()
            );
            if meta.file_type().is_symlink() {
                if let Ok(target) = fs::read_link(path) {
                    let _ = write!(out, " -> {}", target.display());
                }
            }
            out
        }
        Err(err) => format!("? {}: {err}", path.display()),
    }
}

fn type_name(meta: &fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    }
}

fn mode_string(meta: &fs::Metadata) -> String {
    let kind = match type_name(meta) {
        "symlink" => 'l',
        "dir" => 'd',
        "char" => 'c',
        "block" => 'b',
        "fifo" => 'p',
        "socket" => 's',
        _ => '-',
    };
    let mode = meta.mode();
    let mut out = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    out
}

fn inspect(report: &mut String, path: &str) {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) => {
            line(report, "inspect", &format!("{path} missing {err}"));
            return;
        }
    };
    let mut desc = format!(
        "{path} type={} mode={:04o} uid={} gid={} size={}",
        type_name(&meta),
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid(),
        meta.size()
    );
    if meta.file_type().is_symlink() {
        if let Ok(target) = fs::read_link(path) {
            let _ = write!(desc, " target={}", target.display());
        }
    }
    line(report, "inspect", &desc);
    if meta.is_file() && meta.size() <= CONTENT_LIMIT {
        match fs::read(path) {
            Ok(bytes) => line(
                report,
                "content",
                &format!("{path} {}", String::from_utf8_lossy(&bytes)),
            ),
            Err(err) => line(report, "error", &format!("reading {path}: {err}")),
        }
    }
}

/// One write per line so a stray kernel message cannot split one.
fn emit(report: &str) {
    match fs::OpenOptions::new().write(true).open("/dev/console") {
        Ok(mut file) => {
            for l in report.lines() {
                let _ = file.write_all(format!("{l}\n").as_bytes());
            }
            // The report must leave the UART before power_off: a write only
            // queues it in the tty layer (regression: a report cut short by
            // "reboot: Power down").
            use std::os::fd::AsRawFd;
            // SAFETY: tcdrain on an fd we own; it only waits for output.
            unsafe { libc::tcdrain(file.as_raw_fd()) };
        }
        Err(_) => {
            let mut out = std::io::stdout();
            for l in report.lines() {
                let _ = out.write_all(format!("{l}\n").as_bytes());
            }
            let _ = out.flush();
        }
    }
}

fn power_off() -> ! {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    // SAFETY: reboot with a valid command constant; we are PID 1.
    let rc = unsafe { libc::reboot(libc::RB_POWER_OFF) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        emit(&format!("report-init: power off failed: {err}\n"));
    }
    // Returning from PID 1 would panic the kernel; wait for the harness.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpinit_qemu_tests::report::Report;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn inspect_lines_parse_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("motd");
        fs::write(&file, "hello\nworld\n").expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).expect("chmod");
        let link = dir.path().join("bin");
        std::os::unix::fs::symlink("usr/bin", &link).expect("symlink");
        let missing = dir.path().join("missing");
        let mut text = format!("{BEGIN}\n");
        for path in [&file, &link, &missing] {
            inspect(&mut text, &path.to_string_lossy());
        }
        text.push_str(END);
        let report = Report::parse(&text).expect("report");
        let f = report.inspect(&file.to_string_lossy()).expect("file");
        assert_eq!((f.kind.as_str(), f.mode, f.size), ("file", 0o640, 12));
        assert_eq!(
            report.content(&file.to_string_lossy()),
            Some("hello\nworld\n")
        );
        let l = report.inspect(&link.to_string_lossy()).expect("link");
        assert_eq!(l.kind, "symlink");
        assert_eq!(l.target.as_deref(), Some("usr/bin"));
        assert_eq!(report.inspect(&missing.to_string_lossy()), None);
    }

    #[test]
    fn ls_style_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("x");
        fs::write(&file, "").expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o754)).expect("chmod");
        let meta = fs::symlink_metadata(&file).expect("meta");
        assert_eq!(mode_string(&meta), "-rwxr-xr--");
        let meta = fs::symlink_metadata(dir.path()).expect("meta");
        assert!(mode_string(&meta).starts_with('d'));
    }
}
