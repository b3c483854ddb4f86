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
    known: &mut Option<Vec<u8>>,
) -> Result<UnpackReport, OverlayError> {
    if let Some(pw) = known.as_deref() {
        // A backup of the overlay whose password was typed already: never ask again.
        let digest = enc::detect_digest(path, cipher, pw)?;
        return unpack_with(path, cipher, digest, pw, sysroot, limits);
    }
    unpack_with_prompt(
        path,
        cipher,
        sysroot,
        limits,
        |prompt| console.read_secret(prompt),
        known,
    )
}

fn unpack_with(
    path: &Path,
    cipher: Cipher,
    digest: enc::Digest,
    pw: &[u8],
    sysroot: &Path,
    limits: &Limits,
) -> Result<UnpackReport, OverlayError> {
    let open = || {
        let f = std::fs::File::open(path)?;
        enc::decrypt_reader(f, cipher, digest, pw)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    };
    Ok(alpinit_apkovl::unpack(open, sysroot, limits)?)
}

/// Only a wrong password is asked for again; any other failure (a damaged file
/// included) ends the attempts at once. A password found right (also for a
/// file damaged at its end) is kept in `known` for the overlay's backups.
fn unpack_with_prompt(
    path: &Path,
    cipher: Cipher,
    sysroot: &Path,
    limits: &Limits,
    mut ask: impl FnMut(&str) -> Option<Vec<u8>>,
    known: &mut Option<Vec<u8>>,
) -> Result<UnpackReport, OverlayError> {
    log::console("\x07");
    let name = path.display().to_string();
    for attempt in 1..=ATTEMPTS {
        let Some(pw) = ask(&format!("Enter password for {name}: ")) else {
            return Err(OverlayError::NoPassword(name));
        };
        match enc::detect_digest(path, cipher, &pw) {
            Ok(digest) => {
                let result = unpack_with(path, cipher, digest, &pw, sysroot, limits);
                *known = Some(pw);
                return result;
            }
            Err(EncError::WrongPassword) if attempt < ATTEMPTS => {
                log::console("Wrong password, try again.\n");
            }
            Err(e @ EncError::Damaged { .. }) => {
                *known = Some(pw);
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let _ = std::io::stdout().flush();
    Err(OverlayError::Encrypted(EncError::WrongPassword))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../apkovl/tests/fixtures")
            .join(name)
    }

    /// Runs the prompt loop with scripted answers; returns the result and the number of
    /// times a password was asked for.
    fn run(path: &Path, answers: &[&str]) -> (Result<UnpackReport, OverlayError>, usize) {
        let root = tempfile::tempdir().unwrap();
        let mut asked = 0;
        let res = unpack_with_prompt(
            path,
            Cipher::Aes256Cbc,
            root.path(),
            &Limits::default(),
            |_| {
                asked += 1;
                answers.get(asked - 1).map(|a| a.as_bytes().to_vec())
            },
            &mut None,
        );
        (res, asked)
    }

    #[test]
    fn damaged_file_is_reported_once_without_asking_again() {
        let dir = tempfile::tempdir().unwrap();
        let full = std::fs::read(fixture("tiny-sha256.apkovl.tar.gz.aes-256-cbc")).unwrap();
        let path = dir.path().join("cut.apkovl.tar.gz.aes-256-cbc");
        std::fs::write(&path, &full[..full.len() - 32]).unwrap();
        let (res, asked) = run(&path, &["alpinit", "alpinit", "alpinit"]);
        let err = res.unwrap_err();
        assert!(
            matches!(err, OverlayError::Encrypted(EncError::Damaged { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("is damaged: truncated"), "{err}");
        assert_eq!(asked, 1);
    }

    #[test]
    fn wrong_password_is_asked_three_times() {
        let path = fixture("tiny-sha256.apkovl.tar.gz.aes-256-cbc");
        let (res, asked) = run(&path, &["a", "b", "c"]);
        assert!(
            matches!(res, Err(OverlayError::Encrypted(EncError::WrongPassword))),
            "{res:?}"
        );
        assert_eq!(asked, 3);
        let (res, asked) = run(&path, &["a", "alpinit"]);
        assert_eq!(res.unwrap().members, ["etc/", "etc/hostname"]);
        assert_eq!(asked, 2);
    }
}
