//! The JWS envelope (signature-envelope-jws.md): the flattened JWS JSON serialization, its
//! protected header's attributes, the Notary Project payload, and the signature over both
//! with the key of the `x5c` chain's leaf. No trust is decided here.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self as ring_sig, VerificationAlgorithm};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{NotationError, PAYLOAD_TYPE, SCHEME_X509};
use crate::reference::Digest;
use crate::signature::keys::{KeyKind, PublicKey};
use crate::signature::x509;

const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const EXPIRY: &str = "io.cncf.notary.expiry";

/// The critical attributes this verifier understands (signature-envelope-jws.md,
/// "Protected headers"): anything else in `crit` is refused, as RFC 7515 §4.1.11 requires.
const KNOWN_CRITICAL: &[&str] = &[SIGNING_SCHEME, EXPIRY];

/// The flattened JWS JSON serialization (RFC 7515 §7.2.2), as signature-envelope-jws.md
/// writes it. Unknown members are refused: a general serialization (`signatures`) is not a
/// notation envelope.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Jws {
    payload: String,
    protected: String,
    header: Unprotected,
    signature: String,
}

/// The unprotected header: the chain, and what notation writes beside it (unsigned, so read
/// for nothing but the chain).
#[derive(Deserialize)]
struct Unprotected {
    #[serde(default)]
    x5c: Vec<String>,
}

/// The payload (signature-specification.md, "Payload"): the signed manifest's descriptor.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: Target,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    digest: String,
    #[allow(dead_code)]
    media_type: String,
    #[allow(dead_code)]
    size: u64,
}

/// What an envelope proves, before any signer is asked: its leaf certificate (and the rest
/// of its chain) signed a payload naming the digest, at a claimed time.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The leaf certificate, DER.
    pub leaf: Vec<u8>,
    /// The rest of the x5c chain, DER.
    pub chain: Vec<Vec<u8>>,
    /// `io.cncf.notary.signingTime`, seconds since the epoch.
    pub signing_time: i64,
    /// The leaf's subject.
    pub subject: Vec<(String, String)>,
}

/// Check an envelope's integrity and what it signs: well-formed, every critical attribute
/// understood, the Notary Project payload naming `digest`, signed by its leaf certificate's
/// key under its `alg`, and not expired at `at` (seconds since the epoch). No trust is decided
/// here: the chain is [`super::signed_by`]'s.
pub fn check_jws_envelope(bytes: &[u8], digest: &Digest, at: i64) -> Result<Proof, NotationError> {
    let jws: Jws =
        serde_json::from_slice(bytes).map_err(|e| NotationError::Envelope(e.to_string()))?;
    let header_bytes = b64url(&jws.protected, "protected header")?;
    let payload_bytes = b64url(&jws.payload, "payload")?;
    let signature = b64url(&jws.signature, "signature")?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|e| NotationError::Header(format!("is not a JSON object: {e}")))?;
    let x5c = certificates(&jws.header.x5c)?;
    // signature-envelope-jws.md: the signature is over the JWS Signing Input,
    // ASCII(BASE64URL(protected)) || '.' || ASCII(BASE64URL(payload)), as the envelope
    // carries them (RFC 7515 §5.2): never re-encoded.
    let mut input = Vec::with_capacity(jws.protected.len() + 1 + jws.payload.len());
    input.extend_from_slice(jws.protected.as_bytes());
    input.push(b'.');
    input.extend_from_slice(jws.payload.as_bytes());
    check_signed(
        &Signed {
            header,
            input,
            signature,
            payload: payload_bytes,
            x5c,
        },
        digest,
        at,
    )
}

/// An envelope taken apart, whichever its format: the protected header as JWS names it
/// (`alg`, `cty`, `crit` and the notary attributes, times in RFC 3339), the bytes the
/// signature is over, the signature, the payload and the chain (DER, leaf first). The COSE
/// parser ([`super::cose`]) produces it too, so every check below is the same for both.
pub(super) struct Signed {
    pub(super) header: Map<String, Value>,
    pub(super) input: Vec<u8>,
    pub(super) signature: Vec<u8>,
    pub(super) payload: Vec<u8>,
    pub(super) x5c: Vec<Vec<u8>>,
}

