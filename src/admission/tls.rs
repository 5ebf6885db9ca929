//! The serving certificate: loaded from PEM files, swapped in place when they change, and its
//! validity period read for readiness and the expiry metric.
//!
//! rustls asks a [`ResolvesServerCert`] for the certificate at every handshake, so swapping the
//! one [`ReloadingCert`] holds changes what new connections see while established connections
//! keep the session they have.

use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file has no `CERTIFICATE` block.
    #[error("the certificate file holds no PEM certificate")]
    NoCertificate,
    /// The file is not PEM.
    #[error("the certificate file is not valid PEM")]
    CertificatePem(#[source] rustls_pki_types::pem::Error),
    /// The key file has no key rustls can use.
    #[error("the key file holds no usable PEM private key")]
    Key(#[source] rustls_pki_types::pem::Error),
    /// The key is not the certificate's, or of a type the provider does not support.
    #[error("the key does not belong to the certificate, or is of an unsupported type")]
    Mismatch(#[source] rustls::Error),
    /// The leaf's validity period cannot be read (what is wrong with its DER).
    #[error("cannot read the certificate's validity period: {0}")]
    Validity(String),
    /// The server configuration cannot be built.
    #[error("TLS configuration")]
    Config(#[source] rustls::Error),
}

/// A certificate chain and key ready to serve, with its leaf's validity period.
#[derive(Debug, Clone)]
pub struct ServingCert {
    /// The chain and its signing key, as rustls hands them to a handshake.
    pub key: Arc<CertifiedKey>,
    /// The leaf's X.509 `notBefore`: first instant it is valid.
    pub not_before: Timestamp,
    /// The leaf's X.509 `notAfter`: [`ServingCert::is_valid_at`] takes it as the first instant
    /// it is no longer valid.
    pub not_after: Timestamp,
}

impl ServingCert {
    /// Parse a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1), and check that they belong together.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        provider: &CryptoProvider,
    ) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(TlsError::CertificatePem)?;
        let leaf = chain.first().ok_or(TlsError::NoCertificate)?;
        let (not_before, not_after) = validity(leaf).map_err(TlsError::Validity)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::Key)?;
        let key = CertifiedKey::from_der(chain, key, provider).map_err(TlsError::Mismatch)?;
        Ok(ServingCert {
            key: Arc::new(key),
            not_before,
            not_after,
        })
    }

    /// Whether `now` is inside the validity period.
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// The certificate rustls serves, replaceable while the server runs.
#[derive(Debug)]
pub struct ReloadingCert(RwLock<ServingCert>);

impl ReloadingCert {
    /// Serve `cert` until it is replaced.
    pub fn new(cert: ServingCert) -> Self {
        ReloadingCert(RwLock::new(cert))
    }

    /// New handshakes get `cert` from now on.
    pub fn replace(&self, cert: ServingCert) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = cert;
    }

    /// The certificate being served.
    pub fn current(&self) -> ServingCert {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).key.clone())
    }
}

/// The server's TLS configuration: the ring provider installed explicitly, TLS 1.3 and 1.2,
/// HTTP/2 and HTTP/1.1 offered through ALPN, the certificate from `certs`.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    certs: Arc<ReloadingCert>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    // http/1.0 too: a client that offers only it (`curl --http1.0`) gets an answer, not an
    // alert; hyper serves it as HTTP/1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(config)
}

// ---- the validity period, from the DER ---------------------------------------------------------

/// One DER element: its tag, its content and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// `notBefore` and `notAfter` of an X.509 certificate (RFC 5280 §4.1): Certificate →
/// tbsCertificate → [version], serialNumber, signature, issuer, validity.
pub fn validity(der: &[u8]) -> Result<(Timestamp, Timestamp), String> {
    let bad = || "not an X.509 certificate".to_owned();
    let (SEQUENCE, cert, _) = element(der).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (SEQUENCE, mut tbs, _) = element(cert).ok_or_else(bad)? else {
        return Err(bad());
    };
    if let Some((VERSION, _, rest)) = element(tbs) {
        tbs = rest;
    }
    for expected in [INTEGER, SEQUENCE, SEQUENCE] {
        match element(tbs) {
            Some((tag, _, rest)) if tag == expected => tbs = rest,
            _ => return Err(bad()),
        }
    }
    let (SEQUENCE, validity, _) = element(tbs).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (t1, v1, rest) = element(validity).ok_or_else(bad)?;
    let (t2, v2, _) = element(rest).ok_or_else(bad)?;
    Ok((time(t1, v1)?, time(t2, v2)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, v: &[u8]) -> Result<Timestamp, String> {
    let text = std::str::from_utf8(v)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or_else(|| "a time that is not ASCII".to_owned())?;
    let (year, rest) = match tag {
        UTC_TIME if text.len() == 13 => {
            let yy: i16 = text[..2]
                .parse()
                .map_err(|_| format!("bad time {text:?}"))?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        GENERALIZED_TIME if text.len() == 15 => (
            text[..4]
                .parse()
                .map_err(|_| format!("bad time {text:?}"))?,
            &text[4..],
        ),
        _ => return Err(format!("unsupported time encoding {text:?}")),
    };
    if !rest.ends_with('Z') {
        return Err(format!("time {text:?} is not in UTC"));
    }
    let field = |i: usize| -> Result<i8, String> {
        rest[i..i + 2]
            .parse()
            .map_err(|_| format!("bad time {text:?}"))
    };
    jiff::civil::DateTime::new(
        year,
        field(0)?,
        field(2)?,
        field(4)?,
        field(6)?,
        field(8)?,
        0,
    )
    .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
    .map(|z| z.timestamp())
    .map_err(|e| format!("bad time {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn cert(not_after_year: i32) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["tollgate.tollgate.svc".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2024, 1, 2);
        params.not_after = rcgen::date_time_ymd(not_after_year, 3, 4);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn the_validity_period_is_read_from_the_certificate() {
        for year in [2049, 2050, 2100] {
            let (c, k) = cert(year);
            let s = ServingCert::from_pem(c.as_bytes(), k.as_bytes(), &provider()).unwrap();
            assert_eq!(s.not_before.to_string(), "2024-01-02T00:00:00Z");
            assert_eq!(s.not_after.to_string(), format!("{year}-03-04T00:00:00Z"));
            assert!(s.is_valid_at("2030-01-01T00:00:00Z".parse().unwrap()));
            assert!(!s.is_valid_at("2023-01-01T00:00:00Z".parse().unwrap()));
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (c, _) = cert(2030);
        let (_, other_key) = cert(2030);
        assert!(matches!(
            ServingCert::from_pem(c.as_bytes(), other_key.as_bytes(), &provider()),
            Err(TlsError::Mismatch(_))
        ));
        assert!(matches!(
            ServingCert::from_pem(b"", other_key.as_bytes(), &provider()),
            Err(TlsError::NoCertificate)
        ));
        assert!(validity(b"\x30\x03\x02\x01\x01").is_err());
        assert!(time(UTC_TIME, "a\u{e9}010100000Z".as_bytes()).is_err());
        assert!(time(UTC_TIME, b"2401010000001").is_err());
    }
}
