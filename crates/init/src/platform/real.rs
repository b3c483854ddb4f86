//! The kernel behind each [`super::Platform`] trait: exactly the calls the
//! boot made before the seam existed.

use super::{Clock, Console, Exec, Net, Spawn, Stdin, Sysfs, UeventStream, Uevents};
use alpinit_kmod::Loader;
use alpinit_net::{FetchError, FetchOptions, Lease, Links, NetError};
use alpinit_sys::Sys;
use alpinit_uevent::{RecvError, SocketError, Uevent, UeventSocket};
use std::io::{self, BufRead, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct KernelUevents;

impl UeventStream for UeventSocket {
    fn recv(&self) -> Result<Option<Uevent>, RecvError> {
        UeventSocket::recv(self)
    }
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

impl Uevents for KernelUevents {
    fn open(&self, buf: usize) -> Result<Box<dyn UeventStream + '_>, SocketError> {
        Ok(Box::new(UeventSocket::open(buf)?))
    }

    fn wait(&self, stream: Option<&dyn UeventStream>, loader: &Loader, dur: Duration) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let ms = u16::try_from(dur.as_millis()).unwrap_or(u16::MAX);
        let mut fds = vec![PollFd::new(loader.event_fd(), PollFlags::POLLIN)];
        if let Some(fd) = stream.and_then(UeventStream::fd) {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let _ = poll(&mut fds, PollTimeout::from(ms));
        if fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            loader.reset_event();
        }
    }
}

pub struct KernelNet;

impl Net for KernelNet {
    fn links(&self) -> &dyn Links {
        &alpinit_net::KernelLinks
    }
    fn dhcp(&self, iface: &str, mac: [u8; 6], deadline: Instant) -> Result<Lease, NetError> {
        alpinit_net::dhcp(iface, mac, deadline)
    }
    fn apply(&self, lease: &Lease) -> Result<(), NetError> {
        alpinit_net::apply(lease)
    }
    fn fetch(
        &self,
        url: &str,
        resolvers: &[Ipv4Addr],
        opts: &FetchOptions,
        sink: &mut dyn Write,
    ) -> Result<u64, FetchError> {
        alpinit_net::fetch(url, resolvers, opts, sink)
    }
    fn resolve(
        &self,
        host: &str,
        resolvers: &[Ipv4Addr],
        deadline: Instant,
    ) -> Result<Ipv4Addr, alpinit_net::DnsError> {
        alpinit_net::resolve(host, resolvers, deadline)
    }
    fn nbd_attach(
        &self,
        server: std::net::SocketAddr,
        index: u32,
        timeout: Duration,
    ) -> Result<u64, alpinit_nbd::NbdError> {
        let (stream, export) = alpinit_nbd::connect_tcp(server, "", timeout)?;
        alpinit_nbd::attach(std::os::fd::AsFd::as_fd(&stream), index, &export)?;
        // The kernel holds its own reference to the socket now.
        drop(stream);
        Ok(export.size)
    }
}

pub struct KernelSpawn;

impl Spawn for KernelSpawn {
    fn run(
        &self,
        prog: &Path,
        args: &[String],
        env: &[(&str, &str)],
        stdin: Stdin<'_>,
    ) -> io::Result<ExitStatus> {
        let mut cmd = Command::new(prog);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(match stdin {
            Stdin::Inherit => Stdio::inherit(),
            Stdin::Null => Stdio::null(),
            Stdin::Bytes(_) => Stdio::piped(),
        });
        let mut child = cmd.spawn()?;
        if let (Some(mut pipe), Stdin::Bytes(bytes)) = (child.stdin.take(), stdin) {
            // A child that exits early closes the pipe: its status says why.
            let _ = pipe.write_all(bytes);
        }
        child.wait()
    }

    fn start(&self, prog: &Path, args: &[String]) -> io::Result<()> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(prog);
        cmd.args(args).stdin(Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls setsid(2), which is async-signal-safe and touches no
        // memory shared with the parent.
        unsafe {
            cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
        }
        // Not waited for: PID 1's reaping collects it when it exits.
        cmd.spawn().map(drop)
    }

    fn reap(&self) {
        crate::reap::reap_zombies();
    }

    fn run_bounded(
        &self,
        prog: &Path,
        args: &[String],
        limit: Duration,
    ) -> io::Result<super::Bounded> {
        bounded(prog, args, limit)
    }
}

