//! Signed overlays (README "Signed overlays"): when the image carries public
//! keys in `/etc/alpinit/keys/*.pem`, an overlay is accepted only with a
//! detached signature that one of them verifies, checked on the file as
//! stored (encrypted or not) before anything decrypts or unpacks it.
//!
//! Signatures are RSA PKCS#1 v1.5 over SHA-256 (`openssl dgst -sha256 -sign`)
//! or Ed25519 (`openssl pkeyutl -sign -rawin`), verified with `ring`. It is a
//! dependency of the init in every build, not only with `https`: an image
//! with keys must never boot an unsigned overlay because the init was built
//! without the crypto.

pub mod pem;
#[cfg(test)]
pub(crate) mod testkeys;

use crate::log;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where the image keeps the keys.
pub const KEYS_DIR: &str = "/etc/alpinit/keys";
/// Key files read at most: the directory is the image's, but a bound keeps
/// PID 1's work finite whatever is there.
const MAX_KEYS: usize = 64;
/// An RSA-8192 signature is 1024 bytes, Ed25519 64.
pub const MAX_SIG_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot read the key directory {path}: {source}")]
    KeyDir { path: PathBuf, source: io::Error },
    #[error("cannot read the signature {path}: {source}")]
    SigRead { path: PathBuf, source: io::Error },
    #[error("the signature {path} is missing")]
    SigMissing { path: PathBuf },
    #[error("the signature {path} is over {MAX_SIG_BYTES} bytes, larger than any signature")]
    SigTooLarge { path: PathBuf },
    #[error("cannot download the signature")]
    SigDownload {
        url: String,
        /// Boxed: with `https` the TLS errors make it large.
        #[source]
        source: Box<alpinit_net::FetchError>,
    },
    #[error("cannot read {path} to check its signature: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("no key in {KEYS_DIR} could be read, so no signature can be valid")]
    NoUsableKey,
    #[error(
        "the signature {sig} does not match {path} with any of the {keys} keys in {KEYS_DIR} \
         (signed by another key, or the file was changed after signing)"
    )]
    Invalid {
        path: PathBuf,
        sig: String,
        keys: usize,
    },
}

/// The image's keys. `None` from [`Keys::load`] means there are none: the
/// overlay is taken without a signature, as before.
#[derive(Debug)]
pub struct Keys {
    keys: Vec<(String, pem::PublicKey)>,
}

impl Keys {
    /// Keys are configured but none can be used: every signature is invalid.
    pub fn none_usable() -> Keys {
        Keys { keys: Vec::new() }
    }

    /// Reads `dir/*.pem` (regular files, name order). A key that cannot be
    /// read or parsed is said and skipped; it still counts as "the image has
    /// keys", so a broken key file never turns the check off.
    pub fn load(dir: &Path) -> Result<Option<Keys>, SignatureError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SignatureError::KeyDir {
                    path: dir.to_owned(),
                    source,
                })
            }
        };
        // The image is trusted: a key may be a symlink (as alpine-keys
        // installs apk's), so entries are taken by name and read through.
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".pem"))
            .take(MAX_KEYS)
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        alpinit_sort::sort(&mut names);
        let mut keys = Vec::new();
        for name in names {
            let path = dir.join(&name);
            match read_key(&path) {
                Ok(text) => match pem::parse(&text) {
                    Ok(k) => keys.push((name, k)),
                    Err(e) => log::warn(&format!("key {}: {e}; not used", path.display())),
                },
                Err(e) => log::warn(&format!("key {}: {e}; not used", path.display())),
            }
        }
        Ok(Some(Keys { keys }))
    }

    /// Checks `sig` over `data`; returns the name of the key file that
    /// verifies it. `path` and `sig_name` are for the message.
    pub fn verify(
        &self,
        path: &Path,
        data: &[u8],
        sig_name: &str,
        sig: &[u8],
    ) -> Result<&str, SignatureError> {
        use ring::signature::{UnparsedPublicKey, ED25519, RSA_PKCS1_2048_8192_SHA256};
        if self.keys.is_empty() {
            return Err(SignatureError::NoUsableKey);
        }
        for (name, key) in &self.keys {
            let ok = match key.algorithm {
                pem::Algorithm::RsaSha256 => {
                    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.key).verify(data, sig)
                }
                pem::Algorithm::Ed25519 => {
                    UnparsedPublicKey::new(&ED25519, &key.key).verify(data, sig)
                }
            };
            if ok.is_ok() {
                return Ok(name);
            }
        }
        Err(SignatureError::Invalid {
            path: path.to_owned(),
            sig: sig_name.to_owned(),
            keys: self.keys.len(),
        })
    }

    /// Checks the overlay file `path` against `sig` (the bytes of its
    /// detached signature, named `sig_name` in messages).
    /// `shown` is how messages name `path` (the path the user knows).
    pub fn verify_file(
        &self,
        path: &Path,
        shown: &Path,
        sig_name: &str,
        sig: &[u8],
    ) -> Result<String, SignatureError> {
        let map = Mapped::open(path).map_err(|source| SignatureError::Read {
            path: shown.to_owned(),
            source,
        })?;
        self.verify(shown, map.bytes(), sig_name, sig)
            .map(str::to_owned)
    }
}

