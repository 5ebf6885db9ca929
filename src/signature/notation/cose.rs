//! The COSE envelope (signature-envelope-cose.md): a tagged COSE_Sign1 (RFC 9052 §4.2, tag
//! 18), its protected header's attributes, and the certificate chain (`x5chain`, RFC 9360)
//! in the unprotected header. It is taken apart into the shape the JWS envelope's checks read
//! ([`super::jws::Signed`]), so both envelopes are checked by one code path.

use coset::cbor::value::Value as Cbor;
use coset::iana::{self, EnumI64 as _};
use coset::{
    CoseSign1, Label, RegisteredLabel, RegisteredLabelWithPrivate, TaggedCborSerializable,
};
use serde_json::{Map, Value};

use super::NotationError;
use super::jws::{Proof, Signed, check_signed};
use crate::reference::Digest;

/// RFC 9360 §2: `x5chain`, in the unprotected header.
const X5CHAIN: i64 = 33;
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const EXPIRY: &str = "io.cncf.notary.expiry";

/// [`super::check_envelope`] for a COSE envelope.
pub fn check_cose_envelope(bytes: &[u8], digest: &Digest, at: i64) -> Result<Proof, NotationError> {
    check_signed(&take_apart(bytes)?, digest, at)
}

fn cose_err(e: impl std::fmt::Display) -> NotationError {
    NotationError::Cose(e.to_string())
}

/// The envelope taken apart: the protected header as JWS names its members.
fn take_apart(bytes: &[u8]) -> Result<Signed, NotationError> {
    // coset rejects trailing bytes and duplicate header labels (RFC 9052 §3); ciborium bounds
    // nesting depth, so a hostile envelope cannot exhaust the stack.
    let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(cose_err)?;
    let payload = sign1
        .payload
        .clone()
        .ok_or_else(|| NotationError::Cose("its payload is detached".into()))?;
    let p = &sign1.protected.header;
    let mut header = Map::new();
    if let Some(alg) = &p.alg {
        header.insert("alg".into(), Value::String(alg_name(alg)));
    }
    if !p.crit.is_empty() {
        let crit = p
            .crit
            .iter()
            .map(|c| {
                Value::String(match c {
                    RegisteredLabelWithPrivate::Text(t) => t.clone(),
                    RegisteredLabelWithPrivate::Assigned(a) => a.to_i64().to_string(),
                    RegisteredLabelWithPrivate::PrivateUse(i) => i.to_string(),
                })
            })
            .collect();
        header.insert("crit".into(), Value::Array(crit));
    }
    match &p.content_type {
        Some(RegisteredLabel::Text(t)) => {
            header.insert("cty".into(), Value::String(t.clone()));
        }
        Some(RegisteredLabel::Assigned(a)) => {
            header.insert("cty".into(), Value::String(a.to_i64().to_string()));
        }
        None => {}
    }
    for (label, value) in &p.rest {
        // Integer labels beyond alg, crit and content type mean nothing to notation; left
        // out, a `crit` naming one is refused as not understood (RFC 9052 §3.1).
        let Label::Text(name) = label else {
            continue;
        };
        let shown = match (name.as_str(), value) {
            // signature-envelope-cose.md: the times are CBOR tag 1 (epoch-based date/time).
            (SIGNING_TIME | EXPIRY, v) => Value::String(datetime(name, v)?),
            (_, Cbor::Text(t)) => Value::String(t.clone()),
            _ => Value::Null,
        };
        header.insert(name.clone(), shown);
    }
    let x5c = x5chain(&sign1.unprotected)?;
    // RFC 9052 §4.4: Sig_structure ["Signature1", protected as carried, h'' , payload].
    let input = sign1.tbs_data(b"");
    Ok(Signed {
        header,
        input,
        signature: sign1.signature,
        payload,
        x5c,
    })
}

/// The JWS name of a COSE algorithm (RFC 9053 §2, RFC 8230 §2), so one table decides which
/// algorithms fit which keys.
fn alg_name(alg: &RegisteredLabelWithPrivate<iana::Algorithm>) -> String {
    use iana::Algorithm as A;
    match alg {
        RegisteredLabelWithPrivate::Assigned(a) => match a {
            A::ES256 => "ES256".into(),
            A::ES384 => "ES384".into(),
            A::ES512 => "ES512".into(),
            A::PS256 => "PS256".into(),
            A::PS384 => "PS384".into(),
            A::PS512 => "PS512".into(),
            other => format!("COSE {}", other.to_i64()),
        },
        RegisteredLabelWithPrivate::PrivateUse(i) => format!("COSE {i}"),
        RegisteredLabelWithPrivate::Text(t) => t.clone(),
    }
}

/// A tag-1 date/time as RFC 3339, for the shared checks to read.
fn datetime(name: &str, v: &Cbor) -> Result<String, NotationError> {
    let bad = || NotationError::Header(format!("{name} is not a CBOR tag 1 date/time"));
    let Cbor::Tag(1, inner) = v else {
        return Err(bad());
    };
    let secs = match inner.as_ref() {
        Cbor::Integer(i) => i64::try_from(i128::from(*i)).map_err(|_| bad())?,
        Cbor::Float(f) if f.is_finite() && f.abs() < 1e15 => f.trunc() as i64,
        _ => return Err(bad()),
    };
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .map_err(|_| bad())
}

/// RFC 9360 §2: one certificate as a bstr, several as an array of them, leaf first.
fn x5chain(unprotected: &coset::Header) -> Result<Vec<Vec<u8>>, NotationError> {
    let chain = unprotected
        .rest
        .iter()
        .find(|(l, _)| *l == Label::Int(X5CHAIN))
        .map(|(_, v)| v);
    match chain {
        None => Err(NotationError::Chain("is missing or empty".into())),
        Some(Cbor::Bytes(b)) => Ok(vec![b.clone()]),
        Some(Cbor::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, c)| match c {
                Cbor::Bytes(b) => Ok(b.clone()),
                _ => Err(NotationError::Chain(format!(
                    "entry {} is not a byte string",
                    i + 1
                ))),
            })
            .collect(),
        Some(_) => Err(NotationError::Chain(
            "is neither a byte string nor an array of them".into(),
        )),
    }
}

/// The signing time a COSE envelope claims, if it can be read at all.
pub(super) fn claimed_time(bytes: &[u8]) -> Option<i64> {
    let signed = take_apart(bytes).ok()?;
    signed
        .header
        .get(SIGNING_TIME)?
        .as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}