/// Reads what the non-blocking `pipe` holds into `out` (up to
/// [`super::BOUNDED_OUTPUT`]); false once it reached end of file.
fn drain(pipe: &mut std::process::ChildStdout, out: &mut Vec<u8>) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                let room = super::BOUNDED_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// [`Spawn::run_bounded`]: the pipe is read without blocking between exit
/// checks, so neither a silent child nor a grandchild that keeps the pipe
/// open (mdadm may fork mdmon) can hold PID 1 past `limit`.
fn bounded(prog: &Path, args: &[String], limit: Duration) -> io::Result<super::Bounded> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + limit;
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take();
    if let Some(pipe) = &out {
        use std::os::fd::AsRawFd;
        fcntl(pipe.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    }
    let mut stdout = Vec::new();
    loop {
        let open = out.as_mut().is_some_and(|pipe| drain(pipe, &mut stdout));
        if !open {
            out = None;
        }
        if let Some(status) = child.try_wait()? {
            // What it wrote just before exiting.
            if let Some(pipe) = out.as_mut() {
                drain(pipe, &mut stdout);
            }
            return Ok(super::Bounded {
                status: Some(status),
                stdout,
            });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(super::Bounded {
                status: None,
                stdout,
            });
        }
        // Wake on output or after 20 ms to check whether the child exited.
        match &out {
            Some(pipe) => {
                let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(20u8));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

pub struct KernelConsole;

impl Console for KernelConsole {
    fn read_secret(&self, prompt: &str) -> Option<Vec<u8>> {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let stdin = io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        }
        crate::log::console(prompt);
        let mut line = String::new();
        let n = stdin.lock().read_line(&mut line).ok();
        if let Some(t) = &saved {
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
        }
        crate::log::console("\n");
        match n {
            Some(0) | None => None,
            Some(_) => Some(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec()),
        }
    }

    fn probe_tty(&self, dev: &Path) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOCTTY: PID 1 must not take the line as its controlling tty;
        // O_NONBLOCK: a modem line without carrier must not block the open.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(dev)?;
        nix::sys::termios::tcgetattr(&f)?;
        Ok(())
    }

    fn set_console(&self, dev: &Path) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(dev)?;
        // SAFETY: TIOCCONS takes no argument; the descriptor is open for
        // the duration of the call.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCCONS) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn load_keymap(&self, entries: &[crate::keymap::KbEntry]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        /// `KDSKBENT` and `KDGKBTYPE` of the kernel's linux/kd.h.
        const KDSKBENT: libc::c_ulong = 0x4B47;
        const KDGKBTYPE: libc::c_ulong = 0x4B33;
        let is_console = |fd: i32| {
            let mut kind: libc::c_char = 0;
            // SAFETY: KDGKBTYPE writes one char through the pointer, which
            // points at a live local.
            unsafe { libc::ioctl(fd, KDGKBTYPE as _, &mut kind as *mut libc::c_char) == 0 }
        };
        // The candidates busybox's get_console_fd_or_die tries, minus the
        // ones that would give PID 1 a controlling tty.
        let console = ["/dev/tty0", "/dev/console"]
            .iter()
            .filter_map(|p| {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOCTTY)
                    .open(p)
                    .ok()
            })
            .find(|f| is_console(f.as_raw_fd()))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "no virtual console (tty0, console)",
                )
            })?;
        let mut refused = 0;
        for e in entries {
            let mut ke = *e;
            // SAFETY: KDSKBENT reads one `struct kbentry`, which KbEntry
            // mirrors with #[repr(C)]; the pointer is to a live local.
            let rc = unsafe {
                libc::ioctl(
                    console.as_raw_fd(),
                    KDSKBENT as _,
                    &mut ke as *mut crate::keymap::KbEntry,
                )
            };
            if rc < 0 {
                refused += 1;
            }
        }
        Ok(refused)
    }
}

pub struct KernelExec;

impl Exec for KernelExec {
    fn switch_root(
        &self,
        sys: &dyn Sys,
        layout: &crate::layout::Layout,
        init: &str,
        args: &[String],
        console: Option<&str>,
    ) -> Result<(), crate::handover::HandoverError> {
        Err(crate::handover::switch_root(
            sys, layout, init, args, console,
        ))
    }

    fn sync(&self) {
        nix::unistd::sync();
    }
}

pub struct KernelClock;

impl Clock for KernelClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

pub struct KernelSysfs;

impl Sysfs for KernelSysfs {
    fn write_attr(&self, path: &Path, value: &str) -> io::Result<()> {
        // No O_CREAT: an attribute the kernel does not have is an error,
        // never a new file.
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(value.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, limit: Duration) -> (super::super::Bounded, Duration) {
        let started = Instant::now();
        let ran = bounded(
            Path::new("/bin/sh"),
            &["-c".to_owned(), script.to_owned()],
            limit,
        )
        .unwrap();
        (ran, started.elapsed())
    }

    #[test]
    fn bounded_run_returns_status_and_stdout() {
        let (ran, _) = sh("echo active; exit 3", Duration::from_secs(10));
        assert_eq!(ran.status.and_then(|s| s.code()), Some(3));
        assert_eq!(ran.stdout, b"active\n");
    }

    /// A hung helper (lvm on a device that stopped answering) is killed at
    /// its limit instead of holding PID 1.
    #[test]
    fn bounded_run_kills_a_hung_helper_at_the_limit() {
        let (ran, took) = sh("echo started; sleep 30", Duration::from_millis(300));
        assert!(ran.status.is_none());
        assert_eq!(ran.stdout, b"started\n");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    /// A grandchild that keeps stdout open (mdadm forking mdmon) does not
    /// keep the run going once the helper itself exited.
    #[test]
    fn bounded_run_ends_when_the_helper_exits_though_a_daemon_holds_the_pipe() {
        let (ran, took) = sh("sleep 30 & echo done", Duration::from_secs(20));
        assert_eq!(ran.status.and_then(|s| s.code()), Some(0));
        assert_eq!(ran.stdout, b"done\n");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn bounded_run_keeps_at_most_the_output_bound() {
        let (ran, _) = sh("head -c 200000 /dev/zero", Duration::from_secs(20));
        assert_eq!(ran.stdout.len(), super::super::BOUNDED_OUTPUT);
    }
}
