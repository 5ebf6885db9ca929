//! Offline trust for keyless signatures: a Sigstore `trusted_root.json` (the `TrustedRoot`
//! message of sigstore's protobuf-specs, `sigstore_trustroot.proto`, in its proto3 JSON form),
//! which the user supplies beside the policy. It names:
//!
//! - the Fulcio certificate authorities (`certificateAuthorities[]`): a chain each, the
//!   issuing certificate first and the root last, and the window in which the CA issued;
//! - the Rekor transparency logs (`tlogs[]`): a public key each, identified by `logId.keyId`
//!   (the SHA-256 of the key's DER SubjectPublicKeyInfo), and its window.
//!
//! - the certificate transparency logs (`ctlogs[]`), in the same shape: the signed
//!   certificate timestamps Fulcio embeds in its certificates are checked with them
//!   ([`super::sct`]).
//!
//! Timestamp authorities are not used: tollgate proves the signing time with Rekor's signed
//! entry timestamp, as cosign does by default.
//!
//! tollgate never fetches this file (no TUF, no CDN): what the user gives is all it trusts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::keys::{KeyError, PublicKey};

/// The largest trusted root read: the public-good one is about 10 KB.
pub const MAX_TRUSTED_ROOT_BYTES: usize = 1 << 20;

/// A window of validity, in seconds since the Unix epoch; `end: None` is open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first second.
    pub start: i64,
    /// The last second, if there is one.
    pub end: Option<i64>,
}

impl Window {
    /// Whether `at` is inside.
    pub fn contains(&self, at: i64) -> bool {
        self.start <= at && self.end.is_none_or(|end| at <= end)
    }
}

/// One Fulcio certificate authority.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    /// Its URI (`https://fulcio.sigstore.dev`), for reports.
    pub uri: String,
    /// The root, DER: the trust anchor.
    pub root: Vec<u8>,
    /// The certificates between the root and the signing certificates, DER, issuing one first.
    pub intermediates: Vec<Vec<u8>>,
    /// When it issued.
    pub valid: Window,
}

/// One transparency log: a Rekor log, or a certificate transparency log.
#[derive(Debug, Clone)]
pub struct TransparencyLog {
    /// Its base URL, for reports.
    pub url: String,
    /// `logId.keyId`: the `logID` its entries carry (for Rekor v1, the SHA-256 of its key's
    /// DER SubjectPublicKeyInfo).
    pub key_id: Vec<u8>,
    /// Its key.
    pub key: PublicKey,
    /// Its key's DER SubjectPublicKeyInfo (a checkpoint's key hint is derived from it).
    pub der: Vec<u8>,
    /// When it signed.
    pub valid: Window,
}

/// A parsed `trusted_root.json`.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    /// The Fulcio CAs.
    pub authorities: Vec<CertificateAuthority>,
    /// The Rekor logs.
    pub logs: Vec<TransparencyLog>,
    /// The certificate transparency logs Fulcio's SCTs are checked with.
    pub ct_logs: Vec<TransparencyLog>,
    /// The SHA-256 of the file, hex: what a verdict made with this root depends on.
    pub fingerprint: String,
}

impl TrustedRoot {
    /// The Rekor log whose key id is `id`.
    pub fn log(&self, id: &[u8]) -> Option<&TransparencyLog> {
        self.logs.iter().find(|l| l.key_id.as_slice() == id)
    }
}

