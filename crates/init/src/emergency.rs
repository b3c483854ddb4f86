//! The emergency path: Alpine's `recovery_shell`, `panic=`, and the panic hook.
//!
//! Policy (the same for every cause): print what failed, then
//! - with `panic=` on the command line: exit, so the kernel panics and its own
//!   `panic=N` timer reboots the machine;
//! - otherwise: run `/bin/busybox sh` on the console when the image has it
//!   and continue the boot when it exits (Alpine's behaviour);
//! - with no shell in the image: say so and wait forever, so the message stays
//!   on the screen instead of a kernel panic scrolling it away.

use crate::log;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

static PANIC_ON_FAILURE: AtomicBool = AtomicBool::new(false);
static SHELL_ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
static SHELL_RUNNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn configure(panic_on_failure: bool, root: &Path) {
    PANIC_ON_FAILURE.store(panic_on_failure, Ordering::SeqCst);
    let _ = SHELL_ROOT.set(root.to_owned());
}

fn shell_path() -> PathBuf {
    SHELL_ROOT
        .get()
        .map_or_else(|| PathBuf::from("/"), Clone::clone)
        .join("bin/busybox")
}

/// Alpine's `recovery_shell [msg]`: returns when the shell exits.
pub fn recovery_shell(msg: &str) {
    park_if_another_thread_panicked();
    if PANIC_ON_FAILURE.load(Ordering::SeqCst) {
        log::error("panic= is set: giving up so the kernel panics");
        std::process::exit(1);
    }
    let shell = shell_path();
    log::console("Launching initramfs emergency recovery shell.\n");
    log::console(&format!("{msg}\n"));
    if !is_executable(&shell) {
        log::error("no recovery shell in this image (/bin/busybox is missing); halting here");
        log::console("No recovery shell in this image (/bin/busybox is missing). System halted.\n");
        loop {
            // SAFETY: pause() just sleeps until a signal arrives.
            unsafe { libc::pause() };
            crate::reap::reap_zombies();
        }
    }
    // One shell on the console at a time: a thread that panics while the
    // main thread's shell runs waits for it to exit.
    let _console = SHELL_RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match Command::new(&shell).arg("sh").env("PS1", "~ # ").status() {
        Ok(_) => {}
        Err(e) => log::error(&format!("starting {}: {e}", shell.display())),
    }
    crate::reap::reap_zombies();
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

static PANICKED_THREAD: std::sync::OnceLock<std::thread::ThreadId> = std::sync::OnceLock::new();

/// Once a thread (say a module-loader worker, in a build that aborts on
/// panic) has hit a bug and runs the recovery shell from the panic hook,
/// the main thread must neither start a second shell nor carry the boot on
/// (an exec would take the shell away from the user): it stops here.
pub fn park_if_another_thread_panicked() {
    let me = std::thread::current().id();
    if PANICKED_THREAD.get().is_some_and(|t| *t != me) {
        log::error("another thread hit an internal error; this one stops here");
        loop {
            std::thread::park();
        }
    }
}

/// Installed first thing: a bug in the init must not become a kernel panic
/// without a word, nor leave the user without a shell. Only the first
/// panicking thread (the main one or a module-loader worker) starts the
/// shell; a second panicking thread logs and parks for good, so there is
/// never a second recovery shell on the console.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        // The OnceLock alone decides which thread is first.
        if PANICKED_THREAD.set(std::thread::current().id()).is_err() {
            log::error(&format!(
                "internal error (another thread already failed): {info}"
            ));
            loop {
                std::thread::park();
            }
        }
        log::error(&format!("internal error: {info}"));
        log::console(&format!("alpinit: internal error: {info}\n"));
        loop {
            recovery_shell("The init hit an internal error; the boot cannot continue. Type exit to retry the shell.");
        }
    }));
}
