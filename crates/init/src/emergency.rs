//! The panic hook: a bug in the init must not become a kernel panic without
//! a word, nor leave the user without a shell. Every other failure goes
//! through [`crate::failure::Policy`].

use crate::failure::{End, Failure, Policy};
use crate::layout::Layout;
use crate::log;
use crate::platform::Kernel;

/// Installed first thing in PID 1.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::error(&format!("internal error: {info}"));
        log::console(&format!("alpinit: internal error: {info}\n"));
        let kernel = Kernel::default();
        let mut policy = Policy::new(&Layout::new("/"));
        policy.panic = PANIC_ON_FAILURE.load(std::sync::atomic::Ordering::SeqCst);
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

/// PID 1 must not exit: keep the last message on the screen and reap orphans.
pub fn halt() -> ! {
    loop {
        // SAFETY: pause() just sleeps until a signal arrives.
        unsafe { libc::pause() };
        crate::reap::reap_zombies();
    }
}

static PANIC_ON_FAILURE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `panic=` for the panic hook, which runs outside the boot's [`Policy`].
pub fn set_panic_on_failure(on: bool) {
    PANIC_ON_FAILURE.store(on, std::sync::atomic::Ordering::SeqCst);
}
