//! `cryptkey=`: where the key of the LUKS volume comes from. A file in the image
//! (bare `cryptkey` is `/crypto_keyfile.bin`) or a device (`crate::crypt::find_and_open`
//! waits for it and points `path` at its node), or `EXEC=prog`: the program's standard
//! output, as nlplug-findfs reads it from a pipe (`../shared/reference/alpine-initramfs.md`
//! §2.6.2 step 3); all take `:offset:size`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use super::CryptError;
use crate::platform::{Spawn, BOUNDED_OUTPUT};

/// The bare `cryptkey` (mkinitfs feature `cryptkey`).
pub const DEFAULT_KEY_FILE: &str = "/crypto_keyfile.bin";
/// cryptsetup's default key file size limit.
const MAX_KEY_FILE: u64 = 8 << 20;
/// How long an `EXEC=` key program may run: it gets no console (stdin is
/// /dev/null), so anything longer is a program that hangs, not one waiting
/// for a person.
pub const EXEC_LIMIT: Duration = Duration::from_secs(30);

/// A key: `size` bytes (all without a size) at `offset` of a file or of what a
/// program prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySource {
    /// The key file (or device node), or the program for `EXEC=`.
    pub path: PathBuf,
    /// `EXEC=prog`: run `path`, the key is its standard output. Only this key
    /// is tried: there is no passphrase prompt after it, as in nlplug-findfs.
    pub exec: bool,
    pub offset: u64,
    pub size: Option<u64>,
}

impl KeySource {
    /// `yes` (the bare option), `PATH`, `EXEC=PROG`, each with `:OFFSET:SIZE`.
    pub fn parse(value: &str) -> Result<KeySource, CryptError> {
        if value == "yes" || value.is_empty() {
            return Ok(KeySource {
                path: DEFAULT_KEY_FILE.into(),
                exec: false,
                offset: 0,
                size: None,
            });
        }
        let (exec, rest) = match value.strip_prefix("EXEC=") {
            Some(prog) => (true, prog),
            None => (false, value),
        };
        let mut key = KeySource {
            path: rest.into(),
            exec,
            offset: 0,
            size: None,
        };
        let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
        if let [size, offset, path] = parts[..] {
            if !path.is_empty()
                && offset.bytes().all(|b| b.is_ascii_digit())
                && size.bytes().all(|b| b.is_ascii_digit())
            {
                let num = |s: &str, what| {
                    s.parse::<u64>().map_err(|_| CryptError::KeyField {
                        value: value.to_string(),
                        what,
                    })
                };
                let size = num(size, "the size")?;
                key.path = path.into();
                key.offset = num(offset, "the offset")?;
                // Size 0 is "the whole rest", as cryptsetup's --keyfile-size=0.
                key.size = (size > 0).then_some(size);
            }
        }
        if exec && key.path.as_os_str().is_empty() {
            return Err(CryptError::KeyField {
                value: value.to_string(),
                what: "the program",
            });
        }
        Ok(key)
    }

    /// How the key is named in messages: `/k.bin` or `EXEC=/bin/getkey`.
    pub fn describe(&self) -> String {
        match self.exec {
            true => format!("EXEC={}", self.path.display()),
            false => self.path.display().to_string(),
        }
    }

    /// The key bytes (at most 8 MiB, as cryptsetup), from the image at `root`.
    pub fn read(&self, root: &Path) -> Result<Zeroizing<Vec<u8>>, CryptError> {
        let path = root.join(self.path.strip_prefix("/").unwrap_or(&self.path));
        let err = |source| CryptError::KeyFile {
            path: path.clone(),
            source,
        };
        let mut f = File::open(&path).map_err(err)?;
        f.seek(SeekFrom::Start(self.offset)).map_err(err)?;
        let limit = self.size.unwrap_or(MAX_KEY_FILE).min(MAX_KEY_FILE);
        let mut key = Zeroizing::new(Vec::new());
        f.take(limit).read_to_end(&mut key).map_err(err)?;
        if self.size.is_some_and(|s| (key.len() as u64) < s) {
            return Err(err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "shorter than the size given",
            )));
        }
        Ok(key)
    }

    /// `EXEC=`: runs the program of the image at `root` with no arguments, stdin on
    /// /dev/null, killed after `limit`, at most [`BOUNDED_OUTPUT`] bytes of its
    /// output kept; the key is `size` bytes at `offset` of that output.
    pub fn run(
        &self,
        spawn: &dyn Spawn,
        root: &Path,
        limit: Duration,
    ) -> Result<Zeroizing<Vec<u8>>, CryptError> {
        let prog = root.join(self.path.strip_prefix("/").unwrap_or(&self.path));
        let out = spawn
            .run_bounded(&prog, &[], limit)
            .map_err(|source| CryptError::ExecKey {
                prog: prog.clone(),
                source,
            })?;
        let stdout = Zeroizing::new(out.stdout);
        let fail = |what: String| CryptError::ExecKeyOutput {
            prog: prog.clone(),
            what,
        };
        match out.status {
            None => {
                return Err(fail(format!(
                    "still running after {}s, killed",
                    limit.as_secs_f32()
                )))
            }
            Some(s) if !s.success() => return Err(fail(format!("exited with {s}"))),
            Some(_) => {}
        }
        let start = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let end = match self.size {
            Some(size) => start.saturating_add(usize::try_from(size).unwrap_or(usize::MAX)),
            None => stdout.len(),
        };
        // Output at the cap may have been cut: a key read from it could be wrong.
        if stdout.len() >= BOUNDED_OUTPUT && (self.size.is_none() || end > stdout.len()) {
            return Err(fail(format!(
                "printed more than the {BOUNDED_OUTPUT} bytes kept"
            )));
        }
        if end > stdout.len() || start > end {
            return Err(fail(format!(
                "printed {} bytes, fewer than offset {} and size {}",
                stdout.len(),
                self.offset,
                self.size.unwrap_or(0)
            )));
        }
        Ok(Zeroizing::new(stdout[start..end].to_vec()))
    }
}
