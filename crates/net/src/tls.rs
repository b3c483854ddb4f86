//! TLS client connections with rustls (ring provider), verified against a PEM CA bundle.
//!
//! Verification always happens (chain and host name, by rustls' webpki verifier); there is
//! no switch to turn it off. A "not valid yet" certificate while the clock is before this
//! crate's build date is reported as a wrong clock, the usual cause on boards without RTC.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use std::io::ErrorKind;

use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::SigningKey;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, RootCertStore, SignatureScheme, StreamOwned,
};
use webpki::ring as algs;

use crate::deadline::DeadlineStream;
use crate::http::{io_error, FetchError};

/// Seconds since the epoch when this crate was built (see build.rs).
const BUILD_EPOCH: &str = env!("ALPINIT_NET_BUILD_EPOCH");

/// Connects TLS over `tcp` and completes the handshake; every socket read and write of the
/// handshake runs under `tcp`'s deadlines.
pub(crate) fn connect(
    mut tcp: DeadlineStream,
    host: &str,
    ca_bundle: Option<&Path>,
    url: &str,
) -> Result<StreamOwned<ClientConnection, DeadlineStream>, FetchError> {
    let failed = |source: rustls::Error| FetchError::Tls {
        url: url.to_owned(),
        host: host.to_owned(),
        source: Box::new(source),
    };
    let bundle = ca_bundle.unwrap_or_else(|| Path::new(crate::FetchOptions::DEFAULT_CA_BUNDLE));
    let roots = load_roots(bundle)?;
    let config = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(failed)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).map_err(|source| FetchError::ServerName {
        url: url.to_owned(),
        host: host.to_owned(),
        source,
    })?;
    let mut conn = ClientConnection::new(Arc::new(config), name).map_err(failed)?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            let tls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .cloned();
            return Err(match tls_error {
                Some(tls) => classify(tls, url, host),
                None => io_error(url, "the TLS handshake", e),
            });
        }
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// The algorithms a client fetching from public and private mirrors needs,
/// and nothing else, so the static init stays small: AES-GCM suites
/// (TLS 1.3's mandatory one and its 256-bit twin, and TLS 1.2's ECDHE ones
/// for older servers), X25519 and P-256 key exchange (P-256 is TLS 1.3's
/// mandatory group), and every certificate signature webpki verifies (P-384
/// stays: CA chains such as ISRG Root X2 use it). ChaCha20-Poly1305, P-384
/// key exchange and the server-side key loading of rustls'
/// `default_provider()` are left out: each is linked only when referenced.
pub(crate) fn provider() -> CryptoProvider {
    use rustls::crypto::ring::{cipher_suite as suite, kx_group};
    CryptoProvider {
        cipher_suites: vec![
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        signature_verification_algorithms: SIGNATURES,
        secure_random: &GetRandom,
        key_provider: &NoClientKeys,
    }
}

/// webpki's ring algorithms, mapped as rustls' ring provider maps them.
static SIGNATURES: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        algs::ECDSA_P256_SHA256,
        algs::ECDSA_P256_SHA384,
        algs::ECDSA_P384_SHA256,
        algs::ECDSA_P384_SHA384,
        algs::ED25519,
        algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        algs::RSA_PKCS1_2048_8192_SHA256,
        algs::RSA_PKCS1_2048_8192_SHA384,
        algs::RSA_PKCS1_2048_8192_SHA512,
        algs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        algs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        algs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[algs::ECDSA_P384_SHA384, algs::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[algs::ECDSA_P256_SHA256, algs::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[algs::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[algs::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[algs::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[algs::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// Randomness from the kernel (`getrandom(2)`), blocking until it is seeded.
#[derive(Debug)]
struct GetRandom;

impl SecureRandom for GetRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        let mut done = 0;
        while done < buf.len() {
            let rest = &mut buf[done..];
            // SAFETY: rest is a valid, writable slice of rest.len() bytes.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            match usize::try_from(n) {
                Ok(n) => done += n,
                Err(_) if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(GetRandomFailed),
            }
        }
        Ok(())
    }
}

/// A client without client certificates loads no private keys.
#[derive(Debug)]
struct NoClientKeys;

impl KeyProvider for NoClientKeys {
    fn load_private_key(
        &self,
        _key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "client certificates are not supported".into(),
        ))
    }
}

fn classify(error: rustls::Error, url: &str, host: &str) -> FetchError {
    let build: u64 = BUILD_EPOCH.parse().unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    classify_at(error, url, host, now, build)
}

/// Maps a handshake error; `now` and `build` are seconds since the epoch.
pub(crate) fn classify_at(
    error: rustls::Error,
    url: &str,
    host: &str,
    now: u64,
    build: u64,
) -> FetchError {
    if let rustls::Error::InvalidCertificate(
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
    ) = &error
    {
        if now < build {
            return FetchError::ClockWrong {
                url: url.to_owned(),
                host: host.to_owned(),
                build_date: format_date(build),
                source: Box::new(error),
            };
        }
    }
    FetchError::Tls {
        url: url.to_owned(),
        host: host.to_owned(),
        source: Box::new(error),
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, FetchError> {
    let pem = |source| match source {
        rustls::pki_types::pem::Error::Io(source) => FetchError::CaBundle {
            path: path.to_owned(),
            source,
        },
        source => FetchError::CaBundlePem {
            path: path.to_owned(),
            source,
        },
    };
    let certs = CertificateDer::pem_file_iter(path).map_err(pem)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        let cert = cert.map_err(pem)?;
        // One odd certificate in a distribution bundle must not disable all the others.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(FetchError::CaBundleEmpty {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// `YYYY-MM-DD` (UTC) for seconds since the epoch.
pub(crate) fn format_date(epoch: u64) -> String {
    // Days to civil date, valid for all dates after 1970 (era arithmetic on March-based
    // years so leap days fall at the end of the year).
    let days = (epoch / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