/// [`check_envelope`]'s checks on an envelope taken apart.
pub(super) fn check_signed(
    signed: &Signed,
    digest: &Digest,
    at: i64,
) -> Result<Proof, NotationError> {
    let header = &signed.header;
    let text = |name: &str| member(header, name);
    // RFC 7515 §4.1.11: a recipient that does not understand a critical extension must
    // reject the JWS; notation makes the signing scheme (and the expiry, when set) critical.
    let crit: Vec<&str> = match header.get("crit") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| NotationError::Header("crit lists a non-string".into()))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(NotationError::Header(
                "has no crit list (notation marks io.cncf.notary.signingScheme critical)".into(),
            ));
        }
    };
    if let Some(unknown) = crit.iter().find(|c| !KNOWN_CRITICAL.contains(c)) {
        return Err(NotationError::UnknownCritical((*unknown).to_owned()));
    }
    for c in &crit {
        if !header.contains_key(*c) {
            return Err(NotationError::Header(format!(
                "marks {c} critical but does not carry it"
            )));
        }
    }
    for must in [SIGNING_SCHEME]
        .into_iter()
        .chain(header.contains_key(EXPIRY).then_some(EXPIRY))
    {
        if !crit.contains(&must) {
            return Err(NotationError::Header(format!(
                "does not mark {must} critical, as notation must"
            )));
        }
    }
    let cty = text("cty")?;
    if cty != PAYLOAD_TYPE {
        return Err(NotationError::ContentType(cty.to_owned()));
    }
    let scheme = text(SIGNING_SCHEME)?;
    if scheme != SCHEME_X509 {
        return Err(NotationError::Scheme(scheme.to_owned()));
    }
    let signing_time = timestamp(text(SIGNING_TIME)?, SIGNING_TIME)?;
    let expiry = match header.get(EXPIRY) {
        Some(_) => Some((text(EXPIRY)?.to_owned(), timestamp(text(EXPIRY)?, EXPIRY)?)),
        None => None,
    };
    let alg = text("alg")?.to_owned();

    let (leaf, chain) = match signed.x5c.split_first() {
        Some((leaf, chain)) if signed.x5c.len() <= 10 => (leaf.clone(), chain.to_vec()),
        Some(_) => return Err(NotationError::Chain("has more than 10 certificates".into())),
        None => return Err(NotationError::Chain("is missing or empty".into())),
    };
    let key = leaf_key(&leaf)?;
    let algorithm = algorithm(&alg, key.kind())?;
    if !key.verify_with(algorithm, &signed.input, &signed.signature) {
        return Err(NotationError::Signature);
    }
    let payload: Payload = serde_json::from_slice(&signed.payload)
        .map_err(|e| NotationError::Payload(e.to_string()))?;
    if payload.target_artifact.digest != digest.to_string() {
        return Err(NotationError::Target {
            want: digest.clone(),
            found: payload.target_artifact.digest,
        });
    }
    if let Some((shown, t)) = expiry
        && t <= at
    {
        return Err(NotationError::Expired(shown));
    }
    let subject = x509::subject_dn(&leaf).map_err(NotationError::Certificate)?;
    Ok(Proof {
        leaf,
        chain,
        signing_time,
        subject,
    })
}

/// A string member of the protected header.
fn member<'h>(header: &'h Map<String, Value>, name: &str) -> Result<&'h str, NotationError> {
    match header.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(NotationError::Header(format!("{name} is not a string"))),
        None => Err(NotationError::Header(format!("has no {name}"))),
    }
}

fn b64url(s: &str, what: &'static str) -> Result<Vec<u8>, NotationError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| NotationError::Base64(what))
}

fn timestamp(s: &str, name: &str) -> Result<i64, NotationError> {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| NotationError::Header(format!("{name} {s:?} is not an RFC 3339 time: {e}")))
}

/// The x5c chain, leaf first: standard base64 DER (RFC 7515 §4.1.6), a handful of them.
fn certificates(x5c: &[String]) -> Result<Vec<Vec<u8>>, NotationError> {
    if x5c.is_empty() {
        return Err(NotationError::Chain("is missing or empty".into()));
    }
    if x5c.len() > 10 {
        return Err(NotationError::Chain("has more than 10 certificates".into()));
    }
    let mut ders = Vec::with_capacity(x5c.len());
    for (i, c) in x5c.iter().enumerate() {
        ders.push(
            STANDARD
                .decode(c)
                .map_err(|_| NotationError::Chain(format!("entry {} is not base64", i + 1)))?,
        );
    }
    Ok(ders)
}

/// The leaf's public key, once it is known to be able to sign.
fn leaf_key(leaf: &[u8]) -> Result<PublicKey, NotationError> {
    use x509_cert::der::{Decode as _, Encode as _};
    let cert = x509_cert::Certificate::from_der(leaf)
        .map_err(|e| NotationError::Certificate(x509::CertError::Der(e.to_string())))?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| NotationError::Certificate(x509::CertError::Der(e.to_string())))?;
    PublicKey::from_spki_der(&spki).map_err(|e| NotationError::Certificate(x509::CertError::Key(e)))
}

/// ring's verification algorithm for `alg` on a key of `kind` (signature-specification.md,
/// "Algorithm Selection": RSASSA-PSS and ECDSA with SHA-256, -384, -512; JWS ECDSA
/// signatures are the fixed-length r||s of RFC 7518 §3.4, not DER).
fn algorithm(
    alg: &str,
    kind: KeyKind,
) -> Result<&'static dyn VerificationAlgorithm, NotationError> {
    let fail = |why: String| NotationError::Algorithm {
        alg: alg.to_owned(),
        why,
    };
    let (want, algorithm): (KeyKind, &'static dyn VerificationAlgorithm) = match alg {
        "ES256" => (KeyKind::EcdsaP256, &ring_sig::ECDSA_P256_SHA256_FIXED),
        "ES384" => (KeyKind::EcdsaP384, &ring_sig::ECDSA_P384_SHA384_FIXED),
        "PS256" => (KeyKind::Rsa, &ring_sig::RSA_PSS_2048_8192_SHA256),
        "PS384" => (KeyKind::Rsa, &ring_sig::RSA_PSS_2048_8192_SHA384),
        "PS512" => (KeyKind::Rsa, &ring_sig::RSA_PSS_2048_8192_SHA512),
        "ES512" => {
            return Err(fail(
                "(ECDSA P-521) is not supported: tollgate verifies P-256 and P-384".into(),
            ));
        }
        _ => {
            return Err(fail(
                "is not one the Notary Project allows (PS256, PS384, PS512, ES256, ES384, ES512)"
                    .into(),
            ));
        }
    };
    if want != kind {
        return Err(fail(format!("does not fit the certificate's {kind} key")));
    }
    Ok(algorithm)
}

/// The signing time an envelope claims, if it can be read at all.
pub(super) fn claimed_time(bytes: &[u8]) -> Option<i64> {
    let jws: Jws = serde_json::from_slice(bytes).ok()?;
    let header: Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&jws.protected).ok()?).ok()?;
    header
        .get(SIGNING_TIME)?
        .as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}
