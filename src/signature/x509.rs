//! Signing certificates: path validation to a trusted root with rustls-webpki (already in the
//! tree through rustls, maintained with it, and the one path validator here that has been
//! fuzzed and audited for years), and the identity Fulcio writes into a certificate, read with
//! x509-cert.
//!
//! A signing certificate must chain to a trusted root, be valid at the signing time (which
//! the caller proves, for keyless signing with Rekor's signed entry timestamp), and carry the
//! code-signing extended key usage (RFC 5280 §4.2.1.12, `id-kp-codeSigning`), which Fulcio and
//! notation both require.

use base64::Engine as _;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::Certificate;
use x509_cert::der::asn1::{ObjectIdentifier, Utf8StringRef};
use x509_cert::der::{Decode, Encode, pem};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};

use super::keys::{KeyError, PublicKey};

/// `id-kp-codeSigning` (1.3.6.1.5.5.7.3.3), the DER contents of the OID.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// `id-kp-codeSigning`, as an OID.
const ID_KP_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

/// Fulcio's OIDC issuer extension, v1 (1.3.6.1.4.1.57264.1.1): the issuer's bytes, raw.
const FULCIO_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer extension, v2 (1.3.6.1.4.1.57264.1.8): a DER UTF8String.
const FULCIO_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");

/// The signature algorithms a chain may use: those Fulcio, private CAs and notation's
/// signers use (ECDSA, RSA PKCS#1 and PSS, Ed25519).
static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// Why a certificate proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Not a PEM `CERTIFICATE` block.
    #[error("the certificate is not PEM: {0}")]
    Pem(String),
    /// Not an X.509 certificate.
    #[error("the certificate does not parse: {0}")]
    Der(String),
    /// Its key cannot verify signatures here.
    #[error("the certificate's key: {0}")]
    Key(#[source] KeyError),
    /// No trusted root was valid at the signing time.
    #[error("no trusted certificate authority was valid at the signing time ({0})")]
    NoAuthority(String),
    /// Path validation failed against every root tried.
    #[error("the certificate does not chain to a trusted root at the signing time ({0}): {1}")]
    Chain(String, String),
}

/// The certificates of a PEM bundle, DER, in order.
pub fn pem_chain(text: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let mut out = Vec::new();
    for block in text.split_inclusive("-----END CERTIFICATE-----") {
        if !block.contains("-----BEGIN") {
            continue;
        }
        let (label, der) =
            pem::decode_vec(block.trim().as_bytes()).map_err(|e| CertError::Pem(e.to_string()))?;
        if label != "CERTIFICATE" {
            return Err(CertError::Pem(format!(
                "a {label:?} block where a CERTIFICATE was expected"
            )));
        }
        out.push(der);
        // A chain is a handful of certificates; a longer one is not a chain.
        if out.len() > 10 {
            return Err(CertError::Pem("more than 10 certificates".into()));
        }
    }
    if out.is_empty() {
        return Err(CertError::Pem(
            "no -----BEGIN CERTIFICATE----- block".into(),
        ));
    }
    Ok(out)
}

/// One trust anchor with the intermediates that belong to it, and when it may have issued.
#[derive(Debug, Clone, Copy)]
pub struct Anchor<'a> {
    /// The root, DER.
    pub root: &'a [u8],
    /// Its intermediates, DER.
    pub intermediates: &'a [Vec<u8>],
    /// For reports.
    pub name: &'a str,
}

/// A signing certificate that chained to an anchor.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its public key: the one the signature must verify with.
    pub key: PublicKey,
    /// The anchor's name.
    pub anchor: String,
    /// The DER SubjectPublicKeyInfo of the certificate that issued it (an embedded SCT
    /// signs its hash).
    pub issuer_spki: Vec<u8>,
}