/// Why a trusted root cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// Larger than [`MAX_TRUSTED_ROOT_BYTES`].
    #[error("the trusted root is {0} bytes; at most {MAX_TRUSTED_ROOT_BYTES} are read")]
    TooLarge(usize),
    /// Not JSON of the TrustedRoot shape.
    #[error("not a Sigstore trusted_root.json: {0}")]
    Json(String),
    /// A media type this reader does not know.
    #[error(
        "mediaType {0:?} is not application/vnd.dev.sigstore.trustedroot+json;version=0.1 or 0.2"
    )]
    MediaType(String),
    /// A field that is not base64.
    #[error("{0} is not base64")]
    Base64(String),
    /// A timestamp that is not RFC 3339.
    #[error("{at} is not an RFC 3339 time: {value:?}")]
    Time {
        /// Which field.
        at: String,
        /// Its value.
        value: String,
    },
    /// A key that cannot be used.
    #[error("{at}: {source}")]
    Key {
        /// Which field.
        at: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A CA without certificates.
    #[error("{0} has no certificates")]
    EmptyChain(String),
    /// Nothing to trust.
    #[error("the trusted root names no certificate authority and no transparency log")]
    Empty,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootJson {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<LogJson>,
    #[serde(default)]
    ctlogs: Vec<LogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogJson {
    #[serde(default)]
    base_url: String,
    public_key: KeyJson,
    log_id: LogIdJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyJson {
    raw_bytes: String,
    #[serde(default)]
    valid_for: Option<WindowJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdJson {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaJson {
    #[serde(default)]
    uri: String,
    cert_chain: ChainJson,
    #[serde(default)]
    valid_for: Option<WindowJson>,
}

#[derive(Deserialize)]
struct ChainJson {
    #[serde(default)]
    certificates: Vec<RawJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJson {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct WindowJson {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

fn decode(at: &str, text: &str) -> Result<Vec<u8>, TrustError> {
    STANDARD
        .decode(text.trim())
        .map_err(|_| TrustError::Base64(at.to_owned()))
}

fn time(at: &str, value: &str) -> Result<i64, TrustError> {
    value
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| TrustError::Time {
            at: at.to_owned(),
            value: value.to_owned(),
        })
}

/// A window as the file gives it; a missing `validFor` or `start` is "always" (the
/// protobuf-specs make `start` required, but old files leave `validFor` out).
fn window(at: &str, w: Option<&WindowJson>) -> Result<Window, TrustError> {
    let Some(w) = w else {
        return Ok(Window {
            start: i64::MIN,
            end: None,
        });
    };
    Ok(Window {
        start: match &w.start {
            Some(s) => time(&format!("{at}.validFor.start"), s)?,
            None => i64::MIN,
        },
        end: w
            .end
            .as_deref()
            .map(|e| time(&format!("{at}.validFor.end"), e))
            .transpose()?,
    })
}

/// The logs of `tlogs` or `ctlogs` (`field`): both are `TransparencyLogInstance`s.
fn transparency_logs(field: &str, list: &[LogJson]) -> Result<Vec<TransparencyLog>, TrustError> {
    let mut logs = Vec::new();
    for (i, log) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let der = decode(
            &format!("{at}.publicKey.rawBytes"),
            &log.public_key.raw_bytes,
        )?;
        let key = PublicKey::from_spki_der(&der).map_err(|source| TrustError::Key {
            at: format!("{at}.publicKey"),
            source,
        })?;
        // Matched as the file gives it: Rekor v1 logs and CT logs (RFC 6962's `LogID`) use
        // the SHA-256 of the key's DER, later logs other derivations, and an entry is only
        // ever checked with the key it names.
        let key_id = decode(&format!("{at}.logId.keyId"), &log.log_id.key_id)?;
        logs.push(TransparencyLog {
            url: log.base_url.clone(),
            key_id,
            key,
            der,
            valid: window(
                &format!("{at}.publicKey"),
                log.public_key.valid_for.as_ref(),
            )?,
        });
    }
    Ok(logs)
}

/// Parse a `trusted_root.json`.
pub fn parse(bytes: &[u8]) -> Result<TrustedRoot, TrustError> {
    if bytes.len() > MAX_TRUSTED_ROOT_BYTES {
        return Err(TrustError::TooLarge(bytes.len()));
    }
    let root: RootJson =
        serde_json::from_slice(bytes).map_err(|e| TrustError::Json(e.to_string()))?;
    if !matches!(
        root.media_type.as_str(),
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
            | "application/vnd.dev.sigstore.trustedroot.v0.2+json"
            | "application/vnd.dev.sigstore.trustedroot+json;version=0.2"
    ) {
        return Err(TrustError::MediaType(root.media_type));
    }
    let mut authorities = Vec::new();
    for (i, ca) in root.certificate_authorities.iter().enumerate() {
        let at = format!("certificateAuthorities[{i}]");
        let mut chain = ca
            .cert_chain
            .certificates
            .iter()
            .enumerate()
            .map(|(j, c)| decode(&format!("{at}.certChain.certificates[{j}]"), &c.raw_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(root_der) = chain.pop() else {
            return Err(TrustError::EmptyChain(at));
        };
        authorities.push(CertificateAuthority {
            uri: ca.uri.clone(),
            root: root_der,
            intermediates: chain,
            valid: window(&at, ca.valid_for.as_ref())?,
        });
    }
    let logs = transparency_logs("tlogs", &root.tlogs)?;
    let ct_logs = transparency_logs("ctlogs", &root.ctlogs)?;
    if authorities.is_empty() && logs.is_empty() {
        return Err(TrustError::Empty);
    }
    Ok(TrustedRoot {
        authorities,
        logs,
        ct_logs,
        fingerprint: Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}
