//! DSSE v1 envelopes (the Dead Simple Signing Envelope of secure-systems-lab/dsse), as in-toto
//! attestations and Sigstore bundles carry them: the JSON envelope, and the pre-authentication
//! encoding (PAE) a signature is made over. Pure; verifying a signature over the PAE is the
//! caller's (with [`super::keys::PublicKey::verify`]).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT};
use serde::Deserialize;

/// The most signatures one envelope may carry: real envelopes have one or two, and each is a
/// verification to try per key.
pub const MAX_SIGNATURES: usize = 32;

/// A parsed envelope, its payload and signatures decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `payloadType`: how to read the payload (`application/vnd.in-toto+json`).
    pub payload_type: String,
    /// `payload`, decoded: the bytes that were signed (through [`pae`]).
    pub payload: Vec<u8>,
    /// `signatures`, in the envelope's order; never empty.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One of an envelope's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// `keyid`: an unauthenticated hint of the key; `None` when absent or empty (envelope.md
    /// makes it optional, and it must not decide which keys are tried).
    pub keyid: Option<String>,
    /// `sig`, decoded.
    pub sig: Vec<u8>,
}

/// Why bytes are not a DSSE envelope.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DsseError {
    /// Not JSON of the envelope's shape (a required field missing, or of the wrong type).
    #[error("the DSSE envelope is not valid JSON of the envelope's shape")]
    Json(#[source] Arc<serde_json::Error>),
    /// `payload` is not base64.
    #[error("the DSSE envelope's payload is not base64")]
    Payload(#[source] base64::DecodeError),
    /// A `sig` is not base64.
    #[error("the DSSE envelope's signature {index} is not base64")]
    Signature {
        /// Its position, from 1.
        index: usize,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// `payloadType` is empty.
    #[error("the DSSE envelope has an empty payloadType")]
    EmptyPayloadType,
    /// No signature at all: nothing to verify.
    #[error("the DSSE envelope has no signature")]
    NoSignatures,
    /// More signatures than [`MAX_SIGNATURES`].
    #[error("the DSSE envelope has {0} signatures; at most {MAX_SIGNATURES} are read")]
    TooManySignatures(usize),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    payload_type: String,
    payload: String,
    signatures: Vec<RawSignature>,
}

#[derive(Deserialize)]
struct RawSignature {
    #[serde(default)]
    keyid: Option<String>,
    sig: String,
}

/// Parse an envelope (JSON). The caller bounds `bytes`; this bounds the signatures.
pub fn parse(bytes: &[u8]) -> Result<Envelope, DsseError> {
    from_raw(serde_json::from_slice(bytes).map_err(|e| DsseError::Json(Arc::new(e)))?)
}

/// An envelope already read as JSON (a Sigstore bundle's `dsseEnvelope`).
pub(crate) fn from_value(v: serde_json::Value) -> Result<Envelope, DsseError> {
    from_raw(serde_json::from_value(v).map_err(|e| DsseError::Json(Arc::new(e)))?)
}

fn from_raw(raw: Raw) -> Result<Envelope, DsseError> {
    if raw.payload_type.is_empty() {
        return Err(DsseError::EmptyPayloadType);
    }
    if raw.signatures.is_empty() {
        return Err(DsseError::NoSignatures);
    }
    if raw.signatures.len() > MAX_SIGNATURES {
        return Err(DsseError::TooManySignatures(raw.signatures.len()));
    }
    let payload = decode_base64(&raw.payload).map_err(DsseError::Payload)?;
    let signatures = raw
        .signatures
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            Ok(EnvelopeSignature {
                keyid: s.keyid.filter(|k| !k.is_empty()),
                sig: decode_base64(&s.sig).map_err(|source| DsseError::Signature {
                    index: i + 1,
                    source,
                })?,
            })
        })
        .collect::<Result<_, DsseError>>()?;
    Ok(Envelope {
        payload_type: raw.payload_type,
        payload,
        signatures,
    })
}

