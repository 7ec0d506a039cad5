//! TLS for the PostgreSQL ledger, with libpq's `sslmode` meanings (rustls):
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `allow`, `prefer` (the default) | when the server offers it | no |
//! | `require` | yes | no; with `sslrootcert`, as `verify-ca` |
//! | `verify-ca` | yes | signed by a trusted root |
//! | `verify-full` | yes | signed by a trusted root, for the host connected to |
//!
//! Trusted roots: the PEM file `sslrootcert` names, or with `sslrootcert`
//! absent or `system`, the system's store. The two settings are taken out
//! of the URL before the driver reads it (it knows neither).

use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls::{Error as TlsError, SignatureScheme};

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A ledger URL, split into what the driver reads and the TLS settings.
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// The URL without `sslmode`/`sslrootcert`, with the driver's
    /// `sslmode` (disable, prefer or require) in their place.
    pub url: String,
    pub mode: Mode,
    pub root_cert: Option<String>,
}

pub fn split(url: &str) -> anyhow::Result<Split> {
    let (mut mode, mut root_cert) = (None, None);
    let mut take = |key: &str, value: &str| -> anyhow::Result<bool> {
        match key {
            "sslmode" => {
                mode = Some(match value {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => bail!(
                        "unknown sslmode `{other}` (expected disable, allow, prefer, require, verify-ca or verify-full)"
                    ),
                });
                Ok(true)
            }
            "sslrootcert" => {
                root_cert = Some(value.to_string());
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // The other parameters stay exactly as written, for the driver.
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if !take(&decode(k), &decode(v))? {
                kept.push(part);
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        // key=value form: unquoted values only.
        let mut kept = Vec::new();
        for part in url.split_whitespace() {
            match part.split_once('=') {
                Some((k, v)) if take(k, v)? => {}
                _ => kept.push(part.to_string()),
            }
        }
        kept.join(" ")
    };
    let mode = match (mode, &root_cert) {
        (None, _) => Mode::Prefer,
        (Some(Mode::Require), Some(_)) => Mode::VerifyCa,
        (Some(m), _) => m,
    };
    let driver = match mode {
        Mode::Disable => "disable",
        Mode::Prefer => "prefer",
        _ => "require",
    };
    let url = if rest.contains("://") {
        let sep = if rest.contains('?') { '&' } else { '?' };
        format!("{rest}{sep}sslmode={driver}")
    } else {
        format!("{rest} sslmode={driver}")
    };
    Ok(Split {
        url,
        mode,
        root_cert,
    })
}

/// Percent-decoding, as the driver reads URL parameters.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls client configuration for `mode` (`None` for `disable`).
pub fn client_config(mode: Mode, root_cert: Option<&str>) -> anyhow::Result<Option<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match mode {
        Mode::Disable => return Ok(None),
        Mode::Prefer | Mode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Relaxed {
                chain: None,
                provider,
            }))
            .with_no_client_auth(),
        Mode::VerifyCa | Mode::VerifyFull => {
            let roots = Arc::new(roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .context("building the certificate verifier")?;
            if mode == Mode::VerifyFull {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Relaxed {
                        chain: Some(webpki),
                        provider,
                    }))
                    .with_no_client_auth()
            }
        }
    };
    Ok(Some(config))
}

fn roots(root_cert: Option<&str>) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match root_cert {
        None | Some("system") => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                bail!("no trusted root certificates found in the system store; set sslrootcert= to the server's CA file");
            }
        }
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading sslrootcert {path}"))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("reading sslrootcert {path}"))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                bail!("sslrootcert {path} holds no certificate");
            }
        }
    }
    Ok(store)
}

/// The two modes that check less than rustls's own verifier, as libpq:
/// `prefer`/`require` (`chain: None`: the certificate is not checked) and
/// `verify-ca` (the chain must lead to a trusted root; the name may
/// differ). The handshake's signatures are always checked.
#[derive(Debug)]
struct Relaxed {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // The chain is checked before the name: a name error means it held.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_leave_the_url_and_become_the_drivers_mode() {
        let s = split("postgres://u@db.example.com:5432/test?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&options=-c%20search_path%3Dx").unwrap();
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.root_cert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            s.url,
            "postgres://u@db.example.com:5432/test?options=-c%20search_path%3Dx&sslmode=require"
        );
        let s = split("postgresql://127.0.0.1/test").unwrap();
        assert_eq!(
            (s.mode, s.url.as_str()),
            (Mode::Prefer, "postgresql://127.0.0.1/test?sslmode=prefer")
        );
        let s = split("postgres://h/d?sslmode=require&sslrootcert=ca.pem").unwrap();
        assert_eq!(
            s.mode,
            Mode::VerifyCa,
            "require with a root file is verify-ca, as libpq"
        );
        let s = split("host=h dbname=test sslmode=disable").unwrap();
        assert_eq!(
            (s.mode, s.url.as_str()),
            (Mode::Disable, "host=h dbname=test sslmode=disable")
        );
        let e = split("postgres://h/d?sslmode=verify")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown sslmode `verify`"), "{e}");
    }

    #[test]
    fn a_root_file_without_certificates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Mode::VerifyFull, empty.to_str())
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = client_config(Mode::VerifyCa, Some("/no/such/ca.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("reading sslrootcert /no/such/ca.pem"), "{e}");
        assert!(client_config(Mode::Disable, None).unwrap().is_none());
    }
}
