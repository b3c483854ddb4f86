//! Reading an HTTP/1.1 response from any `BufRead`: status line, headers, and the body with
//! Content-Length, chunked or read-until-close framing, always under a byte cap.

use std::io::{self, BufRead, Write};

/// Longest status or header line, and the most header lines, we accept.
const MAX_LINE: usize = 8 * 1024;
const MAX_HEADERS: usize = 100;

/// Why a response body or head was rejected. The HTTP client adds the URL.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("cannot read the response")]
    Io(#[source] io::Error),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the connection closed after {got} of {expected} body bytes")]
    Short { got: u64, expected: String },
    #[error("cannot write the body")]
    Sink(#[source] io::Error),
}

impl From<io::Error> for ResponseError {
    fn from(e: io::Error) -> Self {
        ResponseError::Io(e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: u16,
    pub reason: String,
    /// Names lower-cased; values trimmed.
    pub headers: Vec<(String, String)>,
}

/// How the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn framing(&self) -> Result<Framing, ResponseError> {
        if let Some(coding) = self.header("transfer-encoding") {
            // Only plain chunked is understood; we never send Accept-Encoding.
            return if coding.eq_ignore_ascii_case("chunked") {
                Ok(Framing::Chunked)
            } else {
                Err(ResponseError::Malformed("unsupported Transfer-Encoding"))
            };
        }
        let mut length = None;
        for (_, value) in self.headers.iter().filter(|(n, _)| n == "content-length") {
            let parsed =
                parse_decimal(value).ok_or(ResponseError::Malformed("invalid Content-Length"))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(ResponseError::Malformed("conflicting Content-Length"));
            }
            length = Some(parsed);
        }
        Ok(length.map_or(Framing::UntilClose, Framing::Length))
    }
}

fn parse_decimal(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Reads one line ending in `\n` (the `\r` is dropped), at most [`MAX_LINE`] bytes.
/// `Ok(None)` at a clean end of stream before any byte.
fn read_line(reader: &mut dyn BufRead) -> Result<Option<String>, ResponseError> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(ResponseError::Malformed("line cut short by end of stream"))
            };
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if line.len() + take > MAX_LINE {
            return Err(ResponseError::Malformed("line too long"));
        }
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return String::from_utf8(line)
                .map(Some)
                .map_err(|_| ResponseError::Malformed("line is not UTF-8"));
        }
    }
}

/// Reads the status line and headers.
pub(crate) fn read_head(reader: &mut dyn BufRead) -> Result<Head, ResponseError> {
    let status_line =
        read_line(reader)?.ok_or(ResponseError::Malformed("empty response (no status line)"))?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(ResponseError::Malformed("not an HTTP/1.x status line"));
    }
    let status = parts
        .next()
        .filter(|code| code.len() == 3)
        .and_then(parse_decimal)
        .ok_or(ResponseError::Malformed("invalid status code"))? as u16;
    let reason: String = parts
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or(ResponseError::Malformed("headers cut short"))?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(ResponseError::Malformed("too many headers"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ResponseError::Malformed("header line without ':'"))?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(ResponseError::Malformed("invalid header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Head {
        status,
        reason,
        headers,
    })
}

/// Copies the body to `sink` under `limit` bytes; returns the byte count.
pub(crate) fn read_body(
    reader: &mut dyn BufRead,
    framing: Framing,
    limit: u64,
    sink: &mut dyn Write,
) -> Result<u64, ResponseError> {
    match framing {
        Framing::Length(length) => {
            if length > limit {
                return Err(ResponseError::TooLarge { limit });
            }
            let got = copy(reader, Some(length), limit, 0, sink)?;
            if got < length {
                return Err(ResponseError::Short {
                    got,
                    expected: length.to_string(),
                });
            }
            Ok(got)
        }
        Framing::UntilClose => copy(reader, None, limit, 0, sink),
        Framing::Chunked => read_chunked(reader, limit, sink),
    }
}

/// Copies up to `want` bytes (or to end of stream), failing once `done + copied` would
/// exceed `limit`. Returns the bytes copied by this call.
fn copy(
    reader: &mut dyn BufRead,
    want: Option<u64>,
    limit: u64,
    done: u64,
    sink: &mut dyn Write,
) -> Result<u64, ResponseError> {
    let mut copied = 0u64;
    while want.is_none_or(|w| copied < w) {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        let mut take = available.len() as u64;
        if let Some(w) = want {
            take = take.min(w - copied);
        }
        if done + copied + take > limit {
            return Err(ResponseError::TooLarge { limit });
        }
        let take = take as usize;
        sink.write_all(&available[..take])
            .map_err(ResponseError::Sink)?;
        reader.consume(take);
        copied += take as u64;
    }
    Ok(copied)
}

fn read_chunked(
    reader: &mut dyn BufRead,
    limit: u64,
    sink: &mut dyn Write,
) -> Result<u64, ResponseError> {
    let short = |got| ResponseError::Short {
        got,
        expected: "the end of the chunked body".into(),
    };
    let mut total = 0u64;
    loop {
        let line = read_line(reader)?.ok_or_else(|| short(total))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        if size_text.is_empty() || size_text.len() > 16 {
            return Err(ResponseError::Malformed("invalid chunk size"));
        }
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| ResponseError::Malformed("invalid chunk size"))?;
        if size == 0 {
            break;
        }
        if total.saturating_add(size) > limit {
            return Err(ResponseError::TooLarge { limit });
        }
        let got = copy(reader, Some(size), limit, total, sink)?;
        total += got;
        if got < size {
            return Err(short(total));
        }
        match read_line(reader)? {
            Some(empty) if empty.is_empty() => {}
            Some(_) => return Err(ResponseError::Malformed("chunk not followed by CRLF")),
            None => return Err(short(total)),
        }
    }
    // Trailers, bounded like headers.
    for _ in 0..=MAX_HEADERS {
        match read_line(reader)? {
            Some(line) if line.is_empty() => return Ok(total),
            Some(_) => {}
            None => return Err(short(total)),
        }
    }
    Err(ResponseError::Malformed("too many trailers"))
}
