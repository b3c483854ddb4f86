//! A throw-away certificate authority for the HTTPS scenarios: its
//! certificate goes into the https test image as the CA bundle, and the
//! harness's TLS server presents a leaf it signs (or, for the wrong-CA case,
//! a leaf signed by a second, unrelated CA).

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// Where the image's CA lives under the harness output dir.
pub fn ca_dir(out_dir: &Path) -> PathBuf {
    out_dir.join("images").join("test-ca")
}

/// The subject name of the CA the https image trusts.
pub const IMAGE_CA_NAME: &str = "alpinit test CA";

const CERT_FILE: &str = "ca.pem";
const KEY_FILE: &str = "ca.key";

pub struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// The CA's subject; the issuer of every leaf must repeat it exactly, so
/// it is rebuilt from the name whenever the key is reloaded.
fn ca_params(name: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ok(params)
}

impl TestCa {
    pub fn generate(name: &str) -> Result<TestCa> {
        let params = ca_params(name)?;
        let key = KeyPair::generate().context("generating the CA key")?;
        let cert = params
            .self_signed(&key)
            .context("self-signing the CA certificate")?;
        Ok(TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes `ca.pem` and `ca.key` into DIR; returns the path of `ca.pem`
    /// (what the image installs as its CA bundle).
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let cert = dir.join(CERT_FILE);
        fs::write(&cert, &self.cert_pem).with_context(|| format!("writing {}", cert.display()))?;
        let key = dir.join(KEY_FILE);
        fs::write(&key, self.issuer.key().serialize_pem())
            .with_context(|| format!("writing {}", key.display()))?;
        Ok(cert)
    }

    /// Reloads a CA written by [`TestCa::save`] with the same NAME.
    pub fn load(dir: &Path, name: &str) -> Result<TestCa> {
        let cert = dir.join(CERT_FILE);
        let cert_pem =
            fs::read_to_string(&cert).with_context(|| format!("reading {}", cert.display()))?;
        let key = dir.join(KEY_FILE);
        let key_pem =
            fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
        let key = KeyPair::from_pem(&key_pem).context("parsing the CA key")?;
        Ok(TestCa {
            cert_pem,
            issuer: Issuer::new(ca_params(name)?, key),
        })
    }

    /// A rustls server configuration presenting a leaf for IP, signed by
    /// this CA.
    pub fn server_config(&self, ip: IpAddr) -> Result<Arc<ServerConfig>> {
        let mut params = CertificateParams::new(Vec::<String>::new()).context("leaf parameters")?;
        params
            .distinguished_name
            .push(DnType::CommonName, ip.to_string());
        params.subject_alt_names = vec![SanType::IpAddress(ip)];
        let key = KeyPair::generate().context("generating the leaf key")?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing the leaf")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .context("TLS server certificate")?;
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_ca_reloads_with_the_same_certificate_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::generate("reload test CA").expect("generate");
        let path = ca.save(dir.path()).expect("save");
        assert!(fs::read_to_string(&path)
            .expect("read")
            .starts_with("-----BEGIN CERTIFICATE-----"));
        let again = TestCa::load(dir.path(), "reload test CA").expect("load");
        assert_eq!(again.cert_pem(), ca.cert_pem());
        assert_eq!(
            again.issuer.key().public_key_pem(),
            ca.issuer.key().public_key_pem()
        );
    }
}
