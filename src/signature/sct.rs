//! Certificate Transparency for Fulcio certificates: the signed certificate timestamps (SCTs,
//! RFC 6962) Fulcio embeds in each certificate it issues, checked against the CT logs of the
//! trusted root (`ctlogs[]`), as cosign does by default (its `--insecure-ignore-sct` turns it
//! off; tollgate's is a keyless signer's `insecureIgnoreSCT`).
//!
//! An embedded SCT is a CT log's signature over the *precertificate*: the certificate's
//! `TBSCertificate` without the SCT list extension, and the SHA-256 of its issuer's key
//! (RFC 6962 §3.2, `PreCert`). A valid one proves the certificate was logged, so a Fulcio
//! that issued a certificate nobody can audit is not trusted.

use sha2::{Digest as _, Sha256};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Any, Decode, Encode, Tag, TagNumber, Tagged as _};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::sct::{
    HashAlgorithm, SignatureAlgorithm, SignedCertificateTimestampList, Version,
};

use super::trust::TransparencyLog;

/// The SCT list extension (RFC 6962 §3.3): 1.3.6.1.4.1.11129.2.4.2.
const SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// A certificate with more SCTs than this is not one Fulcio wrote (it embeds one per log).
const MAX_SCTS: usize = 16;

/// Whether one of the SCTs embedded in `leaf` (DER) is a valid signature by one of `logs`,
/// made while that log's key was valid; `issuer_spki` is the DER SubjectPublicKeyInfo of the
/// certificate that issued `leaf`. `Err`: why none counts, in words.
pub fn check_embedded(
    leaf: &[u8],
    issuer_spki: &[u8],
    logs: &[TransparencyLog],
) -> Result<(), String> {
    let cert = x509_cert::Certificate::from_der(leaf)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let list = match cert
        .tbs_certificate()
        .get_extension::<SignedCertificateTimestampList>()
    {
        Ok(Some((_, list))) => list,
        Ok(None) => {
            return Err(
                "its certificate carries no signed certificate timestamp (SCT): \
                 nothing shows it was logged for certificate transparency"
                    .into(),
            );
        }
        Err(e) => return Err(format!("its certificate's SCT list does not parse: {e}")),
    };
    if logs.is_empty() {
        return Err(
            "the trusted root names no certificate transparency log (`ctlogs`) to check \
             its certificate's SCT with"
                .into(),
        );
    }
    let scts = list
        .parse_timestamps()
        .map_err(|e| format!("its certificate's SCT list does not parse: {e:?}"))?;
    if scts.len() > MAX_SCTS {
        return Err(format!(
            "its certificate carries {} SCTs; at most {MAX_SCTS} are read",
            scts.len()
        ));
    }
    let tbs = precertificate_tbs(leaf)
        .map_err(|e| format!("its certificate's TBSCertificate does not parse: {e}"))?;
    let issuer_key_hash: [u8; 32] = Sha256::digest(issuer_spki).into();
    let mut last = String::from("no SCT");
    for serialized in &scts {
        let sct = match serialized.parse_timestamp() {
            Ok(s) => s,
            Err(e) => {
                last = format!("an SCT does not parse ({e:?})");
                continue;
            }
        };
        if sct.version != Version::V1 {
            last = "an SCT is not version 1".into();
            continue;
        }
        let Some(log) = logs.iter().find(|l| l.key_id == sct.log_id.key_id) else {
            last = "an SCT is by a log the trusted root does not name".into();
            continue;
        };
        let seconds = i64::try_from(sct.timestamp / 1000).unwrap_or(i64::MAX);
        if !log.valid.contains(seconds) {
            last = format!(
                "the SCT by {} is dated outside the log key's validFor window",
                log.url
            );
            continue;
        }
        // RFC 6962 §2.1.4: SCTs are signed with SHA-256, by ECDSA (P-256) or RSA.
        if sct.signature.algorithm.hash != HashAlgorithm::Sha256
            || !matches!(
                sct.signature.algorithm.signature,
                SignatureAlgorithm::Ecdsa | SignatureAlgorithm::Rsa
            )
        {
            last = format!("the SCT by {} is not signed with SHA-256", log.url);
            continue;
        }
        let message = signed_data(
            sct.timestamp,
            &issuer_key_hash,
            &tbs,
            sct.extensions.as_slice(),
        );
        if log.key.verify(&message, sct.signature.signature.as_slice()) {
            return Ok(());
        }
        last = format!("the SCT by {} does not verify with its key", log.url);
    }
    Err(format!(
        "its certificate's SCT proves nothing ({last}): nothing shows it was logged for \
         certificate transparency"
    ))
}

/// The bytes a precertificate SCT signs (RFC 6962 §3.2, `digitally-signed struct`):
/// `sct_version` v1 (0), `signature_type` certificate_timestamp (0), the `uint64` timestamp
/// in milliseconds, `entry_type` precert_entry (1, `uint16`), the `PreCert`
/// (`issuer_key_hash[32]` and the TBSCertificate as an `opaque<1..2^24-1>`), and the SCT's
/// `CtExtensions` (`opaque<0..2^16-1>`).
pub fn signed_data(timestamp: u64, issuer_key_hash: &[u8; 32], tbs: &[u8], ext: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(tbs.len() + ext.len() + 48);
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&timestamp.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(issuer_key_hash);
    let len = u32::try_from(tbs.len()).unwrap_or(u32::MAX).to_be_bytes();
    m.extend_from_slice(&len[1..]);
    m.extend_from_slice(tbs);
    let len = u16::try_from(ext.len()).unwrap_or(u16::MAX).to_be_bytes();
    m.extend_from_slice(&len);
    m.extend_from_slice(ext);
    m
}

/// The TBSCertificate of `leaf` (DER) with the SCT list extension taken out: what the log
/// signed (RFC 6962 §3.2: "the TBSCertificate … with the SCT extension removed"; the
/// precertificate's poison extension is gone from the issued certificate already). Every
/// other element is kept as its original bytes, so nothing is re-encoded differently.
pub fn precertificate_tbs(leaf: &[u8]) -> Result<Vec<u8>, x509_cert::der::Error> {
    let parts: Vec<Any> = Vec::from_der(leaf)?;
    let tbs = parts
        .first()
        .ok_or_else(|| x509_cert::der::Error::from(Tag::Sequence.value_error()))?;
    let mut items: Vec<Any> = tbs.decode_as()?;
    // `extensions [3] EXPLICIT Extensions`: a constructed context-specific tag 3 around a
    // SEQUENCE OF Extension.
    let extensions_tag = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(3),
    };
    for item in &mut items {
        if item.tag() != extensions_tag {
            continue;
        }
        let extensions: Vec<Any> = Vec::from_der(item.value())?;
        let mut kept = Vec::with_capacity(extensions.len());
        for e in extensions {
            if e.decode_as::<Extension>()?.extn_id != SCT_LIST {
                kept.push(e);
            }
        }
        *item = Any::new(extensions_tag, kept.to_der()?)?;
    }
    items.to_der()
}
