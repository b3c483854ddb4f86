//! Native decryption of overlays written by `lbu commit -e`, i.e. `openssl enc -<cipher>
//! -salt` with the legacy `EVP_BytesToKey` key derivation (one iteration, no `-pbkdf2`).
//!
//! File layout: `Salted__`, an 8-byte salt, then CBC ciphertext with PKCS#7 padding. The
//! digest of the key derivation is not recorded in the file: OpenSSL ≥ 1.1 uses SHA-256
//! (what lbu writes today), OpenSSL 1.0 used MD5. [`detect_digest`] finds out which one,
//! and whether the password is right, before anything is unpacked.
//!
//! The block cipher, CBC mode and MD5 are the RustCrypto `aes`, `cbc` and `md-5` crates:
//! pure Rust and widely used, so the static musl build needs no C library. SHA-256 is
//! ring's, which the init links for TLS and overlay signatures anyway (one SHA-256 in
//! the binary, not two).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use cbc::cipher::generic_array::GenericArray;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use md5::Digest as _;

use crate::gzip::BUF_SIZE;

const MAGIC: &[u8; 8] = b"Salted__";
const BLOCK: usize = 16;

/// Failures of the decryption layer.
#[derive(Debug, thiserror::Error)]
pub enum EncError {
    /// The file suffix names a cipher this build cannot decrypt (message as in lbu).
    #[error("Cipher {0} is not supported")]
    Unsupported(String),
    /// The encrypted file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Reading the ciphertext failed.
    #[error("reading the encrypted overlay: {0}")]
    Read(#[source] io::Error),
    /// The input does not start with `Salted__` and a salt.
    #[error("not an `openssl enc -salt` file (no Salted__ header)")]
    NotSalted,
    /// The ciphertext is empty or not a whole number of blocks.
    #[error("the encrypted overlay is truncated")]
    Truncated,
    /// The padding of the last block is invalid (corrupt file or wrong password).
    #[error("bad padding at the end of the encrypted overlay")]
    BadPadding,
    /// Neither digest gives a gzip stream with valid padding.
    #[error("wrong password")]
    WrongPassword,
    /// The file ends inside a cipher block, or holds no ciphertext at all: it was cut
    /// short, whatever the password.
    #[error(
        "{path} is damaged: truncated ({len} bytes after the header, \
         not a whole number of 16-byte blocks)"
    )]
    TruncatedFile {
        /// The file.
        path: PathBuf,
        /// Bytes of ciphertext after `Salted__` and the salt.
        len: u64,
    },
    /// The password is right (the first block decrypts to a gzip header) but the last
    /// block has no valid padding: the file was cut short by whole blocks or its end is
    /// corrupt. Asking for the password again cannot help.
    #[error(
        "{path} is damaged: truncated or corrupt at the end (the password is right, \
         but the last block has no valid padding)"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
    },
}

impl EncError {
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// Lets an `unpack` open callback use `?` on [`decrypt_reader`].
impl From<EncError> for io::Error {
    fn from(e: EncError) -> io::Error {
        e.into_io()
    }
}

/// Ciphers this build decrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// `aes-128-cbc` (alias `aes128`).
    Aes128Cbc,
    /// `aes-192-cbc` (alias `aes192`).
    Aes192Cbc,
    /// `aes-256-cbc` (alias `aes256`), lbu's default.
    Aes256Cbc,
}

impl Cipher {
    fn key_len(self) -> usize {
        match self {
            Cipher::Aes128Cbc => 16,
            Cipher::Aes192Cbc => 24,
            Cipher::Aes256Cbc => 32,
        }
    }
}

/// Digest used by `EVP_BytesToKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// OpenSSL ≥ 1.1 default.
    Sha256,
    /// OpenSSL 1.0 default.
    Md5,
}

/// The cipher named by the last dot-suffix, as the shell init did: `None` for a plain
/// `.gz`, an error naming the suffix for anything this build cannot decrypt.
pub fn cipher_from_suffix(file_name: &str) -> Result<Option<Cipher>, EncError> {
    let suffix = file_name.rsplit_once('.').map_or(file_name, |(_, s)| s);
    match suffix {
        "gz" => Ok(None),
        "aes-128-cbc" | "aes128" => Ok(Some(Cipher::Aes128Cbc)),
        "aes-192-cbc" | "aes192" => Ok(Some(Cipher::Aes192Cbc)),
        "aes-256-cbc" | "aes256" => Ok(Some(Cipher::Aes256Cbc)),
        other => Err(EncError::Unsupported(other.to_owned())),
    }
}

