//! The syscall seam: inserting one module image into the kernel.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

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
}

/// Loads modules with finit_module(2) from plain files, init_module(2) from images.
///
/// A plain `.ko` goes to finit_module: the kernel reads it from the file, where reading it
/// here first cost a copy into a growing buffer, its page faults and a second copy by
/// init_module; under emulation that was about 60 ms of a root boot's 0.8 s (the closing
/// note of this change has the figures). Compressed modules are decompressed here and go to
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
