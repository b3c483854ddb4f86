//! A small blocking HTTP/1.1 GET client for one download, with HTTPS behind the `https`
//! feature.
//!
//! Every phase is bounded: DNS, TCP connect (`connect_timeout`), TLS handshake and each
//! read (`first_byte_timeout`, which is also the longest silence tolerated mid-body), and
//! the whole download including redirects (`total_timeout`). Only status 200 is success;
//! redirects are followed up to `max_redirects` and never from https to http.

use std::io::{self, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::dns::{self, DnsError};
use crate::location::{Url, UrlError};
pub use crate::response::ResponseError;
use crate::response::{self, Framing};

/// Limits for one [`fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// PEM bundle of trusted CAs for https; `None` means [`FetchOptions::DEFAULT_CA_BUNDLE`].
    pub ca_bundle: Option<PathBuf>,
    pub max_bytes: u64,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub total_timeout: Duration,
    pub max_redirects: u32,
}

impl FetchOptions {
    /// Where Alpine's ca-certificates package puts the bundle.
    pub const DEFAULT_CA_BUNDLE: &'static str = "/etc/ssl/certs/ca-certificates.crt";
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            ca_bundle: None,
            max_bytes: 256 * 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(15),
            total_timeout: Duration::from_secs(300),
            max_redirects: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("ftp:// apkovl URLs are not supported; use http:// or https://")]
    Unsupported,
    #[error(transparent)]
    Url(UrlError),
    #[error("{url}: https:// is not supported by this build (no TLS support)")]
    NoTls { url: String },
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("{url}: cannot connect to {addr}")]
    Connect {
        url: String,
        addr: SocketAddrV4,
        #[source]
        source: io::Error,
    },
    #[error("{url}: timed out during {phase}")]
    Timeout { url: String, phase: &'static str },
    #[error("{url}: {phase} failed")]
    Io {
        url: String,
        phase: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{url}: {problem}")]
    Response { url: String, problem: ResponseError },
    #[error("{url}: server answered HTTP {status} {reason}")]
    Status {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("{url}: redirect without a Location header")]
    NoLocation { url: String },
    #[error("{url}: more than {max} redirects")]
    TooManyRedirects { url: String, max: u32 },
    #[error("{from}: refusing the redirect from https to http ({to})")]
    Downgrade { from: String, to: String },
    #[error("{url}: TLS failed with {host}: {reason}")]
    Tls {
        url: String,
        host: String,
        reason: String,
    },
    #[error("{url}: the certificate of {host} is not valid yet and the clock is wrong (before {build_date}); set the time (RTC) and retry")]
    ClockWrong {
        url: String,
        host: String,
        build_date: String,
    },
    #[error("cannot read the CA bundle {path}")]
    CaBundle {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

const USER_AGENT: &str = "alpinit";

/// Downloads `url` into `sink` and returns the body length (see [`FetchOptions`]).
///
/// Host names are resolved with `resolvers` (the lease's DNS servers); literal IPv4
/// addresses need none. On error `sink` may hold part of a body; the caller discards it.
pub fn fetch(
    url: &str,
    resolvers: &[Ipv4Addr],
    opts: &FetchOptions,
    sink: &mut dyn Write,
) -> Result<u64, FetchError> {
    let resolvers: Vec<SocketAddrV4> = resolvers
        .iter()
        .map(|r| SocketAddrV4::new(*r, 53))
        .collect();
    fetch_with(url, &resolvers, opts, sink)
}

pub(crate) fn fetch_with(
    url: &str,
    resolvers: &[SocketAddrV4],
    opts: &FetchOptions,
    sink: &mut dyn Write,
) -> Result<u64, FetchError> {
    let deadline = Instant::now() + opts.total_timeout;
    let mut current = Url::parse(url).map_err(url_error)?;
    let mut current_text = url.to_owned();
    for _ in 0..=opts.max_redirects {
        match get_once(&current, &current_text, resolvers, opts, deadline, sink)? {
            Outcome::Done(length) => return Ok(length),
            Outcome::Redirect(location) => {
                let next = current.join(&location).map_err(url_error)?;
                if current.https && !next.https {
                    return Err(FetchError::Downgrade {
                        from: current_text,
                        to: location,
                    });
                }
                current_text = format!(
                    "{}://{}{}",
                    if next.https { "https" } else { "http" },
                    next.authority(),
                    next.target
                );
                current = next;
            }
        }
    }
    Err(FetchError::TooManyRedirects {
        url: current_text,
        max: opts.max_redirects,
    })
}

fn url_error(e: UrlError) -> FetchError {
    match e {
        UrlError::Ftp => FetchError::Unsupported,
        e => FetchError::Url(e),
    }
}

enum Outcome {
    Done(u64),
    Redirect(String),
}

fn get_once(
    url: &Url,
    text: &str,
    resolvers: &[SocketAddrV4],
    opts: &FetchOptions,
    deadline: Instant,
    sink: &mut dyn Write,
) -> Result<Outcome, FetchError> {
    let timeout = |phase| FetchError::Timeout {
        url: text.to_owned(),
        phase,
    };
    let io_error = |phase: &'static str, source: io::Error| {
        if is_timeout(&source) {
            timeout(phase)
        } else {
            FetchError::Io {
                url: text.to_owned(),
                phase,
                source,
            }
        }
    };
    if url.https && !cfg!(feature = "https") {
        return Err(FetchError::NoTls {
            url: text.to_owned(),
        });
    }
    let ip = dns::resolve_at(&url.host, resolvers, deadline)?;
    let addr = SocketAddrV4::new(ip, url.port);
    let remaining = remaining(deadline).ok_or_else(|| timeout("connect"))?;
    let tcp = TcpStream::connect_timeout(&addr.into(), opts.connect_timeout.min(remaining))
        .map_err(|source| match is_timeout(&source) {
            true => timeout("connect"),
            false => FetchError::Connect {
                url: text.to_owned(),
                addr,
                source,
            },
        })?;
    let stall = opts.first_byte_timeout;
    let timed = |tcp: &TcpStream| set_timeouts(tcp, stall, deadline);
    timed(&tcp).map_err(|e| io_error("connect", e))?;
    let stream = if url.https {
        #[cfg(feature = "https")]
        {
            Connection::Tls(Box::new(crate::tls::connect(
                tcp,
                &url.host,
                opts.ca_bundle.as_deref(),
                text,
            )?))
        }
        #[cfg(not(feature = "https"))]
        {
            drop(tcp);
            return Err(FetchError::NoTls {
                url: text.to_owned(),
            });
        }
    } else {
        Connection::Plain(tcp)
    };
    let mut stream = Timed {
        inner: stream,
        stall,
        deadline,
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.target,
        url.authority()
    );
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| io_error("sending the request", e))?;

    let mut reader = BufReader::with_capacity(16 * 1024, stream);
    let response_error = |phase, e: ResponseError| match e {
        ResponseError::Io(source) => io_error(phase, source),
        other => FetchError::Response {
            url: text.to_owned(),
            problem: other,
        },
    };
    let head = response::read_head(&mut reader)
        .map_err(|e| response_error("waiting for the response", e))?;
    if matches!(head.status, 301 | 302 | 303 | 307 | 308) {
        return match head.header("location") {
            Some(location) if !location.is_empty() => Ok(Outcome::Redirect(location.to_owned())),
            _ => Err(FetchError::NoLocation {
                url: text.to_owned(),
            }),
        };
    }
    if head.status != 200 {
        return Err(FetchError::Status {
            url: text.to_owned(),
            status: head.status,
            reason: head.reason,
        });
    }
    let framing = head
        .framing()
        .map_err(|e| response_error("reading the body", e))?;
    if let Framing::Length(length) = framing {
        if length > opts.max_bytes {
            return Err(response_error(
                "reading the body",
                ResponseError::TooLarge {
                    limit: opts.max_bytes,
                },
            ));
        }
    }
    response::read_body(&mut reader, framing, opts.max_bytes, sink)
        .map(Outcome::Done)
        .map_err(|e| response_error("reading the body", e))
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Socket timeouts for the next operation: the stall limit, capped by the overall deadline.
pub(crate) fn set_timeouts(tcp: &TcpStream, stall: Duration, deadline: Instant) -> io::Result<()> {
    let left = remaining(deadline).ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?;
    // Zero would mean "no timeout" to the kernel.
    let timeout = Some(stall.min(left).max(Duration::from_millis(1)));
    tcp.set_read_timeout(timeout)?;
    tcp.set_write_timeout(timeout)
}

enum Connection {
    Plain(TcpStream),
    #[cfg(feature = "https")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Connection {
    fn tcp(&self) -> &TcpStream {
        match self {
            Connection::Plain(tcp) => tcp,
            #[cfg(feature = "https")]
            Connection::Tls(tls) => tls.get_ref(),
        }
    }
}

/// Refreshes the socket timeouts before every read and write, so a server that trickles
/// bytes cannot stretch the download past the deadline.
struct Timed {
    inner: Connection,
    stall: Duration,
    deadline: Instant,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            set_timeouts(self.inner.tcp(), self.stall, self.deadline)?;
            let result = match &mut self.inner {
                Connection::Plain(tcp) => tcp.read(buf),
                #[cfg(feature = "https")]
                Connection::Tls(tls) => tls.read(buf),
            };
            // BufReader does not retry EINTR, and PID 1 takes signals (SIGCHLD).
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        set_timeouts(self.inner.tcp(), self.stall, self.deadline)?;
        match &mut self.inner {
            Connection::Plain(tcp) => tcp.write(buf),
            #[cfg(feature = "https")]
            Connection::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Connection::Plain(tcp) => tcp.flush(),
            #[cfg(feature = "https")]
            Connection::Tls(tls) => tls.flush(),
        }
    }
}

/// Parses `data` as a complete response with a 1 MiB cap; any panic is a bug.
pub(crate) fn fuzz_response(data: &[u8]) {
    let mut reader = io::BufReader::new(data);
    if let Ok(head) = response::read_head(&mut reader) {
        let _ = head.header("location");
        if let Ok(framing) = head.framing() {
            let _ = response::read_body(&mut reader, framing, 1 << 20, &mut io::sink());
        }
    }
}
