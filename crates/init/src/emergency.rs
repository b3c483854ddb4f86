//! The panic hook: a bug in the init must not become a kernel panic without
//! a word, nor leave the user without a shell. Every other failure goes
//! through [`crate::failure::Policy`].
//!
//! Threads: only the first panicking thread (the main one or a module-loader
//! worker, in a build that aborts on panic) runs the shell from the hook; a
//! second panicking thread logs and parks for good, and the main thread stops
//! at its next recovery shell or before the hand-over
//! ([`park_if_another_thread_panicked`]), so there is never a second shell on
//! the console and no exec takes the shell away from the user.

use crate::failure::{End, Failure, Policy};
use crate::layout::Layout;
use crate::log;
use crate::platform::Kernel;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;

static PANICKED_THREAD: OnceLock<ThreadId> = OnceLock::new();
static SHELL_RUNNING: Mutex<()> = Mutex::new(());

/// Installed first thing in PID 1.
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
        let kernel = Kernel::default();
        let mut policy = Policy::new(&Layout::new("/"));
        policy.panic = PANIC_ON_FAILURE.load(Ordering::SeqCst);
        loop {
            let shell = policy.handle(&kernel.platform(), &Failure::Internal);
            match shell {
                Err(End::Halted) => halt(),
                Err(_) => std::process::exit(1),
                Ok(()) => {}
            }
        }
    }));
}

/// Once another thread hit a bug and runs the recovery shell from the panic
/// hook, the calling thread neither starts a second shell nor carries the
/// boot on: it stops here.
pub fn park_if_another_thread_panicked() {
    let me = std::thread::current().id();
    if PANICKED_THREAD.get().is_some_and(|t| *t != me) {
        log::error("another thread hit an internal error; this one stops here");
        loop {
            std::thread::park();
        }
    }
}

/// Held while a recovery shell owns the console: a thread that panics while
/// the main thread's shell runs waits for it to exit.
pub fn console_for_shell() -> MutexGuard<'static, ()> {
    SHELL_RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// PID 1 must not exit: keep the last message on the screen and reap orphans.
pub fn halt() -> ! {
    loop {
        // SAFETY: pause() just sleeps until a signal arrives.
        unsafe { libc::pause() };
        crate::reap::reap_zombies();
    }
}

static PANIC_ON_FAILURE: AtomicBool = AtomicBool::new(false);

/// `panic=` for the panic hook, which runs outside the boot's [`Policy`].
pub fn set_panic_on_failure(on: bool) {
    PANIC_ON_FAILURE.store(on, Ordering::SeqCst);
}
