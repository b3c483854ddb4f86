//! The platform seam: everything the boot does to the machine or reads from
//! it that is not a plain file under the injected [`crate::layout::Layout`].
//!
//! [`Platform`] bundles one trait object per concern. [`Platform::real`]
//! calls the kernel; the whole-boot tests (`src/tests/whole_boot/`) drive the
//! same boot code with a recording fake. Files under `/proc`, `/sys`, `/dev`
//! and `/media` are read through `Layout` paths, which tests point at a temp
//! tree, so they need no trait.

mod real;

pub use real::{
    KernelClock, KernelConsole, KernelExec, KernelNet, KernelSpawn, KernelSysfs, KernelUevents,
};

use alpinit_kmod::{Insmod, Loader};
use alpinit_net::{FetchError, FetchOptions, Lease, Links, NetError};
use alpinit_sys::Sys;
use alpinit_uevent::{RecvError, SocketError, Uevent};
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The kernel uevent source.
pub trait Uevents: Sync {
    /// Binds the uevent socket with a `buf`-byte receive buffer.
    fn open(&self, buf: usize) -> Result<Box<dyn UeventStream + '_>, SocketError>;
    /// Waits up to `dur` for `stream` (when there is one) to be readable or
    /// the module loader to report progress.
    fn wait(&self, stream: Option<&dyn UeventStream>, loader: &Loader, dur: Duration);
}

/// A bound uevent socket.
pub trait UeventStream {
    /// The next queued event, `Ok(None)` when nothing is queued, or
    /// `RecvError::Overflow` when the kernel dropped events (ENOBUFS).
    fn recv(&self) -> Result<Option<Uevent>, RecvError>;
    /// The descriptor to poll (the real socket only).
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>>;
}

/// Network operations: link state, DHCP, addresses and routes, downloads.
pub trait Net: Sync {
    fn links(&self) -> &dyn Links;
    fn dhcp(&self, iface: &str, mac: [u8; 6], deadline: Instant) -> Result<Lease, NetError>;
    /// Sets the lease's address, routes and link state.
    fn apply(&self, lease: &Lease) -> Result<(), NetError>;
    fn fetch(
        &self,
        url: &str,
        resolvers: &[Ipv4Addr],
        opts: &FetchOptions,
        sink: &mut dyn io::Write,
    ) -> Result<u64, FetchError>;
    /// A host name's IPv4 address, asked of `resolvers`.
    fn resolve(
        &self,
        host: &str,
        resolvers: &[Ipv4Addr],
        deadline: Instant,
    ) -> Result<Ipv4Addr, alpinit_net::DnsError>;
    /// Connects to the NBD server at `server`, negotiates its default
    /// export and hands the connection to the kernel as `/dev/nbd{index}`
    /// (within `timeout`); the export's size in bytes.
    fn nbd_attach(
        &self,
        server: std::net::SocketAddr,
        index: u32,
        timeout: Duration,
    ) -> Result<u64, alpinit_nbd::NbdError>;
}

/// Running programs (apk, the recovery shell) and collecting orphans.
pub trait Spawn: Sync {
    /// Runs `prog args` with extra `env`, feeding `stdin` when given (else
    /// /dev/null for piped runs, the console for interactive ones), and waits.
    fn run(
        &self,
        prog: &Path,
        args: &[String],
        env: &[(&str, &str)],
        stdin: Stdin<'_>,
    ) -> io::Result<ExitStatus>;
    /// Starts `prog args` in a session of its own with stdin on /dev/null
    /// and does not wait: a program that outlives the initramfs (the boot
    /// splash). Its exit is collected by [`Spawn::reap`].
    fn start(&self, prog: &Path, args: &[String]) -> io::Result<()>;
    /// PID 1 adopts orphans: collect the exited ones.
    fn reap(&self);
    /// Runs `prog args` with stdin on /dev/null and stdout captured (at
    /// most [`BOUNDED_OUTPUT`] bytes kept), killing it once `limit` has
    /// passed: a hung helper (lvm, mdadm, zpool) must not hang PID 1.
    fn run_bounded(&self, prog: &Path, args: &[String], limit: Duration) -> io::Result<Bounded>;
}

