//! A `TcpStream` that enforces the download's deadlines on every single read and write.
//!
//! Both plain HTTP and rustls sit on top of this stream. rustls loops over socket reads
//! until a whole TLS record (or handshake flight) has arrived, so a timeout checked only
//! around rustls' own `read` lets a server that sends one byte per second hold the client
//! forever. Here the socket timeout is set to `min(stall, time left)` before each
//! operation, and a timeout comes back as `TimedOut` carrying [`DeadlineExceeded`], which
//! says which limit ran out.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The limit that ended a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The TCP connect did not complete within the connect timeout.
    Connect(Duration),
    /// Nothing arrived on a fresh connection within the first-byte timeout.
    FirstByte(Duration),
    /// The connection went silent for the first-byte timeout after data had arrived.
    Stall(Duration),
    /// The whole download (redirects included) took longer than the total timeout.
    Total(Duration),
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: &Duration| Seconds(*d);
        match self {
            Deadline::Connect(d) => write!(f, "connect timeout of {} s", secs(d)),
            Deadline::FirstByte(d) => write!(f, "first-byte timeout of {} s", secs(d)),
            Deadline::Stall(d) => write!(f, "stall timeout of {} s without data", secs(d)),
            Deadline::Total(d) => write!(f, "total timeout of {} s", secs(d)),
        }
    }
}

/// A duration in seconds as `{}` of `as_secs_f64()` prints it (`2`, `0.5`),
/// with integer arithmetic: float formatting would add about 13 kB of the
/// standard library to the static init for these messages alone.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs())?;
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            return Ok(());
        }
        let digits = format!("{nanos:09}");
        write!(f, ".{}", digits.trim_end_matches('0'))
    }
}

/// The payload of the `TimedOut` errors [`DeadlineStream`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} exceeded")]
pub struct DeadlineExceeded(pub Deadline);

impl DeadlineExceeded {
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, self)
    }

    /// The deadline carried by `e`, when `e` came from a [`DeadlineStream`].
    pub(crate) fn find(e: &io::Error) -> Option<Deadline> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<DeadlineExceeded>())
            .map(|d| d.0)
    }
}

/// The overall deadline of one download and the total it stands for (for messages).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub deadline: Instant,
    pub total: Duration,
}

impl Budget {
    pub fn starting_now(total: Duration) -> Budget {
        Budget {
            deadline: Instant::now() + total,
            total,
        }
    }

    /// Time left, `None` once the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    pub fn exceeded(&self) -> io::Error {
        DeadlineExceeded(Deadline::Total(self.total)).into_io()
    }
}

pub(crate) struct DeadlineStream {
    tcp: TcpStream,
    stall: Duration,
    budget: Budget,
    received: bool,
}

impl DeadlineStream {
    pub fn new(tcp: TcpStream, stall: Duration, budget: Budget) -> DeadlineStream {
        DeadlineStream {
            tcp,
            stall,
            budget,
            received: false,
        }
    }

    /// Sets the socket timeouts for the next operation and returns the limit they stand for.
    /// Only a read before any byte arrived waits for a "first byte"; a blocked write is a
    /// stall.
    fn arm(&self, reading: bool) -> io::Result<Deadline> {
        let left = self
            .budget
            .remaining()
            .ok_or_else(|| self.budget.exceeded())?;
        let (timeout, which) = if left <= self.stall {
            (left, Deadline::Total(self.budget.total))
        } else if self.received || !reading {
            (self.stall, Deadline::Stall(self.stall))
        } else {
            (self.stall, Deadline::FirstByte(self.stall))
        };
        // Zero would mean "no timeout" to the kernel.
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        self.tcp.set_read_timeout(timeout)?;
        self.tcp.set_write_timeout(timeout)?;
        Ok(which)
    }

    /// Runs `op` under the armed timeouts, retrying EINTR (PID 1 takes SIGCHLD) and turning a
    /// socket timeout into [`DeadlineExceeded`].
    fn bounded<T>(
        &mut self,
        reading: bool,
        mut op: impl FnMut(&mut TcpStream) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            let which = self.arm(reading)?;
            match op(&mut self.tcp) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(DeadlineExceeded(which).into_io())
                }
                other => return other,
            }
        }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.bounded(true, |tcp| tcp.read(buf))?;
        self.received |= n > 0;
        Ok(n)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bounded(false, |tcp| tcp.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}
