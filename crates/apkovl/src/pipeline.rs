//! Inflate on a second thread while the tar reader works on the first, like
//! `gzip -d | tar x` but in one process: the read then takes about as long
//! as the slower of the two stages instead of their sum. The channel is
//! bounded, so at most `DEPTH + 2` chunks are alive (about 1.5 MiB).

use std::io::{self, Read};

mod queue;

use queue::Receiver;

use crate::archive::TarReader;
use crate::gzip::GzStream;
use crate::unpack::Limits;

const CHUNK: usize = 256 * 1024;
const FIRST_CHUNK: usize = 16 * 1024;
const DEPTH: usize = 4;

/// The consuming end: a `Read` over the chunks the inflate thread sends.
pub(crate) struct Chunks {
    rx: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Some(Ok(chunk)) if chunk.is_empty() => self.done = true,
                Some(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                // The producer ends every stream with an empty chunk or an
                // error; a hang-up without either means it died.
                None => {
                    self.done = true;
                    return Err(io::Error::other("inflate thread stopped"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Runs `f` over a tar reader of the gzip stream `src`, inflating on a
/// scoped thread. When `f` returns early (a rejected member), the channel is
/// dropped and the thread stops at its next send.
pub(crate) fn with_tar<R, T>(
    src: R,
    limits: &Limits,
    f: impl FnOnce(&mut TarReader<Chunks>) -> T,
) -> T
where
    R: Read + Send,
{
    let cap = limits.max_compressed_bytes;
    std::thread::scope(|scope| {
        let (tx, rx) = queue::bounded::<io::Result<Vec<u8>>>(DEPTH);
        scope.spawn(move || {
            let mut gz = GzStream::new(src, cap);
            // Chunks start small and double up to CHUNK: a small overlay does not pay
            // for zeroing buffers it never fills.
            let mut size = FIRST_CHUNK;
            loop {
                let mut chunk = vec![0u8; size];
                size = (size * 2).min(CHUNK);
                let mut filled = 0;
                let result = loop {
                    match gz.read(&mut chunk[filled..]) {
                        Ok(0) => break Ok(true),
                        Ok(n) => {
                            filled += n;
                            if filled == chunk.len() {
                                break Ok(false);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                chunk.truncate(filled);
                match result {
                    Ok(end) => {
                        if filled > 0 && tx.send(Ok(chunk)).is_err() {
                            return;
                        }
                        if end {
                            let _ = tx.send(Ok(Vec::new()));
                            return;
                        }
                    }
                    Err(e) => {
                        if filled > 0 && tx.send(Ok(chunk)).is_err() {
                            return;
                        }
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        let chunks = Chunks {
            rx,
            current: Vec::new(),
            pos: 0,
            done: false,
        };
        let mut tar = TarReader::new(chunks, limits.max_total_bytes, limits.max_pax_bytes);
        f(&mut tar)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn chunks_deliver_the_whole_stream_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let packed = gz(&data);
        let (tx, rx) = queue::bounded(2);
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut g = GzStream::new(&packed[..], u64::MAX);
                let mut out = Vec::new();
                g.read_to_end(&mut out).unwrap();
                for c in out.chunks(CHUNK) {
                    tx.send(Ok(c.to_vec())).unwrap();
                }
                tx.send(Ok(Vec::new())).unwrap();
            });
            let mut r = Chunks {
                rx,
                current: Vec::new(),
                pos: 0,
                done: false,
            };
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            assert_eq!(got, data);
        });
    }
}
