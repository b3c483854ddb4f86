//! TLS client connections with rustls (ring provider), verified against a PEM CA bundle.
//!
//! Verification always happens (chain and host name, by rustls' webpki verifier); there is
//! no switch to turn it off. A "not valid yet" certificate while the clock is before this
//! crate's build date is reported as a wrong clock, the usual cause on boards without RTC.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

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
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
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