/// The pre-authentication encoding a DSSE signature is over (protocol.md):
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, each LEN the byte length in ASCII
/// decimal without leading zeros. Signing the PAE rather than the payload binds the type, and
/// the lengths make the encoding unambiguous.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Base64 as DSSE (envelope.md: "either standard or URL-safe encoding") and proto3 JSON
/// (`bytes`: standard or URL-safe, with or without padding) allow it.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD_PAD_INDIFFERENT
        .decode(text)
        .or_else(|first| URL_SAFE_PAD_INDIFFERENT.decode(text).map_err(|_| first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn pae_matches_the_spec_example() {
        // protocol.md's test vector.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[rstest]
    #[case::empty_both("", b"", "DSSEv1 0  0 ")]
    #[case::ten_bytes_no_leading_zero("t", b"0123456789", "DSSEv1 1 t 10 0123456789")]
    #[case::spaces_in_the_body_are_bytes("a b", b" x ", "DSSEv1 3 a b 3  x ")]
    fn pae_counts_bytes(#[case] ty: &str, #[case] body: &[u8], #[case] want: &str) {
        assert_eq!(pae(ty, body), want.as_bytes());
    }

    #[test]
    fn pae_counts_bytes_not_characters() {
        // "é" is two bytes in UTF-8.
        assert_eq!(pae("é", b""), "DSSEv1 2 é 0 ".as_bytes());
    }

    #[rstest]
    // "hello world" is aGVsbG8gd29ybGQ= in standard base64.
    #[case::standard(r#"{"payloadType":"t","payload":"aGVsbG8gd29ybGQ=","signatures":[{"keyid":"k","sig":"AQID"}]}"#, Some("k"), vec![1, 2, 3])]
    #[case::unpadded(r#"{"payloadType":"t","payload":"aGVsbG8gd29ybGQ","signatures":[{"sig":"AQID"}]}"#, None, vec![1, 2, 3])]
    // 0xfb 0xff is +/8 standard, -_8 URL-safe.
    #[case::url_safe_sig(r#"{"payloadType":"t","payload":"aGVsbG8gd29ybGQ=","signatures":[{"keyid":"","sig":"-_8="}]}"#, None, vec![0xfb, 0xff])]
    #[case::standard_sig(r#"{"payloadType":"t","payload":"aGVsbG8gd29ybGQ=","signatures":[{"sig":"+/8="}]}"#, None, vec![0xfb, 0xff])]
    #[case::unknown_fields_are_ignored(r#"{"payloadType":"t","payload":"aGVsbG8gd29ybGQ=","signatures":[{"sig":"AQID","extra":1}],"x":2}"#, None, vec![1, 2, 3])]
    fn parses_good_envelopes(
        #[case] json: &str,
        #[case] keyid: Option<&str>,
        #[case] sig: Vec<u8>,
    ) {
        let e = parse(json.as_bytes()).unwrap();
        assert_eq!(e.payload_type, "t");
        assert_eq!(e.payload, b"hello world");
        assert_eq!(e.signatures.len(), 1);
        assert_eq!(e.signatures[0].keyid.as_deref(), keyid);
        assert_eq!(e.signatures[0].sig, sig);
    }

    #[rstest]
    #[case::not_json("<html>", "not valid JSON")]
    #[case::no_payload(
        r#"{"payloadType":"t","signatures":[{"sig":"AQID"}]}"#,
        "not valid JSON"
    )]
    #[case::payload_not_a_string(
        r#"{"payloadType":"t","payload":1,"signatures":[{"sig":"AQID"}]}"#,
        "not valid JSON"
    )]
    #[case::no_signatures_field(r#"{"payloadType":"t","payload":""}"#, "not valid JSON")]
    #[case::empty_signatures(r#"{"payloadType":"t","payload":"","signatures":[]}"#, "no signature")]
    #[case::empty_type(
        r#"{"payloadType":"","payload":"","signatures":[{"sig":""}]}"#,
        "empty payloadType"
    )]
    #[case::payload_not_base64(
        r#"{"payloadType":"t","payload":"!!","signatures":[{"sig":"AQID"}]}"#,
        "payload is not base64"
    )]
    #[case::mixed_alphabets(
        r#"{"payloadType":"t","payload":"+_8=","signatures":[{"sig":"AQID"}]}"#,
        "payload is not base64"
    )]
    #[case::sig_not_base64(
        r#"{"payloadType":"t","payload":"","signatures":[{"sig":"AQID"},{"sig":"*"}]}"#,
        "signature 2 is not base64"
    )]
    fn refuses_broken_envelopes(#[case] json: &str, #[case] why: &str) {
        let e = parse(json.as_bytes()).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }

    #[test]
    fn refuses_more_than_the_signature_bound() {
        let sigs = vec![r#"{"sig":"AQID"}"#; MAX_SIGNATURES + 1].join(",");
        let json = format!(r#"{{"payloadType":"t","payload":"","signatures":[{sigs}]}}"#);
        assert!(matches!(
            parse(json.as_bytes()),
            Err(DsseError::TooManySignatures(33))
        ));
        let sigs = vec![r#"{"sig":"AQID"}"#; MAX_SIGNATURES].join(",");
        let json = format!(r#"{{"payloadType":"t","payload":"","signatures":[{sigs}]}}"#);
        assert_eq!(parse(json.as_bytes()).unwrap().signatures.len(), 32);
    }

    #[test]
    fn a_signature_over_the_pae_verifies_and_one_over_the_payload_does_not() {
        use rcgen::{PublicKeyData as _, SigningKey as _};
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let public =
            crate::signature::PublicKey::from_spki_der(&key.subject_public_key_info()).unwrap();
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
        let ty = "application/vnd.in-toto+json";
        let sig = key.sign(&pae(ty, payload)).unwrap();
        let json = serde_json::json!({
            "payloadType": ty,
            "payload": base64::engine::general_purpose::STANDARD.encode(payload),
            "signatures": [{"sig": base64::engine::general_purpose::STANDARD.encode(&sig)}],
        });
        let e = parse(json.to_string().as_bytes()).unwrap();
        let signed = pae(&e.payload_type, &e.payload);
        assert!(public.verify(&signed, &e.signatures[0].sig));
        assert!(!public.verify(&e.payload, &e.signatures[0].sig));
        assert!(!public.verify(&pae("text/plain", &e.payload), &e.signatures[0].sig));
    }

    proptest::proptest! {
        /// An envelope is attacker input: any bytes give an answer, never a panic.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&bytes);
        }
    }
}
