//! Notary Project (notation) signatures in JWS and COSE envelopes: the envelope's integrity, its
//! payload's target, its signing certificate's chain to a signer's trust store, and the
//! signer's trusted identities.
//!
//! The formats are the Notary Project specifications':
//! - signature-specification.md, "Storage": a signature is an OCI artifact manifest whose
//!   `subject` is the signed manifest, of artifactType [`ARTIFACT_TYPE`], with one layer, the
//!   envelope ([`MEDIA_TYPE_JWS`] or [`MEDIA_TYPE_COSE`]);
//! - signature-envelope-jws.md (`jws`): the JWS JSON serialization, flattened (RFC 7515
//!   §7.2.2), with the signed attributes in the protected header and the certificate chain
//!   (`x5c`, leaf first) in the unprotected one;
//! - signature-envelope-cose.md (`cose`): a tagged COSE_Sign1 with the same attributes and
//!   payload, taken apart into the JWS checks' shape so both are checked alike;
//! - trust-store-trust-policy.md (`identity`): trust stores of root certificates, and trusted
//!   identities (`x509.subject: <DN>` or `*`).
//!
//! Pure: the registry walk ([`crate::registry`]) reads the envelopes and passes their bytes in,
//! and the caller says when the certificates must be valid. Must not touch: the network, the
//! clock, the policy's matching.

use std::sync::Arc;

use super::x509;
use super::{Signer, Trusted, Verdict};
use crate::reference::Digest;

mod cose;
mod identity;
mod jws;

pub use cose::check_cose_envelope;
pub use identity::{SUBJECT_PREFIX, TrustedIdentity, parse_dn, parse_identity};
pub use jws::{Proof, check_jws_envelope};

/// A tagged COSE_Sign1 opens with tag 18's one-byte head (RFC 8949 §3.4: major type 6,
/// value 18), which no JSON text can start with: the envelope says its own format.
const COSE_SIGN1_HEAD: u8 = 0xd2;

/// Check an envelope of either format ([`check_jws_envelope`], [`check_cose_envelope`]).
pub fn check_envelope(bytes: &[u8], digest: &Digest, at: i64) -> Result<Proof, NotationError> {
    if bytes.first() == Some(&COSE_SIGN1_HEAD) {
        check_cose_envelope(bytes, digest, at)
    } else {
        check_jws_envelope(bytes, digest, at)
    }
}

fn claimed_time(bytes: &[u8]) -> Option<i64> {
    if bytes.first() == Some(&COSE_SIGN1_HEAD) {
        cose::claimed_time(bytes)
    } else {
        jws::claimed_time(bytes)
    }
}

/// The artifactType of a notation signature manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// The media type of a JWS envelope layer.
pub const MEDIA_TYPE_JWS: &str = "application/jose+json";
/// The media type of a COSE envelope layer.
pub const MEDIA_TYPE_COSE: &str = "application/cose";
/// The protected header's `cty`: the payload is a Notary Project payload.
pub const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// The signing scheme this reads: signing time as the signer claims it, no timestamp
/// authority (signature-specification.md, "Signing Scheme").
pub const SCHEME_X509: &str = "notary.x509";
/// The envelope is a chain of a few certificates and a short payload: a few kilobytes.
pub const MAX_ENVELOPE_BYTES: u64 = 256 * 1024;
/// More notation signatures than this on one digest are not read: each costs a manifest and a
/// blob.
pub const MAX_SIGNATURES: usize = 32;

