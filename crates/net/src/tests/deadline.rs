//! Servers that trickle bytes: every deadline must hold for TLS exactly as for plain HTTP,
//! including while rustls is still assembling one record from many tiny socket reads.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::{ServerConnection, StreamOwned};

use super::http::opts;
use super::tls::{bundle, leaf, new_ca, read_request_head};
use crate::http::fetch_with;
use crate::{error_chain, Deadline, FetchError, FetchOptions};

/// How long a dribbling server keeps going; far beyond every client timeout used here, so
/// a client that ignores its deadline is caught by the elapsed-time assertion.
const SERVER_LIFETIME: Duration = Duration::from_secs(15);
/// Slack for thread start-up and a slow test machine.
const MARGIN: Duration = Duration::from_millis(1500);

/// A socket that, once `slow` is set, writes one byte per `gap`.
struct Dribble {
    tcp: TcpStream,
    slow: Arc<AtomicBool>,
    gap: Duration,
    until: Instant,
}

impl Read for Dribble {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Dribble {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.slow.load(Ordering::SeqCst) || buf.is_empty() {
            return self.tcp.write(buf);
        }
        if Instant::now() > self.until {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        thread::sleep(self.gap);
        self.tcp.write(&buf[..1])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

#[derive(Clone, Copy)]
enum Trickle {
    /// The server's whole handshake flight, byte by byte.
    Handshake,
    /// Head sent at once, then the body (one TLS record) byte by byte.
    Body,
}

/// One TLS connection that trickles as `how` says; returns the port and the CA bundle.
fn tls_dribbler(how: Trickle, gap: Duration, dir: &std::path::Path) -> (u16, std::path::PathBuf) {
    let ca = new_ca("test CA");
    let config = leaf(&ca, &["127.0.0.1"], None);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((tcp, _)) = listener.accept() else {
            return;
        };
        tcp.set_read_timeout(Some(SERVER_LIFETIME)).unwrap();
        let slow = Arc::new(AtomicBool::new(matches!(how, Trickle::Handshake)));
        let sock = Dribble {
            tcp,
            slow: Arc::clone(&slow),
            gap,
            until: Instant::now() + SERVER_LIFETIME,
        };
        let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), sock);
        if !read_request_head(&mut tls) {
            return;
        }
        let body = vec![b'x'; 500];
        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n");
        let _ = tls.flush();
        slow.store(true, Ordering::SeqCst);
        let _ = tls.write_all(&body);
        let _ = tls.flush();
    });
    (port, bundle(dir, &ca))
}

fn timed_fetch(url: &str, options: &FetchOptions) -> (FetchError, Duration) {
    let start = Instant::now();
    let result = fetch_with(url, &[], options, &mut Vec::new());
    (result.unwrap_err(), start.elapsed())
}

fn deadline_opts(stall: Duration, total: Duration) -> FetchOptions {
    FetchOptions {
        first_byte_timeout: stall,
        total_timeout: total,
        max_bytes: 1 << 20,
        ..opts()
    }
}

fn want_timeout(err: &FetchError, phase: &str, deadline: Deadline) {
    match err {
        FetchError::Timeout {
            phase: p,
            deadline: d,
            ..
        } => {
            assert_eq!((*p, *d), (phase, deadline), "{err}");
        }
        other => panic!("not a timeout: {other:?}"),
    }
}

/// An HTTPS fetch from [`tls_dribbler`] (`how`, a byte every `gap`) with
/// the stall/first-byte and total deadlines given; the error and how long
/// the client took to give up.
fn tls_dribble_fetch(
    how: Trickle,
    gap: Duration,
    stall: Duration,
    total: Duration,
) -> (FetchError, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let (port, ca) = tls_dribbler(how, gap, dir.path());
    let mut options = deadline_opts(stall, total);
    options.ca_bundle = Some(ca);
    timed_fetch(&format!("https://127.0.0.1:{port}/x"), &options)
}

