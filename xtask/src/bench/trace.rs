//! Following a child started with `PTRACE_TRACEME` until it exits, for the
//! peak memory of the unpack runs (`bench unpack`, `bench hostile`).

use std::fs;

/// Passes on one ptrace stop of PID, a tracee started with `PTRACE_TRACEME`
/// (STATUS as `wait4` gave it): the first SIGTRAP (the exec) asks for a stop
/// at exit, `at_exit` runs at that stop (the last moment /proc/PID/status
/// still shows the peak), any other signal is delivered as if untraced.
pub(crate) fn continue_tracee(
    pid: libc::pid_t,
    status: libc::c_int,
    first_stop: &mut bool,
    at_exit: impl FnOnce(),
) {
    let signal = libc::WSTOPSIG(status);
    let event = status >> 16;
    let mut deliver = 0;
    if *first_stop && signal == libc::SIGTRAP {
        *first_stop = false;
        // SAFETY: pid is our stopped tracee; the option is a plain flag.
        unsafe {
            libc::ptrace(
                libc::PTRACE_SETOPTIONS,
                pid,
                0,
                libc::PTRACE_O_TRACEEXIT as libc::c_long,
            )
        };
    } else if event == libc::PTRACE_EVENT_EXIT {
        at_exit();
    } else if signal != libc::SIGTRAP {
        deliver = signal;
    }
    // SAFETY: pid is our stopped tracee; `deliver` is 0 or the signal that
    // stopped it, passed on as if it had not been traced.
    unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, deliver as libc::c_long) };
}

/// `wait4` on our child; `None` while it has nothing to report (with `WNOHANG`).
pub(crate) fn wait(
    pid: libc::pid_t,
    flags: libc::c_int,
) -> std::io::Result<Option<(libc::c_int, libc::rusage)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child; status and usage are valid, writable
        // locals that outlive the call.
        let rc = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if rc == pid {
            return Ok(Some((status, usage)));
        }
        if rc == 0 {
            return Ok(None);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `VmHWM:` of /proc/PID/status in KiB.
pub(crate) fn vm_hwm_kib(pid: libc::pid_t) -> Option<i64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU seconds of a reaped child and the descendants it reaped
/// (`wait4` reports both): on a shared machine this moves less than wall time.
pub(crate) fn cpu_secs(usage: &libc::rusage) -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Whether PATH is on tmpfs (`statfs` magic), as the new root of a diskless boot is.
pub(crate) fn on_tmpfs(path: &std::path::Path) -> bool {
    statfs_magic(path).is_some_and(|magic| magic == 0x0102_1994)
}

fn statfs_magic(path: &std::path::Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a NUL-terminated path and st a writable local, both outliving the call.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    (rc == 0).then_some(st.f_type as i64)
}
