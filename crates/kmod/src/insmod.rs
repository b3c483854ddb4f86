//! The syscall seam: inserting one module image into the kernel.

use std::ffi::CString;
use std::io;

/// The syscall seam so tests can record instead of loading.
pub trait Insmod: Send + Sync {
    /// Load one module image. Ok(()) also when the kernel says EEXIST.
    fn insmod(&self, name: &str, image: &[u8], params: &str) -> io::Result<()>;
}

/// Loads modules with init_module(2).
///
/// init_module rather than finit_module: the loader already holds the image in memory for
/// compressed modules, one code path serves plain and compressed files alike, and the kernels
/// this targets may lack in-kernel decompression (CONFIG_MODULE_DECOMPRESS). The extra copy
/// of a plain `.ko` costs well under a millisecond per module.
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelInsmod;

impl Insmod for KernelInsmod {
    fn insmod(&self, _name: &str, image: &[u8], params: &str) -> io::Result<()> {
        let params = CString::new(params).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "module parameters contain a NUL byte",
            )
        })?;
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
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EEXIST) => Ok(()),
            _ => Err(err),
        }
    }
}
