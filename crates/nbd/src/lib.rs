//! A Network Block Device client for `/init`: negotiate an export with an NBD server, then
//! hand the connected socket to the kernel so `/dev/nbdN` serves it.
//!
//! Alpine's initramfs runs `nbd-client`, which stays behind as a process. PID 1 here execs
//! the real init once the root is mounted, so nothing may stay behind: the handshake runs
//! in-process ([`handshake`], [`connect_tcp`]) and the socket then goes to the kernel with
//! the generic-netlink `NBD_CMD_CONNECT` ([`attach`]). The kernel keeps its own reference
//! to the socket and runs the transmission phase itself, so the caller can drop its copy
//! and exec.
//!
//! References: the handshake follows the NBD protocol document (`doc/proto.md` in the
//! NetworkBlockDevice/nbd repository, sections "Fixed newstyle negotiation", "Option
//! types" and "Option reply types"); the netlink message follows the kernel's
//! `include/uapi/linux/nbd-netlink.h` and `include/uapi/linux/genetlink.h`, and what the
//! kernel does with it is `nbd_genl_connect` in `drivers/block/nbd.c`.
//!
//! The server is untrusted input to PID 1: every length it sends is capped before anything
//! is read or allocated, the number of replies per option is bounded, every read and write
//! has a timeout, and nothing here panics on what the server sends (see
//! `fuzz/fuzz_targets/nbd_handshake.rs`).

mod genl;
mod handshake;

#[cfg(test)]
mod genl_tests;
#[cfg(test)]
mod tcp_tests;
#[cfg(test)]
mod tests;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub use genl::{
    ack_errno, attach, connect_request, getfamily_request, parse_family_id, BLOCK_SIZE,
    IO_TIMEOUT_SECS,
};
pub use handshake::{handshake, MAX_REPLIES, MAX_REPLY_LEN};

/// What the server said about the negotiated export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Export {
    /// Size in bytes.
    pub size: u64,
    /// Transmission flags (`NBD_FLAG_HAS_FLAGS`, `NBD_FLAG_READ_ONLY`, ...), passed to the
    /// kernel unchanged.
    pub transmission_flags: u16,
}

