use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::http::fetch_with;
use crate::response::{read_body, read_head, Framing};
use crate::{FetchError, FetchOptions, ResponseError};

type Handler = Box<dyn FnOnce(TcpStream, String) + Send>;

/// Serves one connection per handler on 127.0.0.1; each handler gets the request head.
/// Returns the port and a channel of the request heads seen.
pub(super) fn serve(handlers: Vec<Handler>) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for handler in handlers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let head = read_request(&stream);
            let _ = tx.send(head.clone());
            handler(stream, head);
        }
    });
    (port, rx)
}

fn read_request(stream: &TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

fn respond(bytes: &'static [u8]) -> Handler {
    Box::new(move |mut stream, _| {
        let _ = stream.write_all(bytes);
    })
}

/// Sends `head` and then waits until the client hangs up.
fn respond_and_hold(head: &'static [u8]) -> Handler {
    Box::new(move |mut stream, _| {
        let _ = stream.write_all(head);
        let _ = stream.read(&mut [0u8; 1]);
    })
}

pub(super) fn opts() -> FetchOptions {
    FetchOptions {
        ca_bundle: None,
        max_bytes: 1024,
        connect_timeout: Duration::from_secs(5),
        first_byte_timeout: Duration::from_millis(300),
        total_timeout: Duration::from_secs(20),
        max_redirects: 3,
    }
}

fn get(port: u16, path: &str, opts: &FetchOptions) -> (Result<u64, FetchError>, Vec<u8>) {
    let mut body = Vec::new();
    let result = fetch_with(
        &format!("http://127.0.0.1:{port}{path}"),
        &[],
        opts,
        &mut body,
    );
    (result, body)
}

#[test]
fn content_length_body() {
    let (port, heads) = serve(vec![respond(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Other: 1\r\n\r\nhello",
    )]);
    let (result, body) = get(port, "/x/y.apkovl.tar.gz?q=1", &opts());
    assert_eq!(result.unwrap(), 5);
    assert_eq!(body, b"hello");
    let head = heads.recv().unwrap();
    assert!(
        head.starts_with("GET /x/y.apkovl.tar.gz?q=1 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    assert!(head.contains("Connection: close\r\n"), "{head}");
}

#[test]
fn chunked_body() {
    let (port, _) = serve(vec![respond(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n",
    )]);
    let (result, body) = get(port, "/", &opts());
    assert_eq!(result.unwrap(), 9);
    assert_eq!(body, b"wikipedia");
}

#[test]
fn redirect_chain_absolute_and_relative() {
    let (port, heads) = {
        let listener_port = std::sync::Arc::new(std::sync::Mutex::new(0u16));
        let p1 = listener_port.clone();
        let handlers: Vec<Handler> = vec![
            Box::new(move |mut s, _| {
                let port = *p1.lock().unwrap();
                let reply = format!(
                    "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/dir/b\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = s.write_all(reply.as_bytes());
            }),
            respond(b"HTTP/1.1 301 Moved\r\nLocation: c.tar.gz\r\n\r\n"),
            respond(b"HTTP/1.1 307 Temporary\r\nLocation: /final\r\n\r\n"),
            respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ];
        let (port, heads) = serve(handlers);
        *listener_port.lock().unwrap() = port;
        (port, heads)
    };
    let (result, body) = get(port, "/a", &opts());
    assert_eq!(result.unwrap(), 2);
    assert_eq!(body, b"ok");
    let paths: Vec<String> = heads
        .try_iter()
        .map(|h| h.lines().next().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "GET /a HTTP/1.1",
            "GET /dir/b HTTP/1.1",
            "GET /dir/c.tar.gz HTTP/1.1",
            "GET /final HTTP/1.1"
        ]
    );
}

#[test]
fn too_many_redirects() {
    let handlers: Vec<Handler> = (0..4)
        .map(|_| respond(b"HTTP/1.1 302 Found\r\nLocation: /loop\r\n\r\n"))
        .collect();
    let (port, _) = serve(handlers);
    let (result, _) = get(port, "/loop", &opts());
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::TooManyRedirects { max: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn redirect_without_location() {
    let (port, _) = serve(vec![respond(b"HTTP/1.1 302 Found\r\n\r\n")]);
    let (result, _) = get(port, "/", &opts());
    assert!(
        matches!(result, Err(FetchError::NoLocation { .. })),
        "{result:?}"
    );
}

#[test]
fn not_found_names_the_status() {
    let (port, _) = serve(vec![respond(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
    )]);
    let (result, body) = get(port, "/missing", &opts());
    let err = result.unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 404 Not Found"), "{err}");
    assert!(
        body.is_empty(),
        "an error page is never written to the sink"
    );
}

#[test]
fn content_length_over_cap_fails_before_reading() {
    // The server never sends the body: reading it would end in a timeout instead.
    let (port, _) = serve(vec![respond_and_hold(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n",
    )]);
    let (result, body) = get(port, "/", &opts());
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Response {
                problem: ResponseError::TooLarge { limit: 1024 },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(body.is_empty());
}

#[test]
fn body_over_cap_without_length() {
    static BIG: [u8; 4096] = [b'x'; 4096];
    let handler: Handler = Box::new(|mut s, _| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
        let _ = s.write_all(&BIG);
    });
    let (port, _) = serve(vec![handler]);
    let (result, body) = get(port, "/", &opts());
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Response {
                problem: ResponseError::TooLarge { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(body.len() <= 1024);
}

#[test]
fn chunked_body_over_cap() {
    let (port, _) = serve(vec![respond_and_hold(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n",
    )]);
    let (result, _) = get(port, "/", &opts());
    assert!(
        matches!(
            result,
            Err(FetchError::Response {
                problem: ResponseError::TooLarge { .. },
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn short_body_is_an_error() {
    let (port, _) = serve(vec![respond(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    )]);
    let (result, _) = get(port, "/", &opts());
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Response {
                problem: ResponseError::Short { got: 3, .. },
                ..
            }
        ),
        "{err:?}"
    );
    let (port, _) = serve(vec![respond(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    )]);
    let (result, _) = get(port, "/", &opts());
    assert!(
        matches!(
            result,
            Err(FetchError::Response {
                problem: ResponseError::Short { .. },
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn silent_server_times_out() {
    let handler: Handler = Box::new(|mut s, _| {
        let _ = s.read(&mut [0u8; 1]);
    });
    let (port, _) = serve(vec![handler]);
    let (result, _) = get(port, "/", &opts());
    assert!(
        matches!(result, Err(FetchError::Timeout { .. })),
        "{result:?}"
    );
}

#[test]
fn refused_connection_message_keeps_the_cause() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (result, _) = get(port, "/x", &opts());
    let text = crate::error_chain(&result.unwrap_err());
    let want = format!("http://127.0.0.1:{port}/x: cannot connect to 127.0.0.1:{port}: ");
    assert!(text.starts_with(&want), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    assert_eq!(text.matches("Connection refused").count(), 1, "{text}");
}

#[test]
fn refused_connection_and_ftp() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (result, _) = get(port, "/", &opts());
    assert!(
        matches!(result, Err(FetchError::Connect { .. })),
        "{result:?}"
    );

    let err = fetch_with("ftp://h/x.apkovl.tar.gz", &[], &opts(), &mut Vec::new()).unwrap_err();
    assert!(matches!(err, FetchError::Unsupported));
    assert_eq!(
        err.to_string(),
        "ftp:// apkovl URLs are not supported; use http:// or https://"
    );
}

#[test]
fn malformed_heads() {
    let cases: [&[u8]; 9] = [
        b"",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 20x OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
        b"HTTP/1.1 200 OK\r\nX: \xff\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: y",
    ];
    for case in cases {
        let result = read_head(&mut BufReader::new(case));
        assert!(
            matches!(result, Err(ResponseError::Malformed(_))),
            "{:?}: {result:?}",
            String::from_utf8_lossy(case)
        );
    }
    let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert!(matches!(
        read_head(&mut BufReader::new(long.as_bytes())),
        Err(ResponseError::Malformed("line too long"))
    ));
}

#[test]
fn framing_rules() {
    let framing = |head: &str| {
        read_head(&mut BufReader::new(head.as_bytes()))
            .unwrap()
            .framing()
    };
    assert_eq!(
        framing("HTTP/1.0 200 OK\r\ncontent-length: 7\r\n\r\n").unwrap(),
        Framing::Length(7)
    );
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .unwrap(),
        Framing::Chunked
    );
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\n\r\n").unwrap(),
        Framing::UntilClose
    );
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").unwrap(),
        Framing::Length(3)
    );
    for bad in [
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    ] {
        assert!(framing(bad).is_err(), "{bad}");
    }
}

#[test]
fn chunked_edge_cases() {
    let body = |bytes: &[u8]| {
        let mut sink = Vec::new();
        read_body(&mut BufReader::new(bytes), Framing::Chunked, 100, &mut sink).map(|_| sink)
    };
    assert_eq!(body(b"3\r\nabc\r\n0\r\n\r\n").unwrap(), b"abc");
    for bad in [
        &b"zz\r\nabc\r\n0\r\n\r\n"[..],
        b"3\r\nabcd\r\n0\r\n\r\n",
        b"ffffffffffffffffff\r\n",
        b"\r\n",
    ] {
        assert!(
            matches!(body(bad), Err(ResponseError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(matches!(
        body(b"65\r\n"),
        Err(ResponseError::TooLarge { limit: 100 })
    ));
    assert!(matches!(
        body(b"3\r\nabc\r\n"),
        Err(ResponseError::Short { got: 3, .. })
    ));
}

#[test]
fn sink_failure_is_reported() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let result = read_body(
        &mut BufReader::new(&b"abc"[..]),
        Framing::Length(3),
        10,
        &mut Full,
    );
    assert!(matches!(result, Err(ResponseError::Sink(_))), "{result:?}");
}
