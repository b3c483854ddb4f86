//! The syscall seam: inserting one module image into the kernel.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::image::read_file_image;

/// The syscall seam so tests can record instead of loading.
pub trait Insmod: Send + Sync {
    /// Load one module image. Ok(()) also when the kernel says EEXIST.
    fn insmod(&self, name: &str, image: &[u8], params: &str) -> io::Result<()>;

    /// Load one plain (uncompressed) module file. By default its contents go to
    /// [`Insmod::insmod`]; the kernel reads the file itself instead ([`KernelInsmod`]).
    fn insmod_file(&self, name: &str, file: &File, params: &str) -> io::Result<()> {
        self.insmod(name, &read_file_image(file)?, params)
    }

    /// Runs `insert` while the kernel refuses its own module requests at once instead of
    /// running its `modprobe` helper ([`KernelInsmod`] empties `kernel.modprobe` for the
    /// call and puts it back after), for a module whose initialisation makes only requests
    /// no module can answer ([`crate::FUTILE_REQUESTS_AFTER`]). By default `insert` just
    /// runs. The loader inserts nothing else meanwhile.
    fn refusing_requests(&self, insert: &mut dyn FnMut() -> io::Result<()>) -> io::Result<()> {
        insert()
    }
}

/// The kernel's module request helper (`CONFIG_MODPROBE_PATH`; `kernel.modprobe`). Empty,
/// `request_module` returns ENOENT without running anything (`__request_module` in
/// `kernel/module/kmod.c`).
pub const MODPROBE_SYSCTL: &str = "/proc/sys/kernel/modprobe";

/// Runs `insert` with the helper named in `sysctl` emptied, then puts it back. With no such
/// file, or no helper set, or the file not writable, `insert` runs as it is.
fn without_helper(sysctl: &Path, insert: &mut dyn FnMut() -> io::Result<()>) -> io::Result<()> {
    let saved = match std::fs::read(sysctl) {
        Ok(saved) if !saved.trim_ascii().is_empty() => saved,
        _ => return insert(),
    };
    if std::fs::write(sysctl, b"\n").is_err() {
        return insert();
    }
    let _restore = RestoreHelper {
        sysctl,
        saved: &saved,
    };
    insert()
}

/// Puts `kernel.modprobe` back when dropped, also when the insertion panicked: the new
/// root's own module requests need it.
struct RestoreHelper<'a> {
    sysctl: &'a Path,
    saved: &'a [u8],
}

impl Drop for RestoreHelper<'_> {
    fn drop(&mut self) {
        // A failed write is retried once; there is nothing else to fall back to.
        if std::fs::write(self.sysctl, self.saved).is_err() {
            let _ = std::fs::write(self.sysctl, self.saved);
        }
    }
}

/// Loads modules with finit_module(2) from plain files, init_module(2) from images.
///
/// A plain `.ko` goes to finit_module: the kernel reads it from the file, where reading it
/// here first cost a copy into a growing buffer, its page faults and a second copy by
/// init_module (2 MB for ext4; README, "The critical path first"). Compressed modules are
/// decompressed here and go to
/// init_module: the kernels this targets may lack in-kernel decompression
/// (CONFIG_MODULE_DECOMPRESS). A kernel without finit_module (ENOSYS) gets the file's
/// contents through init_module.
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelInsmod;

fn params_cstring(params: &str) -> io::Result<CString> {
    CString::new(params).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "module parameters contain a NUL byte",
        )
    })
}

/// Ok for success and for EEXIST (already loaded), else the errno.
fn module_result(rc: libc::c_long) -> io::Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EEXIST) => Ok(()),
        _ => Err(err),
    }
}

impl Insmod for KernelInsmod {
    fn refusing_requests(&self, insert: &mut dyn FnMut() -> io::Result<()>) -> io::Result<()> {
        without_helper(Path::new(MODPROBE_SYSCTL), insert)
    }

    fn insmod_file(&self, name: &str, file: &File, params: &str) -> io::Result<()> {
        let c_params = params_cstring(params)?;
        // SAFETY: the descriptor is open for the whole call (`file` is borrowed) and `params`
        // is a NUL-terminated string that outlives it; flags 0 asks for no special handling.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                file.as_raw_fd(),
                c_params.as_ptr(),
                0 as libc::c_uint,
            )
        };
        match module_result(rc) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                self.insmod(name, &read_file_image(file)?, params)
            }
            other => other,
        }
    }

    fn insmod(&self, _name: &str, image: &[u8], params: &str) -> io::Result<()> {
        let params = params_cstring(params)?;
        // SAFETY: `image` is a live slice whose pointer and length are passed together, and
        // `params` is a NUL-terminated string that outlives the call; the kernel copies both
        // and keeps no reference after returning.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_init_module,
                image.as_ptr().cast::<libc::c_void>(),
                image.len() as libc::c_ulong,
                params.as_ptr(),
            )
        };
        module_result(rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const HELPER: &str = "/sbin/modprobe\n";

    /// A stand-in for `kernel.modprobe` naming the usual helper.
    fn helper_file(dir: &Path) -> PathBuf {
        let sysctl = dir.join("modprobe");
        std::fs::write(&sysctl, HELPER).unwrap();
        sysctl
    }

    fn assert_put_back(sysctl: &Path) {
        assert_eq!(std::fs::read_to_string(sysctl).unwrap(), HELPER);
    }

    #[test]
    fn helper_is_emptied_for_the_insertion_and_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let sysctl = helper_file(dir.path());
        let mut seen = String::new();
        without_helper(&sysctl, &mut || {
            seen = std::fs::read_to_string(&sysctl)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, "\n");
        assert_put_back(&sysctl);
    }

    #[test]
    fn helper_is_put_back_after_a_failed_or_panicking_insertion() {
        let dir = tempfile::tempdir().unwrap();
        let sysctl = helper_file(dir.path());
        let err = without_helper(&sysctl, &mut || {
            Err(io::Error::from_raw_os_error(libc::ENOEXEC))
        });
        assert_eq!(err.unwrap_err().raw_os_error(), Some(libc::ENOEXEC));
        assert_put_back(&sysctl);
        let panicked = std::panic::catch_unwind(|| {
            let _ = without_helper(&sysctl, &mut || panic!("insertion bug"));
        });
        assert!(panicked.is_err());
        assert_put_back(&sysctl);
    }

    #[test]
    fn no_helper_file_or_none_set_leaves_things_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let mut ran = 0;
        without_helper(&missing, &mut || {
            ran += 1;
            Ok(())
        })
        .unwrap();
        assert!(!missing.exists());
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        without_helper(&empty, &mut || {
            ran += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&empty).unwrap(), "\n");
        assert_eq!(ran, 2);
    }
}
