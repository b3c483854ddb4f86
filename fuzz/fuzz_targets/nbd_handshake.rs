//! The NBD handshake with the input as everything the server sends (the client's writes go
//! nowhere), and the generic netlink reply parsers on the same bytes; any panic, overflow or
//! allocation sized by the input is a bug.
#![no_main]

use std::io::{self, Cursor, Read, Write};

use libfuzzer_sys::fuzz_target;

/// A server that has said everything it will say: reads come from the input, writes vanish.
struct Canned<'a>(Cursor<&'a [u8]>);

impl Read for Canned<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Canned<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = alpinit_nbd::handshake(&mut Canned(Cursor::new(data)), "root");
    let _ = alpinit_nbd::parse_family_id(data);
    let _ = alpinit_nbd::ack_errno(data, 2);
});
