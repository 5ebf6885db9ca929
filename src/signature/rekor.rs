//! Rekor's proof that a signature was logged, and when: the bundle cosign stores in a
//! signature layer's `dev.sigstore.cosign/bundle` annotation,
//! `{"SignedEntryTimestamp": <base64>, "Payload": {"body", "integratedTime", "logIndex", "logID"}}`.
//!
//! The signed entry timestamp (SET) is the log's signature over the canonical JSON of
//! `Payload`, so a valid SET proves that the log held `body` at `integratedTime`. That time
//! is what a short-lived Fulcio certificate is judged at, as cosign does: the certificate
//! lives ten minutes, and the log proves the signature was made inside them.
//!
//! `body` is the log entry itself; it must name this very signature, key and payload, or the
//! SET proves the time of some other signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::trust::TrustedRoot;

/// The largest log entry body read (a hashedrekord entry with a certificate is ~2 KB).
const MAX_BODY: usize = 64 * 1024;

/// Why a Rekor bundle proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RekorError {
    /// Not the bundle's JSON shape.
    #[error("the Rekor bundle is not JSON of cosign's shape: {0}")]
    Json(String),
    /// A field that is not base64 or hex.
    #[error("the Rekor bundle's {0} does not decode")]
    Encoding(&'static str),
    /// The entry was logged by a log the trusted root does not name.
    #[error("the Rekor entry's log {0} is not in the trusted root")]
    UnknownLog(String),
    /// The log's key was not valid when the entry was integrated.
    #[error("the Rekor log's key was not valid at the entry's time")]
    LogExpired,
    /// The SET does not verify.
    #[error("the Rekor signed entry timestamp does not verify with the log's key")]
    ForgedSet,
    /// The entry is not one this reader checks.
    #[error(
        "the Rekor entry is a {0} entry; tollgate checks hashedrekord, intoto and dsse entries"
    )]
    Kind(String),
    /// The entry names another signature, key or payload.
    #[error("the Rekor entry is not of this signature: its {0} differs")]
    Mismatch(&'static str),
}

/// The cosign bundle annotation, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The SET, decoded.
    pub set: Vec<u8>,
    /// The entry body, base64 as logged (the SET covers this text).
    pub body: String,
    /// When the log integrated the entry, seconds since the epoch.
    pub integrated_time: i64,
    /// The entry's index.
    pub log_index: i64,
    /// The log's id, hex.
    pub log_id: String,
}

#[derive(Deserialize)]
struct BundleJson {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: PayloadJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayloadJson {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// Parse the annotation.
pub fn parse(text: &str) -> Result<Bundle, RekorError> {
    let b: BundleJson = serde_json::from_str(text).map_err(|e| RekorError::Json(e.to_string()))?;
    if b.payload.body.len() > MAX_BODY * 2 {
        return Err(RekorError::Json("the entry body is too large".into()));
    }
    Ok(Bundle {
        set: STANDARD
            .decode(b.set.trim())
            .map_err(|_| RekorError::Encoding("SignedEntryTimestamp"))?,
        body: b.payload.body,
        integrated_time: b.payload.integrated_time,
        log_index: b.payload.log_index,
        log_id: b.payload.log_id,
    })
}

/// The bytes the SET signs: the canonical JSON (RFC 8785) of the payload. Its four keys are
/// ASCII, so the order of §3.2.3 (by UTF-16 code units) is byte order; the integers are below
/// 2^53, so §3.2.2.3's number form is their decimal; strings are escaped as §3.2.2.2 says,
/// which is serde_json's escaping (short forms for \b \t \n \f \r, `\u00xx` lowercase for
/// the other control characters, nothing else escaped).
pub fn canonical_payload(b: &Bundle) -> Vec<u8> {
    let s = |v: &str| serde_json::to_string(v).unwrap_or_default();
    format!(
        "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
        s(&b.body),
        b.integrated_time,
        s(&b.log_id),
        b.log_index
    )
    .into_bytes()
}

/// Check the SET with the log the trusted root names for the entry; the entry's time, if it
/// verifies.
pub fn verify_set(b: &Bundle, root: &TrustedRoot) -> Result<i64, RekorError> {
    let id = decode_hex(&b.log_id).ok_or(RekorError::Encoding("logID"))?;
    let log = root
        .log(&id)
        .ok_or_else(|| RekorError::UnknownLog(b.log_id.clone()))?;
    if !log.valid.contains(b.integrated_time) {
        return Err(RekorError::LogExpired);
    }
    if !log.key.verify(&canonical_payload(b), &b.set) {
        return Err(RekorError::ForgedSet);
    }
    Ok(b.integrated_time)
}

#[derive(Deserialize)]
struct Entry {
    kind: String,
    spec: serde_json::Value,
}

/// What a logged entry must name: the signature, the certificate (DER) or key that verifies
/// it, and the SHA-256 of what was signed.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The signature's bytes.
    pub signature: &'a [u8],
    /// The signing certificate, DER.
    pub certificate: &'a [u8],
    /// SHA-256 of the signed bytes (a payload; for DSSE, the envelope's payload).
    pub payload_sha256: [u8; 32],
}

/// Check that the entry `b` logged is `expected`'s signature (a `hashedrekord` entry for
/// image signatures; `intoto` and `dsse` for attestations).
pub fn check_entry(b: &Bundle, expected: &Expected<'_>) -> Result<(), RekorError> {
    let body = STANDARD
        .decode(b.body.trim())
        .map_err(|_| RekorError::Encoding("body"))?;
    let entry: Entry =
        serde_json::from_slice(&body).map_err(|e| RekorError::Json(format!("body: {e}")))?;
    let at = |p: &str| entry.spec.pointer(p).and_then(|v| v.as_str());
    let (hash, sig, key) = match entry.kind.as_str() {
        "hashedrekord" => (
            at("/data/hash/value"),
            at("/signature/content"),
            at("/signature/publicKey/content"),
        ),
        // dsse v0.0.1: the envelope's payload hash, and one verifier per signature.
        "dsse" => (
            at("/payloadHash/value"),
            at("/signatures/0/signature"),
            at("/signatures/0/verifier"),
        ),
        // intoto v0.0.2: the payload hash, and the envelope's signatures with their keys.
        "intoto" => (
            at("/content/payloadHash/value"),
            at("/content/envelope/signatures/0/sig"),
            at("/content/envelope/signatures/0/publicKey"),
        ),
        other => return Err(RekorError::Kind(other.to_owned())),
    };
    if hash.and_then(decode_hex).as_deref() != Some(expected.payload_sha256.as_slice()) {
        return Err(RekorError::Mismatch("payload hash"));
    }
    // intoto v0.0.2 base64-encodes the signature twice (the envelope's and the entry's).
    let sig_bytes = sig.and_then(|s| STANDARD.decode(s.trim()).ok());
    let sig_ok = sig_bytes.as_deref() == Some(expected.signature)
        || sig_bytes
            .as_deref()
            .and_then(|s| STANDARD.decode(s).ok())
            .as_deref()
            == Some(expected.signature);
    if !sig_ok {
        return Err(RekorError::Mismatch("signature"));
    }
    let key_der = key
        .and_then(|k| STANDARD.decode(k.trim()).ok())
        .and_then(|pem| super::x509::certificate_der(&pem));
    if key_der.as_deref() != Some(expected.certificate) {
        return Err(RekorError::Mismatch("certificate"));
    }
    Ok(())
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