/// Check that `leaf` (DER) chains to one of `anchors` at `at` (seconds since the epoch) with
/// the code-signing usage, through the anchor's own intermediates and `extra` (those the
/// signature carried; they are only ever a path to a trusted root, never trusted themselves).
pub fn verify_chain(
    leaf: &[u8],
    extra: &[Vec<u8>],
    anchors: &[Anchor<'_>],
    at: i64,
) -> Result<Verified, CertError> {
    let when = shown_time(at);
    if anchors.is_empty() {
        return Err(CertError::NoAuthority(when));
    }
    let leaf_der = CertificateDer::from(leaf);
    let ee = EndEntityCert::try_from(&leaf_der).map_err(|e| CertError::Der(format!("{e:?}")))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(at).unwrap_or(0),
    ));
    let mut last = String::new();
    for a in anchors {
        let root = CertificateDer::from(a.root);
        let anchor = match webpki::anchor_from_trusted_cert(&root) {
            Ok(t) => t,
            Err(e) => {
                last = format!("{}: its root does not parse ({e:?})", a.name);
                continue;
            }
        };
        let intermediates: Vec<CertificateDer<'_>> = a
            .intermediates
            .iter()
            .chain(extra)
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        match ee.verify_for_usage(
            ALGORITHMS,
            &[anchor],
            &intermediates,
            time,
            // Required-if-present: webpki applies the usage to every certificate of the path,
            // and a CA may leave the extension out (RFC 5280 §4.2.1.12). The leaf's own is
            // required below.
            KeyUsage::required_if_present(CODE_SIGNING),
            None,
            None,
        ) {
            Ok(path) => {
                // The path runs from the leaf up: its first intermediate issued the leaf, or
                // the root did.
                let issuer_spki = match path.intermediate_certificates().next() {
                    Some(c) => c.subject_public_key_info().to_vec(),
                    None => Certificate::from_der(a.root)
                        .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der())
                        .map_err(|e| CertError::Der(e.to_string()))?,
                };
                let cert =
                    Certificate::from_der(leaf).map_err(|e| CertError::Der(e.to_string()))?;
                let code_signing = matches!(
                    cert.tbs_certificate().get_extension::<ExtendedKeyUsage>(),
                    Ok(Some((_, ExtendedKeyUsage(usages)))) if usages.contains(&ID_KP_CODE_SIGNING)
                );
                if !code_signing {
                    return Err(CertError::Chain(
                        when,
                        format!(
                            "{}: the certificate is not for code signing (no id-kp-codeSigning usage)",
                            a.name
                        ),
                    ));
                }
                let spki = cert
                    .tbs_certificate()
                    .subject_public_key_info()
                    .to_der()
                    .map_err(|e| CertError::Der(e.to_string()))?;
                return Ok(Verified {
                    key: PublicKey::from_spki_der(&spki).map_err(CertError::Key)?,
                    anchor: a.name.to_owned(),
                    issuer_spki,
                });
            }
            Err(e) => last = format!("{}: {}", a.name, webpki_reason(&e)),
        }
    }
    Err(CertError::Chain(when, last))
}

/// webpki's errors, in words.
fn webpki_reason(e: &webpki::Error) -> String {
    match e {
        webpki::Error::CertExpired { .. } => "the certificate had expired".into(),
        webpki::Error::CertNotValidYet { .. } => "the certificate was not valid yet".into(),
        webpki::Error::UnknownIssuer => "issued by none of the trusted authorities".into(),
        webpki::Error::InvalidSignatureForPublicKey => {
            "a signature in the chain does not verify".into()
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the certificate is not for code signing (no id-kp-codeSigning usage)".into()
        }
        other => format!("{other:?}"),
    }
}

/// `at` as RFC 3339, for messages.
fn shown_time(at: i64) -> String {
    jiff::Timestamp::from_second(at).map_or_else(|_| at.to_string(), |t| t.to_string())
}

/// What Fulcio wrote into a certificate: the OIDC issuer and the subject (an email, a URI
/// such as a GitHub workflow's, or another SAN value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// The OIDC issuer, from extension 1.3.6.1.4.1.57264.1.8 (or the older .1.1).
    pub issuer: Option<String>,
    /// The subject alternative names: emails and URIs, in the certificate's order.
    pub subjects: Vec<String>,
    /// Why the certificate is not proven logged for certificate transparency (`None`: one
    /// of its SCTs verified): a keyless signer without `insecureIgnoreSCT` then does not
    /// count it.
    pub unlogged: Option<String>,
}