/// Failures of the handshake, the TCP connection and the kernel attach.
///
/// Each variant is one place that can fail. A wrapped cause (an `io::Error`) is left out of
/// the variant's own message, so printing the source chain names it once.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    #[error("export name: {len} bytes, over the protocol's limit of 4096")]
    NameTooLong { len: usize },
    #[error("export name contains a NUL byte")]
    NameHasNul,
    #[error("server greeting: cannot read")]
    Greeting(#[source] io::Error),
    #[error("server greeting: bad magic {0:#018x}, expected NBDMAGIC")]
    GreetingMagic(u64),
    #[error("server greeting: {}, only newstyle negotiation (IHAVEOPT) is supported", style_name(.0))]
    NotNewstyle(u64),
    #[error("client flags: cannot send")]
    ClientFlags(#[source] io::Error),
    #[error("{option}: cannot send the request")]
    SendOption {
        option: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{option} reply: cannot read")]
    ReadReply {
        option: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{option} reply: bad magic {magic:#x}")]
    ReplyMagic { option: &'static str, magic: u64 },
    #[error("{option} reply: answers option {got}")]
    ReplyOption { option: &'static str, got: u32 },
    #[error("{option} reply: length {len} over the limit of {MAX_REPLY_LEN}")]
    ReplyTooLong { option: &'static str, len: u32 },
    #[error("{option}: more than {MAX_REPLIES} replies")]
    TooManyReplies { option: &'static str },
    #[error("{option} reply: unexpected reply type {reply:#x}")]
    UnexpectedReply { option: &'static str, reply: u32 },
    #[error("NBD_REP_INFO: length {len} leaves no room for the information type")]
    ShortInfo { len: u32 },
    #[error("NBD_INFO_EXPORT: length {len}, expected 12")]
    ExportInfoLength { len: u32 },
    #[error("{option} for export {export:?}: server error {}{}", rep_error(.code), server_text(.message))]
    ServerError {
        option: &'static str,
        export: String,
        code: u32,
        /// The server's message (lossy UTF-8, at most 256 bytes); may be empty.
        message: String,
    },
    #[error("NBD_OPT_GO for export {export:?}: server acknowledged without NBD_INFO_EXPORT")]
    NoExportInfo { export: String },
    #[error("NBD_OPT_EXPORT_NAME for export {export:?}: no export size and flags (a server closes the connection for an unknown export)")]
    ExportNameReply {
        export: String,
        #[source]
        source: io::Error,
    },
    #[error("NBD_OPT_EXPORT_NAME: cannot read the 124 reserved bytes")]
    ExportNameZeroes(#[source] io::Error),
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot set socket options on the connection to {addr}")]
    TcpOptions {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot clear the socket's timeouts before handing it to the kernel")]
    ClearTimeouts(#[source] io::Error),
    #[error("cannot open a generic netlink socket")]
    NetlinkSocket(#[source] io::Error),
    #[error("generic netlink {what}: cannot send")]
    NetlinkSend {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("generic netlink {what}: no answer from the kernel")]
    NetlinkReceive {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("generic netlink family \"nbd\": lookup failed{}", family_hint(.errno))]
    FamilyLookup {
        errno: i32,
        #[source]
        source: io::Error,
    },
    #[error("generic netlink family \"nbd\": the reply carries no family id")]
    NoFamilyId,
    #[error("generic netlink family \"nbd\": malformed reply")]
    MalformedFamilyReply,
    #[error("NBD_CMD_CONNECT for /dev/nbd{index}: refused by the kernel")]
    KernelConnect {
        index: u32,
        errno: i32,
        #[source]
        source: io::Error,
    },
    #[error("NBD_CMD_CONNECT for /dev/nbd{index}: no acknowledgement from the kernel")]
    NoAck { index: u32 },
}

fn style_name(magic: &u64) -> String {
    if *magic == handshake::CLISERV_MAGIC {
        format!("oldstyle negotiation (magic {magic:#016x})")
    } else {
        format!("unknown negotiation magic {magic:#018x}")
    }
}

fn rep_error(code: &u32) -> String {
    match handshake::rep_error_name(*code) {
        Some((name, meaning)) => format!("{name} ({meaning})"),
        None => format!("{code:#x} (unknown error code)"),
    }
}

fn server_text(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message:?}")
    }
}

fn family_hint(errno: &i32) -> &'static str {
    if *errno == libc::ENOENT {
        " (is the nbd driver loaded?)"
    } else {
        ""
    }
}

/// Connects to an NBD server over TCP and negotiates export `name` ("" is the server's
/// default export).
///
/// `timeout` bounds the TCP connect, and separately the whole handshake: every read and
/// write gets only the time left, so neither a silent server nor one that sends a byte at a
/// time can hold PID 1 for longer. The returned socket still has read and write timeouts
/// set; [`attach`] clears them before the kernel takes it over.
pub fn connect_tcp(
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<(TcpStream, Export), NbdError> {
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| NbdError::Connect { addr, source })?;
    // Requests are small and latency-bound; the kernel's transmission phase wants no Nagle
    // delay either (nbd-client sets the same option).
    stream
        .set_nodelay(true)
        .map_err(|source| NbdError::TcpOptions { addr, source })?;
    let mut timed = DeadlineStream {
        stream: &stream,
        deadline: Instant::now() + timeout,
    };
    // Set once here so that a failure to set it is reported as a socket option problem;
    // each operation below narrows it to the time left.
    timed
        .arm_read()
        .and_then(|()| timed.arm_write())
        .map_err(|source| NbdError::TcpOptions { addr, source })?;
    let export = handshake(&mut timed, name)?;
    Ok((stream, export))
}

/// A borrowed TCP stream whose every read and write must finish before one deadline.
struct DeadlineStream<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl DeadlineStream<'_> {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(timed_out())
        } else {
            Ok(left)
        }
    }

    fn arm_read(&self) -> io::Result<()> {
        self.stream.set_read_timeout(Some(self.left()?))
    }

    fn arm_write(&self) -> io::Result<()> {
        self.stream.set_write_timeout(Some(self.left()?))
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "handshake timeout exceeded")
}

/// A socket timeout surfaces as `WouldBlock` (EAGAIN); say what it means.
fn map_timeout(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        timed_out()
    } else {
        e
    }
}

impl Read for DeadlineStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm_read()?;
        self.stream.read(buf).map_err(map_timeout)
    }
}

impl Write for DeadlineStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm_write()?;
        self.stream.write(buf).map_err(map_timeout)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