/// `EVP_BytesToKey(digest, salt, password, count = 1)`: key followed by a 16-byte IV.
fn derive(digest: Digest, cipher: Cipher, salt: &[u8], password: &[u8]) -> (Vec<u8>, [u8; BLOCK]) {
    let need = cipher.key_len() + BLOCK;
    let mut out: Vec<u8> = Vec::with_capacity(need + 32);
    let mut prev: Vec<u8> = Vec::new();
    while out.len() < need {
        prev = match digest {
            Digest::Sha256 => {
                let mut h = ring::digest::Context::new(&ring::digest::SHA256);
                h.update(&prev);
                h.update(password);
                h.update(salt);
                h.finish().as_ref().to_vec()
            }
            Digest::Md5 => md5::Md5::new()
                .chain_update(&prev)
                .chain_update(password)
                .chain_update(salt)
                .finalize()
                .to_vec(),
        };
        out.extend_from_slice(&prev);
    }
    let mut iv = [0u8; BLOCK];
    iv.copy_from_slice(&out[cipher.key_len()..need]);
    out.truncate(cipher.key_len());
    (out, iv)
}

enum Mode {
    A128(cbc::Decryptor<aes::Aes128>),
    A192(cbc::Decryptor<aes::Aes192>),
    A256(cbc::Decryptor<aes::Aes256>),
}

impl Mode {
    fn new(cipher: Cipher, key: &[u8], iv: &[u8; BLOCK]) -> Mode {
        let iv = GenericArray::from_slice(iv);
        match cipher {
            Cipher::Aes128Cbc => Mode::A128(cbc::Decryptor::new(GenericArray::from_slice(key), iv)),
            Cipher::Aes192Cbc => Mode::A192(cbc::Decryptor::new(GenericArray::from_slice(key), iv)),
            Cipher::Aes256Cbc => Mode::A256(cbc::Decryptor::new(GenericArray::from_slice(key), iv)),
        }
    }

    /// Decrypts whole blocks in place; a trailing partial block is left alone.
    fn decrypt(&mut self, data: &mut [u8]) {
        for block in data.chunks_exact_mut(BLOCK) {
            let block = GenericArray::from_mut_slice(block);
            match self {
                Mode::A128(d) => d.decrypt_block_mut(block),
                Mode::A192(d) => d.decrypt_block_mut(block),
                Mode::A256(d) => d.decrypt_block_mut(block),
            }
        }
    }
}

/// Length of the plaintext in the last block once PKCS#7 padding is removed.
fn unpad(block: &[u8; BLOCK]) -> Option<usize> {
    let n = usize::from(block[BLOCK - 1]);
    (1..=BLOCK).contains(&n).then_some(())?;
    block[BLOCK - n..]
        .iter()
        .all(|&b| usize::from(b) == n)
        .then_some(BLOCK - n)
}

/// Streaming plaintext of an `openssl enc` input. Memory is bounded by two 64 KiB
/// buffers; the last block is held back until the end so its padding can be removed
/// and checked (a bad padding is a read error, seen by the verify pass).
pub struct DecryptReader<R> {
    inner: R,
    mode: Mode,
    /// Ciphertext input buffer; `filled` bytes are read but not yet decrypted (always
    /// less than one block between calls, so a read has at least 64 KiB of room).
    pending: Vec<u8>,
    filled: usize,
    /// Plaintext ready to hand out.
    out: Vec<u8>,
    out_pos: usize,
    /// The most recent decrypted block, which may be the padded last one.
    held: Option<[u8; BLOCK]>,
    done: bool,
}