#[test]
fn tls_handshake_dribble_stops_at_the_total_timeout() {
    let total = Duration::from_secs(2);
    let (err, elapsed) = tls_dribble_fetch(
        Trickle::Handshake,
        Duration::from_millis(300),
        Duration::from_secs(1),
        total,
    );
    want_timeout(&err, "the TLS handshake", Deadline::Total(total));
    assert!(elapsed < total + MARGIN, "gave up after {elapsed:?}");
    assert!(
        error_chain(&err)
            .contains("timed out during the TLS handshake (total timeout of 2 s exceeded)"),
        "{}",
        error_chain(&err)
    );
}

#[test]
fn tls_body_dribble_stops_at_the_total_timeout() {
    let total = Duration::from_secs(3);
    let (err, elapsed) = tls_dribble_fetch(
        Trickle::Body,
        Duration::from_millis(300),
        Duration::from_secs(1),
        total,
    );
    want_timeout(&err, "reading the body", Deadline::Total(total));
    assert!(elapsed < total + MARGIN, "gave up after {elapsed:?}");
}

#[test]
fn tls_body_silence_is_a_stall() {
    let stall = Duration::from_millis(500);
    let (err, elapsed) = tls_dribble_fetch(
        Trickle::Body,
        Duration::from_secs(5),
        stall,
        Duration::from_secs(10),
    );
    want_timeout(&err, "reading the body", Deadline::Stall(stall));
    assert!(elapsed < stall + MARGIN, "gave up after {elapsed:?}");
    assert!(err.to_string().contains("stall timeout of 0.5 s"), "{err}");
}

#[test]
fn plain_body_dribble_stops_at_the_total_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((mut tcp, _)) = listener.accept() else {
            return;
        };
        let _ = tcp.read(&mut [0u8; 1024]);
        let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n");
        let until = Instant::now() + SERVER_LIFETIME;
        while Instant::now() < until && tcp.write_all(b"x").is_ok() {
            thread::sleep(Duration::from_millis(300));
        }
    });
    let total = Duration::from_secs(2);
    let options = deadline_opts(Duration::from_secs(1), total);
    let (err, elapsed) = timed_fetch(&format!("http://127.0.0.1:{port}/x"), &options);
    want_timeout(&err, "reading the body", Deadline::Total(total));
    assert!(elapsed < total + MARGIN, "gave up after {elapsed:?}");
}

#[test]
fn first_byte_timeout_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((mut tcp, _)) = listener.accept() else {
            return;
        };
        tcp.set_read_timeout(Some(SERVER_LIFETIME)).unwrap();
        let _ = tcp.read(&mut [0u8; 1024]);
        let _ = tcp.read(&mut [0u8; 1]);
    });
    let first = Duration::from_millis(400);
    let options = deadline_opts(first, Duration::from_secs(10));
    let (err, elapsed) = timed_fetch(&format!("http://127.0.0.1:{port}/x"), &options);
    want_timeout(&err, "waiting for the response", Deadline::FirstByte(first));
    assert!(elapsed < first + MARGIN, "gave up after {elapsed:?}");
}

#[test]
fn deadline_seconds_print_as_the_f64_display_of_the_duration() {
    // The messages print seconds with integer arithmetic (no float formatting in the
    // init); the text must stay what `{}` of `as_secs_f64()` gives.
    let cases = [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_millis(1),
        Duration::from_millis(250),
        Duration::from_millis(500),
        Duration::from_millis(1500),
        Duration::from_secs(2),
        Duration::from_secs(30),
        Duration::from_millis(12_345),
        Duration::from_micros(1_000_001),
        Duration::from_secs(3600),
    ];
    for d in cases {
        let secs = d.as_secs_f64();
        assert_eq!(
            Deadline::Stall(d).to_string(),
            format!("stall timeout of {secs} s without data")
        );
        assert_eq!(
            Deadline::Total(d).to_string(),
            format!("total timeout of {secs} s")
        );
    }
}
