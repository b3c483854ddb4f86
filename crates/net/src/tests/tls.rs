use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{CertificateError, ServerConfig, ServerConnection, StreamOwned};

use super::http::{opts, serve};
use crate::http::fetch_with;
use crate::tls::{classify_at, format_date};
use crate::{error_chain, FetchError};

pub(super) struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

pub(super) fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf for `names`, signed by `ca`; `not_before_year` moves the validity start.
pub(super) fn leaf(ca: &Ca, names: &[&str], not_before_year: Option<i32>) -> Arc<ServerConfig> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if let Some(year) = not_before_year {
        params.not_before = rcgen::date_time_ymd(year, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    Arc::new(config)
}

/// Reads a request head, up to its blank line; false when the client
/// closed or failed first.
pub(super) fn read_request_head(stream: &mut impl Read) -> bool {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Serves one TLS connection answering `response`; returns the port.
fn tls_server(config: Arc<ServerConfig>, response: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((tcp, _)) = listener.accept() else {
            return;
        };
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = ServerConnection::new(config).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        if !read_request_head(&mut tls) {
            return;
        }
        let _ = tls.write_all(response.replace("{PORT}", &port.to_string()).as_bytes());
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    port
}

pub(super) fn bundle(dir: &Path, ca: &Ca) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, &ca.pem).unwrap();
    path
}

fn fetch_tls(port: u16, ca_bundle: PathBuf) -> (Result<u64, FetchError>, Vec<u8>) {
    let mut options = opts();
    options.ca_bundle = Some(ca_bundle);
    options.first_byte_timeout = Duration::from_secs(5);
    let mut body = Vec::new();
    let result = fetch_with(
        &format!("https://127.0.0.1:{port}/o.apkovl.tar.gz"),
        &[],
        &options,
        &mut body,
    );
    (result, body)
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret";

#[test]
fn right_ca_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("test CA");
    let port = tls_server(leaf(&ca, &["127.0.0.1"], None), OK.into());
    let (result, body) = fetch_tls(port, bundle(dir.path(), &ca));
    assert_eq!(result.unwrap(), 6);
    assert_eq!(body, b"secret");
}

#[test]
fn wrong_ca_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("test CA");
    let other = new_ca("other test CA");
    let port = tls_server(leaf(&ca, &["127.0.0.1"], None), OK.into());
    let (result, body) = fetch_tls(port, bundle(dir.path(), &other));
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
    let text = error_chain(&err);
    assert!(
        text.contains("TLS with 127.0.0.1 failed: invalid peer certificate: UnknownIssuer"),
        "{text}"
    );
    assert!(body.is_empty());
}

#[test]
fn wrong_host_name_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("test CA");
    let port = tls_server(leaf(&ca, &["boot.example"], None), OK.into());
    let (result, _) = fetch_tls(port, bundle(dir.path(), &ca));
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
    assert!(
        error_chain(&err).contains("certificate not valid for name"),
        "{err}"
    );
}

#[test]
fn future_certificate_with_a_sane_clock_is_a_certificate_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("test CA");
    let port = tls_server(leaf(&ca, &["127.0.0.1"], Some(2200)), OK.into());
    let (result, _) = fetch_tls(port, bundle(dir.path(), &ca));
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
    assert!(
        error_chain(&err).contains("certificate not valid yet"),
        "{err}"
    );
}

#[test]
fn not_yet_valid_before_the_build_date_blames_the_clock() {
    let not_yet = || rustls::Error::InvalidCertificate(CertificateError::NotValidYet);
    let build = 1_735_689_600; // 2025-01-01
    let err = classify_at(not_yet(), "https://h/x", "h", 0, build);
    assert!(matches!(err, FetchError::ClockWrong { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("the clock is wrong (before 2025-01-01)"),
        "{err}"
    );
    let err = classify_at(not_yet(), "https://h/x", "h", build + 1, build);
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
    let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
    let err = classify_at(expired, "https://h/x", "h", 0, build);
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
}

#[test]
fn https_to_http_redirect_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("test CA");
    let (plain_port, heads) = serve(Vec::new());
    let port = tls_server(
        leaf(&ca, &["127.0.0.1"], None),
        format!("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{plain_port}/x\r\n\r\n"),
    );
    let (result, _) = fetch_tls(port, bundle(dir.path(), &ca));
    let err = result.unwrap_err();
    assert!(matches!(err, FetchError::Downgrade { .. }), "{err:?}");
    assert!(
        heads.try_recv().is_err(),
        "the http URL was never requested"
    );
}

#[test]
fn unusable_ca_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    for (path, want) in [
        (missing, "No such file or directory"),
        (empty, "holds no usable CA certificate"),
    ] {
        // The bundle is read after the TCP connect, so a server must be listening.
        let ca = new_ca("test CA");
        let port = tls_server(leaf(&ca, &["127.0.0.1"], None), OK.into());
        let (result, _) = fetch_tls(port, path.clone());
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::CaBundle { .. } | FetchError::CaBundleEmpty { .. }
            ),
            "{path:?}: {err:?}"
        );
        let text = error_chain(&err);
        assert!(text.contains(want), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}

#[test]
fn dates() {
    for (epoch, date) in [
        (0, "1970-01-01"),
        (951_782_400, "2000-02-29"),
        (1_735_689_599, "2024-12-31"),
        (1_735_689_600, "2025-01-01"),
        (4_107_542_400, "2100-03-01"),
    ] {
        assert_eq!(format_date(epoch), date, "{epoch}");
    }
}
