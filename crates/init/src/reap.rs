//! PID 1 adopts orphans; collect them so they do not pile up as zombies.

/// Reaps every exited child without blocking.
pub fn reap_zombies() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG only writes the status integer we own.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}