/// Output kept from a [`Spawn::run_bounded`] helper.
pub const BOUNDED_OUTPUT: usize = 64 * 1024;

/// How a [`Spawn::run_bounded`] helper ended.
#[derive(Debug)]
pub struct Bounded {
    /// `None`: killed at the limit.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
}

/// What a spawned program reads.
#[derive(Debug, Clone, Copy)]
pub enum Stdin<'a> {
    /// The console (interactive: the recovery shell).
    Inherit,
    Null,
    Bytes(&'a [u8]),
}

/// Console input (output goes through [`crate::log`]'s sink).
pub trait Console: Sync {
    /// Prints `prompt` and reads one line with echo off; None at end of input.
    fn read_secret(&self, prompt: &str) -> Option<Vec<u8>>;
    /// Whether `dev` is a terminal that answers (`stty -g -F DEV` succeeds).
    fn probe_tty(&self, dev: &Path) -> io::Result<()>;
    /// Sends console output to `dev` (busybox `setconsole DEV`: TIOCCONS).
    fn set_console(&self, dev: &Path) -> io::Result<()>;
    /// Loads keymap entries with `KDSKBENT` on the virtual console; returns
    /// how many the kernel refused (ignored, as busybox `loadkmap` does).
    fn load_keymap(&self, entries: &[crate::keymap::KbEntry]) -> io::Result<usize>;
}

/// The final step: switch_root and exec.
pub trait Exec: Sync {
    /// Moves the new root onto `/`, chroots and execs `init args`. Only the
    /// fake returns `Ok`; the kernel one returns only on failure.
    fn switch_root(
        &self,
        sys: &dyn Sys,
        layout: &crate::layout::Layout,
        init: &str,
        args: &[String],
        console: Option<&str>,
    ) -> Result<(), crate::handover::HandoverError>;
    /// Flushes file systems before the hand-over.
    fn sync(&self);
}

/// Kernel attributes the boot writes (`/sys/power/resume`).
pub trait Sysfs: Sync {
    /// Writes `value` to the existing attribute file `path` in one write,
    /// as `echo VALUE > PATH` does (the kernel acts on each write).
    fn write_attr(&self, path: &Path, value: &str) -> io::Result<()>;
}

/// Device-mapper: the dm-crypt mapping of an unlocked LUKS volume (the
/// kernel one is `crate::crypt::KernelDm`).
pub trait DeviceMapper: Sync {
    /// Creates, loads and resumes the mapping `name` through the control
    /// device `control`; returns its device number.
    fn create_crypt(
        &self,
        control: &Path,
        name: &str,
        uuid: &str,
        table: &alpinit_luks::dm::CryptTable,
    ) -> Result<(u32, u32), alpinit_luks::dm::DmError>;
}

/// Time, for the waits that depend on it.
pub trait Clock: Sync {
    fn now(&self) -> Instant;
}

/// Everything the boot touches on the machine.
#[derive(Clone, Copy)]
pub struct Platform<'a> {
    pub fs: &'a dyn Sys,
    pub insmod: &'a Arc<dyn Insmod>,
    pub uevents: &'a dyn Uevents,
    pub net: &'a dyn Net,
    pub spawn: &'a dyn Spawn,
    pub console: &'a dyn Console,
    pub exec: &'a dyn Exec,
    pub clock: &'a dyn Clock,
    pub sysfs: &'a dyn Sysfs,
    pub dm: &'a dyn DeviceMapper,
}

/// The kernel-backed parts, owned, for PID 1's [`Platform`].
pub struct Kernel {
    insmod: Arc<dyn Insmod>,
}

impl Default for Kernel {
    fn default() -> Self {
        Self {
            insmod: Arc::new(alpinit_kmod::KernelInsmod),
        }
    }
}

impl Kernel {
    pub fn platform(&self) -> Platform<'_> {
        Platform {
            fs: &alpinit_sys::Kernel,
            insmod: &self.insmod,
            uevents: &KernelUevents,
            net: &KernelNet,
            spawn: &KernelSpawn,
            console: &KernelConsole,
            exec: &KernelExec,
            clock: &KernelClock,
            sysfs: &KernelSysfs,
            dm: &crate::crypt::KernelDm,
        }
    }
}

#[cfg(test)]
pub mod fake;
