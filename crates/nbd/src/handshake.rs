//! The client side of the NBD handshake: fixed newstyle with `NBD_OPT_GO`, falling back to
//! `NBD_OPT_EXPORT_NAME` for servers that do not know `NBD_OPT_GO` or speak only plain
//! newstyle.
//!
//! The layout of every message is in the NBD protocol document (`doc/proto.md` of the
//! NetworkBlockDevice/nbd repository): "Newstyle negotiation" and "Fixed newstyle
//! negotiation" for the greeting and option framing, "`NBD_OPT_INFO` (6) and `NBD_OPT_GO`
//! (7)" and "`NBD_REP_INFO` (3)" for the reply sequence. All integers are big-endian.
//!
//! The handshake asks for no information items. Requesting `NBD_INFO_BLOCK_SIZE` would
//! commit the client to the server's size constraints ("Size constraints" in the document),
//! and the kernel device is set up with 512-byte blocks regardless; a server that insists on
//! other constraints answers `NBD_REP_ERR_BLOCK_SIZE_REQD`, which is reported by name.
//!
//! Hostile input: a reply's length is checked against [`MAX_REPLY_LEN`] before any of its
//! data is read, unknown data is skipped through a fixed stack buffer, at most
//! [`MAX_REPLIES`] replies are read for one option, and no input can make this code panic.

use std::io::{self, Read, Write};

use crate::{Export, NbdError};

/// `NBDMAGIC`, the first eight bytes every server sends.
const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: newstyle negotiation, and the magic of every option request.
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// The second magic of oldstyle negotiation, which is not supported.
pub(crate) const CLISERV_MAGIC: u64 = 0x0000_4202_8186_1253;
/// The magic of every option reply.
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;

const NBD_FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
const NBD_FLAG_NO_ZEROES: u16 = 1 << 1;
const NBD_FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
const NBD_FLAG_C_NO_ZEROES: u32 = 1 << 1;

const NBD_OPT_EXPORT_NAME: u32 = 1;
const NBD_OPT_GO: u32 = 7;

const NBD_REP_ACK: u32 = 1;
const NBD_REP_INFO: u32 = 3;
const NBD_REP_FLAG_ERROR: u32 = 1 << 31;
const NBD_REP_ERR_UNSUP: u32 = NBD_REP_FLAG_ERROR | 1;

const NBD_INFO_EXPORT: u16 = 0;

/// The protocol's limit on strings such as the export name.
const MAX_NAME_LEN: usize = 4096;
/// Bytes of the server's error message kept for the error report.
const MAX_MESSAGE_LEN: usize = 256;
/// Reserved zero bytes after the `NBD_OPT_EXPORT_NAME` reply unless `NO_ZEROES` was agreed.
const ZERO_PAD_LEN: u64 = 124;

/// The largest option reply accepted, in bytes of data. The replies this client reads are
/// at most a few hundred bytes (an export description, an error message of at most 4096
/// bytes by the protocol); anything longer is refused before it is read.
pub const MAX_REPLY_LEN: u32 = 64 * 1024;
/// The most replies read for one option before the server is given up on. A server sends
/// one `NBD_REP_INFO` per information type, of which the protocol defines four.
pub const MAX_REPLIES: usize = 64;

/// Negotiates export `name` ("" is the server's default export) over `stream`, which is
/// connected to an NBD server that has not sent anything yet.
///
/// Uses fixed newstyle `NBD_OPT_GO` when the server offers fixed newstyle, falls back to
/// `NBD_OPT_EXPORT_NAME` when the server answers `NBD_REP_ERR_UNSUP`, and uses
/// `NBD_OPT_EXPORT_NAME` directly with a plain newstyle server. On success the stream is
/// in the transmission phase. `stream` should have read and write timeouts (as
/// [`connect_tcp`](crate::connect_tcp) sets): this function does not bound the time itself.
pub fn handshake<S: Read + Write>(stream: &mut S, name: &str) -> Result<Export, NbdError> {
    if name.len() > MAX_NAME_LEN {
        return Err(NbdError::NameTooLong { len: name.len() });
    }
    if name.as_bytes().contains(&0) {
        return Err(NbdError::NameHasNul);
    }

    let magic = read_u64(stream).map_err(NbdError::Greeting)?;
    if magic != NBDMAGIC {
        return Err(NbdError::GreetingMagic(magic));
    }
    let style = read_u64(stream).map_err(NbdError::Greeting)?;
    if style != IHAVEOPT {
        return Err(NbdError::NotNewstyle(style));
    }
    // Unknown handshake flags are ignored, as the protocol says a client should.
    let flags = read_u16(stream).map_err(NbdError::Greeting)?;
    let fixed = flags & NBD_FLAG_FIXED_NEWSTYLE != 0;
    let no_zeroes = flags & NBD_FLAG_NO_ZEROES != 0;
    let mut client_flags = 0;
    if fixed {
        client_flags |= NBD_FLAG_C_FIXED_NEWSTYLE;
    }
    if no_zeroes {
        client_flags |= NBD_FLAG_C_NO_ZEROES;
    }
    stream
        .write_all(&client_flags.to_be_bytes())
        .and_then(|()| stream.flush())
        .map_err(NbdError::ClientFlags)?;

    if fixed {
        send_option(stream, NBD_OPT_GO, "NBD_OPT_GO", &go_data(name))?;
        if let Some(export) = go_replies(stream, name)? {
            return Ok(export);
        }
    }
    export_name(stream, name, no_zeroes)
}

