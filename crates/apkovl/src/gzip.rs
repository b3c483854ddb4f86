//! The gzip container: multi-member decoding with a size cap and a trailing-data policy.

use std::io::{self, BufRead, BufReader, Read};
use std::mem;

use flate2::bufread::GzDecoder;

/// Input is read in chunks of this size; it bounds the memory used for buffering.
pub(crate) const BUF_SIZE: usize = 64 * 1024;

/// Failures of the gzip layer.
#[derive(Debug, thiserror::Error)]
pub enum GzipError {
    /// Empty input, or input that does not start with the gzip magic.
    #[error("not a gzip stream")]
    NotGzip,
    /// Bad deflate data, CRC or length mismatch, or a stream cut short.
    #[error("corrupt gzip data: {0}")]
    Corrupt(#[source] io::Error),
    /// Something other than another gzip member or zero padding follows the stream.
    #[error("unexpected data after the end of the gzip stream")]
    TrailingGarbage,
    /// The compressed input is larger than `max_compressed_bytes`.
    #[error("compressed input exceeds the limit max_compressed_bytes ({limit} bytes)")]
    TooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// The underlying source failed (I/O, or the decryption layer).
    #[error("reading the compressed input: {0}")]
    Read(#[source] io::Error),
}

impl GzipError {
    fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// Recovers a `GzipError` carried inside an `io::Error`; anything else is corruption
    /// reported by the decoder.
    pub(crate) fn from_io(e: io::Error) -> GzipError {
        if !e.get_ref().is_some_and(|inner| inner.is::<GzipError>()) {
            return GzipError::Corrupt(e);
        }
        let kind = e.kind();
        match e.into_inner().map(|inner| inner.downcast::<GzipError>()) {
            Some(Ok(g)) => *g,
            Some(Err(other)) => GzipError::Corrupt(io::Error::new(kind, other)),
            None => GzipError::Corrupt(io::Error::from(kind)),
        }
    }
}

/// Counts compressed bytes and fails once more than `limit` were read.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            match self.inner.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(GzipError::Read(e).into_io()),
            }
        };
        self.read = self.read.saturating_add(n as u64);
        if self.read > self.limit {
            return Err(GzipError::TooLarge { limit: self.limit }.into_io());
        }
        Ok(n)
    }
}

type Source<R> = BufReader<Capped<R>>;

enum State<R: Read> {
    Start(Source<R>),
    Member(Box<GzDecoder<Source<R>>>),
    Done,
    Failed,
}

/// Decompressed view of a gzip stream that reports every failure as an `io::Error`
/// wrapping a [`GzipError`].
pub(crate) struct GzStream<R: Read> {
    state: State<R>,
}

impl<R: Read> GzStream<R> {
    pub(crate) fn new(inner: R, max_compressed_bytes: u64) -> Self {
        let capped = Capped {
            inner,
            read: 0,
            limit: max_compressed_bytes,
        };
        GzStream {
            state: State::Start(BufReader::with_capacity(BUF_SIZE, capped)),
        }
    }

    fn step(&mut self, buf: &mut [u8]) -> Result<Option<usize>, GzipError> {
        match mem::replace(&mut self.state, State::Failed) {
            State::Start(mut src) => {
                let head = src.fill_buf().map_err(GzipError::from_io)?;
                if head.first() != Some(&0x1f) || head.get(1).is_some_and(|&b| b != 0x8b) {
                    return Err(GzipError::NotGzip);
                }
                self.state = State::Member(Box::new(GzDecoder::new(src)));
                Ok(None)
            }
            State::Member(mut dec) => match dec.read(buf) {
                Ok(0) if !buf.is_empty() => {
                    let mut src = dec.into_inner();
                    self.state = if after_member(&mut src)? {
                        State::Member(Box::new(GzDecoder::new(src)))
                    } else {
                        State::Done
                    };
                    Ok(None)
                }
                Ok(n) => {
                    self.state = State::Member(dec);
                    Ok(Some(n))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.state = State::Member(dec);
                    Ok(None)
                }
                Err(e) => Err(GzipError::from_io(e)),
            },
            State::Done => {
                self.state = State::Done;
                Ok(Some(0))
            }
            State::Failed => Err(GzipError::Corrupt(io::Error::other(
                "read after an earlier error",
            ))),
        }
    }
}

