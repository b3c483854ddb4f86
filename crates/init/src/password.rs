//! Encrypted overlays: ask for the password on the console (echo off, three
//! attempts like Alpine), detect a wrong one before anything is written.

use crate::log;
use crate::overlay::OverlayError;
use crate::platform::Console;
use alpinit_apkovl::enc::{self, Cipher, EncError};
use alpinit_apkovl::{Limits, UnpackReport};
use std::io::Write;
use std::path::Path;

const ATTEMPTS: usize = 3;

pub fn unpack_encrypted(
    console: &dyn Console,
    path: &Path,
    cipher: Cipher,
    sysroot: &Path,
    limits: &Limits,
) -> Result<UnpackReport, OverlayError> {
    log::console("\x07");
    let name = path.display().to_string();
    for attempt in 1..=ATTEMPTS {
        let Some(pw) = console.read_secret(&format!("Enter password for {name}: ")) else {
            return Err(OverlayError::NoPassword(name));
        };
        match enc::detect_digest(path, cipher, &pw) {
            Ok(digest) => {
                let open = || {
                    let f = std::fs::File::open(path)?;
                    enc::decrypt_reader(f, cipher, digest, &pw)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                };
                return Ok(alpinit_apkovl::unpack(open, sysroot, limits)?);
            }
            Err(EncError::WrongPassword) if attempt < ATTEMPTS => {
                log::console("Wrong password, try again.\n");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let _ = std::io::stdout().flush();
    Err(OverlayError::Encrypted(EncError::WrongPassword))
}