fn with_sig_suffix(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(alpinit_apkovl::SIG_SUFFIX);
    PathBuf::from(name)
}

/// `.X.sig`, the hidden name of `X`'s signature in the same directory.
fn hidden_sig(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    hidden.push(alpinit_apkovl::SIG_SUFFIX);
    Some(path.with_file_name(hidden))
}

/// The detached signature of `X`: `X.sig` beside it or, when that does not
/// exist, the hidden `.X.sig` (a name `lbu`'s `*.apkovl.tar.gz*` and backup
/// globs never list, so `lbu commit` works unchanged beside it). At most
/// [`MAX_SIG_BYTES`]. Returns its name as messages show it (`shown` is how
/// they name `X`) and its bytes; a missing signature is named as `X.sig`.
pub fn read_sig_beside(path: &Path, shown: &Path) -> Result<(PathBuf, Vec<u8>), SignatureError> {
    let (mut sig, mut named) = (with_sig_suffix(path), with_sig_suffix(shown));
    if std::fs::symlink_metadata(&sig).is_err() {
        if let (Some(h), Some(hn)) = (hidden_sig(path), hidden_sig(shown)) {
            if std::fs::symlink_metadata(&h).is_ok() {
                (sig, named) = (h, hn);
            }
        }
    }
    match read_capped(&sig, MAX_SIG_BYTES + 1) {
        Ok(b) if b.len() as u64 > MAX_SIG_BYTES => Err(SignatureError::SigTooLarge { path: named }),
        Ok(b) => Ok((named, b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SignatureError::SigMissing {
            path: with_sig_suffix(shown),
        }),
        Err(source) => Err(SignatureError::SigRead {
            path: named,
            source,
        }),
    }
}

/// A key file of the image, symlinks followed, capped one byte over what
/// [`pem::parse`] accepts so an oversized file is reported as such.
fn read_key(path: &Path) -> io::Result<Vec<u8>> {
    let f = File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut out = Vec::new();
    f.take(pem::MAX_PEM_BYTES as u64 + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Reads at most `cap` bytes of the regular file `path` (symlinks not followed).
fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut out = Vec::new();
    f.take(cap).read_to_end(&mut out)?;
    Ok(out)
}

/// A read-only private mapping of a whole file: `ring` verifies a message
/// held in memory, and the page cache already holds the file, so mapping it
/// costs no second copy on PID 1's heap whatever the overlay's size.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    fn open(path: &Path) -> io::Result<Mapped> {
        let f = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let len = usize::try_from(meta.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too large to map"))?;
        if len == 0 {
            return Ok(Mapped {
                ptr: std::ptr::null_mut(),
                len: 0,
            });
        }
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh read-only private mapping of an open regular file
        // of `len` bytes; the result is checked for MAP_FAILED below and
        // unmapped once in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` is a live PROT_READ mapping of `len` bytes owned by
        // self (unmapped only in Drop). The files mapped are on media
        // mounted read-only or in the init's own /tmp, so nothing truncates
        // them while the slice is in use.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: `ptr`/`len` are exactly what mmap returned; no slice
            // from `bytes` outlives `self`.
            unsafe {
                libc::munmap(self.ptr, self.len);
            }
        }
    }
}

/// Fuzz entry point: parses a key file.
pub fn fuzz_pem(data: &[u8]) {
    let _ = pem::parse(data);
}

#[cfg(test)]
mod tests;
