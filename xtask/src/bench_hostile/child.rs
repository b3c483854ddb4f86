//! Runs the unpacker in a child under an address-space cap and a time limit, and
//! reads its peak memory (`VmHWM`) at its exit stop, as `bench::unpack::timed` in
//! `xtask/src/bench/unpack.rs` does (see there why `ru_maxrss` alone is not used).

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::KEEP_OUTPUT;
use crate::bench::trace::{continue_tracee, vm_hwm_kib, wait};

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exit(i32),
    Signal(i32),
    /// Killed by the time limit.
    TimedOut,
}

#[derive(Debug)]
pub struct Run {
    pub secs: f64,
    /// User plus system CPU seconds.
    pub cpu_secs: f64,
    /// `VmHWM` at the exit stop (or just before a timeout kill); `ru_maxrss` when
    /// neither could be read.
    pub peak_kib: Option<i64>,
    pub ended: Ended,
    /// The first bytes of each stream.
    pub stdout: String,
    pub stderr: String,
}

/// Keeps the first `KEEP_OUTPUT` bytes of `r` and drains the rest, so a child that
/// prints without bound neither blocks nor fills the parent's memory. The kept bytes
/// arrive on the channel when the stream closes.
fn drain(mut r: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = KEEP_OUTPUT - kept.len();
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(kept);
    });
    rx
}

/// Runs CMD into a fresh DEST with at most `cap_bytes` of address space, killing it
/// after `timeout`.
pub fn run_capped(
    cmd: &mut Command,
    dest: &Path,
    timeout: Duration,
    cap_bytes: u64,
) -> Result<Run> {
    use std::os::unix::process::CommandExt;
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let shown = format!("{cmd:?}");
    let cap = cap_bytes as libc::rlim_t;
    // SAFETY: the hook runs in the forked child before exec and only makes two
    // async-signal-safe system calls on a local value.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: cap,
                rlim_max: cap,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == -1
                || libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let pid = child.id() as libc::pid_t;
    let mut peak_kib = None;
    let mut first_stop = true;
    let mut timed_out = false;
    let (status, usage) = loop {
        let Some((status, usage)) =
            wait(pid, libc::WNOHANG).with_context(|| format!("waiting for {shown}"))?
        else {
            if !timed_out && started.elapsed() > timeout {
                timed_out = true;
                peak_kib = vm_hwm_kib(pid);
                // SAFETY: pid is our child, not yet reaped, so it names no other process.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        if !libc::WIFSTOPPED(status) {
            break (status, usage);
        }
        continue_tracee(pid, status, &mut first_stop, || {
            if !timed_out {
                peak_kib = vm_hwm_kib(pid);
            }
        });
    };
    let secs = started.elapsed().as_secs_f64();
    // The child was reaped above; dropping the handle does not wait again.
    drop(child);
    // A grandchild may still hold the pipes after a kill: wait a little, not for it.
    let text = |rx: Option<Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(1)).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let ended = if timed_out {
        Ended::TimedOut
    } else if libc::WIFEXITED(status) {
        Ended::Exit(libc::WEXITSTATUS(status))
    } else {
        Ended::Signal(libc::WTERMSIG(status))
    };
    Ok(Run {
        secs,
        cpu_secs: crate::bench::trace::cpu_secs(&usage),
        peak_kib: peak_kib.or(Some(usage.ru_maxrss)),
        ended,
        stdout: text(out),
        stderr: text(err),
    })
}
