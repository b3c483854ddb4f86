//! Encrypted overlays: ask for the password on the console (echo off, three
//! attempts like Alpine), detect a wrong one before anything is written.

use crate::log;
use crate::overlay::OverlayError;
use alpinit_apkovl::enc::{self, Cipher, EncError};
use alpinit_apkovl::{Limits, UnpackReport};
use std::io::{BufRead, Write};
use std::path::Path;

const ATTEMPTS: usize = 3;

fn read_password(prompt: &str) -> Option<Vec<u8>> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    log::console(prompt);
    let mut line = String::new();
    let n = stdin.lock().read_line(&mut line).ok();
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
    }
    log::console("\n");
    match n {
        Some(0) | None => None,
        Some(_) => Some(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec()),
    }
}

pub fn unpack_encrypted(
    path: &Path,
    cipher: Cipher,
    sysroot: &Path,
    limits: &Limits,
) -> Result<UnpackReport, OverlayError> {
    log::console("\x07");
    let name = path.display().to_string();
    for attempt in 1..=ATTEMPTS {
        let Some(pw) = read_password(&format!("Enter password for {name}: ")) else {
            return Err(OverlayError::NoPassword(name));
        };
        match enc::detect_digest(path, cipher, &pw) {
            Ok(digest) => {
                let open = || {
                    let f = std::fs::File::open(path)?;
                    enc::decrypt_reader(f, cipher, digest, &pw).map_err(|e| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
                    })
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