/// The Fulcio identity of `der`. Fields that are absent or malformed are left out: a
/// signer rule that needs them then does not match.
pub fn identity(der: &[u8]) -> Result<Identity, CertError> {
    let cert = Certificate::from_der(der).map_err(|e| CertError::Der(e.to_string()))?;
    let tbs = cert.tbs_certificate();
    let mut out = Identity::default();
    let mut v1 = None;
    for ext in tbs.extensions().into_iter().flatten() {
        let value = ext.extn_value.as_bytes();
        if ext.extn_id == FULCIO_ISSUER_V2 {
            out.issuer = Utf8StringRef::from_der(value)
                .ok()
                .map(|s| s.as_str().to_owned());
        } else if ext.extn_id == FULCIO_ISSUER_V1 {
            v1 = std::str::from_utf8(value).ok().map(str::to_owned);
        }
    }
    if out.issuer.is_none() {
        out.issuer = v1;
    }
    if let Ok(Some((_, SubjectAltName(names)))) = tbs.get_extension::<SubjectAltName>() {
        for n in names {
            match n {
                GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => {
                    out.subjects.push(s.as_str().to_owned());
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The DER of a certificate given as PEM (a cosign certificate annotation, a Rekor entry's
/// `publicKey.content`) or as base64 DER.
pub fn certificate_der(text: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(text).ok()?;
    if s.contains("-----BEGIN") {
        return pem_chain(s).ok()?.into_iter().next();
    }
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// The subject attribute types notation's distinguished names use, by the short names it
/// writes them with (RFC 4514 §3, and Go's `pkix.Name`, which notation reads subjects with).
pub const DN_ATTRIBUTES: &[(&str, ObjectIdentifier)] = &[
    ("C", ObjectIdentifier::new_unwrap("2.5.4.6")),
    ("ST", ObjectIdentifier::new_unwrap("2.5.4.8")),
    ("L", ObjectIdentifier::new_unwrap("2.5.4.7")),
    ("O", ObjectIdentifier::new_unwrap("2.5.4.10")),
    ("OU", ObjectIdentifier::new_unwrap("2.5.4.11")),
    ("CN", ObjectIdentifier::new_unwrap("2.5.4.3")),
    ("SERIALNUMBER", ObjectIdentifier::new_unwrap("2.5.4.5")),
    ("STREET", ObjectIdentifier::new_unwrap("2.5.4.9")),
    ("POSTALCODE", ObjectIdentifier::new_unwrap("2.5.4.17")),
];

/// The subject of `der` as (attribute, value) pairs in the certificate's order: short names
/// for the attributes of [`DN_ATTRIBUTES`], the dotted OID for others. A value that is not a
/// directory string is left out: no trusted identity can then name it.
pub fn subject_dn(der: &[u8]) -> Result<Vec<(String, String)>, CertError> {
    let cert = Certificate::from_der(der).map_err(|e| CertError::Der(e.to_string()))?;
    let mut out = Vec::new();
    for atv in cert.tbs_certificate().subject().iter() {
        let name = DN_ATTRIBUTES
            .iter()
            .find(|(_, oid)| *oid == atv.oid)
            .map_or_else(|| atv.oid.to_string(), |(n, _)| (*n).to_owned());
        if let Ok(v) = x509_cert::ext::pkix::name::DirectoryString::try_from(&atv.value) {
            out.push((name, v.value().into_owned()));
        }
    }
    Ok(out)
}

/// A distinguished name as notation writes it (`C=US, ST=WA, L=Seattle, O=acme, CN=release`),
/// with RFC 4514 §2.4's escapes for the characters that would split it.
pub fn shown_dn(dn: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in dn.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        for (j, c) in v.chars().enumerate() {
            if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
                || (j == 0 && matches!(c, '#' | ' '))
            {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// Whether `der` may sign: a key usage extension with `digitalSignature` (RFC 5280 §4.2.1.3),
/// which the Notary Project signature specification requires of a signing certificate.
pub fn signs_digitally(der: &[u8]) -> Result<bool, CertError> {
    let cert = Certificate::from_der(der).map_err(|e| CertError::Der(e.to_string()))?;
    Ok(matches!(
        cert.tbs_certificate().get_extension::<x509_cert::ext::pkix::KeyUsage>(),
        Ok(Some((_, ku))) if ku.digital_signature()
    ))
}