/// Why an envelope proves nothing. Each is an answer about one signature, never a registry
/// failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotationError {
    /// Not the flattened JWS JSON serialization.
    #[error("the envelope is not a flattened JWS JSON serialization: {0}")]
    Envelope(String),
    /// Not a tagged COSE_Sign1 with its payload attached.
    #[error("the envelope is not a tagged COSE_Sign1: {0}")]
    Cose(String),
    /// A base64url member does not decode.
    #[error("the envelope's {0} is not base64url without padding")]
    Base64(&'static str),
    /// The protected header is not a JSON object, or misses or mistypes a member.
    #[error("the protected header {0}")]
    Header(String),
    /// `crit` names an attribute this verifier does not understand.
    #[error("the protected header marks {0:?} critical, which tollgate does not understand")]
    UnknownCritical(String),
    /// Another payload type than the Notary Project payload.
    #[error("the payload's content type is {0:?}, not {PAYLOAD_TYPE}")]
    ContentType(String),
    /// Another signing scheme than `notary.x509`.
    #[error(
        "signing scheme {0:?} is not supported (tollgate reads {SCHEME_X509}; \
         notary.x509.signingAuthority needs a timestamp authority)"
    )]
    Scheme(String),
    /// An algorithm the specification does not allow, or one that does not fit the key.
    #[error("algorithm {alg:?} {why}")]
    Algorithm {
        /// The header's `alg`.
        alg: String,
        /// Why it cannot be used.
        why: String,
    },
    /// No certificate chain.
    #[error("the envelope's x5c certificate chain {0}")]
    Chain(String),
    /// The leaf certificate cannot be used.
    #[error("the signing certificate: {0}")]
    Certificate(#[source] x509::CertError),
    /// The signature does not verify with the leaf certificate's key.
    #[error("the signature does not verify with its certificate's key")]
    Signature,
    /// The payload is not a Notary Project payload.
    #[error("the payload is not a targetArtifact descriptor: {0}")]
    Payload(String),
    /// The payload signs another digest.
    #[error("it signs {found}, not {want}")]
    Target {
        /// The digest verified.
        want: Digest,
        /// The payload's `targetArtifact.digest`.
        found: String,
    },
    /// Past `io.cncf.notary.expiry`.
    #[error("it expired at {0}")]
    Expired(String),
}

/// A notation signer: the trust store its certificates must chain to, and the identities it
/// trusts among the certificates that do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotationSigner {
    /// The trust store, shared by the signers that name one file.
    pub store: Arc<TrustStore>,
    /// Whose certificates count (`*`: any that chains to the store).
    pub identities: Vec<TrustedIdentity>,
}

impl NotationSigner {
    /// What verdicts of this signer depend on: the store's hash and the identities.
    pub fn fingerprint(&self) -> String {
        let ids: Vec<String> = self.identities.iter().map(|i| i.to_string()).collect();
        format!("notation:{}|{}", self.store.fingerprint, ids.join(";"))
    }

    /// Whether a certificate of subject `dn` is one of this signer's identities.
    pub fn trusts(&self, dn: &[(String, String)]) -> bool {
        self.identities.iter().any(|i| i.matches(dn))
    }
}

/// A trust store (trust-store-trust-policy.md, type `ca`): root certificates, as a PEM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStore {
    /// The file's name as the policy gives it, for reports.
    pub name: String,
    /// The certificates, DER.
    pub roots: Vec<Vec<u8>>,
    /// SHA-256 of the file's bytes, hex.
    pub fingerprint: String,
}

/// Parse a trust store: one or more PEM certificates.
pub fn trust_store(name: &str, bytes: &[u8]) -> Result<TrustStore, x509::CertError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| x509::CertError::Pem("the file is not UTF-8 text".into()))?;
    let roots = x509::pem_chain(text)?;
    for r in &roots {
        webpki::anchor_from_trusted_cert(&rustls_pki_types::CertificateDer::from(r.as_slice()))
            .map_err(|e| x509::CertError::Der(format!("{e:?}")))?;
    }
    Ok(TrustStore {
        name: name.to_owned(),
        roots,
        fingerprint: super::cosign::hex(&super::rekor::sha256(bytes)),
    })
}

/// A notation signature as fetched: its manifest's digest, and the envelope's bytes (or why
/// they could not be read, in one line).
#[derive(Debug, Clone)]
pub struct FetchedNotation {
    /// The signature manifest.
    pub manifest: Digest,
    /// The envelope layer's bytes.
    pub envelope: Result<Vec<u8>, String>,
}

