//! [`connect_tcp`] against real listeners on 127.0.0.1: a good server, a silent one, one
//! that trickles bytes, and none at all.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::tests::{
    ack, cat, client_flags, go, greeting, info, info_export, EXPORT, FIXED, NO_ZEROES, SIZE, TFLAGS,
};
use crate::{connect_tcp, NbdError};

/// Serves one connection on 127.0.0.1 with `serve`; returns the address and the thread.
fn server(
    serve: impl FnOnce(std::net::TcpStream) + Send + 'static,
) -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        serve(stream);
    });
    (addr, handle)
}

#[test]
fn tcp_go_success() {
    let (addr, handle) = server(|mut s| {
        s.write_all(&greeting(FIXED | NO_ZEROES)).unwrap();
        let expected = cat(&[&client_flags(3), &go("disk")]);
        let mut got = vec![0; expected.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, expected);
        s.write_all(&cat(&[
            &info(1, b"disk"),
            &info_export(SIZE, TFLAGS),
            &ack(),
        ]))
        .unwrap();
        // Hold the connection until the client closes it.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "client sent more: {rest:?}");
    });
    let (stream, export) = connect_tcp(addr, "disk", Duration::from_secs(5)).unwrap();
    assert_eq!(export, EXPORT);
    assert_eq!(stream.peer_addr().unwrap(), addr);
    assert!(stream.nodelay().unwrap());
    drop(stream);
    handle.join().unwrap();
}

#[test]
fn tcp_silent_server_times_out() {
    let (done, wait) = mpsc::channel::<()>();
    let (addr, handle) = server(move |s| {
        let _ = wait.recv();
        drop(s);
    });
    let start = Instant::now();
    let result = connect_tcp(addr, "", Duration::from_millis(300));
    let elapsed = start.elapsed();
    done.send(()).unwrap();
    handle.join().unwrap();
    let Err(NbdError::Greeting(source)) = result else {
        panic!("{result:?}");
    };
    assert_eq!(source.kind(), io::ErrorKind::TimedOut);
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn tcp_trickling_server_is_cut_off_by_the_deadline() {
    let (addr, handle) = server(|mut s| {
        // One byte every 50 ms: every read gets data well inside a per-read timeout, but
        // the greeting alone would take 900 ms.
        for byte in greeting(FIXED) {
            if s.write_all(&[byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let start = Instant::now();
    let result = connect_tcp(addr, "", Duration::from_millis(300));
    let elapsed = start.elapsed();
    handle.join().unwrap();
    let Err(NbdError::Greeting(source)) = result else {
        panic!("{result:?}");
    };
    assert_eq!(source.kind(), io::ErrorKind::TimedOut);
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
}

#[test]
fn tcp_connection_refused() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let result = connect_tcp(addr, "", Duration::from_secs(2));
    let Err(NbdError::Connect { addr: failed, .. }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(failed, addr);
}