/// The data of an `NBD_OPT_GO`: name length, name, no information requests.
fn go_data(name: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(6 + name.len());
    // `name` is at most MAX_NAME_LEN bytes, checked by the caller.
    data.extend_from_slice(&(name.len() as u32).to_be_bytes());
    data.extend_from_slice(name.as_bytes());
    data.extend_from_slice(&0u16.to_be_bytes());
    data
}

/// One option request: `IHAVEOPT`, option, data length, data; sent in one write.
fn send_option<S: Write>(
    stream: &mut S,
    option: u32,
    label: &'static str,
    data: &[u8],
) -> Result<(), NbdError> {
    let mut message = Vec::with_capacity(16 + data.len());
    message.extend_from_slice(&IHAVEOPT.to_be_bytes());
    message.extend_from_slice(&option.to_be_bytes());
    // At most 4096 + 6 bytes: the name is bounded before anything is sent.
    message.extend_from_slice(&(data.len() as u32).to_be_bytes());
    message.extend_from_slice(data);
    stream
        .write_all(&message)
        .and_then(|()| stream.flush())
        .map_err(|source| NbdError::SendOption {
            option: label,
            source,
        })
}

/// Reads the replies to `NBD_OPT_GO`: `Some(export)` on `NBD_REP_ACK`, `None` when the
/// server does not support the option (`NBD_REP_ERR_UNSUP`), an error otherwise.
fn go_replies<S: Read>(stream: &mut S, name: &str) -> Result<Option<Export>, NbdError> {
    const OPTION: &str = "NBD_OPT_GO";
    let read_err = |source| NbdError::ReadReply {
        option: OPTION,
        source,
    };
    let mut export = None;
    for _ in 0..MAX_REPLIES {
        let mut header = [0u8; 20];
        stream.read_exact(&mut header).map_err(read_err)?;
        let magic = u64::from_be_bytes(array(&header, 0));
        let option = u32::from_be_bytes(array(&header, 8));
        let reply = u32::from_be_bytes(array(&header, 12));
        let len = u32::from_be_bytes(array(&header, 16));
        if magic != REPLY_MAGIC {
            return Err(NbdError::ReplyMagic {
                option: OPTION,
                magic,
            });
        }
        if option != NBD_OPT_GO {
            return Err(NbdError::ReplyOption {
                option: OPTION,
                got: option,
            });
        }
        if len > MAX_REPLY_LEN {
            return Err(NbdError::ReplyTooLong {
                option: OPTION,
                len,
            });
        }
        match reply {
            NBD_REP_ACK => {
                // An ACK carries no data; tolerate some rather than desynchronise.
                skip(stream, u64::from(len)).map_err(read_err)?;
                return export.map(Some).ok_or_else(|| NbdError::NoExportInfo {
                    export: name.to_owned(),
                });
            }
            NBD_REP_INFO => {
                if len < 2 {
                    return Err(NbdError::ShortInfo { len });
                }
                let info = read_u16(stream).map_err(read_err)?;
                if info == NBD_INFO_EXPORT {
                    if len != 12 {
                        return Err(NbdError::ExportInfoLength { len });
                    }
                    let mut body = [0u8; 10];
                    stream.read_exact(&mut body).map_err(read_err)?;
                    export = Some(Export {
                        size: u64::from_be_bytes(array(&body, 0)),
                        transmission_flags: u16::from_be_bytes(array(&body, 8)),
                    });
                } else {
                    // NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE sent
                    // unasked, or a type this client does not know: ignored, as the
                    // protocol requires.
                    skip(stream, u64::from(len - 2)).map_err(read_err)?;
                }
            }
            code if code & NBD_REP_FLAG_ERROR != 0 => {
                let message = read_message(stream, len).map_err(read_err)?;
                if code == NBD_REP_ERR_UNSUP {
                    return Ok(None);
                }
                return Err(NbdError::ServerError {
                    option: OPTION,
                    export: name.to_owned(),
                    code,
                    message,
                });
            }
            reply => {
                return Err(NbdError::UnexpectedReply {
                    option: OPTION,
                    reply,
                })
            }
        }
    }
    Err(NbdError::TooManyReplies { option: OPTION })
}

