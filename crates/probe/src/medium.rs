//! Bounded, cached reads from the device being probed.
//!
//! Under TCG every read from a virtual disk is slow, so the first 64 KiB (where most
//! superblocks live) are read once up front and anything further away is read on demand
//! and remembered. Every read is checked against the device size and capped in length,
//! so an offset or length taken from the medium can never cause a huge allocation.

use std::io::{Read, Seek, SeekFrom};

use crate::ProbeError;

/// Bytes read eagerly from the start of the device.
const HEAD_LEN: u64 = 64 * 1024;

/// Largest single read any prober may request; on-disk lengths above this do not match.
pub(crate) const MAX_READ: usize = 1024 * 1024;

/// Upper bound on what the far-read cache keeps, so a hostile chain of reads stays small.
const MAX_CACHED: usize = 4 * 1024 * 1024;

/// Anything that can be read at an offset.
pub(crate) trait Source: Read + Seek {}
impl<T: Read + Seek> Source for T {}

pub(crate) struct Medium<'a> {
    dev: &'a mut dyn Source,
    size: u64,
    head: Vec<u8>,
    far: Vec<(u64, Vec<u8>)>,
    far_bytes: usize,
}

impl<'a> Medium<'a> {
    pub(crate) fn new(dev: &'a mut dyn Source, size: u64) -> Result<Self, ProbeError> {
        let mut medium = Medium {
            dev,
            size,
            head: Vec::new(),
            far: Vec::new(),
            far_bytes: 0,
        };
        let head_len = size.min(HEAD_LEN) as usize;
        medium.head = medium.read_raw(0, head_len)?;
        Ok(medium)
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// `len` bytes at `offset`, or `None` when the range lies (partly) beyond the device
    /// or is longer than [`MAX_READ`]: a short device simply does not match.
    pub(crate) fn read(&mut self, offset: u64, len: usize) -> Result<Option<Vec<u8>>, ProbeError> {
        if len > MAX_READ {
            return Ok(None);
        }
        let Some(end) = offset.checked_add(len as u64) else {
            return Ok(None);
        };
        if end > self.size {
            return Ok(None);
        }
        if end <= self.head.len() as u64 {
            return Ok(Some(self.head[offset as usize..end as usize].to_vec()));
        }
        for (start, data) in &self.far {
            let cached_end = start + data.len() as u64;
            if offset >= *start && end <= cached_end {
                let from = (offset - start) as usize;
                return Ok(Some(data[from..from + len].to_vec()));
            }
        }
        let data = self.read_raw(offset, len)?;
        if self.far_bytes + len <= MAX_CACHED {
            self.far_bytes += len;
            self.far.push((offset, data.clone()));
        }
        Ok(Some(data))
    }

    fn read_raw(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, ProbeError> {
        self.dev
            .seek(SeekFrom::Start(offset))
            .map_err(|source| ProbeError::Seek { offset, source })?;
        let mut buf = vec![0u8; len];
        self.dev
            .read_exact(&mut buf)
            .map_err(|source| ProbeError::Read { offset, source })?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_inside_and_outside_the_head() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut cur = Cursor::new(data.clone());
        let mut m = Medium::new(&mut cur, data.len() as u64).unwrap();
        for (off, len) in [(0u64, 16usize), (65_530, 12), (100_000, 4096), (100_010, 8)] {
            let got = m.read(off, len).unwrap().unwrap();
            assert_eq!(got, data[off as usize..off as usize + len], "at {off}");
        }
    }

    #[test]
    fn out_of_range_and_oversized_reads_do_not_match() {
        let mut cur = Cursor::new(vec![0u8; 1000]);
        let mut m = Medium::new(&mut cur, 1000).unwrap();
        assert!(m.read(990, 11).unwrap().is_none());
        assert!(m.read(u64::MAX - 2, 8).unwrap().is_none());
        assert!(m.read(0, MAX_READ + 1).unwrap().is_none());
        assert_eq!(m.read(990, 10).unwrap().map(|v| v.len()), Some(10));
    }

    #[test]
    fn a_size_larger_than_the_data_is_a_read_error() {
        let mut cur = Cursor::new(vec![0u8; 100]);
        assert!(matches!(
            Medium::new(&mut cur, 4096),
            Err(ProbeError::Read { offset: 0, .. })
        ));
    }
}
