//! A small blocking HTTP/1.1 GET client for one download, with HTTPS behind the `https`
//! feature.
//!
//! Every phase is bounded: DNS, TCP connect (`connect_timeout`), every socket read and
//! write of the TLS handshake, the request and the response (`first_byte_timeout`, which is
//! also the longest silence tolerated mid-body), and the whole download including redirects
//! (`total_timeout`), enforced under TLS by [`DeadlineStream`]. Only status 200 is success;
//! redirects are followed up to `max_redirects` and never from https to http.

use std::io::{self, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::deadline::{Budget, Deadline, DeadlineExceeded, DeadlineStream};
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

/// Why a download failed. Variants wrapping an io, TLS or DNS error carry it as `source`
/// and do not repeat it in their message: print the whole chain (see [`crate::error_chain`]).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("ftp:// apkovl URLs are not supported; use http:// or https://")]
    Unsupported,
    #[error(transparent)]
    Url(UrlError),
    #[error("{url}: https:// is not supported by this build (no TLS support)")]
    NoTls { url: String },
    #[error("{url}")]
    Dns {
        url: String,
        #[source]
        source: DnsError,
    },
    #[error("{url}: cannot connect to {addr}")]
    Connect {
        url: String,
        addr: SocketAddrV4,
        #[source]
        source: io::Error,
    },
    #[error("{url}: timed out during {phase} ({deadline} exceeded)")]
    Timeout {
        url: String,
        phase: &'static str,
        deadline: Deadline,
    },
    #[error("{url}: {phase} failed")]
    Io {
        url: String,
        phase: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{url}: unusable response")]
    Response {
        url: String,
        #[source]
        problem: ResponseError,
    },
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
    #[cfg(feature = "https")]
    #[error("{url}: TLS with {host} failed")]
    Tls {
        url: String,
        host: String,
        #[source]
        source: Box<rustls::Error>,
    },
    #[cfg(feature = "https")]
    #[error("{url}: {host:?} is not a valid TLS server name")]
    ServerName {
        url: String,
        host: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[cfg(feature = "https")]
    #[error("{url}: the certificate of {host} is not valid yet and the clock is wrong (before {build_date}); set the time (RTC) and retry")]
    ClockWrong {
        url: String,
        host: String,
        build_date: String,
        #[source]
        source: Box<rustls::Error>,
    },
    #[error("cannot read the CA bundle {path}")]
    CaBundle {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[cfg(feature = "https")]
    #[error("cannot parse the CA bundle {path}")]
    CaBundlePem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the CA bundle {path} holds no usable CA certificate")]
    CaBundleEmpty { path: PathBuf },
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
    let budget = Budget::starting_now(opts.total_timeout);
    let mut current = Url::parse(url).map_err(url_error)?;
    let mut current_text = url.to_owned();
    for _ in 0..=opts.max_redirects {
        match get_once(&current, &current_text, resolvers, opts, budget, sink)? {
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

/// Maps an io error of `phase`: a deadline the stream enforced becomes [`FetchError::Timeout`]
/// naming it, anything else keeps its cause.
pub(crate) fn io_error(url: &str, phase: &'static str, source: io::Error) -> FetchError {
    match DeadlineExceeded::find(&source) {
        Some(deadline) => FetchError::Timeout {
            url: url.to_owned(),
            phase,
            deadline,
        },
        None => FetchError::Io {
            url: url.to_owned(),
            phase,
            source,
        },
    }
}

fn get_once(
    url: &Url,
    text: &str,
    resolvers: &[SocketAddrV4],
    opts: &FetchOptions,
    budget: Budget,
    sink: &mut dyn Write,
) -> Result<Outcome, FetchError> {
    let timeout = |phase, deadline| FetchError::Timeout {
        url: text.to_owned(),
        phase,
        deadline,
    };
    if url.https && !cfg!(feature = "https") {
        return Err(FetchError::NoTls {
            url: text.to_owned(),
        });
    }
    let ip = dns::resolve_at(&url.host, resolvers, budget.deadline).map_err(|source| {
        FetchError::Dns {
            url: text.to_owned(),
            source,
        }
    })?;
    let addr = SocketAddrV4::new(ip, url.port);
    let total = Deadline::Total(budget.total);
    let remaining = budget
        .remaining()
        .ok_or_else(|| timeout("connect", total))?;
    let (limit, which) = if remaining < opts.connect_timeout {
        (remaining, total)
    } else {
        (
            opts.connect_timeout,
            Deadline::Connect(opts.connect_timeout),
        )
    };
    let tcp =
        TcpStream::connect_timeout(&addr.into(), limit).map_err(|source| match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timeout("connect", which),
            _ => FetchError::Connect {
                url: text.to_owned(),
                addr,
                source,
            },
        })?;
    let tcp = DeadlineStream::new(tcp, opts.first_byte_timeout, budget);
    let mut stream = if url.https {
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
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.target,
        url.authority()
    );
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| io_error(text, "sending the request", e))?;

    let mut reader = BufReader::with_capacity(16 * 1024, stream);
    let response_error = |phase, e: ResponseError| match e {
        ResponseError::Io(source) => io_error(text, phase, source),
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

/// The connection under the HTTP layer; both kinds read and write through a
/// [`DeadlineStream`], so every deadline holds for TLS exactly as for plain HTTP.
enum Connection {
    Plain(DeadlineStream),
    #[cfg(feature = "https")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, DeadlineStream>>),
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "https")]
            Connection::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connection::Plain(tcp) => tcp.write(buf),
            #[cfg(feature = "https")]
            Connection::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
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
