//! Handshake tests against scripted servers: byte streams written out here from the
//! protocol document, independently of the client's encoder.

use std::io::{self, Cursor, Read, Write};

use crate::{handshake, Export, NbdError, MAX_REPLIES, MAX_REPLY_LEN};

/// An in-memory connection: the server's canned bytes to read, and a record of what the
/// client wrote.
struct Scripted {
    server: Cursor<Vec<u8>>,
    client: Vec<u8>,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.server.read(buf)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.client.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn run(server: &[u8], name: &str) -> (Result<Export, NbdError>, Vec<u8>) {
    let mut conn = Scripted {
        server: Cursor::new(server.to_vec()),
        client: Vec::new(),
    };
    let result = handshake(&mut conn, name);
    (result, conn.client)
}

// --- server side ----------------------------------------------------------------------

pub(crate) const FIXED: u16 = 1;
pub(crate) const NO_ZEROES: u16 = 2;
const GO: u32 = 7;
const EXPORT_NAME: u32 = 1;
const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const ERR: u32 = 1 << 31;
pub(crate) const SIZE: u64 = 0x0000_0001_0000_0200;
pub(crate) const TFLAGS: u16 = 0b0000_0011; // HAS_FLAGS | READ_ONLY
pub(crate) const EXPORT: Export = Export {
    size: SIZE,
    transmission_flags: TFLAGS,
};

pub(crate) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(crate) fn greeting(flags: u16) -> Vec<u8> {
    cat(&[b"NBDMAGIC", b"IHAVEOPT", &flags.to_be_bytes()])
}

fn reply(option: u32, kind: u32, data: &[u8]) -> Vec<u8> {
    let len = data.len() as u32;
    cat(&[
        &[0, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9],
        &option.to_be_bytes(),
        &kind.to_be_bytes(),
        &len.to_be_bytes(),
        data,
    ])
}

pub(crate) fn info(kind: u16, payload: &[u8]) -> Vec<u8> {
    reply(GO, REP_INFO, &cat(&[&kind.to_be_bytes(), payload]))
}

pub(crate) fn info_export(size: u64, flags: u16) -> Vec<u8> {
    info(0, &cat(&[&size.to_be_bytes(), &flags.to_be_bytes()]))
}

pub(crate) fn ack() -> Vec<u8> {
    reply(GO, REP_ACK, &[])
}

/// The answer to NBD_OPT_EXPORT_NAME, with or without the 124 reserved bytes.
fn export_answer(size: u64, flags: u16, zeroes: bool) -> Vec<u8> {
    let pad = if zeroes { 124 } else { 0 };
    cat(&[&size.to_be_bytes(), &flags.to_be_bytes(), &vec![0; pad]])
}

// --- client side ----------------------------------------------------------------------

pub(crate) fn client_flags(flags: u32) -> Vec<u8> {
    flags.to_be_bytes().to_vec()
}

fn option(option: u32, data: &[u8]) -> Vec<u8> {
    let len = data.len() as u32;
    cat(&[b"IHAVEOPT", &option.to_be_bytes(), &len.to_be_bytes(), data])
}

pub(crate) fn go(name: &str) -> Vec<u8> {
    let len = name.len() as u32;
    option(GO, &cat(&[&len.to_be_bytes(), name.as_bytes(), &[0, 0]]))
}

fn export_name(name: &str) -> Vec<u8> {
    option(EXPORT_NAME, name.as_bytes())
}

// --- the table --------------------------------------------------------------------------

struct Case {
    what: &'static str,
    name: &'static str,
    server: Vec<u8>,
    /// The export, or the error's exact message.
    expect: Result<Export, String>,
    /// Everything the client must have written.
    sent: Vec<u8>,
}

fn ok(what: &'static str, name: &'static str, server: Vec<u8>, sent: Vec<u8>) -> Case {
    Case {
        what,
        name,
        server,
        expect: Ok(EXPORT),
        sent,
    }
}

fn err(what: &'static str, name: &'static str, server: Vec<u8>, msg: &str, sent: Vec<u8>) -> Case {
    Case {
        what,
        name,
        server,
        expect: Err(msg.to_owned()),
        sent,
    }
}

/// The valid streams, also used for the truncation test.
fn valid_cases() -> Vec<Case> {
    vec![
        ok(
            "GO, NO_ZEROES",
            "root",
            cat(&[
                &greeting(FIXED | NO_ZEROES),
                &info_export(SIZE, TFLAGS),
                &ack(),
            ]),
            cat(&[&client_flags(3), &go("root")]),
        ),
        ok(
            "GO, default export",
            "",
            cat(&[&greeting(FIXED), &info_export(SIZE, TFLAGS), &ack()]),
            cat(&[&client_flags(1), &go("")]),
        ),
        ok(
            "GO, unknown information types before NBD_INFO_EXPORT",
            "root",
            cat(&[
                &greeting(FIXED | NO_ZEROES),
                &info(1, b"canonical/root"), // NBD_INFO_NAME
                &info(2, b"the root disk"),  // NBD_INFO_DESCRIPTION
                &info(3, &[0, 0, 2, 0, 0, 0, 16, 0, 2, 0, 0, 0]), // NBD_INFO_BLOCK_SIZE
                &info(0x7777, &[0xff; 3000]),
                &info(0x1234, &[]),
                &info_export(SIZE, TFLAGS),
                &ack(),
            ]),
            cat(&[&client_flags(3), &go("root")]),
        ),
        ok(
            "GO unsupported, EXPORT_NAME with the 124 zero bytes",
            "root",
            cat(&[
                &greeting(FIXED),
                &reply(GO, ERR + 1, b"unknown option"),
                &export_answer(SIZE, TFLAGS, true),
            ]),
            cat(&[&client_flags(1), &go("root"), &export_name("root")]),
        ),
        ok(
            "GO unsupported, EXPORT_NAME without the zero bytes",
            "root",
            cat(&[
                &greeting(FIXED | NO_ZEROES),
                &reply(GO, ERR + 1, &[]),
                &export_answer(SIZE, TFLAGS, false),
            ]),
            cat(&[&client_flags(3), &go("root"), &export_name("root")]),
        ),
        ok(
            "plain newstyle: EXPORT_NAME directly",
            "root",
            cat(&[&greeting(0), &export_answer(SIZE, TFLAGS, true)]),
            cat(&[&client_flags(0), &export_name("root")]),
        ),
        ok(
            "plain newstyle with NO_ZEROES",
            "",
            cat(&[&greeting(NO_ZEROES), &export_answer(SIZE, TFLAGS, false)]),
            cat(&[&client_flags(2), &export_name("")]),
        ),
        ok(
            "unknown handshake flags are ignored",
            "root",
            cat(&[
                &greeting(0xfff0 | FIXED | NO_ZEROES),
                &info_export(SIZE, TFLAGS),
                &ack(),
            ]),
            cat(&[&client_flags(3), &go("root")]),
        ),
        ok(
            "as many replies as allowed",
            "root",
            cat(&[
                &greeting(FIXED | NO_ZEROES),
                &info(9, &[]).repeat(MAX_REPLIES - 2),
                &info_export(SIZE, TFLAGS),
                &ack(),
            ]),
            cat(&[&client_flags(3), &go("root")]),
        ),
    ]
}

fn error_cases() -> Vec<Case> {
    let go_sent = cat(&[&client_flags(3), &go("root")]);
    let fixed = || greeting(FIXED | NO_ZEROES);
    vec![
        err(
            "oldstyle server",
            "root",
            cat(&[
                b"NBDMAGIC",
                &0x0000_4202_8186_1253u64.to_be_bytes(),
                &SIZE.to_be_bytes(),
                &[0; 128],
            ]),
            "server greeting: oldstyle negotiation (magic 0x00420281861253), only newstyle negotiation (IHAVEOPT) is supported",
            vec![],
        ),
        err(
            "unknown second magic",
            "root",
            cat(&[b"NBDMAGIC", b"IHAVEOPX", &[0, 3]]),
            "server greeting: unknown negotiation magic 0x49484156454f5058, only newstyle negotiation (IHAVEOPT) is supported",
            vec![],
        ),
        err(
            "bad NBDMAGIC",
            "root",
            cat(&[b"NBDMAGIX", b"IHAVEOPT", &[0, 3]]),
            "server greeting: bad magic 0x4e42444d41474958, expected NBDMAGIC",
            vec![],
        ),
        err(
            "empty stream",
            "root",
            vec![],
            "server greeting: cannot read",
            vec![],
        ),
        err(
            "NBD_REP_ERR_UNKNOWN",
            "root",
            cat(&[&fixed(), &reply(GO, ERR + 6, b"no such export\n")]),
            "NBD_OPT_GO for export \"root\": server error NBD_REP_ERR_UNKNOWN (export unknown): \"no such export\"",
            go_sent.clone(),
        ),
        err(
            "NBD_REP_ERR_UNKNOWN for the default export, no message",
            "",
            cat(&[&fixed(), &reply(GO, ERR + 6, &[])]),
            "NBD_OPT_GO for export \"\": server error NBD_REP_ERR_UNKNOWN (export unknown)",
            cat(&[&client_flags(3), &go("")]),
        ),
        err(
            "NBD_REP_ERR_TLS_REQD after information",
            "root",
            cat(&[&fixed(), &info(1, b"x"), &reply(GO, ERR + 5, &[])]),
            "NBD_OPT_GO for export \"root\": server error NBD_REP_ERR_TLS_REQD (TLS required)",
            go_sent.clone(),
        ),
        err(
            "NBD_REP_ERR_BLOCK_SIZE_REQD",
            "root",
            cat(&[&fixed(), &reply(GO, ERR + 8, &[])]),
            "NBD_OPT_GO for export \"root\": server error NBD_REP_ERR_BLOCK_SIZE_REQD (block size negotiation required)",
            go_sent.clone(),
        ),
        err(
            "undefined error code",
            "root",
            cat(&[&fixed(), &reply(GO, ERR + 77, &[])]),
            "NBD_OPT_GO for export \"root\": server error 0x8000004d (unknown error code)",
            go_sent.clone(),
        ),
        err(
            "long error message is cut, and control characters escaped",
            "root",
            cat(&[&fixed(), &reply(GO, ERR + 2, &cat(&[b"\x1b[2J", &[b'a'; 4000]]))]),
            &format!(
                "NBD_OPT_GO for export \"root\": server error NBD_REP_ERR_POLICY (forbidden by server policy): \"\\u{{1b}}[2J{}\"",
                "a".repeat(252)
            ),
            go_sent.clone(),
        ),
        err(
            "reply length over the cap, without the data",
            "root",
            cat(&[&fixed(), &reply(GO, REP_INFO, &[])[..16], &u32::MAX.to_be_bytes()]),
            "NBD_OPT_GO reply: length 4294967295 over the limit of 65536",
            go_sent.clone(),
        ),
        err(
            "reply length one over the cap",
            "root",
            cat(&[&fixed(), &reply(GO, REP_ACK, &[])[..16], &(MAX_REPLY_LEN + 1).to_be_bytes()]),
            "NBD_OPT_GO reply: length 65537 over the limit of 65536",
            go_sent.clone(),
        ),
        err(
            "ACK without NBD_INFO_EXPORT",
            "root",
            cat(&[&fixed(), &info(1, b"root"), &ack()]),
            "NBD_OPT_GO for export \"root\": server acknowledged without NBD_INFO_EXPORT",
            go_sent.clone(),
        ),
        err(
            "too many replies",
            "root",
            cat(&[&fixed(), &info(9, &[]).repeat(MAX_REPLIES + 1)]),
            "NBD_OPT_GO: more than 64 replies",
            go_sent.clone(),
        ),
        err(
            "too many replies before the export",
            "root",
            cat(&[
                &fixed(),
                &info(9, &[]).repeat(MAX_REPLIES - 1),
                &info_export(SIZE, TFLAGS),
                &ack(),
            ]),
            "NBD_OPT_GO: more than 64 replies",
            go_sent.clone(),
        ),
        err(
            "bad reply magic",
            "root",
            cat(&[&fixed(), &[0xff; 20]]),
            "NBD_OPT_GO reply: bad magic 0xffffffffffffffff",
            go_sent.clone(),
        ),
        err(
            "reply to another option",
            "root",
            cat(&[&fixed(), &reply(EXPORT_NAME, REP_ACK, &[])]),
            "NBD_OPT_GO reply: answers option 1",
            go_sent.clone(),
        ),
        err(
            "NBD_REP_SERVER is not an answer to GO",
            "root",
            cat(&[&fixed(), &reply(GO, REP_SERVER, b"\0\0\0\0")]),
            "NBD_OPT_GO reply: unexpected reply type 0x2",
            go_sent.clone(),
        ),
        err(
            "NBD_REP_INFO without a type",
            "root",
            cat(&[&fixed(), &reply(GO, REP_INFO, &[0])]),
            "NBD_REP_INFO: length 1 leaves no room for the information type",
            go_sent.clone(),
        ),
        err(
            "NBD_INFO_EXPORT of the wrong length",
            "root",
            cat(&[&fixed(), &info(0, &[0; 12])]),
            "NBD_INFO_EXPORT: length 14, expected 12",
            go_sent.clone(),
        ),
        err(
            "EXPORT_NAME refused by closing the connection",
            "root",
            greeting(0),
            "NBD_OPT_EXPORT_NAME for export \"root\": no export size and flags (a server closes the connection for an unknown export)",
            cat(&[&client_flags(0), &export_name("root")]),
        ),
        err(
            "EXPORT_NAME without the zero bytes it owes",
            "root",
            cat(&[&greeting(0), &export_answer(SIZE, TFLAGS, false)]),
            "NBD_OPT_EXPORT_NAME: cannot read the 124 reserved bytes",
            cat(&[&client_flags(0), &export_name("root")]),
        ),
        err(
            "name over 4096 bytes: nothing read or sent",
            Box::leak("n".repeat(4097).into_boxed_str()),
            greeting(FIXED),
            "export name: 4097 bytes, over the protocol's limit of 4096",
            vec![],
        ),
        err(
            "name with NUL",
            "ro\0ot",
            greeting(FIXED),
            "export name contains a NUL byte",
            vec![],
        ),
    ]
}

#[test]
fn handshake_table() {
    for case in valid_cases().into_iter().chain(error_cases()) {
        let (result, sent) = run(&case.server, case.name);
        let got = result.map_err(|e| e.to_string());
        assert_eq!(got, case.expect, "{}", case.what);
        assert_eq!(sent, case.sent, "{}: bytes sent", case.what);
    }
}

#[test]
fn name_of_4096_bytes_is_sent() {
    let name = "n".repeat(4096);
    let server = cat(&[&greeting(FIXED), &info_export(SIZE, TFLAGS), &ack()]);
    let (result, sent) = run(&server, &name);
    assert_eq!(result.unwrap(), EXPORT);
    assert_eq!(sent, cat(&[&client_flags(1), &go(&name)]));
}

#[test]
fn the_last_export_information_wins() {
    let server = cat(&[
        &greeting(FIXED),
        &info_export(1, 1),
        &info_export(SIZE, TFLAGS),
        &ack(),
    ]);
    assert_eq!(run(&server, "").0.unwrap(), EXPORT);
}

#[test]
fn truncated_streams_fail_at_every_point() {
    for case in valid_cases() {
        for len in 0..case.server.len() {
            let (result, _) = run(&case.server[..len], case.name);
            assert!(result.is_err(), "{} cut at {len}: {result:?}", case.what);
        }
        assert!(run(&case.server, case.name).0.is_ok(), "{}", case.what);
    }
}

#[test]
fn read_failures_keep_the_io_error() {
    let (result, _) = run(&greeting(0), "root");
    let Err(NbdError::ExportNameReply { source, .. }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
    let (result, _) = run(&cat(&[&greeting(FIXED), &[0; 7]]), "root");
    let Err(NbdError::ReadReply { option, source }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(option, "NBD_OPT_GO");
    assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn server_error_keeps_the_code() {
    let server = cat(&[&greeting(FIXED), &reply(GO, ERR + 9, b"too big")]);
    let (result, _) = run(&server, "x");
    let Err(NbdError::ServerError {
        option,
        export,
        code,
        message,
    }) = result
    else {
        panic!("{result:?}");
    };
    assert_eq!(
        (option, export.as_str(), code, message.as_str()),
        ("NBD_OPT_GO", "x", 0x8000_0009, "too big")
    );
}
