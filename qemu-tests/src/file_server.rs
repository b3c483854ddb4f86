//! A small HTTP(S) file server for the network-boot scenarios. It listens on
//! 127.0.0.1 (QEMU's user network forwards the guest's 10.0.2.2 there),
//! serves the files of one flat directory, and appends every request target
//! to a log file so the checks can see what the guest asked for. It stops
//! when dropped.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// A stalled guest must not keep the server (and the scenario) alive.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Request heads longer than this are refused.
const MAX_HEAD: usize = 16 * 1024;

pub struct FileServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Serves ROOT over plain HTTP (TLS when `tls` is given), logging
    /// request targets to LOG, one per line.
    pub fn start(root: &Path, log: &Path, tls: Option<Arc<ServerConfig>>) -> Result<FileServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        listener
            .set_nonblocking(true)
            .context("making the listener non-blocking")?;
        let port = listener.local_addr().context("listener address")?.port();
        fs::write(log, b"").with_context(|| format!("creating {}", log.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let state = Serving {
            root: root.to_path_buf(),
            log: log.to_path_buf(),
            tls,
        };
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("file-server-{port}"))
            .spawn(move || state.accept_loop(&listener, &flag))
            .context("starting the file server thread")?;
        Ok(FileServer {
            port,
            stop,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Serving {
    root: PathBuf,
    log: PathBuf,
    tls: Option<Arc<ServerConfig>>,
}

impl Serving {
    fn accept_loop(&self, listener: &TcpListener, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    // One connection at a time is plenty for one guest, and
                    // keeps the request log in order.
                    if let Err(err) = self.connection(stream) {
                        self.note(&format!("# connection error: {err}"));
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(err) => {
                    self.note(&format!("# accept error: {err}"));
                    std::thread::sleep(POLL);
                }
            }
        }
    }

    fn connection(&self, stream: TcpStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        match &self.tls {
            None => self.exchange(stream),
            Some(config) => {
                let conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
                let mut tls = StreamOwned::new(conn, stream);
                let result = self.exchange(&mut tls);
                tls.conn.send_close_notify();
                let _ = tls.flush();
                result
            }
        }
    }

    fn exchange<S: Read + Write>(&self, mut stream: S) -> io::Result<()> {
        let target = {
            let mut reader = BufReader::new(&mut stream);
            let Some(target) = read_head(&mut reader)? else {
                return Ok(());
            };
            target
        };
        self.note(&target);
        let (status, body) = match file_for(&self.root, &target) {
            Some(path) => match fs::read(&path) {
                Ok(body) => ("200 OK", body),
                Err(_) => ("404 Not Found", b"not found\n".to_vec()),
            },
            None => ("404 Not Found", b"not found\n".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(&body)?;
        stream.flush()
    }

    fn note(&self, line: &str) {
        if let Ok(mut file) = fs::OpenOptions::new().append(true).open(&self.log) {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// Reads the request head and returns the request target of a GET (or
/// HEAD); None when the peer closed before sending a request line.
fn read_head<R: BufRead>(reader: &mut R) -> io::Result<Option<String>> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(None);
    }
    let mut total = request_line.len();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        total += n;
        if n == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if total > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
    let mut words = request_line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("GET" | "HEAD"), Some(target)) => Ok(Some(target.to_string())),
        _ => Ok(Some(format!(
            "# unsupported request {:?}",
            request_line.trim()
        ))),
    }
}

/// The file a request target names: the decoded path without its query,
/// one plain file name directly under ROOT (anything else is a 404).
pub fn file_for(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let name = percent_decode(path.strip_prefix('/')?)?;
    let plain = !name.is_empty()
        && !name.contains('/')
        && !name.contains('\0')
        && name != "."
        && name != "..";
    plain.then(|| root.join(name))
}

pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The request targets a server logged to LOG (lines starting with `#` are
/// the server's own notes and are skipped).
pub fn requests(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_targets_map_to_flat_files() {
        let root = Path::new("/srv");
        let cases: &[(&str, Option<&str>)] = &[
            (
                "/52:54:00:12:34:56.apkovl.tar.gz",
                Some("/srv/52:54:00:12:34:56.apkovl.tar.gz"),
            ),
            (
                "/52%3A54%3A00%3A12%3A34%3A56.apkovl.tar.gz",
                Some("/srv/52:54:00:12:34:56.apkovl.tar.gz"),
            ),
            ("/x.apkovl.tar.gz?token=x", Some("/srv/x.apkovl.tar.gz")),
            ("/", None),
            ("/../etc/passwd", None),
            ("/..", None),
            ("/%2e%2e", None),
            ("/a%2Fb", None),
            ("/bad%zz", None),
            ("relative", None),
        ];
        for (target, want) in cases {
            assert_eq!(file_for(root, target), want.map(PathBuf::from), "{target}");
        }
    }

    fn get(port: u16, target: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(stream, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("read");
        reply
    }

    #[test]
    fn serves_files_logs_targets_and_stops_when_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        fs::create_dir_all(&root).expect("mkdir");
        fs::write(root.join("a:b.tar.gz"), b"payload").expect("write");
        let log = dir.path().join("requests.log");
        let server = FileServer::start(&root, &log, None).expect("start");
        let port = server.port();
        let ok = get(port, "/a:b.tar.gz?token=x");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Length: 7\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\npayload"), "{ok}");
        let missing = get(port, "/nope");
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        assert_eq!(requests(&log), ["/a:b.tar.gz?token=x", "/nope"]);
        drop(server);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn serves_over_tls_with_a_leaf_of_the_test_ca() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        use std::net::{IpAddr, Ipv4Addr};

        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("f"), b"secret").expect("write");
        let ca = crate::test_ca::TestCa::generate("server test CA").expect("ca");
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let config = ca.server_config(ip).expect("config");
        let log = dir.path().join("requests.log");
        let server = FileServer::start(dir.path(), &log, Some(config)).expect("start");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).expect("pem"))
            .expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn =
            rustls::ClientConnection::new(Arc::new(client), ServerName::from(ip)).expect("client");
        let tcp = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
        let mut tls = StreamOwned::new(conn, tcp);
        tls.write_all(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut reply = Vec::new();
        let _ = tls.read_to_end(&mut reply);
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        assert!(reply.ends_with("secret"), "{reply}");
        assert_eq!(requests(&log), ["/f"]);
    }
}
