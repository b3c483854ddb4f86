//! Opening module files: a plain `.ko` is handed to the kernel as a file, `.ko.gz`, `.ko.xz`
//! and `.ko.zst` are decompressed into memory.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Upper bound for one module image after decompression. The largest Debian modules are a
/// few MiB; the bound stops a corrupt or hostile file from exhausting PID 1's memory.
pub const MAX_IMAGE_SIZE: u64 = 128 << 20;

/// Failure to produce a module image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read module file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot decompress module file {path}")]
    Decompress {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("module file {path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

fn compression_of(path: &Path) -> Compression {
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => Compression::Gzip,
        Some("xz") => Compression::Xz,
        Some("zst") => Compression::Zstd,
        _ => Compression::None,
    }
}

/// A module ready to be inserted.
#[derive(Debug)]
pub enum ModuleSource {
    /// A plain `.ko`, for `finit_module(2)`: the kernel reads it from the file itself.
    File(File),
    /// A compressed module, decompressed here (the kernel may lack
    /// CONFIG_MODULE_DECOMPRESS).
    Image(Vec<u8>),
}

/// The module at `path` as the kernel will get it: a plain file opened, a compressed one
/// decompressed according to its suffix.
pub fn open_module(path: &Path) -> Result<ModuleSource, ImageError> {
    if compression_of(path) != Compression::None {
        return read_image(path).map(ModuleSource::Image);
    }
    File::open(path)
        .map(ModuleSource::File)
        .map_err(|source| ImageError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// The whole of an opened plain module, at most [`MAX_IMAGE_SIZE`] bytes: for
/// `init_module(2)` where `finit_module(2)` cannot be used.
pub fn read_file_image(file: &File) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut sink = LimitedWriter {
        out: &mut out,
        limit: MAX_IMAGE_SIZE,
    };
    copy_from(file, &mut sink)?;
    Ok(out)
}

/// The module image at `path`, decompressed according to its suffix.
pub fn read_image(path: &Path) -> Result<Vec<u8>, ImageError> {
    read_image_limited(path, MAX_IMAGE_SIZE)
}

pub(crate) fn read_image_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ImageError> {
    let read_err = |source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let compression = compression_of(path);
    let mut out = Vec::new();
    let mut sink = LimitedWriter {
        out: &mut out,
        limit,
    };
    let result = match compression {
        Compression::None => copy_from(file, &mut sink),
        Compression::Gzip => copy_from(
            flate2::read::GzDecoder::new(BufReader::new(file)),
            &mut sink,
        ),
        Compression::Xz => {
            lzma_rs::xz_decompress(&mut BufReader::new(file), &mut sink).map_err(|e| match e {
                lzma_rs::error::Error::IoError(io) => io,
                other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
            })
        }
        Compression::Zstd => match ruzstd::decoding::StreamingDecoder::new(BufReader::new(file)) {
            Ok(decoder) => copy_from(decoder, &mut sink),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        },
    };
    match result {
        Ok(()) => Ok(out),
        Err(e) if is_limit_error(&e) => Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            limit,
        }),
        Err(source) if compression == Compression::None => Err(read_err(source)),
        Err(source) => Err(ImageError::Decompress {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn copy_from(mut reader: impl Read, sink: &mut LimitedWriter<'_>) -> io::Result<()> {
    io::copy(&mut reader, sink).map(|_| ())
}

/// Marker carried inside the io::Error so the size limit can be told from decoder errors
/// after it has passed through a decoder's own error type.
const LIMIT_MESSAGE: &str = "module image exceeds size limit";

fn is_limit_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::FileTooLarge || e.to_string().contains(LIMIT_MESSAGE)
}

struct LimitedWriter<'a> {
    out: &'a mut Vec<u8>,
    limit: u64,
}

impl Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let total = self.out.len() as u64 + buf.len() as u64;
        if total > self.limit {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, LIMIT_MESSAGE));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn size_limit_applies_after_decompression() {
        let tmp = tempfile::tempdir().unwrap();
        let data = vec![0u8; 10_000];
        let plain = tmp.path().join("big.ko");
        let packed = tmp.path().join("big.ko.gz");
        std::fs::write(&plain, &data).unwrap();
        std::fs::write(&packed, gzip(&data)).unwrap();
        // A zero-filled image compresses far below the limit; only its output exceeds it.
        assert!(std::fs::metadata(&packed).unwrap().len() < 1000);
        for path in [&plain, &packed] {
            let err = read_image_limited(path, 1000).unwrap_err();
            assert!(
                matches!(err, ImageError::TooLarge { limit: 1000, .. }),
                "{err:?}"
            );
            assert_eq!(read_image_limited(path, 10_000).unwrap(), data);
        }
    }

    #[test]
    fn errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let cases = [
            ("absent.ko", None, "Read"),
            ("bad.ko.gz", Some(&b"not gzip at all"[..]), "Decompress"),
            ("bad.ko.xz", Some(&b"\xfd7zXZ\0garbage"[..]), "Decompress"),
            (
                "bad.ko.zst",
                Some(&b"\x28\xb5\x2f\xfdgarbage"[..]),
                "Decompress",
            ),
            ("short.ko.gz", Some(&gzip(b"module")[..10]), "Decompress"),
        ];
        for (file, content, kind) in cases {
            let path = tmp.path().join(file);
            if let Some(content) = content {
                std::fs::write(&path, content).unwrap();
            }
            let err = read_image(&path).unwrap_err();
            let got = match &err {
                ImageError::Read { path: p, .. } | ImageError::Decompress { path: p, .. } => {
                    assert_eq!(p, &path);
                    if matches!(err, ImageError::Read { .. }) {
                        "Read"
                    } else {
                        "Decompress"
                    }
                }
                ImageError::TooLarge { .. } => "TooLarge",
            };
            assert_eq!(got, kind, "{file}: {err:?}");
            assert!(err.to_string().contains(file), "{err}");
        }
    }
}
