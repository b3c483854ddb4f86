//! The failure policy, in one place (README "When something fails").
//!
//! Every phase that can fail returns a [`Failure`]; [`Policy::handle`] prints
//! it once with its whole cause chain, then either gives up (`panic=`), halts
//! (no shell in the image), or runs the recovery shell and lets the boot go
//! on. What the boot does after the shell is decided in `boot.rs`, next to
//! the phase that failed.

use crate::layout::Layout;
use crate::log;
use crate::platform::{Platform, Stdin};
use std::error::Error;
use std::path::{Path, PathBuf};

/// How a boot ended without handing over (or, with the fake, after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The new root's init was started (the fake platform returns here).
    SwitchedRoot,
    /// `panic=`: PID 1 exits so the kernel panics (and reboots).
    GaveUp,
    /// No recovery shell in the image: the message stays on the console.
    Halted,
}

/// Everything the boot reacts to with the recovery shell.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Early(#[from] crate::early::EarlyError),
    #[error("No boot media found: none of the {block_devices} block devices seen holds an apkovl (*.apkovl.tar.gz*) or a boot repository (.boot_repository).")]
    NoMedia { block_devices: usize },
    #[error(transparent)]
    Sysroot(#[from] crate::sysroot::SysrootError),
    #[error("The overlay {shown} was rejected; nothing of it was applied")]
    OverlayRejected {
        shown: String,
        #[source]
        source: crate::overlay::OverlayError,
    },
    #[error(transparent)]
    AmbiguousDevice(#[from] crate::devices::DeviceError),
    #[error(transparent)]
    Root { source: crate::rootfs::RootError },
    #[error(transparent)]
    Usr {
        source: crate::root_mode::usr::UsrError,
    },
    #[error(transparent)]
    Crypt { source: crate::crypt::CryptError },
    #[error(transparent)]
    Init {
        source: crate::handover::HandoverError,
    },
    #[error("switch_root failed")]
    SwitchRoot {
        #[source]
        source: crate::handover::HandoverError,
    },
    #[error("The init hit an internal error; the boot cannot continue")]
    Internal,
    #[error("Entering single mode")]
    Single,
}

impl Failure {
    /// The phase's progress line already printed the cause chain (console
    /// and kernel log): the policy then says only the summary, so every
    /// cause is shown once.
    fn cause_said(&self) -> bool {
        matches!(
            self,
            Failure::OverlayRejected { .. } | Failure::Root { .. } | Failure::Usr { .. }
        )
    }

    /// What typing `exit` in the recovery shell will do.
    pub fn hint(&self) -> &'static str {
        match self {
            Failure::OverlayRejected { .. } | Failure::AmbiguousDevice(_) => {
                "Type exit to boot without it."
            }
            Failure::Root { .. } | Failure::Crypt { .. } => "Type exit to try again.",
            Failure::Init { .. }
            | Failure::Early(_)
            | Failure::NoMedia { .. }
            | Failure::Usr { .. }
            | Failure::Sysroot(_) => "Type exit to continue boot.",
            Failure::Single => "Type 'exit' to continue booting.",
            Failure::Internal => "Type exit to retry the shell.",
            Failure::SwitchRoot { .. } => "Type exit to retry switch_root.",
        }
    }
}

/// `err` and its causes, each said once: a cause whose text the message
/// before it already ends with (`"...: {source}"` formats) is not repeated.
pub fn chain(err: &dyn Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}

/// A phase's result that is usable even when it failed (the findings of a
/// discovery that found nothing, the overlay phase without an overlay).
pub type Partial<T> = Result<T, Box<(T, Failure)>>;

/// What to do on failure: Alpine's `recovery_shell` or `panic=`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub panic: bool,
    shell: PathBuf,
    /// The shell's PATH ([`crate::early::shell_path`]).
    path: String,
}

impl Policy {
    pub fn new(layout: &Layout) -> Self {
        Self {
            panic: false,
            shell: layout.path("/bin/busybox"),
            path: crate::early::shell_path(std::env::var("PATH").ok().as_deref()),
        }
    }

    /// Says what failed (kernel log and console, once), then gives up,
    /// halts or runs the recovery shell. `Ok` means the shell exited and
    /// the boot goes on.
    pub fn handle(&self, p: &Platform<'_>, failure: &Failure) -> Result<(), End> {
        if !matches!(failure, Failure::Internal) {
            crate::emergency::park_if_another_thread_panicked();
        }
        if matches!(failure, Failure::Single) {
            return self.single(p);
        }
        let why = if failure.cause_said() {
            failure.to_string()
        } else {
            chain(failure)
        };
        if !matches!(failure, Failure::Single | Failure::Internal) {
            log::error(&why);
        }
        if self.panic {
            log::error("panic= is set: giving up so the kernel panics");
            return Err(End::GaveUp);
        }
        log::console("Launching initramfs emergency recovery shell.\n");
        let stop = if why.ends_with('.') { "" } else { "." };
        log::console(&format!("{why}{stop} {}\n", failure.hint()));
        if !is_executable(&self.shell) {
            log::error("no recovery shell in this image (/bin/busybox is missing); halting here");
            log::console(
                "No recovery shell in this image (/bin/busybox is missing). System halted.\n",
            );
            return Err(End::Halted);
        }
        self.shell(p);
        Ok(())
    }

    /// `single` asks for a shell: it is no failure, so `panic=` does not
    /// apply, as in Alpine's init (`echo "Entering single mode..."; sh`).
    /// Without a shell in the image the boot just goes on.
    fn single(&self, p: &Platform<'_>) -> Result<(), End> {
        log::console(&format!(
            "Entering single mode. {}\n",
            Failure::Single.hint()
        ));
        if is_executable(&self.shell) {
            self.shell(p);
        } else {
            log::warn("single: no shell in this image (/bin/busybox is missing); booting on");
        }
        Ok(())
    }

    fn shell(&self, p: &Platform<'_>) {
        let _console = crate::emergency::console_for_shell();
        if let Err(e) = p.spawn.run(
            &self.shell,
            &["sh".to_owned()],
            &[("PS1", "~ # "), ("PATH", &self.path)],
            Stdin::Inherit,
        ) {
            log::error(&format!("starting {}: {e}", self.shell.display()));
        }
        p.spawn.reap();
    }
}

impl Policy {
    /// [`Policy::handle`] for a [`Partial`] result: after the shell the
    /// boot goes on with what the phase had.
    pub fn recover<T>(&self, p: &Platform<'_>, r: Partial<T>) -> Result<T, End> {
        r.or_else(|b| {
            let (value, failure) = *b;
            self.handle(p, &failure).map(|()| value)
        })
    }
}

pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect to 10.0.2.2:80")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("mounting /dev/sda1: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn chain_shows_every_cause_once() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let text = refused.to_string();
        assert_eq!(
            chain(&Outer(refused)),
            format!("cannot connect to 10.0.2.2:80: {text}")
        );
        let e = Repeats(std::io::Error::from_raw_os_error(libc::EINVAL));
        assert_eq!(
            chain(&e),
            e.to_string(),
            "the cause is already in the message"
        );
    }
}