/// `NBD_OPT_EXPORT_NAME`, which has no structured reply: the server answers with the
/// export's size and flags (and 124 zero bytes unless `NO_ZEROES` was agreed), or closes the
/// connection.
fn export_name<S: Read + Write>(
    stream: &mut S,
    name: &str,
    no_zeroes: bool,
) -> Result<Export, NbdError> {
    send_option(
        stream,
        NBD_OPT_EXPORT_NAME,
        "NBD_OPT_EXPORT_NAME",
        name.as_bytes(),
    )?;
    let mut body = [0u8; 10];
    stream
        .read_exact(&mut body)
        .map_err(|source| NbdError::ExportNameReply {
            export: name.to_owned(),
            source,
        })?;
    if !no_zeroes {
        skip(stream, ZERO_PAD_LEN).map_err(NbdError::ExportNameZeroes)?;
    }
    Ok(Export {
        size: u64::from_be_bytes(array(&body, 0)),
        transmission_flags: u16::from_be_bytes(array(&body, 8)),
    })
}

/// The name and meaning of an option error reply type, `None` for codes the protocol does
/// not define.
pub(crate) fn rep_error_name(code: u32) -> Option<(&'static str, &'static str)> {
    let names = [
        ("NBD_REP_ERR_UNSUP", "option not supported"),
        ("NBD_REP_ERR_POLICY", "forbidden by server policy"),
        ("NBD_REP_ERR_INVALID", "invalid request"),
        (
            "NBD_REP_ERR_PLATFORM",
            "not supported on the server's platform",
        ),
        ("NBD_REP_ERR_TLS_REQD", "TLS required"),
        ("NBD_REP_ERR_UNKNOWN", "export unknown"),
        ("NBD_REP_ERR_SHUTDOWN", "server shutting down"),
        (
            "NBD_REP_ERR_BLOCK_SIZE_REQD",
            "block size negotiation required",
        ),
        ("NBD_REP_ERR_TOO_BIG", "request or reply too large"),
        ("NBD_REP_ERR_EXT_HEADER_REQD", "extended headers required"),
    ];
    let index = code.checked_sub(NBD_REP_FLAG_ERROR + 1)?;
    names.get(usize::try_from(index).ok()?).copied()
}

/// Reads an error reply's `len` bytes of message, keeping the first [`MAX_MESSAGE_LEN`]
/// as (lossy) text.
fn read_message<S: Read>(stream: &mut S, len: u32) -> io::Result<String> {
    let mut kept = [0u8; MAX_MESSAGE_LEN];
    let keep = (len as usize).min(MAX_MESSAGE_LEN);
    let kept = kept.get_mut(..keep).unwrap_or_default();
    stream.read_exact(kept)?;
    skip(stream, u64::from(len) - keep as u64)?;
    let text = String::from_utf8_lossy(kept);
    Ok(text.trim_end().to_owned())
}

/// Reads and discards exactly `len` bytes through a fixed buffer.
fn skip<S: Read>(stream: &mut S, mut len: u64) -> io::Result<()> {
    let mut buf = [0u8; 512];
    while len > 0 {
        let want = usize::try_from(len).map_or(buf.len(), |n| n.min(buf.len()));
        let chunk = buf.get_mut(..want).unwrap_or_default();
        stream.read_exact(chunk)?;
        len -= want as u64;
    }
    Ok(())
}

fn read_u64<S: Read>(stream: &mut S) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    stream.read_exact(&mut buf)?;
    Ok(u64::from_be_bytes(buf))
}

fn read_u16<S: Read>(stream: &mut S) -> io::Result<u16> {
    let mut buf = [0u8; 2];
    stream.read_exact(&mut buf)?;
    Ok(u16::from_be_bytes(buf))
}

/// `N` bytes of `bytes` from `at`; zeros where `bytes` is too short (callers pass fixed
/// buffers of the right size, so that never happens).
fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = at.checked_add(N).and_then(|end| bytes.get(at..end)) {
        out.copy_from_slice(src);
    }
    out
}