/// Decides what follows a complete member: `true` for another member, `false` for the
/// end of the input (after optional zero padding, which is consumed).
fn after_member<R: Read>(src: &mut Source<R>) -> Result<bool, GzipError> {
    let head = src.fill_buf().map_err(GzipError::from_io)?;
    match head.first() {
        None => Ok(false),
        Some(0x1f) => Ok(true),
        Some(_) => loop {
            let chunk = src.fill_buf().map_err(GzipError::from_io)?;
            if chunk.is_empty() {
                return Ok(false);
            }
            if chunk.iter().any(|&b| b != 0) {
                return Err(GzipError::TrailingGarbage);
            }
            let n = chunk.len();
            src.consume(n);
        },
    }
}

impl<R: Read> Read for GzStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.step(buf) {
                Ok(Some(n)) => return Ok(n),
                Ok(None) => continue,
                Err(e) => return Err(e.into_io()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(input: &[u8]) -> Result<Vec<u8>, GzipError> {
        let mut out = Vec::new();
        GzStream::new(input, u64::MAX)
            .read_to_end(&mut out)
            .map_err(GzipError::from_io)?;
        Ok(out)
    }

    #[test]
    fn accepts_multi_member_and_zero_padding() {
        let mut input = gz(b"hello ");
        input.extend(gz(b"world"));
        assert_eq!(decode(&input).unwrap(), b"hello world");
        input.extend([0u8; 700]);
        assert_eq!(decode(&input).unwrap(), b"hello world");
    }

    #[test]
    fn rejects_bad_input() {
        // Pseudo-random bytes, so that every bit of the deflate stream matters.
        let mut x: u32 = 1;
        let data: Vec<u8> = (0..100_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        let good = gz(&data);
        let mut garbage = good.clone();
        garbage.extend(b"<html>");
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        let mut bad_crc = good.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 1;
        let mut bad_len = good.clone();
        let len_at = bad_len.len() - 4;
        bad_len[len_at] ^= 1;
        type Check = fn(&GzipError) -> bool;
        let cases: Vec<(&str, Vec<u8>, Check)> = vec![
            ("empty", Vec::new(), |e| matches!(e, GzipError::NotGzip)),
            ("html", b"<html>hi</html>".to_vec(), |e| {
                matches!(e, GzipError::NotGzip)
            }),
            ("trailing garbage", garbage, |e| {
                matches!(e, GzipError::TrailingGarbage)
            }),
            ("truncated", good[..good.len() / 2].to_vec(), |e| {
                matches!(e, GzipError::Corrupt(_))
            }),
            ("no trailer", good[..good.len() - 8].to_vec(), |e| {
                matches!(e, GzipError::Corrupt(_))
            }),
            ("flipped payload byte", flipped, |e| {
                matches!(e, GzipError::Corrupt(_))
            }),
            ("bad crc", bad_crc, |e| matches!(e, GzipError::Corrupt(_))),
            ("bad isize", bad_len, |e| matches!(e, GzipError::Corrupt(_))),
        ];
        for (name, input, check) in cases {
            match decode(&input) {
                Ok(_) => panic!("{name}: accepted"),
                Err(e) => assert!(check(&e), "{name}: wrong error {e:?}"),
            }
        }
    }

    #[test]
    fn compressed_cap_is_enforced() {
        let input = gz(&vec![1u8; 1 << 20]);
        let mut out = Vec::new();
        let err = GzStream::new(&input[..], 100)
            .read_to_end(&mut out)
            .map_err(GzipError::from_io)
            .unwrap_err();
        assert!(matches!(err, GzipError::TooLarge { limit: 100 }), "{err:?}");
    }
}