/// Checks the `Salted__` header of `input`, derives key and IV, and returns the plaintext
/// reader.
pub fn decrypt_reader<R: Read>(
    mut input: R,
    cipher: Cipher,
    digest: Digest,
    password: &[u8],
) -> Result<DecryptReader<R>, EncError> {
    let mut head = [0u8; 16];
    if read_full(&mut input, &mut head).map_err(EncError::Read)? != head.len()
        || &head[..8] != MAGIC
    {
        return Err(EncError::NotSalted);
    }
    let (key, iv) = derive(digest, cipher, &head[8..], password);
    Ok(DecryptReader {
        inner: input,
        mode: Mode::new(cipher, &key, &iv),
        pending: vec![0u8; BUF_SIZE + BLOCK],
        filled: 0,
        out: Vec::with_capacity(BUF_SIZE + BLOCK),
        out_pos: 0,
        held: None,
        done: false,
    })
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<R: Read> DecryptReader<R> {
    fn refill(&mut self) -> Result<(), EncError> {
        self.out.clear();
        self.out_pos = 0;
        let n = loop {
            match self.inner.read(&mut self.pending[self.filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(EncError::Read(e)),
            }
        };
        if n == 0 {
            self.done = true;
            if self.filled != 0 {
                return Err(EncError::Truncated);
            }
            let last = self.held.take().ok_or(EncError::Truncated)?;
            let len = unpad(&last).ok_or(EncError::BadPadding)?;
            self.out.extend_from_slice(&last[..len]);
            return Ok(());
        }
        self.filled += n;
        let whole = self.filled / BLOCK * BLOCK;
        if whole == 0 {
            return Ok(());
        }
        self.mode.decrypt(&mut self.pending[..whole]);
        if let Some(prev) = self.held.take() {
            self.out.extend_from_slice(&prev);
        }
        let mut last = [0u8; BLOCK];
        last.copy_from_slice(&self.pending[whole - BLOCK..whole]);
        self.out.extend_from_slice(&self.pending[..whole - BLOCK]);
        self.held = Some(last);
        self.pending.copy_within(whole..self.filled, 0);
        self.filled -= whole;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos >= self.out.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.refill().map_err(EncError::into_io)?;
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// A gzip member header as RFC 1952 defines it: magic `1f 8b`, method 8 (deflate) and
/// the three reserved flag bits clear. A wrong key turns the first block into uniformly
/// random bytes, which pass this with probability 2^-27.
fn is_gzip_start(plain: &[u8; BLOCK]) -> bool {
    plain[..3] == [0x1f, 0x8b, 0x08] && plain[3] & 0xe0 == 0
}

/// Finds the digest that decrypts `path` with `password`: the first block must start
/// with a gzip header and the last block must carry valid padding. SHA-256 is tried
/// first, then MD5. Only three blocks are read.
///
/// A file that is not a whole number of blocks is [`EncError::TruncatedFile`] whatever
/// the password. When a digest gives a gzip header but the last block's padding is bad,
/// the password is right and the file is damaged ([`EncError::Damaged`]): a file cut
/// short by whole blocks looks exactly like that, and must not be reported as a wrong
/// password.
pub fn detect_digest(path: &Path, cipher: Cipher, password: &[u8]) -> Result<Digest, EncError> {
    let open_err = |source| EncError::Open {
        path: path.to_owned(),
        source,
    };
    let mut f = File::open(path).map_err(open_err)?;
    let size = f.metadata().map_err(open_err)?.len();
    let mut head = [0u8; 32];
    let got = read_full(&mut f, &mut head).map_err(open_err)?;
    if got < 16 || &head[..8] != MAGIC {
        return Err(EncError::NotSalted);
    }
    let body = size - 16;
    if got < 32 || body % BLOCK as u64 != 0 {
        return Err(EncError::TruncatedFile {
            path: path.to_owned(),
            len: body,
        });
    }
    let mut first = [0u8; BLOCK];
    first.copy_from_slice(&head[16..32]);
    // CBC: the last plaintext block needs only the last two ciphertext blocks; with a
    // single block, the IV chains into it.
    let mut tail = [0u8; 2 * BLOCK];
    let single = body == BLOCK as u64;
    if !single {
        f.seek(SeekFrom::Start(size - 2 * BLOCK as u64))
            .map_err(open_err)?;
        if read_full(&mut f, &mut tail).map_err(open_err)? != tail.len() {
            return Err(EncError::Truncated);
        }
    }
    let mut gzip_start = false;
    for digest in [Digest::Sha256, Digest::Md5] {
        let (key, iv) = derive(digest, cipher, &head[8..16], password);
        let mut p_first = first;
        Mode::new(cipher, &key, &iv).decrypt(&mut p_first);
        if !is_gzip_start(&p_first) {
            continue;
        }
        gzip_start = true;
        let (chain_iv, mut last) = if single {
            (iv, first)
        } else {
            let mut c = [0u8; BLOCK];
            c.copy_from_slice(&tail[..BLOCK]);
            let mut l = [0u8; BLOCK];
            l.copy_from_slice(&tail[BLOCK..]);
            (c, l)
        };
        Mode::new(cipher, &key, &chain_iv).decrypt(&mut last);
        if unpad(&last).is_some() {
            return Ok(digest);
        }
    }
    if gzip_start {
        return Err(EncError::Damaged {
            path: path.to_owned(),
        });
    }
    Err(EncError::WrongPassword)
}

pub(crate) fn fuzz(data: &[u8]) {
    if let Ok(mut r) = decrypt_reader(data, Cipher::Aes256Cbc, Digest::Sha256, b"fuzz") {
        let _ = io::copy(&mut r, &mut io::sink());
    }
}

#[cfg(test)]
mod tests;