/// Which of `signers`' notation signers `proof` is by, checked at `at`: its chain leads to the
/// signer's trust store (with the code-signing usage, [`x509::verify_chain`]), the leaf may
/// sign digitally, and its subject is one of the signer's identities. `Err`: why it is by none,
/// in one line.
pub fn signed_by(proof: &Proof, signers: &[Signer], at: i64) -> Result<Vec<usize>, String> {
    let text = |e: &(dyn std::error::Error + 'static)| crate::error_text::error_text(e);
    if !x509::signs_digitally(&proof.leaf).map_err(|e| text(&e))? {
        return Err(
            "its certificate may not sign (no digitalSignature key usage), as the Notary \
             Project requires"
                .into(),
        );
    }
    let mut by = Vec::new();
    let mut why = Vec::new();
    for (j, signer) in signers.iter().enumerate() {
        let Trusted::Notation(n) = &signer.trusted else {
            continue;
        };
        let anchors: Vec<x509::Anchor<'_>> = n
            .store
            .roots
            .iter()
            .map(|r| x509::Anchor {
                root: r,
                intermediates: &[],
                name: &n.store.name,
            })
            .collect();
        match x509::verify_chain(&proof.leaf, &proof.chain, &anchors, at) {
            Ok(_) if n.trusts(&proof.subject) => by.push(j),
            Ok(_) => why.push(format!(
                "{}: its certificate's subject {} is none of the signer's identities",
                signer.name,
                x509::shown_dn(&proof.subject)
            )),
            Err(e) => why.push(format!("{}: {}", signer.name, text(&e))),
        }
    }
    if by.is_empty() {
        return Err(if why.is_empty() {
            "the rule has no notation signer".into()
        } else {
            format!("it is by none of the notation signers ({})", why.join("; "))
        });
    }
    Ok(by)
}

/// What a digest's notation signatures prove about a rule's signers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotationVerdict {
    /// For each of the rule's signers (by index), whether a notation signature is theirs.
    pub signed: Vec<bool>,
    /// How many signatures were read.
    pub signatures: usize,
    /// Why each signature that proves nothing does not: one line each.
    pub problems: Vec<String>,
}

/// Check every notation signature of `digest` against the rule's notation signers. `now` is
/// when the certificates must be valid and the signature unexpired (trust-store-trust-policy.md:
/// without a trusted timestamp, the `notary.x509` scheme checks validity at verification
/// time); `None` takes each signature's own signing time instead, which its signer claims
/// and nothing proves.
pub fn verify(
    digest: &Digest,
    signatures: &[FetchedNotation],
    signers: &[Signer],
    now: Option<i64>,
) -> NotationVerdict {
    let mut signed = vec![false; signers.len()];
    let mut problems = Vec::new();
    for (i, s) in signatures.iter().enumerate() {
        let head = format!("notation signature {} ({})", i + 1, s.manifest);
        let bytes = match &s.envelope {
            Ok(b) => b,
            Err(why) => {
                problems.push(format!("{head}: its envelope could not be read: {why}"));
                continue;
            }
        };
        // The claimed signing time is only known once the header is read; the envelope's
        // checks that need a time take it then.
        let at = now.unwrap_or_else(|| claimed_time(bytes).unwrap_or(i64::MIN));
        let proof = match check_envelope(bytes, digest, at) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("{head}: {}", crate::error_text::error_text(&e)));
                continue;
            }
        };
        match signed_by(&proof, signers, now.unwrap_or(proof.signing_time)) {
            Ok(by) => by.into_iter().for_each(|j| signed[j] = true),
            Err(why) => problems.push(format!("{head}: {why}")),
        }
    }
    NotationVerdict {
        signed,
        signatures: signatures.len(),
        problems,
    }
}

/// `verdict` (the cosign signatures') with `notation`'s signers added: one threshold over
/// every kind of signer, the signers named in the rule's order.
pub fn merge(verdict: Verdict, notation: NotationVerdict, signers: &[Signer]) -> Verdict {
    let signed_by = signers
        .iter()
        .enumerate()
        .filter(|(j, s)| {
            verdict.signed_by.contains(&s.name) || notation.signed.get(*j).copied() == Some(true)
        })
        .map(|(_, s)| s.name.clone())
        .collect();
    let mut problems = verdict.problems;
    problems.extend(notation.problems);
    Verdict {
        signed_by,
        threshold: verdict.threshold,
        signatures: verdict.signatures + notation.signatures,
        problems,
    }
}

/// [`Verdict::summary`], saying where signatures were looked for when there is none.
pub fn summary(verdict: &Verdict, digest: &Digest) -> String {
    if verdict.signatures == 0 {
        return format!(
            "{digest} has no signature (no cosign signature manifest, no notation signature \
             among its referrers)"
        );
    }
    verdict.summary(digest)
}

#[cfg(test)]
mod tests;
